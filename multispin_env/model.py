"""The Multi-SPIN round model (docs/model.md sections 2-3): each formula written once.

The per-formula functions (:func:`expected_tokens`, :func:`finish_time`, :func:`verification_time`,
:func:`latency`) are numba ufuncs, called on arrays by the solvers and on scalars by the compiled round
(:mod:`multispin_env._kernels`). Array functions put users on the last axis; any leading axes are a batch (the
solvers evaluate many systems or many length vectors at once). :class:`RoundParams` is the validated,
user-facing description of one system; the ``expected_*`` functions take it.

Units: seconds, tokens, tokens/s; bandwidth shares are fractions of the band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit, vectorize
from numpy.typing import ArrayLike, NDArray

from multispin_env._checks import RealRange, first_nonfinite, integer_setting, real_setting, short_repr
from multispin_env._numba import JIT, jit_cache

FloatArray = NDArray[np.float64]

__all__ = [
    "MAX_USERS",
    "MAX_DRAFT",
    "ROOT_MAX_ITER",
    "ROOT_RTOL",
    "RoundParams",
    "expected_tokens",
    "equal_finish_time",
    "optimal_bandwidth",
    "finish_time",
    "sync_time",
    "verification_time",
    "verify_time",
    "latency",
    "remaining_energy",
    "request_slack",
    "round_latency",
    "running_throughput",
    "expected_goodput",
    "expected_weighted_goodput",
    "MAX_WEIGHT",
    "user_weights",
    "allocation_outcome",
    "expected_user_tokens",
    "token_table",
    "validate_allocation",
    "verification_profile",
    "verification_times",
    "upload_end",
    "device_energy",
]

#: Largest number of users K of a system (memory of the batched state grows with it).
MAX_USERS = 4096
#: Largest draft length L_max, tokens (the acceptance tables have L_max entries per user).
MAX_DRAFT = 256
#: Largest user weight w_k of the weighted objective (section 3): weights are relative priorities, so only their
#: ratios matter; the cap keeps sum_k w_k E[n_k] / T within float64 for any round whose goodput is.
MAX_WEIGHT = 1e9
#: The range of one user weight, [0, MAX_WEIGHT] and finite: the check of :func:`user_weights` and of packed systems.
WEIGHT_RANGE = RealRange(0.0, MAX_WEIGHT)
#: The equal-finish root's tolerance (relative step) and iteration cap (:func:`equal_finish_time`; the solvers too).
ROOT_RTOL = 1e-14
ROOT_MAX_ITER = 200

# The per-formula functions below are numba ufuncs: numpy calls them on arrays (broadcasting, as the solvers
# do) and the compiled round (multispin_env._kernels) calls the same functions on scalars, so each formula is
# written once. They are compiled for the argument types of their first call (or loaded from numba's cache),
# not at import: building a ufunc's numpy loop costs ~0.1 s, which every ``import multispin_env`` would pay.
with jit_cache():

    @vectorize(cache=JIT["cache"])
    def expected_tokens(acceptance, draft_length):
        """Expected tokens per round under i.i.d. acceptance, eq. (4): N(a, L) = (1 - a^(L+1)) / (1 - a).

        Written as ``-expm1((L+1) log a) / (1 - a)`` so it stays accurate for ``a`` within 1e-6 of 0 or 1.
        """
        return -math.expm1((draft_length + 1.0) * math.log(acceptance)) / (1.0 - acceptance)

    @vectorize(cache=JIT["cache"])
    def finish_time(draft_length, draft_time, upload_time, share):
        """User k's upload end, the term of eq. (1): L_k t_k + L_k c_k / b_k in seconds.

        0 for a user that does not draft (L_k = 0), inf for a drafting user without bandwidth (b_k = 0).
        """
        # Branch-free where it matters: numba vectorises this loop and evaluates every lane, so the division
        # must not see 0 / 0 (it would raise numpy's "invalid value" flag for a user that is not even drafting).
        denominator = share if share > 0.0 else 1.0
        finish = draft_length * draft_time + draft_length * upload_time / denominator
        if draft_length <= 0.0:
            return 0.0
        if share <= 0.0:
            return math.inf
        return finish

    @njit(**JIT, inline="always")
    def verification_time(batch_tokens, profile_tokens, profile_seconds):
        """Batch verification time T_ver(N) of N = sum_k (L_k + 1) tokens, eq. (2'): the piecewise-linear
        profile through the points (profile_tokens[j], profile_seconds[j]) (increasing tokens, >= 2 points),
        flat below the first point and extended with the last segment's slope beyond the last one.

        The paper's affine T0 + kappa N, the knee T0 + kappa max(0, N - knee) and a measured table are all
        such profiles (:func:`verification_profile`).
        """
        last = profile_tokens.size - 1
        if batch_tokens <= profile_tokens[0]:
            return profile_seconds[0]
        j = 1
        while j < last and batch_tokens > profile_tokens[j]:
            j += 1
        slope = (profile_seconds[j] - profile_seconds[j - 1]) / (profile_tokens[j] - profile_tokens[j - 1])
        return profile_seconds[j - 1] + (batch_tokens - profile_tokens[j - 1]) * slope

    @njit(**JIT)
    def _verification_times(batch_tokens, profile_tokens, profile_seconds, out):
        for j in range(batch_tokens.size):
            out[j] = verification_time(batch_tokens[j], profile_tokens, profile_seconds)

    @vectorize(cache=JIT["cache"])
    def upload_end(finish, deadline):
        """When user k's upload stops, eq. (1'): its finish time, or the deadline if that comes first
        (``deadline`` = inf: none). A user with finish > deadline is dropped from the batch."""
        return min(finish, deadline)

    @vectorize(cache=JIT["cache"])
    def remaining_energy(budget, spent):
        """A device's remaining energy budget B_k of eq. (5.7a), J: ``budget`` B less the energy ``spent`` over the
        episode so far, at least 0 (inf without a budget, B = inf)."""
        return max(budget - spent, 0.0)

    @vectorize(cache=JIT["cache"])
    def device_energy(draft_length, draft_time, stop, draft_power, transmit_power):
        """Energy of user k in one round, J (docs/model.md section 5.7): P_draft L_k t_k drafting plus
        P_tx (stop - L_k t_k) transmitting until its upload ends or is cut at the deadline (``stop``)."""
        drafting = draft_length * draft_time
        return draft_power * drafting + transmit_power * max(stop - drafting, 0.0)

    @vectorize(cache=JIT["cache"])
    def latency(sync, verify, downlink):
        """Round latency, eq. (3): T = tau + T_ver + T_dl, seconds."""
        return sync + verify + downlink

    @vectorize(cache=JIT["cache"])
    def request_slack(due, clock, active):
        """Time left to a user's current request's target, s (eq. (9d)): D_due - t with ``due`` = D_due and
        ``clock`` = t in s, times ``active`` (1.0 with a request in progress, 0.0 idle: no slack); negative when
        overdue."""
        return (due - clock) * active

    @vectorize(cache=JIT["cache"])
    def running_throughput(episode_tokens, clock):
        """A user's running throughput, eq. (5.9a): x_k(t) = (n_k summed over the episode so far) / t, tokens/s;
        0 at t = 0."""
        # Numba evaluates every lane of a vectorised loop: a division by t chosen by a branch is done at t = 0 too
        # (0 / 0 raises numpy's invalid-value flag), so the 0 at t = 0 is a product with the condition.
        rate = episode_tokens / (clock if clock > 0.0 else 1.0)
        return rate * (clock > 0.0)


def equal_finish_time(
    work: ArrayLike, offset: ArrayLike, *, rtol: float = ROOT_RTOL, max_iter: int = ROOT_MAX_ITER
) -> FloatArray:
    """Equalised finish time: the root tau > max(offset) of sum_k work_k / (tau - offset_k) = 1.

    With ``work = L c`` and ``offset = L t`` this is the sync time of the best
    shares for fixed lengths (docs/model.md section 3); with ``work = c`` and
    ``offset = t`` it is the homogeneous s*. Entries with ``work == 0`` (users
    that do not draft) are ignored; a batch row with none active gets 0. Leading axes are a batch.

    Newton's method on ``1/F(tau) - 1`` (F the sum above), started at the larger of
    ``max(offset + work)`` and ``min(offset) + sum(work)`` over active users, where F >= 1: ``1/F`` is a
    harmonic mean of affine functions, hence concave and increasing, so the iterates rise monotonically to
    the root without overshooting, and one step is exact when a single user (or identical users) draft. It
    stops when a step is below ``rtol * tau`` *and* F is within 1e-9 of 1 (started on the pole of a user whose
    work is tiny next to its offset, the first steps are tiny while F is still far above 1), or when tau stops
    moving. Compiled (:func:`_equal_finish_rows`): the solvers call it for one system in their hot path,
    where numpy's per-call overhead would dominate.
    """
    work_arr, offset_arr = np.broadcast_arrays(np.asarray(work, dtype=np.float64), np.asarray(offset, dtype=np.float64))
    shape = work_arr.shape
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    out = np.empty(rows)
    _equal_finish_rows(
        np.ascontiguousarray(work_arr).reshape(rows, shape[-1]),
        np.ascontiguousarray(offset_arr).reshape(rows, shape[-1]),
        rtol,
        max_iter,
        out,
    )
    return out.reshape(shape[:-1]) if shape[:-1] else np.float64(out[0])


with jit_cache():

    @njit(**JIT)
    def equal_finish_root(work, offset, rtol, max_iter):
        """:func:`equal_finish_time` of one system: ``work``, ``offset`` of shape (K,); 0 when none is active.

        Compiled code (the batched solvers of ``baselines``) calls it directly, one system at a time.
        """
        start = -math.inf
        lowest = math.inf
        pole = -math.inf
        total_work = 0.0
        for k in range(work.shape[0]):
            if work[k] > 0.0:
                start = max(start, offset[k] + work[k])
                lowest = min(lowest, offset[k])
                pole = max(pole, offset[k])
                total_work += work[k]
        if total_work == 0.0:
            return 0.0
        # An upload below an ulp of its offset puts the start on the pole: step off it.
        tau = max(start, lowest + total_work, np.nextafter(pole, math.inf))
        for _ in range(max_iter):
            total = 0.0
            slope = 0.0
            for k in range(work.shape[0]):
                if work[k] > 0.0:
                    inverse = 1.0 / (tau - offset[k])
                    term = work[k] * inverse
                    total += term
                    slope += term * inverse  # -F'(tau) > 0
            step = total * (total - 1.0) / slope
            new = tau + step if step > 0.0 else tau
            # Converged, or stuck at the last representable tau (an ill-conditioned root).
            done = new == tau or (step <= rtol * new and total <= 1.0 + 1e-9)
            tau = new
            if done:
                break
        return tau

    @njit(**JIT)
    def _equal_finish_rows(work, offset, rtol, max_iter, out):
        """:func:`equal_finish_time` of each row of ``work``/``offset`` (rows, K) into ``out`` (rows,)."""
        for r in range(work.shape[0]):
            out[r] = equal_finish_root(work[r], offset[r], rtol, max_iter)


def optimal_bandwidth(
    draft_time: ArrayLike, upload_time: ArrayLike, draft_lengths: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Best shares for fixed lengths and the resulting sync time (docs/model.md section 3).

    b_k = L_k c_k / (tau - L_k t_k) with tau from :func:`equal_finish_time`;
    every drafting user finishes at tau, non-drafting users get 0 and the
    shares of the drafting users sum to 1. Returns ``(bandwidth, tau)``.
    """
    lengths = np.asarray(draft_lengths, dtype=np.float64)
    work = lengths * np.asarray(upload_time, dtype=np.float64)
    offset = lengths * np.asarray(draft_time, dtype=np.float64)
    work, offset = np.broadcast_arrays(work, offset)
    tau = equal_finish_time(work, offset)
    active = work > 0.0
    gap = np.where(active, tau[..., None] - offset, 1.0)
    shares = np.where(active, work / gap, 0.0)
    total = shares.sum(axis=-1, keepdims=True)
    shares = shares / np.where(total > 0.0, total, 1.0)
    return shares, tau


