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
  minus its arrival time.

The state is packed in ``state`` (rows of :mod:`multispin_env.layout`, read by the compiled round) plus the
queued arrival times, a ring buffer ``queue`` (n, K, capacity) that doubles when a user's queue outgrows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from multispin_env.layout import (
    Q_ACTIVE,
    Q_ARRIVAL,
    Q_HEAD,
    Q_REMAINING,
    Q_WAITING,
    REQUEST_ROWS,
)

if TYPE_CHECKING:
    from multispin_env.acceptance import AcceptanceProcess

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["REQUEST_LENGTHS", "Requests", "request_lengths"]

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


class Requests:
    """The requests of ``num_envs`` systems of ``num_users`` users (see the module docstring).

    :param process: the acceptance process told of every new request
    :param mean_tokens: mean request length, tokens
    :param length: the length distribution, one of :data:`REQUEST_LENGTHS`
    :param arrival_rate: requests per second per user (Poisson), or None for always-busy users

    After each :meth:`advance` with arrivals: ``completed`` (n, K) marks the users whose request ended in the
    round (at most one each: a user serves one request at a time and a new one starts at the next round) and
    ``completion_time`` (n, K) holds its completion time in s (0 elsewhere).
    """

    def __init__(self, num_envs: int, num_users: int, *, process: AcceptanceProcess, mean_tokens: float,
                 length: str, arrival_rate: float | None) -> None:
        shape = (num_envs, num_users)
        self.process = process
        self.mean_tokens = float(mean_tokens)
        self.length = length
        self.arrival_rate = arrival_rate
        self.state = np.zeros((REQUEST_ROWS, *shape))
        self.queue = np.zeros((*shape, 4))  # arrival times (s) of the queued requests, a ring per user
        self.completed = np.zeros(shape, dtype=bool)
        self.completion_time = np.zeros(shape)

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

    def in_system(self) -> FloatArray:
        """Requests in progress or queued per user (n, K): Little's N."""
        return self.state[Q_ACTIVE] + self.state[Q_WAITING]

    # ------------------------------------------------------------------ reset
    def reset(self, rows: BoolArray, rng: np.random.Generator) -> None:
        """New episodes in the systems ``rows`` (mask over envs): always-busy users start a request each (the
        process has just been reset); with arrivals every user starts idle with an empty queue."""
        self.completed[rows] = False
        self.completion_time[rows] = 0.0
        if self.arrival_rate is None:
            where = np.zeros(self.state.shape[1:], dtype=bool)
            where[rows] = True
            self._start(where, rng)
            return
        self.state[:, rows] = 0.0

    def _start(self, where: BoolArray, rng: np.random.Generator) -> None:
        """New requests for the users ``where``: the process's draws (task, rate), then the lengths."""
        self.process.start_requests(where, rng)
        self.state[Q_REMAINING][where] = request_lengths(self.length, self.mean_tokens, int(np.count_nonzero(where)),
                                                         rng)
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
        np.copyto(self.completed, done)
        np.subtract(clock[:, None], self.state[Q_ARRIVAL], out=self.completion_time)
        self.completion_time[~done] = 0.0
        self.state[Q_ACTIVE][done] = 0.0
        remaining[done] = 0.0
        self._arrive(rate, latency, clock, rng)
        starting = (self.state[Q_ACTIVE] == 0.0) & (self.state[Q_WAITING] > 0.0)
        if starting.any():
            self._pop(starting)
            self._start(starting, rng)

    def _arrive(self, rate: float, latency: FloatArray, clock: FloatArray, rng: np.random.Generator) -> None:
        """Poisson arrivals (``rate`` per second and user) during the round [clock - latency, clock) of every user, appended to the queues:
        a Poisson(lambda T) count of points, uniform over the round given the count, in time order."""
        counts = rng.poisson(rate * latency[:, None], self.state.shape[1:])
        total = int(counts.sum())
        if total == 0:
            return
        offsets = rng.random(total)
        waiting = self.state[Q_WAITING]
        needed = int((waiting + counts).max())
        if needed > self.queue.shape[2]:
            self._grow(needed)
        flat = np.flatnonzero(counts)
        per_user = counts.ravel()[flat]
        users = np.repeat(flat, per_user)
        order = np.lexsort((offsets, users))  # users ascending (already), each user's points in time order
        offsets = offsets[order]
        rank = np.arange(total) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        env, user = np.unravel_index(users, counts.shape)
        capacity = self.queue.shape[2]
        slot = (self.state[Q_HEAD][env, user] + waiting[env, user] + rank).astype(np.intp) % capacity
        start = clock - latency
        self.queue[env, user, slot] = start[env] + offsets * latency[env]
        waiting += counts

    def _pop(self, where: BoolArray) -> None:
        """The oldest queued request of the users ``where`` becomes their current one (its arrival time)."""
        env, user = np.nonzero(where)
        head = self.state[Q_HEAD][env, user].astype(np.intp)
        self.state[Q_ARRIVAL][env, user] = self.queue[env, user, head]
        self.state[Q_HEAD][env, user] = (head + 1) % self.queue.shape[2]
        self.state[Q_WAITING][env, user] -= 1.0

    def _grow(self, needed: int) -> None:
        """A queue of at least ``needed`` slots per user, the oldest queued request moved to slot 0."""
        capacity = self.queue.shape[2]
        new = 1 << (needed - 1).bit_length()
        slots = (self.state[Q_HEAD].astype(np.intp)[..., None] + np.arange(capacity)) % capacity
        grown = np.zeros((*self.queue.shape[:2], new))
        grown[..., :capacity] = np.take_along_axis(self.queue, slots, axis=2)
        self.queue = grown
        self.state[Q_HEAD] = 0.0
