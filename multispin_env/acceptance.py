"""Acceptance processes (model.md section 5.1), batched over arrays of shape (num_envs, K).

Every process keeps the per-token acceptance rate of each user for the round
about to be played (:attr:`AcceptanceProcess.rate`) and samples the number of
accepted draft tokens A_k as a *prefix*: draft token i is accepted only if all
tokens before it were, so A_k is the index of the first rejection (or L_k when
the whole draft is accepted). The mean N(a, L) of eq. (4) is never used in the
simulation.

Sampling uses one exponential variate per user: with cumulative hazard
H(i) = -sum_{j<=i} log a_{k,j} (a_{k,j} the rate of draft position j), the
accepted prefix is A = min(L, #{i : H(i) <= E}), E ~ Exp(1), because
P(A >= i) = P(E >= H(i)) = prod_{j<=i} a_{k,j}. For a rate that does not
depend on the position, H(i) = i (-log a) and A = min(L, floor(E / -log a)).

Processes (selected by name, :data:`ACCEPTANCE_PROCESSES`):

- ``iid``: a_k fixed, the population's rate (the paper's model).
- ``positional``: a_{k,i} = a_k d^(i-1), d = ``positional_decay``.
- ``markov``: a sticky two-regime hidden Markov chain per user; the easy
  regime has the population's rate a_k, the hard one a_k * ``markov_hard_factor``;
  each round each user switches regime with probability ``markov_switch_prob``.
- ``tasks``: each user serves a stream of requests of geometric length (mean
  ``mean_request_tokens`` tokens); a new request draws its task, hence its rate,
  from an :class:`~multispin_env.scenarios.AcceptanceProfile`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from multispin_env._checks import real_setting
from multispin_env.scenarios import AcceptanceProfile

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = [
    "ACCEPTANCE_PROCESSES",
    "AcceptanceProcess",
    "IIDAcceptance",
    "PositionalAcceptance",
    "MarkovAcceptance",
    "TaskAcceptance",
    "make_acceptance_process",
]


class AcceptanceProcess:
    """Base class: a per-round acceptance rate per user and prefix sampling (i.i.d. in the positions).

    :param num_envs: number of independent systems (batch rows)
    :param num_users: K
    :param max_draft: L_max, tokens

    Attributes (all shape (num_envs, K)):

    - ``rate``: a_k of the round about to be played (for ``positional``: the rate of draft position 1);
    - ``base_rate``: the population's rate a_k the process was reset with.
    """

    name: ClassVar[str] = ""
    #: Config keys of this process's parameters and their defaults.
    defaults: ClassVar[dict[str, float]] = {}
    #: Whether the state evolves between rounds (:meth:`advance` is not a no-op, and may draw randomness).
    #: False: the state is a function of the base rates alone, so resetting rows to unchanged base rates
    #: changes nothing.
    evolves: ClassVar[bool] = False

    def __init__(self, num_envs: int, num_users: int, max_draft: int) -> None:
        shape = (num_envs, num_users)
        self.num_envs = num_envs
        self.num_users = num_users
        self.max_draft = max_draft
        self.base_rate: FloatArray = np.full(shape, 0.5)
        self.rate: FloatArray = np.full(shape, 0.5)
        # -log a: per-token hazard of rejection (> 0 since a < 1).
        self._hazard: FloatArray = -np.log(self.rate)

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        """Restart the process in ``rows`` (a boolean mask over envs; None = all) from ``base_rate`` (num_envs, K)."""
        sel = slice(None) if rows is None else rows
        rates = base_rate[sel]
        self.base_rate[sel] = rates
        self.rate[sel] = rates
        self._hazard[sel] = -np.log(rates)

    def sample(self, draft_lengths: FloatArray, exponential: FloatArray) -> FloatArray:
        """Accepted prefix lengths A = min(L, floor(E / -log a)) for E ~ Exp(1) (``exponential``), as floats."""
        accepted = np.divide(exponential, self._hazard)
        np.floor(accepted, out=accepted)
        return np.minimum(accepted, draft_lengths, out=accepted)

    def advance(self, tokens: FloatArray, rng: np.random.Generator) -> None:
        """Evolve the process after a round in which each user gained ``tokens`` (no-op for i.i.d.)."""

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        """Long-run mean rate per user given the population's ``base_rate`` (what a static policy plans with)."""
        return np.array(base_rate, dtype=np.float64)


