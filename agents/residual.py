"""Residual agent: the policy outputs a bounded correction to an analytic controller's allocation.

The agent starts at the analytic controller (a zero action plays it exactly) and can only learn to improve on it.
The action has the env's shape, each entry in [-1, 1] (docs/model.md section 8.1 for the env's action):

- length entry: the controller's length plus ``max_length_offset`` x entry tokens (a continuous length, rounded by
  the env, or without bias by :class:`~agents.wrappers.VecStochasticRounding` during training: :class:`VecResidual`
  then draws that rounding itself, before it sizes the shares, so that they are sized for the length played);
- share entry: the controller's bandwidth weight times ``max_share_factor ** entry`` (then renormalised, so the
  correction is multiplicative); a user the controller leaves idle that the correction makes draft starts from the
  smallest weight of the drafting users. With ``share_per_token`` the weight is per drafted token: a user whose
  length the correction changes (as the env rounds it, to nearest) has its weight scaled by new / old length
  (an idle user starts from the smallest weight per token), so that a length move alone keeps the user's upload
  time about where the controller put it instead of delaying every user's sync time (eq. (1)); the share entry
  then corrects that.

The policy network of a residual agent is :class:`ResidualMlpPolicy`: SB3's MLP actor-critic with the action
mean's last layer zeroed at construction, so the untrained agent's deterministic action is exactly 0 and it
plays the controller exactly (training explores around it with the Gaussian's standard deviation).

The observation is the env's with the controller's action appended (its encoded allocation, entries in [-1, 1]).
:class:`VecResidual` is a VecEnv wrapper (rl-zoo3 ``vec_env_wrapper`` key, ``agents/hyperparams/ppo_residual.yml``)
that calls the controller once per step on the whole batch; :class:`ResidualPolicy` plays a trained residual agent
on a single env through the same two functions (:func:`augment`, :func:`compose`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import NDArray
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, unwrap_vec_wrapper

from agents.wrappers import VecStochasticRounding, length_entries
from baselines.protocol import Policy

__all__ = [
    "DEFAULT_BASE",
    "ResidualMlpPolicy",
    "ResidualPolicy",
    "VecResidual",
    "augment",
    "compose",
    "residual_base",
    "residual_settings",
]

#: The analytic controller a residual agent corrects by default.
DEFAULT_BASE = "het-opt-adaptive"
#: Dotted name of :class:`VecResidual` as it appears in a run's config.yml.
WRAPPER_NAME = f"{__name__}.VecResidual"
#: The version of what :class:`VecResidual` plays for an action during training, raised whenever it changes: a run
#: trained on an older version is trained again (:func:`agents.converge.hyperparameters_fingerprint`). Version 2
#: draws the training's stochastic rounding before sizing the shares per token; version 1 sized them for the
#: rounded-to-nearest length while the rounding below it played floor or ceil.
VERSION = 2


def augment(observation: NDArray[Any], base_action: NDArray[Any]) -> NDArray[np.float32]:
    """The residual agent's observation: the env's observation(s) with the controller's action(s) appended."""
    return np.concatenate([np.asarray(observation, np.float32), np.asarray(base_action, np.float32)], axis=-1)


class ResidualMlpPolicy(ActorCriticPolicy):
    """SB3's MLP actor-critic (``MlpPolicy``) whose action mean starts at exactly 0 for every observation: the last
    layer of the mean (``action_net``) is zeroed at construction, so an untrained residual agent plays its
    controller exactly. A saved agent's weights replace these when it is loaded."""

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        with torch.no_grad():
            for parameter in self.action_net.parameters():
                parameter.zero_()


