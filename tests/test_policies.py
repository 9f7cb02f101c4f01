"""Analytic policies acting through env.step (docs/model.md section 7)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from baselines.information import adaptive_params, oracle_params, static_params
from baselines.policies import ANALYTIC_POLICIES, INFORMATION_LEVELS, make_policy, policies_for
from baselines.solvers import equal_bandwidth_tuned, solve_heterogeneous, solve_homogeneous

HET = "MultiSpin-Heterogeneous-v0"
HOM = "MultiSpin-Homogeneous-v0"


def run_episode(env: gym.Env, policy, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-round total tokens and latencies of one episode."""
    obs, _ = env.reset(seed=seed)
    policy.reset()
    tokens, latency = [], []
    done = False
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        tokens.append(info["tokens"].sum())
        latency.append(info["latency"])
        done = terminated or truncated
    return np.array(tokens, dtype=float), np.array(latency)


@pytest.mark.parametrize("env_id", [HET, HOM])
def test_every_valid_policy_acts_with_valid_actions(env_id: str) -> None:
    env = gym.make(env_id, acceptance_process="markov", csi_delay=1)
    names = policies_for(env)
    assert set(names) <= set(ANALYTIC_POLICIES)
    assert any(n.startswith("hom-opt") for n in names)
    assert all(n.startswith("het-opt") is False for n in names) == (env_id == HOM)
    for name in names:
        policy = make_policy(name, env)
        obs, _ = env.reset(seed=3)
        policy.reset()
        for _ in range(5):
            action, state = policy.predict(obs)
            assert state is None
            assert env.action_space.contains(action), name
            lengths, shares = env.unwrapped.decode_action(action)
            np.testing.assert_allclose(lengths, policy.last_allocation.draft_lengths)
            np.testing.assert_allclose(shares, policy.last_allocation.bandwidth, atol=1e-6)
            obs, *_ = env.step(action)


def test_heterogeneous_policies_are_refused_on_the_homogeneous_id() -> None:
    env = gym.make(HOM)
    with pytest.raises(ValueError, match=r"per-user draft lengths; MultiSpin-Homogeneous-v0 has one common length$"):
        make_policy("het-opt-oracle", env)
    with pytest.raises(ValueError, match="unknown analytic policy"):
        make_policy("greedy", env)


def test_information_levels_read_what_they_should() -> None:
    env = gym.make(HET, acceptance_process="markov", csi_delay=2)
    obs, _ = env.reset(seed=5)
    unwrapped = env.unwrapped
    for level, params in (
        ("static", static_params(unwrapped)),
        ("adaptive", adaptive_params(unwrapped, obs)),
        ("oracle", oracle_params(unwrapped)),
    ):
        policy = make_policy(f"het-opt-{level}", env)
        policy.predict(obs)
        expected = solve_heterogeneous(params)
        np.testing.assert_array_equal(policy.last_allocation.draft_lengths, expected.draft_lengths)
        assert policy.last_allocation.goodput == pytest.approx(expected.goodput)


@pytest.mark.parametrize(
    ("name", "solver"), [("het-opt-static", solve_heterogeneous), ("hom-opt-static", solve_homogeneous)]
)
def test_static_policy_goodput_matches_the_solver_without_fading(name: str, solver) -> None:
    """Fading off, iid acceptance: the measured goodput is the solver's eq. (5) value within sampling error."""
    env = gym.make(HET, fading=False, acceptance_process="iid", horizon=150.0)
    policy = make_policy(name, env)
    tokens, latency = [], []
    for seed in range(3):
        t, lat = run_episode(env, policy, seed)
        tokens.append(t)
        latency.append(lat)
    tokens_all, latency_all = np.concatenate(tokens), np.concatenate(latency)
    # Fixed action and no fading: every round has the same latency.
    np.testing.assert_allclose(latency_all, latency_all[0], rtol=1e-12)
    expected = solver(static_params(env.unwrapped)).goodput
    measured = tokens_all.sum() / latency_all.sum()
    standard_error = tokens_all.std(ddof=1) / np.sqrt(tokens_all.size) / latency_all[0]
    assert abs(measured - expected) < 4.0 * standard_error, (measured, expected, standard_error)


