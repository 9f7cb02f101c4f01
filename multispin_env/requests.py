"""Requests: what each user generates tokens for, their lengths and (optionally) their Poisson arrivals.

One notion of a request serves the whole package (docs/model.md section 5.8). A request has a length in tokens
drawn from ``request_length`` (mean ``mean_request_tokens``); a round's counted tokens n_k go towards the user's
current request, which ends when its remaining length reaches 0. When a request starts, the acceptance process
is told (:meth:`~multispin_env.acceptance.AcceptanceProcess.start_requests`: the ``tasks`` process draws the
request's task, the ``mixture`` process with scope "request" its rate).

- ``arrival_rate`` None (always-busy users): the next request starts at the next round; the process's request
  boundaries are the only use (the object exists only for a process that needs them).
- ``arrival_rate`` lambda: each user receives requests as a Poisson process of rate lambda (per second of the
  simulated clock). A request that arrives during a round waits at least until the next round; a user serves
  one request at a time, first come first served, the others wait in its queue. A user without a request is
  idle: the round ignores it (section 5.8). When a request ends mid-round the tokens beyond its end are not
  counted (the round caps n_k at the remaining length). Completion time = the end of the round that finishes it
  minus its arrival time. A user holds at most ``max_queued`` + 1 requests (its current one and those queued);
  a request arriving when it is full is blocked: dropped and counted in ``blocked`` (docs/model.md eq. (9')).
- ``deadline`` (s per token, base s) with arrivals: each request gets a completion-time target D = base + per_token
  * length (docs/model.md eq. (9d)); its length is drawn when it arrives (the target is known while it waits), and
  each round counts per user the requests that met their target (completed by it) and those that missed it (its
  due time passed during the round while the request was in the system, or it was blocked): ``met``, ``missed``.

The state is packed in ``state`` (rows of :mod:`multispin_env.layout`, read by the compiled round) plus the
queued arrival times, a ring buffer ``queue`` (n, K, capacity) that doubles when a user's queue outgrows it, up to
:func:`queue_slots` slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from multispin_env.layout import (
    Q_ACTIVE,
    Q_ARRIVAL,
    Q_DUE,
    Q_HEAD,
    Q_REMAINING,
    Q_WAITING,
    REQUEST_ROWS,
)
from multispin_env.model import request_slack

if TYPE_CHECKING:
    from multispin_env.acceptance import AcceptanceProcess

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["REQUEST_LENGTHS", "Requests", "queue_slots", "request_lengths", "request_state_bytes"]

#: Arrivals queued per vectorised batch (bounds the temporaries of a round with many arrivals).
ARRIVAL_CHUNK = 1 << 20

#: Distributions of a request's length in tokens, each of mean ``mean_request_tokens`` m: geometric on
#: {1, 2, ...} with P(1) = 1/m, or fixed (ceil(m): m for integer m).
REQUEST_LENGTHS = ("geometric", "fixed")


def request_lengths(kind: str, mean_tokens: float, count: int, rng: np.random.Generator) -> FloatArray:
    """``count`` request lengths (tokens) of the distribution ``kind`` (:data:`REQUEST_LENGTHS`), mean
    ``mean_tokens``; "fixed" draws nothing from ``rng``."""
    if kind == "geometric":
        return rng.geometric(1.0 / mean_tokens, count).astype(np.float64)
    if kind == "fixed":
        return np.full(count, float(np.ceil(mean_tokens)))
    raise ValueError(f"request_length must be one of {REQUEST_LENGTHS}, got {kind!r}")


def queue_slots(max_queued: int) -> int:
    """The most slots a user's ring of queued arrival times ever needs: ``max_queued`` + 1 (an idle user's
    arrivals of one round all wait in it until the first of them starts at the next round)."""
    return max_queued + 1


def request_state_bytes(max_queued: int | None, deadlines: bool = False) -> int:
    """The most bytes per user that the arrays of :class:`Requests` (``max_queued`` as given to it) ever hold: the
    packed ``state`` rows, ``completion_time``, ``blocked``, ``completed`` and the ring at its largest; with
    ``deadlines`` also ``met``, ``missed`` and the rings of the queued requests' due times and lengths."""
    rings = 3 if deadlines else 1
    return 8 * (REQUEST_ROWS + 2 + 2 * deadlines + rings * queue_slots(max_queued or 0)) + 1


