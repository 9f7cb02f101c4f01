"""Numpy-batched Multi-SPIN vector environment: N independent systems stepped in one array computation.

``gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=N)`` builds a
:class:`MultiSpinVectorEnv` through the registered ``vector_entry_point``. Spaces,
reward and per-round quantities are those of :class:`~multispin_env.envs.MultiSpinEnv`
(same config keys, same :class:`~multispin_env.core.MultiSpinCore`), batched on a
leading axis of size ``num_envs``.

Autoreset follows Gymnasium 1.x's ``AutoresetMode.NEXT_STEP`` (as its built-in
CartPoleVectorEnv): a sub-env truncated at step t is reset at step t + 1, whose
action it ignores; that step returns the reset observation, reward 0 and
terminated = truncated = False for it.

Info: a dict of arrays with one row per sub-env, plus a boolean ``_key`` mask per
key (Gymnasium's vector-info convention). The per-round keys (``tokens``,
``accepted``, ``draft_lengths``, ``bandwidth``, ``latency``, ``sync_time``,
``verify_time``) are zero and masked out for sub-envs that were reset in that step;
``clock``, ``acceptance`` and ``spectral_efficiency`` describe every sub-env's
current state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from multispin_env.config import EnvConfig, default_config, resolve_config
from multispin_env.core import MultiSpinCore, MultiSpinEnvAPI

__all__ = ["MultiSpinVectorEnv", "ROUND_INFO_KEYS", "STATE_INFO_KEYS"]

#: Info keys that describe the round just played (absent for sub-envs reset in the step).
ROUND_INFO_KEYS = ("tokens", "accepted", "draft_lengths", "bandwidth", "latency", "sync_time", "verify_time")
#: Info keys that describe every sub-env's current state.
STATE_INFO_KEYS = ("clock", "acceptance", "spectral_efficiency")


class MultiSpinVectorEnv(MultiSpinEnvAPI, VectorEnv[NDArray[np.float32], NDArray[np.float32], NDArray[Any]]):
    """``num_envs`` Multi-SPIN systems in one batch (see the module docstring).

    :param num_envs: number of sub-environments N
    :param render_mode: None, "ansi" or "rgb_array"; :meth:`render` returns one frame per sub-env
    :param config: settings dict (keys of :func:`multispin_env.config.default_config`); keyword arguments
        override it. With ``resample_population=False`` every sub-env has the same fixed population.
    """

    metadata = {
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.config: EnvConfig = resolve_config(config, **kwargs)
        self._core = MultiSpinCore(self.config, num_envs)
        self.num_envs = self._core.num_envs
        low, high = self._core.observation_bounds()
        self.single_observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (self._core.action_size,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._actions_shape = (self.num_envs, self._core.action_size)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every setting and its default; see :func:`multispin_env.config.default_config`."""
        return default_config()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Reset every sub-env; ``seed`` reseeds the one generator all sub-envs draw from."""
        super().reset(seed=seed)
        core = self._core
        core.reset(self.np_random)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        info = core.state_info()
        mask = np.ones(self.num_envs, dtype=bool)
        info.update({f"_{key}": mask for key in list(info)})
        return core.observation(), info

    def step(
        self, actions: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        """One round in every sub-env; actions of shape (num_envs, action_size)."""
        if np.shape(actions) != self._actions_shape:
            raise ValueError(f"actions must have shape {self._actions_shape}, got {np.shape(actions)}")
        core = self._core
        rng = self.np_random
        lengths, shares = core.decode(self._checked_actions(actions))
        resetting = self._prev_done
        any_reset = bool(resetting.any())
        outcome = core.step(lengths, shares, rng, resetting if any_reset else None)
        reward = outcome.reward
        truncated = outcome.truncated
        if any_reset:
            index = np.flatnonzero(resetting)
            for key in ROUND_INFO_KEYS:
                getattr(outcome, key)[index] = 0
            reward[index] = 0.0
            truncated[index] = False
        info = core.info_arrays(outcome)
        played = ~resetting
        everyone = np.ones(self.num_envs, dtype=bool)
        for key in ROUND_INFO_KEYS:
            info[f"_{key}"] = played
        for key in STATE_INFO_KEYS:
            info[f"_{key}"] = everyone
        self._prev_done = truncated.copy()
        terminated = np.zeros(self.num_envs, dtype=bool)
        return core.observation(), reward, terminated, truncated, info

    @property
    def channel_gain(self) -> NDArray[np.complex128]:
        """The true complex fading gains h (num_envs, K) of the rounds about to be played."""
        return self._core.gain.copy()

    def render(self) -> tuple[Any, ...] | None:
        """One frame per sub-env (text tables for "ansi", RGB arrays for "rgb_array")."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. "
                'You can specify the render_mode at initialization, e.g. gym.make_vec(id, render_mode="ansi")'
            )
            return None
        draw = self._core.render_ansi if self.render_mode == "ansi" else self._core.render_rgb
        return tuple(draw(i) for i in range(self.num_envs))
