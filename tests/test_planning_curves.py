"""The acceptance curves the planners use against the rounds the env plays (docs/model.md section 5.1, eq. (5.1a)-
(5.1e), section 7.1): Monte-Carlo runs of the vector env, each user drafting a fixed length in every round."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.acceptance import MixtureAcceptance, beta_quadrature, request_rounds
from multispin_env.model import RoundParams

#: Draft lengths of the six users in the two runs of a case: together every L = 1..10 (users are independent).
RUN_LENGTHS = ((1, 2, 3, 4, 5, 6), (5, 6, 7, 8, 9, 10))
NUM_ENVS, ROUNDS, WARM_UP = 384, 2400, 300
TOLERANCE = 0.01  # the planners' curves within 0.01 of the per-round survival, at every position

CASES: dict[str, dict[str, Any]] = {
    "mixture-request": dict(scenario="vllm-drafter", acceptance_process="mixture", mixture_scope="request"),
    "tasks": dict(scenario="tasks", acceptance_process="tasks"),
    "tasks-fixed-length": dict(
        scenario="tasks", acceptance_process="tasks", request_length="fixed", mean_request_tokens=30.0
    ),
}


def _run(settings: dict[str, Any], lengths: tuple[int, ...], seed: int) -> dict[str, Any]:
    """A long run (no episode end) after a warm-up: accepted prefixes and the observed estimates a_hat before each
    round, (rounds, envs, K), with the process and the population's rates."""
    env = gym.make_vec(
        "MultiSpin-Heterogeneous-v0", num_envs=NUM_ENVS, num_users=len(lengths), fading=False, horizon=1e9, **settings
    )
    obs, _ = env.reset(seed=seed)
    unwrapped = env.unwrapped
    k = len(lengths)
    action = unwrapped.encode_action(np.broadcast_to(lengths, (NUM_ENVS, k)), np.full((NUM_ENVS, k), 1.0 / k))
    accepted, estimates = [], []
    for t in range(ROUNDS):
        estimate = unwrapped.acceptance_from_observation(obs)
        obs, _, _, truncated, info = env.step(action)
        assert not truncated.any()
        if t >= WARM_UP:
            accepted.append(info["accepted"].copy())
            estimates.append(estimate)
    env.close()
    return {
        "accepted": np.array(accepted),
        "estimates": np.array(estimates),
        "process": unwrapped.core.process,
        "base": unwrapped.core.base_acceptance[0],
        "lengths": np.array(lengths),
    }


@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=[pytest.mark.slow] if name == "tasks-fixed-length" else []) for name in CASES],
)
def runs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return [_run(CASES[request.param], lengths, seed) for seed, lengths in enumerate(RUN_LENGTHS)]


def _measured(run: dict[str, Any], user: int) -> np.ndarray:
    """The per-round P(A >= i), i = 1..L, of one user in a run."""
    accepted = run["accepted"][..., user]
    return np.array([(accepted >= i).mean() for i in range(1, int(run["lengths"][user]) + 1)])


def test_round_survival_is_the_curve_the_rounds_show(runs):
    """eq. (5.1c) at each user's L within 0.01 of the measured per-round P(A >= i) at every position."""
    for run in runs:
        for user, length in enumerate(run["lengths"]):
            curve = run["process"].round_survival(run["base"], run["lengths"])[user, :length]
            measured = _measured(run, user)
            assert np.abs(curve - measured).max() < TOLERANCE, (length, curve, measured)


def test_the_per_request_mix_is_not_what_the_rounds_show(runs):
    """The check can fail: the request-weighted mix E_p[r^i] (what the static level planned with before the rounds
    were length-biased) is more than 0.02 high at position 3 with L = 10."""
    run = runs[1]
    process = run["process"]
    per_request = process.request_survival(run["base"])
    assert run["lengths"][5] == 10 and per_request[5, 2] - _measured(run, 5)[2] > 0.02


def test_static_curve_sums_to_the_long_run_tokens_per_round(runs):
    """The static planning curve's partial sums 1 + sum_{i<=L} S(i) (what the solvers use, eq. (4)) are the long-run
    tokens per round at every L (eq. (5.1d), (5.1e)): exactly 1 + the sum of the per-round curve of eq. (5.1c) at
    that L (checked position by position above), and within four standard errors of the measured tokens per round
    (batch means over the independent sub-envs; about 0.01 tokens here, so the per-position check is the sharper)."""
    for run in runs:
        process, base = run["process"], run["base"]
        tokens = process.round_tokens(base)
        partial_sums = 1.0 + np.cumsum(process.mean_survival(base), axis=-1)
        np.testing.assert_allclose(partial_sums, tokens[..., 1:], rtol=1e-12)  # concave: no majorant needed
        for length in range(1, process.max_draft + 1):
            at_length = process.round_survival(base, np.full(base.shape, length))[..., :length]
            np.testing.assert_allclose(1.0 + at_length.sum(axis=-1), tokens[..., length], rtol=1e-12)
        for user, length in enumerate(run["lengths"]):
            per_env = (np.minimum(run["accepted"][..., user], length) + 1.0).mean(axis=0)
            error = abs(per_env.mean() - tokens[user, length])
            assert error < 4.0 * per_env.std() / np.sqrt(per_env.size), (length, error)


