"""The training reward of a suite task's own metric (agents.wrappers.VecTaskReward): each played episode's rewards add
up to the quantity docs/training.md says, computed here independently from the infos or the evaluation loop."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import run_episode
from agents.vec_env import make_batched_vec_env
from agents.wrappers import (
    TASK_REWARDS,
    VecHorizonTermination,
    VecRateReward,
    VecStochasticRounding,
    VecTaskReward,
    for_evaluation,
)
from multispin_env import suite

DEADLINES = "MultiSpinSuite/Deadlines-v0"
ARRIVALS = "MultiSpinSuite/ArrivalsHeavy-v1"
FAIRNESS = "MultiSpinSuite/Fairness-v0"
# Shorter episodes than the tasks' (same dynamics otherwise), so that a test plays several.
SHORT = {DEADLINES: {"horizon": 15.0}, ARRIVALS: {"horizon": 15.0}, FAIRNESS: {"horizon": 3.0}}


def _vec(env_id: str, kind: str, n: int, settings: dict[str, Any]) -> VecEnv:
    if kind == "batched":
        return make_batched_vec_env(env_id, n, settings)
    return DummyVecEnv([lambda: gym.make(env_id, **settings)] * n)


def _action(venv: VecEnv) -> np.ndarray:
    """Two tokens per user (entry -0.6 of L_max 10) and equal shares, for every sub-env."""
    k = int(venv.get_attr("num_users", [0])[0])
    action = np.zeros((venv.num_envs, venv.action_space.shape[0]), dtype=np.float32)
    action[:, :k] = -0.6
    return action


class ConstantPolicy:
    """The evaluation loop's Policy playing one fixed action."""

    def __init__(self, action: np.ndarray) -> None:
        self.action = action

    def reset(self) -> None:
        pass

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True):
        return self.action, state


def _episodes(venv: VecEnv, steps: int, seed: int = 0) -> list[list[tuple[float, dict[str, Any], float]]]:
    """The ended episodes of ``steps`` steps of :func:`_action`: per episode, per round (reward, info, the wrapper's
    running rate after the round). Under VecNormalize the reward is the wrapper's (``get_original_reward``)."""
    task = venv.venv if isinstance(venv, VecNormalize) else venv
    venv.seed(seed)
    venv.reset()
    action = _action(venv)
    running: list[list[tuple[float, dict[str, Any], float]]] = [[] for _ in range(venv.num_envs)]
    ended = []
    for _ in range(steps):
        _, normalized, dones, infos = venv.step(action)
        assert np.all(np.isfinite(normalized))
        rewards = venv.get_original_reward() if isinstance(venv, VecNormalize) else normalized
        for i in range(venv.num_envs):
            running[i].append((float(rewards[i]), infos[i], task.rate))
            if dones[i]:
                ended.append(running[i])
                running[i] = []
    return ended


VARIANTS = [("batched", False), ("dummy", False), ("batched", True)]


def _wrapped(env_id: str, kind: str, normalize: bool, n: int = 2, **settings: Any) -> VecEnv:
    venv: VecEnv = VecTaskReward(VecHorizonTermination(_vec(env_id, kind, n, SHORT[env_id])), **settings)
    return VecNormalize(venv, norm_obs=False, norm_reward=True) if normalize else venv


def test_every_suite_metric_has_a_reward() -> None:
    assert set(TASK_REWARDS) == set(suite.METRICS)


@pytest.mark.parametrize("env_id", (*suite.TASKS, "MultiSpin-Heterogeneous-v0", "MultiSpin-Homogeneous-v0"))
def test_auto_pays_the_reward_of_the_tasks_metric(env_id: str) -> None:
    metric = suite.task(env_id).metric if env_id in suite.TASK_SPECS else "goodput"
    for venv in (make_batched_vec_env(env_id, 1), DummyVecEnv([lambda: gym.make(env_id)])):
        assert VecTaskReward(venv).metric == metric


