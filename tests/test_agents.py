"""agents/: hyperparameter files, the evaluation loop, smoke training of every algorithm on both ids, save/load."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import (
    AgentPolicy,
    EvaluationResult,
    evaluate,
    evaluation_seeds,
    herfindahl,
    mean_ci,
    run_episode,
)
from agents.factory import MULTISPIN_IDS, load_model, load_vecnormalize_stats, next_run_dir, resolve_agent
from agents.hyperparams import (
    ALGOS,
    ArgumentError,
    HyperparameterError,
    LinearSchedule,
    default_hyperparams_dir,
    load_hyperparams,
    parse_key_values,
    parse_value,
    process_hyperparams,
)
from agents.train import main as train_main

# Tiny, fast settings for smoke runs: a few hundred steps, small nets, short episodes; observation
# normalisation forced on so the VecNormalize save/restore path is exercised (the tuned files turn it off).
NORM = "normalize:dict(norm_obs=True, norm_reward=True)"
TINY: dict[str, list[str]] = {
    "ppo": ["n_envs:2", "n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:dict(net_arch=[16])", NORM],
    "a2c": ["n_envs:2", "n_steps:8", "policy_kwargs:dict(net_arch=[16])", NORM],
    "sac": ["learning_starts:50", "batch_size:32", "train_freq:4", "gradient_steps:1", "buffer_size:2000", "policy_kwargs:dict(net_arch=[16])", NORM],
    "td3": ["learning_starts:50", "batch_size:32", "train_freq:4", "gradient_steps:1", "buffer_size:2000", "policy_kwargs:dict(net_arch=[16])", NORM],
}
SHORT_EPISODES = ["horizon:2.0"]


def tiny_train(tmp_path: Path, algo: str, env_id: str, steps: int = 256, extra: list[str] | None = None) -> Path:
    """Train ``algo`` on ``env_id`` for ``steps`` through train.py's main; returns the run folder."""
    argv = [
        "--algo", algo, "--env", env_id, "-n", str(steps), "--seed", "3", "-f", str(tmp_path / "logs"),
        "--no-eval", "--no-tensorboard", "--verbose", "0",
        "--env-kwargs", *SHORT_EPISODES, "-params", *TINY[algo], *(extra or []),
    ]
    assert train_main(argv) == 0
    runs = sorted((tmp_path / "logs" / algo).glob(f"{env_id}_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    return runs[-1]


# -- hyperparameter files -------------------------------------------------------------------------


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_packaged_files_have_tuned_entries_for_both_ids(algo: str) -> None:
    table = yaml.safe_load((default_hyperparams_dir() / f"{algo}.yml").read_text())
    for env_id in MULTISPIN_IDS:
        assert env_id in table, f"{algo}.yml has no entry for {env_id}"
        cfg = process_hyperparams(algo, env_id, table[env_id], action_dim=7)
        assert cfg.n_timesteps > 0 and cfg.n_envs >= 1
        # Horizon end as termination: the return is the tokens within the horizon (goodput x horizon).
        assert cfg.vec_env_wrappers == [("agents.wrappers.VecHorizonTermination", {})]
    assert "default" in table


def test_unknown_env_id_falls_back_to_default() -> None:
    raw = load_hyperparams("ppo", "Pendulum-v1")
    assert raw["policy"] == "MlpPolicy" and "n_timesteps" in raw


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", 0.1),
        ("3", 3),
        ("True", True),
        ("markov", "markov"),
        ("'markov'", "markov"),
        ("[64, 64]", [64, 64]),
        ("lin_3e-4", "lin_3e-4"),
        ("dict(net_arch=[8, 8], log_std_init=-1)", {"net_arch": [8, 8], "log_std_init": -1}),
        ("None", None),
    ],
)
def test_parse_value(text: str, expected: object) -> None:
    assert parse_value(text) == expected


def test_parse_value_resolves_torch_activations() -> None:
    import torch

    assert parse_value("dict(activation_fn=nn.Tanh)") == {"activation_fn": torch.nn.Tanh}


@pytest.mark.parametrize("pair", ["novalue", ":3", "a b:1", "x:dict(__import__('os'))", "k:"])
def test_malformed_pairs_raise_argument_error(pair: str) -> None:
    with pytest.raises(ArgumentError):
        parse_key_values([pair])