class Requests:
    """The requests of ``num_envs`` systems of ``num_users`` users (see the module docstring).

    :param process: the acceptance process told of every new request
    :param mean_tokens: mean request length, tokens
    :param length: the length distribution, one of :data:`REQUEST_LENGTHS`
    :param arrival_rate: requests per second per user (Poisson), or None for always-busy users
    :param max_queued: requests a user can hold queued behind its current one (0..; the setting
        ``max_queued_requests``); later arrivals are blocked. Required with ``arrival_rate``.
    :param deadline: (s per token, s): the completion-time target D = base + per_token * length of each request
        (docs/model.md eq. (9d)), or None for none; needs ``arrival_rate``

    After each :meth:`advance` with arrivals: ``completed`` (n, K) marks the users whose request ended in the
    round (at most one each: a user serves one request at a time and a new one starts at the next round),
    ``completion_time`` (n, K) holds its completion time in s (0 elsewhere) and ``blocked`` (n, K, int64) the
    requests that arrived in the round and were dropped because the user was full. With ``deadline``: ``met``
    (n, K, int64) the requests that completed in the round by their target, ``missed`` (n, K, int64) those whose
    target passed in the round unmet (eq. (9d)); the state row Q_DUE holds the current request's due time (s).
    """

    def __init__(
        self,
        num_envs: int,
        num_users: int,
        *,
        process: AcceptanceProcess,
        mean_tokens: float,
        length: str,
        arrival_rate: float | None,
        max_queued: int | None = None,
        deadline: tuple[float, float] | None = None,
    ) -> None:
        if arrival_rate is not None and max_queued is None:
            raise ValueError("max_queued is required with arrivals")
        if deadline is not None and arrival_rate is None:
            raise ValueError("request deadlines need arrivals")
        shape = (num_envs, num_users)
        self.process = process
        self.mean_tokens = float(mean_tokens)
        self.length = length
        self.arrival_rate = arrival_rate
        self.max_queued = int(max_queued or 0)
        self.state = np.zeros((REQUEST_ROWS, *shape))
        # Arrival times (s) of the queued requests, a ring per user (grown on demand, up to queue_slots).
        self.queue = np.zeros((*shape, min(4, queue_slots(self.max_queued))))
        self.completed = np.zeros(shape, dtype=bool)
        self.completion_time = np.zeros(shape)
        self.blocked = np.zeros(shape, dtype=np.int64)
        self.deadline = deadline
        # With deadlines: the queued requests' due times (s) and lengths (tokens), rings beside ``queue``.
        rings = self.queue.shape if deadline is not None else (*shape, 0)
        self.queue_due = np.zeros(rings)
        self.queue_tokens = np.zeros(rings)
        counted = shape if deadline is not None else (num_envs, 0)
        self.met = np.zeros(counted, dtype=np.int64)
        self.missed = np.zeros(counted, dtype=np.int64)

    @property
    def active(self) -> BoolArray:
        """True where the user has a request in the round about to be played (n, K)."""
        return self.state[Q_ACTIVE] > 0.0

    @property
    def remaining(self) -> FloatArray:
        """Tokens left in each user's current request (n, K); 0 for an idle user."""
        return self.state[Q_REMAINING]

    @property
    def waiting(self) -> FloatArray:
        """Requests queued behind the current one (n, K)."""
        return self.state[Q_WAITING]

    def slack(self, clock: FloatArray) -> FloatArray:
        """Time left to each user's current request's target at ``clock`` (n,) s: due - clock (n, K), s (negative:
        overdue; 0 for an idle user or without deadlines)."""
        if self.deadline is None:
            return np.zeros(self.state.shape[1:])
        return request_slack(self.state[Q_DUE], clock[:, None], self.state[Q_ACTIVE])

    def in_system(self) -> FloatArray:
        """Requests in progress or queued per user (n, K): Little's N."""
        return self.state[Q_ACTIVE] + self.state[Q_WAITING]

    # ------------------------------------------------------------------ reset
    def reset(self, rows: BoolArray, rng: np.random.Generator) -> None:
        """New episodes in the systems ``rows`` (mask over envs): always-busy users start a request each (the
        process has just been reset); with arrivals every user starts idle with an empty queue."""
        self.completed[rows] = False
        self.completion_time[rows] = 0.0
        self.blocked[rows] = 0
        self.met[rows] = 0
        self.missed[rows] = 0
        if self.arrival_rate is None:
            where = np.zeros(self.state.shape[1:], dtype=bool)
            where[rows] = True
            self._start(where, rng)
            return
        self.state[:, rows] = 0.0

    def _start(self, where: BoolArray, rng: np.random.Generator, lengths: FloatArray | None = None) -> None:
        """New requests for the users ``where``: the process's draws (task, rate), then the lengths (drawn here
        unless given: with deadlines they were drawn at arrival)."""
        self.process.start_requests(where, rng)
        if lengths is None:
            lengths = request_lengths(self.length, self.mean_tokens, int(np.count_nonzero(where)), rng)
        self.state[Q_REMAINING][where] = lengths
        self.state[Q_ACTIVE][where] = 1.0

    # ------------------------------------------------------------------- step
    def advance(self, tokens: FloatArray, latency: FloatArray, clock: FloatArray, rng: np.random.Generator) -> None:
        """After a round of ``latency`` (n,) s ending at ``clock`` (n,) s in which the users gained ``tokens``
        (n, K, counted: capped at the request's end with arrivals): finish, queue and start requests."""
        remaining = self.state[Q_REMAINING]
        remaining -= tokens
        done = (self.state[Q_ACTIVE] > 0.0) & (remaining <= 0.0)
        rate = self.arrival_rate
        if rate is None:
            if done.any():
                self._start(done, rng)
            return
        # Room during the round: the requests a user held while it ran (its current one still counts: it
        # completes at the round's end).
        room = queue_slots(self.max_queued) - (self.state[Q_ACTIVE] + self.state[Q_WAITING])
        start = clock - latency
        if self.deadline is not None:  # eq. (9d): met by the round's end, or the due time passes within the round
            due = self.state[Q_DUE]
            np.copyto(self.met, done & (clock[:, None] <= due))
            np.copyto(self.missed, (self.state[Q_ACTIVE] > 0.0) & (due >= start[:, None]) & (due < clock[:, None]))
        np.copyto(self.completed, done)
        np.subtract(clock[:, None], self.state[Q_ARRIVAL], out=self.completion_time)
        self.completion_time[~done] = 0.0
        self.state[Q_ACTIVE][done] = 0.0
        remaining[done] = 0.0
        self._arrive(rate, latency, clock, room, rng)
        if self.deadline is not None:
            self._count_queued_misses(start, clock)
        starting = (self.state[Q_ACTIVE] == 0.0) & (self.state[Q_WAITING] > 0.0)
        if starting.any():
            lengths = self._pop(starting)
            self._start(starting, rng, lengths)

    def _count_queued_misses(self, start: FloatArray, clock: FloatArray) -> None:
        """Add to ``missed`` the queued requests (the round's arrivals included) whose due time lies in the round
        [start, clock) (n,) s, and the blocked ones (they can never meet their target)."""
        capacity = self.queue.shape[2]
        position = (np.arange(capacity) - self.state[Q_HEAD][..., None]) % capacity  # 0: the oldest queued
        queued = position < self.state[Q_WAITING][..., None]
        due = self.queue_due
        passing = queued & (due >= start[:, None, None]) & (due < clock[:, None, None])
        self.missed += passing.sum(axis=2)
        self.missed += self.blocked

    def _arrive(
        self, rate: float, latency: FloatArray, clock: FloatArray, room: FloatArray, rng: np.random.Generator
    ) -> None:
        """Poisson arrivals (``rate`` per second and user) during the round [clock - latency, clock) of every user, appended to the queues
        (eq. 6): a Poisson(lambda T) count M of points, uniform over the round given the count, in time order.
        Only the first ``room`` (n, K) of them find room (eq. (9')); the rest are counted in ``blocked``."""
        counts = rng.poisson(rate * latency[:, None], self.state.shape[1:])
        kept = np.minimum(counts, room.astype(np.int64))
        np.subtract(counts, kept, out=self.blocked)
        total = int(kept.sum())
        if total == 0:
            return
        waiting = self.state[Q_WAITING]
        needed = int((waiting + kept).max())
        if needed > self.queue.shape[2]:
            self._grow(needed)
        flat = np.flatnonzero(kept)
        per_user = kept.ravel()[flat]
        # Whole users at a time, about ARRIVAL_CHUNK arrivals each: the temporaries stay bounded (a few arrays of
        # the chunk's size), and the uniforms are the same as drawn in one call.
        ends = np.cumsum(per_user)
        first = 0
        while first < flat.size:
            done = 0 if first == 0 else int(ends[first - 1])
            last = max(first + 1, int(np.searchsorted(ends, done + ARRIVAL_CHUNK, side="right")))
            self._queue_arrivals(
                flat[first:last], per_user[first:last], counts.ravel()[flat[first:last]], latency, clock, rng
            )
            first = last
        waiting += kept

    def _queue_arrivals(
        self,
        flat: NDArray[np.intp],
        per_user: NDArray[np.int64],
        points: NDArray[np.int64],
        latency: FloatArray,
        clock: FloatArray,
        rng: np.random.Generator,
    ) -> None:
        """Append the kept arrivals of the users ``flat`` (flat (n, K) indices), ``per_user`` of their ``points``
        Poisson points each, to their queues behind the ``waiting`` ones, in time order."""
        total = int(per_user.sum())
        # One uniform per kept arrival (as many as arrivals when no one is full: the same draws as without a
        # limit); a full user's become the earliest of its M points, so that only room-many are drawn.
        offsets = rng.random(total)
        if np.any(per_user < points):
            offsets = _earliest_points(offsets, per_user, points)
        users = np.repeat(flat, per_user)
        order = np.lexsort((offsets, users))  # users ascending (already), each user's points in time order
        offsets = offsets[order]
        rank = np.arange(total) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        env, user = np.unravel_index(users, self.blocked.shape)
        capacity = self.queue.shape[2]
        slot = (self.state[Q_HEAD][env, user] + self.state[Q_WAITING][env, user] + rank).astype(np.intp) % capacity
        start = clock - latency
        arrival = start[env] + offsets * latency[env]
        self.queue[env, user, slot] = arrival
        if self.deadline is not None:  # eq. (9d): the length is drawn at arrival, so the target is known
            per_token, base = self.deadline
            lengths = request_lengths(self.length, self.mean_tokens, total, rng)
            self.queue_tokens[env, user, slot] = lengths
            self.queue_due[env, user, slot] = arrival + base + per_token * lengths

    def _pop(self, where: BoolArray) -> FloatArray | None:
        """The oldest queued request of the users ``where`` becomes their current one (its arrival time; with
        deadlines its due time); returns its length with deadlines (drawn at arrival), else None."""
        env, user = np.nonzero(where)
        head = self.state[Q_HEAD][env, user].astype(np.intp)
        self.state[Q_ARRIVAL][env, user] = self.queue[env, user, head]
        self.state[Q_HEAD][env, user] = (head + 1) % self.queue.shape[2]
        self.state[Q_WAITING][env, user] -= 1.0
        if self.deadline is None:
            return None
        self.state[Q_DUE][env, user] = self.queue_due[env, user, head]
        return self.queue_tokens[env, user, head]

    def _grow(self, needed: int) -> None:
        """A queue of at least ``needed`` slots per user (doubling, at most :func:`queue_slots`), the oldest queued
        request moved to slot 0."""
        capacity = self.queue.shape[2]
        new = min(1 << (needed - 1).bit_length(), queue_slots(self.max_queued))
        slots = (self.state[Q_HEAD].astype(np.intp)[..., None] + np.arange(capacity)) % capacity

        def grow(ring: FloatArray) -> FloatArray:
            grown = np.zeros((*ring.shape[:2], new))
            grown[..., :capacity] = np.take_along_axis(ring, slots, axis=2)
            return grown

        self.queue = grow(self.queue)
        if self.deadline is not None:
            self.queue_due = grow(self.queue_due)
            self.queue_tokens = grow(self.queue_tokens)
        self.state[Q_HEAD] = 0.0


