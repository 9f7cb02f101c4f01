"""The compiled round: one Multi-SPIN round of a batch of systems (docs/model.md sections 2, 4, 5) as numba kernels.

These kernels are the simulator; :class:`~multispin_env.core.MultiSpinCore` owns the state and calls them. They
compute no formula of their own: eq. (1)-(3) come from :mod:`multispin_env.model`, the channel (spectral
efficiency, upload time, Gauss-Markov step, Jakes correlation) from :mod:`multispin_env.channel`, the accepted
prefix and the acceptance estimate from :mod:`multispin_env.acceptance` -- numba ufuncs and jitted functions
that numpy (the solvers) calls on arrays and the kernels call here on scalars. The kernels only loop, gather
and store. They exist because a round is ~60 numpy calls on (1, K) arrays, each costing about a microsecond
whatever its size, while one kernel call costs about as much as one numpy call.

Conventions: a batch of n systems of K users. The state is packed into C-contiguous float64 arrays
(rows, n, K) whose rows are named in :mod:`multispin_env.layout`; the complex gains h are a ring buffer
(csi_delay + 1, n, K) of the current and past rounds. The functions take these arrays grouped in the records of
:mod:`multispin_env.layout` (numba namedtuples): ``state`` (:class:`~multispin_env.layout.SystemState`),
``blocks`` (:class:`~multispin_env.layout.RandomBlocks`), ``fixed``
(:class:`~multispin_env.layout.RoundConstants`), ``restarts`` (:class:`~multispin_env.layout.Restarts`) and
``out`` (:class:`~multispin_env.layout.RoundBuffers`); docs/model.md section 8.5. Randomness comes only from the env's numpy Generator,
drawn by the core in blocks (Exp(1) for the accepted prefixes, N(0, 1) pairs for the fading, log-normal
drafting-time factors); the round reads its variates at the blocks' ``next_round`` and advances it.

Every function the core calls is compiled with explicit signatures when this module is first imported (about
10 s, docs/speed.md; :func:`play_round` and the small helpers are inlined into their callers), or loaded from
the package's numba cache (:mod:`multispin_env._numba`), which follows every source they depend on. The
core calls them through :data:`COMPILED`, their machine code without numba's dispatch (see
:func:`multispin_env._numba.compiled`): numba types a namedtuple argument in Python, about 1 us a record per
call, which would cost the single env's step a third of its time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numba import from_dtype, njit, types

from multispin_env._numba import JIT, compiled, jit_cache
from multispin_env.acceptance import acceptance_estimate, accepted_prefix
from multispin_env.channel import complex_gain, efficiency, fading_correlation, gauss_markov_step, upload_time_per_token
from multispin_env.layout import (
    C_ENERGY_SPENT,
    C_EPISODE_TOKENS,
    C_FAILURES,
    C_LAST_DRAFT_LENGTHS,
    C_LAST_TOKENS,
    C_SUCCESSES,
    CONSTANTS,
    E_CLOCK,
    E_LATENCY,
    E_REWARD,
    E_SYNC_TIME,
    E_VERIFY_TIME,
    H_EFFICIENCY,
    H_OBSERVED_EFFICIENCY,
    H_UPLOAD_TIME,
    I_ACCEPTED,
    I_DRAFT_LENGTHS,
    I_TOKENS,
    P_DRAFT_POWER,
    P_DRAFT_TIME,
    P_MEAN_EFFICIENCY,
    P_MEAN_UPLOAD_TIME,
    P_SNR,
    Q_ACTIVE,
    Q_DUE,
    Q_REMAINING,
    R_ACCEPTED,
    R_BANDWIDTH,
    R_DRAFT_LENGTHS,
    R_DROPPED,
    R_ENERGY,
    R_TOKENS,
    ObservationOffsets,
    RandomBlocks,
    Restarts,
    RoundBuffers,
    RoundConstants,
    SystemState,
)
from multispin_env.model import (
    device_energy,
    finish_time,
    latency,
    remaining_energy,
    request_slack,
    running_throughput,
    upload_end,
    verification_time,
)

__all__ = [
    "COMPILED",
    "Compiled",
    "decode",
    "play_round",
    "step",
    "update_channel",
    "observe",
    "reset_rows",
    "standard_exponential",
    "standard_normal",
]


# Argument types (fixed dtypes and C layouts: one compiled signature per kernel).
_f8_1 = types.float64[::1]
_f8_2 = types.float64[:, ::1]
_f8_3 = types.float64[:, :, ::1]
_f8_4 = types.float64[:, :, :, ::1]
_c16_2 = types.complex128[:, ::1]
_c16_3 = types.complex128[:, :, ::1]
_i8_1 = types.int64[::1]


def _record(cls: Any, **fields: types.Type) -> types.Type:
    """The numba type of a record of :mod:`multispin_env.layout` with these field types, in the class's order
    (what ``numba.typeof`` gives an instance; KeyError if a field is missing)."""
    return types.BaseTuple.from_types([fields[name] for name in cls._fields], cls)


_state = _record(
    SystemState,
    population=_f8_3,
    counts=_f8_3,
    channel=_f8_3,
    gains=_c16_3,
    newest=_i8_1,
    clock=_f8_1,
    requests=_f8_3,
    cumulative_hazard=_f8_3,
)
_blocks = _record(RandomBlocks, exponential=_f8_3, normals=_f8_4, jitter=_f8_3, next_round=_i8_1)
_restarts = _record(Restarts, rows=_i8_1, normals=_f8_3)
_fixed = _record(
    RoundConstants,
    constants=types.Array(from_dtype(CONSTANTS), 1, "C"),
    verify_tokens=_f8_1,
    verify_seconds=_f8_1,
    observation_scale=_f8_2,
    observation_offsets=_record(ObservationOffsets, **dict.fromkeys(ObservationOffsets._fields, types.int64)),
)
_buffers = _record(
    RoundBuffers,
    rounds=_f8_3,
    per_env=_f8_2,
    truncated=types.boolean[::1],
    counts=types.int64[:, :, ::1],
    observation=types.float32[:, ::1],
)
_generator = types.NumPyRandomGeneratorType("NumPyRandomGeneratorType")

with jit_cache():

    @njit(**JIT, inline="always")
    def _all_finite(values):
        """True if no entry of the 1-D array ``values`` is NaN or inf (branch-free: vectorises)."""
        finite = True
        for j in range(values.size):
            finite &= math.isfinite(values[j])
        return finite

    @njit(**JIT, inline="always")
    def _clip(value, high):
        """``value`` clipped into [0, high]."""
        return min(max(value, 0.0), high)

    @njit(**JIT, inline="always")
    def _decode_row(actions, start, i, half_max_draft, length_entries, out):
        """Finite raw action ``actions[start:start + A]`` (flat) to draft lengths L_k (tokens) and shares b_k in
        ``out`` rows R_DRAFT_LENGTHS and R_BANDWIDTH of system i (docs/model.md section 8.1).

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

    @njit(**JIT, inline="always")
    def _band_to_kept(bandwidth, i, total, kept_sum):
        """After users of system i were taken out of the round (their shares set to 0), the kept users' shares
        (summing to ``kept_sum``) rescaled to sum to ``total``, what all summed to before: a taken-out user's band
        goes to the others in proportion to their shares (none kept: every share 0)."""
        factor = total / kept_sum if kept_sum > 0.0 else 0.0
        for k in range(bandwidth.shape[1]):
            bandwidth[i, k] *= factor

    @njit(**JIT, inline="always")
    def _drafting_time(population, jitter, i, k):
        """User k of system i's draft time this round, s/token: its nominal t_k times its log-normal jitter factor
        (section 5.3; ``jitter`` is (0, 0) without jitter)."""
        draft_time = population[P_DRAFT_TIME, i, k]
        return draft_time * jitter[i, k] if jitter.size else draft_time

    @njit(**JIT, inline="always")
    def _user_upload(length, draft_time, upload_time, share, deadline, draft_power, transmit_power):
        """(finish s, upload end s, device energy J) of a user's round: eq. (1), eq. (1') and section 5.7."""
        finish = finish_time(length, draft_time, upload_time, share)
        stop = upload_end(finish, deadline)
        return finish, stop, device_energy(length, draft_time, stop, draft_power, transmit_power)

    @njit(**JIT, inline="always")
    def _idle_users_out(draft_lengths, bandwidth, requests, i):
        """Arrivals (docs/model.md section 5.8): users of system i without a request draft nothing (L_k = 0) and
        get no band; the active users' shares b_k are rescaled to sum to what they summed to before plus the
        idle users' (1 after decoding), so the idle users' band goes to the active ones in proportion."""
        num_users = draft_lengths.shape[1]
        active_sum = 0.0
        total = 0.0
        for k in range(num_users):
            total += bandwidth[i, k]
            active_sum += bandwidth[i, k] * requests[Q_ACTIVE, i, k]
        for k in range(num_users):
            live = requests[Q_ACTIVE, i, k]
            draft_lengths[i, k] *= live
            bandwidth[i, k] *= live
        _band_to_kept(bandwidth, i, total, active_sum)

    @njit(**JIT, inline="always")
    def _drained_users_out(draft_lengths, bandwidth, population, channel, counts, jitter, c, i):
        """Energy budget (docs/model.md section 5.7, eq. (5.7a)): a user of system i whose round, played with the
        decoded lengths and shares, would cost more device energy E_k than its remaining budget B_k
        (``remaining_energy``) drafts nothing (L_k = 0, no band); the band goes to the other drafting users
        (:func:`_band_to_kept`). Their uploads end no later, so their energy does not grow: they can still pay."""
        num_users = draft_lengths.shape[1]
        total = 0.0
        kept_sum = 0.0
        any_drained = False
        for k in range(num_users):
            length = draft_lengths[i, k]
            total += bandwidth[i, k]
            if length > 0.0:
                _, _, energy = _user_upload(
                    length,
                    _drafting_time(population, jitter, i, k),
                    channel[H_UPLOAD_TIME, i, k],
                    bandwidth[i, k],
                    c.upload_deadline,
                    population[P_DRAFT_POWER, i, k],
                    c.transmit_power_w,
                )
                if energy > remaining_energy(c.energy_budget, counts[C_ENERGY_SPENT, i, k]):
                    draft_lengths[i, k] = 0.0
                    bandwidth[i, k] = 0.0
                    any_drained = True
            kept_sum += bandwidth[i, k]
        if any_drained:  # else every share stays as it is (total / kept_sum need not be exactly 1)
            _band_to_kept(bandwidth, i, total, kept_sum)

    @njit(types.boolean(_f8_2, _fixed, _f8_3), **JIT)
    def decode(actions, fixed, rounds):
        """Decode actions (n, A) into ``rounds[R_DRAFT_LENGTHS]`` = L_k and ``rounds[R_BANDWIDTH]`` = b_k (n, K);
        clips first. False (nothing written) if an entry is NaN or inf.
        """
        c = fixed.constants[0]
        flat = actions.ravel()
        if not _all_finite(flat):
            return False
        for i in range(actions.shape[0]):
            _decode_row(flat, i * actions.shape[1], i, c.max_draft * 0.5, c.length_entries, rounds)
        return True

    @njit(types.void(_state, _fixed, _c16_2), **JIT)
    def update_channel(state, fixed, noise):
        """True channel of the round about to be played and its observed estimate (docs/model.md section 4).

        Writes ``state.channel``: e_k = log2(1 + SNR |h|^2) (floored) and c_k = D / (W e_k) (s/token) of the
        current gain ``gains[newest]`` (the population's mean channel, |h|^2 = 1, without fading), and e_k of the
        observed estimate h_hat: the oldest gain of the ring (the CSI delay) plus ``noise`` (CN(0, std^2)
        estimation error (n, K); an empty array for none).
        """
        c = fixed.constants[0]
        population, channel, gains, newest = state.population, state.channel, state.gains, state.newest[0]
        n, num_users = channel.shape[1], channel.shape[2]
        payload_bits, bandwidth_hz = c.payload_bits, c.bandwidth_hz
        if c.fading:
            for i in range(n):
                for k in range(num_users):
                    h = gains[newest, i, k]
                    e = efficiency(population[P_SNR, i, k], h.real * h.real + h.imag * h.imag)
                    channel[H_EFFICIENCY, i, k] = e
                    channel[H_UPLOAD_TIME, i, k] = upload_time_per_token(payload_bits, bandwidth_hz, e)
        else:  # |h|^2 = 1: the population's mean channel
            for i in range(n):
                for k in range(num_users):
                    channel[H_EFFICIENCY, i, k] = population[P_MEAN_EFFICIENCY, i, k]
                    channel[H_UPLOAD_TIME, i, k] = population[P_MEAN_UPLOAD_TIME, i, k]
        if c.observed_is_true:
            for i in range(n):
                for k in range(num_users):
                    channel[H_OBSERVED_EFFICIENCY, i, k] = channel[H_EFFICIENCY, i, k]
            return
        delayed = (newest + 1) % gains.shape[0] if c.fading else newest  # the oldest slot of the ring
        noisy = noise.size > 0
        for i in range(n):
            for k in range(num_users):
                h = gains[delayed, i, k]
                if noisy:
                    h = h + noise[i, k]
                power = h.real * h.real + h.imag * h.imag
                channel[H_OBSERVED_EFFICIENCY, i, k] = efficiency(population[P_SNR, i, k], power)

    @njit(types.void(_state, _fixed, _restarts), **JIT)
    def reset_rows(state, fixed, restarts):
        """Restart the systems ``restarts.rows``: clock 0, counts 0, every slot of the gain ring h = the fading
        model's start gain: mu + sigma CN(0, 1) from the N(0, 1) pairs ``restarts.normals`` (2, len(rows), K)
        (``complex_gain``, as ``JakesFading.initial_gains``), or 1 without fading (``NoFading``)."""
        c = fixed.constants[0]
        fading, mu, sigma = c.fading != 0, c.fading_line_of_sight, c.fading_scatter
        rows, normals = restarts.rows, restarts.normals
        clock, gains, counts = state.clock, state.gains, state.counts
        num_users = gains.shape[2]
        for j in range(rows.size):
            i = rows[j]
            clock[i] = 0.0
            for k in range(num_users):
                h = mu + sigma * complex_gain(normals[0, j, k], normals[1, j, k]) if fading else 1.0 + 0.0j
                for slot in range(gains.shape[0]):
                    gains[slot, i, k] = h
                for row in range(counts.shape[0]):
                    counts[row, i, k] = 0.0

    # Inlined into step, its one caller: compiled on its own it would get a Python entry wrapper for its five
    # records and its machine code would be optimised and generated twice (alone, then again inside step).
    @njit(**JIT, inline="always")
    def play_round(state, blocks, fixed, restarts, out, channel_update):
        """One round of every system with the decoded lengths L_k (tokens) and shares b_k (n, K) in
        ``out.rounds`` rows R_DRAFT_LENGTHS and R_BANDWIDTH, and the variates at ``blocks.next_round``.

        - upload ends u_k = finish_time(L_k, t_k, c_k, b_k) (eq. 1), t_k times the factor ``blocks.jitter``
          = exp(sigma z - sigma^2 / 2) when sigma > 0 (section 5.3); users with u_k > deadline are dropped
          (eq. 1'): A_k = 0, one token, counted in the batch as L_k = 0; tau = the deadline if anyone was
          dropped, else max_k u_k; T_ver (eq. 2') of the batch's N = sum_k (L_k + 1) tokens over the profile
          ``fixed.verify_tokens``/``fixed.verify_seconds``; T = tau + T_ver + T_dl (eq. 3);
        - accepted prefixes A_k from E = ``blocks.exponential`` and the process's ``state.cumulative_hazard``
          (section 5.1), tokens n_k = A_k + 1 (eq. 4); energy E_k (section 5.7), added to the episode's energy
          and the tokens to its tokens (``state.counts`` rows C_ENERGY_SPENT, C_EPISODE_TOKENS);
        - energy budget (constant ``energy_budget`` finite, section 5.7, eq. (5.7a)): first, a user whose round
          would cost more than its remaining budget drafts nothing (:func:`_drained_users_out`);
          reward = reward_scale (sum_k n_k - energy_weight sum_k E_k);
        - discounted counts S = lambda S + A, F = lambda F + [A < L] of the users not dropped (section 5.4);
          last lengths/tokens; clock += T; truncated = clock >= horizon;
        - fading (section 4): h' = rho h + sqrt(1 - rho^2) w, rho = J0(2 pi f_D T), w = (z1 + i z2) / sqrt 2
          from ``blocks.normals``, written into the next slot of the ring ``state.gains``, which becomes the
          newest (``state.newest``);
        - arrivals (constant ``arrivals``, section 5.8): a user whose ``state.requests`` row Q_ACTIVE is 0 is
          idle: L_k = 0, no band (the active users' shares rescaled), no token in the batch, n_k = 0, counts
          untouched; an active user's n_k is capped at its request's remaining tokens Q_REMAINING (the surplus is
          not counted);
        - ``blocks.next_round`` advances by one;
        - then :func:`reset_rows` of ``restarts`` (when no other draw comes between; else empty and the caller
          restarts them); their round is zeroed (every row of ``out.rounds``, ``out.per_env`` but the clock) and
          not truncated, as they ignored the action;
        - ``channel_update``: then :func:`update_channel` without estimation noise.

        Outputs: ``out.rounds`` (ROUND_ROWS, n, K) rows R_ACCEPTED, R_TOKENS, R_DROPPED, R_ENERGY (the others
        untouched); ``out.per_env`` (ENV_ROWS, n) rows E_SYNC_TIME, E_VERIFY_TIME, E_LATENCY (s), E_REWARD,
        E_CLOCK (s); ``out.truncated`` (n,).
        """
        c = fixed.constants[0]
        population, counts, channel, gains = state.population, state.counts, state.channel, state.gains
        clock, requests, cumulative_hazard = state.clock, state.requests, state.cumulative_hazard
        rounds, per_env, truncated = out.rounds, out.per_env, out.truncated
        draft_lengths, bandwidth = rounds[R_DRAFT_LENGTHS], rounds[R_BANDWIDTH]
        block = blocks.next_round[0]
        exponential, normals, jitter = blocks.exponential[block], blocks.normals[block], blocks.jitter[block]
        deadline = c.upload_deadline
        forgetting = c.acceptance_forgetting
        arrivals = c.arrivals != 0
        n, num_users = draft_lengths.shape
        newest = state.newest[0]
        following = (newest + 1) % gains.shape[0]
        budgeted = c.energy_budget < math.inf
        for i in range(n):
            if arrivals:
                _idle_users_out(draft_lengths, bandwidth, requests, i)
            if budgeted:
                _drained_users_out(draft_lengths, bandwidth, population, channel, counts, jitter, c, i)
            sync = 0.0
            batch_tokens = 0.0
            any_dropped = False
            for k in range(num_users):
                length = draft_lengths[i, k]
                finish, _, energy = _user_upload(
                    length,
                    _drafting_time(population, jitter, i, k),
                    channel[H_UPLOAD_TIME, i, k],
                    bandwidth[i, k],
                    deadline,
                    population[P_DRAFT_POWER, i, k],
                    c.transmit_power_w,
                )
                dropped = finish > deadline
                any_dropped |= dropped
                rounds[R_DROPPED, i, k] = np.float64(dropped)
                rounds[R_ENERGY, i, k] = energy
                if not dropped:
                    sync = max(sync, finish)
                    batch_tokens += length
                batch_tokens += requests[Q_ACTIVE, i, k] if arrivals else 1.0  # the target's token
            if any_dropped:
                sync = deadline
            verify = verification_time(batch_tokens, fixed.verify_tokens, fixed.verify_seconds)
            round_latency = latency(sync, verify, c.downlink_time)
            token_sum = 0.0
            energy_sum = 0.0
            for k in range(num_users):
                length = draft_lengths[i, k]
                kept = rounds[R_DROPPED, i, k] == 0.0
                accepted = accepted_prefix(cumulative_hazard, i, k, length, exponential[i, k]) if kept else 0.0
                tokens = accepted + 1.0
                factor = forgetting
                if arrivals:  # idle: nothing; active: up to the request's end
                    live = requests[Q_ACTIVE, i, k]
                    tokens = min(tokens, requests[Q_REMAINING, i, k]) * live
                    factor = forgetting if live > 0.0 else 1.0  # an idle user's counts stay as they were
                token_sum += tokens
                energy_sum += rounds[R_ENERGY, i, k]
                observed = length if kept else 0.0  # a dropped draft was never verified: no evidence
                counts[C_SUCCESSES, i, k] = counts[C_SUCCESSES, i, k] * factor + accepted
                counts[C_FAILURES, i, k] = counts[C_FAILURES, i, k] * factor + np.float64(accepted < observed)
                counts[C_LAST_DRAFT_LENGTHS, i, k] = length
                counts[C_LAST_TOKENS, i, k] = tokens
                counts[C_ENERGY_SPENT, i, k] += rounds[R_ENERGY, i, k]
                counts[C_EPISODE_TOKENS, i, k] += tokens
                rounds[R_ACCEPTED, i, k] = accepted
                rounds[R_TOKENS, i, k] = tokens
            clock[i] += round_latency
            truncated[i] = clock[i] >= c.horizon
            per_env[E_SYNC_TIME, i] = sync
            per_env[E_VERIFY_TIME, i] = verify
            per_env[E_LATENCY, i] = round_latency
            per_env[E_REWARD, i] = (token_sum - c.energy_weight * energy_sum) * c.reward_scale
            per_env[E_CLOCK, i] = clock[i]
            if c.fading:
                rho = fading_correlation(c.doppler_hz, round_latency)
                mu, sigma = c.fading_line_of_sight, c.fading_scatter  # h - mu is the Gauss-Markov part (5.2a)
                for k in range(num_users):
                    innovation = sigma * complex_gain(normals[0, i, k], normals[1, i, k])
                    gains[following, i, k] = mu + gauss_markov_step(gains[newest, i, k] - mu, rho, innovation)
        if c.fading:
            state.newest[0] = following
        blocks.next_round[0] = block + 1
        rows = restarts.rows
        if rows.size:
            reset_rows(state, fixed, restarts)
            for j in range(rows.size):  # they ignored the action: no round, no reward, not truncated
                i = rows[j]
                for row in range(rounds.shape[0]):
                    for k in range(num_users):
                        rounds[row, i, k] = 0.0
                for row in range(E_CLOCK):
                    per_env[row, i] = 0.0
                truncated[i] = False
        if channel_update:  # no estimation noise: an empty (0, K) view (np.empty would compile numpy's allocator)
            update_channel(state, fixed, gains[0, :0])

    @njit(**JIT, inline="always")
    def _put(out, i, j, value, scale, high):
        """Observation entry ``j`` of system i: the raw ``value`` times ``scale[j]``, clipped into [0, ``high[j]``]."""
        out[i, j] = _clip(value * scale[j], high[j])

    @njit(types.void(_state, _fixed, types.float32[:, ::1]), **JIT)
    def observe(state, fixed, out):
        """float32 observations (n, S) into ``out``: each raw field times its scale ``fixed.observation_scale[0]``,
        clipped into [0, ``fixed.observation_scale[1]``] (docs/model.md section 5.5), at the offsets of the
        observation layout (``fixed.observation_offsets``).

        Fields (K entries each, then one): observed e_k (bit/s/Hz), nominal t_k (s/token), the acceptance
        estimate a_hat, last L_k, last n_k; horizon - clock (s); with arrivals then the active flag and the
        tokens left in the request (K each, section 5.8); with deadlines then the slack (K, eq. (9d)); with an
        energy budget the remaining budget (J); with ``observe_throughput`` the running throughput (tokens/s,
        section 5.9).
        """
        c = fixed.constants[0]
        at = fixed.observation_offsets
        scale, high = fixed.observation_scale[0], fixed.observation_scale[1]
        population, counts, channel, clock, requests = (
            state.population, state.counts, state.channel, state.clock, state.requests
        )  # fmt: skip
        num_users = population.shape[2]
        for i in range(clock.size):  # field by field: each loop over the users vectorises
            for k in range(num_users):
                _put(out, i, at.spectral_efficiency + k, channel[H_OBSERVED_EFFICIENCY, i, k], scale, high)
            for k in range(num_users):
                _put(out, i, at.draft_time + k, population[P_DRAFT_TIME, i, k], scale, high)
            for k in range(num_users):
                estimate = acceptance_estimate(
                    counts[C_SUCCESSES, i, k], counts[C_FAILURES, i, k], c.acceptance_prior, c.acceptance_prior_weight
                )
                _put(out, i, at.acceptance + k, estimate, scale, high)
            for k in range(num_users):
                _put(out, i, at.last_draft_lengths + k, counts[C_LAST_DRAFT_LENGTHS, i, k], scale, high)
            for k in range(num_users):
                _put(out, i, at.last_tokens + k, counts[C_LAST_TOKENS, i, k], scale, high)
            _put(out, i, at.time_left, c.horizon - clock[i], scale, high)
            if c.arrivals:
                for k in range(num_users):
                    _put(out, i, at.active + k, requests[Q_ACTIVE, i, k], scale, high)
                for k in range(num_users):
                    _put(out, i, at.remaining + k, requests[Q_REMAINING, i, k], scale, high)
            if at.slack >= 0:  # request deadlines (eq. (9d)): the time left to the current request's target
                for k in range(num_users):
                    slack = request_slack(requests[Q_DUE, i, k], clock[i], requests[Q_ACTIVE, i, k])
                    _put(out, i, at.slack + k, slack, scale, high)
            if at.energy_left >= 0:  # the remaining budget (section 5.7), J
                for k in range(num_users):
                    left = remaining_energy(c.energy_budget, counts[C_ENERGY_SPENT, i, k])
                    _put(out, i, at.energy_left + k, left, scale, high)
            if at.throughput >= 0:  # the running throughput x_k (eq. (5.9a)), tokens/s
                for k in range(num_users):
                    rate = running_throughput(counts[C_EPISODE_TOKENS, i, k], clock[i])
                    _put(out, i, at.throughput + k, rate, scale, high)

    @njit(types.int64(_f8_2, _state, _blocks, _fixed, _restarts, _buffers, types.boolean), **JIT)
    def step(actions, state, blocks, fixed, restarts, out, finish):
        """The env's step in one call, for a batch of any size (the single env is a batch of one).

        Raw actions (n, A) are clipped and decoded by :func:`decode` into ``out.rounds`` rows R_DRAFT_LENGTHS and
        R_BANDWIDTH; empty actions (0, A) mean those rows hold the lengths and shares already. Then the round is
        played by :func:`play_round` (with the ``restarts``), ``out.counts`` filled with n_k, A_k and L_k as int64
        and, when ``finish`` (no later draw: no CSI estimation noise, no Python restart, no arrivals), the
        channel updated and the observations written into ``out.observation`` (n, S).

        Returns -1 (nothing changed) if an action entry is NaN or inf, else the number of truncated systems.
        """
        if actions.shape[0] and not decode(actions, fixed, out.rounds):  # rows R_DRAFT_LENGTHS and R_BANDWIDTH
            return -1
        play_round(state, blocks, fixed, restarts, out, finish)
        rounds, ints, truncated = out.rounds, out.counts, out.truncated
        n, num_users = rounds.shape[1], rounds.shape[2]
        ended = 0
        for i in range(n):
            for k in range(num_users):
                ints[I_TOKENS, i, k] = np.int64(rounds[R_TOKENS, i, k])
                ints[I_ACCEPTED, i, k] = np.int64(rounds[R_ACCEPTED, i, k])
                ints[I_DRAFT_LENGTHS, i, k] = np.int64(rounds[R_DRAFT_LENGTHS, i, k])
            ended += truncated[i]
        if finish:
            observe(state, fixed, out.observation)
        return ended

    @njit(types.void(_generator, _f8_1), **JIT)
    def standard_exponential(rng, out):
        """Fill ``out`` with Exp(1) variates of the numpy Generator ``rng``: the same values, in the same order,
        leaving ``rng`` in the same state as ``rng.standard_exponential(out.size)`` (numba runs numpy's
        ziggurat on the same bit generator), ~20% faster."""
        for j in range(out.size):
            out[j] = rng.standard_exponential()

    @njit(types.void(_generator, _f8_1), **JIT)
    def standard_normal(rng, out):
        """Fill ``out`` with N(0, 1) variates of the numpy Generator ``rng``: the same values, in the same order,
        leaving ``rng`` in the same state as ``rng.standard_normal(out.size)`` (numba runs numpy's ziggurat
        on the same bit generator), about twice as fast."""
        for j in range(out.size):
            out[j] = rng.standard_normal()


class Compiled(NamedTuple):
    """The machine code of the functions the core calls (:func:`multispin_env._numba.compiled`): no type
    dispatch, so the caller must pass exactly the types of the signature (the core builds every record with
    them; tests/test_kernel_records.py checks it)."""

    decode: Callable[..., bool]
    update_channel: Callable[..., None]
    reset_rows: Callable[..., None]
    observe: Callable[..., None]
    step: Callable[..., int]
    standard_exponential: Callable[..., None]
    standard_normal: Callable[..., None]


#: The core's entry points into this module.
COMPILED = Compiled(*(compiled(globals()[name]) for name in Compiled._fields))