@pytest.mark.parametrize("kind", ["batched", "dummy"])
@pytest.mark.parametrize("env_id", ["MultiSpinSuite/IIDStatic-v0", "MultiSpinSuite/EnergyBudget-v0"])
def test_on_goodput_the_rewards_are_unchanged_bit_for_bit(env_id: str, kind: str) -> None:
    """The rate reward where the YAML had it (ppo, ppo_fast, ppo_userset), the env's reward where it had none."""
    settings = {"horizon": 1.0}
    stacks = [
        (VecTaskReward(_vec(env_id, kind, 2, settings)), VecRateReward(_vec(env_id, kind, 2, settings))),
        (VecTaskReward(_vec(env_id, kind, 2, settings), price_goodput=False), _vec(env_id, kind, 2, settings)),
    ]
    rng = np.random.default_rng(1)
    for mine, today in stacks:
        assert mine.metric == "goodput"
        for venv in (mine, today):
            venv.seed(3)
            venv.reset()
        for _ in range(40):
            action = rng.uniform(-1, 1, (2, mine.action_space.shape[0])).astype(np.float32)
            _, got, _, _ = mine.step(action)
            _, expected, _, _ = today.step(action)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("kind", "normalize"), VARIANTS)
def test_deadline_rewards_add_up_to_the_met_requests_minus_the_priced_decided_ones(kind: str, normalize: bool) -> None:
    """Per round m - s (m + x): the rewards plus s times the decided requests add up to the met requests."""
    episodes = _episodes(_wrapped(DEADLINES, kind, normalize), 700)
    assert len(episodes) >= 4
    for rounds in episodes:
        met = sum(int(np.sum(info["deadline_met"])) for _, info, _ in rounds)
        priced = sum(s * float(np.sum(info["deadline_met"]) + np.sum(info["deadline_missed"])) for _, info, s in rounds)
        assert met > 0
        assert sum(r for r, _, _ in rounds) + priced == pytest.approx(met, abs=1e-3)


def test_deadline_rewards_match_the_evaluation_and_price_at_the_policys_share() -> None:
    """One episode against the evaluation loop's count of met requests; over many, the price s tends to the played
    policy's pooled share met / (met + missed), the deadline task's metric (Dinkelbach's price at its optimum)."""
    env = gym.make(DEADLINES, **SHORT[DEADLINES])
    venv = VecTaskReward(DummyVecEnv([lambda: env]), rate_decay=0.002)
    action = _action(venv)
    episodes = _episodes(venv, 2500, seed=7)
    first = episodes[0]
    expected = run_episode(gym.make(DEADLINES, **SHORT[DEADLINES]), ConstantPolicy(action[0]), seed=7)
    priced = sum(s * float(np.sum(info["deadline_met"]) + np.sum(info["deadline_missed"])) for _, info, s in first)
    assert sum(r for r, _, _ in first) + priced == pytest.approx(expected.deadline_met, abs=1e-3)
    met = sum(float(np.sum(info["deadline_met"])) for rounds in episodes for _, info, _ in rounds)
    decided = met + sum(float(np.sum(info["deadline_missed"])) for rounds in episodes for _, info, _ in rounds)
    assert 0.05 < met / decided < 0.95
    assert venv.rate == pytest.approx(met / decided, abs=0.05)


@pytest.mark.parametrize(("kind", "normalize"), VARIANTS)
def test_log_fairness_rewards_add_up_to_the_log_geometric_mean_tokens(kind: str, normalize: bool) -> None:
    episodes = _episodes(_wrapped(FAIRNESS, kind, normalize, fairness="log"), 200)
    assert len(episodes) >= 4
    for rounds in episodes:
        tokens = np.sum([info["tokens"] for _, info, _ in rounds], axis=0)
        assert sum(r for r, _, _ in rounds) == pytest.approx(np.mean(np.log(np.maximum(tokens, 1.0))), rel=1e-5)


def test_log_fairness_rewards_match_the_evaluated_metric() -> None:
    """An episode's rewards add up to log(geometric-mean throughput x episode time), from the evaluation loop."""
    venv = VecTaskReward(DummyVecEnv([lambda: gym.make(FAIRNESS, **SHORT[FAIRNESS])]), fairness="log")
    rounds = _episodes(venv, 60, seed=4)[0]
    result = run_episode(gym.make(FAIRNESS, **SHORT[FAIRNESS]), ConstantPolicy(_action(venv)[0]), seed=4)
    assert len(rounds) == result.rounds
    assert sum(r for r, _, _ in rounds) == pytest.approx(math.log(result.throughput_geomean * result.clock), rel=1e-5)


