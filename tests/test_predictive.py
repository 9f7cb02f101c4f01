"""het-opt-predictive (baselines/predictive.py, docs/model.md section 7.2)."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import multispin_env  # noqa: F401  (registers the ids)
from baselines.information import adaptive_params
from baselines.policies import ANALYTIC_POLICIES, make_policy
from baselines.predictive import PredictivePolicy, sample_fading_power
from baselines.solvers import solve_heterogeneous
from multispin_env.channel import JakesFading, rayleigh_gains
from multispin_env.model import allocation_outcome, expected_goodput, round_latency

HET = "MultiSpin-Heterogeneous-v0"


def test_prediction_is_the_conditional_law_of_the_gauss_markov_channel() -> None:
    """eq. (5.2b) as the policy uses it (the fading model's predict on |h_hat|) against simulation: h_lag ~
    CN(0, 1), h = r h_lag + sqrt(1 - r^2) w, h_hat = h_lag + CN(0, s^2); the draws of |h|^2 given |h_hat| follow
    the simulated conditional law (KS test in a thin bin of |h_hat|)."""
    rng = np.random.default_rng(0)
    model, intervals = JakesFading(10.0), np.array([0.004, 0.006])
    r, s, n = float(np.prod(model.correlation(intervals))), 0.4, 2_000_000
    lagged = rayleigh_gains(rng, n)
    true = r * lagged + np.sqrt(1 - r * r) * rayleigh_gains(rng, n)
    estimate = lagged + s * rayleigh_gains(rng, n)
    mean, variance = model.predict(np.abs(estimate), intervals, s)
    # Linear MMSE: E[h | h_hat] = r h_hat / (1 + s^2), error variance 1 - r^2 / (1 + s^2).
    assert variance[0] == pytest.approx(1 - r * r / (1 + s * s))
    error = true - r * estimate / (1 + s * s)
    assert np.mean(np.abs(error) ** 2) == pytest.approx(variance[0], rel=0.01)
    np.testing.assert_allclose(np.abs(mean), r * np.abs(estimate) / (1 + s * s))
    chosen = np.abs(np.abs(estimate) - 1.2) < 0.01
    simulated = np.abs(true[chosen]) ** 2
    mu, var = model.predict(np.array([1.2]), intervals, s)
    drawn = sample_fading_power(np.abs(mu), var[0], rng.standard_normal((2, 20_000, 1)))[:, 0]
    assert stats.ks_2samp(simulated, drawn).pvalue > 0.01
    wrong = sample_fading_power(np.abs(mu) * 0.8, var[0], rng.standard_normal((2, 20_000, 1)))[:, 0]
    assert stats.ks_2samp(simulated, wrong).pvalue < 1e-6  # the test can tell a wrong mean


def test_allocation_outcome_is_expected_goodputs_terms_per_channel_draw() -> None:
    env = gym.make(HET, csi_delay=1, upload_deadline=0.05)
    obs, _ = env.reset(seed=1)
    params = adaptive_params(env, obs)
    plan = solve_heterogeneous(params)
    draws = params.upload_time * np.array([[0.5], [1.0], [30.0]])  # the last one misses the deadline
    tokens, latency = allocation_outcome(params, plan.draft_lengths[None], plan.bandwidth[None], draws[:, None, :])
    for m, upload in enumerate(draws):
        one = dataclasses.replace(params, upload_time=upload)
        assert latency[m, 0] == pytest.approx(round_latency(one, plan.draft_lengths, plan.bandwidth))
        assert tokens[m, 0] / latency[m, 0] == pytest.approx(expected_goodput(one, plan.draft_lengths, plan.bandwidth))
    assert latency[2, 0] >= 0.05
    with pytest.raises(ValueError, match="upload_time"):
        allocation_outcome(params, plan.draft_lengths, plan.bandwidth, -draws)


def _actions(env: gym.Env, policy, seed: int, rounds: int) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    policy.reset()
    out, start = [], True
    for _ in range(rounds):
        action, _ = policy.predict(obs, episode_start=np.array([start]))
        start = False
        out.append(action)
        obs, *_ = env.step(action)
    return out


def test_perfect_csi_plays_het_opt_adaptive() -> None:
    env = gym.make(HET)  # fading, no CSI delay, no noise: the observed channel is the round's
    predictive = _actions(env, make_policy("het-opt-predictive", env), 3, 30)
    adaptive = _actions(env, make_policy("het-opt-adaptive", env), 3, 30)
    np.testing.assert_array_equal(np.array(predictive), np.array(adaptive))


def test_without_fading_it_plans_with_the_true_channel_not_the_noisy_estimate() -> None:
    env = gym.make(HET, fading=False, csi_noise_std=0.5)
    obs, _ = env.reset(seed=2)
    policy = make_policy("het-opt-predictive", env)
    policy.predict(obs)
    exact = dataclasses.replace(adaptive_params(env, obs), upload_time=env.unwrapped.core.mean_upload_time[0])
    np.testing.assert_array_equal(policy.last_allocation.draft_lengths, solve_heterogeneous(exact).draft_lengths)
    assert not np.allclose(adaptive_params(env, obs).upload_time, exact.upload_time)  # the estimate is off


def test_latency_history_is_read_from_the_observation() -> None:
    env = gym.make(HET, csi_delay=2)
    policy = PredictivePolicy(env)
    obs, _ = env.reset(seed=4)
    latencies = []
    for _ in range(6):
        action, _ = policy.predict(obs)
        obs, _, _, _, info = env.step(action)
        latencies.append(info["latency"])
    policy.predict(obs)
    np.testing.assert_allclose(policy._latencies[0], latencies[-2:], atol=1e-5)


def test_seeded_and_independent_of_the_episodes_before() -> None:
    env = gym.make(HET, csi_delay=1, csi_noise_std=0.2)
    first = _actions(env, PredictivePolicy(env, seed=7), 11, 12)
    policy = PredictivePolicy(env, seed=7)
    _actions(env, policy, 5, 12)
    np.testing.assert_array_equal(np.array(_actions(env, policy, 11, 12)), np.array(first))
    other = _actions(env, PredictivePolicy(env, seed=8), 11, 12)
    assert not np.array_equal(np.array(other), np.array(first))  # the draws depend on the seed


def test_acts_on_a_vector_env_with_a_history_per_sub_env() -> None:
    envs = gym.make_vec(HET, num_envs=2, csi_delay=1, horizon=0.5)
    policy = make_policy("het-opt-predictive", envs)
    obs, _ = envs.reset(seed=0)
    starts, checked, resets = np.ones(2, bool), 0, 0
    latency, played = np.zeros(2), np.zeros(2, bool)
    for _ in range(14):  # past the first episode ends: NEXT_STEP autoreset restarts the history
        actions, _ = policy.predict(obs, episode_start=starts)
        assert actions.shape == envs.action_space.shape
        for i in range(2):  # the history of sub-env i holds its own last round's latency
            if played[i] and not starts[i]:
                assert policy._latencies[i][-1] == pytest.approx(latency[i], abs=1e-5)
                checked += 1
        resets += sum(not history for history in policy._latencies)
        obs, _, terminated, truncated, info = envs.step(actions)
        starts = terminated | truncated
        latency, played = info["latency"], info["_latency"]
    assert checked > 10 and resets > 2
    with pytest.raises(ValueError, match="shape"):
        policy.predict(obs[0])


def test_registered_and_refused_on_the_homogeneous_id() -> None:
    assert "het-opt-predictive" in ANALYTIC_POLICIES
    with pytest.raises(ValueError, match="per-user draft lengths"):
        make_policy("het-opt-predictive", gym.make("MultiSpin-Homogeneous-v0"))


@pytest.mark.slow
def test_beats_het_opt_adaptive_with_stale_csi() -> None:
    """The point of the policy: paired on seeds, it beats planning with the stale estimate as if it were current."""
    from agents.evaluation import evaluate

    env = gym.make("MultiSpinSuite/StaleCSI1-v0")
    seeds = [1000, 1001, 1002, 1003]
    predictive = evaluate(env, make_policy("het-opt-predictive", env), seeds).goodputs
    adaptive = evaluate(env, make_policy("het-opt-adaptive", env), seeds).goodputs
    assert np.mean(predictive - adaptive) > 3.0, (predictive, adaptive)
