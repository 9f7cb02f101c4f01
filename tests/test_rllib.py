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
from multispin_env import suite


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
    plain = dict.fromkeys(["stochastic_rounding", "rate_reward", "normalize_reward"], False)
    env = make_single_env(
        {"env_id": "MultiSpin-Heterogeneous-v0", "settings": {"num_users": 2, "horizon": 0.5}, **plain}
    )
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


def test_single_env_stack_is_ppo_yml_s_and_the_rate_reward_is_vec_rate_reward_s() -> None:
    """make_single_env wraps ppo.yml's training transformations in ppo.yml's order; its rate reward gives the
    rewards of VecRateReward (the same RunningRate) on the same episode."""
    from agents.vec_env import make_batched_vec_env
    from agents.wrappers import VecHorizonTermination, VecRateReward

    settings = {"num_users": 3, "horizon": 1.0}
    env = make_single_env(
        {"env_id": "MultiSpin-Heterogeneous-v0", "settings": settings, "gamma": 0.9, "stochastic_rounding": False}
    )
    layers = []
    layer: gym.Env = env
    while isinstance(layer, gym.Wrapper):
        layers.append(type(layer).__name__)
        layer = layer.env
    assert layers[:3] == ["NormalizeReward", "TaskReward", "HorizonTermination"]
    assert env.get_wrapper_attr("gamma") == 0.9
    shaped = env.env  # the rate reward, under the normaliser
    venv = VecRateReward(VecHorizonTermination(make_batched_vec_env("MultiSpin-Heterogeneous-v0", 1, settings)))
    venv.seed(4)
    venv.reset()
    shaped.reset(seed=4)
    rng = np.random.default_rng(1)
    for _ in range(60):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        _, reward, terminated, _, _ = shaped.step(action)
        _, vec_rewards, _, _ = venv.step(action[None])
        assert reward == pytest.approx(float(vec_rewards[0]), rel=1e-5, abs=1e-5)
        if terminated:
            break
    assert terminated and shaped.estimate.rate > 0