def test_adaptive_curve_of_the_estimate_averages_to_the_rounds(runs):
    """The adaptive level's curve a_hat^i (the request's rate holds for all its rounds), averaged over the rounds,
    within 0.01 of the measured per-round P(A >= i) for users drafting up to 6 tokens."""
    for run in runs:
        for user, length in enumerate(run["lengths"]):
            if length > 6:
                continue
            # every 4th round: the estimate changes slowly, and the mean of its curve needs no more
            planned = run["process"].survival_from_rate(run["estimates"][::4, :, user])[..., :length]
            average = planned.reshape(-1, length).mean(axis=0)
            assert np.abs(average - _measured(run, user)).max() < TOLERANCE, (length, average, _measured(run, user))


@pytest.mark.parametrize("length_kind", ["geometric", "fixed"])
@pytest.mark.parametrize("rate, draft", [(0.3, 0), (0.3, 3), (0.8, 2), (0.95, 6)])
def test_request_rounds_against_simulated_requests(length_kind, rate, draft):
    """E[rounds of a request | r, L] (eq. (5.1a), (5.1b)) against simulated requests of mean 12 tokens."""
    rng = np.random.default_rng(5)
    count = 40_000
    remaining = rng.geometric(1 / 12.0, count).astype(float) if length_kind == "geometric" else np.full(count, 12.0)
    rounds = np.zeros(count)
    while np.any(remaining > 0):
        busy = remaining > 0
        accepted = np.minimum(rng.geometric(1 - rate, busy.sum()) - 1, draft)  # P(A >= i) = r^i, capped at L
        remaining[busy] -= accepted + 1
        rounds[busy] += 1
    expected = request_rounds(np.array(rate), 8, 12.0, length_kind)[draft]
    assert abs(rounds.mean() - expected) <= 4 * rounds.std() / np.sqrt(count)


def test_fixed_length_asymptote_meets_the_recursion():
    """Beyond EXACT_FIXED_TOKENS the renewal theorem's asymptote; at the switch it agrees with the recursion."""
    from multispin_env import acceptance

    rates = np.array([0.2, 0.6, 0.9])
    exact = request_rounds(rates, 8, float(acceptance.EXACT_FIXED_TOKENS), "fixed")
    tail = request_rounds(rates, 8, float(acceptance.EXACT_FIXED_TOKENS) + 0.5, "fixed")  # ceil: one token more
    np.testing.assert_allclose(tail - exact, 0.0, atol=1.0)  # one token more adds at most one round
    mean = 1.0 + (rates[:, None] ** np.arange(1, 9)).cumsum(axis=1)
    np.testing.assert_allclose(exact[:, 1:] * mean / acceptance.EXACT_FIXED_TOKENS, 1.0, atol=1e-3)


