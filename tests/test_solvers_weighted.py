"""Weighted goodput (docs/model.md eq. (5w)): P-hom and P-het maximise sum_k w_k E[n_k] / T for user weights
w_k >= 0 (``RoundParams.weights``) on the round-realism instances (any survival curve, knee, profile, deadline),
checked against exhaustive search of that objective; no weights, all-ones or equal weights give the unweighted
optimum exactly; the batched path equals the single-system solves; the policies take the weights; bad weights
are a one-line ValueError naming ``weights``."""

from __future__ import annotations

import dataclasses
import itertools

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_solvers import FIELDS, extreme_params, independent_objective
from test_solvers_realism import MAX_GAP, _instance

from baselines.information import oracle_params, solve_for_active
from baselines.policies import make_policy
from baselines.solvers import (
    PackedSystems,
    _equal_finish_shares,
    _make_allocation,
    equal_bandwidth_fixed,
    solve_batch,
    solve_heterogeneous,
    solve_homogeneous,
    solve_packed,
)
from multispin_env.model import (
    MAX_WEIGHT,
    RoundParams,
    expected_goodput,
    expected_weighted_goodput,
    round_latency,
)

INSTANCES = 160  # weighted realism instances in make test (benchmarks/stress_solvers.py --weighted runs 2,000)
BLOCKS = 4


def random_weights(rng: np.random.Generator, k: int) -> np.ndarray:
    """User weights in four shapes: log-uniform over six decades, small integer priorities, the same with some
    users at weight 0 (never all), and equal weights (the unweighted problem scaled)."""
    shape = rng.integers(4)
    if shape == 0:
        weights = 10.0 ** rng.uniform(-3.0, 3.0, k)
    elif shape == 1:
        weights = rng.choice([1.0, 2.0, 5.0, 10.0], k)
    elif shape == 2:
        weights = rng.uniform(0.1, 1.0, k) * (rng.random(k) < 0.6)
        if not weights.any():
            weights[rng.integers(k)] = 1.0
    else:
        weights = np.full(k, float(rng.choice([0.25, 1.0, 7.0])))
    return weights


def weighted_instance(seed: int) -> RoundParams:
    """The realism instance of ``seed`` (tests/test_solvers_realism.py) with random user weights."""
    params = _instance(seed)
    return dataclasses.replace(params, weights=random_weights(np.random.default_rng([20, 2, seed]), params.num_users))


def exhaustive_weighted(params: RoundParams) -> tuple[float, float]:
    """(P-het optimum, P-hom optimum) of the weighted objective eq. (5w) by enumeration of every length vector
    with its equal-finish shares (deadline drops applied as in eq. (1'))."""
    k, lm = params.num_users, params.max_draft
    grid = np.array(list(itertools.product(range(lm + 1), repeat=k)), dtype=np.float64)
    common = np.repeat(np.arange(lm + 1, dtype=np.float64)[:, None], k, axis=1)
    return float(expected_weighted_goodput(params, grid).max()), float(expected_weighted_goodput(params, common).max())


@pytest.mark.parametrize("block", range(BLOCKS))
def test_weighted_solvers_match_exhaustive_search(block: int) -> None:
    zero_weight_users = 0
    for seed in range(block, INSTANCES, BLOCKS):
        params = weighted_instance(seed)
        assert params.weights is not None
        best_het, best_hom = exhaustive_weighted(params)
        het, hom = solve_heterogeneous(params), solve_homogeneous(params)
        for alloc, best in ((het, best_het), (hom, best_hom)):
            assert alloc.objective is not None
            assert best * (1 - MAX_GAP) <= alloc.objective <= best * (1 + 1e-12), (seed, alloc, best)
            # The reported values are the model's for that allocation: eq. (5w), eq. (5) and eq. (3).
            assert alloc.objective == pytest.approx(
                float(expected_weighted_goodput(params, alloc.draft_lengths, alloc.bandwidth)), rel=1e-9
            )
            assert alloc.goodput == pytest.approx(
                float(expected_goodput(params, alloc.draft_lengths, alloc.bandwidth)), rel=1e-9
            )
            assert alloc.latency == pytest.approx(
                float(round_latency(params, alloc.draft_lengths, alloc.bandwidth)), rel=1e-9
            )
            assert alloc.sync_time <= params.deadline * (1 + 1e-12)
        assert het.objective >= hom.objective * (1 - 1e-12)  # type: ignore[operator]
        # A user of weight 0 gains nothing from drafting and lengthens the round: P-het never lets it draft.
        idle = params.weights == 0.0
        assert not het.draft_lengths[idle].any()
        zero_weight_users += int(idle.sum())
    assert zero_weight_users >= 3, "the instances should include users of weight 0"


