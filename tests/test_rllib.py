"""agents.rllib: the command's one-line errors and the per-user observation cut (no Ray needed), and short RLlib PPO
runs on local Ray (slow: ``make test-slow`` runs them in .venv-rllib, where ray[rllib] is installed)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from cli_helpers import cli_error

import multispin_env  # noqa: F401
from agents.evaluation import evaluate, evaluate_analytic
from agents.rllib import HorizonTermination, main, make_single_env, per_user_observations


def test_per_user_observations_match_the_multiagent_env() -> None:
    pytest.importorskip("pettingzoo")
    from multispin_env.multiagent import parallel_env

    settings = {"num_users": 4, "horizon": 3.0, "csi_delay": 1}
    single = gym.make("MultiSpin-Heterogeneous-v0", **settings)
    multi = parallel_env(**settings)
    obs_s, _ = single.reset(seed=5)
    obs_m, _ = multi.reset(seed=5)
    rng = np.random.default_rng(0)
    while multi.agents:
        cut = per_user_observations(obs_s, 4)
        np.testing.assert_array_equal(cut, np.stack([obs_m[f"user_{i}"] for i in range(4)]))
        joint = rng.uniform(-1, 1, 8).astype(np.float32)
        obs_s, *_ = single.step(joint)
        obs_m, *_ = multi.step({f"user_{i}": joint[[i, 4 + i]] for i in range(4)})
    with pytest.raises(ValueError, match="must have 21 entries"):
        per_user_observations(np.zeros(20), 4)


def test_horizon_termination_pro_rates_the_last_round() -> None:
    env = make_single_env({"env_id": "MultiSpin-Heterogeneous-v0", "settings": {"num_users": 2, "horizon": 0.5}})
    assert isinstance(env, HorizonTermination)
    raw = gym.make("MultiSpin-Heterogeneous-v0", num_users=2, horizon=0.5)
    env.reset(seed=1)
    raw.reset(seed=1)
    action = np.zeros(4, dtype=np.float32)
    while True:
        _, reward, terminated, truncated, info = env.step(action)
        _, raw_reward, _, raw_truncated, _ = raw.step(action)
        assert truncated is False and terminated == raw_truncated
        if terminated:
            start = info["clock"] - info["latency"]
            assert reward == pytest.approx(raw_reward * (0.5 - start) / info["latency"])
            assert 0 < reward <= raw_reward
            break
        assert reward == raw_reward


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "CartPole-v1"], "--env must be multiagent or a MultiSpin id"),
        (["--env-kwargs", "num_users:0"], "bad env setting: num_users"),
        (["--env", "multiagent", "--env-kwargs", "homogeneous:True"], "homogeneous is not a setting"),
        (["--env-kwargs", "fading"], "key:value"),
        (["--minibatch", "512", "--train-batch", "256"], "exceeds --train-batch"),
        (["--iterations", "0"], "expected an integer >= 1"),
        (["--reward-mode", "greedy"], "invalid choice"),
        (["--address", "127.0.0.1:1"], "could not connect to Ray at '127.0.0.1:1'"),
    ],
)
def test_cli_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli_error(main, argv, capsys, "multispin-rllib", message)


# ------------------------------------------------------------------- slow: real RLlib training on local Ray
TINY = [
    "--iterations",
    "2",
    "--train-batch",
    "128",
    "--minibatch",
    "64",
    "--epochs",
    "2",
    "--num-env-runners",
    "1",
    "--envs-per-runner",
    "2",
    "--num-cpus",
    "2",
    "--env-kwargs",
    "num_users:3",
    "horizon:1.0",
    "fading:False",
]


@pytest.mark.slow
@pytest.mark.parametrize("env", ["MultiSpin-Heterogeneous-v0", "multiagent"])
def test_rllib_trains_and_the_policy_evaluates_next_to_baselines(env: str, tmp_path: Path) -> None:
    pytest.importorskip("ray.rllib")
    from agents.rllib import eval_env_id, load_policy

    out = tmp_path / "run"
    argv = ["--env", env, *TINY, "--save-freq", "1", "-o", str(out)]
    if env == "multiagent":
        argv += ["--reward-mode", "selfish", "--log-std-init", "-1"]
    assert main(argv) == 0
    record = json.loads((out / "run.json").read_text())
    assert len(record["iterations"]) == 2
    assert record["iterations"][-1]["env_steps"] >= 256
    assert all(np.isfinite(it["episode_return_mean"]) for it in record["iterations"])
    assert (out / "checkpoints" / "iter_000001").is_dir() and (out / "checkpoint").is_dir()
    assert any((out / "tb").iterdir())  # TensorBoard event file

    policy = load_policy(out)
    assert policy.per_user == (env == "multiagent")
    from agents.benchmark import load_agent_policy  # the benchmark takes an RLlib run dir like an SB3 run

    assert type(load_agent_policy(out, gym.make(eval_env_id(out)[0]))).__name__ == type(policy).__name__
    if env == "multiagent":  # SB3's free log-std, started at -1 and trained for 2 short iterations
        assert type(policy.module).__name__ == "FreeStdPPOModule"
        assert np.allclose(policy.module.pi.log_std.detach().numpy(), -1.0, atol=0.2)
    env_id, settings = eval_env_id(out)
    assert env_id == "MultiSpin-Heterogeneous-v0"
    eval_env = gym.make(env_id, **settings)
    seeds = [0, 1, 2]
    result = evaluate(eval_env, policy, seeds, name=policy.name)
    oracle = evaluate_analytic(eval_env, seeds, ["het-opt-oracle"])["het-opt-oracle"]
    assert result.seeds == oracle.seeds == seeds
    assert np.all(result.goodputs > 0) and np.all(result.goodputs <= oracle.goodputs * 1.05)
    # Deterministic: the same episode twice gives the same goodput.
    again = evaluate(eval_env, policy, seeds[:1], name=policy.name)
    assert again.goodputs[0] == result.goodputs[0]
    if env == "multiagent":  # the same module acts on the PettingZoo env itself
        from multispin_env.multiagent import parallel_env

        penv = parallel_env(**settings)
        obs, _ = penv.reset(seed=0)
        actions, _ = policy.predict(obs)
        assert set(actions) == set(penv.agents) and all(a.shape == (2,) for a in actions.values())
        penv.step(actions)
