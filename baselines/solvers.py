"""Analytic controllers for one Multi-SPIN round: the paper's two problems and two equal-share baselines.

Everything here is built on the round model of ``model.md`` section 2 (eq. (1)-(5),
implemented in :mod:`multispin_env.model`) and solves the control problems of
``model.md`` section 3 under known, static parameters:

* :func:`solve_homogeneous` -- P-hom, one draft length L for all users.
  Uses the structure of section 3: the equal-finish-time sync time is
  tau = L s* with s* the root of sum_k c_k / (s - t_k) = 1 (independent of L;
  :func:`multispin_env.model.equal_finish_time` with work c, offset t),
  the shares b_k = c_k / (s* - t_k) do not depend on L, and
  G(L) = sum_k N(a_k, L) / (L s* + T0 + kappa K (L + 1) + T_dl) is maximised
  exactly over L in 0..L_max by evaluating all L at once.
* :func:`solve_heterogeneous` -- P-het, per-user L_k. Dinkelbach level +
  search over the sync time tau + Lagrangian (greedy) per-user lengths for the
  bandwidth budget, then an exact-evaluation local search. The derivation,
  what is exact and what is heuristic, and the complexity are in
  ``docs/heterogeneous_solver.md``.
* :func:`solve_batch` / :func:`solve_packed` -- either problem for N systems in one call. Both solvers are
  compiled (:mod:`baselines._solver_kernels`, numba, compiled on the first call and cached on disk);
  :func:`solve_homogeneous` and :func:`solve_heterogeneous` are that code with N = 1.
* :func:`equal_bandwidth_fixed` and :func:`equal_bandwidth_tuned` -- the
  heterogeneity-unaware baselines of ``model.md`` section 7 (b_k = 1/K).

Every solver returns an :class:`Allocation` whose ``goodput`` is the expected
goodput of eq. (5) of exactly that allocation (lengths *and* shares), i.e.
``expected_goodput(params, allocation.draft_lengths, allocation.bandwidth)``.
:data:`SOLVERS` is the one list of them (name -> :class:`SolverSpec`) that the
policies, the findings experiments and the benchmarks read.

Units: seconds (s), tokens, tokens/s; bandwidth shares are fractions of the band.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from multispin_env.model import (
    MAX_WEIGHT,
    WEIGHT_RANGE,
    FloatArray,
    RoundParams,
    _survival,
    token_table,
    verification_times,
)

__all__ = [
    "Allocation",
    "SolverSpec",
    "SOLVERS",
    "solve_homogeneous",
    "solve_heterogeneous",
    "solve_batch",
    "solve_packed",
    "raise_for_status",
    "PackedSystems",
    "BatchResult",
    "equal_bandwidth_fixed",
    "equal_bandwidth_tuned",
    "score_allocation",
]

IntArray = NDArray[np.int64]

# P-hom and P-het are compiled (baselines._solver_kernels: the algorithms, their tuning constants and the
# scaled time units they work in); this module packs systems for them and checks and packages their results.


@dataclass(frozen=True)
class Allocation:
    """One round's control decision and its expected performance under eq. (1)-(5) of ``model.md``.

    :param draft_lengths: L_k, tokens drafted by user k this round, int64 in 0..L_max; shape (K,)
    :param bandwidth: b_k, fraction of the uplink band given to user k; >= 0, exactly 0
        where L_k = 0, summing to 1 when anyone drafts (all zeros otherwise); shape (K,)
    :param goodput: G, expected sum token goodput of this allocation, eq. (5), tokens/s
    :param sync_time: tau, end of the upload phase, eq. (1), s (0 when nobody drafts)
    :param latency: T = tau + T_ver + T_dl, expected round latency, eq. (3), s
    :param objective: sum_k w_k E[n_k] / T, the weighted goodput of eq. (5w) that P-hom and P-het maximise for the
        system's weights (``RoundParams.weights``), weighted tokens/s; None (the default): the goodput (no weights)
    """

    draft_lengths: IntArray
    bandwidth: FloatArray
    goodput: float
    sync_time: float
    latency: float
    objective: float | None = None

    def __post_init__(self) -> None:
        if self.objective is None:
            object.__setattr__(self, "objective", self.goodput)
        # Frozen result: hold read-only copies of the arrays.
        for name in ("draft_lengths", "bandwidth"):
            arr = np.array(getattr(self, name))
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


# --------------------------------------------------------------------------- helpers


def _check_params(params: object) -> RoundParams:
    if not isinstance(params, RoundParams):
        raise TypeError(
            f"params must be a multispin_env.model.RoundParams (validated system description), "
            f"got {type(params).__name__}"
        )
    return params


def _server_only_latency(params: RoundParams) -> float:
    """Latency of a round in which nobody drafts, T_ver(K) + T_dl (eq. (2'), (3) with L = 0), s.

    Every allocation's latency is at least this (T_ver does not decrease with the batch), and every solver
    divides by it.
    """
    base = float(verification_times(float(params.num_users), params.verify_profile_points)) + params.downlink_time
    if not math.isfinite(base):
        raise ValueError(
            "verify_base + verify_per_token * K + downlink_time overflows float64: the round latency cannot be "
            f"represented (verify_base={params.verify_base}, verify_per_token={params.verify_per_token}, "
            f"downlink_time={params.downlink_time}, K={params.num_users})"
        )
    return base


def _rest_latency(params: RoundParams, unit: float) -> FloatArray:
    """(T_ver(K + S) + T_dl) / unit for S = 0..K L_max drafted tokens in the batch (eq. (2'), (3)): the
    latency of a round besides its sync time, in units of ``unit``."""
    batch = params.num_users + np.arange(params.num_users * params.max_draft + 1, dtype=np.float64)
    return (verification_times(batch, params.verify_profile_points) + params.downlink_time) / unit


def _deadline(params: RoundParams, unit: float) -> float:
    """The upload deadline U (eq. (1')) in units of ``unit`` (inf without one): an allocation whose sync time
    exceeds it loses the late users' drafts, so no optimum has one; the solvers treat it as a constraint."""
    return params.deadline / unit


def _check_round(latency: float, tokens: float, lengths: IntArray, tau: float) -> float:
    """The goodput tokens / latency (tokens/s); ValueError naming the settings when it or the latency (s)
    left the float64 range."""
    if not math.isfinite(latency):
        raise ValueError(
            f"the round latency of draft lengths {lengths.tolist()} overflows float64 (sync time {tau} s): "
            "draft_time, upload_time, verify_base, verify_per_token or downlink_time is too large for this allocation"
        )
    goodput = float(tokens) / float(latency)  # Python floats: an overflow gives inf, rejected here
    if not math.isfinite(goodput):
        raise ValueError(
            f"the goodput of a {latency:g} s round overflows float64: verify_base + verify_per_token * K + "
            "downlink_time is too small to describe a round"
        )
    return goodput


def _make_allocation(params: RoundParams, lengths: IntArray, shares: FloatArray) -> Allocation:
    """Package lengths and shares; goodput, sync time and latency via the model's eq. (1)-(5), (1'), (2').

    A user whose upload would end after the deadline is dropped (one token, L_k = 0 in the batch, tau = the
    deadline): that is what the round does with such an allocation (only the heterogeneity-unaware baselines
    return one). Raises ValueError naming the settings when this allocation's latency exceeds the float64
    range (e.g. the fixed baseline giving a user with upload_time = 1e308 s/token a draft). The compiled
    solvers score their results with the same function (``_solver_kernels._outcome``).
    """
    from baselines import _solver_kernels as kernels

    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    shares = np.where(lengths > 0, shares, 0.0)
    profile_tokens, profile_seconds = params.verify_profile_points
    goodput, tau, latency, status = kernels._outcome(
        lengths,
        shares,
        params.draft_time,
        params.upload_time,
        params.token_table,
        profile_tokens,
        profile_seconds,
        params.downlink_time,
        params.deadline,
    )
    raise_for_status(params, status, lengths, tau, latency)
    objective = None
    if params.weights is not None:  # eq. (5w) of the same allocation
        objective, *_ = kernels._outcome(
            lengths,
            shares,
            params.draft_time,
            params.upload_time,
            params.token_table * params.weights[:, None],
            profile_tokens,
            profile_seconds,
            params.downlink_time,
            params.deadline,
        )
    return Allocation(lengths, shares, goodput, tau, latency, objective)


def score_allocation(params: RoundParams, draft_lengths: ArrayLike, bandwidth: ArrayLike) -> Allocation:
    """The expected performance (eq. (1)-(5), and (5w) with the system's weights) of given draft lengths L_k
    (tokens, 0..L_max) and bandwidth shares b_k (fractions, used where L_k > 0), as the solvers score theirs.

    :param params: the round's system
    :param draft_lengths: L_k, shape (K,)
    :param bandwidth: b_k, shape (K,), normalised by the caller over the drafting users
    """
    return _make_allocation(params, np.asarray(draft_lengths), np.asarray(bandwidth, dtype=np.float64))


def _equal_finish_shares(params: RoundParams, lengths: IntArray) -> FloatArray:
    """The best shares for fixed lengths, as :func:`multispin_env.model.optimal_bandwidth` (model.md section 3),
    computed the solvers' overflow-safe way (in units of the drafting users' largest t_k or c_k)."""
    from baselines import _solver_kernels as kernels

    shares = np.zeros(params.num_users)
    kernels._equal_finish_shares(
        np.ascontiguousarray(lengths, dtype=np.int64), params.draft_time, params.upload_time, shares
    )
    return shares


# --------------------------------------------------------------------------- P-hom and P-het (compiled, batched)


def _as_systems(systems: object) -> list[RoundParams]:
    if isinstance(systems, RoundParams) or not isinstance(systems, Sequence):
        raise TypeError(f"systems must be a sequence of RoundParams, got {type(systems).__name__}")
    if len(systems) == 0:
        raise ValueError("systems must hold at least one RoundParams, got an empty sequence")
    for index, params in enumerate(systems):
        if not isinstance(params, RoundParams):
            raise TypeError(f"systems[{index}] must be a multispin_env.model.RoundParams, got {type(params).__name__}")
    return list(systems)


@dataclass(frozen=True)
class PackedSystems:
    """N systems as the flat arrays the compiled solvers read (users of all systems concatenated).

    :param user_start: (N + 1,) system i owns users ``user_start[i]:user_start[i + 1]``
    :param draft_time: t_k, s/token, (U,)
    :param upload_time: c_k, s/token, (U,)
    :param token_table: E[n_k | L] for L = 0..L_max of its system (zero-padded), tokens, (U, max L_max + 1)
    :param max_draft: L_max per system, tokens, (N,)
    :param profile_start: (N + 1,) system i's verification profile (eq. (2')) is
        ``profile_start[i]:profile_start[i + 1]`` of ``profile_tokens`` (tokens) and ``profile_seconds`` (s)
    :param downlink_time: T_dl per system, s, (N,)
    :param deadline: upload deadline per system, s (inf: none), (N,)
    :param weights: w_k of the objective sum_k w_k E[n_k] / T (eq. (5w)), each in [0, MAX_WEIGHT], (U,); a system
        whose weights are all 0 gets L_k = 0; None: every weight 1 (the goodput, eq. (5))
    :param check: validate the layout and values (ValueError); :meth:`of` skips it for validated RoundParams
    """

    user_start: IntArray
    draft_time: FloatArray
    upload_time: FloatArray
    token_table: FloatArray
    max_draft: IntArray
    profile_start: IntArray
    profile_tokens: FloatArray
    profile_seconds: FloatArray
    downlink_time: FloatArray
    deadline: FloatArray
    weights: FloatArray | None = None
    #: Check the layout and values (False only for packs built from validated RoundParams by :meth:`of`).
    check: InitVar[bool] = True

    def __post_init__(self, check: bool) -> None:
        # The compiled code does not bound-check: a malformed pack is refused here, not read out of bounds.
        if not check:
            return
        set_ = object.__setattr__
        for name in ("user_start", "max_draft", "profile_start"):
            value = np.asarray(getattr(self, name))
            if value.ndim != 1 or value.dtype.kind not in "iu":
                raise ValueError(f"PackedSystems.{name} must be a 1-D integer array, got {value.dtype} {value.shape}")
            set_(self, name, np.ascontiguousarray(value, dtype=np.int64))
        for name in (
            "draft_time",
            "upload_time",
            "token_table",
            "profile_tokens",
            "profile_seconds",
            "downlink_time",
            "deadline",
        ):
            value = np.asarray(getattr(self, name))
            if value.dtype.kind not in "iuf":
                raise ValueError(f"PackedSystems.{name} must hold real numbers, got {value.dtype}")
            set_(self, name, np.ascontiguousarray(value, dtype=np.float64))
        n, starts = self.max_draft.size, self.user_start
        users, profiles = self.draft_time.size, self.profile_start
        if n == 0 or starts.shape != (n + 1,) or profiles.shape != (n + 1,):
            raise ValueError(
                f"PackedSystems: user_start and profile_start must have N + 1 entries for N >= 1 systems "
                f"(N = {n}), got {starts.shape} and {profiles.shape}"
            )
        if starts[0] != 0 or np.any(np.diff(starts) < 1) or starts[-1] != users:
            raise ValueError(f"PackedSystems.user_start must rise from 0 to the {users} users, >= 1 user per system")
        if self.upload_time.shape != (users,) or self.draft_time.ndim != 1:
            raise ValueError("PackedSystems: draft_time and upload_time must be 1-D with one entry per user")
        if (
            np.any(self.max_draft < 1)
            or self.token_table.ndim != 2
            or self.token_table.shape[0] != users
            or self.token_table.shape[1] < int(self.max_draft.max()) + 1
        ):
            raise ValueError("PackedSystems: max_draft must be >= 1 and token_table (users, >= max L_max + 1)")
        if (
            profiles[0] != 0
            or np.any(np.diff(profiles) < 2)
            or profiles[-1] != self.profile_tokens.size
            or self.profile_seconds.shape != self.profile_tokens.shape
        ):
            raise ValueError("PackedSystems: each verification profile needs >= 2 (tokens, seconds) points")
        if self.downlink_time.shape != (n,) or self.deadline.shape != (n,):
            raise ValueError(f"PackedSystems: downlink_time and deadline must have one entry per system ({n})")
        finite = (
            self.draft_time,
            self.upload_time,
            self.token_table,
            self.profile_tokens,
            self.profile_seconds,
            self.downlink_time,
        )
        if not all(np.all(np.isfinite(a)) for a in finite) or np.any(np.isnan(self.deadline)):
            raise ValueError("PackedSystems: times, tables and profiles must be finite (deadline: inf for none)")
        if np.any(self.draft_time <= 0.0) or np.any(self.upload_time <= 0.0) or np.any(self.deadline <= 0.0):
            raise ValueError("PackedSystems: draft_time, upload_time and deadline must be > 0 s")
        if self.weights is not None:
            weights = np.asarray(self.weights)
            if weights.dtype.kind not in "iuf" or weights.shape != (users,):
                raise ValueError(
                    f"PackedSystems.weights must hold one real number per user ({users}), got {weights.shape}"
                )
            weights = np.ascontiguousarray(weights, dtype=np.float64)
            if not np.all(WEIGHT_RANGE.holds(weights)):
                raise ValueError(f"PackedSystems.weights must be finite and in [0, {MAX_WEIGHT:g}]")
            set_(self, "weights", weights)

    @classmethod
    def of(cls, systems: Sequence[RoundParams]) -> PackedSystems:
        """Pack validated systems (each a :class:`multispin_env.model.RoundParams`)."""
        sizes = np.array([p.num_users for p in systems], dtype=np.int64)
        user_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        max_draft = np.array([p.max_draft for p in systems], dtype=np.int64)
        table = np.zeros((int(user_start[-1]), int(max_draft.max()) + 1))
        for i, p in enumerate(systems):
            table[user_start[i] : user_start[i + 1], : p.max_draft + 1] = p.token_table
        profiles = [p.verify_profile_points for p in systems]
        return cls(
            user_start=user_start,
            draft_time=np.concatenate([p.draft_time for p in systems]),
            upload_time=np.concatenate([p.upload_time for p in systems]),
            token_table=table,
            max_draft=max_draft,
            profile_start=np.concatenate([[0], np.cumsum([pt.size for pt, _ in profiles])]).astype(np.int64),
            profile_tokens=np.concatenate([pt for pt, _ in profiles]),
            profile_seconds=np.concatenate([ps for _, ps in profiles]),
            downlink_time=np.array([p.downlink_time for p in systems], dtype=np.float64),
            deadline=np.array([p.deadline for p in systems], dtype=np.float64),
            weights=None
            if all(p.weights is None for p in systems)
            else np.concatenate([np.ones(p.num_users) if p.weights is None else p.weights for p in systems]),
            check=False,
        )

    @classmethod
    def uniform(
        cls,
        template: RoundParams,
        draft_time: ArrayLike,
        upload_time: ArrayLike,
        survival: ArrayLike,
        active: ArrayLike | None = None,
    ) -> PackedSystems:
        """N systems that share ``template``'s K, L_max, verification profile, downlink time, deadline and user
        weights and differ in their users (e.g. the sub-envs of a vector env), packed without building N RoundParams.

        :param draft_time: t_k, s/token, (N, K), > 0
        :param upload_time: c_k, s/token, (N, K), > 0
        :param survival: P(A_k >= i) for i = 1..L_max, (N, K, L_max), in [0, 1], non-increasing in i
        :param active: which users each system has, bool (N, K), >= 1 per system (None: all K); system i is then
            its active users alone (an idle user adds nothing to a round, docs/model.md section 5.8), in order
        """
        k, lm = template.num_users, template.max_draft
        t = np.array(draft_time, dtype=np.float64)
        c = np.array(upload_time, dtype=np.float64)
        curves = np.asarray(survival, dtype=np.float64)
        if t.ndim != 2 or t.shape[1] != k or c.shape != t.shape or curves.shape != (*t.shape, lm):
            raise ValueError(
                f"draft_time and upload_time must have shape (N, {k}) and survival (N, {k}, {lm}), got "
                f"{t.shape}, {c.shape} and {curves.shape}"
            )
        n = t.shape[0]
        users = np.ones(t.shape, dtype=bool) if active is None else np.asarray(active)
        if users.shape != t.shape or users.dtype != np.bool_ or not users.any(axis=1).all():
            raise ValueError(f"active must be a bool array of shape {t.shape} with at least one user per system")
        curves = curves[users]
        _survival(curves, curves.shape[0], lm)  # RoundParams' check, the users as rows
        tokens, seconds = template.verify_profile_points
        return cls(
            user_start=np.concatenate([[0], np.cumsum(users.sum(axis=1))]).astype(np.int64),
            draft_time=t[users],
            upload_time=c[users],
            token_table=token_table(curves),
            max_draft=np.full(n, lm, dtype=np.int64),
            profile_start=np.arange(0, n * tokens.size + 1, tokens.size, dtype=np.int64),
            profile_tokens=np.tile(tokens, n),
            profile_seconds=np.tile(seconds, n),
            downlink_time=np.full(n, template.downlink_time),
            deadline=np.full(n, template.deadline),
            weights=None if template.weights is None else np.broadcast_to(template.weights, t.shape)[users],
        )


@dataclass(frozen=True)
class BatchResult:
    """The compiled solvers' output for N packed systems (see :class:`PackedSystems` for the layout).

    :param draft_lengths: L_k per user, tokens, (U,)
    :param bandwidth: b_k per user, fractions of the band, (U,)
    :param goodput: G per system, eq. (5), tokens/s, (N,)
    :param sync_time: tau per system, eq. (1), s, (N,)
    :param latency: T per system, eq. (3), s, (N,)
    :param status: 0, or why system i's round leaves the float64 range (N,); see :func:`raise_for_status`
    :param objective: sum_k w_k E[n_k] / T per system, the weighted goodput of eq. (5w) the solvers maximise,
        weighted tokens/s (N,) (the goodput for systems without weights); None where not computed
    """

    draft_lengths: IntArray
    bandwidth: FloatArray
    goodput: FloatArray
    sync_time: FloatArray
    latency: FloatArray
    status: IntArray
    objective: FloatArray | None = None


def solve_packed(problem: str, packed: PackedSystems) -> BatchResult:
    """P-hom (``problem="hom"``) or P-het (``"het"``) of every packed system in one compiled call.

    The lowest-overhead entry point; it does not raise for rounds that leave the float64 range but reports
    them in ``status``. Compiled on the first call (or loaded from numba's on-disk cache).
    """
    from baselines import _solver_kernels as kernels  # compiled lazily: importing baselines stays cheap

    if problem not in ("hom", "het"):
        raise ValueError(f"problem must be 'hom' or 'het', got {problem!r}")
    n, users = packed.max_draft.size, packed.draft_time.size
    result = BatchResult(
        np.zeros(users, dtype=np.int64),
        np.zeros(users),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        np.zeros(n),
    )
    assert result.objective is not None  # set just above
    kernels.solve_packed(
        kernels.HOM if problem == "hom" else kernels.HET,
        packed.user_start,
        packed.draft_time,
        packed.upload_time,
        packed.token_table,
        packed.max_draft,
        packed.profile_start,
        packed.profile_tokens,
        packed.profile_seconds,
        packed.downlink_time,
        packed.deadline,
        _NO_WEIGHTS if packed.weights is None else packed.weights,
        result.draft_lengths,
        result.bandwidth,
        result.goodput,
        result.objective,
        result.sync_time,
        result.latency,
        result.status,
    )
    return result


_NO_WEIGHTS = np.zeros(0)  # the compiled solver's "every weight 1"


def raise_for_status(params: RoundParams, status: int, lengths: IntArray, tau: float, latency: float) -> None:
    """Raise a ValueError naming the settings for a system whose round left the float64 range (``status`` != 0, a
    :class:`BatchResult` status); return for status 0. Shared by every caller of :func:`solve_packed`."""
    from baselines import _solver_kernels as kernels

    if status == kernels.BASE_OVERFLOW:
        _server_only_latency(params)  # raises, naming the settings
    elif status == kernels.LATENCY_OVERFLOW:
        _check_round(math.inf, 1.0, lengths, tau)
    elif status == kernels.GOODPUT_OVERFLOW:
        _check_round(latency, math.inf, lengths, tau)
    if status != 0:
        raise ValueError(f"the round of draft lengths {lengths.tolist()} leaves the float64 range")


def _solve_many(problem: str, systems: list[RoundParams]) -> list[Allocation]:
    result = solve_packed(problem, PackedSystems.of(systems))
    assert result.objective is not None  # solve_packed computes it
    allocations = []
    start = 0
    for i, params in enumerate(systems):
        stop = start + params.num_users
        lengths = result.draft_lengths[start:stop]
        tau, latency = float(result.sync_time[i]), float(result.latency[i])
        if result.status[i]:
            raise_for_status(params, int(result.status[i]), lengths, tau, latency)
        allocations.append(
            Allocation(
                lengths,
                result.bandwidth[start:stop],
                float(result.goodput[i]),
                tau,
                latency,
                float(result.objective[i]),
            )
        )
        start = stop
    return allocations


def solve_homogeneous(params: RoundParams) -> Allocation:
    """P-hom (``model.md`` section 3): the best common draft length L and the best shares.

    s* = root of sum_k c_k / (s - t_k) = 1 (s/token) gives the equal-finish shares
    b_k = c_k / (s* - t_k), the same for every L >= 1, and the sync time tau = L s*.
    The exact integer optimum of G(L) = sum_k E[n_k | L] / (L s* + T_ver(K (L + 1)) + T_dl) over L in
    0..L_max (among the L whose sync time meets the deadline, eq. (1')) is taken by evaluating every L.
    L = 0 (server-only decoding) is allowed; its bandwidth is all zeros. Ties go to the shorter draft.
    With user weights (``params.weights``) it maximises sum_k w_k E[n_k | L] / T (eq. (5w)) the same way.
    Drafting pays only if s* < T_ver(K) + T_dl, and s* >= max_k (t_k + c_k): when that already reaches it,
    L* = 0 without computing the root. The compiled batched solver (:func:`solve_batch`) with one system.

    :returns: an :class:`Allocation` with goodput in tokens/s and times in s.
    """
    return _solve_many("hom", [_check_params(params)])[0]


def solve_heterogeneous(params: RoundParams) -> Allocation:
    """P-het (``model.md`` section 3): per-user draft lengths L_k in 0..L_max and shares.

    For fixed lengths the best shares equalise the drafting users' finish times
    (b_k = L_k c_k / (tau - L_k t_k)); the lengths are searched by the
    decomposition of ``docs/heterogeneous_solver.md``:

    1. warm starts: the P-hom optimum and server-only decoding (all L_k = 0);
    2. a sweep over the sync time tau (log grid on the range any optimum can
       occupy, plus points just above the poles l t_k where a drafting-limited
       user's next token becomes possible), and at each tau the Lagrangian
       lengths of the bandwidth budget with Dinkelbach level = best G so far
       (a K-way merge of the users' falling yield-per-share ratios gives the solution for every
       multiplier mu); two zoom sweeps around the best tau;
    3. an exact-evaluation local search (any single-user change, pairwise
       +-1 moves) from up to 8 good candidates with distinct sync times,
       steepest ascent until no move improves G.

    With user weights (``params.weights``) every step maximises sum_k w_k E[n_k] / T (eq. (5w)) instead: the
    token table's rows are scaled by w_k / max_j w_j (docs/heterogeneous_solver.md, "Weighted goodput").

    Every candidate is scored with the exact goodput of eq. (5). The result is
    never worse than P-hom and is a local optimum of the moves above; it
    matched exhaustive search on every instance tested (see the doc), but global optimality is not
    proved. The compiled batched solver (:func:`solve_batch`) with one system.

    :returns: an :class:`Allocation` with goodput in tokens/s and times in s.
    """
    return _solve_many("het", [_check_params(params)])[0]


def solve_batch(solver: str, systems: Sequence[RoundParams]) -> list[Allocation]:
    """Solve N systems with the solver named ``solver`` (a key of :data:`SOLVERS`); one compiled call for
    ``hom-opt`` and ``het-opt`` (the equal-share baselines are solved one by one).

    :param solver: ``equal-fixed``, ``equal-tuned``, ``hom-opt`` or ``het-opt``
    :param systems: the N systems, each a :class:`multispin_env.model.RoundParams` (any K, L_max, curves,
        profiles and deadlines may be mixed)
    :returns: N allocations, equal to ``SOLVERS[solver].solve(systems[i])``
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {list(SOLVERS)}")
    systems = _as_systems(systems)
    problem = SOLVERS[solver].packed
    if problem is None:
        return [SOLVERS[solver].solve(params) for params in systems]
    return _solve_many(problem, systems)


# --------------------------------------------------------------------------- equal-share baselines


def _equal_shares(k: int, length: int) -> FloatArray:
    return np.full(k, 1.0 / k) if length > 0 else np.zeros(k)


def equal_bandwidth_fixed(params: RoundParams, draft_length: int | None = None) -> Allocation:
    """Baseline equal-fixed (``model.md`` section 7): b_k = 1/K and L_k = L for every user.

    :param draft_length: the common L in tokens, an integer in 0..L_max; ``None``
        (default) means the model.md default 4, capped at L_max.
    :returns: an :class:`Allocation`; its goodput (tokens/s) is eq. (5) of this allocation.
    """
    params = _check_params(params)
    if draft_length is None:
        length = min(4, params.max_draft)
    else:
        if isinstance(draft_length, (bool, np.bool_)) or not isinstance(draft_length, (int, np.integer, float)):
            raise ValueError(f"draft_length must be an integer in 0..{params.max_draft}, got {draft_length!r}")
        if not (math.isfinite(draft_length) and float(draft_length).is_integer()):
            raise ValueError(f"draft_length must be an integer in 0..{params.max_draft}, got {draft_length!r}")
        length = int(draft_length)
        if not 0 <= length <= params.max_draft:
            raise ValueError(f"draft_length must be an integer in 0..{params.max_draft} (max_draft), got {length}")
    k = params.num_users
    return _make_allocation(params, np.full(k, length, dtype=np.int64), _equal_shares(k, length))


def equal_bandwidth_tuned(params: RoundParams) -> Allocation:
    """Baseline equal-tuned (``model.md`` section 7): b_k = 1/K and one L tuned for the average user.

    L maximises K N_bar(L) / (L (t_bar + K c_bar) + T_ver(K (L + 1)) + T_dl) over the L whose sync time
    L (t_bar + K c_bar) meets the deadline: the goodput if all K users were the average user (N_bar(L) =
    N(a_bar, L) of the mean rate for i.i.d. acceptance, else the E[n | L] of the users' mean acceptance curve),
    with the mean draft time and upload time (with b = 1/K each user uploads L tokens
    in L K c_bar s). This is heterogeneity-unaware; the returned ``goodput`` is the true eq. (5) value of
    the allocation with the real per-user parameters (tokens/s).
    """
    params = _check_params(params)
    k = params.num_users
    base = _server_only_latency(params)
    lengths = np.arange(params.max_draft + 1)
    # The average user's E[n | L]: with i.i.d. rates the paper's N(a_bar, L) of the mean rate; with other curves
    # (survival given) the users' mean curve.
    positions = np.arange(1, params.max_draft + 1)
    iid = np.allclose(params.survival, params.acceptance[:, None] ** positions, rtol=1e-12, atol=0.0)
    curve = float(params.acceptance.mean()) ** positions if iid else params.survival.mean(axis=0)
    mean_tokens = np.concatenate([[1.0], 1.0 + np.cumsum(curve)])
    # Sync time L (t_bar + K c_bar) in units of base (a mean user with t or c near 1e308 s makes this inf, and
    # then only L = 0 can be right).
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = (float(params.draft_time.mean()) + k * float(params.upload_time.mean())) / base
        if math.isfinite(ratio):
            sync = lengths * ratio
            rest = _rest_latency(params, base)[k * lengths]
            guess = np.where(sync <= _deadline(params, base), mean_tokens / (sync + rest), -np.inf)
        else:
            guess = (lengths == 0).astype(np.float64)
    length = int(np.argmax(guess))  # first maximiser: the shortest draft among ties
    return _make_allocation(params, np.full(k, length, dtype=np.int64), _equal_shares(k, length))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class SolverSpec:
    """One per-round controller of this module, as listed in :data:`SOLVERS`.

    :param name: the controller's name in policies, reports and figures (e.g. ``het-opt``)
    :param solve: RoundParams -> Allocation
    :param common_length: True if every user gets the same draft length (expressible in
        ``MultiSpin-Homogeneous-v0``); False if lengths are per user (needs the heterogeneous env)
    :param per_information_level: True if the policy layer offers it at each information level
        (static / adaptive / oracle parameters); False for the heterogeneity-unaware baselines,
        which are solved once from the mean parameters
    :param problem: what it solves, with the ``model.md`` section
    :param packed: the problem of :func:`solve_packed` its compiled batched form solves (``hom``, ``het``); None:
        :func:`solve_batch` solves the systems one by one
    """

    name: str
    solve: Callable[[RoundParams], Allocation]
    common_length: bool
    per_information_level: bool
    problem: str
    packed: str | None = None


#: Every solver by name, in report order (baselines first). Read-only.
SOLVERS: Mapping[str, SolverSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            SolverSpec("equal-fixed", equal_bandwidth_fixed, True, False, "b_k = 1/K, L = 4 (model.md section 7)"),
            SolverSpec(
                "equal-tuned", equal_bandwidth_tuned, True, False, "b_k = 1/K, L tuned for the mean user (section 7)"
            ),
            SolverSpec("hom-opt", solve_homogeneous, True, True, "P-hom: best common L and shares (section 3)", "hom"),
            SolverSpec(
                "het-opt", solve_heterogeneous, False, True, "P-het: best per-user L_k and shares (section 3)", "het"
            ),
        )
    }
)
