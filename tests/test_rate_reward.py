"""The training-only rate reward (agents.wrappers.VecRateReward): r - rho T with rho the running goodput."""

from __future__ import annotations

import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from agents.vec_env import make_batched_vec_env
from agents.wrappers import VecRateReward, VecStochasticRounding, for_evaluation

TASK = "MultiSpinSuite/IIDStatic-v0"
SHORT = {"horizon": 1.0}


def _play(venv, steps: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rewards, env rewards, latencies within the horizon) of ``steps`` steps of random actions; the env's own
    rewards are read from a twin env stepped with the same actions and seed."""
    twin = make_batched_vec_env(TASK, venv.num_envs, SHORT)
    rng = np.random.default_rng(seed)
    for env in (venv, twin):
        env.seed(seed)
        env.reset()
    out = []
    for _ in range(steps):
        action = rng.uniform(-1, 1, (venv.num_envs, venv.action_space.shape[0])).astype(np.float32)
        _, shaped, _, infos = venv.step(action)
        _, plain, _, _ = twin.step(action)
        latency = np.array([info["latency"] for info in infos])
        start = np.array([info["clock"] for info in infos]) - latency
        out.append((shaped, plain, np.minimum(latency, SHORT["horizon"] - start)))
    return out


def test_the_reward_is_priced_at_the_running_goodput() -> None:
    decay = 0.2
    venv = VecRateReward(make_batched_vec_env(TASK, 3, SHORT), rate_decay=decay)
    reward_sum = latency_sum = None
    for shaped, plain, latency in _play(venv, 40):
        # The running sums, written out: the first step starts them, then an exponentially weighted average.
        if reward_sum is None:
            reward_sum, latency_sum = plain.sum(), latency.sum()
        else:
            reward_sum += decay * (plain.sum() - reward_sum)
            latency_sum += decay * (latency.sum() - latency_sum)
        rate = reward_sum / latency_sum
        np.testing.assert_allclose(shaped, plain - rate * latency, rtol=1e-5, atol=1e-5)
        assert rate > 0 and np.all(latency > 0)
    assert venv.rate == pytest.approx(rate)


def test_the_priced_latencies_of_an_episode_add_up_to_its_horizon() -> None:
    """So the shaping moves every episode's return by the same rho x horizon: the objective does not change."""
    venv = VecRateReward(make_batched_vec_env(TASK, 2, SHORT))
    venv.seed(0)
    venv.reset()
    totals, rng, ended = np.zeros(2), np.random.default_rng(0), 0
    for _ in range(60):
        action = rng.uniform(-1, 1, (2, venv.action_space.shape[0])).astype(np.float32)
        _, _, dones, _ = venv.step(action)
        totals += venv.priced_latency
        for i in np.flatnonzero(dones):
            assert totals[i] == pytest.approx(SHORT["horizon"])
            totals[i] = 0.0
            ended += 1
    assert ended >= 4


def test_rho_converges_to_the_goodput_of_a_fixed_policy() -> None:
    """Played with one fixed allocation, rho tends to that allocation's goodput (reward per second)."""
    venv = VecRateReward(make_batched_vec_env(TASK, 8, {"horizon": 20.0}), rate_decay=0.01)
    venv.seed(3)
    venv.reset()
    k = venv.get_attr("num_users")[0]
    action = np.zeros((8, venv.action_space.shape[0]), dtype=np.float32)
    action[:, :k] = -0.6  # two tokens each, equal shares
    tokens = seconds = 0.0
    for _ in range(600):
        _, _, _, infos = venv.step(action)
        tokens += sum(float(np.sum(info["tokens"])) for info in infos)
        seconds += sum(float(info["latency"]) for info in infos)
    reward_scale = venv.get_attr("config", [0])[0].reward_scale
    assert venv.rate == pytest.approx(reward_scale * tokens / seconds, rel=0.05)


def test_for_evaluation_passes_the_rewards_through() -> None:
    venv = for_evaluation(VecRateReward(VecStochasticRounding(make_batched_vec_env(TASK, 2, SHORT))))
    assert not venv.enabled and not venv.venv.enabled
    for shaped, plain, _ in _play(venv, 10):
        np.testing.assert_array_equal(shaped, plain)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), True, "0.1"])
def test_a_bad_rate_decay_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="rate_decay"):
        VecRateReward(make_batched_vec_env(TASK, 1, SHORT), rate_decay=bad)  # type: ignore[arg-type]