def test_static_policy_resolves_after_a_new_population() -> None:
    env = gym.make(HET, resample_population=True, fading=False)
    policy = make_policy("het-opt-static", env)
    allocations = []
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        policy.predict(obs)
        allocations.append(policy.last_allocation.goodput)
        assert policy.last_allocation.goodput == pytest.approx(
            solve_heterogeneous(static_params(env.unwrapped)).goodput
        )
    assert allocations[0] != allocations[1]


def test_information_level_is_validated() -> None:
    from baselines.policies import AnalyticPolicy

    assert INFORMATION_LEVELS == ("static", "adaptive", "oracle")
    with pytest.raises(ValueError, match="information"):
        AnalyticPolicy(gym.make(HET), solve_heterogeneous, "psychic")


@pytest.mark.parametrize("name", ["het-opt-static", "het-opt-adaptive", "het-opt-oracle", "equal-tuned"])
def test_policies_act_on_vector_envs_one_action_per_sub_env(name: str) -> None:
    """A policy bound to a vector env plans each sub-env on its own (it used to fail in predict)."""
    envs = gym.make_vec(HET, num_envs=3, resample_population=True)
    obs, _ = envs.reset(seed=4)
    policy = make_policy(name, envs)
    for _ in range(3):
        actions, _ = policy.predict(obs)
        assert actions.shape == envs.action_space.shape
        for i in range(3):  # the action of sub-env i is the solver's plan for sub-env i's own information
            lengths, _ = envs.unwrapped.decode_action(actions[i])
            if name == "het-opt-adaptive":
                params = adaptive_params(envs, obs[i])
            else:  # equal-tuned plans with the static information
                params = (oracle_params if name == "het-opt-oracle" else static_params)(envs, i)
            solve = equal_bandwidth_tuned if name == "equal-tuned" else solve_heterogeneous
            np.testing.assert_array_equal(lengths, solve(params).draft_lengths)
        obs, *_ = envs.step(actions)
    assert len({tuple(envs.unwrapped.decode_action(a)[0]) for a in actions}) > 1  # populations differ


def test_a_single_env_policy_refuses_a_batch_it_cannot_plan() -> None:
    """A single-env policy refuses a batch of observations instead of silently returning one action."""
    env = gym.make(HET)
    obs, _ = env.reset(seed=0)
    batch = np.stack([obs, obs])
    with pytest.raises(ValueError, match="bind the policy to a vector env"):
        make_policy("het-opt-oracle", env).predict(batch)
    actions, _ = make_policy("het-opt-adaptive", env).predict(batch)  # the observation is all it needs
    assert actions.shape == (2, *env.action_space.shape)


@pytest.mark.parametrize("name", ["het-opt-predictive", "bandit-ucb"])
def test_learning_policies_keep_their_history_through_rounds_without_tokens(name: str) -> None:
    # With arrivals a round in which every user is idle shows no tokens (section 5.8); only a reset observation
    # starts an episode, so the history the policy keeps per episode is not thrown away mid-episode.
    env = gym.make("MultiSpin-Heterogeneous-v0", arrival_rate=0.05, horizon=30.0, fading=True, csi_delay=1)
    policy = make_policy(name, env)
    obs, _ = env.reset(seed=4)
    history = (lambda: policy._rngs[0]) if name == "het-opt-predictive" else (lambda: policy.episodes[0])
    obs, *_ = env.step(policy.predict(obs)[0])
    first, silent = history(), 0
    for _ in range(150):
        obs, _, _, truncated, _ = env.step(policy.predict(obs)[0])
        silent += not np.any(env.unwrapped.observation_field(obs, "last_tokens"))
        if truncated:
            break
        assert history() is first
    assert silent > 0  # the case happened
