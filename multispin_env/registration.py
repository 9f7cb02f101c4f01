"""Gymnasium registration of the Multi-SPIN environments (idempotent: safe to call or import twice)."""

from __future__ import annotations

import gymnasium as gym

__all__ = ["DEFAULT_ENV_ID", "ENV_IDS", "register_envs"]

#: Registered ids and the settings each fixes (its env classes reject them as keyword arguments).
ENV_IDS: dict[str, dict[str, bool]] = {
    "MultiSpin-Homogeneous-v0": {"homogeneous": True},
    "MultiSpin-Heterogeneous-v0": {"homogeneous": False},
}
#: The id the command-line tools use when none is given (the paper's system with per-user draft lengths).
DEFAULT_ENV_ID = "MultiSpin-Heterogeneous-v0"


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` that is not yet in ``gym.registry``.

    No TimeLimit (``max_episode_steps=None``): episodes are truncated by the simulated clock
    (the ``horizon`` setting). ``gym.make_vec`` uses the batched ``vector_entry_point``. Each id's classes
    are ``MultiSpin<Variant>Env`` and ``MultiSpin<Variant>VectorEnv``, ``<Variant>`` the id's middle part.
    """
    for env_id in ENV_IDS:
        if env_id in gym.registry:
            continue
        variant = env_id.split("-")[1]
        gym.register(
            id=env_id,
            entry_point=f"multispin_env.envs:MultiSpin{variant}Env",
            vector_entry_point=f"multispin_env.vector_env:MultiSpin{variant}VectorEnv",
        )
    # The benchmark tasks (multispin_env.suite): the heterogeneous id with each task's settings as kwargs.
    from multispin_env.suite import TASK_SPECS

    for env_id, spec in TASK_SPECS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="multispin_env.envs:MultiSpinHeterogeneousEnv",
                vector_entry_point="multispin_env.vector_env:MultiSpinHeterogeneousVectorEnv",
                kwargs=dict(spec.settings),
            )