@pytest.mark.parametrize("mean, concentration", [(0.7, 9.745), (0.02, 0.5), (0.99, 3.0), (0.4, 5e4)])
def test_beta_quadrature_gives_the_beta_moments(mean, concentration):
    """E[r^i] = prod_{j<i} (kappa a + j) / (kappa + j) by the quadrature, both branches (kappa <= 1000 and above)."""
    r, w = beta_quadrature(mean, concentration, 50)
    moments = np.cumprod((concentration * mean + np.arange(20)) / (concentration + np.arange(20)))
    np.testing.assert_allclose([(w * r**i).sum() for i in range(1, 21)], moments, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize(
    "rates, max_draft, mean_tokens, length, match",
    [
        (0.5, 4, 0.5, "geometric", "mean_tokens"),
        (0.5, 4, float("nan"), "fixed", "mean_tokens"),
        (1.0, 4, 10.0, "geometric", "rates"),
        (float("nan"), 4, 10.0, "geometric", "rates"),
        (0.5, -1, 10.0, "geometric", "max_draft"),
        (0.5, 4, 10.0, "uniform", "request_length"),
    ],
)
def test_request_rounds_refuses_bad_input(rates, max_draft, mean_tokens, length, match):
    with pytest.raises(ValueError, match=match):
        request_rounds(np.array(rates), max_draft, mean_tokens, length)


@settings(max_examples=60, deadline=None)
@given(
    mean=st.floats(0.001, 0.999),
    concentration=st.floats(1e-3, 1e4),
    mean_tokens=st.sampled_from([1.0, 1.5, 3.0, 7.0, 20.0, 100.0, 1e6]),
    length=st.sampled_from(["geometric", "fixed"]),
    max_draft=st.integers(1, 24),
)
def test_static_curve_is_a_survival_curve_above_the_long_run_tokens(
    mean, concentration, mean_tokens, length, max_draft
):
    """The static curve of eq. (5.1e) is a valid survival curve (RoundParams accepts it) whose partial sums are the
    least concave majorant of the long-run tokens per round: >= them, equal at their maximum, and equal everywhere
    where they are concave (always for long geometric requests)."""
    process = MixtureAcceptance(
        1,
        1,
        max_draft,
        mixture_concentration=concentration,
        mixture_scope="request",
        mean_request_tokens=mean_tokens,
        request_length=length,
    )
    base = np.array([mean])
    curve = process.mean_survival(base)
    RoundParams(None, [0.01], [0.001], max_draft=max_draft, survival=curve)
    tokens = process.round_tokens(base)[0]
    sums = np.concatenate([[1.0], 1.0 + np.cumsum(curve[0])])
    assert np.all(sums >= tokens - 1e-9)
    assert sums.max() == pytest.approx(tokens.max(), rel=1e-9)
    if np.all(np.diff(tokens, 2) <= 1e-12) or (length == "geometric" and mean_tokens >= 100.0):
        np.testing.assert_allclose(sums, tokens, rtol=1e-9)


def test_episode_tokens_are_what_short_episodes_show():
    """eq. (5.1f): in episodes of M rounds starting with fresh requests the mean tokens per round is episode_tokens
    at M (within four standard errors over the episodes), not the long-run value of eq. (5.1d)."""
    num_envs, lengths = 1024, (1, 2, 3, 5, 7, 10)
    env = gym.make_vec(
        "MultiSpin-Heterogeneous-v0", num_envs=num_envs, num_users=len(lengths), fading=False, horizon=1e9,
        **CASES["mixture-request"],
    )  # fmt: skip
    env.reset(seed=21)
    unwrapped = env.unwrapped
    k = len(lengths)
    action = unwrapped.encode_action(np.broadcast_to(lengths, (num_envs, k)), np.full((num_envs, k), 1.0 / k))
    rounds = 40
    tokens = np.zeros((num_envs, k))
    for _ in range(rounds):
        tokens += env.step(action)[4]["tokens"]
    env.close()
    process, base = unwrapped.core.process, unwrapped.core.base_acceptance[0]
    expected = process.episode_tokens(base, rounds)[np.arange(k), lengths]
    long_run = process.round_tokens(base)[np.arange(k), lengths]
    per_episode = tokens / rounds
    error = 4.0 * per_episode.std(axis=0) / np.sqrt(num_envs)
    assert np.all(np.abs(per_episode.mean(axis=0) - expected) < error), (per_episode.mean(axis=0), expected)
    assert abs(per_episode[:, -1].mean() - long_run[-1]) > 2 * error[-1]  # 8 standard errors: the start is unbiased


def test_episode_plan_reaches_a_fixed_point_and_equals_the_long_run_plan_for_long_episodes():
    """episode_static_solver: for a 10 s episode it plans with the curve of its own round count; for episodes of
    1e6 s it plans as the long-run static level does; without per-request rates it is the solver itself."""
    import dataclasses

    from baselines.information import episode_static_solver, static_params
    from baselines.solvers import solve_heterogeneous

    env = gym.make("MultiSpin-Heterogeneous-v0", fading=False, **CASES["mixture-request"])
    env.reset(seed=0)
    params = static_params(env)
    plan = episode_static_solver(env, solve_heterogeneous)(params)
    process = env.unwrapped.core.process
    rounds = int(np.ceil(env.unwrapped.config.horizon / plan.latency))
    again = solve_heterogeneous(
        dataclasses.replace(params, survival=process.episode_survival(params.acceptance, rounds))
    )
    np.testing.assert_array_equal(plan.draft_lengths, again.draft_lengths)
    long_env = gym.make("MultiSpin-Heterogeneous-v0", fading=False, horizon=1e6, **CASES["mixture-request"])
    long_env.reset(seed=0)
    long_params = static_params(long_env)
    np.testing.assert_array_equal(
        episode_static_solver(long_env, solve_heterogeneous)(long_params).draft_lengths,
        solve_heterogeneous(long_params).draft_lengths,
    )
    iid = gym.make("MultiSpin-Heterogeneous-v0", fading=False)
    assert episode_static_solver(iid, solve_heterogeneous) is solve_heterogeneous


def test_request_survival_is_the_request_weighted_beta_moments():
    """A new request's curve E_p[r^i] of the Beta mixture: prod_{j<i} (kappa a + j) / (kappa + j) (section 5.1)."""
    kappa, base = 9.745, np.array([0.3, 0.8])
    process = MixtureAcceptance(
        1,
        2,
        8,
        mixture_concentration=kappa,
        mixture_scope="request",
        mean_request_tokens=100.0,
        request_length="geometric",
    )
    steps = np.arange(8)
    moments = np.cumprod((kappa * base[:, None] + steps) / (kappa + steps), axis=-1)
    np.testing.assert_allclose(process.request_survival(base), moments, rtol=1e-9)
