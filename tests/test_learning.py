"""Learners against the analytic optimum: PPO with the batched settings of ``ppo_fast.yml`` (``train.py --agent
fast``) and RecurrentPPO with ``ppo_lstm.yml``'s learn a two-user static system to within 3% of het-opt-oracle's
goodput, far above the policies they could end at without learning (a random start and server-only decoding, both
near 80%)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate
from experiments.suite_references import ServerOnly

HET = "MultiSpin-Heterogeneous-v0"
SETTINGS = ["fading:False", "num_users:2"]


@pytest.mark.parametrize(
    ("algo", "agent"), [("ppo", ["--agent", "fast"]), ("ppo_lstm", [])], ids=["ppo_fast", "ppo_lstm"]
)
def test_a_learner_reaches_97_percent_of_het_opt_oracle_on_a_small_static_system(
    tmp_path: Path, algo: str, agent: list[str]
) -> None:
    from agents.train import main as train_main

    argv = ["--algo", algo, *agent, "--env", HET, "-n", "204800", "--seed", "0", "-f", str(tmp_path)]
    argv += ["--eval-freq", "51200", "--eval-episodes", "5", "--baselines", "het-opt-oracle", "--verbose", "0"]
    assert train_main([*argv, "--env-kwargs", *SETTINGS]) == 0
    (run,) = (tmp_path / algo).glob(f"{HET}_*")
    data = np.load(run / "evaluations.npz")
    oracle = data["baseline_goodput"][0].mean()
    share = data["goodput"].mean(axis=1) / oracle
    env = gym.make(HET, fading=False, num_users=2)
    server_only = evaluate(env, ServerOnly(env), [int(s) for s in np.unique(data["seeds"])]).goodputs.mean() / oracle
    assert share[0] < 0.9 and server_only < 0.9, (share, server_only)  # what no learning would score
    assert share[-1] >= 0.97, share
