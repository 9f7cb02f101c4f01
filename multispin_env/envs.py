"""The single Multi-SPIN environment: one system of K users, one round per step (docs/model.md sections 2, 4, 5, 8).

Registered as ``MultiSpin-Homogeneous-v0`` (:class:`MultiSpinHomogeneousEnv`, one common draft length) and
``MultiSpin-Heterogeneous-v0`` (:class:`MultiSpinHeterogeneousEnv`, one length per user); settings are the keys of
:meth:`MultiSpinEnv.default_config`, passed as ``gym.make`` keyword arguments (or as ``config={...}``).

The documentation of an id is in the docstrings, Gymnasium style: the id's class has its description, action
space and version history, :class:`MultiSpinEnv` the observation space, reward, info, starting state and episode
end that every id shares. The documentation site renders them as one page per registered id
(``docs/gen_pages.py``), with the settings table built from :data:`multispin_env.config.SETTINGS`.
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
    r"""One Multi-SPIN system; one step is one round (the sections below hold for every registered id).

    ## Observation space

    `Box(float32, (5K + 1,))`, `Box(float32, (31,))` for the default K = 6 users. Fields in this order, K entries
    each (user order), then one (`env.unwrapped.observation_layout` gives the slices):

    | field | value | unit / scale | range |
    |---|---|---|---|
    | `spectral_efficiency` | observed log2(1 + SNR_k \|h_k\|^2) / 10 of the round-start channel estimate (delayed by `csi_delay` rounds, plus `csi_noise_std` estimation error) | (bit/s/Hz) / 10 | [0, 10] |
    | `draft_time` | nominal per-token drafting time t_k of the device / 10 ms | 10 ms | [0, t_max / 10 ms] |
    | `acceptance` | running acceptance estimate (S + w0 a0) / (S + F + w0), S and F discounted counts of accepted draft tokens and first rejections | probability | [0, 1] |
    | `last_draft_lengths` | L_k / L_max of the last round | fraction of L_max | [0, 1] |
    | `last_tokens` | n_k / (L_max + 1), tokens user k kept in the last round | fraction | [0, 1] |
    | `time_left` | max(0, 1 - clock / `horizon`) | fraction of the horizon | [0, 1] |

    With `arrival_rate` set (docs/model.md section 5.8) the observation is `Box(float32, (7K + 1,))`: then `active`
    (1 if the user has a request in progress, [0, 1]) and `remaining` (tokens left in it / `mean_request_tokens`,
    [0, 10]). A user without a request is idle: its action entries are ignored, and tokens past a request's end
    are not counted.

    ## Reward

    `reward_scale` (default 0.1) x the tokens generated in the round, sum_k n_k (each user keeps its accepted draft
    prefix plus one target token), minus `energy_weight` (tokens per joule, default 0) x the devices' energy of the
    round (docs/model.md section 5.7). The reward is scaled tokens, not tokens/s: an episode's goodput (tokens/s) is
    its tokens divided by the final `info["clock"]`. Training in this package wraps the vectorised env in
    `agents.wrappers.VecHorizonTermination` so that the return is the tokens within the horizon (goodput x horizon).

    ## Info

    Every step: `tokens`, `accepted`, `draft_lengths` (int arrays (K,), tokens), `bandwidth` (K, shares summing to 1
    over uploading users), `dropped` (bool (K,): the upload missed `upload_deadline`, so the draft was discarded and
    the user got one token), `energy` (J per user this round), `latency`, `sync_time`, `verify_time` (s, this
    round, docs/model.md eq. (1)-(3) with (1') and (2')), `clock` (s, simulated time after the round), and the true
    `acceptance` rates and `spectral_efficiency` (bit/s/Hz) of the *next* round (the current state, for oracle
    policies; also in the reset info). With arrivals also `completed`, `completion_time` (s) and `blocked`
    (requests dropped at a full queue, `max_queued_requests`) of this round and `active`, `remaining`, `queued` of
    the next (docs/model.md section 5.6). Every key keeps its type on every step.

    ## Starting state

    `reset(seed=...)` sets the clock to 0 s and zeroes the last-round fields (`last_draft_lengths`, `last_tokens`;
    `time_left` = 1). The population (distances, shadowing, device classes, base acceptance rates) is drawn once
    from `population_seed` and kept for every reset (or redrawn from the reset's generator with
    `resample_population=True`); the channel starts from a fresh stationary Rayleigh draw (`fading=True`, else
    \|h\|^2 = 1) and the delayed estimates start from it; the acceptance process restarts from the population's
    rates; the acceptance estimate starts from its prior (`acceptance_prior` 0.7, weight
    `acceptance_prior_weight` 2).

    ## Episode end

    Never terminated. Truncated at the first round ending at or after `horizon` simulated seconds (default 10 s;
    about 100 rounds near the optimum, fewer with long drafts). There is no `max_episode_steps` (the number of
    rounds depends on the policy's round latencies) and no `reward_threshold` (the achievable goodput depends on the
    scenario, the population and the settings; compare against the analytic policies, `baselines.policies`, on the
    same seeds instead).

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
        return core.observation()[0], core.state_info(0)

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
    """``MultiSpin-Homogeneous-v0``: one common draft length for all users (the paper's P-hom).

    ## Description

    Multi-SPIN (arXiv 2606.04581): K edge devices each draft tokens with a small language model, upload the drafts
    over a shared FDMA uplink (bandwidth share b_k) and an edge server verifies all drafts in one batch with the
    large target model; each user keeps its accepted prefix plus one target token. One step is one such round.
    Here every user drafts the same number of tokens L (the homogeneous problem P-hom); the controls are L and the
    bandwidth shares; the objective is the sum token goodput, tokens per second. The analytic optimum of the round
    is `baselines.solvers.solve_homogeneous` (exact); the het-opt policies do not apply to this id.

    ## Action space

    `Box(-1, 1, (K + 1,), float32)`, `Box(-1, 1, (7,))` for K = 6:

    - entry `0`: the common draft length L = round((x_0 + 1) / 2 x L_max) tokens for every user, rounded half to
      even (L_max = `max_draft`, 10 in the base scenario);
    - entries `1..K`: bandwidth share weights w_k = (x + 1) / 2; shares b_k = w_k / sum_j w_j over the drafting
      users (fractions of the uplink band); a user with w_k = 0 drafts nothing unless all weights are 0 (then
      equal shares).

    Finite out-of-range entries are clipped; NaN/inf or a wrong shape raise `ValueError` (one line naming the
    first bad entry) and leave the env as it was.
    `env.unwrapped.encode_action(draft_lengths, bandwidth)` gives the action of an allocation.

    ## Version history

    - v0 (multispin-env 0.1.0, fingerprinted at 0.2.0): the model of docs/model.md. Before 0.2.0 the round gained
      the upload deadline (default 0.5 s), the verification knee/profile and device energy under v0, and seeded
      trajectories changed once with the compiled round's unified prefix sampling (CHANGELOG.md). Request
      arrivals (`arrival_rate`, `request_length`) are opt-in settings; without them the spaces and trajectories
      are unchanged. From 0.2.0 on a change of the id's seeded trajectory is a new version.
    """

    fixed_settings = ENV_IDS["MultiSpin-Homogeneous-v0"]


