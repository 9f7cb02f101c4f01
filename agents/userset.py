"""User-set policy: one shared per-user network, so the same weights play any number of users K.

:class:`UserSetPolicy` is an SB3 ``ActorCriticPolicy`` for the MultiSpin envs' flat observation and action
(docs/model.md sections 8.1-8.2), named in rl-zoo3's YAML as ``policy: agents.userset.UserSetPolicy``
(``agents/hyperparams/ppo_userset.yml``; ``train.py --algo ppo --agent userset``). :class:`RecurrentUserSetPolicy`
is the same network with an LSTM over the pooled context, for sb3-contrib's RecurrentPPO
(``agents/hyperparams/ppo_lstm_userset.yml``; ``train.py --algo ppo_lstm --agent userset``); both derive from
:class:`UserSetBase`, which holds the layout, the networks below and ``predict`` at any K. Per observation:

1. the observation is cut into users by :func:`multispin_env.spaces.observation_layout`: user k's row x_k holds
   its entry of every per-user field (with the arrival fields when the env has arrivals, and the request's slack
   when its requests have deadlines), g the global fields
   (``time_left``);
2. a shared encoder maps [x_k, g] to h_k (the same weights for every user);
3. the summary s = [mean_k h_k, max_k h_k, g] is permutation-invariant and does not depend on K's size; a
   context layer maps it to c;
4. a shared head maps [h_k, c] to user k's length and share entries, placed at the env's action layout
   (entries k and E + k, docs/model.md section 8.1); in the homogeneous env (one common length entry) that
   entry comes from c;
5. the value comes from the summary alone (the critic has its own encoder, so that value gradients do not
   move the actor's features).

The Gaussian's log-std has one entry per action kind (length, share), shared by the users, so the parameter
count does not depend on K. Permuting the users permutes the action entries and leaves the value unchanged.

A model trained at one K runs at any other: ``predict`` (of either policy) reads K from the observation's size
instead of the saved observation space. Mean and max pooling cannot tell K (a set and the same set twice pool
alike), yet a user's band at the equal share is 1 / K: so that the policy sees how much slower its upload is at
another K, each user's spectral-efficiency input is multiplied by K_train / K (``reference_users`` = K_train, set by
``train.py`` from the training env), the spectral efficiency of the band share 1 / K in units of 1 / K_train
(docs/model.md eq. (1): the upload time per token at the equal share is K D / (W e_k)). At K_train it is the
observation itself. The observation fields the model was trained with are a policy kwarg
(``observation_fields``, saved in the model; ``train.py`` sets them from the training env), and
:func:`check_layout` refuses an env with other per-user fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from multispin_env._checks import flag_setting, integer_setting
from multispin_env.layout import ENERGY_OBSERVATION_FIELDS, THROUGHPUT_OBSERVATION_FIELDS
from multispin_env.spaces import (
    ARRIVAL_OBSERVATION_FIELDS,
    DEADLINE_OBSERVATION_FIELDS,
    OBSERVATION_FIELDS,
    ObservationLayout,
    observation_field_orders,
)

__all__ = [
    "POLICY_NAME",
    "RecurrentUserSetPolicy",
    "UserSetBase",
    "UserSetPolicy",
    "check_layout",
    "env_layout",
    "is_userset",
    "names_userset",
    "search_policy_kwargs",
    "with_env_layout",
]

#: An LSTM's (hidden, cell) state, each (layers, batch, lstm_hidden_size); sb3-contrib's RNNStates holds two.
_State = tuple[th.Tensor, ...]
#: The policy's dotted name (rl-zoo3's ``policy:`` key).
POLICY_NAME = f"{__name__}.UserSetPolicy"
#: Field names of the observation's fixed part, in order (docs/model.md section 8.1).
_BASE_FIELDS = tuple(name for name, _, _ in OBSERVATION_FIELDS)
_OPTIONAL_GROUPS = (
    ARRIVAL_OBSERVATION_FIELDS,
    DEADLINE_OBSERVATION_FIELDS,
    ENERGY_OBSERVATION_FIELDS,
    THROUGHPUT_OBSERVATION_FIELDS,
)
#: Every observation layout the settings can give (docs/model.md section 5.5), as field names in order.
_LAYOUTS = observation_field_orders()
_PER_USER = {name for name, entries, _ in OBSERVATION_FIELDS + sum(_OPTIONAL_GROUPS, ()) if entries == "K"}


def env_layout(env: Any) -> tuple[tuple[str, ...], bool]:
    """(observation field names in order, homogeneous) of a MultiSpin single or vector env."""
    base = env.unwrapped
    return tuple(base.observation_layout), bool(base.core.homogeneous)


def describe_fields(fields: Sequence[str]) -> str:
    """A layout for messages: its per-user and global fields."""
    per_user = [f for f in fields if f in _PER_USER]
    return f"per-user [{', '.join(per_user)}], global [{', '.join(f for f in fields if f not in _PER_USER)}]"


class _SetNet(nn.Module):
    """Shared per-user encoder and permutation-invariant context.

    :param user_size: per-user fields F
    :param global_size: global entries G
    :param hidden: width H of every layer
    """

    def __init__(self, user_size: int, global_size: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(user_size + global_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.context = nn.Sequential(nn.Linear(2 * hidden + global_size, hidden), nn.Tanh())

    def forward(self, users: th.Tensor, glob: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """users (B, K, F), glob (B, G) -> per-user features (B, K, H), context (B, H)."""
        h = self.encoder(th.cat([users, glob.unsqueeze(1).expand(-1, users.shape[1], -1)], dim=-1))
        summary = th.cat([h.mean(dim=1), h.amax(dim=1), glob], dim=-1)
        return h, self.context(summary)


class UserSetBase(ActorCriticPolicy):
    """What both user-set policies share (see the module docstring): the layout of the observation, the per-user
    encoders, pooled contexts and heads, the per-kind log-std, and ``predict`` at any K. :class:`UserSetPolicy`
    (PPO) and :class:`RecurrentUserSetPolicy` (RecurrentPPO) add how the context is formed and SB3's interface.

    Takes ActorCriticPolicy's arguments (``log_std_init``, ``ortho_init``, ``optimizer_class``...); ``net_arch``,
    ``use_sde`` and a custom features extractor do not apply. Its own:

    :param hidden: width of every layer of the encoders and heads (>= 1)
    :param observation_fields: the env's observation field names in order (``observation_layout``'s keys), which
        tell the per-user from the global fields; None: inferred from the observation size (ValueError if both
        layouts, with and without arrivals, fit it)
    :param homogeneous: whether the env has one common length entry (None: read from the action size)
    :param reference_users: K_train >= 1, the number of users the model is trained at: at K users each user's
        spectral-efficiency input is scaled by K_train / K (the module docstring); None: never scaled
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        hidden: int = 64,
        observation_fields: Sequence[str] | None = None,
        homogeneous: bool | None = None,
        reference_users: int | None = None,
        **kwargs: Any,
    ) -> None:
        name = type(self).__name__
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"{name} needs a flat Box observation, got {observation_space}")
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"{name} needs a flat Box action, got {action_space}")
        if kwargs.get("use_sde"):
            raise ValueError(f"{name} does not support use_sde")
        integer_setting(f"{name} hidden", hidden, 1)
        size = int(observation_space.shape[0])
        if observation_fields is None:
            fitting = [f for f in _LAYOUTS if _users_for(f, size) is not None]
            # Several layouts can give the same size (e.g. 6 fields of 5 users and 5 fields of 6): the action's
            # size (2K heterogeneous, K + 1 homogeneous) tells them apart where it fits only one.
            acting = [f for f in fitting if int(action_space.shape[0]) in _action_sizes(_users_for(f, size))]
            if len(acting) == 1:
                fitting = acting
            if len(fitting) != 1:
                raise ValueError(
                    f"{name} cannot tell the observation fields from {size} entries; pass "
                    "observation_fields (train.py sets them from the env)"
                )
            observation_fields = fitting[0]
        self.observation_fields = tuple(str(f) for f in observation_fields)
        if self.observation_fields not in _LAYOUTS:
            raise ValueError(
                f"{name} observation_fields must be {list(_BASE_FIELDS)}, optionally followed by "
                f"{[[name for name, _, _ in group] for group in _OPTIONAL_GROUPS]} (any of them, in this order), "
                f"got {list(self.observation_fields)}"
            )
        users = _users_for(self.observation_fields, size)
        if users is None:
            raise ValueError(
                f"{name}: an observation of {size} entries does not fit the fields "
                f"{describe_fields(self.observation_fields)}"
            )
        length_entries = int(action_space.shape[0]) - users
        if homogeneous is None:
            homogeneous = length_entries == 1 and users > 1
        if length_entries != (1 if homogeneous else users):
            raise ValueError(
                f"{name}: action of {action_space.shape[0]} entries does not fit {users} users "
                f"({'homogeneous' if homogeneous else 'heterogeneous'})"
            )
        self.homogeneous = bool(homogeneous)
        self.hidden = hidden
        self._indices: dict[int, tuple[th.Tensor, th.Tensor, th.Tensor]] = {}
        self.reference_users = reference_users
        # ActorCriticPolicy's set-up (which calls _build), not RecurrentActorCriticPolicy's: that one builds LSTMs over
        # the flat observation (a size fixed by K) and replaces ``critic``; the recurrent policy builds its own.
        ActorCriticPolicy.__init__(self, observation_space, action_space, lr_schedule, *args, **kwargs)

    @property
    def reference_users(self) -> int | None:
        """K_train, the number of users the spectral-efficiency inputs are scaled to (None: no scaling)."""
        return self._reference_users

    @reference_users.setter
    def reference_users(self, value: int | None) -> None:
        if value is not None:
            value = integer_setting(f"{type(self).__name__} reference_users (or None)", value, 1)
        self._reference_users = value
        self._indices.clear()  # the cached per-K scales were computed with the previous K_train

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            hidden=self.hidden,
            observation_fields=self.observation_fields,
            homogeneous=self.homogeneous,
            reference_users=self.reference_users,
        )
        return data

    # -- networks --------------------------------------------------------------------------------------------
    def _build_set_networks(self, actor_extra: int = 0, critic_extra: int = 0) -> None:
        """The encoders, pooled contexts, heads and log-std (module docstring steps 2-5); the heads read the context
        with ``actor_extra`` / ``critic_extra`` more entries (the recurrent policy's LSTM outputs; 0: none)."""
        n_user = sum(f in _PER_USER for f in self.observation_fields)
        n_global = len(self.observation_fields) - n_user  # every global field has one entry
        hidden = self.hidden
        self.actor = _SetNet(n_user, n_global, hidden)
        self.critic = _SetNet(n_user, n_global, hidden)
        user_head = nn.Sequential(nn.Linear(2 * hidden + actor_extra, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        # homogeneous env only: the common length entry
        self.common_length = nn.Linear(hidden + actor_extra, 1)
        # Not SB3's value_net (a Linear on the MLP extractor's latent): this head reads the pooled critic summary.
        value_head = nn.Sequential(nn.Linear(hidden + critic_extra, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.user_head, self.value_head = user_head, value_head
        # One log-std per action kind (length, share), shared by the users.
        self.log_std = nn.Parameter(th.full((2,), float(self.log_std_init)), requires_grad=True)
        if self.ortho_init:
            # SB3's gains: sqrt(2) hidden layers, 0.01 action outputs (start near the mean action), 1 value output.
            for module in (self.actor, self.critic, user_head[0], value_head[0]):
                module.apply(partial(self.init_weights, gain=float(np.sqrt(2))))
            for module, gain in ((user_head[2], 0.01), (self.common_length, 0.01), (value_head[2], 1.0)):
                module.apply(partial(self.init_weights, gain=gain))

    def _build_optimizer(self, lr_schedule: Schedule) -> None:
        # SB3 types optimizer_class as type[Optimizer], whose own __init__ has no lr; its _build makes the same call.
        self.optimizer = self.optimizer_class(
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def _split(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """(B, N) observations -> per-user rows (B, K, F) and global entries (B, G), K from N; the spectral
        efficiency scaled by K_train / K (``reference_users``)."""
        name = type(self).__name__
        if isinstance(obs, dict):
            raise ValueError(f"{name} takes the flat MultiSpin observation, not a dict")
        size = int(obs.shape[-1])
        if size not in self._indices:
            users = _users_for(self.observation_fields, size)
            if users is None:
                raise ValueError(
                    f"{name}: an observation of {size} entries does not fit the fields "
                    f"{describe_fields(self.observation_fields)} it was trained with"
                )
            fields = self.observation_fields
            layout = ObservationLayout.of_fields(fields, users)
            user_fields = [f for f in layout if f in _PER_USER]
            user_rows = [np.arange(layout[f].start, layout[f].stop) for f in user_fields]
            global_entries = [s.start for f, s in layout.items() if f not in _PER_USER]
            ratio = 1.0 if self.reference_users is None else self.reference_users / users
            factors = [ratio if f == "spectral_efficiency" else 1.0 for f in user_fields]
            self._indices[size] = (
                th.as_tensor(np.stack(user_rows, axis=1), device=obs.device),
                th.as_tensor(global_entries, device=obs.device),
                th.as_tensor(factors, dtype=th.float32, device=obs.device),
            )
        user_idx, global_idx, scale = self._indices[size]
        obs = obs.float()
        return obs[:, user_idx] * scale, obs[:, global_idx]

    def _head(self, h: th.Tensor, context: th.Tensor) -> th.Tensor:
        """The action mean (B, E + K): the shared head on each user's encoding h (B, K, H) and the context (B, C)."""
        out = self.user_head(th.cat([h, context.unsqueeze(1).expand(-1, h.shape[1], -1)], dim=-1))  # (B, K, 2)
        lengths = self.common_length(context) if self.homogeneous else out[..., 0]
        return th.cat([lengths, out[..., 1]], dim=-1)

    def _distribution(self, mean: th.Tensor) -> DiagGaussianDistribution:
        users = mean.shape[-1] - (1 if self.homogeneous else mean.shape[-1] // 2)
        log_std = th.cat([self.log_std[:1].expand(mean.shape[-1] - users), self.log_std[1:].expand(users)])
        return DiagGaussianDistribution(int(mean.shape[-1])).proba_distribution(mean, log_std)

    def _observation_batch(self, observation: Any) -> tuple[th.Tensor, bool]:
        """``predict``'s observation, one (N,) or a batch (B, N) of any number of users, as a (B, N) tensor, and
        whether it was one."""
        name = type(self).__name__
        if isinstance(observation, dict):
            raise ValueError(f"{name} takes the flat MultiSpin observation, not a dict")
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (1, 2):
            raise ValueError(f"{name}: observation must be (N,) or (batch, N), got shape {obs.shape}")
        return th.as_tensor(obs.reshape(-1, obs.shape[-1]), device=self.device), obs.ndim == 1

    def _to_actions(self, actions: th.Tensor, one: bool) -> np.ndarray:
        """``predict``'s actions: clipped to the action box, (E + K,) for one observation."""
        box = self.action_space
        assert isinstance(box, spaces.Box)  # checked in __init__
        low, high = float(np.min(box.low)), float(np.max(box.high))
        out = np.clip(actions.cpu().numpy(), low, high)
        return out[0] if one else out


class UserSetPolicy(UserSetBase):
    """Permutation-equivariant actor-critic for the MultiSpin envs, for PPO (see the module docstring and
    :class:`UserSetBase` for the arguments)."""

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_set_networks()
        self._build_optimizer(lr_schedule)

    def _mean(self, users: th.Tensor, glob: th.Tensor) -> th.Tensor:
        """The action mean (B, E + K): each user's head on its encoding and the pooled context."""
        return self._head(*self.actor(users, glob))

    def _value(self, users: th.Tensor, glob: th.Tensor) -> th.Tensor:
        """The value (B, 1), from the critic's pooled summary."""
        return self.value_head(self.critic(users, glob)[1])

    # -- SB3's interface -----------------------------------------------------------------------------------
    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        users, glob = self._split(obs)
        distribution = self._distribution(self._mean(users, glob))
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, self._value(users, glob), distribution.log_prob(actions)

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        users, glob = self._split(obs)
        distribution = self._distribution(self._mean(users, glob))
        return self._value(users, glob), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: PyTorchObs) -> DiagGaussianDistribution:
        return self._distribution(self._mean(*self._split(obs)))

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        return self._value(*self._split(obs))

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict`` for one observation (N,) or a batch (B, N) of any number of users (not only the
        trained K): the saved observation and action spaces give the layout, not the size."""
        obs, one = self._observation_batch(observation)
        self.set_training_mode(False)
        with th.no_grad():
            actions = self._predict(obs, deterministic)
        return self._to_actions(actions, one), state


# The ignore: ``critic`` is the user-set critic (a _SetNet), not RecurrentActorCriticPolicy's optional Linear.
class RecurrentUserSetPolicy(UserSetBase, RecurrentActorCriticPolicy):  # type: ignore[misc]
    """The user-set policy with memory, for sb3-contrib's RecurrentPPO (``policy:
    agents.userset.RecurrentUserSetPolicy``, ``agents/hyperparams/ppo_lstm_userset.yml``).

    What recurs does not depend on K: the actor's LSTM runs over its pooled context c (module docstring step 3, a
    function of the permutation-invariant summary), one step per round, and its output z joins the context every
    user's head reads: user k's head maps [h_k, c, z] to its entries (the homogeneous length entry comes from [c, z]).
    The critic's LSTM does the same over the critic's context, and the value reads [c_v, z_v]. The LSTM state is
    (layers, envs, ``lstm_hidden_size``) at any K, so a model trained at one K carries it at another; permuting the
    users permutes the actions and leaves the value and the state unchanged.

    Takes :class:`UserSetBase`'s arguments and RecurrentActorCriticPolicy's LSTM settings:

    :param lstm_hidden_size: width of each LSTM layer (>= 1)
    :param n_lstm_layers: LSTM layers (>= 1)
    :param shared_lstm: the critic reads the actor's LSTM output (without gradient) instead of its own LSTM
    :param enable_critic_lstm: the critic has its own LSTM (False with ``shared_lstm``; both False: the value reads
        the critic's context alone)
    :param lstm_kwargs: further ``torch.nn.LSTM`` arguments
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        lstm_hidden_size: int = 64,
        n_lstm_layers: int = 1,
        shared_lstm: bool = False,
        enable_critic_lstm: bool = True,
        lstm_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        lstm_hidden_size = integer_setting("RecurrentUserSetPolicy lstm_hidden_size", lstm_hidden_size, 1)
        n_lstm_layers = integer_setting("RecurrentUserSetPolicy n_lstm_layers", n_lstm_layers, 1)
        shared_lstm = flag_setting("RecurrentUserSetPolicy shared_lstm", shared_lstm)
        enable_critic_lstm = flag_setting("RecurrentUserSetPolicy enable_critic_lstm", enable_critic_lstm)
        if shared_lstm and enable_critic_lstm:
            raise ValueError(
                "RecurrentUserSetPolicy: shared_lstm and enable_critic_lstm exclude each other (set one False)"
            )
        # Read by _build (called from the base __init__) and by RecurrentPPO (lstm_actor's sizes, the state shape).
        self.lstm_output_dim = lstm_hidden_size
        self.lstm_hidden_state_shape = (n_lstm_layers, 1, lstm_hidden_size)
        self.n_lstm_layers = n_lstm_layers
        self.shared_lstm = shared_lstm
        self.enable_critic_lstm = enable_critic_lstm
        self.lstm_kwargs = dict(lstm_kwargs or {})
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lstm_hidden_size=self.lstm_output_dim,
            n_lstm_layers=self.n_lstm_layers,
            shared_lstm=self.shared_lstm,
            enable_critic_lstm=self.enable_critic_lstm,
            lstm_kwargs=self.lstm_kwargs,
        )
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        width = self.lstm_output_dim
        self._build_set_networks(width, width if self.shared_lstm or self.enable_critic_lstm else 0)

        def lstm() -> nn.LSTM:  # over the pooled context (width hidden): its input does not depend on K
            return nn.LSTM(self.hidden, width, num_layers=self.n_lstm_layers, **self.lstm_kwargs)

        self.lstm_actor = lstm()
        self.lstm_critic = lstm() if self.enable_critic_lstm else None
        self._build_optimizer(lr_schedule)

    def _sequence(
        self, x: th.Tensor, states: _State, episode_starts: th.Tensor, lstm: nn.LSTM
    ) -> tuple[th.Tensor, _State]:
        """RecurrentActorCriticPolicy's pass of ``lstm`` over x (B, hidden), the state reset where an episode starts;
        its output (B, lstm_hidden_size) and next state (its annotation says a tensor; it is (hidden, cell))."""
        out, next_states = self._process_sequence(x, (states[0], states[1]), episode_starts, lstm)
        return out, cast(_State, next_states)

    def _actor(
        self, users: th.Tensor, glob: th.Tensor, states: _State, episode_starts: th.Tensor
    ) -> tuple[DiagGaussianDistribution, th.Tensor, _State]:
        """The action distribution, the actor's LSTM output z (B, lstm_hidden_size) and its next state."""
        h, c = self.actor(users, glob)
        z, states = self._sequence(c, states, episode_starts, self.lstm_actor)
        return self._distribution(self._head(h, th.cat([c, z], dim=-1))), z, states

    def _critic(
        self,
        users: th.Tensor,
        glob: th.Tensor,
        states: _State,
        episode_starts: th.Tensor,
        actor_z: th.Tensor | None = None,
    ) -> tuple[th.Tensor, _State]:
        """The value (B, 1) and the critic's next LSTM state (``states`` itself without a critic LSTM); with
        ``shared_lstm`` the value reads the actor's LSTM output ``actor_z`` (run here from ``states`` if None)."""
        c = self.critic(users, glob)[1]
        if self.lstm_critic is not None:
            z, states = self._sequence(c, states, episode_starts, self.lstm_critic)
            c = th.cat([c, z], dim=-1)
        elif self.shared_lstm:
            if actor_z is None:
                actor_z, states = self._sequence(self.actor(users, glob)[1], states, episode_starts, self.lstm_actor)
            c = th.cat([c, actor_z.detach()], dim=-1)  # as RecurrentActorCriticPolicy: no value gradient into it
            states = (states[0].detach(), states[1].detach())
        return self.value_head(c), states

    # -- sb3-contrib's interface ---------------------------------------------------------------------------
    def forward(  # type: ignore[override]
        self, obs: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        users, glob = self._split(obs)
        distribution, z, pi_states = self._actor(users, glob, lstm_states.pi, episode_starts)
        actions = distribution.get_actions(deterministic=deterministic)
        critic_states = pi_states if self.shared_lstm else lstm_states.vf
        values, vf_states = self._critic(users, glob, critic_states, episode_starts, z)
        if self.lstm_critic is None and not self.shared_lstm:
            vf_states = pi_states  # RecurrentActorCriticPolicy's convention without a critic LSTM
        return actions, values, distribution.log_prob(actions), RNNStates(pi_states, vf_states)

    def evaluate_actions(  # type: ignore[override]
        self, obs: th.Tensor, actions: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        users, glob = self._split(obs)
        distribution, z, _ = self._actor(users, glob, lstm_states.pi, episode_starts)
        values, _ = self._critic(users, glob, lstm_states.vf, episode_starts, z)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(  # type: ignore[override]
        self, obs: th.Tensor, lstm_states: _State, episode_starts: th.Tensor
    ) -> tuple[DiagGaussianDistribution, tuple[th.Tensor, ...]]:
        distribution, _, states = self._actor(*self._split(obs), lstm_states, episode_starts)
        return distribution, states

    def predict_values(  # type: ignore[override]
        self, obs: th.Tensor, lstm_states: _State, episode_starts: th.Tensor
    ) -> th.Tensor:
        return self._critic(*self._split(obs), lstm_states, episode_starts)[0]

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """RecurrentPPO's ``predict`` for one observation (N,) or a batch (B, N) of any number of users, with the
        actor's LSTM state (hidden, cell), each (layers, B, ``lstm_hidden_size``) (None: zeros, a new episode), and
        ``episode_start`` (B,) (True: forget the state first; None: all False)."""
        obs, one = self._observation_batch(observation)
        n = int(obs.shape[0])
        shape = (self.n_lstm_layers, n, self.lstm_output_dim)
        if state is None:
            state = (np.zeros(shape, np.float32), np.zeros(shape, np.float32))
        if len(state) != 2 or any(np.shape(s) != shape for s in state):
            raise ValueError(
                f"RecurrentUserSetPolicy: state must be (hidden, cell), each of shape {shape} for {n} observation(s), "
                f"got shapes {[np.shape(s) for s in state]}"
            )
        starts = np.zeros(n, np.float32) if episode_start is None else np.asarray(episode_start, np.float32).reshape(-1)
        if starts.shape != (n,):
            raise ValueError(f"RecurrentUserSetPolicy: episode_start must have {n} entries, got {starts.size}")
        self.set_training_mode(False)
        with th.no_grad():
            states: _State = (
                th.as_tensor(np.asarray(state[0]), dtype=th.float32, device=self.device),
                th.as_tensor(np.asarray(state[1]), dtype=th.float32, device=self.device),
            )
            distribution, _, states = self._actor(*self._split(obs), states, th.as_tensor(starts, device=self.device))
            actions = distribution.get_actions(deterministic=deterministic)
        return self._to_actions(actions, one), (states[0].cpu().numpy(), states[1].cpu().numpy())


def _action_sizes(users: int | None) -> tuple[int, ...]:
    """The action sizes of ``users`` users: heterogeneous (2K) and homogeneous (K + 1)."""
    return () if users is None else (2 * users, users + 1)


def _users_for(fields: Sequence[str], size: int) -> int | None:
    """K such that the observation of these fields has ``size`` entries (None: no K >= 1 fits)."""
    per_user = sum(f in _PER_USER for f in fields)
    users, rest = divmod(size - (len(fields) - per_user), per_user)
    return users if rest == 0 and users >= 1 else None


def is_userset(model: Any) -> bool:
    """Whether an SB3 model (or policy) is a user-set model (runs at any K; recurrent or not)."""
    return isinstance(getattr(model, "policy", model), UserSetBase)


def check_normalisation(vec_normalize: Any, size: tuple[int, ...] | None, what: str = "the model") -> None:
    """ValueError (one line) unless a user-set model's VecNormalize statistics (None: none) serve observations of
    shape ``size``: statistics of another K are per entry and mean nothing there, so observation normalisation must be
    off (the reward statistics do not depend on K)."""
    saved = None if vec_normalize is None else vec_normalize.observation_space.shape
    if vec_normalize is not None and vec_normalize.norm_obs and saved != size:
        raise ValueError(
            f"{what} normalises observations of shape {saved}, the env gives {size} (train user-set agents with "
            "norm_obs=False to run them at any K)"
        )


def check_layout(observation_fields: Sequence[str], homogeneous: bool, env: Any, what: str = "the model") -> None:
    """ValueError (one line, naming both layouts) unless a user-set model trained with these observation fields
    and action kind (its ``policy_kwargs``, saved with it) can play ``env`` (at any K).

    :param observation_fields: the model's per-user and global observation fields (``policy.observation_fields``)
    :param homogeneous: whether the model was trained on a homogeneous env (one length entry)
    """
    fields, env_homogeneous = env_layout(env)
    if tuple(fields) != tuple(observation_fields):
        raise ValueError(
            f"{what} was trained on the observation fields {describe_fields(tuple(observation_fields))}, "
            f"the env has {describe_fields(fields)} (request arrivals on in one and off in the other?)"
        )
    if env_homogeneous != homogeneous:
        kind = {True: "homogeneous (one length entry)", False: "heterogeneous (one length per user)"}
        raise ValueError(f"{what} was trained on a {kind[homogeneous]} env, the env is {kind[env_homogeneous]}")


def names_userset(policy: Any) -> bool:
    """Whether an SB3 ``policy`` argument (class or dotted name) is a user-set policy (:class:`UserSetBase`'s
    subclasses: :class:`UserSetPolicy`, :class:`RecurrentUserSetPolicy`)."""
    if isinstance(policy, str) and policy.startswith(f"{__name__}."):
        policy = globals().get(policy[len(__name__) + 1 :])
    return isinstance(policy, type) and issubclass(policy, UserSetBase)


def search_policy_kwargs(sampled: dict[str, Any] | None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A hyperparameter-search trial's ``policy_kwargs`` (:mod:`agents.search`: ``net_arch``, ``log_std_init``,
    ``lstm_hidden_size``) made for a user-set policy, which has no ``net_arch``: the sampled width becomes ``hidden``
    (the width of its shared per-user networks), the rest is kept, and the env layout and K_train of ``base`` (the
    training's own kwargs, :func:`with_env_layout`) are kept, since a trial's kwargs replace them whole.

    :param sampled: the trial's policy kwargs
    :param base: the kwargs the training would use without the search (None: none to keep)
    """
    kwargs = dict(sampled or {})
    arch = kwargs.pop("net_arch", None)
    widths = arch.get("pi") if isinstance(arch, dict) else arch
    if widths:
        kwargs["hidden"] = int(widths[0])
    for key in ("observation_fields", "homogeneous", "reference_users"):
        if base and key in base:
            kwargs[key] = base[key]
    return kwargs


def with_env_layout(policy_kwargs: dict[str, Any] | None, env: Any) -> dict[str, Any]:
    """The user-set policy's ``policy_kwargs`` with ``observation_fields`` and ``homogeneous`` read from ``env`` (a
    MultiSpin env), and ``reference_users`` its number of users unless the kwargs give one (None: never scale);
    ValueError if the kwargs already name another layout."""
    fields, homogeneous = env_layout(env)
    kwargs = dict(policy_kwargs or {})
    given = kwargs.get("observation_fields")
    if given is not None and tuple(given) != fields:
        raise ValueError(
            f"policy_kwargs observation_fields {describe_fields(given)} do not fit the env's {describe_fields(fields)}"
        )
    given = kwargs.get("homogeneous")
    if given is not None and bool(given) != homogeneous:
        raise ValueError(f"policy_kwargs homogeneous={given} does not fit the env (homogeneous={homogeneous})")
    kwargs.update(observation_fields=fields, homogeneous=homogeneous)
    kwargs.setdefault("reference_users", int(env.unwrapped.num_users))
    return kwargs
