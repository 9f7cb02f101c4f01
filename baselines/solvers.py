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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from multispin_env.model import (
    FloatArray,
    RoundParams,
    equal_finish_time,
    expected_user_tokens,
    finish_time,
    verification_times,
    verify_time,
)

__all__ = [
    "Allocation",
    "SolverSpec",
    "SOLVERS",
    "solve_homogeneous",
    "solve_heterogeneous",
    "equal_bandwidth_fixed",
    "equal_bandwidth_tuned",
]

IntArray = NDArray[np.int64]

# Heterogeneous-solver tuning (see docs/heterogeneous_solver.md, sections 3-4).
_GRID_POINTS = 24  # log-spaced sync times in the global sweep and in each zoom round
_POLE_OFFSETS = np.array([0.003, 0.01, 0.03, 0.1])  # relative offsets above the poles l * t_k
_MAX_POLES = 96  # cap on distinct poles swept (evenly thinned beyond it)
_ZOOM_ROUNDS = 2  # refinement sweeps around the best sync time found
_ZOOM_WIDTH = 0.1  # half-width (log scale) of the first zoom sweep
_LOCAL_STARTS = 8  # best candidates (with distinct sync times) polished by local search
_START_MARGIN = 0.05  # starts must be within 5 % of the best candidate's goodput
_START_SPREAD = 0.02  # minimum |log tau| distance between local-search starts
_IMPROVE_RTOL = 1e-13  # a local-search move must raise G by more than this (relative)
_UNION_MOVES = 1 << 16  # (starts x moves) above which singles are tried before pairs
# The optimisers work in scaled time units (G depends on the unit only through a common factor;
# the shares not at all), so settings anywhere in the float range give quantities of order 1: the
# length search in units of the server-only latency T0 + kappa K + T_dl, equal-finish roots in
# units of the drafting users' largest t_k or c_k. Scaled per-user times below _FLOOR are raised to
# it, which keeps reciprocals such as 1 / (tau - L_k t_k) finite; in the search this moves the
# latency (>= 1 unit) by at most L_max K _FLOOR units, far below rounding.
_FLOOR = 1e-300
# Uploads are at least this fraction of the drafting time (see _scaled), which moves tau by at most
# as much, relative: far below the 1e-9 to which the solvers are checked against exhaustive search.
_MIN_UPLOAD_RATIO = 1e-12
_T_FLOOR = _FLOOR / _MIN_UPLOAD_RATIO  # so that c_k >= _MIN_UPLOAD_RATIO t_k is >= _FLOOR too