def compose(
    base_action: NDArray[Any],
    correction: NDArray[Any],
    n_lengths: int,
    max_draft: int,
    max_length_offset: float,
    max_share_factor: float,
    share_per_token: bool = False,
    round_lengths: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
) -> NDArray[np.float32]:
    """The env action(s) of the controller's action(s) ``base_action`` corrected by ``correction`` (same shape).

    A zero correction returns ``base_action`` bit for bit where the env reads it (length entries and the share
    entries of drafting users; idle users' shares are ignored by the decoder), unless ``round_lengths`` moves a
    length.

    :param n_lengths: number of length entries at the start of the action
    :param max_draft: L_max, tokens
    :param max_length_offset: largest length correction, tokens
    :param max_share_factor: largest multiplicative weight correction (> 1)
    :param share_per_token: weights per drafted token (module docstring): a changed length scales the weight
    :param round_lengths: the training's rounding of the composed length entries (..., ``n_lengths``) to the entries
        of integer lengths (:meth:`agents.wrappers.VecStochasticRounding.round_actions`), applied before the weights
        are sized, so that they are sized for the length played; None: the env's rounding to nearest
    """
    base = np.asarray(base_action, dtype=np.float64)
    delta = np.clip(np.asarray(correction, dtype=np.float64), -1.0, 1.0)
    out = np.empty(np.broadcast_shapes(base.shape, delta.shape))
    out[..., :n_lengths] = np.clip(
        base[..., :n_lengths] + delta[..., :n_lengths] * (2.0 * max_length_offset / max_draft), -1.0, 1.0
    )
    if round_lengths is not None:
        out[..., :n_lengths] = round_lengths(out[..., :n_lengths])
    weights = (np.clip(base[..., n_lengths:], -1.0, 1.0) + 1.0) * 0.5  # the decoder's w_k (docs/model.md 8.1)
    drafting = weights > 0.0
    if share_per_token:
        # The lengths as the env decodes the entries (docs/model.md 8.1); the homogeneous env's one length is
        # every user's.
        old = np.rint((np.clip(base[..., :n_lengths], -1.0, 1.0) + 1.0) * 0.5 * max_draft)
        new = np.rint((out[..., :n_lengths] + 1.0) * 0.5 * max_draft)
        drafting &= old > 0
        per_token = np.where(drafting, weights / np.maximum(old, 1.0), np.inf)
        smallest = per_token.min(axis=-1, keepdims=True)
        per_token = np.where(drafting, per_token, np.where(np.isfinite(smallest), smallest, 1.0))
        weights = np.where(drafting & (new == old), weights, per_token * np.maximum(new, 1.0))  # L = 0: ignored
    else:
        smallest = np.where(drafting, weights, np.inf).min(axis=-1, keepdims=True)
        weights = np.where(drafting, weights, np.where(np.isfinite(smallest), smallest, 1.0))
    weights = weights * np.power(float(max_share_factor), delta[..., n_lengths:])
    weights = weights / weights.max(axis=-1, keepdims=True)  # exactly 1 for the controller's largest weight
    out[..., n_lengths:] = 2.0 * weights - 1.0
    return out.astype(np.float32)


def _check_bounds(max_length_offset: float, max_share_factor: float, share_per_token: bool = False) -> None:
    if not (np.isfinite(max_length_offset) and max_length_offset > 0):
        raise ValueError(f"max_length_offset must be a positive number of tokens, got {max_length_offset!r}")
    if not (np.isfinite(max_share_factor) and max_share_factor > 1):
        raise ValueError(f"max_share_factor must be a number > 1, got {max_share_factor!r}")
    if not isinstance(share_per_token, (bool, np.bool_)):
        raise ValueError(f"share_per_token must be true or false, got {share_per_token!r}")