def test_process_converts_rl_zoo_forms() -> None:
    raw = {
        "n_envs": 4,
        "n_timesteps": 1e4,
        "policy": "MlpPolicy",
        "normalize": "dict(norm_obs=True, norm_reward=False)",
        "learning_rate": "lin_1e-3",
        "gamma": 0.9,
        "policy_kwargs": "dict(net_arch=[32])",
        "env_kwargs": {"fading": False},
    }
    cfg = process_hyperparams("ppo", "MultiSpin-Heterogeneous-v0", raw, {"n_epochs": 3}, {"horizon": 5.0}, n_timesteps=123)
    assert (cfg.n_envs, cfg.n_timesteps) == (4, 123)
    assert cfg.normalize and cfg.normalize_kwargs == {"norm_obs": True, "norm_reward": False, "gamma": 0.9}
    assert isinstance(cfg.model_kwargs["learning_rate"], LinearSchedule)
    assert cfg.model_kwargs["learning_rate"](0.5) == pytest.approx(5e-4)
    assert cfg.model_kwargs["policy_kwargs"] == {"net_arch": [32]}
    assert cfg.model_kwargs["n_epochs"] == 3
    assert cfg.env_kwargs == {"fading": False, "horizon": 5.0}
    assert cfg.saved["n_epochs"] == 3 and "normalize" in cfg.saved


def test_action_noise_for_td3() -> None:
    from stable_baselines3.common.noise import NormalActionNoise

    raw = {"n_timesteps": 100, "noise_type": "normal", "noise_std": 0.2}
    cfg = process_hyperparams("td3", "MultiSpin-Heterogeneous-v0", raw, action_dim=5)
    assert isinstance(cfg.model_kwargs["action_noise"], NormalActionNoise)
    with pytest.raises(HyperparameterError, match="noise_type does not fit ppo"):
        process_hyperparams("ppo", "MultiSpin-Heterogeneous-v0", raw, action_dim=5)


@pytest.mark.parametrize(
    ("algo", "override", "match"),
    [
        ("sac", {"n_epochs": 3}, "n_epochs do not fit sac"),
        ("ppo", {"buffer_size": 10}, "buffer_size do not fit ppo"),
        ("ppo", {"seed": 1}, "set by train.py"),
        ("ppo", {"learning_rate": "fast"}, "learning_rate"),
        ("ppo", {"normalize": 3}, "normalize"),
        ("ppo", {"policy": "CnnPolicy"}, "MlpPolicy"),
    ],
)
def test_hyperparameters_that_do_not_fit(algo: str, override: dict, match: str) -> None:
    raw = load_hyperparams(algo, "MultiSpin-Heterogeneous-v0")
    with pytest.raises(HyperparameterError, match=match):
        process_hyperparams(algo, "MultiSpin-Heterogeneous-v0", raw, override, action_dim=12)


def test_next_run_dir_follows_rl_zoo_numbering(tmp_path: Path) -> None:
    assert next_run_dir(tmp_path, "ppo", "X-v0") == tmp_path / "ppo" / "X-v0_1"
    (tmp_path / "ppo" / "X-v0_1").mkdir(parents=True)
    (tmp_path / "ppo" / "X-v0_7").mkdir()
    (tmp_path / "ppo" / "X-v0_tmp").mkdir()
    assert next_run_dir(tmp_path, "ppo", "X-v0") == tmp_path / "ppo" / "X-v0_8"


# -- evaluation loop ------------------------------------------------------------------------------


