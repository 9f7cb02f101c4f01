"""agents/: the evaluation loop, the batched vector env adapter and the wrappers."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

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
    action, _ = AgentPolicy(model, venv).predict(raw)
    expected, _ = model.predict(venv.normalize_obs(raw), deterministic=True)
    np.testing.assert_array_equal(action, expected)
    unnormalised, _ = AgentPolicy(model, None).predict(raw)
    np.testing.assert_array_equal(unnormalised, model.predict(raw, deterministic=True)[0])


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
        GymnasiumVecEnv(
            SyncVectorEnv([lambda: gym.make("MultiSpin-Heterogeneous-v0")], autoreset_mode=AutoresetMode.NEXT_STEP)
        )


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


def test_adapter_splits_masked_infos_like_gymnasium_masks() -> None:
    """Each sub-env's info holds exactly the keys its ``_key`` mask marks (and every key without a mask), with its row."""
    from agents.vec_env import make_batched_vec_env

    venv = make_batched_vec_env("MultiSpin-Heterogeneous-v0", 4, {"horizon": 0.3})
    venv.reset()
    rng = np.random.default_rng(2)
    saw_partial = False
    for _ in range(40):
        raw = venv.venv.step(rng.uniform(-1, 1, (4, *venv.action_space.shape)).astype(np.float32))[4]
        raw["unmasked"] = np.arange(4.0)
        split = venv._split_info(raw)
        keys = [key for key in raw if not key.startswith("_") and key not in ("final_obs", "final_info")]
        for i, info in enumerate(split):
            expected = [key for key in keys if f"_{key}" not in raw or raw[f"_{key}"][i]]
            assert sorted(info) == sorted(expected)
            for key in expected:
                np.testing.assert_array_equal(info[key], raw[key][i])
        saw_partial |= any(not np.all(raw[f"_{key}"]) for key in keys if f"_{key}" in raw)
    assert saw_partial  # some rounds reset a sub-env, so its round keys were masked out
    venv.close()


def test_episode_goodput_reward_returns_goodput_once_at_the_end() -> None:
    """--optimize ranks trials by mean episode return; with this wrapper that return is the episode goodput."""
    from agents.wrappers import EpisodeGoodputReward

    env = EpisodeGoodputReward(gym.make("MultiSpin-Heterogeneous-v0", horizon=1.0))
    ref = gym.make("MultiSpin-Heterogeneous-v0", horizon=1.0)
    policy = ConstantPolicy(ref, 2)
    expected = run_episode(ref, policy, seed=5).goodput
    env.reset(seed=5)
    rewards, ended = [], False
    while not ended:
        _, reward, terminated, truncated, _ = env.step(policy.action)
        rewards.append(reward)
        ended = terminated or truncated
        assert not truncated  # reported as a termination: VecHorizonTermination leaves it alone
    assert rewards[:-1] == [0.0] * (len(rewards) - 1)
    assert rewards[-1] == pytest.approx(expected)
