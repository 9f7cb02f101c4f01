"""SB3 VecEnv over a compiled, batched Gymnasium VectorEnv (``gym.make_vec``): ``--vec-env batched``.

SB3 expects same-step autoreset: when sub-env i ends, ``step`` returns its reset
observation and puts the last one in ``infos[i]["terminal_observation"]``
(``"TimeLimit.truncated"`` tells a truncation). :class:`GymnasiumVecEnv` gives
that from a Gymnasium 1.x VectorEnv whose autoreset mode is

- ``SAME_STEP``: the vector env resets at once and reports ``info["final_obs"]``;
- ``DISABLED``: the adapter resets the ended sub-envs with ``reset(options={"reset_mask": ...})``.

``NEXT_STEP`` vector envs (reset one step later, ignoring that step's action)
cannot be adapted without a spurious transition per episode, so they are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

SUPPORTED_MODES = (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)


def autoreset_mode(venv: gym.vector.VectorEnv) -> AutoresetMode | None:
    """The vector env's declared autoreset mode (None if it declares none)."""
    mode = getattr(venv, "metadata", {}).get("autoreset_mode")
    if isinstance(mode, str):
        mode = AutoresetMode(mode)
    return mode


class GymnasiumVecEnv(VecEnv):
    """A Gymnasium VectorEnv (SAME_STEP or DISABLED autoreset) as an SB3 VecEnv.

    :param venv: the vector env; its sub-envs are indexed 0..num_envs-1
    """

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        mode = autoreset_mode(venv)
        if mode not in SUPPORTED_MODES:
            raise ValueError(f"the vector env's autoreset mode must be SAME_STEP or DISABLED, got {mode}")
        self.venv = venv
        self.mode = mode
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def _split_info(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Gymnasium's dict of arrays (with ``_key`` masks) -> one dict per sub-env."""
        # Why columns: this runs at every step of every training run; a Python loop over sub-envs x keys cost
        # as much CPU as PPO's gradient steps at 128 envs. Keys present for every sub-env are zipped in one pass.
        full: list[tuple[str, Any]] = []
        partial: list[tuple[str, Any, Any]] = []
        for key, value in info.items():
            if key.startswith("_") or key in ("final_obs", "final_info"):
                continue
            mask = info.get(f"_{key}")
            if mask is None or np.all(mask):
                full.append((key, value))
            else:
                partial.append((key, value, mask))
        names = [key for key, _ in full]
        out: list[dict[str, Any]] = [
            dict(zip(names, row, strict=True)) for row in zip(*(list(value) for _, value in full), strict=True)
        ]
        if not full:
            out = [{} for _ in range(self.num_envs)]
        for key, value, mask in partial:
            for i in np.flatnonzero(mask):
                out[i][key] = value[i]
        return out

    # -- VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        options = self._options[0] if self._options and self._options[0] else None
        obs, info = self.venv.reset(seed=seed, options=options)
        self.reset_infos = self._split_info(info)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async first"
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        infos = self._split_info(info)
        if dones.any():
            if self.mode == AutoresetMode.SAME_STEP:
                final_obs = info["final_obs"]
                final_info = info.get("final_info", {})
                ended_infos = self._split_info(final_info) if final_info else None
                for i in np.flatnonzero(dones):
                    # SB3 reports the step's info for an ended episode (the reset info is not returned).
                    if ended_infos is not None:
                        infos[i] = ended_infos[i]
                    infos[i]["terminal_observation"] = final_obs[i]
            else:
                obs = np.array(obs, copy=True)
                for i in np.flatnonzero(dones):
                    infos[i]["terminal_observation"] = obs[i].copy()
                reset_obs, _ = self.venv.reset(options={"reset_mask": dones.astype(np.bool_)})
                obs[dones] = reset_obs[dones]
            for i in np.flatnonzero(dones):
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv.unwrapped if hasattr(self.venv, "unwrapped") else self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def make_batched_vec_env(env_id: str, n_envs: int, env_kwargs: dict[str, Any] | None = None) -> GymnasiumVecEnv:
    """``gym.make_vec(env_id, n_envs, vectorization_mode="vector_entry_point", autoreset_mode=SAME_STEP)``
    adapted for SB3.

    Raises ValueError if the id has no vector entry point or its autoreset mode is not supported.
    """
    kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP, **(env_kwargs or {})}
    try:
        venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **kwargs)
    except gym.error.Error as exc:
        raise ValueError(f"{env_id} has no batched vector env: {exc}") from None
    try:
        return GymnasiumVecEnv(venv)
    except ValueError:
        venv.close()
        raise
