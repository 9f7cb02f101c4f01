"""Per-user (decentralised) Multi-SPIN: a PettingZoo ``ParallelEnv`` with one agent per user.

    from multispin_env.multiagent import parallel_env
    env = parallel_env(reward_mode="shared", fading=False)   # any single-env setting but ``homogeneous``
    observations, infos = env.reset(seed=0)
    while env.agents:
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)

The round is the single env's: :class:`~multispin_env.core.MultiSpinCore` with one system (``num_envs=1``)
plays it (docs/model.md sections 2, 4, 5); nothing of the physics is re-implemented here. Needs the optional
extra ``multispin-env[multiagent]`` (pettingzoo).

Agents: ``user_0`` ... ``user_{K-1}``, user k of the population (the core's user order). All agents live until
the episode is truncated by the clock (the ``horizon`` setting, as in the single env); then ``env.agents`` is
empty. Terminations are always False.

Action of agent k: ``Box(-1, 1, (2,), float32)``, (draft-length entry x_k, bandwidth bid y_k). The joint action
is the heterogeneous single env's action ``[x_0 .. x_{K-1}, y_0 .. y_{K-1}]`` and is decoded by the same compiled
decoder (docs/model.md section 8.1):

- L_k = round((x_k + 1) / 2 * L_max) tokens (L_k = 0: the user does not draft, the server decodes alone for it);
- the bid is w_k = (y_k + 1) / 2 in [0, 1]; the server splits the whole band among the drafting users in
  proportion to their bids, b_k = w_k [L_k > 0] / sum_j w_j [L_j > 0];
- a drafting user bidding w_k = 0 gets no band and so drafts nothing (L_k = 0), unless every drafting user bids
  0: then they share the band equally.

Finite out-of-range entries are clipped into [-1, 1]; NaN/inf, a wrong shape or a missing/unknown agent raise
ValueError. :meth:`MultiSpinParallelEnv.encode_actions` returns the per-agent actions for given lengths and shares.

Observation of agent k: ``Box(float32, (7,))``, the single env's per-user fields of user k (same units and
scales, docs/model.md section 5.5) plus a shared summary:

====  ========================  ===========================================================================
0     ``spectral_efficiency``   own observed e_k / 10 bit/s/Hz (delayed by ``csi_delay``, plus ``csi_noise_std``)
1     ``draft_time``            own nominal t_k / 10 ms
2     ``acceptance``            own running acceptance estimate a_hat_k
3     ``last_draft_length``     own L_k / L_max of the last round (0 after reset)
4     ``last_tokens``           own n_k / (L_max + 1) of the last round (0 after reset)
5     ``time_left``             max(0, 1 - clock / horizon) (shared)
6     ``drafting_users``        number of users with L_j > 0 in the last round / K (shared; 0 after reset)
====  ========================  ===========================================================================

``state()`` (``state_space``) is the single env's full observation (5K + 1 entries), for centralised critics.

Reward (``reward_mode``): ``"shared"`` (default, cooperative users): every agent gets the round's total,
``reward_scale * sum_j n_j`` (the single env's reward); ``"selfish"``: agent k gets its own tokens less what it
pays for the band, ``reward_scale * (n_k - p w_k [L_k > 0] T)``, with p the ``bandwidth_price`` (tokens per unit
of bid per second, default 0), w_k its bid and T the round's latency (s): a drafting user rents the band for the
round at p per unit of bid per second (docs/multiagent.md, the mechanism experiment). Since episodes end at a
fixed simulated time, an episode's return is proportional to the goodput of all users (shared) or of the agent's
own user, less its payments (selfish).

Info of agent k (every step): ``tokens`` n_k, ``accepted`` A_k, ``draft_length`` L_k, ``bandwidth`` b_k,
``payment`` p w_k [L_k > 0] T (tokens, 0 unless selfish with a price), and the round's ``latency`` and ``clock``
(s); ``goodput_tokens`` sum_j n_j of the round (for shared metrics).

Seeding: ``reset(seed=s)`` seeds the episode's numpy Generator as the single env does, so with the same seed and
the joint action the multi-agent env follows the heterogeneous single env's trajectory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from numpy.typing import ArrayLike, NDArray

from multispin_env._checks import real_setting, short_repr
from multispin_env.config import EnvConfig, resolve_config
from multispin_env.core import MultiSpinCore
from multispin_env.rendering import render_ansi
from multispin_env.spaces import CoreAccess, encode_action, nonfinite_error

try:
    from pettingzoo import ParallelEnv
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("multispin_env.multiagent needs pettingzoo: pip install 'multispin-env[multiagent]'") from exc

__all__ = ["MultiSpinParallelEnv", "parallel_env", "REWARD_MODES", "AGENT_OBSERVATION_FIELDS"]

#: Reward modes: every agent gets the round's total tokens, or its own.
REWARD_MODES = ("shared", "selfish")
#: The per-agent observation's entries in order.
AGENT_OBSERVATION_FIELDS = (
    "spectral_efficiency",
    "draft_time",
    "acceptance",
    "last_draft_length",
    "last_tokens",
    "time_left",
    "drafting_users",
)
_OWN_FIELDS = ("spectral_efficiency", "draft_time", "acceptance", "last_draft_lengths", "last_tokens")


class MultiSpinParallelEnv(CoreAccess, ParallelEnv):
    """One Multi-SPIN system with one agent per user; see the module docstring for spaces, rewards and info.

    :param reward_mode: ``"shared"`` (default) or ``"selfish"``
    :param bandwidth_price: p >= 0, finite, tokens per unit of bid per second, charged to each drafting selfish
        user for its bid w_k over the round's latency (0: free band); must be 0 with ``reward_mode="shared"``
    :param render_mode: None or ``"ansi"`` (the single env's text table of the last round)
    :param config: settings dict (keys of :func:`multispin_env.config.default_config` except ``homogeneous``);
        keyword arguments override it
    """

    metadata: dict[str, Any] = {"name": "multispin_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        reward_mode: str = "shared",
        bandwidth_price: float = 0.0,
        render_mode: str | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        if not isinstance(reward_mode, str) or reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if "homogeneous" in settings or (isinstance(config, Mapping) and "homogeneous" in config):
            raise ValueError("homogeneous is not a setting of the multi-agent env: each user chooses its own length")
        self.reward_mode = reward_mode
        #: p, tokens per unit of bid per second (docs/multiagent.md).
        self.bandwidth_price = real_setting("bandwidth_price", bandwidth_price, 0.0)
        if self.bandwidth_price > 0.0 and reward_mode != "selfish":
            raise ValueError(
                f"bandwidth_price is charged to selfish users: it needs reward_mode='selfish', got {reward_mode!r}"
            )
        self.render_mode = render_mode
        self.config: EnvConfig = resolve_config(config, fixed={"homogeneous": False}, **settings)
        self._core = core = MultiSpinCore(self.config, 1)
        k = core.num_users
        self.possible_agents = [f"user_{i}" for i in range(k)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._layout = core.observation_layout

        low, high = core.observation_bounds()
        self.state_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self._own_columns = np.array([[self._layout[name].start + i for name in _OWN_FIELDS] for i in range(k)])
        agent_low = np.zeros((k, 7), dtype=np.float32)
        agent_high = np.ones((k, 7), dtype=np.float32)
        agent_high[:, :5] = high[self._own_columns]
        agent_low[:, :5] = low[self._own_columns]
        self.observation_spaces = {
            agent: spaces.Box(agent_low[i], agent_high[i], dtype=np.float32)
            for i, agent in enumerate(self.possible_agents)
        }
        self.action_spaces = {agent: spaces.Box(-1.0, 1.0, (2,), dtype=np.float32) for agent in self.possible_agents}
        self.np_random, _ = seeding.np_random()
        self._drafting_last = 0.0
        self._state_obs = np.zeros(core.observation_size, dtype=np.float32)

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    # ------------------------------------------------------------- episodes
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float32]], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        self._core.reset(self.np_random)
        self.agents = list(self.possible_agents)
        self._drafting_last = 0.0
        observations = self._observations()
        state = self._core.state_info()
        infos = {
            agent: {
                "clock": float(state["clock"][0]),
                "acceptance": float(state["acceptance"][0, i]),
                "spectral_efficiency": float(state["spectral_efficiency"][0, i]),
            }
            for i, agent in enumerate(self.agents)
        }
        return observations, infos

    def joint_action(self, actions: Mapping[str, ArrayLike]) -> NDArray[np.float64]:
        """The heterogeneous single env's action (2K,) of a dict of per-agent actions; ValueError if invalid."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict agent -> action, got {type(actions).__name__}")
        # Keys of any type are listed in the given order (sorting mixed types fails), at most a few of them.
        unknown = [agent for agent in actions if agent not in self._index]
        if unknown:
            raise ValueError(
                f"unknown agent(s) {_listing(unknown)}; agents are {self.possible_agents[0]} .. "
                f"{self.possible_agents[-1]}"
            )
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"missing action(s) for {_listing(missing)}")
        k = self._core.num_users
        joint = np.empty((2, k))
        for agent, action in actions.items():
            try:
                raw = np.asarray(action)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"action of {agent} must be 2 numbers, got {_listing([action])}") from exc
            if raw.dtype.kind not in "iuf" or raw.shape != (2,):
                raise ValueError(
                    f"action of {agent} must be 2 real numbers (length entry, bid), got {_listing([action])}"
                )
            if not np.isfinite(raw).all():  # name the first bad entry, not the whole dict
                raise nonfinite_error(raw, f"actions[{agent!r}]")
            joint[:, self._index[agent]] = raw
        return joint.reshape(-1)

    def step(
        self, actions: Mapping[str, ArrayLike]
    ) -> tuple[
        dict[str, NDArray[np.float32]], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]
    ]:
        if not self.agents:
            raise ValueError("step() called after the episode ended: call reset() first")
        core = self._core
        joint = self.joint_action(actions)
        lengths, shares = core.decode(joint.reshape(1, -1))
        outcome = core.step(lengths, shares, self.np_random)
        tokens = outcome.tokens[0]
        scale = self.config.reward_scale
        total = float(tokens.sum())
        self._drafting_last = float(np.count_nonzero(outcome.draft_lengths[0] > 0))
        observations = self._observations()
        truncated = bool(outcome.truncated[0])
        clock = float(core.clock[0])
        latency = float(outcome.latency[0])
        # The bids w_k = (y_k + 1) / 2 of the drafting users, rented for the round (module docstring).
        bids = (np.clip(joint[core.num_users :], -1.0, 1.0) + 1.0) / 2.0
        payments = self.bandwidth_price * bids * (outcome.draft_lengths[0] > 0) * latency
        rewards, infos = {}, {}
        for agent in self.agents:
            i = self._index[agent]
            own = float(tokens[i]) - float(payments[i])
            rewards[agent] = scale * (total if self.reward_mode == "shared" else own)
            infos[agent] = {
                "tokens": int(tokens[i]),
                "accepted": int(outcome.accepted[0, i]),
                "draft_length": int(outcome.draft_lengths[0, i]),
                "bandwidth": float(outcome.bandwidth[0, i]),
                "payment": float(payments[i]),
                "latency": latency,
                "clock": clock,
                "goodput_tokens": int(total),
            }
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, truncated)
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, NDArray[np.float32]]:
        full = self._core.observation()[0]
        self._state_obs = full
        time_left = full[self._layout["time_left"].start]
        drafting = np.float32(self._drafting_last / self._core.num_users)
        out = {}
        for agent in self.agents:
            obs = np.empty(7, dtype=np.float32)
            obs[:5] = full[self._own_columns[self._index[agent]]]
            obs[5] = time_left
            obs[6] = drafting
            out[agent] = obs
        return out

    def state(self) -> NDArray[np.float32]:
        """The single env's observation of the whole system (5K + 1 entries), a new array."""
        return self._state_obs.copy()

    # --------------------------------------------------------------- helpers
    def encode_actions(self, draft_lengths: ArrayLike, bandwidth: ArrayLike) -> dict[str, NDArray[np.float32]]:
        """Per-agent actions that decode to ``draft_lengths`` (K,) exactly and to ``bandwidth`` (K,) normalised
        over the drafting users (see :func:`multispin_env.spaces.encode_action`)."""
        k = self._core.num_users
        lengths = np.asarray(draft_lengths)
        if lengths.shape != (k,):
            raise ValueError(f"draft_lengths must have {k} entries (one per user), got shape {lengths.shape}")
        joint = encode_action(lengths, bandwidth, max_draft=self._core.max_draft, homogeneous=False)
        return {
            agent: np.array([joint[i], joint[k + i]], dtype=np.float32) for i, agent in enumerate(self.possible_agents)
        }

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        return render_ansi(self._core, 0)

    def close(self) -> None:
        pass


def _listing(items: list[Any], limit: int = 8) -> str:
    """The first ``limit`` of ``items`` as reprs (each cut to 40 characters), and how many more: one short line."""
    shown = [short_repr(item, 40) for item in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def parallel_env(**settings: Any) -> MultiSpinParallelEnv:
    """A :class:`MultiSpinParallelEnv`: ``reward_mode``, ``render_mode``, ``config`` and any single-env setting
    (docs/model.md section 4.1) except ``homogeneous``."""
    return MultiSpinParallelEnv(**settings)