def sync_time(
    draft_time: ArrayLike, upload_time: ArrayLike, draft_lengths: ArrayLike, bandwidth: ArrayLike
) -> FloatArray:
    """Upload-phase end, eq. (1): the latest :func:`finish_time` over the users (0 if none drafts)."""
    return finish_time(draft_lengths, draft_time, upload_time, bandwidth).max(axis=-1)


#: Batch tokens of a point of a verification profile, tokens; consecutive points are at least one token apart,
#: so that the slope of eq. (2'), and T_ver at the largest batch K (L_max + 1), stay finite.
VERIFY_PROFILE_TOKENS = RealRange(0.0, 1e7)
#: Verification time of a point of a verification profile, s (the bound of T0 in RoundParams).
VERIFY_PROFILE_SECONDS = RealRange(0.0, 1e9, low_open=True)


def check_verify_profile(table: NDArray[np.float64], name: str = "verify_profile") -> None:
    """The one rule of a measured verification profile (eq. (2')), for the env settings and RoundParams alike: a
    ValueError naming the first bad point (never the whole table, which may have 10^5 points) unless ``table`` is
    (>= 2, 2) finite (tokens, seconds) points, tokens in :data:`VERIFY_PROFILE_TOKENS` increasing by at least 1
    from point to point, seconds in :data:`VERIFY_PROFILE_SECONDS` and non-decreasing.

    :param table: the points, float64 (P, 2): tokens, s
    :param name: the setting named in the message
    """
    if table.ndim != 2 or table.shape[1] != 2 or table.shape[0] < 2:
        raise ValueError(f"{name} must be >= 2 finite (tokens, seconds) pairs, got shape {table.shape}")

    def where(i: int) -> str:
        return f"{name}[{i}] = {tuple(table[i].tolist())}"

    finite = np.asarray(np.isfinite(table).all(axis=1), dtype=np.bool_)
    tokens, seconds = table[:, 0], table[:, 1]
    inside = VERIFY_PROFILE_TOKENS.holds(tokens) & VERIFY_PROFILE_SECONDS.holds(seconds)
    rising = np.concatenate([[True], np.diff(tokens) >= 1.0])
    steady = np.concatenate([[True], np.diff(seconds) >= 0.0])
    bad = np.flatnonzero(~(inside & rising & steady))
    if not bad.size:
        return
    i = int(bad[0])
    if not finite[i]:
        raise ValueError(f"{where(i)} is not finite")
    if not inside[i]:
        raise ValueError(
            f"{name} must have tokens in {VERIFY_PROFILE_TOKENS} and seconds in {VERIFY_PROFILE_SECONDS}: {where(i)}"
        )
    after = f"{where(i)} after {tuple(table[i - 1].tolist())}"
    if not rising[i]:
        raise ValueError(f"{name} tokens must increase by at least 1 from point to point: {after}")
    raise ValueError(f"{name} seconds must not decrease: {after}")


