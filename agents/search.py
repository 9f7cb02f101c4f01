"""Optuna search spaces for ``train.py --optimize`` on the MultiSpin ids (PPO and RecurrentPPO).

rl-zoo3's own samplers draw ``gamma`` from 0.97-0.9999 and networks up to 256x256; here the return
is the tokens generated within the horizon (agents/wrappers.py), which needs gamma close to 1, so
gamma stays the YAML's (0.999) and the search spends its trials on what moved goodput in tuning:
learning rate, rollout and batch sizes, epochs, GAE lambda, clipping, width and the initial action
noise. Sampled names are stored in the study; :data:`CONVERTERS` turn them back into
hyperparameters for ``--trial-id``. The objective (mean episode goodput) is set by train.py.
"""

from __future__ import annotations

from typing import Any

import optuna


def convert_ppo_params(sampled: dict[str, Any]) -> dict[str, Any]:
    """Study parameters -> PPO constructor hyperparameters."""
    width = int(sampled["net_width"])
    policy_kwargs: dict[str, Any] = {
        "net_arch": {"pi": [width, width], "vf": [width, width]},
        "log_std_init": sampled["log_std_init"],
    }
    if "lstm_hidden_size" in sampled:
        policy_kwargs["lstm_hidden_size"] = int(sampled["lstm_hidden_size"])
    return {
        "learning_rate": sampled["learning_rate"],
        "n_steps": 2 ** int(sampled["n_steps_pow"]),
        "batch_size": 2 ** int(sampled["batch_size_pow"]),
        "n_epochs": int(sampled["n_epochs"]),
        "gae_lambda": sampled["gae_lambda"],
        "clip_range": sampled["clip_range"],
        "policy_kwargs": policy_kwargs,
    }


def sample_ppo_params(
    trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]
) -> dict[str, Any]:
    """PPO search space (rl-zoo3's sampler signature); n_steps counts rounds per env per update."""
    trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True)
    trial.suggest_int("n_steps_pow", 5, 8)  # 32..256 rounds per env between updates
    trial.suggest_int("batch_size_pow", 6, 9)  # 64..512
    trial.suggest_categorical("n_epochs", [5, 10, 20])
    trial.suggest_float("gae_lambda", 0.3, 0.98)
    trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3])
    trial.suggest_categorical("net_width", [32, 64, 128])
    trial.suggest_float("log_std_init", -2.0, 0.0)  # action noise std e^-2..1 on the [-1, 1] action scale
    return convert_ppo_params(trial.params)


def sample_ppo_lstm_params(
    trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]
) -> dict[str, Any]:
    """RecurrentPPO: the PPO space plus the LSTM width."""
    trial.suggest_categorical("lstm_hidden_size", [16, 32, 64])
    return sample_ppo_params(trial, n_actions, n_envs, additional_args)


SAMPLERS = {"ppo": sample_ppo_params, "ppo_lstm": sample_ppo_lstm_params}
CONVERTERS = {"ppo": convert_ppo_params, "ppo_lstm": convert_ppo_params}
