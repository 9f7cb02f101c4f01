"""Numpy-batched Multi-SPIN vector environment: N independent systems stepped in one array computation.

``gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=N)`` builds a
:class:`MultiSpinVectorEnv` through the registered ``vector_entry_point``. Spaces,
reward and per-round quantities are those of :class:`~multispin_env.envs.MultiSpinEnv`
(same config keys, same :class:`~multispin_env.core.MultiSpinCore`), batched on a
leading axis of size ``num_envs``.

Autoreset (``gym.make_vec(id, num_envs=N, autoreset_mode=...)``, Gymnasium 1.x modes):

- ``NEXT_STEP`` (default, as Gymnasium's CartPoleVectorEnv): a sub-env truncated at
  step t is reset at step t + 1, whose action it ignores; that step returns the reset
  observation, reward 0 and terminated = truncated = False for it.
- ``SAME_STEP`` (what SB3 expects): a sub-env truncated at step t is reset within step
  t; the step returns the new episode's first observation, the truncated episode's
  last one in ``info["final_obs"]`` and its round info in ``info["final_info"]``
  (both masked by ``info["_final_obs"]`` / ``info["_final_info"]``).
- ``DISABLED``: nothing is reset automatically; ``reset(options={"reset_mask": mask})``
  resets the masked sub-envs only (available in every mode).

Info: a dict of arrays with one row per sub-env, plus a boolean ``_key`` mask per
key (Gymnasium's vector-info convention). The per-round keys (``tokens``,
``accepted``, ``draft_lengths``, ``bandwidth``, ``latency``, ``sync_time``,
``verify_time``) are zero and masked out for sub-envs that were reset in that step;
``clock``, ``acceptance`` and ``spectral_efficiency`` describe every sub-env's
current state. Every key keeps its dtype and shape on every step, in every mode.

A rejected action (NaN/inf, a wrong shape or dtype) raises ValueError and changes nothing: the state and the
generator are as before it, in every autoreset mode (docs/model.md section 8.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from multispin_env.config import EnvConfig, default_config, resolve_config
from multispin_env.core import (
    ARRIVAL_ROUND_KEYS,
    ARRIVAL_STATE_KEYS,
    DEADLINE_ROUND_KEYS,
    DEADLINE_STATE_KEYS,
    MultiSpinCore,
)
from multispin_env.registration import ENV_IDS
from multispin_env.rendering import render_ansi, render_rgb
from multispin_env.spaces import MultiSpinEnvAPI, checked_actions

__all__ = [
    "MultiSpinVectorEnv",
    "MultiSpinHomogeneousVectorEnv",
    "MultiSpinHeterogeneousVectorEnv",
    "ROUND_INFO_KEYS",
    "STATE_INFO_KEYS",
]

#: Info keys that describe the round just played (absent for sub-envs reset in the step).
ROUND_INFO_KEYS = (
    "tokens",
    "accepted",
    "draft_lengths",
    "bandwidth",
    "dropped",
    "energy",
    "latency",
    "sync_time",
    "verify_time",
)
#: Info keys that describe every sub-env's current state.
STATE_INFO_KEYS = ("clock", "acceptance", "spectral_efficiency")
_STATE_MASKS = tuple(f"_{key}" for key in STATE_INFO_KEYS)


class MultiSpinVectorEnv(MultiSpinEnvAPI, VectorEnv[NDArray[np.float32], NDArray[np.float32], NDArray[Any]]):
    """``num_envs`` Multi-SPIN systems in one batch (see the module docstring).

    :param num_envs: number of sub-environments N
    :param render_mode: None, "ansi" or "rgb_array"; :meth:`render` returns one frame per sub-env
    :param config: settings dict (keys of :func:`multispin_env.config.default_config`); keyword arguments
        override it. With ``resample_population=False`` every sub-env has the same fixed population.
    :param autoreset_mode: ``AutoresetMode`` (or its name/value): NEXT_STEP (default), SAME_STEP or DISABLED
    """

    metadata = {
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }
    #: Settings fixed by the registered id this class serves (giving one of them is a ValueError).
    fixed_settings: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        config: Mapping[str, Any] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.config: EnvConfig = resolve_config(config, fixed=self.fixed_settings, **kwargs)
        self._core = MultiSpinCore(self.config, num_envs)
        self.num_envs = self._core.num_envs
        low, high = self._core.observation_bounds()
        self.single_observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (self._core.action_size,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._actions_shape = (self.num_envs, self._core.action_size)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._everyone = np.ones(self.num_envs, dtype=bool)  # the template of the all-True info masks
        arrivals, deadlines = self._core.arrivals, self._core.arrivals and self._core.deadlines
        #: Info keys of the round played and of the state (with arrivals, also docs/model.md section 5.8's; with
        #: deadlines, section 5.8's deadline keys).
        self._round_keys = (
            ROUND_INFO_KEYS + (ARRIVAL_ROUND_KEYS if arrivals else ()) + (DEADLINE_ROUND_KEYS if deadlines else ())
        )
        self._round_masks = tuple(f"_{key}" for key in self._round_keys)
        self._state_masks = (
            _STATE_MASKS
            + tuple(f"_{key}" for key in ARRIVAL_STATE_KEYS if arrivals)
            + tuple(f"_{key}" for key in DEADLINE_STATE_KEYS if deadlines)
            + tuple(f"_{key}" for key in self._core.optional_state_keys)
        )

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every setting and its default; see :func:`multispin_env.config.default_config`."""
        return default_config()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Reset every sub-env, or only those of ``options["reset_mask"]`` (a bool array (num_envs,)).

        ``seed`` reseeds the one generator all sub-envs draw from. The info holds the state keys,
        masked to the sub-envs that were reset.
        """
        super().reset(seed=seed)
        core = self._core
        mask = self._reset_mask(options)
        if mask is None:
            core.reset(self.np_random)
            mask = np.ones(self.num_envs, dtype=bool)
        else:
            core.restart(mask, self.np_random)
        self._prev_done = self._prev_done & ~mask
        info = core.state_info()
        info.update({f"_{key}": mask for key in list(info)})
        return core.observation(), info

    def _reset_mask(self, options: dict[str, Any] | None) -> NDArray[np.bool_] | None:
        """The validated ``options["reset_mask"]`` (None for a full reset)."""
        if not options or "reset_mask" not in options:
            return None
        mask = options["reset_mask"]
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(
                f"options['reset_mask'] must be a bool numpy array of shape ({self.num_envs},), got {mask!r}"
            )
        if not mask.any():
            raise ValueError("options['reset_mask'] must select at least one sub-env")
        return mask.copy()

    def step(
        self, actions: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        """One round in every sub-env; actions of shape (num_envs, action_size)."""
        if np.shape(actions) != self._actions_shape:
            raise ValueError(f"actions must have shape {self._actions_shape}, got {np.shape(actions)}")
        core = self._core
        raw = checked_actions(actions, core.action_size)
        if self.autoreset_mode is not AutoresetMode.NEXT_STEP:
            return self._step_without_delayed_reset(raw)
        resetting = self._prev_done
        any_reset = resetting.nonzero()[0].size > 0  # a quarter of ndarray.any()'s cost on 256 flags
        # The resetting sub-envs ignore the action: the core zeroes their round (reward 0, not truncated).
        outcome = core.step_actions(raw, self.np_random, resetting if any_reset else None)
        reward = outcome.reward
        truncated = outcome.truncated
        obs, info = core.report(outcome)
        played = ~resetting
        everyone = self._everyone.copy()  # np.ones costs 7x a copy here
        info.update(dict.fromkeys(self._round_masks, played))
        info.update(dict.fromkeys(self._state_masks, everyone))
        self._prev_done = truncated.copy()
        terminated = np.zeros(self.num_envs, dtype=bool)
        return obs, reward, terminated, truncated, info

    def _step_without_delayed_reset(
        self, actions: NDArray[np.float64]
    ) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        """SAME_STEP and DISABLED: every sub-env plays the round; SAME_STEP then restarts the truncated ones."""
        core = self._core
        outcome = core.step_actions(actions, self.np_random)
        truncated = outcome.truncated
        obs, info = core.report(outcome)
        everyone = self._everyone.copy()  # np.ones costs 7x a copy here
        info.update(dict.fromkeys(self._round_masks + self._state_masks, everyone))
        if self.autoreset_mode is AutoresetMode.SAME_STEP and truncated.any():
            final_info = {key: np.array(value) for key, value in info.items() if not key.startswith("_")}
            final_info.update({f"_{key}": truncated for key in list(final_info)})
            core.restart(truncated, self.np_random)
            played = ~truncated
            for key in self._round_keys:  # as in NEXT_STEP: zero and masked out where a new episode began
                value = info[key]  # a zero of the value's own dtype: every key keeps its dtype on every step
                info[key] = np.where(_column(played, value), value, np.zeros((), dtype=value.dtype))
                info[f"_{key}"] = played
            info.update(core.state_info())
            info.update(final_obs=obs, _final_obs=truncated.copy(), final_info=final_info, _final_info=truncated.copy())
            obs = core.observation()
        terminated = np.zeros(self.num_envs, dtype=bool)
        return obs, outcome.reward, terminated, truncated, info

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
        draw = render_ansi if self.render_mode == "ansi" else render_rgb
        return tuple(draw(self._core, i) for i in range(self.num_envs))


def _autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """``mode`` as an AutoresetMode (accepts the enum, its name or its value); ValueError otherwise."""
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str):
        for candidate in AutoresetMode:
            if mode in (candidate.name, candidate.value):
                return candidate
    names = ", ".join(m.name for m in AutoresetMode)
    raise ValueError(f"autoreset_mode must be one of {names}, got {mode!r}")


def _column(mask: NDArray[np.bool_], values: NDArray[Any]) -> NDArray[np.bool_]:
    """``mask`` (num_envs,) shaped to broadcast against ``values`` (num_envs, ...)."""
    return mask.reshape(mask.shape + (1,) * (np.ndim(values) - 1))


class MultiSpinHomogeneousVectorEnv(MultiSpinVectorEnv):
    """The batched ``MultiSpin-Homogeneous-v0`` (``gym.make_vec``): one common draft length per system."""

    fixed_settings = ENV_IDS["MultiSpin-Homogeneous-v0"]


class MultiSpinHeterogeneousVectorEnv(MultiSpinVectorEnv):
    """The batched ``MultiSpin-Heterogeneous-v0`` (``gym.make_vec``): one draft length per user."""

    fixed_settings = ENV_IDS["MultiSpin-Heterogeneous-v0"]