@dataclass(frozen=True)
class Allocation:
    """One round's control decision and its expected performance under eq. (1)-(5) of ``model.md``.

    :param draft_lengths: L_k, tokens drafted by user k this round, int64 in 0..L_max; shape (K,)
    :param bandwidth: b_k, fraction of the uplink band given to user k; >= 0, exactly 0
        where L_k = 0, summing to 1 when anyone drafts (all zeros otherwise); shape (K,)
    :param goodput: G, expected sum token goodput of this allocation, eq. (5), tokens/s
    :param sync_time: tau, end of the upload phase, eq. (1), s (0 when nobody drafts)
    :param latency: T = tau + T_ver + T_dl, expected round latency, eq. (3), s
    """

    draft_lengths: IntArray
    bandwidth: FloatArray
    goodput: float
    sync_time: float
    latency: float

    def __post_init__(self) -> None:
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
    range (e.g. the fixed baseline giving a user with upload_time = 1e308 s/token a draft).
    """
    lengths = lengths.astype(np.int64, copy=False)
    shares = np.where(lengths > 0, shares, 0.0)
    with np.errstate(over="ignore"):  # an overflowing finish time becomes inf, rejected below
        finish = finish_time(lengths, params.draft_time, params.upload_time, shares)
        dropped = finish > params.deadline
        kept = np.where(dropped, 0, lengths)
        tau = params.deadline if dropped.any() else float(finish.max())
        latency = tau + float(verify_time(kept, params)) + params.downlink_time
    goodput = _check_round(latency, float(expected_user_tokens(params, kept).sum()), lengths, tau)
    return Allocation(draft_lengths=lengths, bandwidth=shares, goodput=goodput, sync_time=tau, latency=latency)


def _sync_times(lengths: FloatArray, draft_time: FloatArray, upload_time: FloatArray) -> FloatArray:
    """Equal-finish sync time tau(L) for a batch of length vectors (rows), s; 0 for an all-zero row.

    The root of sum_k L_k c_k / (tau - L_k t_k) = 1 (model.md section 3), solved by
    :func:`multispin_env.model.equal_finish_time` with work = L c and offset = L t.
    """
    return equal_finish_time(lengths * upload_time, lengths * draft_time)


# --------------------------------------------------------------------------- P-hom


def _scaled(draft_time: FloatArray, upload_time: FloatArray, unit: float) -> tuple[FloatArray, FloatArray]:
    """t_k / unit and c_k / unit, floored (see _FLOOR); callers guard against overflow of the quotients.

    c_k is raised to _MIN_UPLOAD_RATIO t_k. Newton in :func:`multispin_env.model.equal_finish_time`
    starts at max_k L_k (t_k + c_k); for a user whose upload is below ~1e-14 of its drafting time
    that start sits on its pole, the first step falls under the stopping tolerance and the root
    returned is wrong (F = 1.36 instead of 1 in a 3-user case), and below 2 eps the start is the
    pole itself (division by zero).
    """
    t = np.maximum(draft_time / unit, _T_FLOOR)
    return t, np.maximum(upload_time / unit, t * _MIN_UPLOAD_RATIO)


def _normalised_shares(work: FloatArray, gap: FloatArray) -> FloatArray:
    """Shares w_k / gap_k (gap_k = tau - L_k t_k) scaled to sum to 1; 0 where w_k = 0 (model.md section 3).

    With a user whose drafting alone nearly fills the sync time (gap_k << tau), tau is known only
    to an ulp, which leaves the sum of the shares off 1 by up to ulp(tau) sum_k w_k / gap_k^2;
    scaling every share by that sum would delay the other users by as much, relative. Instead the
    user with the largest w_k / gap_k^2 (whose finish time depends least on its share) takes the
    remainder 1 - sum of the others, and every user finishes at tau to about an ulp.
    """
    shares = work / gap  # callers give gap > 0 everywhere and some w_k > 0
    total = float(shares.sum())
    if abs(total - 1.0) <= 1e-12:
        return shares / total
    r = int(np.argmax(shares / gap))
    rest = total - shares[r]
    if rest < 1.0:
        shares[r] = 1.0 - rest
        return shares
    return shares / total


def _equal_finish_shares(params: RoundParams, lengths: IntArray) -> FloatArray:
    """The best shares for fixed lengths, as :func:`multispin_env.model.optimal_bandwidth` (model.md section 3).

    Computed in units of the drafting users' largest t_k or c_k (the shares do not depend on the
    unit), so that times near the float maximum or minimum cannot overflow; normalised by
    :func:`_normalised_shares`.
    """
    drafting = lengths > 0
    if not drafting.any():
        return np.zeros(lengths.shape)
    unit = max(float(params.draft_time[drafting].max()), float(params.upload_time[drafting].max()))
    # Non-drafting users get unit times (no overflow); their work L_k c_k is 0 and their gap tau > 0.
    t, c = _scaled(np.where(drafting, params.draft_time, unit), np.where(drafting, params.upload_time, unit), unit)
    work, offset = lengths * c, lengths * t
    tau = float(equal_finish_time(work, offset))
    return _normalised_shares(work, tau - offset)


def _solve_hom_core(params: RoundParams) -> tuple[int, float, float, FloatArray, FloatArray]:
    """P-hom core in units of base = T_ver(K) + T_dl: (L*, G(L*) * base, s* / base, sum_k E[n_k](L) for
    L = 0..L_max in tokens, shares b_k).

    G(L) = sum_k E[n_k](L) / (L s* + T_ver(K (L + 1)) + T_dl) (eq. (2')-(5) with tau = L s*), over the
    lengths whose sync time L s* meets the deadline (eq. (1')). Since E[n_k](L) <= L + 1 and T_ver does not
    decrease, G(L) <= K (L + 1) / (L s* + base), which is at most G(0) = K / base unless s* < base: drafting
    pays only then. And s* >= max_k (t_k + c_k) (the sum is >= 1 there), so when that already reaches base
    the root is not needed: L* = 0 exactly, s* is reported as inf and the shares as zeros. This also keeps
    a user whose upload or draft takes ~1e308 s out of all arithmetic.
    """
    k = params.num_users
    t, c = params.draft_time, params.upload_time
    base = _server_only_latency(params)
    lengths = np.arange(params.max_draft + 1)
    tokens = params.token_table.sum(axis=0)  # sum_k E[n_k](L), eq. (4) for any acceptance curve
    # s* >= max_k (t_k + c_k) >= unit: no root needed when that reaches base.
    unit = float(np.maximum(t, c).max())
    if not unit < base:
        return 0, float(k), math.inf, tokens, np.zeros(k)
    # s* in units of unit (t_k, c_k <= 1: no overflow), then in units of base.
    t_u, c_u = _scaled(t, c, unit)
    root = float(equal_finish_time(c_u, t_u))
    s_star = root * (unit / base)
    sync = lengths * s_star
    rest = _rest_latency(params, base)[k * lengths]  # (T_ver(K (L + 1)) + T_dl) / base
    scaled = np.where(sync <= _deadline(params, base), tokens / (sync + rest), -np.inf)  # G(L) * base, all L
    best = int(scaled.argmax())  # first maximiser: the shortest draft among ties (L = 0 is always feasible)
    if best == 0:
        return 0, float(scaled[0]), s_star, tokens, np.zeros(k)
    # optimal_bandwidth's shares for L_k = 1 (any common L gives the same), from the root just found.
    return best, float(scaled[best]), s_star, tokens, _normalised_shares(c_u, root - t_u)


def solve_homogeneous(params: RoundParams) -> Allocation:
    """P-hom (``model.md`` section 3): the best common draft length L and the best shares.

    s* = root of sum_k c_k / (s - t_k) = 1 (s/token) gives the equal-finish shares
    b_k = c_k / (s* - t_k), the same for every L >= 1, and the sync time tau = L s*.
    The exact integer optimum of G(L) over L in 0..L_max is taken by evaluating
    every L in one array expression. L = 0 (server-only decoding) is allowed;
    its bandwidth is all zeros. Ties go to the shorter draft.

    :returns: an :class:`Allocation` with goodput in tokens/s and times in s.
    """
    params = _check_params(params)
    best, _, _, tokens, shares = _solve_hom_core(params)
    return _hom_allocation(params, best, tokens, shares)


def _hom_allocation(params: RoundParams, best: int, tokens: FloatArray, shares: FloatArray) -> Allocation:
    """The P-hom allocation from :func:`_solve_hom_core`'s L*, token sums and shares."""
    k = params.num_users
    lengths = np.full(k, best, dtype=np.int64)
    if best == 0:
        shares = np.zeros(k)
        tau = 0.0
    else:
        # Eq. (1) with these shares (equals best * s* up to rounding).
        tau = best * float((params.draft_time + params.upload_time / shares).max())
    latency = tau + float(verify_time(lengths, params)) + params.downlink_time
    return Allocation(lengths, shares, _check_round(latency, float(tokens[best]), lengths, tau), tau, latency)


# --------------------------------------------------------------------------- P-het


@dataclass(frozen=True)
class _Moves:
    """A set of local-search moves: user ``first`` gets ``value_i`` (added to its current length
    where ``relative``), and where ``two`` user ``second`` gets its current length + ``delta_j``."""

    first: IntArray
    second: IntArray
    value_i: IntArray
    delta_j: IntArray
    relative: NDArray[np.bool_]
    two: NDArray[np.bool_]

    def part(self, rows: slice) -> _Moves:
        return _Moves(*(getattr(self, f)[rows] for f in ("first", "second", "value_i", "delta_j", "relative", "two")))


@lru_cache(maxsize=64)
def _move_tables(k: int, max_draft: int) -> tuple[_Moves, int]:
    """The local-search neighbourhood for K users and the number of single-user moves (listed first).

    Singles: every user k to every length v in 0..L_max (no-ops are dropped per
    state). Pairs: every i < j changed by (delta_i, delta_j) in {-1, +1}^2.
    """
    single_user, single_value = np.divmod(np.arange(k * (max_draft + 1)), max_draft + 1)
    first, second = np.triu_indices(k, 1)
    signs = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]])
    n_single, n_pair = single_user.size, 4 * first.size
    moves = _Moves(
        first=np.concatenate([single_user, np.tile(first, 4)]),
        second=np.concatenate([single_user, np.tile(second, 4)]),
        value_i=np.concatenate([single_value, np.repeat(signs[:, 0], first.size)]),
        delta_j=np.concatenate([np.zeros(n_single, dtype=np.int64), np.repeat(signs[:, 1], first.size)]),
        relative=np.repeat([False, True], [n_single, n_pair]),
        two=np.repeat([False, True], [n_single, n_pair]),
    )
    for name in ("first", "second", "value_i", "delta_j", "relative", "two"):
        getattr(moves, name).setflags(write=False)
    return moves, n_single


class _HetProblem:
    """Arrays of one P-het instance (users on axis 0, draft positions l = 1..L_max on axis 1).

    ``draft_time`` and ``upload_time`` are t_k and c_k in units of the server-only latency
    ``unit`` = T0 + kappa K + T_dl (:func:`_scaled`; users that can never draft profitably get finite stand-ins, see
    :func:`solve_heterogeneous`).
    """

    def __init__(self, params: RoundParams, draft_time: FloatArray, upload_time: FloatArray, unit: float) -> None:
        self.k = params.num_users
        self.max_draft = params.max_draft
        self.a = params.acceptance
        # Times in units of the server-only latency ``unit`` (see _FLOOR); goodputs are G * unit.
        self.t = draft_time
        self.c = upload_time
        # Latency of the round besides its sync time, by drafted tokens S in the batch (eq. (2'), (3)): 1 at
        # S = 0 in these units, non-decreasing.
        self.rest = _rest_latency(params, unit)
        # The per-token verification costs the Lagrangian greedy tries: each segment slope of T_ver in reach
        # (one for the affine eq. (2); 0 and kappa with a knee; a measured profile's slopes).
        self.kappas = np.unique(np.round(np.diff(self.rest), 15)) if self.rest.size > 1 else np.zeros(1)
        self.deadline = _deadline(params, unit)
        self.tokens = params.token_table  # (K, L_max+1): E[n_k](L) for any acceptance curve
        self.gain = np.diff(self.tokens, axis=1)  # a_k^l, the l-th draft token's expected yield
        positions = np.arange(1, self.max_draft + 1, dtype=np.float64)
        self.offset = self.t[:, None] * positions  # l t_k: earliest finish of an l-token draft
        self.work = self.c[:, None] * positions  # l c_k: its upload time with the whole band
        self.rows = np.arange(self.k)

    def goodput(self, lengths: IntArray) -> tuple[FloatArray, FloatArray]:
        """Exact G(L) with equal-finish shares and the sync time tau(L), for a batch of rows."""
        tau = _sync_times(lengths.astype(np.float64), self.t, self.c)
        tokens = self.tokens[self.rows, lengths].sum(axis=-1)
        value = tokens / (tau + self.rest[lengths.sum(axis=-1)])
        return np.where(tau <= self.deadline, value, -np.inf), tau  # past the deadline: infeasible (eq. (1'))

    def greedy(self, tau: FloatArray, level: float) -> IntArray:
        """:meth:`greedy_at` for every per-token verification cost in ``kappas``; returns (2 n len(kappas), K)."""
        return np.concatenate([self.greedy_at(tau, level, kappa) for kappa in self.kappas])

    def greedy_at(self, tau: FloatArray, level: float, kappa: float) -> IntArray:
        """Lagrangian lengths for each fixed sync time in ``tau`` (shape (n,)); returns (2n, K).

        At fixed tau, user k's l-th token costs the share increment
        w_k(tau, l) - w_k(tau, l-1), w_k(tau, l) = l c_k / (tau - l t_k), and
        yields P(A_k >= l) - level * kappa tokens (Dinkelbach; kappa one slope of T_ver, the prefix's own
        ratio below uses the exact T_ver). Yields fall and costs
        rise with l, so sorting all increments by yield per share and taking a
        prefix is the Lagrangian solution for every multiplier at once. Per tau
        we keep the prefix with the best fixed-tau ratio among those fitting
        the budget, and that prefix plus the next increment.
        """
        n = tau.size
        k, lm = self.k, self.max_draft
        gap = tau[:, None, None] - self.offset
        ok = gap > 0.0
        share = self.work / np.where(ok, gap, 1.0)  # finite everywhere; used only where ok
        cost = share.copy()
        cost[..., 1:] -= share[..., :-1]
        gain = self.gain - level * kappa
        eff = np.full(cost.shape, -np.inf)
        np.divide(np.broadcast_to(gain, cost.shape), cost, out=eff, where=ok & (gain > 0.0))
        flat = eff.reshape(n, k * lm)
        order = np.argsort(flat, axis=1)[:, ::-1]  # best yield per share first
        eff_sorted = np.take_along_axis(flat, order, axis=1)
        valid = eff_sorted > -np.inf  # a prefix of each row
        cum_cost = np.cumsum(np.take_along_axis(cost.reshape(n, k * lm), order, axis=1), axis=1)
        cum_tokens = k + np.cumsum(self.gain.reshape(-1)[order], axis=1)
        fits = valid & (cum_cost <= 1.0)
        count = np.arange(1, k * lm + 1)
        ratio = np.where(fits, cum_tokens / (tau[:, None] + self.rest[count]), -np.inf)
        rows = np.arange(n)
        best = ratio.argmax(axis=1)
        has = fits[rows, best]
        nxt = np.minimum(np.where(has, best + 1, 0), k * lm - 1)
        # Per user, yields per share fall with l, so "taken" = "at least the threshold".
        cut_best = np.where(has, eff_sorted[rows, best], np.inf)
        cut_next = np.where(valid[rows, nxt], eff_sorted[rows, nxt], cut_best)
        out = np.empty((2 * n, k), dtype=np.int64)
        out[:n] = (eff >= cut_best[:, None, None]).sum(axis=-1)
        out[n:] = (eff >= cut_next[:, None, None]).sum(axis=-1)
        return out

    def local_search(
        self, starts: IntArray, values: FloatArray, taus: FloatArray
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Steepest ascent from each start (rows) over single-user changes and pairwise +-1 moves.

        Moves: any user to any other length ("singles"), and any pair (i, j) by
        (+-1, +-1) ("pairs"). For small K each step takes the best improving move
        of both sets; for large K a start first takes its best single and looks
        at the pairs only when no single improves (variable-neighbourhood
        descent, same end condition). All starts climb together; starts that
        meet are merged. Returns the local optima (rows), goodputs and sync times.
        """
        k, lm = self.k, self.max_draft
        moves, n_single = _move_tables(k, lm)
        split = starts.shape[0] * moves.first.size > _UNION_MOVES
        singles, pairs = moves.part(slice(0, n_single)), moves.part(slice(n_single, None))
        lengths, value, tau = starts.copy(), values.astype(np.float64), taus.astype(np.float64)
        active = np.ones(lengths.shape[0], dtype=bool)
        for _ in range(4 * k * lm + 16):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            if split:
                stuck = idx[~self._climb(idx, singles, lengths, value, tau)]
                if stuck.size:
                    active[stuck[~self._climb(stuck, pairs, lengths, value, tau)]] = False
            else:
                active[idx[~self._climb(idx, moves, lengths, value, tau)]] = False
            live = np.flatnonzero(active)
            if live.size > 1:  # starts that met climb identically from here on
                active[np.setdiff1d(live, live[_distinct_rows(lengths[live])])] = False
        return lengths, value, tau

    def _climb(
        self, idx: IntArray, moves: _Moves, lengths: IntArray, value: FloatArray, tau: FloatArray
    ) -> NDArray[np.bool_]:
        """One ascent step of the states ``idx`` over ``moves``; updates them in place, returns which moved."""
        moved = np.zeros(idx.size, dtype=bool)
        if moves.first.size == 0:
            return moved
        group = max(1, _UNION_MOVES // moves.first.size)  # bound the (states x moves) temporaries
        for lo in range(0, idx.size, group):
            sub = slice(lo, lo + group)
            moved[sub] = self._climb_group(idx[sub], moves, lengths, value, tau)
        return moved

    def _climb_group(
        self, idx: IntArray, moves: _Moves, lengths: IntArray, value: FloatArray, tau: FloatArray
    ) -> NDArray[np.bool_]:
        """One ascent step (see :meth:`_climb`).

        A move to L' improves G iff tau(L') < tau_req(L') = N(L') / G - rest(sum L') (and meets the deadline:
        tau_req is capped at it),
        i.e. iff F(tau_req, L') = sum_k w_k(tau_req, L'_k) < 1 (F decreases in tau).
        The unchanged users' part of F is convex and decreasing in tau, so it is
        at least its tangent at the current tau: moves whose tangent bound is
        >= 1 cannot improve (no false negatives) and are dropped in O(1) each.
        Survivors get the exact O(K) test, the improving ones their exact G, and
        each state takes its best.
        """
        t, c, k, lm = self.t, self.c, self.k, self.max_draft
        mi, mj, two = moves.first, moves.second, moves.two
        now = lengths[idx]
        g_now, tau_now = value[idx, None], tau[idx, None]
        drafting = now > 0
        gap_now = np.where(drafting, tau_now - now * t, 1.0)
        w_now = np.where(drafting, now * c / gap_now, 0.0)
        slope_now = w_now / gap_now
        tokens_now = self.tokens[self.rows, now].sum(axis=1, keepdims=True)
        sum_now = now.sum(axis=1, keepdims=True)
        # New lengths of each move's users, (A, M); a single leaves "second" (= first) alone.
        cur_i, cur_j = now[:, mi], now[:, mj]
        vi = np.where(moves.relative, cur_i, 0) + moves.value_i
        vj = cur_j + moves.delta_j
        ok = (vi >= 0) & (vi <= lm) & (vj >= 0) & (vj <= lm) & (two | (vi != cur_i))
        vi, vj = np.clip(vi, 0, lm), np.clip(vj, 0, lm)
        d_tokens = self.tokens[mi, vi] - self.tokens[mi, cur_i] + self.tokens[mj, vj] - self.tokens[mj, cur_j]
        d_len = (vi - cur_i) + (vj - cur_j)
        t_req = np.minimum((tokens_now + d_tokens) / g_now - self.rest[sum_now + d_len], self.deadline)
        rest = w_now.sum(axis=1, keepdims=True) - w_now[:, mi] - np.where(two, w_now[:, mj], 0.0)
        rest_slope = slope_now.sum(axis=1, keepdims=True) - slope_now[:, mi] - np.where(two, slope_now[:, mj], 0.0)
        bound = rest - rest_slope * (t_req - tau_now) + self._share_at(mi, vi, t_req)
        bound += np.where(two, self._share_at(mj, vj, t_req), 0.0)
        sa, sm = np.nonzero(ok & (bound < 1.0) & (t_req > 0.0))
        order = np.argsort(bound[sa, sm], kind="stable")  # most promising first
        sa, sm = sa[order], sm[order]
        moved = np.zeros(idx.size, dtype=bool)
        pending = np.ones(sa.size, dtype=bool)
        chunk = max(64, (1 << 18) // k)
        while True:
            sel = np.flatnonzero(pending & ~moved[sa])[:chunk]
            if sel.size == 0:
                return moved
            pending[sel] = False
            a_sel, m_sel = sa[sel], sm[sel]
            cand = now[a_sel]
            rows = np.arange(sel.size)
            cand[rows, mj[m_sel]] = vj[a_sel, m_sel]  # second first: for singles it is a no-op
            cand[rows, mi[m_sel]] = vi[a_sel, m_sel]
            gap = t_req[a_sel, m_sel][:, None] - cand * t
            act = cand > 0
            fine = act & (gap > 0.0)
            feasible = np.all(~act | fine, axis=1)
            load = np.where(act, cand * c / np.where(fine, gap, 1.0), 0.0).sum(axis=1)
            better = np.flatnonzero(feasible & (load < 1.0))
            if better.size == 0:
                continue
            vals, new_tau = self.goodput(cand[better])
            owner = a_sel[better]
            gain = np.flatnonzero(vals > value[idx[owner]] * (1.0 + _IMPROVE_RTOL))
            if gain.size == 0:
                continue
            # Best improving move per state.
            by = np.lexsort((-vals[gain], owner[gain]))
            _, first = np.unique(owner[gain][by], return_index=True)
            pick = gain[by[first]]
            target = idx[owner[pick]]
            lengths[target] = cand[better[pick]]
            value[target] = vals[pick]
            tau[target] = new_tau[pick]
            moved[owner[pick]] = True

    def _share_at(self, users: IntArray, values: IntArray, tau: FloatArray) -> FloatArray:
        """w_k(tau, v) = v c_k / (tau - v t_k); 0 for v = 0; inf when v t_k >= tau."""
        off = values * self.t[users]
        gap = tau - off
        ok = gap > 0.0
        share = np.where(ok, values * self.c[users] / np.where(ok, gap, 1.0), np.inf)
        return np.where(values > 0, share, 0.0)


_ROW_KEY = np.random.default_rng(20260604).uniform(1.0, 2.0, 4096)


def _distinct_rows(rows: IntArray) -> IntArray:
    """Indices of the first occurrence of each distinct row (a float hash: distinct integer rows collide
    only on an exact linear relation, which has probability zero; a collision would merely drop a
    candidate)."""
    k = rows.shape[1]
    weights = _ROW_KEY[:k] if k <= _ROW_KEY.size else np.random.default_rng(k).uniform(1.0, 2.0, k)
    return np.unique(rows @ weights, return_index=True)[1]


def _diverse_starts(sync: FloatArray, count: int) -> list[int]:
    """Indices into ``sync`` (candidates sorted best first) of up to ``count`` starts with distinct sync times.

    Candidates whose sync time is within _START_SPREAD (relative) of an already
    chosen start usually climb to the same local optimum; skipping them spreads
    the starts over different tau regions (e.g. both sides of a pole).
    """
    chosen: list[int] = [0]
    log_sync = np.log(np.maximum(sync, 1e-300))
    for idx in range(1, sync.size):
        if len(chosen) >= count:
            break
        if np.abs(log_sync[chosen] - log_sync[idx]).min() > _START_SPREAD:
            chosen.append(idx)
    return chosen


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
       (one sort gives the solution for every multiplier mu); two zoom sweeps
       around the best tau;
    3. an exact-evaluation local search (any single-user change, pairwise
       +-1 moves) from up to 8 good candidates with distinct sync times,
       climbing together until no move improves G.

    Every candidate is scored with the exact goodput of eq. (5). The result is
    never worse than P-hom and is a local optimum of the moves above; it
    matched exhaustive search on every small instance tested (about 18,000,
    K <= 6; see the doc), but global optimality is not proved.

    :returns: an :class:`Allocation` with goodput in tokens/s and times in s.
    """
    params = _check_params(params)
    k, lm = params.num_users, params.max_draft
    # In units of base = T0 + kappa K + T_dl (see _FLOOR). A user drafting any token makes
    # tau >= t_k + c_k (full band), so every such allocation has G <= sum_j N(a_j, L_max) / (t_k + c_k + 1);
    # it beats server-only decoding (G = K, always a candidate) only if t_k + c_k < reach. Users
    # beyond it have L_k = 0 in the optimum: they get finite stand-in times just past the bound, which
    # keep them out exactly and keep a user with upload_time (or draft_time) ~1e308 s from
    # overflowing the search's arithmetic.
    reach = float(params.token_table[:, -1].sum()) / k - 1.0
    base = _server_only_latency(params)
    with np.errstate(over="ignore"):  # t_k / base beyond float range is inf: out of reach
        t, c = _scaled(params.draft_time, params.upload_time, base)
    out = ~(t < reach - c)  # t_k + c_k >= reach, without inf - inf for infinite t_k or c_k
    if out.all():
        return _make_allocation(params, np.zeros(k, dtype=np.int64), np.zeros(k))
    if out.any():
        t = np.where(out, np.minimum(t, 2.0 * reach), t)
        c = np.where(out, np.minimum(c, 2.0 * reach), c)
    prob = _HetProblem(params, t, c, base)
    hom_len, hom_value, s_star, hom_tokens, hom_shares = _solve_hom_core(params)

    seeds = [np.zeros((1, k), dtype=np.int64), np.full((1, k), hom_len, dtype=np.int64)]
    level = max(hom_value, k / prob.rest[0])
    # Any L with G(L) >= level has l t_k + l c_k <= tau <= sum_k N(a_k, L_max) / level - rest(0), and tau <= the
    # deadline
    # and tau <= tau(L_max, ..., L_max) = L_max s*.
    low = float((prob.t + prob.c).min())
    high = min(lm * s_star, float(prob.tokens[:, -1].sum()) / level - prob.rest[0], prob.deadline)
    taus = [np.geomspace(low, max(high, low), _GRID_POINTS)]
    poles = prob.offset[(prob.offset > low) & (prob.offset < high)]
    if poles.size:
        poles = np.unique(np.round(np.log(poles), 3))  # distinct to 0.1 %
        if poles.size > _MAX_POLES:
            poles = poles[np.linspace(0, poles.size - 1, _MAX_POLES).round().astype(int)]
        taus.append((np.exp(poles)[:, None] * (1.0 + _POLE_OFFSETS)).ravel())
    tau_grid = np.concatenate(taus)

    pool = np.concatenate(seeds)
    values, sync = prob.goodput(pool)
    for sweep in range(_ZOOM_ROUNDS + 1):
        fresh = prob.greedy(tau_grid, level)
        fresh = fresh[_distinct_rows(fresh)]
        fresh_values, fresh_sync = prob.goodput(fresh)
        pool = np.concatenate([pool, fresh])
        values = np.concatenate([values, fresh_values])
        sync = np.concatenate([sync, fresh_sync])
        best = int(values.argmax())
        level = float(values[best])
        centre = float(sync[best]) if sync[best] > 0.0 else low
        width = _ZOOM_WIDTH / 4.0**sweep
        tau_grid = centre * np.exp(np.linspace(-width, width, _GRID_POINTS))

    keep = _distinct_rows(pool)
    pool, values, sync = pool[keep], values[keep], sync[keep]
    order = np.argsort(-values, kind="stable")
    order = order[values[order] >= values[order[0]] * (1.0 - _START_MARGIN)]
    starts = _diverse_starts(sync[order], _LOCAL_STARTS)
    chosen = order[starts]
    tops, top_values, _ = prob.local_search(pool[chosen], values[chosen], sync[chosen])
    best_len = tops[int(top_values.argmax())]

    best_len = best_len.astype(np.int64)
    het = _make_allocation(params, best_len, _equal_finish_shares(params, best_len))
    # P-het contains P-hom; when the search ends on (a rounding twin of) its optimum, report P-hom's
    # own allocation so that G(P-het) >= G(P-hom) holds exactly (e.g. a gain of 0, not -2e-16, for
    # identical users).
    try:
        hom = _hom_allocation(params, hom_len, hom_tokens, hom_shares)
    except ValueError:  # P-hom's round leaves the float range where P-het's does not
        return het
    return hom if hom.goodput >= het.goodput else het


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
    N(a_bar, L) of the mean rate for i.i.d. acceptance, else the E[n](L) of the users' mean acceptance curve),
    with the mean draft time and upload time (with b = 1/K each user uploads L tokens
    in L K c_bar s). This is heterogeneity-unaware; the returned ``goodput`` is the true eq. (5) value of
    the allocation with the real per-user parameters (tokens/s).
    """
    params = _check_params(params)
    k = params.num_users
    base = _server_only_latency(params)
    lengths = np.arange(params.max_draft + 1)
    # The average user's E[n](L): with i.i.d. rates the paper's N(a_bar, L) of the mean rate; with other curves
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
    """

    name: str
    solve: Callable[[RoundParams], Allocation]
    common_length: bool
    per_information_level: bool
    problem: str


#: Every solver by name, in report order (baselines first). Read-only.
SOLVERS: Mapping[str, SolverSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            SolverSpec("equal-fixed", equal_bandwidth_fixed, True, False, "b_k = 1/K, L = 4 (model.md section 7)"),
            SolverSpec(
                "equal-tuned", equal_bandwidth_tuned, True, False, "b_k = 1/K, L tuned for the mean user (section 7)"
            ),
            SolverSpec("hom-opt", solve_homogeneous, True, True, "P-hom: best common L and shares (section 3)"),
            SolverSpec("het-opt", solve_heterogeneous, False, True, "P-het: best per-user L_k and shares (section 3)"),
        )
    }
)
