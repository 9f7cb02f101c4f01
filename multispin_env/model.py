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
from numba import vectorize
from numpy.typing import ArrayLike, NDArray

from multispin_env._checks import integer_setting, real_setting
from multispin_env._numba import JIT, jit_cache

FloatArray = NDArray[np.float64]

__all__ = [
    "MAX_USERS",
    "MAX_DRAFT",
    "RoundParams",
    "expected_tokens",
    "equal_finish_time",
    "optimal_bandwidth",
    "finish_time",
    "sync_time",
    "verification_time",
    "verify_time",
    "latency",
    "round_latency",
    "expected_goodput",
    "validate_allocation",
]

#: Largest number of users K of a system (memory of the batched state grows with it).
MAX_USERS = 4096
#: Largest draft length L_max, tokens (the acceptance tables have L_max entries per user).
MAX_DRAFT = 256

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

    @vectorize(cache=JIT["cache"])
    def verification_time(batch_tokens, verify_base, verify_per_token):
        """Batch verification time, eq. (2): T_ver = T0 + kappa N for N = sum_k (L_k + 1) tokens, seconds."""
        return verify_base + verify_per_token * batch_tokens

    @vectorize(cache=JIT["cache"])
    def latency(sync, verify, downlink):
        """Round latency, eq. (3): T = tau + T_ver + T_dl, seconds."""
        return sync + verify + downlink


def equal_finish_time(
    work: ArrayLike, offset: ArrayLike, *, rtol: float = 1e-14, max_iter: int = 200
) -> FloatArray:
    """Equalised finish time: the root tau > max(offset) of sum_k work_k / (tau - offset_k) = 1.

    With ``work = L c`` and ``offset = L t`` this is the sync time of the best
    shares for fixed lengths (model.md section 3); with ``work = c`` and
    ``offset = t`` it is the homogeneous s*. Entries with ``work == 0`` (users
    that do not draft) are ignored; a batch row with none active gets 0.

    Newton's method on ``1/F(tau) - 1`` (F the sum above), started at
    ``max(offset + work)`` where F >= 1: ``1/F`` is a harmonic mean of affine
    functions, hence concave and increasing, so the iterates rise
    monotonically to the root without overshooting, and one step is exact when
    a single user (or identical users) draft.
    """
    work_arr = np.asarray(work, dtype=np.float64)
    offset_arr = np.asarray(offset, dtype=np.float64)
    work_arr, offset_arr = np.broadcast_arrays(work_arr, offset_arr)
    active = work_arr > 0.0
    any_active = active.any(axis=-1)
    tau = np.where(active, offset_arr + work_arr, -np.inf).max(axis=-1, initial=-np.inf)
    tau = np.where(any_active, tau, 1.0)
    # Inactive users get a harmless unit gap and zero weight.
    safe_work = np.where(active, work_arr, 0.0)
    for _ in range(max_iter):
        gap = np.where(active, tau[..., None] - offset_arr, 1.0)
        term = safe_work / gap
        total = term.sum(axis=-1)
        slope = (term / gap).sum(axis=-1)  # -F'(tau) > 0
        step = np.where(any_active, total * (total - 1.0) / np.where(any_active, slope, 1.0), 0.0)
        tau = tau + np.maximum(step, 0.0)
        if np.all(step <= rtol * tau):
            break
    return np.where(any_active, tau, 0.0)