@pytest.mark.parametrize(("kind", "normalize"), VARIANTS)
def test_linear_fairness_prices_each_users_tokens_at_its_running_throughput(kind: str, normalize: bool) -> None:
    """Played with one fixed allocation, the running throughputs tend to each user's throughput under it (tokens over
    seconds summed from the infos), and an episode then earns 0 on average: (1/K) sum_k tokens_k / x_k - its clock,
    the clock times the first-order expansion of the metric's log at the policy's own throughputs, minus its value
    there."""
    venv = _wrapped(FAIRNESS, kind, normalize, n=8)
    task = venv.venv if isinstance(venv, VecNormalize) else venv
    assert task.fairness == "linear"
    venv.seed(2)
    venv.reset()
    action = _action(venv)
    tokens, seconds = 0.0, 0.0
    returns, started, clocks = np.zeros(8), np.zeros(8, dtype=int), []
    for step in range(400):
        _, normalized, dones, infos = venv.step(action)
        rewards = venv.get_original_reward() if isinstance(venv, VecNormalize) else normalized
        latency = np.array([float(info["latency"]) for info in infos])
        assert np.all(np.isfinite(normalized)) and np.all(rewards >= -latency - 1e-6)  # tokens earn >= 0, less T
        returns += rewards
        if step >= 100:  # past the first episodes, once the estimate has settled
            tokens = tokens + np.sum([info["tokens"] for info in infos], axis=0)
            seconds += sum(float(info["latency"]) for info in infos)
        for i in np.flatnonzero(dones):
            if started[i] >= 100:
                clocks.append((returns[i], float(infos[i]["clock"])))
            returns[i], started[i] = 0.0, step + 1
    np.testing.assert_allclose(task.user_rates, tokens / seconds, rtol=0.05)
    assert len(clocks) >= 8
    earned, clock = np.mean(clocks, axis=0)
    assert abs(earned) < 0.03 * clock  # episodes of 3 s vary by ~5% each


def _time_in_system(rounds: list[tuple[float, dict[str, Any], float]]) -> tuple[float, list[float]]:
    """Request by request, first come first served per user: (sum over the episode's requests of the time from the
    middle of the round it arrived in to its completion or the episode's end, s; for each completed request its
    completion time minus that, s, which is its arrival's offset from the round's middle).

    A round's kept arrivals are the requests in the system after it minus before it plus its completions."""
    k = len(rounds[0][1]["tokens"])
    queues: list[deque[float]] = [deque() for _ in range(k)]  # middles of the arrival rounds, oldest first
    in_system = np.zeros(k)
    total, offsets = 0.0, []
    for _, info, _ in rounds:
        end, latency = float(info["clock"]), float(info["latency"])
        after = np.asarray(info["active"], dtype=float) + np.asarray(info["queued"], dtype=float)
        completed = np.asarray(info["completed"], dtype=bool)
        arrivals = after - in_system + completed
        for user in range(k):
            if completed[user]:
                middle = queues[user].popleft()
                total += end - middle
                offsets.append(float(info["completion_time"][user]) - (end - middle))
            for _ in range(round(float(arrivals[user]))):
                queues[user].append(end - latency / 2)
        in_system = after
    clock = float(rounds[-1][1]["clock"])
    total += sum(clock - middle for queue in queues for middle in queue)
    return total, offsets


@pytest.mark.parametrize(("kind", "normalize"), VARIANTS)
def test_completion_rewards_add_up_to_minus_the_requests_time_in_the_system(kind: str, normalize: bool) -> None:
    """-(h + a / 2) T per round adds up to minus the time the episode's requests spend in the system, each arrival
    placed in the middle of its round; the completion times the env reports say where in its round each completed
    request really arrived, and those offsets are within half a round and average to 0 (the estimate is unbiased)."""
    episodes = _episodes(_wrapped(ARRIVALS, kind, normalize), 500)
    assert len(episodes) >= 4
    offsets: list[float] = []
    for rounds in episodes:
        total, mine = _time_in_system(rounds)
        assert total > 0
        assert sum(r for r, _, _ in rounds) == pytest.approx(-total, rel=1e-5)
        offsets += mine
    offsets_array = np.array(offsets)
    longest = max(float(info["latency"]) for rounds in episodes for _, info, _ in rounds)
    assert len(offsets) >= 100 and np.all(np.abs(offsets_array) <= longest / 2 + 1e-9)
    assert abs(offsets_array.mean()) < 4 * offsets_array.std() / math.sqrt(len(offsets))


