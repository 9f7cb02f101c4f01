"""The one interface of everything that acts on a MultiSpin env: the analytic controllers and the agents.

A :class:`Policy` has Stable-Baselines3's ``predict`` signature, so one evaluation loop
(:func:`agents.evaluation.run_episode`) plays analytic controllers (:func:`baselines.policies.make_policy`) and
trained agents (``agents.evaluation.AgentPolicy``, ``agents.residual.ResidualPolicy``) alike, and a ``reset``
called after every ``env.reset()`` (a new episode may bring a new population: cached solutions, estimates and
bandit statistics of the previous one are forgotten).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Policy"]


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
