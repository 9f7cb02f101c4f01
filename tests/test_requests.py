"""Request arrivals and finishing requests (docs/model.md section 5.8): Little's law, throughput, lengths,
idle users, the observation and info with and without arrivals."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.envs import MultiSpinEnv
from multispin_env.layout import Q_ARRIVAL, Q_HEAD
from multispin_env.requests import Requests, request_lengths
from multispin_env.vector_env import MultiSpinVectorEnv

HET = "MultiSpin-Heterogeneous-v0"


def _arrived_since(requests: Requests, since: np.ndarray) -> np.ndarray:
    """Sum over every user of (the arrival times >= ``since`` (n,) of its current and queued requests) -
    ``since``, and their count: the requests that arrived during the round just played."""
    capacity = requests.queue.shape[2]
    slots = np.arange(capacity)
    offset = (slots - requests.state[Q_HEAD][..., None]) % capacity
    queued = offset < requests.waiting[..., None]
    times = np.where(queued, requests.queue, -np.inf)
    current = np.where(requests.active, requests.state[Q_ARRIVAL], -np.inf)
    everyone = np.concatenate([times, current[..., None]], axis=2)
    new = everyone >= since[:, None, None]
    return np.where(new, everyone, 0.0).sum(axis=(1, 2)), new.sum(axis=(1, 2))


def _run_arrivals(rate: float, rounds: int, num_envs: int = 16, seed: int = 0, **settings):
    """A vector env without resets under a fixed allocation (L = 3 for everyone, equal shares), with Poisson
    arrivals of ``rate`` per user and second; returns the totals Little's law needs."""
    env = MultiSpinVectorEnv(
        num_envs=num_envs,
        autoreset_mode="DISABLED",
        horizon=1e9,
        arrival_rate=rate,
        mean_request_tokens=20.0,
        fading=False,
        **settings,
    )
    env.reset(seed=seed)
    k = env.num_users
    action = np.tile(env.encode_action(np.full(k, 3), np.full(k, 1.0 / k)), (num_envs, 1))
    requests = env.core.requests
    area = np.zeros(num_envs)  # integral of the number of requests in the system over time, per system
    completions, completion_time = 0, 0.0
    for _ in range(rounds):
        in_system = requests.in_system().sum(axis=1)  # at the round's start
        _, _, _, _, info = env.step(action)
        latency, clock = info["latency"], info["clock"]
        # in the system for the whole round: those there at its start; the arrivals since they arrived
        arrived_sum, arrived_count = _arrived_since(requests, clock - latency)
        area += in_system * latency + (arrived_count * clock - arrived_sum)
        completions += int(info["completed"].sum())
        completion_time += float(info["completion_time"].sum())
    return env, area, completions, completion_time


def test_littles_law_and_throughput_equals_the_arrival_rate() -> None:
    """Stable system (utilisation ~0.5): completed requests per second per user equal the arrival rate within
    statistical error, and the time-average number in the system equals throughput x mean completion time."""
    rate, num_envs = 0.4, 16
    env, area, completions, completion_time = _run_arrivals(rate, rounds=1500, num_envs=num_envs)
    k, elapsed = env.num_users, env.core.clock.copy()
    users_seconds = float(k * elapsed.sum())
    throughput = completions / users_seconds
    # Arrivals are Poisson(rate * time): the count's standard error, plus the requests still in the system
    expected = rate * users_seconds
    left = float(env.core.requests.in_system().sum())
    assert abs(completions + left - expected) < 4 * np.sqrt(expected), (completions, left, expected)
    assert abs(throughput - rate) < 4 * np.sqrt(expected) / users_seconds + left / users_seconds
    mean_in_system = area.sum() / elapsed.sum()  # per system, time-averaged
    mean_completion = completion_time / completions
    little = throughput * k * mean_completion
    assert abs(mean_in_system - little) < 0.05 * little, (mean_in_system, little)
    assert 0.5 < mean_in_system / k < 2.0  # a loaded system, not an empty one


def test_request_lengths_have_the_configured_mean() -> None:
    rng = np.random.default_rng(3)
    lengths = request_lengths("geometric", 25.0, 40000, rng)
    assert lengths.min() >= 1 and abs(lengths.mean() - 25.0) < 5 * lengths.std() / np.sqrt(lengths.size)
    np.testing.assert_array_equal(request_lengths("fixed", 7.0, 3, rng), [7.0, 7.0, 7.0])
    with pytest.raises(ValueError, match="request_length"):
        request_lengths("uniform", 7.0, 3, rng)


def test_tokens_count_only_up_to_the_end_of_each_request() -> None:
    """Fixed lengths m: every user's counted tokens are m per completed request plus the current one's progress
    (no surplus counted), and an idle user drafts nothing, gets no band and no token."""
    m = 9.0
    env = MultiSpinEnv(arrival_rate=1.5, mean_request_tokens=m, request_length="fixed", horizon=1e9)
    env.reset(seed=4)
    k = env.num_users
    counted = np.zeros(k)
    done = np.zeros(k)
    action = env.encode_action(np.full(k, 5), np.full(k, 1.0 / k))
    active = np.zeros(k, dtype=bool)
    for _ in range(400):
        _, reward, _, _, info = env.step(action)
        idle = ~active
        assert np.all(info["tokens"][idle] == 0) and np.all(info["draft_lengths"][idle] == 0)
        assert np.all(info["bandwidth"][idle] == 0.0)
        if active.any():
            np.testing.assert_allclose(info["bandwidth"].sum(), 1.0)
        np.testing.assert_allclose(reward, 0.1 * info["tokens"].sum())
        counted += info["tokens"]
        done += info["completed"]
        active = info["active"]
    progress = np.where(active, m - info["remaining"], 0.0)
    np.testing.assert_array_equal(counted, done * m + progress)
    assert done.min() > 5


