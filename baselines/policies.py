"""Analytic policies that act on a MultiSpin env through ``encode_action`` (model.md section 7).

Every policy has an SB3-like ``predict(obs, state=None, episode_start=None,
deterministic=True) -> (action, state)`` so one evaluation loop serves agents
and baselines. Information levels of the optimising policies:

- ``static``: solved once per population from the mean parameters
  (``env.unwrapped.mean_round_params()``: mean channel, base acceptance);
- ``adaptive``: re-solved every round from the observation only (the
  observed channel and the running acceptance estimate);
- ``oracle``: re-solved every round from the true acceptance and channel of
  the round about to be played (``env.unwrapped.round_params()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from baselines.solvers import SOLVERS, Allocation
from multispin_env.model import RoundParams

Solver = Callable[[RoundParams], Allocation]

INFORMATION_LEVELS: tuple[str, ...] = ("static", "adaptive", "oracle")

#: Policy name -> (solver name in :data:`baselines.solvers.SOLVERS`, information level).
_POLICY_SOLVER: dict[str, tuple[str, str]] = {
    **{name: (name, "static") for name, spec in SOLVERS.items() if not spec.per_information_level},
    **{
        f"{name}-{level}": (name, level)
        for name, spec in SOLVERS.items()
        if spec.per_information_level
        for level in INFORMATION_LEVELS
    },
}

#: Every analytic policy name: the equal-share baselines, and hom-opt / het-opt at each information level.
ANALYTIC_POLICIES: tuple[str, ...] = tuple(_POLICY_SOLVER)


class AnalyticPolicy:
    """A solver applied to the information of one level, acting through ``env.unwrapped.encode_action``.

    :param env: a MultiSpin env (single, possibly wrapped) the policy is bound to
    :param solver: RoundParams -> Allocation
    :param information: ``static``, ``adaptive`` or ``oracle``
    :param name: the policy's name in reports
    """

    def __init__(self, env: gym.Env, solver: Solver, information: str = "static", name: str | None = None) -> None:
        if information not in INFORMATION_LEVELS:
            raise ValueError(f"information must be one of {INFORMATION_LEVELS}, got {information!r}")
        self.env = env
        self.solver = solver
        self.information = information
        self.name = name or f"{getattr(solver, '__name__', 'solver')}-{information}"
        self._static_action: np.ndarray | None = None
        self.last_allocation: Allocation | None = None

    def reset(self) -> None:
        """Forget the cached static solution (call after ``env.reset()``: the population may have changed)."""
        self._static_action = None

    def _params(self, obs: np.ndarray) -> RoundParams:
        unwrapped = self.env.unwrapped
        if self.information == "oracle":
            return unwrapped.round_params()
        if self.information == "adaptive":
            return unwrapped.round_params_from_observation(obs)
        return unwrapped.mean_round_params()

    def _act(self, obs: np.ndarray) -> np.ndarray:
        allocation = self.solver(self._params(obs))
        self.last_allocation = allocation
        return self.env.unwrapped.encode_action(allocation.draft_lengths, allocation.bandwidth)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Action for one (unbatched) observation, SB3 style; ``state`` is passed through."""
        obs = np.asarray(observation)
        if self.information != "static":
            return self._act(obs), state
        if self._static_action is None or (episode_start is not None and np.any(episode_start)):
            self._static_action = self._act(obs)
        return self._static_action.copy(), state


def policies_for(env: gym.Env) -> tuple[str, ...]:
    """The analytic policies that ``env`` can express (het-opt needs per-user lengths)."""
    if env.unwrapped.config.homogeneous:
        return tuple(name for name in ANALYTIC_POLICIES if SOLVERS[_POLICY_SOLVER[name][0]].common_length)
    return ANALYTIC_POLICIES


def make_policy(name: str, env: gym.Env) -> AnalyticPolicy:
    """Build the analytic policy ``name`` (one of :data:`ANALYTIC_POLICIES`) bound to ``env``."""
    if name not in ANALYTIC_POLICIES:
        raise ValueError(f"unknown analytic policy {name!r}; known: {list(ANALYTIC_POLICIES)}")
    if name not in policies_for(env):
        raise ValueError(f"policy {name!r} needs per-user draft lengths; {env.spec.id if env.spec else env} has one")
    solver_name, level = _POLICY_SOLVER[name]
    return AnalyticPolicy(env, SOLVERS[solver_name].solve, level, name=name)