class VecResidual(VecEnvWrapper):
    """A VecEnv of MultiSpin envs on which actions are bounded corrections to an analytic controller.

    :param venv: SB3 VecEnv over the batched vector env (``--vec-env batched``) or a DummyVecEnv of MultiSpin envs
    :param base: analytic policy name (:data:`baselines.policies.ANALYTIC_POLICIES`)
    :param max_length_offset: largest length correction, tokens
    :param max_share_factor: largest multiplicative bandwidth-weight correction
    :param share_per_token: weights per drafted token (a length correction scales the user's weight; see
        :func:`compose`)
    """

    def __init__(
        self,
        venv: VecEnv,
        base: str = DEFAULT_BASE,
        max_length_offset: float = 2.0,
        max_share_factor: float = 2.0,
        share_per_token: bool = False,
    ) -> None:
        from agents.vec_env import GymnasiumVecEnv
        from baselines.policies import make_policy

        _check_bounds(max_length_offset, max_share_factor, share_per_token)
        self.base, self.max_length_offset, self.max_share_factor = (
            base,
            float(max_length_offset),
            float(max_share_factor),
        )
        self.share_per_token = bool(share_per_token)
        self.n_lengths, self.max_draft = length_entries(venv)
        inner = venv.unwrapped
        # One controller bound to the whole batch (one call per step), or one per sub-env of a DummyVecEnv.
        if isinstance(inner, GymnasiumVecEnv):
            self._policies: list[Any] = [make_policy(base, inner.venv)]
        elif isinstance(inner, DummyVecEnv):
            self._policies = [make_policy(base, env) for env in inner.envs]
        else:
            raise TypeError(f"VecResidual needs the batched vector env or a DummyVecEnv, got {type(inner).__name__}")
        obs_space = venv.observation_space
        act_space = venv.action_space
        assert isinstance(obs_space, spaces.Box) and isinstance(act_space, spaces.Box)
        observation_space = spaces.Box(
            np.concatenate([obs_space.low, act_space.low]).astype(np.float32),
            np.concatenate([obs_space.high, act_space.high]).astype(np.float32),
            dtype=np.float32,
        )
        super().__init__(
            venv,
            observation_space=observation_space,
            action_space=spaces.Box(-1.0, 1.0, act_space.shape, dtype=np.float32),
        )
        self._base_actions = np.zeros((self.num_envs, *act_space.shape), dtype=np.float32)

    def _plan(self, obs: NDArray[Any], starts: NDArray[np.bool_]) -> None:
        if len(self._policies) == 1:
            self._base_actions, _ = self._policies[0].predict(obs, episode_start=starts)
        else:
            for i, policy in enumerate(self._policies):
                self._base_actions[i], _ = policy.predict(obs[i], episode_start=starts[i : i + 1])

    def reset(self) -> NDArray[np.float32]:
        obs = _array_observation(self.venv.reset())
        self._plan(obs, np.ones(self.num_envs, dtype=bool))
        return augment(obs, self._base_actions)

    def step_async(self, actions: NDArray[Any]) -> None:
        # The rounding below would move the composed lengths after the shares were sized for their nearest
        # integers (a share per token for 2 tokens playing 3): the same wrapper's draw is made here, first; it then
        # leaves the integer lengths as they are (their float32 entries are within 1e-7 of the integers).
        rounding = unwrap_vec_wrapper(self.venv, VecStochasticRounding)
        if rounding is not None and not rounding.enabled:
            rounding = None  # evaluation: the env's rounding to nearest
        self.venv.step_async(
            compose(
                self._base_actions,
                actions,
                self.n_lengths,
                self.max_draft,
                self.max_length_offset,
                self.max_share_factor,
                self.share_per_token,
                None if rounding is None else rounding.round_actions,
            )
        )

    def step_wait(self) -> Any:
        observations, rewards, dones, infos = self.venv.step_wait()
        obs = _array_observation(observations)
        for i in np.flatnonzero(dones):
            # Terminal observations carry the last planned action: planning for them would advance the
            # controllers' per-env state. SB3 reads them only to bootstrap truncations, and
            # VecHorizonTermination turns the horizon's truncation into a termination.
            if "terminal_observation" in infos[i]:
                infos[i]["terminal_observation"] = augment(infos[i]["terminal_observation"], self._base_actions[i])
        self._plan(obs, np.asarray(dones, dtype=bool))
        return augment(obs, self._base_actions), rewards, dones, infos

    def settings(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this wrapper (saved in the run's config.yml by rl-zoo3)."""
        return {
            "base": self.base,
            "max_length_offset": self.max_length_offset,
            "max_share_factor": self.max_share_factor,
            "share_per_token": self.share_per_token,
        }


class ResidualPolicy:
    """A trained residual agent as a policy on a single MultiSpin env (SB3-style ``predict``).

    :param agent: the agent's policy on augmented observations (an :class:`~agents.evaluation.AgentPolicy`)
    :param env: the single env it plays on
    :param base: analytic policy name; ``max_length_offset``, ``max_share_factor``, ``share_per_token``: as in
        :class:`VecResidual`
    """

    def __init__(
        self,
        agent: Policy,
        env: Any,
        base: str = DEFAULT_BASE,
        max_length_offset: float = 2.0,
        max_share_factor: float = 2.0,
        share_per_token: bool = False,
        name: str = "residual",
    ) -> None:
        from baselines.policies import make_policy

        _check_bounds(max_length_offset, max_share_factor, share_per_token)
        self.share_per_token = bool(share_per_token)
        self.agent, self.name = agent, name
        self.controller = make_policy(base, env)
        unwrapped = env.unwrapped
        self.n_lengths = int(env.action_space.shape[-1]) - int(unwrapped.num_users)
        self.max_draft = int(unwrapped.max_draft)
        self.max_length_offset, self.max_share_factor = float(max_length_offset), float(max_share_factor)

    def reset(self) -> None:
        self.controller.reset()
        self.agent.reset()

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[NDArray[np.float32], Any]:
        base, _ = self.controller.predict(observation, episode_start=episode_start)
        correction, state = self.agent.predict(
            augment(observation, base), state=state, episode_start=episode_start, deterministic=deterministic
        )
        return compose(
            base,
            correction,
            self.n_lengths,
            self.max_draft,
            self.max_length_offset,
            self.max_share_factor,
            self.share_per_token,
        ), state


def residual_settings(vec_env_wrapper: Any) -> dict[str, Any] | None:
    """The :class:`VecResidual` keyword arguments named in an rl-zoo3 ``vec_env_wrapper`` entry (a name, a
    ``{name: kwargs}`` mapping or a list of those), or None if it names no residual wrapper."""
    entries: Sequence[Any] = vec_env_wrapper if isinstance(vec_env_wrapper, list) else [vec_env_wrapper]
    for entry in entries:
        if entry == WRAPPER_NAME:
            return {}
        if isinstance(entry, Mapping) and WRAPPER_NAME in entry:
            return dict(entry[WRAPPER_NAME] or {})
    return None


def residual_base(agent: str, env_id: str) -> str | None:
    """The analytic controller the residual agent ``agent`` corrects on ``env_id``: the ``base`` of the
    :class:`VecResidual` wrapper in the entry of ``agents/hyperparams/{agent}.yml`` that trains ``env_id``; None if
    that entry trains no residual agent (or there is no such file)."""
    from agents.converge import hyperparameters
    from agents.train import HYPERPARAMS_DIR

    if not (HYPERPARAMS_DIR / f"{agent}.yml").is_file():
        return None
    settings = residual_settings(hyperparameters(agent, env_id).get("vec_env_wrapper", []))
    return None if settings is None else str(settings.get("base", DEFAULT_BASE))


def _array_observation(obs: Any) -> NDArray[Any]:
    """The vector env's observations as the one array of a Box observation space (the only kind augmented)."""
    if not isinstance(obs, np.ndarray):
        raise ValueError(f"the residual wrapper needs array observations (a Box space), got {type(obs).__name__}")
    return obs
