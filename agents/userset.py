"""User-set policy: one shared per-user network, so the same weights play any number of users K.

:class:`UserSetPolicy` is an SB3 ``ActorCriticPolicy`` for the MultiSpin envs' flat observation and action
(docs/model.md sections 8.1-8.2), named in rl-zoo3's YAML as ``policy: agents.userset.UserSetPolicy``
(``agents/hyperparams/ppo_userset.yml``; ``train.py --algo ppo --agent userset``). Per observation:

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

A model trained at one K runs at any other: :meth:`UserSetPolicy.predict` reads K from the observation's size
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
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

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
    "UserSetPolicy",
    "check_layout",
    "env_layout",
    "is_userset",
    "names_userset",
    "with_env_layout",
]

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


class UserSetPolicy(ActorCriticPolicy):
    """Permutation-equivariant actor-critic for the MultiSpin envs (see the module docstring).

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
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"UserSetPolicy needs a flat Box observation, got {observation_space}")
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"UserSetPolicy needs a flat Box action, got {action_space}")
        if kwargs.get("use_sde"):
            raise ValueError("UserSetPolicy does not support use_sde")
        if not (isinstance(hidden, int) and hidden >= 1):
            raise ValueError(f"UserSetPolicy hidden must be an integer >= 1, got {hidden!r}")
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
                    f"UserSetPolicy cannot tell the observation fields from {size} entries; pass "
                    "observation_fields (train.py sets them from the env)"
                )
            observation_fields = fitting[0]
        self.observation_fields = tuple(str(f) for f in observation_fields)
        if self.observation_fields not in _LAYOUTS:
            raise ValueError(
                f"UserSetPolicy observation_fields must be {list(_BASE_FIELDS)}, optionally followed by "
                f"{[[name for name, _, _ in group] for group in _OPTIONAL_GROUPS]} (any of them, in this order), "
                f"got {list(self.observation_fields)}"
            )
        users = _users_for(self.observation_fields, size)
        if users is None:
            raise ValueError(
                f"UserSetPolicy: an observation of {size} entries does not fit the fields "
                f"{describe_fields(self.observation_fields)}"
            )
        length_entries = int(action_space.shape[0]) - users
        if homogeneous is None:
            homogeneous = length_entries == 1 and users > 1
        if length_entries != (1 if homogeneous else users):
            raise ValueError(
                f"UserSetPolicy: action of {action_space.shape[0]} entries does not fit {users} users "
                f"({'homogeneous' if homogeneous else 'heterogeneous'})"
            )
        self.homogeneous = bool(homogeneous)
        self.hidden = hidden
        self._indices: dict[int, tuple[th.Tensor, th.Tensor, th.Tensor]] = {}
        self.reference_users = reference_users
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    @property
    def reference_users(self) -> int | None:
        """K_train, the number of users the spectral-efficiency inputs are scaled to (None: no scaling)."""
        return self._reference_users

    @reference_users.setter
    def reference_users(self, value: int | None) -> None:
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"UserSetPolicy reference_users must be an integer >= 1 or None, got {value!r}")
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
    def _build(self, lr_schedule: Schedule) -> None:
        n_user = sum(f in _PER_USER for f in self.observation_fields)
        n_global = len(self.observation_fields) - n_user  # every global field has one entry
        hidden = self.hidden
        self.actor = _SetNet(n_user, n_global, hidden)
        self.critic = _SetNet(n_user, n_global, hidden)
        user_head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        self.common_length = nn.Linear(hidden, 1)  # homogeneous env only: the common length entry
        # Not SB3's value_net (a Linear on the MLP extractor's latent): this head reads the pooled critic summary.
        value_head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.user_head, self.value_head = user_head, value_head
        # One log-std per action kind (length, share), shared by the users.
        self.log_std = nn.Parameter(th.full((2,), float(self.log_std_init)), requires_grad=True)
        if self.ortho_init:
            # SB3's gains: sqrt(2) hidden layers, 0.01 action outputs (start near the mean action), 1 value output.
            for module in (self.actor, self.critic, user_head[0], value_head[0]):
                module.apply(partial(self.init_weights, gain=float(np.sqrt(2))))
            for module, gain in ((user_head[2], 0.01), (self.common_length, 0.01), (value_head[2], 1.0)):
                module.apply(partial(self.init_weights, gain=gain))
        # SB3 types optimizer_class as type[Optimizer], whose own __init__ has no lr; its _build makes the same call.
        self.optimizer = self.optimizer_class(
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def _split(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """(B, N) observations -> per-user rows (B, K, F) and global entries (B, G), K from N; the spectral
        efficiency scaled by K_train / K (``reference_users``)."""
        if isinstance(obs, dict):
            raise ValueError("UserSetPolicy takes the flat MultiSpin observation, not a dict")
        size = int(obs.shape[-1])
        if size not in self._indices:
            users = _users_for(self.observation_fields, size)
            if users is None:
                raise ValueError(
                    f"UserSetPolicy: an observation of {size} entries does not fit the fields "
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

    def _mean(self, users: th.Tensor, glob: th.Tensor) -> th.Tensor:
        """The action mean (B, E + K): each user's head on its encoding and the pooled context."""
        h, c = self.actor(users, glob)
        out = self.user_head(th.cat([h, c.unsqueeze(1).expand_as(h)], dim=-1))  # (B, K, 2)
        lengths = self.common_length(c) if self.homogeneous else out[..., 0]
        return th.cat([lengths, out[..., 1]], dim=-1)

    def _value(self, users: th.Tensor, glob: th.Tensor) -> th.Tensor:
        """The value (B, 1), from the critic's pooled summary."""
        return self.value_head(self.critic(users, glob)[1])

    def _distribution(self, mean: th.Tensor) -> DiagGaussianDistribution:
        users = mean.shape[-1] - (1 if self.homogeneous else mean.shape[-1] // 2)
        log_std = th.cat([self.log_std[:1].expand(mean.shape[-1] - users), self.log_std[1:].expand(users)])
        return DiagGaussianDistribution(int(mean.shape[-1])).proba_distribution(mean, log_std)

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
        if isinstance(observation, dict):
            raise ValueError("UserSetPolicy takes the flat MultiSpin observation, not a dict")
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (1, 2):
            raise ValueError(f"UserSetPolicy: observation must be (N,) or (batch, N), got shape {obs.shape}")
        self.set_training_mode(False)
        with th.no_grad():
            actions = self._predict(th.as_tensor(obs.reshape(-1, obs.shape[-1]), device=self.device), deterministic)
        box = self.action_space
        assert isinstance(box, spaces.Box)  # checked in __init__
        low, high = float(np.min(box.low)), float(np.max(box.high))
        out = np.clip(actions.cpu().numpy(), low, high)
        return (out[0] if obs.ndim == 1 else out), state


def _action_sizes(users: int | None) -> tuple[int, ...]:
    """The action sizes of ``users`` users: heterogeneous (2K) and homogeneous (K + 1)."""
    return () if users is None else (2 * users, users + 1)


def _users_for(fields: Sequence[str], size: int) -> int | None:
    """K such that the observation of these fields has ``size`` entries (None: no K >= 1 fits)."""
    per_user = sum(f in _PER_USER for f in fields)
    users, rest = divmod(size - (len(fields) - per_user), per_user)
    return users if rest == 0 and users >= 1 else None


def is_userset(model: Any) -> bool:
    """Whether an SB3 model (or policy) is a user-set model (runs at any K)."""
    return isinstance(getattr(model, "policy", model), UserSetPolicy)


def check_layout(model: Any, env: Any, what: str = "the model") -> None:
    """ValueError (one line, naming both layouts) unless the user-set ``model`` was trained with ``env``'s
    observation fields and action kind (any K)."""
    policy = getattr(model, "policy", model)
    fields, homogeneous = env_layout(env)
    if tuple(fields) != policy.observation_fields:
        raise ValueError(
            f"{what} was trained on the observation fields {describe_fields(policy.observation_fields)}, "
            f"the env has {describe_fields(fields)} (request arrivals on in one and off in the other?)"
        )
    if homogeneous != policy.homogeneous:
        kind = {True: "homogeneous (one length entry)", False: "heterogeneous (one length per user)"}
        raise ValueError(f"{what} was trained on a {kind[policy.homogeneous]} env, the env is {kind[homogeneous]}")


def names_userset(policy: Any) -> bool:
    """Whether an SB3 ``policy`` argument (class or name) is :class:`UserSetPolicy` (or a subclass)."""
    return policy == POLICY_NAME or (isinstance(policy, type) and issubclass(policy, UserSetPolicy))


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