class MultiSpinHeterogeneousEnv(MultiSpinEnv):
    """``MultiSpin-Heterogeneous-v0``: one draft length per user (the paper's P-het).

    ## Description

    Multi-SPIN (arXiv 2606.04581): K edge devices each draft L_k tokens with a small language model, upload the
    drafts over a shared FDMA uplink (bandwidth share b_k) and an edge server verifies all drafts in one batch with
    the large target model; each user keeps its accepted prefix plus one target token. One step is one such round.
    The controls are every user's draft length and bandwidth share (the heterogeneous problem P-het); the objective
    is the sum token goodput, tokens per second. The analytic optimum of the round is
    `baselines.solvers.solve_heterogeneous`; `baselines.policies` plays it at static, adaptive and oracle
    information. The benchmark tasks `MultiSpinSuite/<Name>-v<N>` are this id with fixed settings (docs/suite.md).

    ## Action space

    `Box(-1, 1, (2K,), float32)`, `Box(-1, 1, (12,))` for K = 6:

    - entries `0..K-1`: draft lengths L_k = round((x_k + 1) / 2 x L_max) tokens, rounded half to even
      (L_max = `max_draft`, 10 in the base scenario);
    - entries `K..2K-1`: bandwidth share weights w_k = (x + 1) / 2; shares b_k = w_k [L_k > 0] / sum_j w_j [L_j > 0]
      (fractions of the uplink band). Users with L_k = 0 get no band; a drafting user with w_k = 0 drafts nothing
      unless every drafting user has w = 0 (then they share equally).

    Finite out-of-range entries are clipped; NaN/inf or a wrong shape raise `ValueError` (one line naming the
    first bad entry) and leave the env as it was.
    `env.unwrapped.encode_action(draft_lengths, bandwidth)` gives the action of an allocation.

    ## Version history

    - v0 (multispin-env 0.1.0, fingerprinted at 0.2.0): the model of docs/model.md. Before 0.2.0 the round gained
      the upload deadline (default 0.5 s), the verification knee/profile and device energy under v0, and seeded
      trajectories changed once with the compiled round's unified prefix sampling (CHANGELOG.md). Request
      arrivals (`arrival_rate`, `request_length`) are opt-in settings; without them the spaces and trajectories
      are unchanged. From 0.2.0 on a change of the id's seeded trajectory is a new version.
    """

    fixed_settings = ENV_IDS["MultiSpin-Heterogeneous-v0"]
