"""Gymnasium registration of the Multi-SPIN environments (idempotent: safe to call or import twice)."""

from __future__ import annotations

import gymnasium as gym

__all__ = ["ENV_IDS", "register_envs"]

#: Registered ids and the kwargs that distinguish them.
ENV_IDS: dict[str, dict[str, bool]] = {
    "MultiSpin-Homogeneous-v0": {"homogeneous": True},
    "MultiSpin-Heterogeneous-v0": {"homogeneous": False},
}


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` that is not yet in ``gym.registry``.

    No TimeLimit (``max_episode_steps=None``): episodes are truncated by the simulated clock
    (the ``horizon`` setting). ``gym.make_vec`` uses the numpy-batched ``vector_entry_point``.
    """
    for env_id, kwargs in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="multispin_env.envs:MultiSpinEnv",
            vector_entry_point="multispin_env.vector_env:MultiSpinVectorEnv",
            kwargs=dict(kwargs),
        )
