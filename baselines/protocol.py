"""The one interface of everything that acts on a MultiSpin env: the analytic controllers and the agents.

A :class:`Policy` has Stable-Baselines3's ``predict`` signature, so one evaluation loop
(:func:`agents.evaluation.run_episode`) plays analytic controllers (:func:`baselines.policies.make_policy`) and
trained agents (``agents.evaluation.AgentPolicy``, ``agents.residual.ResidualPolicy``) alike, and a ``reset``
called after every ``env.reset()`` (a new episode may bring a new population: cached solutions, estimates and
bandit statistics of the previous one are forgotten).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Policy", "episode_starts"]


@runtime_checkable
class Policy(Protocol):
    """Acts on observations of a MultiSpin env (``isinstance`` checks that both methods exist; mypy checks
    their signatures)."""

    def reset(self) -> None:
        """Forget what was learnt about the previous episode (called after every ``env.reset()``)."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[Any, Any]:
        """The action(s) for ``observation`` and the next recurrent state, as SB3's ``BaseAlgorithm.predict``.

        :param observation: one observation of the env (or a batch, for a policy bound to a vector env)
        :param state: the recurrent state returned by the previous call (None at the start; passed through by
            memoryless policies)
        :param episode_start: one flag per observation, True at the first observation of an episode
        :param deterministic: the mode of a stochastic policy's action distribution instead of a sample
        :returns: ``(action, state)``
        """
        ...


def episode_starts(episode_start: Any, rows: int, name: str) -> NDArray[np.bool_]:
    """The ``episode_start`` argument of :meth:`Policy.predict` as one flag per observation row.

    :param episode_start: None (no episode starts), one flag (for every row: a single env's ``[True]``) or one
        flag per row (SB3's ``episode_starts`` of a vector env)
    :param rows: the number of observations in the call
    :param name: the policy, for the error message
    :raises ValueError: any other number of flags (a flag array of another vector env would mark the wrong
        episodes)
    """
    if episode_start is None:
        return np.zeros(rows, dtype=bool)
    flags = np.asarray(episode_start, dtype=bool).reshape(-1)
    if flags.size == 1:
        return np.full(rows, bool(flags[0]))
    if flags.size != rows:
        raise ValueError(f"{name}: episode_start must have one flag per observation ({rows}), got {flags.size}")
    return flags