class IIDAcceptance(AcceptanceProcess):
    """i.i.d. acceptance with the population's fixed rate a_k (model.md eq. (4))."""

    name = "iid"


class PositionalAcceptance(AcceptanceProcess):
    """Acceptance falling with the draft position: a_{k,i} = a_k d^(i-1) (model.md section 5.1).

    :param positional_decay: d in (0, 1]; d = 1 is i.i.d. (measured: 0.805, 0.632, 0.483 for positions 1-3,
        i.e. d ~ 0.79)

    ``rate`` (and :meth:`mean_rate`) give the position-1 rate a_k.
    """

    name = "positional"
    defaults = {"positional_decay": 0.8}

    def __init__(self, num_envs: int, num_users: int, max_draft: int, *, positional_decay: float = 0.8) -> None:
        super().__init__(num_envs, num_users, max_draft)
        self.decay = real_setting("positional_decay", positional_decay, 0.0, 1.0, low_open=True)
        positions = np.arange(1, max_draft + 1, dtype=np.float64)
        self._positions = positions
        # -sum_{j<=i} log d^(j-1) = -log(d) i (i - 1) / 2
        self._decay_hazard = -math.log(self.decay) * positions * (positions - 1.0) / 2.0
        self._cumulative_hazard: FloatArray = np.zeros((num_envs, num_users, max_draft))

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        super().reset(rows, base_rate, rng)
        sel = slice(None) if rows is None else rows
        self._cumulative_hazard[sel] = self._hazard[sel][..., None] * self._positions + self._decay_hazard

    def sample(self, draft_lengths: FloatArray, exponential: FloatArray) -> FloatArray:
        """A = min(L, #{i : H(i) <= E}), H the cumulative hazard of positions 1..L_max."""
        reached = np.count_nonzero(self._cumulative_hazard <= exponential[..., None], axis=-1)
        return np.minimum(reached, draft_lengths)


class MarkovAcceptance(AcceptanceProcess):
    """Sticky two-regime (easy/hard content) hidden Markov acceptance (model.md section 5.1).

    :param markov_switch_prob: probability per round that a user's regime flips (both directions)
    :param markov_hard_factor: hard-regime rate = a_k * factor, factor in (0, 1]

    The chain is symmetric, so each regime has stationary probability 1/2; resets draw the regime from it.
    """

    name = "markov"
    defaults = {"markov_switch_prob": 0.05, "markov_hard_factor": 0.6}
    evolves = True

    def __init__(
        self,
        num_envs: int,
        num_users: int,
        max_draft: int,
        *,
        markov_switch_prob: float = 0.05,
        markov_hard_factor: float = 0.6,
    ) -> None:
        super().__init__(num_envs, num_users, max_draft)
        self.switch_prob = real_setting("markov_switch_prob", markov_switch_prob, 0.0, 1.0)
        self.hard_factor = real_setting("markov_hard_factor", markov_hard_factor, 0.0, 1.0, low_open=True)
        shape = (num_envs, num_users)
        #: True where the user is in the hard regime.
        self.hard: BoolArray = np.zeros(shape, dtype=bool)
        self._easy_hazard: FloatArray = np.ones(shape)
        self._hard_hazard: FloatArray = np.ones(shape)

    def _apply_regime(self) -> None:
        np.copyto(self.rate, np.where(self.hard, self.base_rate * self.hard_factor, self.base_rate))
        np.copyto(self._hazard, np.where(self.hard, self._hard_hazard, self._easy_hazard))

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        super().reset(rows, base_rate, rng)
        sel = slice(None) if rows is None else rows
        self._easy_hazard[sel] = -np.log(base_rate[sel])
        self._hard_hazard[sel] = -np.log(base_rate[sel] * self.hard_factor)
        self.hard[sel] = rng.random(self.hard[sel].shape) < 0.5
        self._apply_regime()

    def advance(self, tokens: FloatArray, rng: np.random.Generator) -> None:
        flips = rng.random(self.hard.shape) < self.switch_prob
        if flips.any():
            self.hard ^= flips
            self._apply_regime()

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        return np.asarray(base_rate, dtype=np.float64) * (1.0 + self.hard_factor) / 2.0


