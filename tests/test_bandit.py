"""bandit-ucb (baselines/bandit.py, docs/model.md section 7.3)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import run_episode
from baselines.bandit import BanditPolicy, UCBLengths
from baselines.information import static_params
from baselines.policies import ANALYTIC_POLICIES, make_policy
from multispin_env.model import expected_goodput, optimal_bandwidth

HET = "MultiSpin-Heterogeneous-v0"


@pytest.mark.parametrize("population_seed", [0, 1, 2])
def test_ucb_converges_to_the_best_fixed_length(population_seed: int) -> None:
    """One user, no fading, i.i.d. acceptance: a stationary bandit whose arm L has the expected goodput of
    eq. (5) (brute force over L); UCB must play the best arm most and lose little to it."""
    env = gym.make(HET, num_users=1, fading=False, horizon=100.0, population_seed=population_seed)
    params = static_params(env)
    goodput = np.array([expected_goodput(params, [length]) for length in range(params.max_draft + 1)])
    policy = make_policy("bandit-ucb", env)
    episode = run_episode(env, policy, seed=0)
    counts = policy.episodes[0].learner.counts[0, 0]  # user 0, usual channel context
    assert goodput[np.argmax(counts)] >= 0.99 * goodput.max(), (counts, goodput)
    assert counts.max() > 0.6 * counts.sum()
    assert episode.goodput > 0.97 * goodput.max()


def test_ucb_index_picks_untried_neighbours_then_the_best_mean() -> None:
    learner = UCBLengths(1, 4, 0.2, np.random.default_rng(0), min_pulls=1)
    context = np.zeros(1, np.int64)
    assert learner.choose(context)[0] in (0, 1)  # the start arm L = 0 or its neighbour, both untried
    learner.update(np.array([0]), context, np.array([1.0]))
    learner.update(np.array([1]), context, np.array([2.0]))
    assert learner.choose(context)[0] == 2  # arm 1 leads: its untried neighbour 2
    learner.update(np.array([2]), context, np.array([0.5]))
    assert learner.choose(context)[0] == 1  # neighbours tried: UCB among 0, 1, 2 -> the clearly best mean


def test_the_bandit_never_sees_model_parameters() -> None:
    """Two systems that differ in what the observation does not show (population's acceptance, verification,
    deadline, Doppler, acceptance process, CSI noise): fed the same observations, the bandit acts identically."""
    common = {"num_users": 4}
    env_a = gym.make(HET, **common)
    env_b = gym.make(
        HET,
        **common,
        population_seed=5,
        verify_knee_tokens=64.0,
        upload_deadline=0.05,
        doppler_hz=300.0,
        acceptance_process="markov",
        csi_noise_std=0.5,
    )
    policy_a, policy_b = BanditPolicy(env_a), BanditPolicy(env_b)
    obs, _ = env_a.reset(seed=3)
    start, drafted = True, 0
    for _ in range(60):
        action_a, _ = policy_a.predict(obs, episode_start=np.array([start]))
        action_b, _ = policy_b.predict(obs, episode_start=np.array([start]))
        np.testing.assert_array_equal(action_a, action_b)
        start = False
        obs, *_ = env_a.step(action_a)
        drafted += int(env_a.unwrapped.decode_action(action_a)[0].sum())
    assert drafted > 0  # it explored, not only server-side decoding


def test_shares_are_the_equal_finish_shares_on_the_observed_channel() -> None:
    env = gym.make(HET, csi_delay=1)
    policy = make_policy("bandit-ucb", env)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        action, _ = policy.predict(obs)
        unwrapped = env.unwrapped
        lengths, shares = unwrapped.decode_action(action)
        expected, _ = optimal_bandwidth(
            unwrapped.draft_time_from_observation(obs), unwrapped.upload_time_from_observation(obs), lengths
        )
        np.testing.assert_allclose(shares, expected, atol=1e-6)
        obs, *_ = env.step(action)


def test_one_learner_per_sub_env_reset_with_its_episode() -> None:
    envs = gym.make_vec(HET, num_envs=2, horizon=0.6)
    policy = make_policy("bandit-ucb", envs)
    obs, _ = envs.reset(seed=1)
    starts = np.ones(2, bool)
    rounds = np.zeros(2, int)  # rounds credited to each sub-env's learner
    for _ in range(25):
        actions, _ = policy.predict(obs, episode_start=starts)
        assert actions.shape == envs.action_space.shape
        for i in range(2):
            assert policy.episodes[i].learner.rounds == rounds[i]
        obs, _, terminated, truncated, info = envs.step(actions)
        starts = terminated | truncated
        # a played round is credited; the episode's end (episode_start) and the reset step start over
        rounds = np.where(info["_latency"] & ~starts, rounds + 1, 0)
    with pytest.raises(ValueError, match="shape"):
        policy.predict(obs[0])


def test_seeded_episodes_do_not_depend_on_the_episodes_before() -> None:
    env = gym.make(HET)
    policy = BanditPolicy(env, seed=3)
    first = run_episode(env, policy, seed=11)
    run_episode(env, policy, seed=12)
    assert run_episode(env, policy, seed=11) == first


def test_registered_and_refused_on_the_homogeneous_id() -> None:
    assert "bandit-ucb" in ANALYTIC_POLICIES
    with pytest.raises(ValueError, match="per-user draft lengths"):
        make_policy("bandit-ucb", gym.make("MultiSpin-Homogeneous-v0"))
    with pytest.raises(ValueError, match="exploration"):
        BanditPolicy(gym.make(HET), exploration=-1.0)
