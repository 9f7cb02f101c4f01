"""The RLlib PPO module of :mod:`agents.rllib`: SB3's ``MlpPolicy`` actor-critic, optionally with a centralised
critic (MAPPO).

SB3's PPO (``agents/hyperparams/ppo.yml``) has separate actor and critic MLPs (64x64 tanh), a free,
state-independent log-std per action entry starting at ``log_std_init`` (-1), and orthogonal weights (gain
sqrt(2) in the hidden layers, 0.01 in the action-mean layer, 1 in the value layer, zero biases), so the first
policy's mean is near 0 and its noise std 0.37. RLlib's default PPO module predicts the log-std from the
network (std ~1 at the start) and initialises its layers differently; this module is SB3's, written once for both
single-agent and multi-agent training.

Centralised critic: with ``actor_inputs = n`` in the model config, the actor reads only the first n observation
entries and the critic only the rest. :class:`agents.rllib.ParallelTraining` builds such observations for the
per-user env (own 7 entries, then the env's ``state()``), so one actor shared by the users acts on its own
observation while the critic values the whole system's state (MAPPO). Imported only when ray[rllib] is installed
(checkpoints name this class).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

__all__ = ["SB3PPOModule"]


def _mlp(inputs: int, hiddens: list[int], outputs: int, out_gain: float) -> nn.Sequential:
    """tanh MLP with SB3's orthogonal initialisation (hidden gain sqrt(2), output gain ``out_gain``, zero biases)."""
    layers: list[nn.Module] = []
    size = inputs
    for width in hiddens:
        layer = nn.Linear(size, width)
        nn.init.orthogonal_(layer.weight, gain=math.sqrt(2.0))
        nn.init.zeros_(layer.bias)
        layers += [layer, nn.Tanh()]
        size = width
    out = nn.Linear(size, outputs)
    nn.init.orthogonal_(out.weight, gain=out_gain)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


class SB3PPOModule(TorchRLModule, ValueFunctionAPI):
    """SB3's PPO actor-critic for Box observations and actions (diagonal Gaussian, free log-std).

    Model config: ``fcnet_hiddens`` (default [64, 64]), ``log_std_init`` (default -1.0), ``actor_inputs`` (None:
    the actor and the critic read the whole observation; n: the actor reads the first n entries, the critic the
    rest).
    """

    def setup(self) -> None:
        config: dict[str, Any] = dict(self.model_config or {})
        hiddens = list(config.get("fcnet_hiddens") or [64, 64])
        size = int(self.observation_space.shape[0])
        actions = int(self.action_space.shape[0])
        split = config.get("actor_inputs")
        self.actor_inputs = size if split is None else int(split)
        if not 0 < self.actor_inputs <= size:
            raise ValueError(f"actor_inputs must be in 1..{size}, got {split!r}")
        critic_inputs = size if split is None else size - self.actor_inputs
        if critic_inputs <= 0:
            raise ValueError(f"the centralised critic has no inputs: actor_inputs {split} of {size} entries")
        self.pi = _mlp(self.actor_inputs, hiddens, actions, 0.01)
        self.vf = _mlp(critic_inputs, hiddens, 1, 1.0)
        self.log_std = nn.Parameter(torch.full((actions,), float(config.get("log_std_init", -1.0))))

    def _actor_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[..., : self.actor_inputs]

    def _critic_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.actor_inputs == obs.shape[-1] else obs[..., self.actor_inputs :]

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mean = self.pi(self._actor_obs(batch[Columns.OBS]))
        return {Columns.ACTION_DIST_INPUTS: torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.vf(self._critic_obs(batch[Columns.OBS])).squeeze(-1)