class TaskAcceptance(AcceptanceProcess):
    """Requests of random length, each of a task drawn from an acceptance profile (model.md section 5.1).

    :param mean_request_tokens: mean request length in tokens (>= 1); lengths are geometric on {1, 2, ...}
    :param profile: the task mix: task rates and request frequencies

    A round's tokens count towards the user's current request; when the request is
    complete (its remaining length drops to 0 or below), the next round starts a
    new request with a newly drawn task and length. The population's rate is not
    used: each user's rate is the current task's. :meth:`mean_rate` is the
    request-weighted mean rate of the profile.
    """

    name = "tasks"
    defaults = {"mean_request_tokens": 100.0}
    evolves = True

    def __init__(
        self,
        num_envs: int,
        num_users: int,
        max_draft: int,
        *,
        profile: AcceptanceProfile,
        mean_request_tokens: float = 100.0,
    ) -> None:
        super().__init__(num_envs, num_users, max_draft)
        self.mean_request_tokens = real_setting("mean_request_tokens", mean_request_tokens, 1.0, 1e12)
        self.profile = profile
        self.task_rates = profile.rate_array()
        self._task_hazard = -np.log(self.task_rates)
        self._task_cdf = np.cumsum(profile.probabilities())
        shape = (num_envs, num_users)
        #: Index into ``profile.tasks`` of each user's current task.
        self.task: NDArray[np.intp] = np.zeros(shape, dtype=np.intp)
        #: Tokens left in each user's current request.
        self.remaining: FloatArray = np.ones(shape)

    def _new_requests(self, where: BoolArray, rng: np.random.Generator) -> None:
        count = int(np.count_nonzero(where))
        task = np.searchsorted(self._task_cdf, rng.random(count), side="right")
        task = np.minimum(task, self.task_rates.size - 1)  # guards a cumulative sum that ends just below 1
        self.task[where] = task
        self.rate[where] = self.task_rates[task]
        self._hazard[where] = self._task_hazard[task]
        self.remaining[where] = rng.geometric(1.0 / self.mean_request_tokens, count)

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        sel = slice(None) if rows is None else rows
        self.base_rate[sel] = base_rate[sel]
        where = np.zeros(self.task.shape, dtype=bool)
        where[sel] = True
        self._new_requests(where, rng)

    def advance(self, tokens: FloatArray, rng: np.random.Generator) -> None:
        self.remaining -= tokens
        done = self.remaining <= 0.0
        if done.any():
            self._new_requests(done, rng)

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        mean = float(self.profile.probabilities() @ self.task_rates)
        return np.full(np.shape(base_rate), mean)


#: Acceptance processes by name.
ACCEPTANCE_PROCESSES: dict[str, type[AcceptanceProcess]] = {
    cls.name: cls for cls in (IIDAcceptance, PositionalAcceptance, MarkovAcceptance, TaskAcceptance)
}


def make_acceptance_process(
    name: str,
    num_envs: int,
    num_users: int,
    max_draft: int,
    parameters: Mapping[str, Any],
    profile: AcceptanceProfile,
) -> AcceptanceProcess:
    """Build the process ``name`` taking its parameters (keys of its ``defaults``) from ``parameters``.

    ``profile`` is the task mix of the ``tasks`` process (ignored by the others).
    """
    if name not in ACCEPTANCE_PROCESSES:
        raise ValueError(f"acceptance_process must be one of {sorted(ACCEPTANCE_PROCESSES)}, got {name!r}")
    cls = ACCEPTANCE_PROCESSES[name]
    kwargs: dict[str, Any] = {key: parameters.get(key, default) for key, default in cls.defaults.items()}
    if cls is TaskAcceptance:
        kwargs["profile"] = profile
    return cls(num_envs, num_users, max_draft, **kwargs)