def test_weights_change_the_optimum() -> None:
    """The weighted optimum differs from the unweighted one, and each beats the other on its own objective."""
    changed = 0
    for seed in range(40):
        weighted = weighted_instance(seed)
        plain = dataclasses.replace(weighted, weights=None)
        a, b = solve_heterogeneous(weighted), solve_heterogeneous(plain)
        assert a.goodput <= b.goodput * (1 + 1e-12)
        assert float(expected_weighted_goodput(weighted, b.draft_lengths, b.bandwidth)) <= a.objective * (1 + 1e-12)  # type: ignore[operator]
        changed += not np.array_equal(a.draft_lengths, b.draft_lengths)
    assert changed >= 5


@pytest.mark.parametrize("scale", [1.0, 0.001, 3.0, MAX_WEIGHT])
def test_equal_weights_give_the_unweighted_optimum_exactly(scale: float) -> None:
    for seed in range(0, 48, 3):
        plain = _instance(seed)
        weighted = dataclasses.replace(plain, weights=np.full(plain.num_users, scale))
        for solve in (solve_heterogeneous, solve_homogeneous):
            a, b = solve(weighted), solve(plain)
            np.testing.assert_array_equal(a.draft_lengths, b.draft_lengths)
            np.testing.assert_array_equal(a.bandwidth, b.bandwidth)
            assert (a.goodput, a.sync_time, a.latency) == (b.goodput, b.sync_time, b.latency)
            assert b.objective == b.goodput
            assert a.objective == pytest.approx(scale * b.goodput, rel=1e-15)


def test_scaling_the_weights_keeps_the_allocation() -> None:
    """Only the ratios of the weights matter: w and 1000 w give the same allocation."""
    for seed in range(24):
        params = weighted_instance(seed)
        assert params.weights is not None
        scaled = dataclasses.replace(params, weights=params.weights * 1000.0)
        for solve in (solve_heterogeneous, solve_homogeneous):
            a, b = solve(params), solve(scaled)
            np.testing.assert_array_equal(a.draft_lengths, b.draft_lengths)
            assert b.objective == pytest.approx(1000.0 * a.objective, rel=1e-12)  # type: ignore[operator]


def test_batched_weighted_solves_equal_the_single_solves() -> None:
    """One packed call over weighted, equal-weight and unweighted systems (mixed K, L_max, knees, deadlines)
    returns each system's single-system solution."""
    systems = [weighted_instance(seed) if seed % 3 else _instance(seed) for seed in range(60_000, 60_030)]
    for solver, single in (("het-opt", solve_heterogeneous), ("hom-opt", solve_homogeneous)):
        for params, alloc in zip(systems, solve_batch(solver, systems), strict=True):
            one = single(params)
            np.testing.assert_array_equal(alloc.draft_lengths, one.draft_lengths)
            np.testing.assert_array_equal(alloc.bandwidth, one.bandwidth)
            assert (alloc.goodput, alloc.objective, alloc.latency) == (one.goodput, one.objective, one.latency)


def test_a_packed_system_whose_weights_are_all_zero_does_not_draft() -> None:
    """A pack may hold a system whose (active) users all weigh 0: nothing to gain, so nobody drafts."""
    params = _instance(1)
    packed = PackedSystems.of([params, params])
    zero = dataclasses.replace(packed, weights=np.r_[np.ones(params.num_users), np.zeros(params.num_users)])
    result = solve_packed("het", zero)
    k = params.num_users
    np.testing.assert_array_equal(result.draft_lengths[:k], solve_heterogeneous(params).draft_lengths)
    assert not result.draft_lengths[k:].any() and not result.bandwidth[k:].any()
    assert result.objective is not None and result.objective[1] == 0.0
    assert result.goodput[1] == pytest.approx(float(expected_goodput(params, np.zeros(k))))


