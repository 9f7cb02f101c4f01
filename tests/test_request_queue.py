"""The request queue limit (docs/model.md section 5.8, eq. (9')): a user holds at most max_queued_requests + 1
requests, later arrivals are blocked and counted, the kept ones are the earliest of the round's Poisson points,
and an overloaded system runs in bounded memory."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.requests import _earliest_points, queue_slots

HET = "MultiSpin-Heterogeneous-v0"


def _episode(limit: int, rate: float, num_users: int = 6, seed: int = 0, horizon: float = 5.0):
    """Step one episode with arrivals; yield (info before, info after, latency) of every round."""
    env = gym.make(
        HET,
        num_users=num_users,
        arrival_rate=rate,
        max_queued_requests=limit,
        horizon=horizon,
        mean_request_tokens=20.0,
    )
    _, before = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    truncated = False
    while not truncated:
        _, _, _, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        yield before, info, info["latency"]
        before = info
    queue = env.unwrapped.core.requests.queue
    assert queue.shape[2] <= queue_slots(limit)  # the ring never outgrew the limit


@pytest.mark.parametrize("limit", [0, 3, 1000])
def test_queues_stop_at_the_limit_and_every_arrival_is_kept_or_blocked(limit):
    """Kept arrivals (the change in requests held, plus the completed ones) and blocked ones add up to
    Poisson(lambda T) per round: over an episode their sum matches lambda sum(T) within 4 standard deviations."""
    rate = 1e5
    arrivals = mean = 0.0
    for before, after, latency in _episode(limit, rate):
        assert after["queued"].max() <= limit and after["blocked"].dtype == np.int64
        held_before = before["active"].astype(np.int64) + before["queued"]
        held_after = after["active"].astype(np.int64) + after["queued"]
        kept = held_after - held_before + after["completed"]
        assert np.all(kept >= 0) and np.all(held_before + kept <= queue_slots(limit))
        arrivals += float((kept + after["blocked"]).sum())
        mean += rate * latency * len(kept)
    assert abs(arrivals - mean) < 4 * np.sqrt(mean), (arrivals, mean)
    assert after["blocked"].sum() > 0  # overloaded: the queues are full


def test_a_light_load_never_blocks():
    assert all(not after["blocked"].any() for _, after, _ in _episode(1000, 0.5, horizon=30.0))


def test_limit_zero_still_serves_requests():
    served = sum(int(after["completed"].sum()) for _, after, _ in _episode(0, 2.0, horizon=20.0))
    assert served > 10


@pytest.mark.parametrize("points, kept", [(50, 5), (3, 2), (1000, 30)])
def test_kept_arrivals_are_the_earliest_points(points, kept):
    """The j-th of the transformed uniforms is the j-th smallest of ``points`` iid uniforms: Beta(j, M + 1 - j)
    (KS test), and runs that are not cut short are left as drawn."""
    rng = np.random.default_rng(points)
    runs = 4000
    uniforms = rng.random(runs * kept)
    out = _earliest_points(uniforms, np.full(runs, kept), np.full(runs, points)).reshape(runs, kept)
    assert np.all(np.diff(out, axis=1) >= 0) and np.all((out >= 0) & (out < 1))
    for j in range(kept):
        p_value = stats.kstest(out[:, j], stats.beta(j + 1, points - j).cdf).pvalue
        assert p_value > 1e-4, (j, p_value)
    whole = rng.random(10)
    np.testing.assert_array_equal(_earliest_points(whole, np.array([4, 6]), np.array([4, 6])), whole)


def test_overloaded_episodes_run_in_bounded_memory():
    """arrival_rate at its maximum with K = 64: the ring holds at most limit + 1 arrival times per user (an
    unbounded queue grew to millions per user and ran out of memory)."""
    rounds = sum(1 for _ in _episode(1000, 1e6, num_users=64, horizon=3.0))
    assert rounds > 2


@pytest.mark.parametrize("value", [-1, 1.5, True, 10**6 + 1, "5", None])
def test_bad_limits_are_value_errors_naming_the_setting(value):
    with pytest.raises(ValueError, match="max_queued_requests") as caught:
        gym.make(HET, arrival_rate=1.0, max_queued_requests=value)
    assert "\n" not in str(caught.value)
