"""The single Multi-SPIN environment: one system of K users, one round per step (docs/model.md sections 2, 4, 5, 8).

Registered as ``MultiSpin-Homogeneous-v0`` (one common draft length) and
``MultiSpin-Heterogeneous-v0`` (one length per user); settings are the keys of
:meth:`MultiSpinEnv.default_config`, passed as ``gym.make`` keyword arguments
(or as ``config={...}``).

Action: ``Box(-1, 1, (E + K,), float32)`` with E = 1 (homogeneous) or K:

- entries ``0..E-1`` give draft lengths L = round((x + 1) / 2 * L_max) (the common L when homogeneous);
- entries ``E..E+K-1`` give share weights w_k = (x + 1) / 2; shares b_k = w_k [L_k > 0] / sum_j w_j [L_j > 0];
  a drafting user with w_k = 0 gets L_k = 0 (it could not upload) unless all drafting users have w = 0,
  in which case they share the band equally; users with L_k = 0 get no bandwidth.

Finite out-of-range entries are clipped, NaN/inf or a wrong shape raise ValueError (one line naming the first
bad entry) and leave the env as it was.
:meth:`~multispin_env.spaces.MultiSpinEnvAPI.encode_action` inverts the decoding. The registered ids fix
``homogeneous``; passing it to ``gym.make`` with an id raises ValueError.

Observation: ``Box(float32, (5K + 1,))``, fields (see ``observation_layout``), user order within each:

==========================  ==================================================================  ==========
field                        value                                                               range
==========================  ==================================================================  ==========
``spectral_efficiency``      observed log2(1 + SNR_k |h_k|^2) / 10 of the round-start channel    [0, 10]
                             estimate (delayed by ``csi_delay`` rounds, plus ``csi_noise_std``)
``draft_time``               nominal t_k / 10 ms                                                 [0, t_max/10 ms]
``acceptance``               running estimate (S + w0 a0) / (S + F + w0)                         [0, 1]
``last_draft_lengths``       L_k / L_max of the last round                                       [0, 1]
``last_tokens``              n_k / (L_max + 1) of the last round                                 [0, 1]
``time_left``                max(0, 1 - clock / horizon)                                         [0, 1]
==========================  ==================================================================  ==========

With request arrivals (``arrival_rate`` set, docs/model.md section 5.8) the observation is ``(7K + 1,)``: then
``active`` (1 if the user has a request, [0, 1]) and ``remaining`` (its tokens left / ``mean_request_tokens``,
[0, 10]); idle users' actions are ignored, and tokens past a request's end are not counted.

Reward: ``reward_scale`` (default 0.1) times the tokens of the round, sum_k n_k. Episodes are never
terminated; they are truncated at the first round ending at or after ``horizon`` simulated seconds, so
an episode's tokens divided by ``info["clock"]`` is its goodput.

Info (every step): ``tokens``, ``accepted``, ``draft_lengths`` (int arrays (K,)), ``bandwidth`` (K,),
``latency``, ``sync_time``, ``verify_time`` (s, this round, eq. 1-3), ``clock`` (s, after the round),
and the true ``acceptance`` rates and ``spectral_efficiency`` (bit/s/Hz) of the *next* round (the
current state, for oracle policies; also in the reset info). With arrivals also ``completed``,
``completion_time`` (s) and ``blocked`` (requests dropped at a full queue) of this round and ``active``,
``remaining``, ``queued`` of the next (docs/model.md section 5.6). Every key keeps its type on every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from multispin_env.config import EnvConfig, default_config, resolve_config
from multispin_env.core import MultiSpinCore
from multispin_env.registration import ENV_IDS
from multispin_env.rendering import render_ansi, render_rgb
from multispin_env.spaces import MultiSpinEnvAPI, real_array

__all__ = ["MultiSpinEnv", "MultiSpinHomogeneousEnv", "MultiSpinHeterogeneousEnv"]


class MultiSpinEnv(MultiSpinEnvAPI, gym.Env[NDArray[np.float32], NDArray[np.float32]]):
    """One Multi-SPIN system; one step is one round. See the module docstring for spaces, reward and info.

    :param render_mode: None, "ansi" (text table of the last round) or "rgb_array" (matplotlib)
    :param config: settings dict (keys of :meth:`default_config`); keyword arguments override it
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    #: Settings fixed by the registered id this class serves (giving one of them is a ValueError).
    fixed_settings: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, render_mode: str | None = None, config: Mapping[str, Any] | None = None, **kwargs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.config: EnvConfig = resolve_config(config, fixed=self.fixed_settings, **kwargs)
        self._core = MultiSpinCore(self.config, 1)
        low, high = self._core.observation_bounds()
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self._core.action_size,), dtype=np.float32)
        self._action_shape = (self._core.action_size,)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every setting and its default; see :func:`multispin_env.config.default_config` for units."""
        return default_config()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        core = self._core
        core.reset(self.np_random)
        info = {key: value[0] for key, value in core.state_info().items()}
        info["clock"] = float(info["clock"])
        return core.observation()[0], info

    def step(self, action: NDArray[np.float32]) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        raw = real_array(action, self._action_shape)
        if raw.shape != self._action_shape:
            raise ValueError(f"action must have shape {self._action_shape}, got {raw.shape}")
        # The compiled step takes a writable, contiguous float64 array (np.frombuffer and setflags give read-only
        # ones); it does not write into it, so a conforming action is used as it is and any other is copied.
        flags = raw.flags
        x = raw if raw.dtype == np.float64 and flags.c_contiguous and flags.writeable else raw.astype(np.float64)
        # Checks NaN/inf, clips, decodes and plays the round in one kernel call.
        obs, reward, truncated, info = self._core.step_single(x, self.np_random)
        return obs, reward, False, truncated, info

    @property
    def channel_gain(self) -> NDArray[np.complex128]:
        """The true complex fading gains h_k (K,) of the round about to be played (|h|^2 = 1 on average)."""
        return self._core.gain[0].copy()

    def render(self) -> str | NDArray[np.uint8] | None:
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. "
                'You can specify the render_mode at initialization, e.g. gym.make(id, render_mode="ansi")'
            )
            return None
        if self.render_mode == "ansi":
            return render_ansi(self._core, 0)
        return render_rgb(self._core, 0)


class MultiSpinHomogeneousEnv(MultiSpinEnv):
    """``MultiSpin-Homogeneous-v0``: one common draft length for all users (the paper's P-hom)."""

    fixed_settings = ENV_IDS["MultiSpin-Homogeneous-v0"]


class MultiSpinHeterogeneousEnv(MultiSpinEnv):
    """``MultiSpin-Heterogeneous-v0``: one draft length per user (the paper's P-het)."""

    fixed_settings = ENV_IDS["MultiSpin-Heterogeneous-v0"]
