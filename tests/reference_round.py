"""An independent numpy oracle of one Multi-SPIN round, written from docs/model.md (not from the package).

Plain numpy (and scipy's Bessel J0), no import from ``multispin_env``: tests/test_kernels.py checks the compiled
round against it on the same draws. Arrays are batches of n systems with K users on the last axis.
Section numbers and equations refer to docs/model.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]


@dataclass(frozen=True)
class Settings:
    """The constants of a round.

    :param verify_base: T0, s (eq. 2)
    :param verify_per_token: kappa, s/token (eq. 2)
    :param downlink_time: T_dl, s (eq. 3)
    :param horizon: episode length, simulated s (section 8.2)
    :param reward_scale: reward per token (section 8.2)
    :param forgetting: lambda of the acceptance counts, per round (section 5.4)
    :param prior: a0, prior acceptance rate (section 5.4)
    :param prior_weight: w0, prior weight, pseudo-tokens (section 5.4)
    :param doppler_hz: f_D, Hz (section 4)
    :param fading: False: h = 1 every round (section 4.1)
    :param payload_bits: D, bits per draft token (section 4.2)
    :param bandwidth_hz: W, Hz (section 4.2)
    :param max_draft: L_max, tokens
    :param draft_time_high: upper bound of the draft-time observation entry, units of 10 ms (section 5.5)
    :param verify_knee_tokens: batch tokens verified in T0 (eq. 2'); ``verify_table``: measured (tokens,
        seconds) points replacing T0, kappa and the knee (eq. 2'), or None
    :param upload_deadline: s; uploads ending later are dropped (eq. 1'), inf for none
    :param transmit_power_w: P_tx, W; ``energy_weight``: tokens per joule off the reward (section 5.7)
    :param mean_request_tokens: with arrivals (section 5.8) the mean request length, tokens (the observation's
        unit of the remaining tokens); None without arrivals
    """

    verify_base: float
    verify_per_token: float
    downlink_time: float
    horizon: float
    reward_scale: float
    forgetting: float
    prior: float
    prior_weight: float
    doppler_hz: float
    fading: bool
    payload_bits: float
    bandwidth_hz: float
    max_draft: int
    draft_time_high: float
    verify_knee_tokens: float = 0.0
    verify_table: tuple[tuple[float, float], ...] | None = None
    upload_deadline: float = np.inf
    transmit_power_w: float = 0.2
    energy_weight: float = 0.0
    mean_request_tokens: float | None = None


@dataclass
class Round:
    """What one round produced and the state it leaves (arrays (n, K) or (n,))."""

    sync_time: FloatArray  # tau, s, eq. (1)
    verify_time: FloatArray  # T_ver, s, eq. (2)
    latency: FloatArray  # T, s, eq. (3)
    accepted: FloatArray  # A_k, eq. (4)
    tokens: FloatArray  # n_k = A_k + 1
    reward: FloatArray
    dropped: NDArray[np.bool_]  # uploads cut at the deadline, eq. (1')
    energy: FloatArray  # J per user, section 5.7
    successes: FloatArray  # S after the round, section 5.4
    failures: FloatArray  # F after the round
    clock: FloatArray  # s, after the round
    truncated: NDArray[np.bool_]
    gain: ComplexArray  # h' of the next round, section 4
    efficiency: FloatArray  # e' = log2(1 + SNR |h'|^2) of the next round, bit/s/Hz, section 4.2
    upload_time: FloatArray  # c' = D / (W e'), s/token, section 4.2
    completed: NDArray[np.bool_] | None = None  # arrivals: the user's request ended in the round, section 5.8
    completion_time: FloatArray | None = None  # its end (the round's) minus its arrival, s; 0 where none ended


def decode_action(action: FloatArray, num_users: int, max_draft: int) -> tuple[FloatArray, FloatArray]:
    """Section 8.1: raw actions (n, E + K), E = 1 (homogeneous) or K, to lengths L_k (tokens) and shares b_k."""
    x = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)  # finite out-of-range entries are clipped
    length_entries = x.shape[-1] - num_users
    lengths = np.rint((x[:, :length_entries] + 1.0) / 2.0 * max_draft)  # round half to even, like the kernel
    lengths = np.broadcast_to(lengths, (x.shape[0], num_users)).copy()  # homogeneous: one common L
    weights = (x[:, length_entries:] + 1.0) / 2.0 * (lengths > 0)  # users with L_k = 0 get no bandwidth
    # All drafting users have weight 0: they share the band equally.
    none = weights.sum(axis=1) == 0.0
    weights[none] = (lengths[none] > 0).astype(np.float64)
    lengths[weights == 0.0] = 0.0  # a drafting user without bandwidth cannot upload
    total = weights.sum(axis=1, keepdims=True)
    return lengths, weights / np.where(total > 0.0, total, 1.0)


def idle_users_out(lengths: FloatArray, shares: FloatArray, active: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
    """Section 5.8: users without a request draft nothing and get no band; the idle users' band goes to the
    active ones in proportion to their shares (which then sum to what all shares summed to)."""
    kept = np.where(active, shares, 0.0)
    active_sum = kept.sum(axis=1, keepdims=True)
    scale = np.where(
        active_sum > 0.0, shares.sum(axis=1, keepdims=True) / np.where(active_sum > 0.0, active_sum, 1.0), 0.0
    )
    return np.where(active, lengths, 0.0), kept * scale


def spectral_efficiency(snr: FloatArray, gain: ComplexArray) -> FloatArray:
    """Section 4.2: e = max(log2(1 + SNR |h|^2), 1e-9) bit/s/Hz (log1p: exact for a deep fade, SNR |h|^2 << 1)."""
    return np.maximum(np.log1p(snr * np.abs(gain) ** 2) / np.log(2.0), 1e-9)


def verification_time(s: Settings, batch_tokens: FloatArray) -> FloatArray:
    """Eq. (2'): T0 + kappa max(0, N - knee), or the measured profile: linear between its points, flat below
    the first, continued with the last segment's slope beyond the last."""
    if s.verify_table is None:
        return s.verify_base + s.verify_per_token * np.maximum(batch_tokens - s.verify_knee_tokens, 0.0)
    tokens, seconds = np.array(s.verify_table, dtype=np.float64).T
    slope = (seconds[-1] - seconds[-2]) / (tokens[-1] - tokens[-2])
    beyond = seconds[-1] + (batch_tokens - tokens[-1]) * slope
    return np.where(batch_tokens > tokens[-1], beyond, np.interp(batch_tokens, tokens, seconds))


def play_round(
    s: Settings,
    draft_power: FloatArray,
    draft_time: FloatArray,
    upload_time: FloatArray,
    snr: FloatArray,
    gain: ComplexArray,
    cumulative_hazard: FloatArray,
    successes: FloatArray,
    failures: FloatArray,
    clock: FloatArray,
    lengths: FloatArray,
    shares: FloatArray,
    exponential: FloatArray,
    normals: FloatArray | None,
    jitter: FloatArray | None,
    active: NDArray[np.bool_] | None = None,
    remaining: FloatArray | None = None,
    arrival: FloatArray | None = None,
) -> Round:
    """One round of n systems (section 2, 4, 5).

    :param draft_time: nominal t_k, s/token (n, K)
    :param upload_time: c_k of the round's true channel, s/token (n, K)
    :param snr: linear mean SNR_k (n, K)
    :param gain: complex gain h_k of the round (n, K)
    :param cumulative_hazard: H_k(i), i = 1..L_max (n, K, L_max), section 5.1
    :param successes: S (n, K); ``failures``: F (n, K), section 5.4
    :param clock: simulated time before the round, s (n,)
    :param lengths: decoded L_k, tokens; ``shares``: decoded b_k (n, K)
    :param exponential: Exp(1) variates E_k (n, K)
    :param normals: N(0, 1) pairs (2, n, K) of the fading innovation (None without fading)
    :param jitter: log-normal factors of t_k (n, K) (None without jitter), section 5.3
    :param active: arrivals (section 5.8): users with a request (n, K), None without arrivals; ``remaining``
        its tokens left, ``arrival`` its arrival time (s); ``lengths`` and ``shares`` before idle users are
        taken out (:func:`idle_users_out`)
    """
    if active is not None:
        lengths, shares = idle_users_out(lengths, shares, active)
    t = draft_time * jitter if jitter is not None else draft_time  # eq. (1) uses the jittered t_k
    drafting = lengths > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        finish = np.where(drafting, lengths * t + lengths * upload_time / shares, 0.0)  # inf if b_k = 0
    dropped = finish > s.upload_deadline  # eq. (1'): the server stops waiting at the deadline
    verified = np.where(dropped, 0.0, lengths)  # a dropped user counts in the batch as L_k = 0
    # eq. (1)/(1'): the latest upload that made it, or the deadline if anyone was cut; 0 when nobody drafts
    tau = np.where(dropped.any(axis=1), s.upload_deadline, np.where(dropped, 0.0, finish).max(axis=1))
    targets = 1.0 if active is None else active.astype(np.float64)  # an idle user is not in the batch
    t_ver = verification_time(s, (verified + targets).sum(axis=1))  # eq. (2')
    latency = tau + t_ver + s.downlink_time  # eq. (3)

    # Section 5.1: A_k = #{i <= L_k : H_k(i) <= E_k}; H rises with i, so this is min(L_k, #{i : H_k(i) <= E_k}).
    accepted = np.minimum(verified, (cumulative_hazard <= exponential[..., None]).sum(axis=2))
    tokens = accepted + 1.0  # eq. (4); a dropped user gets the target's one token
    forgetting = s.forgetting
    completed = completion_time = None
    if active is not None:  # section 5.8: idle users gain nothing; tokens past the request's end do not count
        tokens = np.where(active, np.minimum(tokens, remaining), 0.0)
        forgetting = np.where(active, s.forgetting, 1.0)  # an idle user's counts stay
        completed = active & (remaining - tokens <= 0.0)
        completion_time = np.where(completed, (clock + latency)[:, None] - arrival, 0.0)
    # Section 5.7: drafting at P_draft for L t, then transmitting at P_tx until the upload ends or is cut.
    drafting_time = lengths * t
    energy = draft_power * drafting_time + s.transmit_power_w * np.maximum(
        np.minimum(finish, s.upload_deadline) - drafting_time, 0.0
    )

    new_clock = clock + latency
    if s.fading:  # section 4: Gauss-Markov step over the round's latency T, rho = J0(2 pi f_D T)
        rho = scipy.special.j0(2.0 * np.pi * s.doppler_hz * latency)[:, None]
        w = (normals[0] + 1j * normals[1]) / np.sqrt(2.0)  # CN(0, 1)
        next_gain = rho * gain + np.sqrt(1.0 - rho**2) * w
    else:
        next_gain = np.ones_like(gain)
    efficiency = spectral_efficiency(snr, next_gain)
    return Round(
        sync_time=tau,
        verify_time=t_ver,
        latency=latency,
        accepted=accepted,
        tokens=tokens,
        reward=s.reward_scale * (tokens.sum(axis=1) - s.energy_weight * energy.sum(axis=1)),  # sections 8.2, 5.7
        dropped=dropped,
        energy=energy,
        successes=forgetting * successes + accepted,  # section 5.4
        failures=forgetting * failures + (accepted < verified),  # a dropped draft shows no rejection
        clock=new_clock,
        truncated=new_clock >= s.horizon,  # section 8.2: truncated at or after the horizon
        gain=next_gain,
        efficiency=efficiency,
        upload_time=s.payload_bits / (s.bandwidth_hz * efficiency),  # c = D / (W e), section 4.2
        completed=completed,
        completion_time=completion_time,
    )


def observation(
    s: Settings,
    observed_efficiency: FloatArray,
    draft_time: FloatArray,
    successes: FloatArray,
    failures: FloatArray,
    last_lengths: FloatArray,
    last_tokens: FloatArray,
    clock: FloatArray,
    active: NDArray[np.bool_] | None = None,
    remaining: FloatArray | None = None,
) -> NDArray[np.float32]:
    """Section 5.5: float32 observations (n, 5K + 1) of the state (all arrays (n, K) but ``clock`` (n,), s);
    with arrivals (section 5.8) then the users' ``active`` flags and ``remaining`` tokens (n, 7K + 1).

    :param observed_efficiency: e_hat_k of the channel estimate, bit/s/Hz (section 5.2)
    :param draft_time: nominal t_k, s/token
    """
    estimate = (successes + s.prior_weight * s.prior) / (successes + failures + s.prior_weight)  # section 5.4
    fields = [
        np.clip(observed_efficiency / 10.0, 0.0, 10.0),
        np.clip(draft_time / 0.01, 0.0, s.draft_time_high),
        np.clip(estimate, 0.0, 1.0),
        np.clip(last_lengths / s.max_draft, 0.0, 1.0),
        np.clip(last_tokens / (s.max_draft + 1), 0.0, 1.0),
        np.clip(1.0 - clock / s.horizon, 0.0, 1.0)[:, None],
    ]
    if s.mean_request_tokens is not None:
        fields += [active.astype(np.float64), np.clip(remaining / s.mean_request_tokens, 0.0, 10.0)]
    return np.concatenate(fields, axis=1).astype(np.float32)


def device_energy(
    s: Settings,
    lengths: FloatArray,
    draft_time: FloatArray,
    upload_time: FloatArray,
    shares: FloatArray,
    draft_power: FloatArray,
) -> FloatArray:
    """Section 5.7: E_k = P_draft,k L_k t_k + P_tx max(0, min(u_k, U) - L_k t_k), u_k = L_k t_k + L_k c_k / b_k
    (0 for L_k = 0), J."""
    with np.errstate(divide="ignore", invalid="ignore"):
        finish = np.where(lengths > 0, lengths * draft_time + lengths * upload_time / shares, 0.0)
    drafting_time = lengths * draft_time
    return draft_power * drafting_time + s.transmit_power_w * np.maximum(
        np.minimum(finish, s.upload_deadline) - drafting_time, 0.0
    )


def drained_users_out(
    s: Settings,
    lengths: FloatArray,
    shares: FloatArray,
    draft_time: FloatArray,
    upload_time: FloatArray,
    draft_power: FloatArray,
    energy_left: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Eq. (5.7a): a user whose E_k under the decoded allocation exceeds its remaining budget drafts nothing and
    gets no band; the others' shares are scaled to sum to what all summed to before."""
    drained = device_energy(s, lengths, draft_time, upload_time, shares, draft_power) > energy_left
    kept = np.where(drained, 0.0, shares)
    kept_sum = kept.sum(axis=1, keepdims=True)
    scale = np.where(kept_sum > 0.0, shares.sum(axis=1, keepdims=True) / np.where(kept_sum > 0.0, kept_sum, 1.0), 0.0)
    return np.where(drained, 0.0, lengths), kept * scale