def test_completion_rewards_cover_every_completion_time_of_the_evaluation() -> None:
    """The completed requests of an episode are those the evaluation loop reports, with the same completion
    times (the bookkeeping above matches the env's requests one to one)."""
    venv = VecTaskReward(DummyVecEnv([lambda: gym.make(ARRIVALS, **SHORT[ARRIVALS])]))
    rounds = _episodes(venv, 400, seed=2)[0]
    result = run_episode(gym.make(ARRIVALS, **SHORT[ARRIVALS]), ConstantPolicy(_action(venv)[0]), seed=2)
    reported = [float(t) for _, info, _ in rounds for t in np.asarray(info["completion_time"])[info["completed"]]]
    assert result.completion_times is not None and len(reported) == len(result.completion_times) > 10
    np.testing.assert_allclose(sorted(reported), sorted(result.completion_times))
    total, offsets = _time_in_system(rounds)
    # Time in the system >= the completed requests' completion times, up to half a round each.
    assert total >= sum(reported) - sum(abs(o) for o in offsets) - 1e-9


def test_for_evaluation_passes_the_task_rewards_through() -> None:
    plain = make_batched_vec_env(DEADLINES, 2, SHORT[DEADLINES])
    venv = for_evaluation(VecTaskReward(VecStochasticRounding(make_batched_vec_env(DEADLINES, 2, SHORT[DEADLINES]))))
    assert not venv.enabled
    for env in (venv, plain):
        env.seed(0)
        env.reset()
    for _ in range(30):
        _, got, _, _ = venv.step(_action(venv))
        _, expected, _, _ = plain.step(_action(plain))
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("bad", ["goodputt", "", None, 3, "AUTO"])
def test_an_unknown_metric_is_a_one_line_value_error_naming_it_and_the_choices(bad: object) -> None:
    with pytest.raises(ValueError) as caught:
        VecTaskReward(make_batched_vec_env(DEADLINES, 1), metric=bad)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message and repr(bad) in message and all(name in message for name in TASK_REWARDS)


@pytest.mark.parametrize(
    ("env_id", "metric", "needs"),
    [
        ("MultiSpinSuite/IIDStatic-v0", "completion_mean", "arrival_rate"),
        ("MultiSpinSuite/IIDStatic-v0", "deadline_share", "arrival_rate"),
        (ARRIVALS, "deadline_share", "request_deadline_per_token"),
    ],
)
def test_a_metric_the_env_cannot_report_is_a_value_error(env_id: str, metric: str, needs: str) -> None:
    with pytest.raises(ValueError, match=needs):
        VecTaskReward(make_batched_vec_env(env_id, 1), metric=metric)


def test_an_explicit_metric_overrides_the_tasks() -> None:
    venv = VecTaskReward(make_batched_vec_env("MultiSpinSuite/IIDStatic-v0", 1), metric="throughput_geomean")
    assert venv.metric == "throughput_geomean"
    venv.reset()
    _, rewards, _, infos = venv.step(_action(venv))
    # After one round the running throughputs are its own tokens over its latency: each user's tokens earn the
    # latency, which the round's price takes back.
    assert np.all(infos[0]["tokens"] > 0)
    assert abs(rewards[0]) < 1e-6 * infos[0]["latency"]


def test_a_bad_price_goodput_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="price_goodput"):
        VecTaskReward(make_batched_vec_env(DEADLINES, 1), price_goodput="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["geometric", None, 1])
def test_a_bad_fairness_reward_is_a_value_error_naming_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match="fairness must be one of \\['log', 'linear'\\]"):
        VecTaskReward(make_batched_vec_env(FAIRNESS, 1), fairness=bad)  # type: ignore[arg-type]