def _users(params: RoundParams, users: np.ndarray, weights: np.ndarray | None) -> RoundParams:
    """The system of ``params``' users ``users`` (a mask) alone, with ``weights``."""
    return dataclasses.replace(
        params,
        acceptance=params.acceptance[users],
        survival=params.survival[users],
        draft_time=params.draft_time[users],
        upload_time=params.upload_time[users],
        weights=weights,
    )


def test_solving_for_active_users_keeps_their_weights() -> None:
    params = _instance(5)
    k = params.num_users
    assert k >= 2
    weights = np.arange(k, dtype=np.float64)  # user 0 weighs 0
    weighted = dataclasses.replace(params, weights=weights)
    active = np.ones(k, dtype=bool)
    active[-1] = False
    alloc = solve_for_active(solve_heterogeneous, weighted, active)
    sub = _users(params, active, weights[active])
    np.testing.assert_array_equal(alloc.draft_lengths[active], solve_heterogeneous(sub).draft_lengths)
    assert alloc.objective == solve_heterogeneous(sub).objective
    only_zero = np.zeros(k, dtype=bool)
    only_zero[0] = True  # the one active user weighs 0: server-only decoding
    idle = solve_for_active(solve_heterogeneous, weighted, only_zero)
    assert not idle.draft_lengths.any() and idle.objective == 0.0
    assert idle.goodput == pytest.approx(float(expected_goodput(_users(params, only_zero, None), [0])), rel=1e-12)


def test_equal_share_baselines_report_their_weighted_goodput() -> None:
    params = weighted_instance(2)
    alloc = equal_bandwidth_fixed(params)
    assert alloc.objective == pytest.approx(
        float(expected_weighted_goodput(params, alloc.draft_lengths, alloc.bandwidth)), rel=1e-12
    )


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, -0.5, 1.0], r"^weights\[1\] is -0.5: weights must lie in"),
        ([1.0, float("nan"), 1.0], r"^weights\[1\] is nan: weights must be finite$"),
        ([float("inf"), 1.0, 1.0], r"^weights\[0\] is inf: weights must be finite$"),
        ([0.0, 0.0, 0.0], r"^weights must not all be 0"),
        ([1.0, 1.0], r"^weights must have one entry per user \(3\), got 2$"),
        ([1.0, 1.0, 1.0, 1.0], r"^weights must have one entry per user \(3\), got 4$"),
        ([1.0, 2 * MAX_WEIGHT, 1.0], r"^weights\[1\] is 2000000000.0: weights must lie in \[0, 1e\+09\]$"),
        ("heavy", r"^weights must be an array of real numbers"),
        ([[1.0, 1.0, 1.0]], r"^weights must be one-dimensional"),
    ],
)
def test_bad_weights_are_one_line_value_errors(weights: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        RoundParams([0.7, 0.8, 0.6], [0.01, 0.01, 0.02], [0.001, 0.002, 0.001], weights=weights)
    assert "\n" not in str(caught.value)


def test_packed_weights_are_checked() -> None:
    packed = PackedSystems.of([_instance(0)])
    for bad in (np.full(packed.draft_time.size, -1.0), np.full(packed.draft_time.size + 1, 1.0), [np.nan]):
        with pytest.raises(ValueError, match=r"^PackedSystems\.weights"):
            dataclasses.replace(packed, weights=np.asarray(bad, dtype=np.float64))


def test_policies_take_weights_and_check_them() -> None:
    env = gym.make("MultiSpin-Heterogeneous-v0", num_users=4)
    with pytest.raises(ValueError, match=r"^weights must have one entry per user \(4\), got 3$"):
        make_policy("het-opt-oracle", env, weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"^weights\[0\] is -1.0"):
        make_policy("het-opt-adaptive", env, weights=[-1.0, 1.0, 1.0, 1.0])
    for name in ("equal-fixed", "bandit-ucb", "het-opt-predictive"):
        with pytest.raises(ValueError, match=rf"^weights: policy '{name}' takes none"):
            make_policy(name, env, weights=[1.0] * 4)
    weights = np.array([8.0, 1.0, 1.0, 0.0])
    policy = make_policy("het-opt-oracle", env, weights=weights)
    obs, _ = env.reset(seed=3)
    policy.predict(obs)
    expected = solve_heterogeneous(oracle_params(env, 0, weights))
    assert policy.last_allocation is not None
    np.testing.assert_array_equal(policy.last_allocation.draft_lengths, expected.draft_lengths)
    assert policy.last_allocation.objective == expected.objective
    assert expected.draft_lengths[3] == 0


def test_a_weighted_oracle_on_a_vector_env_plans_each_sub_env_with_the_weights() -> None:
    """The batched oracle path (packed straight from the env's arrays) gives every sub-env the weighted plan."""
    weights = np.array([1.0, 4.0, 0.5, 2.0, 1.0, 0.0])
    envs = gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=4, resample_population=True)
    policy = make_policy("het-opt-oracle", envs, weights=weights)
    obs, _ = envs.reset(seed=5)
    actions, _ = policy.predict(obs)
    for i in range(4):
        alloc = solve_heterogeneous(oracle_params(envs, i, weights))
        np.testing.assert_array_equal(actions[i], envs.unwrapped.encode_action(alloc.draft_lengths, alloc.bandwidth))