def _earliest_points(uniforms: FloatArray, per_user: NDArray[np.int64], points: NDArray[np.int64]) -> FloatArray:
    """The earliest of each user's M uniform points on [0, 1), from as many U(0, 1) variates as are kept.

    ``uniforms`` holds consecutive runs of ``per_user`` (r,) variates, m <= M = ``points`` (r,) each. A run with
    m = M is returned as it is (the user's points, in any order); one with m < M becomes the m smallest of M iid
    uniforms in increasing order: given the i - 1 smallest, the other M - i + 1 are uniform above the largest of
    them, so 1 - U_(j) = prod_{i <= j} V_i^(1 / (M - i + 1)) with V_i iid U(0, 1], summed as logs within each run.
    """
    starts = np.cumsum(per_user) - per_user
    rank = np.arange(uniforms.size) - np.repeat(starts, per_user)
    left = np.repeat(points, per_user) - rank  # M - i + 1 for the i-th smallest, i = rank + 1
    short = np.repeat(per_user < points, per_user)
    logs = np.where(short, np.log1p(-uniforms) / left, 0.0)  # 1 - U(0, 1) is in (0, 1]: the log is finite
    total = np.cumsum(logs)
    within = total - np.repeat(total[starts] - logs[starts], per_user)  # the sum from the run's start
    return np.where(short, -np.expm1(within), uniforms)