def test_statistics_helpers() -> None:
    assert herfindahl(np.array([0.25, 0.25, 0.25, 0.25])) == pytest.approx(0.25)
    assert herfindahl(np.array([0.5, 0.0, 0.0])) == pytest.approx(1.0)
    assert math.isnan(herfindahl(np.zeros(3)))
    mean, half = mean_ci([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.303, sd = 1: half-width 4.303 / sqrt(3)
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert evaluation_seeds(5, 3) == [5, 6, 7]


class ConstantPolicy:
    """Always the same action (equal shares, fixed length) -- a known allocation."""

    def __init__(self, env: gym.Env, length: int) -> None:
        k = env.unwrapped.num_users
        self.action = env.unwrapped.encode_action(np.full(k, length), np.full(k, 1.0 / k))
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.action, state


def test_run_episode_measures_goodput_from_info_tokens() -> None:
    env = gym.make("MultiSpin-Heterogeneous-v0", horizon=3.0, reward_scale=0.5)
    policy = ConstantPolicy(env, 3)
    ep = run_episode(env, policy, seed=11)
    assert policy.resets == 1
    assert ep.clock >= 3.0 and ep.rounds >= 1
    assert ep.goodput == pytest.approx(ep.tokens / ep.clock)
    assert ep.episode_return == pytest.approx(0.5 * ep.tokens)  # reward is scaled, goodput is not
    assert ep.mean_draft_length == pytest.approx(3.0)
    k = env.unwrapped.num_users
    assert ep.bandwidth_hhi == pytest.approx(1.0 / k)
    again = run_episode(env, policy, seed=11)
    assert again == ep  # same seed, same episode


def test_evaluate_is_order_independent() -> None:
    env = gym.make("MultiSpin-Heterogeneous-v0", horizon=2.0)
    policy = ConstantPolicy(env, 2)
    a = evaluate(env, policy, [1, 2, 3])
    b = evaluate(env, policy, [3, 1, 2])
    assert isinstance(a, EvaluationResult)
    by_seed = {e.seed: e.goodput for e in b.episodes}
    assert [by_seed[s] for s in a.seeds] == list(a.goodputs)


def test_agent_policy_applies_vecnormalize_statistics() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("MultiSpin-Heterogeneous-v0", horizon=2.0)]))
    venv.reset()
    for _ in range(20):
        venv.step(np.array([venv.action_space.sample()]))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, seed=0, device="cpu")
    raw = venv.get_original_obs()[0]
    policy = AgentPolicy(model, venv)
    np.testing.assert_allclose(policy.normalize(raw), venv.normalize_obs(raw), rtol=1e-5, atol=1e-6)
    action, _ = policy.predict(raw)
    expected, _ = model.predict(venv.normalize_obs(raw), deterministic=True)
    np.testing.assert_array_equal(action, expected)
    assert AgentPolicy(model, None).normalize(raw) is raw


# -- smoke training, save / load ------------------------------------------------------------------


@pytest.mark.parametrize("env_id", MULTISPIN_IDS)
@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_smoke_training_and_save_load_identical_predictions(tmp_path: Path, algo: str, env_id: str) -> None:
    run_dir = tiny_train(tmp_path, algo, env_id, steps=200)
    model_file = run_dir / f"{env_id}.zip"
    assert model_file.is_file()
    info = resolve_agent(run_dir)
    assert (info.algo, info.env_id, info.model_path) == (algo, env_id, model_file)
    assert info.env_kwargs == {"horizon": 2.0}
    assert info.vecnormalize_path == run_dir / env_id / "vecnormalize.pkl"
    model = load_model(info)
    assert model.num_timesteps >= 200
    stats = load_vecnormalize_stats(info.vecnormalize_path)
    assert stats.obs_rms.count > 1  # statistics were learnt and saved, not fresh

    # Two independent loads predict identically, deterministically, on real observations.
    again = AgentPolicy(load_model(info), load_vecnormalize_stats(info.vecnormalize_path))
    first = AgentPolicy(model, stats)
    env = gym.make(env_id, horizon=2.0)
    obs, _ = env.reset(seed=0)
    for _ in range(10):
        a1, _ = first.predict(obs, deterministic=True)
        a2, _ = again.predict(obs, deterministic=True)
        np.testing.assert_array_equal(a1, a2)
        obs, *_ = env.step(a1)


def test_saved_model_predicts_like_the_trained_one(tmp_path: Path) -> None:
    from agents.train import build_parser, run

    args = build_parser().parse_args(
        ["--algo", "ppo", "-n", "128", "-f", str(tmp_path), "--no-eval", "--no-tensorboard", "--verbose", "0",
         "--env-kwargs", *SHORT_EPISODES, "-params", *TINY["ppo"]]
    )
    result = run(args)
    trained = AgentPolicy(result.model, result.model.get_vec_normalize_env())
    info = resolve_agent(result.run_dir)
    loaded = AgentPolicy(load_model(info), load_vecnormalize_stats(info.vecnormalize_path))
    env = gym.make("MultiSpin-Heterogeneous-v0", horizon=2.0)
    obs, _ = env.reset(seed=4)
    for _ in range(10):
        a1, _ = trained.predict(obs)
        a2, _ = loaded.predict(obs)
        np.testing.assert_array_equal(a1, a2)
        obs, *_ = env.step(a1)