def verification_profile(
    verify_base: float, verify_per_token: float, knee_tokens: float = 0.0, profile: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """The verification-time model as a piecewise-linear profile (tokens, seconds), eq. (2').

    :param verify_base: T0, s (used without ``profile``)
    :param verify_per_token: kappa, s/token (used without ``profile``)
    :param knee_tokens: batch tokens verified in T0 before the time grows (0: the paper's affine eq. (2))
    :param profile: a measured table of (tokens, seconds) points, checked by :func:`check_verify_profile`;
        replaces the three numbers above
    """
    if profile is not None:
        table = np.array(profile, dtype=np.float64)
        check_verify_profile(table)
        return table[:, 0].copy(), table[:, 1].copy()
    if knee_tokens > 0.0:
        return np.array([0.0, knee_tokens, knee_tokens + 1.0]), np.array(
            [verify_base, verify_base, verify_base + verify_per_token]
        )
    return np.array([0.0, 1.0]), np.array([verify_base, verify_base + verify_per_token])


def verification_times(batch_tokens: ArrayLike, profile: tuple[FloatArray, FloatArray]) -> FloatArray:
    """:func:`verification_time` of an array of batch sizes N (tokens) for ``profile`` = (tokens, seconds)."""
    tokens = np.asarray(batch_tokens, dtype=np.float64)
    out = np.empty(tokens.shape)
    _verification_times(np.ascontiguousarray(tokens).reshape(-1), profile[0], profile[1], out.reshape(-1))
    return out


def verify_time(draft_lengths: ArrayLike, params: RoundParams) -> FloatArray:
    """T_ver of a batch of drafts, eq. (2'): N = sum_k (L_k + 1) over the last axis, ``params``' profile."""
    lengths = np.asarray(draft_lengths, dtype=np.float64)
    return verification_times((lengths + 1.0).sum(axis=-1), params.verify_profile_points)


def _float_vector(name: str, value: Any) -> FloatArray:
    """``value`` as a read-only float64 vector (K,); ValueError naming ``name`` for anything but finite reals."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {short_repr(value)}") from exc
    if raw.dtype.kind not in "iuf":  # strings, bools, complex, objects (also ints too large for int64)
        raise ValueError(f"{name} must be an array of real numbers, got {short_repr(value)}")
    arr = np.array(raw, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one entry per user), got shape {arr.shape}")
    if arr.size == 0 or arr.size > MAX_USERS:
        raise ValueError(f"{name} must have 1 to {MAX_USERS} entries (one per user), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{first_nonfinite(arr, name)}: {name} must be finite")
    arr.setflags(write=False)
    return arr


def user_weights(value: Any, num_users: int) -> FloatArray:
    """``value`` as the users' weights w_k of the weighted objective (docs/model.md eq. (5w)): a read-only float64
    vector of ``num_users`` entries, each finite in [0, MAX_WEIGHT], not all 0; ValueError naming ``weights``
    otherwise. The one check of the setting (RoundParams and the policies that take weights call it)."""
    weights = _float_vector("weights", value)
    if weights.size != num_users:
        raise ValueError(f"weights must have one entry per user ({num_users}), got {weights.size}")
    outside = ~WEIGHT_RANGE.holds(weights)
    if np.any(outside):
        i = int(np.argmax(outside))
        raise ValueError(f"weights[{i}] is {weights[i]}: weights must lie in [0, {MAX_WEIGHT:g}]")
    if not np.any(weights > 0.0):
        raise ValueError("weights must not all be 0 (the objective would be 0 for every allocation)")
    return weights


@dataclass(frozen=True, init=False)
class RoundParams:
    """Everything that fixes the expected goodput of one Multi-SPIN system (docs/model.md sections 2-3).

    :param acceptance: a_k, per-token acceptance rate of user k's draft, in (0, 1); shape (K,)
    :param draft_time: t_k, seconds per drafted token on device k (> 0); shape (K,)
    :param upload_time: c_k = D / (W e_k), seconds per draft token with the whole band (> 0); shape (K,)
    :param verify_base: T0, seconds for one batched verification pass (> 0)
    :param verify_per_token: kappa, seconds per token in the verification batch (>= 0)
    :param max_draft: L_max, the longest draft in tokens (integer in 1..MAX_DRAFT)
    :param downlink_time: T_dl, seconds of downlink/feedback per round (>= 0)
    :param verify_knee_tokens: batch tokens verified in T0 before the time grows, eq. (2') (0: eq. (2))
    :param verify_profile: a measured (tokens, seconds) table replacing T0, kappa and the knee, eq. (2')
    :param upload_deadline: seconds after the round start at which the server stops waiting; a user whose
        upload would end later is dropped (one token, eq. (1')); None: no deadline
    :param survival: P(A_k >= i) for i = 1..L_max, shape (K, L_max), non-increasing in i, in [0, 1]; the
        acceptance curve of any process (section 5.1); None: the i.i.d. curve a_k^i
    :param weights: w_k, user k's weight in the solvers' objective sum_k w_k E[n_k] / T, eq. (5w): dimensionless,
        each in [0, MAX_WEIGHT], not all 0, shape (K,); only their ratios matter; None: all 1, the goodput of
        eq. (5)
    """

    # The fields hold the checked values (the constructor takes array-likes and None where documented above).
    acceptance: FloatArray  # the rates; given survival only, its position-1 rates (for reports)
    draft_time: FloatArray
    upload_time: FloatArray
    verify_base: float
    verify_per_token: float
    max_draft: int
    downlink_time: float
    verify_knee_tokens: float
    verify_profile: Any
    upload_deadline: float | None
    survival: FloatArray  # given, or the i.i.d. curve a_k^i
    weights: FloatArray | None  # checked (K,), or None: unweighted
    num_users: int = field(init=False)
    #: (tokens, seconds) of the verification profile, eq. (2').
    verify_profile_points: tuple[FloatArray, FloatArray] = field(init=False, repr=False, compare=False)
    #: E[n_k | L] for L = 0..L_max, shape (K, L_max + 1): 1 + sum_{i<=L} survival[k, i-1] (eq. (4)).
    token_table: FloatArray = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        acceptance: ArrayLike | None,
        draft_time: ArrayLike,
        upload_time: ArrayLike,
        verify_base: float = 0.060,
        verify_per_token: float = 0.0005,
        max_draft: int = 10,
        downlink_time: float = 0.0,
        verify_knee_tokens: float = 0.0,
        verify_profile: Any = None,
        upload_deadline: float | None = None,
        survival: ArrayLike | None = None,
        weights: ArrayLike | None = None,
    ) -> None:
        # Written by hand rather than by dataclass: the arguments are array-likes, the fields checked arrays.
        draft = _float_vector("draft_time", draft_time)
        upload = _float_vector("upload_time", upload_time)
        if isinstance(max_draft, (float, np.floating)) and float(max_draft).is_integer():
            max_draft = int(max_draft)  # 7.0 from a float computation is a length of 7
        max_draft = integer_setting("max_draft", max_draft, 1, MAX_DRAFT)
        k = draft.size
        if acceptance is None and survival is None:
            raise ValueError("give acceptance (i.i.d. rates) or survival (acceptance curves)")
        rates = None if acceptance is None else _float_vector("acceptance", acceptance)
        if not (draft.shape == upload.shape and (rates is None or rates.shape == (k,))):
            raise ValueError(
                "acceptance, draft_time and upload_time must have one entry per user (equal lengths), got "
                f"{None if rates is None else rates.size}, {draft.size} and {upload.size}"
            )
        if rates is not None and np.any((rates <= 0.0) | (rates >= 1.0)):
            raise ValueError(f"acceptance must lie in the open interval (0, 1), got {rates}")
        if np.any(draft <= 0.0):
            raise ValueError(f"draft_time must be > 0 s/token, got {draft}")
        if np.any(upload <= 0.0):
            raise ValueError(f"upload_time must be > 0 s/token, got {upload}")
        if survival is not None:
            curves = _survival(survival, k, max_draft)
        elif rates is not None:
            curves = rates[:, None] ** np.arange(1, max_draft + 1)
        else:  # ruled out above; says so to the type checker
            raise ValueError("give acceptance (i.i.d. rates) or survival (acceptance curves)")
        if rates is None:
            rates = np.clip(curves[:, 0], 1e-12, 1.0 - 1e-12)  # the position-1 rate, for reports
            rates.setflags(write=False)
        set_ = object.__setattr__
        set_(self, "acceptance", rates)
        set_(self, "draft_time", draft)
        set_(self, "upload_time", upload)
        # Times up to 1e9 s: beyond, sums of them lose every digit of a per-token term.
        set_(self, "verify_base", real_setting("verify_base", verify_base, 0.0, 1e9, low_open=True))
        set_(self, "verify_per_token", real_setting("verify_per_token", verify_per_token, 0.0, 1e9))
        set_(self, "downlink_time", real_setting("downlink_time", downlink_time, 0.0, 1e9))
        set_(self, "verify_knee_tokens", real_setting("verify_knee_tokens", verify_knee_tokens, 0.0, 1e9))
        set_(
            self,
            "upload_deadline",
            None
            if upload_deadline is None
            else real_setting("upload_deadline", upload_deadline, 0.0, 1e9, low_open=True),
        )
        set_(self, "verify_profile", verify_profile)
        set_(self, "max_draft", max_draft)
        set_(self, "num_users", int(k))
        curves.setflags(write=False)
        set_(self, "survival", curves)
        set_(self, "weights", None if weights is None else user_weights(weights, int(k)))
        table = token_table(curves)
        table.setflags(write=False)
        set_(self, "token_table", table)
        set_(
            self,
            "verify_profile_points",
            verification_profile(self.verify_base, self.verify_per_token, self.verify_knee_tokens, self.verify_profile),
        )

    @property
    def deadline(self) -> float:
        """The upload deadline in seconds (inf when there is none)."""
        return math.inf if self.upload_deadline is None else self.upload_deadline


def _survival(value: Any, num_users: int, max_draft: int) -> FloatArray:
    """``value`` as a survival table (K, L_max): finite, in [0, 1], non-increasing along the draft."""
    try:
        table = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"survival must be an array of numbers, got {short_repr(value)}") from exc
    if table.shape != (num_users, max_draft):
        raise ValueError(f"survival must have shape (K, L_max) = ({num_users}, {max_draft}), got {table.shape}")
    if not np.all(np.isfinite(table)) or np.any((table < 0.0) | (table > 1.0)):
        raise ValueError("survival must hold probabilities in [0, 1]")
    if np.any(np.diff(table, axis=1) > 1e-12):
        raise ValueError("survival must be non-increasing along the draft: P(A >= i + 1) <= P(A >= i)")
    return table


def token_table(survival: ArrayLike) -> FloatArray:
    """E[n_k | L] = 1 + sum_{i<=L} P(A_k >= i) for L = 0..L_max (eq. (4) for any acceptance curve), tokens, from
    the survival table P(A_k >= i), i = 1..L_max, on the last axis (leading axes kept; shape (..., L_max + 1))."""
    survival = np.asarray(survival, dtype=np.float64)
    return np.concatenate([np.ones((*survival.shape[:-1], 1)), 1.0 + np.cumsum(survival, axis=-1)], axis=-1)


def expected_user_tokens(params: RoundParams, draft_lengths: ArrayLike) -> FloatArray:
    """E[n_k | L_k] = 1 + sum_{i<=L_k} P(A_k >= i) per user (eq. (4) for any acceptance curve); users on the
    last axis, leading batch axes kept."""
    lengths = np.asarray(draft_lengths).astype(np.int64)
    return np.take_along_axis(
        np.broadcast_to(params.token_table, (*lengths.shape[:-1], *params.token_table.shape)),
        lengths[..., None],
        axis=-1,
    )[..., 0]


def validate_allocation(
    params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike | None
) -> tuple[FloatArray, FloatArray | None]:
    """Check an allocation against ``params``; return it as float arrays or raise ValueError naming the field.

    Leading batch axes are allowed; the last axis must have K entries.
    """
    lengths = np.asarray(draft_lengths, dtype=np.float64)
    k = params.num_users
    if lengths.shape[-1:] != (k,):
        raise ValueError(f"draft_lengths must have {k} entries (one per user), got shape {lengths.shape}")
    if not np.all(np.isfinite(lengths)):
        raise ValueError(f"{first_nonfinite(lengths, 'draft_lengths')}: draft_lengths must be finite")
    if np.any(lengths != np.round(lengths)) or np.any(lengths < 0) or np.any(lengths > params.max_draft):
        raise ValueError(f"draft_lengths must be integers in 0..{params.max_draft}, got {short_repr(lengths)}")
    if bandwidth is None:
        return lengths, None
    shares = np.asarray(bandwidth, dtype=np.float64)
    if shares.shape != lengths.shape:
        raise ValueError(f"bandwidth must have the shape of draft_lengths {lengths.shape}, got {shares.shape}")
    if not np.all(np.isfinite(shares)):
        raise ValueError(f"{first_nonfinite(shares, 'bandwidth')}: bandwidth must be finite")
    if np.any(shares < 0.0):
        raise ValueError(f"bandwidth shares must be >= 0, got {short_repr(shares)}")
    if np.any(shares.sum(axis=-1) > 1.0 + 1e-9):
        raise ValueError(f"bandwidth shares must sum to at most 1, got sum {shares.sum(axis=-1)}")
    return lengths, shares


def _allocation_outcome(
    params: RoundParams,
    lengths: FloatArray,
    shares: FloatArray | None,
    upload_time: FloatArray | None = None,
    weighted: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """Expected tokens and latency of an allocation, eq. (1')-(4): users whose upload would end after the
    deadline are dropped (one token each, counted in the batch as L_k = 0) and the sync time is the deadline.
    ``upload_time`` (c_k with leading axes broadcasting against the allocation) replaces ``params.upload_time``;
    ``weighted``: the tokens are sum_k w_k E[n_k] with ``params.weights`` (eq. (5w); unweighted without them)."""
    upload = params.upload_time if upload_time is None else upload_time
    if shares is None:
        shares, _ = optimal_bandwidth(params.draft_time, upload, lengths)
    finish = finish_time(lengths, params.draft_time, upload, shares)
    dropped = finish > params.deadline
    kept = np.where(dropped, 0.0, lengths)
    tau = np.where(dropped.any(axis=-1), params.deadline, np.where(dropped, 0.0, finish).max(axis=-1))
    per_user = expected_user_tokens(params, kept)
    tokens = (per_user * params.weights if weighted and params.weights is not None else per_user).sum(axis=-1)
    return tokens, latency(tau, verify_time(kept, params), params.downlink_time)


def round_latency(params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike | None = None) -> FloatArray:
    """Round latency T = tau + T_ver + T_dl, eq. (3) (with the deadline of eq. (1')), in seconds.

    ``bandwidth=None`` uses the optimal (equal-finish-time) shares for these lengths.
    """
    lengths, shares = validate_allocation(params, draft_lengths, bandwidth)
    return _allocation_outcome(params, lengths, shares)[1]


def expected_goodput(params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike | None = None) -> FloatArray:
    """Sum token goodput, eq. (1)-(5) with eq. (1'), (2') and any acceptance curve, in tokens/s.

    G = sum_k E[n_k | L_k] / T. A drafting user with zero share never finishes, so with no deadline its
    goodput is 0. ``bandwidth=None`` uses the optimal shares for the lengths. Leading batch axes of
    ``draft_lengths``/``bandwidth`` give a batch of goodputs.
    """
    lengths, shares = validate_allocation(params, draft_lengths, bandwidth)
    tokens, total = _allocation_outcome(params, lengths, shares)
    return tokens / total


def expected_weighted_goodput(
    params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike | None = None
) -> FloatArray:
    """The solvers' objective, eq. (5w): sum_k w_k E[n_k | L_k] / T with the weights of ``params`` (tokens/s
    weighted; :func:`expected_goodput` when ``params.weights`` is None), the deadline applied as in eq. (1').

    ``bandwidth=None`` uses the optimal shares for the lengths (they do not depend on the weights: section 3).
    Leading batch axes of ``draft_lengths``/``bandwidth`` give a batch of values.
    """
    lengths, shares = validate_allocation(params, draft_lengths, bandwidth)
    tokens, total = _allocation_outcome(params, lengths, shares, weighted=True)
    return tokens / total


def allocation_outcome(
    params: RoundParams,
    draft_lengths: ArrayLike,
    bandwidth: ArrayLike | None = None,
    upload_time: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Expected tokens sum_k E[n_k] and latency T (s) of an allocation, eq. (1')-(4), the two terms of
    :func:`expected_goodput`'s ratio.

    :param upload_time: c_k in s/token replacing ``params.upload_time``, users on the last axis and leading
        axes broadcasting against the allocation's (e.g. (M, 1, K) channel draws for (C, K) allocations give
        (M, C) outcomes); > 0. None: ``params.upload_time``
    """
    lengths, shares = validate_allocation(params, draft_lengths, bandwidth)
    upload = None
    if upload_time is not None:
        upload = np.asarray(upload_time, dtype=np.float64)
        if upload.shape[-1:] != (params.num_users,) or not np.all(upload > 0.0) or not np.all(np.isfinite(upload)):
            raise ValueError(
                f"upload_time must be finite and > 0 with {params.num_users} entries (one per user) on "
                f"the last axis, got shape {upload.shape}"
            )
    return _allocation_outcome(params, lengths, shares, upload)