def optimal_bandwidth(
    draft_time: ArrayLike, upload_time: ArrayLike, draft_lengths: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Best shares for fixed lengths and the resulting sync time (model.md section 3).

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


def verify_time(draft_lengths: ArrayLike, verify_base: ArrayLike, verify_per_token: ArrayLike) -> FloatArray:
    """:func:`verification_time` of a batch of drafts: N = sum_k (L_k + 1) over the last axis."""
    lengths = np.asarray(draft_lengths, dtype=np.float64)
    return verification_time((lengths + 1.0).sum(axis=-1), verify_base, verify_per_token)


def _float_vector(name: str, value: Any) -> FloatArray:
    """``value`` as a read-only float64 vector (K,); ValueError naming ``name`` for anything but finite reals."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {value!r}") from exc
    if raw.dtype.kind not in "iuf":  # strings, bools, complex, objects (also ints too large for int64)
        raise ValueError(f"{name} must be an array of real numbers, got {value!r}")
    arr = np.array(raw, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one entry per user), got shape {arr.shape}")
    if arr.size == 0 or arr.size > MAX_USERS:
        raise ValueError(f"{name} must have 1 to {MAX_USERS} entries (one per user), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf: {arr}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class RoundParams:
    """Everything that fixes the expected goodput of one Multi-SPIN system (model.md sections 2-3).

    :param acceptance: a_k, per-token acceptance rate of user k's draft, in (0, 1); shape (K,)
    :param draft_time: t_k, seconds per drafted token on device k (> 0); shape (K,)
    :param upload_time: c_k = D / (W e_k), seconds per draft token with the whole band (> 0); shape (K,)
    :param verify_base: T0, seconds for one batched verification pass (> 0)
    :param verify_per_token: kappa, seconds per token in the verification batch (>= 0)
    :param max_draft: L_max, the longest draft in tokens (integer in 1..MAX_DRAFT)
    :param downlink_time: T_dl, seconds of downlink/feedback per round (>= 0)
    """

    acceptance: FloatArray
    draft_time: FloatArray
    upload_time: FloatArray
    verify_base: float = 0.060
    verify_per_token: float = 0.0005
    max_draft: int = 10
    downlink_time: float = 0.0
    num_users: int = field(init=False)

    def __post_init__(self) -> None:
        acceptance = _float_vector("acceptance", self.acceptance)
        draft_time = _float_vector("draft_time", self.draft_time)
        upload_time = _float_vector("upload_time", self.upload_time)
        if not (draft_time.shape == upload_time.shape == acceptance.shape):
            raise ValueError(
                "acceptance, draft_time and upload_time must have one entry per user (equal lengths), got "
                f"{acceptance.size}, {draft_time.size} and {upload_time.size}"
            )
        if np.any((acceptance <= 0.0) | (acceptance >= 1.0)):
            raise ValueError(f"acceptance must lie in the open interval (0, 1), got {acceptance}")
        if np.any(draft_time <= 0.0):
            raise ValueError(f"draft_time must be > 0 s/token, got {draft_time}")
        if np.any(upload_time <= 0.0):
            raise ValueError(f"upload_time must be > 0 s/token, got {upload_time}")
        max_draft = self.max_draft
        if isinstance(max_draft, (float, np.floating)) and float(max_draft).is_integer():
            max_draft = int(max_draft)  # 7.0 from a float computation is a length of 7
        max_draft = integer_setting("max_draft", max_draft, 1, MAX_DRAFT)
        set_ = object.__setattr__
        set_(self, "acceptance", acceptance)
        set_(self, "draft_time", draft_time)
        set_(self, "upload_time", upload_time)
        # Times up to 1e9 s: beyond, sums of them lose every digit of a per-token term.
        set_(self, "verify_base", real_setting("verify_base", self.verify_base, 0.0, 1e9, low_open=True))
        set_(self, "verify_per_token", real_setting("verify_per_token", self.verify_per_token, 0.0, 1e9))
        set_(self, "downlink_time", real_setting("downlink_time", self.downlink_time, 0.0, 1e9))
        set_(self, "max_draft", max_draft)
        set_(self, "num_users", int(acceptance.size))


def validate_allocation(params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike | None) -> tuple[
    FloatArray, FloatArray | None
]:
    """Check an allocation against ``params``; return it as float arrays or raise ValueError naming the field.

    Leading batch axes are allowed; the last axis must have K entries.
    """
    lengths = np.asarray(draft_lengths, dtype=np.float64)
    k = params.num_users
    if lengths.shape[-1:] != (k,):
        raise ValueError(f"draft_lengths must have {k} entries (one per user), got shape {lengths.shape}")
    if not np.all(np.isfinite(lengths)):
        raise ValueError(f"draft_lengths contains NaN or inf: {lengths}")
    if np.any(lengths != np.round(lengths)) or np.any(lengths < 0) or np.any(lengths > params.max_draft):
        raise ValueError(f"draft_lengths must be integers in 0..{params.max_draft}, got {lengths}")
    if bandwidth is None:
        return lengths, None
    shares = np.asarray(bandwidth, dtype=np.float64)
    if shares.shape != lengths.shape:
        raise ValueError(f"bandwidth must have the shape of draft_lengths {lengths.shape}, got {shares.shape}")
    if not np.all(np.isfinite(shares)):
        raise ValueError(f"bandwidth contains NaN or inf: {shares}")
    if np.any(shares < 0.0):
        raise ValueError(f"bandwidth shares must be >= 0, got {shares}")
    if np.any(shares.sum(axis=-1) > 1.0 + 1e-9):
        raise ValueError(f"bandwidth shares must sum to at most 1, got sum {shares.sum(axis=-1)}")
    return lengths, shares


def round_latency(params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike | None = None) -> FloatArray:
    """Round latency T = tau + T_ver + T_dl, eq. (3), in seconds.

    ``bandwidth=None`` uses the optimal (equal-finish-time) shares for these lengths.
    """
    lengths, shares = validate_allocation(params, draft_lengths, bandwidth)
    if shares is None:
        tau = optimal_bandwidth(params.draft_time, params.upload_time, lengths)[1]
    else:
        tau = sync_time(params.draft_time, params.upload_time, lengths, shares)
    return latency(tau, verify_time(lengths, params.verify_base, params.verify_per_token), params.downlink_time)


def expected_goodput(params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike | None = None) -> FloatArray:
    """Sum token goodput under i.i.d. acceptance, eq. (1)-(5), in tokens/s.

    G = sum_k N(a_k, L_k) / T. A drafting user with zero share never finishes,
    so its goodput is 0. ``bandwidth=None`` uses the optimal shares for the
    lengths. Leading batch axes of ``draft_lengths``/``bandwidth`` give a
    batch of goodputs.
    """
    lengths, _ = validate_allocation(params, draft_lengths, bandwidth)
    tokens = expected_tokens(params.acceptance, lengths).sum(axis=-1)
    return tokens / round_latency(params, lengths, bandwidth)