@pytest.mark.parametrize(
    ("env_id", "horizon"),
    [
        ("MultiSpinSuite/ArrivalsHeavy-v1", 15.0),
        ("MultiSpinSuite/Deadlines-v0", 15.0),
        ("MultiSpinSuite/Fairness-v0", 3.0),
    ],
)
def test_on_a_task_of_another_metric_the_reward_is_vec_task_reward_s(env_id: str, horizon: float) -> None:
    """The single env's training reward on a suite task of another metric is VecTaskReward's (the same TaskRewards):
    the same rewards, step by step, over two episodes with the same seed and actions (the second after the
    VecEnv's automatic reset and the env's own reset: the running state carries over, the episode's restarts)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.wrappers import VecHorizonTermination, VecTaskReward

    flags = {"stochastic_rounding": False, "normalize_reward": False}
    env = make_single_env({"env_id": env_id, "settings": {"horizon": horizon}, **flags})
    venv = VecTaskReward(VecHorizonTermination(DummyVecEnv([lambda: gym.make(env_id, horizon=horizon)])))
    assert env.get_wrapper_attr("metric") == venv.metric == suite.task(env_id).metric != "goodput"
    venv.seed(3)
    venv.reset()
    env.reset(seed=3)
    rng = np.random.default_rng(2)
    rewards, episodes = [], 0
    for _ in range(4000):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        _, reward, terminated, _, _ = env.step(action)
        _, vec_rewards, dones, _ = venv.step(action[None])
        assert reward == pytest.approx(float(vec_rewards[0]), rel=1e-5, abs=1e-6)
        assert terminated == bool(dones[0])
        rewards.append(reward)
        if terminated:
            episodes += 1
            if episodes == 2:
                break
            env.reset()  # as DummyVecEnv resets its env: no seed, the env's generator continues
    assert episodes == 2 and np.count_nonzero(rewards) > 0


def test_stochastic_rounding_plays_integer_lengths_with_the_chosen_mean() -> None:
    env = make_single_env(
        {"env_id": "MultiSpin-Heterogeneous-v0", "settings": {"num_users": 2}, "rate_reward": False}
    ).get_wrapper_attr("action")
    action = np.array([-0.25, 0.9, 0.1, 0.3], dtype=np.float32)  # L_max 10: lengths 3.75 and 9.5
    played = np.stack([env(action) for _ in range(4000)])
    lengths = (played[:, :2] + 1.0) * 5.0
    np.testing.assert_allclose(lengths, np.rint(lengths), atol=1e-5)
    np.testing.assert_allclose(lengths.mean(axis=0), [3.75, 9.5], atol=0.05)
    assert set(np.rint(lengths[:, 0]).tolist()) == {3.0, 4.0}
    np.testing.assert_array_equal(played[:, 2:], np.tile(action[2:], (4000, 1)))


def test_parallel_training_centralised_observations_and_per_agent_transforms() -> None:
    pytest.importorskip("pettingzoo")
    from agents.rllib import ParallelTraining
    from multispin_env.multiagent import parallel_env

    settings = {"num_users": 3, "horizon": 0.6, "fading": False}
    plain = parallel_env(**settings)
    env = ParallelTraining(
        parallel_env(**settings), {"centralised_critic": True, "stochastic_rounding": False, "normalize_reward": False}
    )
    assert env.observation_space("user_0").shape == (7 + 16,)
    obs, _ = env.reset(seed=2)
    plain_obs, _ = plain.reset(seed=2)
    actions = plain.encode_actions(np.array([2, 0, 4]), np.array([0.5, 0.0, 0.5]))
    terminated = False
    while not terminated:
        for agent, o in obs.items():
            np.testing.assert_array_equal(o[:7], plain_obs[agent])
            np.testing.assert_array_equal(o[7:], plain.state())
            assert env.observation_space(agent).contains(o)
        obs, rewards, terms, truncs, infos = env.step(actions)
        plain_obs, plain_rewards, *_ = plain.step(actions)
        terminated = all(terms.values())
        assert not any(truncs.values())
        estimate = env.rates["user_0"]
        latency = float(estimate.priced_latency[0])
        for agent in rewards:  # shared reward priced at the running goodput, the last round pro-rated
            share = latency / infos[agent]["latency"]
            assert rewards[agent] == pytest.approx(plain_rewards[agent] * share - estimate.rate * latency, rel=1e-6)
    assert not plain.agents  # both ended on the same round


def test_sb3_module_shapes_init_and_centralised_critic() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("ray.rllib")
    from agents.rllib_module import SB3PPOModule

    obs_space = gym.spaces.Box(-1.0, 1.0, (10,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    module = SB3PPOModule(
        observation_space=obs_space, action_space=act_space, model_config={"log_std_init": -1.0, "actor_inputs": 4}
    )
    assert module.pi[0].in_features == 4 and module.vf[0].in_features == 6
    torch.manual_seed(0)
    obs = torch.rand(64, 10) * 2 - 1
    out = module.forward_inference({"obs": obs})["action_dist_inputs"]
    assert out.shape == (64, 4)
    np.testing.assert_allclose(out[:, 2:].detach().numpy(), -1.0)  # free log-std, SB3's start
    assert out[:, :2].abs().max() < 0.1  # SB3's 0.01-gain action layer: the first means are near 0
    changed = obs.clone()
    changed[:, 4:] = torch.rand(64, 6)
    np.testing.assert_array_equal(  # the actor reads only its own entries ...
        module.forward_inference({"obs": changed})["action_dist_inputs"].detach().numpy(), out.detach().numpy()
    )
    values = module.compute_values({"obs": obs})  # ... the critic only the state
    assert values.shape == (64,)
    assert not torch.allclose(module.compute_values({"obs": changed}), values)
    changed = obs.clone()
    changed[:, :4] = 0.0
    assert torch.allclose(module.compute_values({"obs": changed}), values)
    with pytest.raises(ValueError, match="actor_inputs"):
        SB3PPOModule(observation_space=obs_space, action_space=act_space, model_config={"actor_inputs": 11})


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
        (
            ["--env", "multiagent", "--reward-mode", "selfish", "--bandwidth-price", "-1"],
            "bad env setting: bandwidth_price must be a finite number",
        ),
        (["--env", "multiagent", "--bandwidth-price", "nan"], "bad env setting: bandwidth_price must be a finite"),
        (["--env", "multiagent", "--bandwidth-price", "2"], "bandwidth_price is charged to selfish users"),
        (["--env", "multiagent", "--module", "rllib"], "--critic central needs --module sb3"),
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
@pytest.mark.parametrize(
    ("env", "extra"),
    [
        ("MultiSpin-Heterogeneous-v0", []),
        ("multiagent", ["--reward-mode", "selfish", "--critic", "local", "--bandwidth-price", "5"]),
        ("multiagent", []),  # MAPPO: the centralised critic
    ],
)
def test_rllib_trains_and_the_policy_evaluates_next_to_baselines(env: str, extra: list[str], tmp_path: Path) -> None:
    pytest.importorskip("ray.rllib")
    from agents.rllib import eval_env_id, load_policy

    out = tmp_path / "run"
    argv = ["--env", env, *TINY, "--save-freq", "1", "-o", str(out), *extra]
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
    # SB3's module, its free log-std started at -1 and trained for 2 short iterations
    assert type(policy.module).__name__ == "SB3PPOModule"
    assert np.allclose(policy.module.log_std.detach().numpy(), -1.0, atol=0.2)
    central = env == "multiagent" and "--critic" not in extra
    assert policy.module.observation_space.shape == ((7 + 16,) if central else (7,) if env == "multiagent" else (16,))
    assert record["env_config"].get("centralised_critic", False) == central
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
