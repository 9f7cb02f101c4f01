"""The RLlib PPO module of :mod:`agents.rllib` with SB3's state-independent log-std and its initial value.

RLlib's default PPO module outputs the log-std from the policy network, starting near 0 (std 1 on actions in
[-1, 1]); SB3's PPO (``agents/hyperparams/ppo.yml``: ``log_std_init=-1``) keeps one free log-std per action entry.
With ``free_log_std=True`` in the model config RLlib keeps a free parameter too; this module sets its initial value
from the model config's ``log_std_init``. Imported only when ray[rllib] is installed (checkpoints name this class).
"""

from __future__ import annotations

from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule

__all__ = ["FreeStdPPOModule"]


class FreeStdPPOModule(DefaultPPOTorchRLModule):
    """DefaultPPOTorchRLModule whose free log-std starts at ``model_config["log_std_init"]``."""

    def setup(self) -> None:
        super().setup()
        init = self.model_config.get("log_std_init") if isinstance(self.model_config, dict) else None
        log_std = getattr(self.pi, "log_std", None)
        if init is not None and log_std is not None:
            log_std.data.fill_(float(init))
