"""Compiled P-hom / P-het (the one implementation behind :mod:`baselines.solvers`): N systems per call.

The systems come packed (:func:`solve_packed`): users of all systems concatenated, system i owning users
``user_start[i]:user_start[i + 1]``; its verification profile (eq. (2')) is ``profile_start[i]:profile_start[i + 1]``
of the profile arrays. The algorithms are those of ``docs/heterogeneous_solver.md`` and model.md section 3; every
formula is a function of :mod:`multispin_env.model` (finish time eq. (1), verification time eq. (2'), latency
eq. (3), equal-finish root of section 3), called here on scalars.

Compiled lazily on the first call (``import baselines`` compiles nothing) and cached on disk in a directory that
follows this file's and the package's compiled sources (:func:`multispin_env._numba.jit_cache`).

Units: inputs in seconds, tokens; inside the solvers times are in units of the server-only latency
T_ver(K) + T_dl (see the constants of :mod:`baselines.solvers`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from multispin_env._numba import JIT, JitOptions, jit_cache
from multispin_env.model import ROOT_MAX_ITER, ROOT_RTOL, equal_finish_root, finish_time, latency, verification_time

# Solver kinds of solve_packed.
HOM = 0
HET = 1
# Status codes per system (the Python layer turns them into ValueErrors naming the settings).
OK = 0
BASE_OVERFLOW = 1  # T_ver(K) + T_dl overflows float64
LATENCY_OVERFLOW = 2  # the chosen allocation's latency overflows float64
GOODPUT_OVERFLOW = 3  # tokens / latency overflows float64

# Heterogeneous-solver tuning (docs/heterogeneous_solver.md, sections 3-4).
GRID_POINTS = 12  # log-spaced sync times in the global sweep (24 until 2026-11-30: the same optima on all solver
# tests and stress_solvers.py, in less time)
POLE_OFFSETS = np.array([0.003, 0.01, 0.03, 0.1])  # relative offsets above the poles l * t_k
MAX_POLES = 96  # cap on distinct poles swept (evenly thinned beyond it)
ZOOM_POINTS = 8  # log-spaced sync times in each zoom round (12 until 2026-11-30)
ZOOM_ROUNDS = 2  # refinement sweeps around the best sync time found
ZOOM_WIDTH = 0.1  # half-width (log scale) of the first zoom sweep
LOCAL_STARTS = 8  # best candidates (with distinct sync times) polished by local search
START_MARGIN = 0.05  # starts must be within 5 % of the best candidate's goodput
START_SPREAD = 0.02  # minimum |log tau| distance between local-search starts
IMPROVE_RTOL = 1e-13  # a local-search move must raise G by more than this (relative)
UNION_MOVES = 1 << 16  # (starts x moves) above which singles are tried before pairs
LINEAR_MERGE = 16  # up to this many users the greedy's K-way merge scans them instead of keeping a heap
# Scaled per-user times below FLOOR are raised to it, which keeps reciprocals such as 1 / (tau - L_k t_k)
# finite; uploads are at least MIN_UPLOAD_RATIO of the drafting time (see _scale). Both move the results far
# below the 1e-9 to which the solvers are checked against exhaustive search.
FLOOR = 1e-300
MIN_UPLOAD_RATIO = 1e-12
T_FLOOR = FLOOR / MIN_UPLOAD_RATIO
# Random weights of the row hash that finds distinct length vectors (a collision of distinct integer rows
# needs an exact linear relation: probability zero; it would merely drop a candidate).
ROW_KEY = np.random.default_rng(20260604).uniform(1.0, 2.0, 4096)

with jit_cache(__file__) as _cache:
    _OPTS: JitOptions = {**JIT, "cache": _cache}

    @njit(**_OPTS)
    def _verify(batch, ptok, psec):
        """T_ver of a batch of ``batch`` tokens, eq. (2'), s."""
        return verification_time(float(batch), ptok, psec)

    @njit(**_OPTS)
    def _scale(t_raw, c_raw, unit, t, c):
        """t_k / unit and c_k / unit into t, c, floored: c_k >= MIN_UPLOAD_RATIO t_k (Newton's start would sit
        on the pole of a user whose upload is below ~1e-14 of its drafting time) and t_k >= T_FLOOR."""
        for k in range(t_raw.size):
            t[k] = max(t_raw[k] / unit, T_FLOOR)
            c[k] = max(c_raw[k] / unit, t[k] * MIN_UPLOAD_RATIO)

    @njit(**_OPTS)
    def _normalised_shares(work, gap, out):
        """Shares w_k / gap_k scaled to sum to 1 into ``out``; 0 where w_k = 0 (model.md section 3).

        With a user whose drafting alone nearly fills the sync time (gap_k << tau) tau is known only to an ulp;
        rather than scaling every share (delaying the others by as much, relative), the user with the largest
        w_k / gap_k^2 takes the remainder 1 - sum of the others.
        """
        total = 0.0
        for k in range(work.size):
            out[k] = work[k] / gap[k]
            total += out[k]
        if abs(total - 1.0) <= 1e-12:
            for k in range(work.size):
                out[k] /= total
            return
        r = 0
        for k in range(work.size):
            if out[k] / gap[k] > out[r] / gap[r]:
                r = k
        rest = total - out[r]
        if rest < 1.0:
            out[r] = 1.0 - rest
            return
        for k in range(work.size):
            out[k] /= total

    @njit(**_OPTS)
    def _equal_finish_shares(lengths, t_raw, c_raw, out):
        """The best shares for fixed lengths (model.md section 3) into ``out``, in units of the drafting users'
        largest t_k or c_k (the shares do not depend on the unit: no overflow)."""
        k_n = lengths.size
        unit = 0.0
        for k in range(k_n):
            out[k] = 0.0
            if lengths[k] > 0:
                unit = max(unit, t_raw[k], c_raw[k])
        if unit == 0.0:
            return
        t = np.empty(k_n)
        c = np.empty(k_n)
        for k in range(k_n):  # non-drafting users get unit times: their work is 0, their gap tau > 0
            t[k] = max((t_raw[k] if lengths[k] > 0 else unit) / unit, T_FLOOR)
            c[k] = max((c_raw[k] if lengths[k] > 0 else unit) / unit, t[k] * MIN_UPLOAD_RATIO)
        work = lengths * c
        offset = lengths * t
        tau = equal_finish_root(work, offset, ROOT_RTOL, ROOT_MAX_ITER)
        _normalised_shares(work, tau - offset, out)

    @njit(**_OPTS)
    def _scored(tokens, tau, total):
        """(goodput tokens/s, sync time s, latency s, status) of a round of ``tokens`` expected tokens, sync time
        ``tau`` and latency ``total`` (eq. (5)), with the overflow status of either."""
        if not math.isfinite(total):
            return 0.0, tau, total, LATENCY_OVERFLOW
        goodput = tokens / total
        if not math.isfinite(goodput):
            return goodput, tau, total, GOODPUT_OVERFLOW
        return goodput, tau, total, OK

    @njit(**_OPTS)
    def _tokens_latency(lengths, shares, t_raw, c_raw, table, ptok, psec, downlink, deadline):
        """(expected tokens, sync time s, latency s) of an allocation, eq. (1)-(4) with (1'), (2').

        A user whose upload would end after the deadline is dropped (one token, L_k = 0 in the batch, tau = the
        deadline): what the round does with such an allocation.
        """
        tau = 0.0
        dropped = False
        tokens = 0.0
        batch = 0
        for k in range(lengths.size):
            finish = finish_time(float(lengths[k]), t_raw[k], c_raw[k], shares[k])
            if finish > deadline:
                dropped = True
                tokens += table[k, 0]
                batch += 1
            else:
                tau = max(tau, finish)
                tokens += table[k, lengths[k]]
                batch += lengths[k] + 1
        if dropped:
            tau = deadline
        return tokens, tau, latency(tau, _verify(batch, ptok, psec), downlink)

    @njit(**_OPTS)
    def _outcome(lengths, shares, t_raw, c_raw, table, ptok, psec, downlink, deadline):
        """(goodput tokens/s, sync time s, latency s, status) of an allocation, eq. (1)-(5) with (1'), (2')
        (:func:`_tokens_latency`, and the overflow status)."""
        tokens, tau, total = _tokens_latency(lengths, shares, t_raw, c_raw, table, ptok, psec, downlink, deadline)
        return _scored(tokens, tau, total)

    @njit(**_OPTS)
    def _hom_core(t_raw, c_raw, table, lm, base, rest, deadline, shares):
        """P-hom in units of base = T_ver(K) + T_dl: (L*, G(L*) * base, s* / base); the shares b_k into
        ``shares`` (zeros for L* = 0).

        G(L) = sum_k E[n_k](L) / (L s* + T_ver(K (L + 1)) + T_dl) over the lengths whose sync time L s* meets
        the deadline (eq. (1')); s* is the root of sum_k c_k / (s - t_k) = 1. Drafting pays only if s* < base,
        and s* >= max_k (t_k + c_k): when that already reaches base, L* = 0 exactly and s* = inf (this also
        keeps a user with a ~1e308 s time out of all arithmetic). With a weighted table (rows w_k E[n_k](L),
        eq. (5w)) G is the weighted objective and the same holds: sum_k w_k E[n_k](L) <= (L + 1) sum_k w_k.
        """
        k_n = t_raw.size
        for k in range(k_n):
            shares[k] = 0.0
        unit = 0.0
        for k in range(k_n):
            unit = max(unit, t_raw[k], c_raw[k])
        if not unit < base:
            server = 0.0  # G(0) * base: the server-only tokens (K unweighted)
            for k in range(k_n):
                server += table[k, 0]
            return 0, server, math.inf
        t = np.empty(k_n)
        c = np.empty(k_n)
        _scale(t_raw, c_raw, unit, t, c)
        root = equal_finish_root(c, t, ROOT_RTOL, ROOT_MAX_ITER)
        s_star = root * (unit / base)
        best = 0
        best_value = -math.inf
        for length in range(lm + 1):
            sync = length * s_star
            if not sync <= deadline:
                continue
            tokens = 0.0
            for k in range(k_n):
                tokens += table[k, length]
            value = tokens / (sync + rest[k_n * length])
            if value > best_value:  # first maximiser: the shortest draft among ties
                best, best_value = length, value
        if best > 0:  # the shares for L_k = 1 (any common L gives the same), from the root just found
            _normalised_shares(c, root - t, shares)
        return best, best_value, s_star

    @njit(**_OPTS)
    def _rest_latency(k_n, lm, ptok, psec, downlink, base):
        """(T_ver(K + S) + T_dl) / base for S = 0..K L_max drafted tokens (eq. (2'), (3))."""
        rest = np.empty(k_n * lm + 1)
        for s in range(rest.size):
            rest[s] = (_verify(k_n + s, ptok, psec) + downlink) / base
        return rest

    @njit(**_OPTS)
    def _hom_outcome(best, shares, t_raw, c_raw, table, ptok, psec, downlink):
        """(goodput, tau, latency, status) of the P-hom allocation: all L_k = L*, tau from eq. (1)."""
        k_n = t_raw.size
        tau = 0.0
        tokens = 0.0
        if best > 0:
            for k in range(k_n):
                tau = max(tau, finish_time(float(best), t_raw[k], c_raw[k], shares[k]))
        for k in range(k_n):
            tokens += table[k, best]
        return _scored(tokens, tau, latency(tau, _verify(k_n * (best + 1), ptok, psec), downlink))

    # ----------------------------------------------------------------------------------------- P-het

    @njit(**_OPTS)
    def _goodput(lengths, t, c, table, rest, deadline, work, offset):
        """Exact G(L) * base with equal-finish shares and tau(L) / base; G = -inf past the deadline (eq. (1'))."""
        tokens = 0.0
        total = 0
        for k in range(lengths.size):
            work[k] = lengths[k] * c[k]
            offset[k] = lengths[k] * t[k]
            tokens += table[k, lengths[k]]
            total += lengths[k]
        tau = equal_finish_root(work, offset, ROOT_RTOL, ROOT_MAX_ITER)
        if tau > deadline:
            return -math.inf, tau
        return tokens / (tau + rest[total]), tau

    @njit(**_OPTS)
    def _goodput_bound(lengths, t, c, table, rest):
        """An upper bound on G(L) * base: tau(L) is at least Newton's start max(max_k (o_k + w_k),
        min_k o_k + sum_k w_k) over drafting users (o_k = L_k t_k, w_k = L_k c_k; F >= 1 there)."""
        tokens = 0.0
        total = 0
        top = 0.0
        lowest = math.inf
        work = 0.0
        for k in range(lengths.size):
            tokens += table[k, lengths[k]]
            if lengths[k] > 0:
                total += lengths[k]
                top = max(top, lengths[k] * (t[k] + c[k]))
                lowest = min(lowest, lengths[k] * t[k])
                work += lengths[k] * c[k]
        start = max(top, lowest + work) if total > 0 else 0.0
        return tokens / (start + rest[total])

    @njit(**_OPTS, inline="always")
    def _heap_push(keys, users, size, key, user):
        i = size
        keys[i] = key
        users[i] = user
        while i > 0:
            parent = (i - 1) // 2
            if keys[parent] >= keys[i]:
                break
            keys[parent], keys[i] = keys[i], keys[parent]
            users[parent], users[i] = users[i], users[parent]
            i = parent
        return size + 1

    @njit(**_OPTS, inline="always")
    def _heap_pop(keys, users, size):
        key, user = keys[0], users[0]
        size -= 1
        keys[0] = keys[size]
        users[0] = users[size]
        i = 0
        while True:
            left = 2 * i + 1
            big = i
            if left < size and keys[left] > keys[big]:
                big = left
            if left + 1 < size and keys[left + 1] > keys[big]:
                big = left + 1
            if big == i:
                break
            keys[big], keys[i] = keys[i], keys[big]
            users[big], users[i] = users[i], users[big]
            i = big
        return key, user, size

    @njit(**_OPTS, inline="always")
    def _ratio_key(tau, yield_, t_k, inv_c_k, l):
        """Yield per share of user k's (l+1)-th token at the fixed sync time tau, times tau, from its yield
        P(A_k >= l + 1) - level kappa; -inf when the token does not fit before tau or yields nothing (both then
        hold for longer drafts too). See :func:`_greedy_at`. Scalars only: it runs for every token tried."""
        gap = tau - (l + 1) * t_k
        if gap <= 0.0 or yield_ <= 0.0:
            return -math.inf
        return yield_ * gap * (tau - l * t_k) * inv_c_k

    @njit(**_OPTS)
    def _greedy_at(
        tau,
        level,
        kappa,
        t,
        c,
        inv_c,
        gain,
        server,
        rest,
        lm,
        taken,
        popped,
        heap_keys,
        heap_users,
        out_best,
        out_next,
    ):
        """Lagrangian lengths at the fixed sync time ``tau`` into ``out_best`` and ``out_next``.

        At fixed tau user k's l-th token costs the share increment w_k(tau, l) - w_k(tau, l-1),
        w_k(tau, l) = l c_k / (tau - l t_k), which is c_k tau / (g_l g_{l-1}) with g_l = tau - l t_k, and
        yields P(A_k >= l) - level * kappa tokens (Dinkelbach; kappa one slope of T_ver, the prefix's own
        ratio uses the exact T_ver); ``gain`` holds the (weighted, eq. (5w)) increments and ``server`` the tokens
        of server-only decoding, sum_k table[k, 0] (K unweighted). Yields fall and costs rise with l, so the
        increments taken in order of
        yield per share (a K-way merge of the users' falling ratios, keys of :func:`_ratio_key`) give the
        Lagrangian solution for every multiplier. Kept: the prefix with the best fixed-tau ratio among those
        fitting the budget (``out_best``) and that prefix plus the next increment (``out_next``); per user
        "taken" = "key at least the cut": the users popped up to the cut (``popped``, in order) and any
        not yet popped key equal to it.
        """
        k_n = t.size
        size = 0
        toll = level * kappa  # the Dinkelbach price of one more token's verification
        # Few users: the merge scans the users' next keys (heap_keys[k]); many: a binary heap.
        linear = k_n <= LINEAR_MERGE
        for k in range(k_n):
            taken[k] = 0
            key = _ratio_key(tau, gain[k, 0] - toll, t[k], inv_c[k], 0)
            if linear:
                heap_keys[k] = key
            elif key > -math.inf:
                size = _heap_push(heap_keys, heap_users, size, key, k)
        # Walk the merged order while the budget holds; track the best ratio prefix.
        cum_cost = 0.0
        cum_tokens = server
        count = 0
        best_count = 0
        best_tokens = 0.0
        best_time = 1.0
        cut_best = math.inf
        cut_next = math.inf
        has_best = False
        while True:
            if linear:
                user = 0
                for k in range(1, k_n):
                    if heap_keys[k] > heap_keys[user]:
                        user = k
                key = heap_keys[user]
                if key == -math.inf:
                    break
            else:
                if size == 0:
                    break
                key, user, size = _heap_pop(heap_keys, heap_users, size)
            l = taken[user]
            popped[count] = user
            cum_cost += c[user] * tau / ((tau - (l + 1) * t[user]) * (tau - l * t[user]))
            if not cum_cost <= 1.0:  # costs are positive: no later prefix fits either
                if cut_next == math.inf:
                    cut_next = key
                break
            cum_tokens += gain[user, l]
            count += 1
            time_ = tau + rest[count]
            if not has_best or cum_tokens * best_time > best_tokens * time_:  # a better ratio
                best_tokens, best_time = cum_tokens, time_
                best_count = count
                cut_best = key
                has_best = True
                cut_next = math.inf  # the increment after this prefix: set by the next pop
            elif cut_next == math.inf:
                cut_next = key
            taken[user] = l + 1
            key = _ratio_key(tau, gain[user, l + 1] - toll, t[user], inv_c[user], l + 1) if l + 1 < lm else -math.inf
            if linear:
                heap_keys[user] = key
            elif key > -math.inf:
                size = _heap_push(heap_keys, heap_users, size, key, user)
        # popped[:best_count] is the best prefix; popped[best_count] (if any) the next increment.
        next_count = best_count
        if not has_best:  # no increment fits: the rows are none and (at most) the first increment
            cut_best = math.inf
        if cut_next == math.inf:  # the best prefix took every valid increment
            cut_next = cut_best
        else:
            next_count = best_count + 1
        for k in range(k_n):
            out_best[k] = 0
        for q in range(best_count):
            out_best[popped[q]] += 1
        for k in range(k_n):
            out_next[k] = out_best[k]
        if next_count > best_count:
            out_next[popped[best_count]] += 1
        for k in range(k_n):  # keys fall in l: add the keys equal to a cut that were not popped
            n = out_best[k]
            while n < lm and _ratio_key(tau, gain[k, n] - toll, t[k], inv_c[k], n) >= cut_best:
                n += 1
            out_best[k] = n
            n = max(n, out_next[k])
            while n < lm and _ratio_key(tau, gain[k, n] - toll, t[k], inv_c[k], n) >= cut_next:
                n += 1
            out_next[k] = n

    @njit(**_OPTS)
    def _row_hash(row, weights):
        h = 0.0
        for k in range(row.size):
            h += row[k] * weights[k]
        return h

    @njit(**_OPTS, inline="always")
    def _same_row(a, b):
        for k in range(a.size):  # noqa: SIM110 - a plain loop: numba does not compile all() over a generator
            if a[k] != b[k]:
                return False
        return True

    @njit(**_OPTS)
    def _distinct(rows, n, weights):
        """Indices (in order of first occurrence) of the distinct rows among rows[:n]."""
        keys = np.empty(n)
        for i in range(n):
            keys[i] = _row_hash(rows[i], weights)
        order = np.argsort(keys, kind="mergesort")
        first = np.zeros(n, dtype=np.bool_)
        for j in range(n):
            if j == 0 or keys[order[j]] != keys[order[j - 1]]:
                first[order[j]] = True
        return np.flatnonzero(first)

    @njit(**_OPTS, inline="always")
    def _share_at(length, t_k, c_k, tau):
        """w_k(tau, v) = v c_k / (tau - v t_k); 0 for v = 0; inf when v t_k >= tau."""
        if length == 0:
            return 0.0
        gap = tau - length * t_k
        if gap <= 0.0:
            return math.inf
        return length * c_k / gap

    @njit(**_OPTS, inline="always")
    def _tangent_pass(w_rest, slope_rest, tau_now, t_req, length, t_k, c_k):
        """Whether a move can improve G by the tangent test of :func:`_climb`: the unchanged users' share at
        ``t_req`` is at least ``w_rest - slope_rest (t_req - tau_now)``; ``length`` is the changed user's new
        length (scalars only: this runs for every move)."""
        if not t_req > 0.0:
            return False
        room = 1.0 - w_rest + slope_rest * (t_req - tau_now)  # what the tangent leaves for the changed user
        if length == 0:
            return room > 0.0
        gap = t_req - length * t_k
        return gap > 0.0 and length * c_k < room * gap  # its share length c_k / gap < room, without a division

    @njit(**_OPTS)
    def _move_value(now, i, vi, j, vj, t_req, t, c, table, rest, deadline, work, offset, cand, beat):
        """(G, tau) of the state ``now`` with user i at length vi and (j >= 0) user j at vj, or (-inf, 0) when the
        move does not improve G (F(t_req, L') >= 1, see :func:`_climb`) or cannot beat ``beat``."""
        for k in range(now.size):
            cand[k] = now[k]
        cand[i] = vi
        if j >= 0:
            cand[j] = vj
        if _goodput_bound(cand, t, c, table, rest) <= beat:
            return -math.inf, 0.0
        load = 0.0
        for k in range(now.size):
            load += _share_at(cand[k], t[k], c[k], t_req)
            if not load < 1.0:
                return -math.inf, 0.0
        return _goodput(cand, t, c, table, rest, deadline, work, offset)

    @njit(**_OPTS)
    def _climb(now, g_now, tau_now, t, c, table, rest, deadline, lm, singles, pairs, work, offset, cand, w, slope):
        """One steepest-ascent step of the state ``now`` (updated in place); returns (moved, G, tau).

        Moves: any user to any other length (``singles``) and any pair i < j by (+-1, +-1) (``pairs``). A move
        to L' improves G iff F(tau_req, L') = sum_k w_k(tau_req, L'_k) < 1 with tau_req = N(L') / G -
        rest(sum L') capped at the deadline (F decreases in tau). The unchanged users' part of F is convex and
        decreasing, so at least its tangent at the current tau: moves whose tangent bound reaches 1 cannot
        improve and are dropped in O(1). Survivors get the exact O(K) test, the improving ones their exact G,
        and the state takes the best. Both tests use tau_req of the best move found so far (G = its value): a
        move that cannot beat it is dropped before its root is solved.
        """
        k_n = now.size
        w_sum = 0.0
        slope_sum = 0.0
        tokens_now = 0.0
        sum_now = 0
        for k in range(k_n):
            w[k] = 0.0
            slope[k] = 0.0
            if now[k] > 0:
                gap = tau_now - now[k] * t[k]
                w[k] = now[k] * c[k] / gap
                slope[k] = w[k] / gap
            w_sum += w[k]
            slope_sum += slope[k]
            tokens_now += table[k, now[k]]
            sum_now += now[k]
        best_g = g_now * (1.0 + IMPROVE_RTOL)  # a move must beat this
        inv_g = 1.0 / best_g
        best_tau = tau_now
        best_i, best_vi, best_j, best_vj = -1, 0, -1, 0
        if singles:
            for i in range(k_n):
                base_tokens = tokens_now - table[i, now[i]]
                base_len = sum_now - now[i]
                w_rest, slope_rest = w_sum - w[i], slope_sum - slope[i]
                for vi in range(lm + 1):
                    if vi == now[i]:
                        continue
                    t_req = min((base_tokens + table[i, vi]) * inv_g - rest[base_len + vi], deadline)
                    if not _tangent_pass(w_rest, slope_rest, tau_now, t_req, vi, t[i], c[i]):
                        continue
                    value, new_tau = _move_value(
                        now, i, vi, -1, 0, t_req, t, c, table, rest, deadline, work, offset, cand, best_g
                    )
                    if value > best_g:
                        best_g, best_tau, best_i, best_vi, best_j, best_vj = value, new_tau, i, vi, -1, 0
                        inv_g = 1.0 / best_g
        if pairs:
            for i in range(k_n):
                for j in range(i + 1, k_n):
                    base_tokens = tokens_now - table[i, now[i]] - table[j, now[j]]
                    base_len = sum_now - now[i] - now[j]
                    w_rest, slope_rest = w_sum - w[i] - w[j], slope_sum - slope[i] - slope[j]
                    for di in (-1, 1):
                        vi = now[i] + di
                        if vi < 0 or vi > lm:
                            continue
                        for dj in (-1, 1):
                            vj = now[j] + dj
                            if vj < 0 or vj > lm:
                                continue
                            t_req = min(
                                (base_tokens + table[i, vi] + table[j, vj]) * inv_g - rest[base_len + vi + vj], deadline
                            )
                            # The tangent test with user j's new share counted in the unchanged part.
                            w_j = _share_at(vj, t[j], c[j], t_req) if t_req > 0.0 else math.inf
                            if not _tangent_pass(w_rest + w_j, slope_rest, tau_now, t_req, vi, t[i], c[i]):
                                continue
                            value, new_tau = _move_value(
                                now, i, vi, j, vj, t_req, t, c, table, rest, deadline, work, offset, cand, best_g
                            )
                            if value > best_g:
                                best_g, best_tau, best_i, best_vi, best_j, best_vj = value, new_tau, i, vi, j, vj
                                inv_g = 1.0 / best_g
        if best_i < 0:
            return False, g_now, tau_now
        now[best_i] = best_vi
        if best_j >= 0:
            now[best_j] = best_vj
        return True, best_g, best_tau

    @njit(**_OPTS)
    def _het_core(t_raw, c_raw, table, lm, ptok, psec, downlink, deadline_s, base, lengths_out):
        """P-het lengths of one system into ``lengths_out`` (docs/heterogeneous_solver.md).

        Returns the P-hom part as well: (hom L*, hom shares) for the final comparison.
        """
        k_n = t_raw.size
        hom_shares = np.zeros(k_n)
        # In units of base. A user drafting any token makes tau >= t_k + c_k (full band), so G <= sum_j
        # N_j(L_max) / (t_k + c_k + 1): it beats server-only decoding (G = sum_j N_j(0), K unweighted) only if
        # t_k + c_k < reach (the table's rows may be weighted, eq. (5w): the same bound).
        # Users beyond get finite stand-in times just past the bound (L_k = 0 in the optimum, no overflow).
        reach = 0.0
        server = 0.0
        for k in range(k_n):
            reach += table[k, lm]
            server += table[k, 0]
        reach = reach / server - 1.0
        t = np.empty(k_n)
        c = np.empty(k_n)
        _scale(t_raw, c_raw, base, t, c)
        any_in = False
        for k in range(k_n):
            lengths_out[k] = 0
            if t[k] < reach - c[k]:
                any_in = True
            else:
                t[k] = min(t[k], 2.0 * reach)
                c[k] = min(c[k], 2.0 * reach)
        rest = _rest_latency(k_n, lm, ptok, psec, downlink, base)
        deadline = deadline_s / base
        hom_len, hom_value, s_star = _hom_core(t_raw, c_raw, table, lm, base, rest, deadline, hom_shares)
        if not any_in:
            return hom_len, hom_shares
        # Per-token verification costs the greedy tries: each segment slope of T_ver in reach (eq. (2')).
        # Differences of the rest latencies (~rest[-1] in size) carry rounding noise of a few ulp of rest[-1]:
        # slopes closer than 1e-12 rest[-1] are one segment's.
        slopes = np.sort(rest[1:] - rest[:-1])
        kappas = np.empty(slopes.size)
        n_kappas = 0
        for s in range(slopes.size):
            if n_kappas == 0 or slopes[s] - kappas[n_kappas - 1] > 1e-12 * rest[-1]:
                kappas[n_kappas] = slopes[s]
                n_kappas += 1
        kappas = kappas[:n_kappas]
        gain = np.empty((k_n, lm))
        for k in range(k_n):
            for l in range(lm):
                gain[k, l] = table[k, l + 1] - table[k, l]
        weights = ROW_KEY[:k_n] if k_n <= ROW_KEY.size else np.random.uniform(1.0, 2.0, k_n)  # noqa: NPY002 - numba has no Generator
        work = np.empty(k_n)
        offset = np.empty(k_n)

        level = max(hom_value, server / rest[0])
        # Any L with G(L) >= level has l t_k + l c_k <= tau(L) <= the bound below (section 3), within the deadline
        # and tau <= tau(L_max, ..., L_max) = L_max s*.
        # Every per-token slope of rest is at least slopes[0], so tau <= N(L) / level - rest(sum L) <=
        # sum_k max_l (N_k(l) / level - slopes[0] l) - rest(0).
        low = math.inf
        top = -rest[0]
        slope_min = max(slopes[0], 0.0)  # rest has K L_max + 1 >= 2 entries
        for k in range(k_n):
            low = min(low, t[k] + c[k])
            gain_k = 0.0
            for l in range(1, lm + 1):
                gain_k = max(gain_k, (table[k, l] - table[k, 0]) / level - slope_min * l)
            top += table[k, 0] / level + gain_k
        high = min(lm * s_star, top, deadline)
        high = max(high, low)
        # Poles l t_k in (low, high), distinct to 0.1 % on a log scale, evenly thinned to MAX_POLES; per pole the
        # smallest c_k / t_k of its users. At tau = l t_k (1 + d) user k needs the share c_k / (d t_k) for its l
        # tokens: the offsets d <= c_k / t_k cannot let it draft them, so only the larger offsets are swept.
        log_pole = np.empty(k_n * lm)
        ratio = np.empty(k_n * lm)
        n_poles = 0
        for k in range(k_n):
            for l in range(1, lm + 1):
                p = l * t[k]
                if low < p < high and c[k] < POLE_OFFSETS[-1] * t[k]:
                    log_pole[n_poles] = np.round(math.log(p), 3)
                    ratio[n_poles] = c[k] / t[k]
                    n_poles += 1
        order = np.argsort(log_pole[:n_poles])
        poles = np.empty(n_poles)
        pole_ratio = np.empty(n_poles)
        n_distinct = 0
        for q in order:
            if n_distinct > 0 and log_pole[q] == poles[n_distinct - 1]:
                pole_ratio[n_distinct - 1] = min(pole_ratio[n_distinct - 1], ratio[q])
            else:
                poles[n_distinct] = log_pole[q]
                pole_ratio[n_distinct] = ratio[q]
                n_distinct += 1
        poles, pole_ratio = poles[:n_distinct], pole_ratio[:n_distinct]
        if poles.size > MAX_POLES:
            pick = np.empty(MAX_POLES, dtype=np.int64)
            for q in range(MAX_POLES):
                pick[q] = int(np.round(q * (poles.size - 1) / (MAX_POLES - 1)))
            poles, pole_ratio = poles[pick], pole_ratio[pick]
        tau_grid = np.empty(GRID_POINTS + poles.size * POLE_OFFSETS.size)
        log_low, log_high = math.log(low), math.log(high)
        for q in range(GRID_POINTS):
            tau_grid[q] = math.exp(log_low + (log_high - log_low) * q / (GRID_POINTS - 1))
        tau_grid[0], tau_grid[GRID_POINTS - 1] = low, high
        n_grid = GRID_POINTS
        for q in range(poles.size):
            for o in range(POLE_OFFSETS.size):
                if pole_ratio[q] < POLE_OFFSETS[o]:
                    tau_grid[n_grid] = math.exp(poles[q]) * (1.0 + POLE_OFFSETS[o])
                    n_grid += 1
        tau_grid = tau_grid[:n_grid]

        per_sweep = 2 * kappas.size
        capacity = 2 + per_sweep * (n_grid + ZOOM_ROUNDS * ZOOM_POINTS)
        pool = np.zeros((capacity, k_n), dtype=np.int64)
        values = np.empty(capacity)
        sync = np.empty(capacity)
        for k in range(k_n):
            pool[1, k] = hom_len
        n_pool = 2
        pool_hash = np.empty(capacity)
        for r in range(2):
            values[r], sync[r] = _goodput(pool[r], t, c, table, rest, deadline, work, offset)
            pool_hash[r] = _row_hash(pool[r], weights)
        taken = np.empty(k_n, dtype=np.int64)
        popped = np.empty(k_n * lm + 1, dtype=np.int64)
        inv_c = 1.0 / c
        heap_keys = np.empty(k_n)
        heap_users = np.empty(k_n, dtype=np.int64)
        fresh = np.empty((per_sweep * max(n_grid, ZOOM_POINTS), k_n), dtype=np.int64)
        for sweep in range(ZOOM_ROUNDS + 1):
            n_fresh = 0
            n_kept = 0
            for kappa in kappas:
                for q in range(tau_grid.size):
                    _greedy_at(
                        tau_grid[q],
                        level,
                        kappa,
                        t,
                        c,
                        inv_c,
                        gain,
                        server,
                        rest,
                        lm,
                        taken,
                        popped,
                        heap_keys,
                        heap_users,
                        fresh[n_fresh],
                        fresh[n_fresh + 1],
                    )
                    # Neighbouring sync times often give the same rows: keep a row only if it is new here.
                    for row in (n_fresh, n_fresh + 1):
                        same = n_kept > 0
                        for k in range(k_n):
                            if not same:
                                break
                            same = fresh[row, k] == fresh[n_kept - 1, k]
                        if not same:
                            for k in range(k_n):
                                fresh[n_kept, k] = fresh[row, k]
                            n_kept += 1
                    n_fresh += 2
            # Rows that cannot come within START_MARGIN of the best so far can be neither the best nor a start.
            floor = level * (1.0 - START_MARGIN)
            for r in _distinct(fresh, n_kept, weights):
                if _goodput_bound(fresh[r], t, c, table, rest) < floor:
                    continue
                # A row already in the pool (from an earlier sweep) is not scored again.
                key = _row_hash(fresh[r], weights)
                known = False
                for q in range(n_pool):
                    if pool_hash[q] == key:
                        known = True
                        break
                if known:
                    continue
                pool_hash[n_pool] = key
                pool[n_pool] = fresh[r]
                values[n_pool], sync[n_pool] = _goodput(pool[n_pool], t, c, table, rest, deadline, work, offset)
                n_pool += 1
            best = np.argmax(values[:n_pool])
            level = values[best]
            centre = sync[best] if sync[best] > 0.0 else low
            width = ZOOM_WIDTH / 4.0**sweep
            tau_grid = np.empty(ZOOM_POINTS)
            for q in range(ZOOM_POINTS):
                tau_grid[q] = centre * math.exp(-width + 2.0 * width * q / (ZOOM_POINTS - 1))

        # Local search from up to LOCAL_STARTS good candidates with distinct sync times.
        keep = _distinct(pool, n_pool, weights)
        order = keep[np.argsort(-values[keep], kind="mergesort")]
        top = values[order[0]]
        starts = np.empty(LOCAL_STARTS, dtype=np.int64)
        starts[0] = order[0]
        n_starts = 1
        for q in range(1, order.size):
            if n_starts >= LOCAL_STARTS or values[order[q]] < top * (1.0 - START_MARGIN):
                break
            log_tau = math.log(max(sync[order[q]], 1e-300))
            spread = True
            for s in range(n_starts):
                if abs(math.log(max(sync[starts[s]], 1e-300)) - log_tau) <= START_SPREAD:
                    spread = False
                    break
            if spread:
                starts[n_starts] = order[q]
                n_starts += 1
        states = np.empty((n_starts, k_n), dtype=np.int64)
        state_g = np.empty(n_starts)
        state_tau = np.empty(n_starts)
        for s in range(n_starts):
            states[s] = pool[starts[s]]
            state_g[s] = values[starts[s]]
            state_tau[s] = sync[starts[s]]
        active = np.ones(n_starts, dtype=np.bool_)
        split = n_starts * (k_n * (lm + 1) + 2 * k_n * (k_n - 1)) > UNION_MOVES
        cand = np.empty(k_n, dtype=np.int64)
        w = np.empty(k_n)  # _climb's per-user shares and their slopes at the state's sync time
        slope = np.empty(k_n)
        for _ in range(4 * k_n * lm + 16):
            any_active = False
            for s in range(n_starts):
                if not active[s]:
                    continue
                if split:  # variable neighbourhood: pairs only when no single improves
                    moved, state_g[s], state_tau[s] = _climb(
                        states[s],
                        state_g[s],
                        state_tau[s],
                        t,
                        c,
                        table,
                        rest,
                        deadline,
                        lm,
                        True,
                        False,
                        work,
                        offset,
                        cand,
                        w,
                        slope,
                    )
                    if not moved:
                        moved, state_g[s], state_tau[s] = _climb(
                            states[s],
                            state_g[s],
                            state_tau[s],
                            t,
                            c,
                            table,
                            rest,
                            deadline,
                            lm,
                            False,
                            True,
                            work,
                            offset,
                            cand,
                            w,
                            slope,
                        )
                else:
                    moved, state_g[s], state_tau[s] = _climb(
                        states[s],
                        state_g[s],
                        state_tau[s],
                        t,
                        c,
                        table,
                        rest,
                        deadline,
                        lm,
                        True,
                        True,
                        work,
                        offset,
                        cand,
                        w,
                        slope,
                    )
                active[s] = moved
                any_active |= moved
            if not any_active:
                break
            # Starts that met climb identically from here on.
            for s in range(n_starts):
                if not active[s]:
                    continue
                for r in range(s):
                    if active[r] and _same_row(states[r], states[s]):
                        active[s] = False
                        break
        best = np.argmax(state_g)
        for k in range(k_n):
            lengths_out[k] = states[best, k]
        return hom_len, hom_shares

    @njit(**_OPTS)
    def _het_system(t_raw, c_raw, tab, lm, ptok, psec, downlink, deadline, base, out_len, out_share):
        """P-het of one system (times in s, ``base`` = T_ver(K) + T_dl finite): lengths and equal-finish shares
        into ``out_len``, ``out_share``; returns (goodput tokens/s, sync time s, latency s, status)."""
        hom_len, hom_shares = _het_core(t_raw, c_raw, tab, lm, ptok, psec, downlink, deadline, base, out_len)
        _equal_finish_shares(out_len, t_raw, c_raw, out_share)
        g, tau, lat, st = _outcome(out_len, out_share, t_raw, c_raw, tab, ptok, psec, downlink, deadline)
        if st != OK:
            return g, tau, lat, st
        # P-het contains P-hom; when the search ends on (a rounding twin of) its optimum, report P-hom's own
        # allocation so that G(P-het) >= G(P-hom) holds exactly.
        hg, htau, hlat, hst = _hom_outcome(hom_len, hom_shares, t_raw, c_raw, tab, ptok, psec, downlink)
        if hst == OK and hg >= g:
            out_len[:] = hom_len
            out_share[:] = hom_shares
            return hg, htau, hlat, st
        return g, tau, lat, st

    @njit(**_OPTS, inline="always")
    def _solve_system(
        kind, t_raw, c_raw, tab, objective, weighted, lm, ptok, psec, downlink, deadline, base, out_len, out_share
    ):
        """P-hom or P-het of one system (``base`` = T_ver(K) + T_dl finite) maximising the objective of the token
        table ``objective`` (``tab`` itself, or its rows scaled by the user weights: eq. (5w)); lengths and shares
        into ``out_len``, ``out_share``. Returns (goodput tokens/s with ``tab``, objective / latency, sync time s,
        latency s, status); ``weighted`` False: ``objective`` is ``tab`` and the two values are one."""
        if kind == HOM:
            rest = _rest_latency(t_raw.size, lm, ptok, psec, downlink, base)
            best, _, _ = _hom_core(t_raw, c_raw, objective, lm, base, rest, deadline / base, out_share)
            out_len[:] = best
            value, tau, lat, st = _hom_outcome(best, out_share, t_raw, c_raw, objective, ptok, psec, downlink)
            if not weighted or st != OK:
                return value, value, tau, lat, st
            g, _, _, st = _hom_outcome(best, out_share, t_raw, c_raw, tab, ptok, psec, downlink)
            return g, value, tau, lat, st
        value, tau, lat, st = _het_system(
            t_raw, c_raw, objective, lm, ptok, psec, downlink, deadline, base, out_len, out_share
        )
        if not weighted or st != OK:
            return value, value, tau, lat, st
        g, _, _, st = _outcome(out_len, out_share, t_raw, c_raw, tab, ptok, psec, downlink, deadline)
        return g, value, tau, lat, st

    @njit(**_OPTS)
    def solve_packed(
        kind,
        user_start,
        draft_time,
        upload_time,
        table,
        max_draft,
        profile_start,
        profile_tokens,
        profile_seconds,
        downlink,
        deadline,
        weights,
        lengths,
        shares,
        goodput,
        objective,
        sync,
        total,
        status,
    ):
        """P-hom (``kind`` = HOM) or P-het (HET) of every packed system; results into the output arrays.

        :param user_start: (N + 1,) system i owns users user_start[i]:user_start[i + 1]
        :param draft_time: t_k, s/token, (U,); ``upload_time``: c_k, s/token, (U,)
        :param table: E[n_k](L) for L = 0..L_max (padded), (U, >= L_max + 1)
        :param max_draft: L_max per system, (N,)
        :param profile_start: (N + 1,) into ``profile_tokens`` / ``profile_seconds`` (eq. (2') profiles)
        :param downlink: T_dl per system, s; ``deadline``: upload deadline per system, s (inf: none)
        :param weights: w_k >= 0 of the objective sum_k w_k E[n_k] / T, eq. (5w), (U,); empty: all 1. Each system
            is solved with its weights divided by their largest (only ratios matter; equal weights give the
            unweighted solve exactly); a system whose weights are all 0 gains nothing from drafting: L_k = 0
        :param lengths: out, L_k (U,); ``shares``: out, b_k (U,); ``goodput``, ``objective``, ``sync``, ``total``:
            out, tokens/s (eq. (5)), weighted tokens/s (eq. (5w)), s, s (N,); ``status``: out, OK or the reason the
            round left the float64 range (N,)
        """
        width = 0
        for i in range(user_start.size - 1):
            width = max(width, user_start[i + 1] - user_start[i])
        scaled = np.empty((width if weights.size > 0 else 0, table.shape[1]))
        for i in range(user_start.size - 1):
            lo, hi = user_start[i], user_start[i + 1]
            t_raw, c_raw, tab = draft_time[lo:hi], upload_time[lo:hi], table[lo:hi]
            ptok = profile_tokens[profile_start[i] : profile_start[i + 1]]
            psec = profile_seconds[profile_start[i] : profile_start[i + 1]]
            lm = max_draft[i]
            k_n = hi - lo
            base = _verify(k_n, ptok, psec) + downlink[i]
            if not math.isfinite(base):
                status[i] = BASE_OVERFLOW
                lengths[lo:hi] = 0
                shares[lo:hi] = 0.0
                continue
            out_len = lengths[lo:hi]
            out_share = shares[lo:hi]
            largest = 1.0  # the weight the objective is divided by
            uniform = True
            if weights.size > 0:
                largest = 0.0
                for k in range(lo, hi):
                    largest = max(largest, weights[k])
                for k in range(lo, hi):
                    uniform = uniform and weights[k] == largest
            if largest == 0.0:  # every weight 0: any allocation scores 0; the shortest drafts are all 0
                out_len[:] = 0
                out_share[:] = 0.0
                goodput[i], sync[i], total[i], status[i] = _hom_outcome(
                    0, out_share, t_raw, c_raw, tab, ptok, psec, downlink[i]
                )
                objective[i] = 0.0
                continue
            if uniform:  # w / largest = 1 exactly: the unweighted problem
                g, value, sync[i], total[i], st = _solve_system(
                    kind,
                    t_raw,
                    c_raw,
                    tab,
                    tab,
                    False,
                    lm,
                    ptok,
                    psec,
                    downlink[i],
                    deadline[i],
                    base,
                    out_len,
                    out_share,
                )
            else:
                obj = scaled[:k_n, : lm + 1]
                for k in range(k_n):
                    ratio = weights[lo + k] / largest
                    for l in range(lm + 1):
                        obj[k, l] = tab[k, l] * ratio
                g, value, sync[i], total[i], st = _solve_system(
                    kind,
                    t_raw,
                    c_raw,
                    tab,
                    obj,
                    True,
                    lm,
                    ptok,
                    psec,
                    downlink[i],
                    deadline[i],
                    base,
                    out_len,
                    out_share,
                )
            goodput[i] = g
            objective[i] = value * largest
            status[i] = st if st != OK or math.isfinite(objective[i]) else GOODPUT_OVERFLOW

    @njit(**_OPTS)
    def predictive_packed(
        user_start,
        draft_time,
        table,
        max_draft,
        profile_start,
        profile_tokens,
        profile_seconds,
        downlink,
        deadline,
        n_candidates,
        candidate_upload,
        draw_upload,
        lengths,
        shares,
        goodput,
        sync,
        total,
        status,
    ):
        """het-opt-predictive's plan of every packed system (docs/model.md section 7.2): the P-het solution for
        each candidate channel, and of those the one with the best sample-average goodput over the channel draws,
        eq. (10): sum_m E[tokens]_m / sum_m T_m with the deadline applied per draw (:func:`_tokens_latency`);
        ties go to the first candidate.

        The layout is :func:`solve_packed`'s (P-het) but for the upload times:

        :param n_candidates: candidates of system i, >= 1 (1: its one candidate is played, no draw is read), (N,)
        :param candidate_upload: c_k of candidate j, s/token, (>= max n_candidates, U)
        :param draw_upload: c_k of draw m, s/token, (M, U), M >= 1
        :param lengths: out, L_k (U,); ``shares``: out, b_k (U,); ``goodput``, ``sync``, ``total``: out, the
            played plan's P-het goodput, sync time and latency on its own candidate channel (tokens/s, s, s) (N,);
            ``status``: out, OK or why a candidate's round left the float64 range (N,)
        """
        width = 0
        for i in range(user_start.size - 1):
            width = max(width, user_start[i + 1] - user_start[i])
        cand_len = np.empty(width, dtype=np.int64)
        cand_share = np.empty(width)
        for i in range(user_start.size - 1):
            lo, hi = user_start[i], user_start[i + 1]
            k_n = hi - lo
            t_raw, tab = draft_time[lo:hi], table[lo:hi]
            ptok = profile_tokens[profile_start[i] : profile_start[i + 1]]
            psec = profile_seconds[profile_start[i] : profile_start[i + 1]]
            base = _verify(k_n, ptok, psec) + downlink[i]
            out_len = lengths[lo:hi]
            out_share = shares[lo:hi]
            if not math.isfinite(base):
                status[i] = BASE_OVERFLOW
                out_len[:] = 0
                out_share[:] = 0.0
                continue
            best_score = -math.inf
            for j in range(n_candidates[i]):
                c_raw = candidate_upload[j, lo:hi]
                c_len, c_share = cand_len[:k_n], cand_share[:k_n]
                g, tau, lat, st = _het_system(
                    t_raw, c_raw, tab, max_draft[i], ptok, psec, downlink[i], deadline[i], base, c_len, c_share
                )
                if st != OK or n_candidates[i] == 1:  # nothing to choose (an overflow is reported as it is)
                    score = math.inf
                else:
                    tokens_sum = 0.0
                    latency_sum = 0.0
                    for m in range(draw_upload.shape[0]):
                        tokens, _, lat_m = _tokens_latency(
                            c_len, c_share, t_raw, draw_upload[m, lo:hi], tab, ptok, psec, downlink[i], deadline[i]
                        )
                        tokens_sum += tokens
                        latency_sum += lat_m
                    score = tokens_sum / latency_sum
                if j == 0 or score > best_score:
                    best_score = score
                    out_len[:] = c_len
                    out_share[:] = c_share
                    goodput[i], sync[i], total[i], status[i] = g, tau, lat, st
                if st != OK:
                    break