def test_observation_space_changes_only_with_arrivals() -> None:
    plain = gym.make(HET)
    k = plain.unwrapped.num_users
    assert plain.observation_space.shape == (5 * k + 1,)
    env = gym.make(HET, arrival_rate=2.0, mean_request_tokens=10.0)
    assert env.observation_space.shape == (7 * k + 1,)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert not info["active"].any() and np.all(env.unwrapped.observation_field(obs, "active") == 0.0)
    for _ in range(30):
        obs, _, _, _, info = env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.unwrapped.observation_field(obs, "active"), info["active"])
    np.testing.assert_allclose(
        env.unwrapped.observation_field(obs, "remaining"), np.minimum(info["remaining"] / 10.0, 10.0), rtol=1e-6
    )


def test_single_and_vector_env_trajectories_are_identical_with_arrivals() -> None:
    settings = dict(arrival_rate=2.0, mean_request_tokens=12.0, acceptance_process="tasks", horizon=1e9)
    single = MultiSpinEnv(**settings)
    vector = MultiSpinVectorEnv(num_envs=1, **settings)
    obs_single, _ = single.reset(seed=9)
    obs_vector, _ = vector.reset(seed=9)
    np.testing.assert_array_equal(obs_single, obs_vector[0])
    actions = np.random.default_rng(2).uniform(-1, 1, (200, single.action_space.shape[0])).astype(np.float32)
    for action in actions:
        obs_single, reward_single, _, _, info_single = single.step(action)
        obs_vector, reward_vector, _, _, info_vector = vector.step(action[None])
        np.testing.assert_array_equal(obs_single, obs_vector[0])
        assert reward_single == reward_vector[0]
        for key in ("completed", "completion_time", "active", "queued", "tokens"):
            np.testing.assert_array_equal(info_single[key], info_vector[key][0])


@pytest.mark.parametrize(
    "key, value",
    [("arrival_rate", 0.0), ("arrival_rate", -1.0), ("arrival_rate", "fast"), ("request_length", "uniform")],
)
def test_invalid_arrival_settings_name_the_setting(key, value) -> None:
    with pytest.raises(ValueError, match=key):
        gym.make(HET, **{key: value})


@pytest.mark.parametrize("name", ["het-opt-oracle", "het-opt-static", "equal-fixed"])
def test_analytic_policies_solve_on_the_active_users(name: str) -> None:
    """Idle users get L_k = 0 and no band; the active users get the solver's allocation of the system of the
    active users alone (the round leaves the idle users out)."""
    from baselines.information import round_params_for
    from baselines.policies import _POLICY_SOLVER, make_policy
    from baselines.solvers import SOLVERS

    env = gym.make(HET, arrival_rate=1.0, mean_request_tokens=10.0, horizon=1e9)
    unwrapped = env.unwrapped
    obs, _ = env.reset(seed=5)
    policy = make_policy(name, env)
    solver_name, level = _POLICY_SOLVER[name]
    checked = 0
    for _ in range(80):
        action, _ = policy.predict(obs)
        active = unwrapped.core.requests.active[0].copy()
        lengths, shares = unwrapped.decode_action(action)
        assert np.all(lengths[~active] == 0) and np.all(shares[~active] == 0.0)
        if 0 < active.sum() < active.size:
            params = round_params_for(env, level, obs)
            sub = dataclasses.replace(
                params,
                acceptance=params.acceptance[active],
                survival=params.survival[active],
                draft_time=params.draft_time[active],
                upload_time=params.upload_time[active],
            )
            expected = SOLVERS[solver_name].solve(sub)
            np.testing.assert_array_equal(lengths[active], expected.draft_lengths)
            np.testing.assert_allclose(shares[active], expected.bandwidth / expected.bandwidth.sum(), atol=1e-6)
            checked += 1
        obs, _, _, _, _ = env.step(action)
    assert checked > 10


def test_benchmark_metrics_with_arrivals() -> None:
    """Completion times are those the info reports; Jain's index is 1 for equal rates and 1/K for one user."""
    from agents.evaluation import jain_fairness, run_episode
    from baselines.policies import make_policy

    assert jain_fairness(np.array([2.0, 2.0, 2.0])) == pytest.approx(1.0)
    assert jain_fairness(np.array([3.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)
    env = gym.make(HET, arrival_rate=1.0, mean_request_tokens=15.0, horizon=5.0)
    episode = run_episode(env, make_policy("equal-fixed", env), seed=3)
    policy, times = make_policy("equal-fixed", env), []
    obs, _ = env.reset(seed=3)  # replay: the same seed and a deterministic policy give the same episode
    truncated = False
    user_tokens = np.zeros(env.unwrapped.num_users)
    while not truncated:
        obs, _, _, truncated, info = env.step(policy.predict(obs)[0])
        times += info["completion_time"][info["completed"]].tolist()
        user_tokens += info["tokens"]
    assert episode.completion_times == times and len(times) > 5
    assert episode.fairness == pytest.approx(jain_fairness(user_tokens / info["clock"]))
    plain = gym.make(HET, horizon=1.0)
    assert run_episode(plain, make_policy("equal-fixed", plain), seed=0).completion_times is None