def test_a_heavier_weight_buys_a_user_more_tokens() -> None:
    """Played in the env, het-opt-oracle with a large weight on user 0 gives it more tokens per second than the
    unweighted plan does, and the sum goodput falls (the price of the priority)."""
    rates = []
    for weights in (None, [20.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        env = gym.make("MultiSpin-Heterogeneous-v0", horizon=30.0)
        policy = make_policy("het-opt-oracle", env, weights=weights)
        obs, info = env.reset(seed=11)
        tokens = np.zeros(6)
        while True:
            obs, _, terminated, truncated, info = env.step(policy.predict(obs)[0])
            tokens += info["tokens"]
            if terminated or truncated:
                break
        rates.append(tokens / info["clock"])
    plain, weighted = rates
    assert weighted[0] > plain[0] * 1.05
    assert weighted.sum() < plain.sum()


@st.composite
def extreme_weighted_params(draw: st.DrawFn) -> RoundParams:
    """test_solvers.py's systems over the whole valid range, with weights anywhere in [0, MAX_WEIGHT]."""
    params = draw(extreme_params())
    weight = st.one_of(
        st.floats(-323.0, 9.0).map(lambda e: 10.0**e).filter(lambda x: 0.0 < x <= MAX_WEIGHT),
        st.sampled_from([0.0, 5e-324, 1.0, MAX_WEIGHT]),
    )
    weights = draw(st.lists(weight, min_size=params.num_users, max_size=params.num_users).filter(any))
    return dataclasses.replace(params, weights=weights)


@given(extreme_weighted_params())
def test_weighted_solvers_over_the_whole_valid_range(params: RoundParams) -> None:
    """Any valid weighted system: P-hom and P-het give finite results (or a ValueError naming the settings), P-het
    at least P-hom's objective and the exhaustive optimum's (each length vector with its equal-finish shares,
    computed the solvers' overflow-safe way; rounds that leave the float range skipped)."""
    results = {}
    for solve in (solve_homogeneous, solve_heterogeneous):
        try:
            results[solve] = alloc = solve(params)
        except ValueError as exc:
            assert any(field in str(exc) for field in FIELDS), exc
            continue
        assert alloc.objective is not None
        assert np.isfinite([alloc.objective, alloc.goodput, alloc.latency]).all() and alloc.objective >= 0.0
        reported = independent_objective(params, alloc.draft_lengths, alloc.bandwidth)
        if np.isfinite(reported):  # the objective of its lengths and shares, computed independently
            assert alloc.objective == pytest.approx(reported, rel=1e-9)
    if solve_heterogeneous not in results:
        return
    het = results[solve_heterogeneous].objective
    assert het is not None
    if solve_homogeneous in results:
        assert het >= results[solve_homogeneous].objective * (1 - 1e-9)  # type: ignore[operator]
    best = 0.0
    for row in itertools.product(range(params.max_draft + 1), repeat=params.num_users):
        lengths = np.array(row, dtype=np.int64)
        try:
            candidate = _make_allocation(params, lengths, _equal_finish_shares(params, lengths))
        except ValueError:
            continue
        assert candidate.objective is not None
        best = max(best, candidate.objective)
    assert het >= best * (1 - MAX_GAP)
