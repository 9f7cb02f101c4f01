"""The numba backend of :class:`~multispin_env.core.MultiSpinCore`: one round as JIT-compiled kernels.

The numpy methods of ``MultiSpinCore`` are the reference. These kernels compute the same model (model.md
sections 2 and 4) with the same floating-point operations in the same order, and call the same scipy
functions for J0 and log1p (``scipy.special.cython_special``, the C functions behind ``scipy.special.j0`` and
``scipy.special.log1p``), so both backends give the same numbers (bit for bit on the machines tested). They
exist because a round is ~60 numpy calls on (1, K) arrays, each costing about a microsecond whatever its
size, while one kernel call costs about as much as one numpy call.

Conventions: a batch of n systems of K users. The core's state is packed into C-contiguous float64 arrays
(rows, n, K) whose row names (``P_*``, ``C_*``, ``H_*``, ``R_*``, ``E_*``) are defined in
:mod:`multispin_env.core`; the complex gains h are a ring buffer (csi_delay + 1, n, K) of the current and
past rounds. Randomness comes only from the env's numpy Generator, drawn by the core in blocks and passed
in with the round's index in them (Exp(1) for the accepted prefixes, N(0, 1) pairs for the fading, log-normal
drafting-time factors); :func:`standard_normal` fills the N(0, 1) blocks with the values (and the Generator
state) of ``rng.standard_normal``, so both backends consume the Generator identically.

Importing this module imports numba and compiles (or loads from numba's on-disk cache) every kernel: the
core imports it only for ``backend="numba"``. scipy's functions are linked by symbol name so that the
compiled kernels can be cached. numba's cache does not notice changes of the imported row constants:
clear ``multispin_env/__pycache__/_kernels*`` after changing them.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
import numpy as np
from numba import from_dtype, njit, types
from numba.extending import get_cython_function_address

from multispin_env.core import (
    C_FAILURES,
    C_LAST_DRAFT_LENGTHS,
    C_LAST_TOKENS,
    C_SUCCESSES,
    E_CLOCK,
    E_LATENCY,
    E_REWARD,
    E_SYNC_TIME,
    E_VERIFY_TIME,
    H_NATS,
    H_OBSERVED_NATS,
    H_UPLOAD_TIME,
    P_DRAFT_TIME,
    P_MEAN_NATS,
    P_MEAN_UPLOAD_TIME,
    P_SNR,
    R_ACCEPTED,
    R_BANDWIDTH,
    R_DRAFT_LENGTHS,
    R_SPECTRAL_EFFICIENCY,
    R_TOKENS,
)

__all__ = [
    "CONSTANTS", "clip_actions", "decode", "play_round", "update_channel", "observe", "step_action", "reset_rows",
    "round_info", "standard_normal",
]

#: Constants of one core (a record array of length 1), filled once by the core.
CONSTANTS = np.dtype(
    [
        ("verify_base", "f8"),  # T0, s (eq. 2)
        ("verify_per_token", "f8"),  # kappa, s/token (eq. 2)
        ("downlink_time", "f8"),  # T_dl, s (eq. 3)
        ("batch_tokens", "f8"),  # K: the "+1" of every user in eq. (2), tokens
        ("reward_scale", "f8"),  # reward per token
        ("forgetting", "f8"),  # lambda of the acceptance estimate
        ("prior_tokens", "f8"),  # w0 a0, pseudo-tokens
        ("prior_rest", "f8"),  # w0 - w0 a0, pseudo-tokens
        ("horizon", "f8"),  # s
        ("upload_numerator", "f8"),  # D ln 2 / W, s: c_k = D / (W e_k) = upload_numerator / ln(1 + SNR |h|^2)
        ("min_nats", "f8"),  # floor of ln(1 + SNR |h|^2)
        ("two_pi_doppler", "f8"),  # 2 pi f_D, rad/s
        ("jitter", "f8"),  # sigma of the log-normal drafting-time factor (0: none)
        ("half_max_draft", "f8"),  # L_max / 2, tokens
        ("inverse_ln2", "f8"),  # 1 / ln 2: nats to bit/s/Hz
        ("length_entries", "i8"),  # 1 (homogeneous) or K action entries for the lengths
        ("fading", "i8"),  # 1: Gauss-Markov fading; 0: |h|^2 = 1
        ("positional", "i8"),  # 1: prefix sampling from the cumulative hazard table (positional process)
        ("observed_is_true", "i8"),  # 1: the observed channel is the true one (no CSI delay or noise)
    ]
)

# Shares below this are treated as this in eq. (1) (as MultiSpinCore.step: 0 / _TINY_SHARE = 0 for L_k = 0).
_TINY_SHARE = 1e-300
_SQRT_HALF = math.sqrt(0.5)

# scipy's J0 and log1p (double f(double, int skip_dispatch)), the functions of scipy.special.j0 / .log1p that
# the numpy reference calls, under fixed symbol names: cached code links by name.
llvm.add_symbol("multispin_env_scipy_j0", get_cython_function_address("scipy.special.cython_special", "j0"))
llvm.add_symbol("multispin_env_scipy_log1p",
                get_cython_function_address("scipy.special.cython_special", "__pyx_fuse_1log1p"))
_scipy_j0 = types.ExternalFunction("multispin_env_scipy_j0", types.float64(types.float64, types.intc))
_scipy_log1p = types.ExternalFunction("multispin_env_scipy_log1p", types.float64(types.float64, types.intc))

# Cached on disk; numpy's floating-point error model (x / 0 = inf, as the reference, no ZeroDivisionError checks).
_JIT = {"cache": True, "error_model": "numpy"}

# Argument types (fixed dtypes and C layouts: one compiled signature per kernel).
_f8_1 = types.float64[::1]
_f8_2 = types.float64[:, ::1]
_f8_3 = types.float64[:, :, ::1]
_f8_4 = types.float64[:, :, :, ::1]
_c16_2 = types.complex128[:, ::1]
_c16_3 = types.complex128[:, :, ::1]
_constants = types.Array(from_dtype(CONSTANTS), 1, "C")
_generator = types.NumPyRandomGeneratorType("NumPyRandomGeneratorType")
_state = (_f8_3, _f8_3, _f8_3, _c16_3, types.int64, _f8_1)  # population, counts, channel, gains, newest, clock
# hazard, cumulative hazard, Exp(1), N(0, 1) pairs, jitter factors, round index in the blocks
_draws = (_f8_2, _f8_3, _f8_3, _f8_4, _f8_3, types.int64)


@njit(**_JIT, inline="always")
def _all_finite(values):
    """True if no entry of the 1-D array ``values`` is NaN or inf (branch-free: vectorises)."""
    finite = True
    for j in range(values.size):
        finite &= math.isfinite(values[j])
    return finite


@njit(**_JIT, inline="always")
def _clip(value, high):
    """``value`` clipped into [0, high] (as np.maximum then np.minimum)."""
    return min(max(value, 0.0), high)


@njit(types.boolean(_f8_2), **_JIT)
def clip_actions(actions):
    """Clip raw actions (n, A) into [-1, 1] in place; False if an entry is NaN or inf (then raise)."""
    flat = actions.ravel()
    finite = True
    for j in range(flat.size):
        value = flat[j]
        finite &= math.isfinite(value)
        flat[j] = min(max(value, -1.0), 1.0)
    return finite


@njit(**_JIT, inline="always")
def _decode_row(actions, start, i, half_max_draft, length_entries, out):
    """Finite raw action ``actions[start:start + A]`` (flat) to draft lengths L_k (tokens) and shares b_k in
    ``out`` rows R_DRAFT_LENGTHS and R_BANDWIDTH of system i, as MultiSpinCore.decode.

    L = rint((x + 1) L_max / 2) per length entry (clipped x); weights w_k = (x + 1) / 2 of drafting users;
    all-zero weights fall back to equal weights of the drafting users; b_k = w_k / sum_j w_j; L_k = 0 where
    w_k = 0.
    """
    num_users = out.shape[2]
    stride = 1 if length_entries > 1 else 0  # homogeneous: every user reads entry 0
    total = 0.0
    for k in range(num_users):
        x = min(max(actions[start + k * stride], -1.0), 1.0)
        length = np.rint(x * half_max_draft + half_max_draft)
        weight = min(max(actions[start + length_entries + k], -1.0), 1.0) * 0.5 + 0.5
        weight *= np.float64(length > 0.0)  # users with L_k = 0 get no bandwidth
        out[R_DRAFT_LENGTHS, i, k] = length
        out[R_BANDWIDTH, i, k] = weight
        total += weight
    if total == 0.0:  # no drafting user has weight: the drafting users share the band equally
        for k in range(num_users):
            out[R_BANDWIDTH, i, k] = np.float64(out[R_DRAFT_LENGTHS, i, k] > 0.0)
            total += out[R_BANDWIDTH, i, k]
        if total == 0.0:
            total = 1.0
    for k in range(num_users):
        # a drafting user without bandwidth cannot upload
        out[R_DRAFT_LENGTHS, i, k] *= np.float64(out[R_BANDWIDTH, i, k] > 0.0)
        out[R_BANDWIDTH, i, k] /= total


@njit(types.boolean(_f8_2, types.float64, types.int64, _f8_3), **_JIT)
def decode(actions, half_max_draft, length_entries, out):
    """Decode actions (n, A) into ``out[R_DRAFT_LENGTHS]`` = L_k and ``out[R_BANDWIDTH]`` = b_k (n, K);
    clips first. False (nothing written) if an entry is NaN or inf.
    """
    flat = actions.ravel()
    if not _all_finite(flat):
        return False
    for i in range(actions.shape[0]):
        _decode_row(flat, i * actions.shape[1], i, half_max_draft, length_entries, out)
    return True


@njit(types.void(_f8_3, _f8_3, _c16_3, types.int64, _constants, _c16_2), **_JIT)
def update_channel(population, channel, gains, newest, constants, noise):
    """True channel of the round about to be played and its observed estimate (model.md section 4).

    Writes ``channel``: ln(1 + SNR |h|^2) = e ln 2 (floored) and the upload time c_k = D / (W e_k) (s/token)
    of the current gain ``gains[newest]`` (the population's mean channel, |h|^2 = 1, without fading), and
    ln(1 + SNR |h_hat|^2) of the observed estimate h_hat: the oldest gain of the ring (the CSI delay) plus
    ``noise`` (CN(0, std^2) estimation error (n, K); an empty array for none).
    """
    c = constants[0]
    min_nats = c.min_nats
    upload_numerator = c.upload_numerator
    n, num_users = channel.shape[1], channel.shape[2]
    if c.fading:
        for i in range(n):
            for k in range(num_users):
                h = gains[newest, i, k]
                nats = max(_scipy_log1p(population[P_SNR, i, k] * (h.real * h.real + h.imag * h.imag), 0), min_nats)
                channel[H_NATS, i, k] = nats
                channel[H_UPLOAD_TIME, i, k] = upload_numerator / nats
    else:  # |h|^2 = 1: the population's mean channel
        for i in range(n):
            for k in range(num_users):
                channel[H_NATS, i, k] = population[P_MEAN_NATS, i, k]
                channel[H_UPLOAD_TIME, i, k] = population[P_MEAN_UPLOAD_TIME, i, k]
    if c.observed_is_true:
        for i in range(n):
            for k in range(num_users):
                channel[H_OBSERVED_NATS, i, k] = channel[H_NATS, i, k]
        return
    delayed = (newest + 1) % gains.shape[0] if c.fading else newest  # the oldest slot of the ring
    noisy = noise.size > 0
    for i in range(n):
        for k in range(num_users):
            h = gains[delayed, i, k]
            if noisy:
                h = h + noise[i, k]
            power = h.real * h.real + h.imag * h.imag
            channel[H_OBSERVED_NATS, i, k] = max(_scipy_log1p(population[P_SNR, i, k] * power, 0), min_nats)


@njit(types.void(types.int64[::1], _f8_3, types.boolean, _f8_1, _c16_3, _f8_3), **_JIT)
def reset_rows(rows, normals, fading, clock, gains, counts):
    """Restart systems ``rows``: clock 0, counts 0, every slot of the gain ring h = (z1 + i z2) / sqrt 2 from
    ``normals`` (2, len(rows), K) (Rayleigh, as channel.rayleigh_gains) or h = 1 without fading."""
    num_users = gains.shape[2]
    for j in range(rows.size):
        i = rows[j]
        clock[i] = 0.0
        for k in range(num_users):
            h = complex(normals[0, j, k] * _SQRT_HALF, normals[1, j, k] * _SQRT_HALF) if fading else 1.0 + 0.0j
            for slot in range(gains.shape[0]):
                gains[slot, i, k] = h
            for row in range(counts.shape[0]):
                counts[row, i, k] = 0.0


@njit(
    types.void(
        _f8_2, _f8_2, *_state, *_draws, types.int64[::1], _f8_3, _constants, types.boolean, _f8_3, _f8_2,
        types.boolean[::1],
    ),
    **_JIT,
)
def play_round(
    draft_lengths, bandwidth, population, counts, channel, gains, newest, clock,
    hazard, cumulative_hazard, exponential, normals, jitter, block, restarts, restart_normals, constants,
    channel_update, rounds, per_env, truncated,
):  # fmt: skip
    """One round of every system with decoded lengths L_k (tokens) and shares b_k (n, K), as MultiSpinCore.step.

    - eq. (1) sync time tau = max_k (L_k t_k + L_k c_k / b_k) (s), t_k times the factor ``jitter[block]``
      = exp(sigma z - sigma^2 / 2) when sigma > 0; eq. (2) T_ver = T0 + kappa sum_k (L_k + 1); eq. (3)
      T = tau + T_ver + T_dl;
    - eq. (4) accepted prefix A_k = min(L_k, floor(E / -ln a_k)) from E = ``exponential[block]`` (or the count
      of positions whose cumulative hazard is <= E, positional process), tokens n_k = A_k + 1;
      reward = reward_scale sum_k n_k;
    - discounted counts S = lambda S + A, F = lambda F + [A < L]; last lengths/tokens; clock += T;
      truncated = clock >= horizon;
    - fading (model.md section 4): h' = rho h + sqrt(1 - rho^2) w, rho = J0(2 pi f_D T), w = (z1 + i z2) / sqrt 2
      from ``normals[block]``, written into the next slot of the ring ``gains`` (the caller advances ``newest``);
    - then :func:`reset_rows` of the systems ``restarts`` with ``restart_normals`` (for a process that does not
      evolve, no population resampling and no CSI noise: no other draw comes between; else empty arrays and
      the caller restarts them);
    - ``channel_update``: then :func:`update_channel` without estimation noise.

    Outputs: ``rounds`` (>= 4, n, K) rows R_ACCEPTED and R_TOKENS (the other rows untouched); ``per_env``
    (5, n) rows E_SYNC_TIME, E_VERIFY_TIME, E_LATENCY (s), E_REWARD, E_CLOCK (s); ``truncated`` (n,).
    """
    c = constants[0]
    jittered = c.jitter > 0.0
    forgetting = c.forgetting
    reward_scale = c.reward_scale
    positional = c.positional
    fading = c.fading
    n, num_users = draft_lengths.shape
    following = (newest + 1) % gains.shape[0]
    for i in range(n):
        sync = 0.0
        length_sum = 0.0
        for k in range(num_users):
            length = draft_lengths[i, k]
            draft_time = population[P_DRAFT_TIME, i, k]
            if jittered:  # model.md section 5.3: times a mean-one log-normal factor
                draft_time = draft_time * jitter[block, i, k]
            finish = (length * channel[H_UPLOAD_TIME, i, k]) / max(bandwidth[i, k], _TINY_SHARE)
            finish += length * draft_time
            sync = max(sync, finish)  # eq. (1)
            length_sum += length
        verify = (length_sum + c.batch_tokens) * c.verify_per_token + c.verify_base  # eq. (2)
        latency = sync + verify + c.downlink_time  # eq. (3)
        token_sum = 0.0
        for k in range(num_users):
            length = draft_lengths[i, k]
            draw = exponential[block, i, k]
            if positional:
                accepted = 0.0
                for position in range(cumulative_hazard.shape[2]):
                    accepted += np.float64(cumulative_hazard[i, k, position] <= draw)
            else:
                accepted = np.floor(draw / hazard[i, k])
            accepted = min(accepted, length)  # eq. (4)
            tokens = accepted + 1.0
            token_sum += tokens
            counts[C_SUCCESSES, i, k] = counts[C_SUCCESSES, i, k] * forgetting + accepted
            counts[C_FAILURES, i, k] = counts[C_FAILURES, i, k] * forgetting + np.float64(accepted < length)
            counts[C_LAST_DRAFT_LENGTHS, i, k] = length
            counts[C_LAST_TOKENS, i, k] = tokens
            rounds[R_ACCEPTED, i, k] = accepted
            rounds[R_TOKENS, i, k] = tokens
        clock[i] += latency
        truncated[i] = clock[i] >= c.horizon
        per_env[E_SYNC_TIME, i] = sync
        per_env[E_VERIFY_TIME, i] = verify
        per_env[E_LATENCY, i] = latency
        per_env[E_REWARD, i] = token_sum * reward_scale
        per_env[E_CLOCK, i] = clock[i]
        if fading:  # Gauss-Markov step over the round's duration (model.md section 4)
            rho = _scipy_j0(c.two_pi_doppler * latency, 0)
            spread = math.sqrt(max(1.0 - rho * rho, 0.0))
            for k in range(num_users):
                h = gains[newest, i, k]
                real = rho * h.real + spread * (normals[block, 0, i, k] * _SQRT_HALF)
                imag = rho * h.imag + spread * (normals[block, 1, i, k] * _SQRT_HALF)
                gains[following, i, k] = complex(real, imag)
    newest = following if fading else newest
    if restarts.size:
        reset_rows(restarts, restart_normals, fading != 0, clock, gains, counts)
    if channel_update:
        update_channel(population, channel, gains, newest, constants, np.empty((0, 0), dtype=np.complex128))


@njit(types.void(_f8_3, _f8_3, _f8_3, _f8_1, _constants, _f8_2, types.float32[:, ::1]), **_JIT)
def observe(population, counts, channel, clock, constants, observation_scale, out):
    """float32 observations (n, 5K + 1) as MultiSpinCore.observation: each raw field times its scale
    ``observation_scale[0]``, clipped into [0, ``observation_scale[1]``].

    Fields (K entries each, then one): observed ln(1 + SNR |h|^2), nominal t_k (s/token),
    a_hat = (S + w0 a0) / (S + F + w0), last L_k, last n_k; horizon - clock (s).
    """
    c = constants[0]
    prior_tokens = c.prior_tokens
    prior_rest = c.prior_rest
    n = clock.size
    num_users = population.shape[2]
    scale = observation_scale[0]
    high = observation_scale[1]
    for i in range(n):
        for k in range(num_users):
            out[i, k] = _clip(channel[H_OBSERVED_NATS, i, k] * scale[k], high[k])
        for k in range(num_users):
            j = num_users + k
            out[i, j] = _clip(population[P_DRAFT_TIME, i, k] * scale[j], high[j])
        for k in range(num_users):
            j = 2 * num_users + k
            numerator = counts[C_SUCCESSES, i, k] + prior_tokens
            denominator = numerator + counts[C_FAILURES, i, k]
            denominator += prior_rest
            out[i, j] = _clip(numerator / denominator * scale[j], high[j])
        for k in range(num_users):
            j = 3 * num_users + k
            out[i, j] = _clip(counts[C_LAST_DRAFT_LENGTHS, i, k] * scale[j], high[j])
        for k in range(num_users):
            j = 4 * num_users + k
            out[i, j] = _clip(counts[C_LAST_TOKENS, i, k] * scale[j], high[j])
        j = 5 * num_users
        out[i, j] = _clip((c.horizon - clock[i]) * scale[j], high[j])


@njit(
    types.int64(
        _f8_1, *_state, *_draws, _constants, types.boolean, _f8_2, _f8_3, _f8_2, types.boolean[::1],
        types.int64[:, :, ::1], types.float32[:, ::1],
    ),
    **_JIT,
)
def step_action(
    action, population, counts, channel, gains, newest, clock,
    hazard, cumulative_hazard, exponential, normals, jitter, block, constants,
    finish, observation_scale, rounds, per_env, truncated, info, out,
):  # fmt: skip
    """The single env's step: one raw action (A,) of a batch of one system, decoded and played in one call.

    Returns -1 (nothing changed) if the action has a NaN or inf entry, else the number of truncated systems.
    Clips and decodes as :func:`decode` into ``rounds`` rows R_DRAFT_LENGTHS and R_BANDWIDTH, plays the round
    (:func:`play_round`) and, when ``finish`` (no CSI estimation noise), updates the channel, writes the
    next round's true spectral efficiency e_k (bit/s/Hz) into row R_SPECTRAL_EFFICIENCY and the observation
    into ``out`` (1, 5K + 1). ``info`` (3, 1, K) gets tokens n_k, accepted A_k and lengths L_k as int64.
    """
    if not _all_finite(action):
        return -1
    c = constants[0]
    _decode_row(action, 0, 0, c.half_max_draft, c.length_entries, rounds)
    play_round(
        rounds[R_DRAFT_LENGTHS], rounds[R_BANDWIDTH], population, counts, channel, gains, newest, clock,
        hazard, cumulative_hazard, exponential, normals, jitter, block, np.empty(0, dtype=np.int64),
        np.empty((2, 0, 0)), constants, finish, rounds, per_env, truncated,
    )  # fmt: skip
    num_users = rounds.shape[2]
    for k in range(num_users):
        info[0, 0, k] = np.int64(rounds[R_TOKENS, 0, k])
        info[1, 0, k] = np.int64(rounds[R_ACCEPTED, 0, k])
        info[2, 0, k] = np.int64(rounds[R_DRAFT_LENGTHS, 0, k])
    if finish:
        for k in range(num_users):
            rounds[R_SPECTRAL_EFFICIENCY, 0, k] = channel[H_NATS, 0, k] * c.inverse_ln2
        observe(population, counts, channel, clock, constants, observation_scale, out)
    return np.int64(truncated[0])


@njit(types.void(_f8_2, _f8_2, _f8_2, _f8_3, _f8_1, _f8_2, _constants, types.int64[:, :, ::1], _f8_3, _f8_1),
      **_JIT)
def round_info(tokens, accepted, draft_lengths, channel, clock, rate, constants, ints, floats, clock_out):
    """The vector env's per-round info arrays, new: ``ints`` (3, n, K) = n_k, A_k, L_k as int64; ``floats``
    (2, n, K) = the acceptance process's current rates a_k and the true spectral efficiency e_k (bit/s/Hz)
    of the next round; ``clock_out`` (n,) = clock (s)."""
    inverse_ln2 = constants[0].inverse_ln2
    n, num_users = tokens.shape
    for i in range(n):
        clock_out[i] = clock[i]
        for k in range(num_users):
            ints[0, i, k] = np.int64(tokens[i, k])
            ints[1, i, k] = np.int64(accepted[i, k])
            ints[2, i, k] = np.int64(draft_lengths[i, k])
            floats[0, i, k] = rate[i, k]
            floats[1, i, k] = channel[H_NATS, i, k] * inverse_ln2


@njit(types.void(_generator, _f8_1), **_JIT)
def standard_normal(rng, out):
    """Fill ``out`` with N(0, 1) variates of the numpy Generator ``rng``: the same values, in the same order,
    leaving ``rng`` in the same state as ``rng.standard_normal(out.size)`` (numba runs numpy's ziggurat
    on the same bit generator), about twice as fast."""
    for j in range(out.size):
        out[j] = rng.standard_normal()