# -- batched vector env adapter and the horizon wrapper ---------------------------------------------


@pytest.mark.parametrize("mode", ["SAME_STEP", "DISABLED"])
def test_gymnasium_vector_env_adapter_gives_sb3_autoreset(mode: str) -> None:
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from agents.vec_env import GymnasiumVecEnv

    fns = [lambda h=h: gym.make("MultiSpin-Heterogeneous-v0", horizon=h) for h in (0.5, 1.0)]
    venv = GymnasiumVecEnv(SyncVectorEnv(fns, autoreset_mode=AutoresetMode[mode]))
    venv.seed(3)
    obs = venv.reset()
    layout = gym.make("MultiSpin-Heterogeneous-v0").unwrapped.observation_layout
    time_left = layout["time_left"]
    assert obs.shape == (2, venv.observation_space.shape[0])
    np.testing.assert_allclose(obs[:, time_left].ravel(), 1.0)
    ended = [0, 0]
    for _ in range(60):
        obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
        assert rewards.shape == (2,) and all("tokens" in info for info in infos)
        for i in np.flatnonzero(dones):
            ended[i] += 1
            info = infos[i]
            assert info["TimeLimit.truncated"] is True
            assert info["terminal_observation"][time_left] == pytest.approx(0.0)
            assert obs[i, time_left] == pytest.approx(1.0)  # already the next episode's first observation
    assert ended[0] > ended[1] >= 1  # the 0.5 s episodes end more often


def test_adapter_refuses_next_step_autoreset() -> None:
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from agents.vec_env import GymnasiumVecEnv

    with pytest.raises(ValueError, match="SAME_STEP or DISABLED"):
        GymnasiumVecEnv(SyncVectorEnv([lambda: gym.make("MultiSpin-Heterogeneous-v0")], autoreset_mode=AutoresetMode.NEXT_STEP))


def test_horizon_termination_stops_bootstrap_and_prorates_the_last_round() -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.wrappers import VecHorizonTermination

    horizon = 1.0
    raw = DummyVecEnv([lambda: gym.make("MultiSpin-Heterogeneous-v0", horizon=horizon, reward_scale=1.0)])
    venv = VecHorizonTermination(raw)
    assert venv.horizon == horizon
    venv.seed(0)
    venv.reset()
    k = raw.envs[0].unwrapped.num_users
    action = raw.envs[0].unwrapped.encode_action(np.full(k, 10), np.full(k, 1.0 / k))  # long rounds overshoot
    total = 0.0
    for _ in range(100):
        _, rewards, dones, infos = venv.step(np.array([action]))
        if dones[0]:
            info = infos[0]
            assert info["TimeLimit.truncated"] is False and "terminal_observation" in info
            start = info["clock"] - info["latency"]
            assert start < horizon <= info["clock"]
            share = (horizon - start) / info["latency"]
            assert rewards[0] == pytest.approx(share * info["tokens"].sum(), rel=1e-5)
            break
        total += rewards[0]
    else:
        pytest.fail("episode did not end")


def test_batched_vector_env_through_the_adapter_matches_sb3_conventions() -> None:
    from agents.vec_env import make_batched_vec_env

    venv = make_batched_vec_env("MultiSpin-Heterogeneous-v0", 3, {"horizon": 0.5})
    time_left = venv.venv.unwrapped.observation_layout["time_left"]
    venv.seed(1)
    obs = venv.reset()
    assert obs.shape == (3, venv.observation_space.shape[0]) and obs.dtype == np.float32
    episodes = 0
    rng = np.random.default_rng(0)
    for _ in range(80):
        obs, rewards, dones, infos = venv.step(rng.uniform(-1, 1, (3, *venv.action_space.shape)).astype(np.float32))
        assert rewards.dtype == np.float32 and np.all(rewards > 0) and all("tokens" in info for info in infos)
        for i in np.flatnonzero(dones):
            episodes += 1
            assert infos[i]["TimeLimit.truncated"] is True
            assert infos[i]["terminal_observation"][time_left] == pytest.approx(0.0)
            assert infos[i]["clock"] >= 0.5  # the ended round's info, not the new episode's
            assert obs[i, time_left] == pytest.approx(1.0)
    assert episodes >= 3
    venv.close()
