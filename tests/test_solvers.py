"""Tests for baselines.solvers: P-hom and P-het against exhaustive search, structure and baselines.

The brute force enumerates every integer length vector in {0..L_max}^K and gives
each the equal-finish-time shares of model.md section 3, so it is the exact
optimum of P-het (and, restricted to equal lengths, of P-hom). Instances are
drawn from fixed-seed numpy Generators, so every run checks the same systems.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import pytest
from scipy.optimize import minimize

from baselines import (
    Allocation,
    equal_bandwidth_fixed,
    equal_bandwidth_tuned,
    solve_heterogeneous,
    solve_homogeneous,
)
from multispin_env.model import (
    RoundParams,
    equal_finish_time,
    expected_goodput,
    finish_times,
    optimal_bandwidth,
    round_latency,
    sync_time,
)

MAX_GAP = 1e-9  # accepted relative shortfall against the exhaustive optimum
TIE = 1e-12  # relative rounding slack when two solvers may return the same allocation

# --------------------------------------------------------------------------- instances


def _log_uniform(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    return 10 ** rng.uniform(np.log10(low), np.log10(high), size)


def _wide_scalars(rng: np.random.Generator) -> dict[str, float]:
    return {
        "verify_base": float(_log_uniform(rng, 1e-3, 0.3, 1)[0]),
        "verify_per_token": float(rng.choice([0.0, _log_uniform(rng, 1e-5, 1e-2, 1)[0]])),
        "downlink_time": float(rng.choice([0.0, rng.uniform(0.0, 0.05)])),
    }


def make_instance(rng: np.random.Generator, family: str, k: int, max_draft: int) -> RoundParams:
    """One system of a named family; all families together span the extremes of the brief."""
    t = _log_uniform(rng, 1e-4, 0.1, k)
    c = _log_uniform(rng, 1e-7, 10.0, k)
    scalars = _wide_scalars(rng)
    if family == "base":  # model.md section 4 defaults
        a = rng.uniform(0.5, 0.9, k)
        t = rng.choice([0.004, 0.01, 0.025], k)
        c = _log_uniform(rng, 1e-4, 5e-3, k)
        scalars = {"verify_base": 0.06, "verify_per_token": 0.0005, "downlink_time": 0.0}
    elif family == "wide":
        a = rng.uniform(0.05, 0.98, k)
        if rng.random() < 0.5:  # channel-limited and drafting-limited users mixed
            c = _log_uniform(rng, 1e-5, 3e-2, k)
    elif family == "low_acceptance":
        a = _log_uniform(rng, 1e-6, 1e-2, k)
        a[rng.integers(k)] = 1e-6
        a[rng.integers(k)] = rng.uniform(0.3, 0.9)  # one useful draft among useless ones
    elif family == "high_acceptance":
        a = 1.0 - _log_uniform(rng, 1e-6, 1e-2, k)
        a[rng.integers(k)] = 0.999999
    elif family == "deep_fade":
        a = rng.uniform(0.4, 0.95, k)
        c = _log_uniform(rng, 1e-5, 1e-2, k)
        c[rng.integers(k)] = 1e6
    elif family == "mixed_extremes":
        a = rng.choice([1e-6, 0.5, 0.8, 0.999999], k)
    else:
        raise ValueError(family)
    return RoundParams(acceptance=a, draft_time=t, upload_time=c, max_draft=max_draft, **scalars)


def brute_force(params: RoundParams) -> tuple[np.ndarray, np.ndarray]:
    """All length vectors (rows) and their exact goodputs with equal-finish-time shares."""
    grid = np.array(list(itertools.product(range(params.max_draft + 1), repeat=params.num_users)))
    return grid, expected_goodput(params, grid)


FAMILIES = ["base", "wide", "low_acceptance", "high_acceptance", "deep_fade", "mixed_extremes"]
PER_FAMILY = 40  # 6 families x 40 = 240 instances, a quarter of them with K = 1 or 2


def _family_instances(family: str) -> list[RoundParams]:
    rng = np.random.default_rng(100 + FAMILIES.index(family))
    out = []
    for i in range(PER_FAMILY):
        k = (1, 2, 3, 3, 4, 4)[i % 6]
        max_draft = int(rng.integers(1, 7)) if k == 4 else int(rng.integers(1, 11))
        out.append(make_instance(rng, family, k, max_draft))
    return out


# --------------------------------------------------------------------------- invariants


def check_allocation(params: RoundParams, alloc: Allocation, *, equal_finish: bool) -> None:
    """The Allocation contract: types, share rules, and goodput/latency consistent with eq. (1)-(5)."""
    k = params.num_users
    lengths, shares = alloc.draft_lengths, alloc.bandwidth
    assert isinstance(alloc, Allocation)
    assert lengths.dtype == np.int64 and lengths.shape == (k,)
    assert shares.dtype == np.float64 and shares.shape == (k,)
    assert np.all((lengths >= 0) & (lengths <= params.max_draft))
    assert np.all(shares >= 0.0) and np.all(shares[lengths == 0] == 0.0)
    drafting = lengths > 0
    if drafting.any():
        assert shares.sum() == pytest.approx(1.0, rel=1e-12)
    else:
        assert alloc.sync_time == 0.0
    assert alloc.goodput == pytest.approx(float(expected_goodput(params, lengths, shares)), rel=1e-12)
    assert alloc.latency == pytest.approx(float(round_latency(params, lengths, shares)), rel=1e-12)
    tau = float(sync_time(params.draft_time, params.upload_time, lengths, shares))
    assert alloc.sync_time == pytest.approx(tau, rel=1e-12)
    assert np.isfinite([alloc.goodput, alloc.latency, alloc.sync_time]).all() and alloc.goodput > 0.0
    if equal_finish and drafting.any():
        finish = finish_times(params.draft_time, params.upload_time, lengths, shares)
        assert np.allclose(finish[drafting], alloc.sync_time, rtol=1e-9, atol=0.0)


# --------------------------------------------------------------------------- exhaustive comparison


@pytest.mark.parametrize("family", FAMILIES)
def test_solvers_equal_brute_force(family: str, record_property: Callable[[str, object], None]) -> None:
    worst_het = worst_hom = 0.0
    instances = _family_instances(family)
    for params in instances:
        grid, values = brute_force(params)
        het = solve_heterogeneous(params)
        hom = solve_homogeneous(params)
        equal = grid.min(axis=1) == grid.max(axis=1)
        best_het, best_hom = float(values.max()), float(values[equal].max())
        gap_het = (best_het - het.goodput) / best_het
        gap_hom = (best_hom - hom.goodput) / best_hom
        worst_het, worst_hom = max(worst_het, gap_het), max(worst_hom, gap_hom)
        assert gap_het <= MAX_GAP, (family, params, het, grid[values.argmax()])
        assert gap_hom <= MAX_GAP, (family, params, hom)
        # Nobody beats exhaustive search (beyond rounding): the goodputs are honest.
        assert het.goodput <= best_het * (1 + TIE) and hom.goodput <= best_hom * (1 + TIE)
        check_allocation(params, het, equal_finish=True)
        check_allocation(params, hom, equal_finish=True)
        assert np.all(hom.draft_lengths == hom.draft_lengths[0])
        fixed, tuned = equal_bandwidth_fixed(params), equal_bandwidth_tuned(params)
        check_allocation(params, fixed, equal_finish=False)
        check_allocation(params, tuned, equal_finish=False)
        # model.md section 6: G(P-het) >= G(P-hom) >= heterogeneity-unaware baselines.
        assert het.goodput >= hom.goodput * (1 - TIE)
        assert hom.goodput >= tuned.goodput * (1 - TIE)
        assert hom.goodput >= fixed.goodput * (1 - TIE)
    record_property("instances", len(instances))
    record_property("worst_gap_het", worst_het)
    record_property("worst_gap_hom", worst_hom)
    print(f"\n{family}: {len(instances)} instances, worst relative gap P-het {worst_het:.3e}, P-hom {worst_hom:.3e}")


# --------------------------------------------------------------------------- shares: formula vs optimiser


@pytest.mark.parametrize("seed", range(8))
def test_equal_finish_shares_beat_generic_optimiser(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    params = make_instance(rng, "base" if seed % 2 else "wide", k, 10)
    lengths = rng.integers(1, 11, k)
    lengths[rng.integers(k)] = 0 if seed % 3 == 0 else lengths[0]
    drafting = np.flatnonzero(lengths > 0)
    _, tau = optimal_bandwidth(params.draft_time, params.upload_time, lengths)
    lt, lc = (lengths * params.draft_time)[drafting], (lengths * params.upload_time)[drafting]

    # Epigraph form: minimise z s.t. z >= L_k t_k + L_k c_k / b_k, sum b <= 1, b > 0.
    x0 = np.append(np.full(drafting.size, 1.0 / drafting.size), (lt + lc * drafting.size).max())
    scale = float(x0[-1])
    result = minimize(
        lambda x: x[-1] / scale,
        x0,
        jac=lambda x: np.append(np.zeros(drafting.size), 1.0 / scale),
        method="SLSQP",
        bounds=[(1e-12, 1.0)] * drafting.size + [(0.0, None)],
        constraints=[
            {"type": "ineq", "fun": lambda x: (x[-1] - lt - lc / x[:-1]) / scale},
            {"type": "ineq", "fun": lambda x: 1.0 - x[:-1].sum()},
        ],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    shares = np.zeros(k)
    shares[drafting] = np.clip(result.x[:-1], 0.0, None)
    shares /= max(1.0, shares.sum())  # keep it feasible
    achieved = float(sync_time(params.draft_time, params.upload_time, lengths, shares))
    assert achieved >= float(tau) * (1 - 1e-12)  # the optimiser never beats the formula
    assert achieved <= float(tau) * (1 + 1e-4)  # ... and it did find (nearly) the same optimum


# --------------------------------------------------------------------------- structure (model.md section 3)


@pytest.mark.parametrize("seed", range(6))
def test_homogeneous_shares_do_not_depend_on_length(seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = make_instance(rng, "base", int(rng.integers(2, 9)), 10)
    hom = solve_homogeneous(params)
    assert hom.draft_lengths[0] >= 1  # base systems do speculate
    s_star = float(equal_finish_time(params.upload_time, params.draft_time))
    assert hom.sync_time == pytest.approx(hom.draft_lengths[0] * s_star, rel=1e-12)
    for length in range(1, params.max_draft + 1):
        shares, tau = optimal_bandwidth(params.draft_time, params.upload_time, np.full(params.num_users, length))
        assert np.allclose(shares, hom.bandwidth, rtol=1e-9, atol=0.0)
        assert float(tau) == pytest.approx(length * s_star, rel=1e-12)


@pytest.mark.parametrize("field", ["draft_time", "upload_time"])
@pytest.mark.parametrize("seed", range(4))
def test_homogeneous_shares_grow_with_draft_and_upload_time(field: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 9))
    values = {"acceptance": np.full(k, rng.uniform(0.6, 0.9)), "draft_time": np.full(k, 0.01), "upload_time": np.full(k, 1e-3)}
    spread = np.sort(rng.uniform(0.004, 0.025, k)) if field == "draft_time" else np.sort(_log_uniform(rng, 1e-4, 5e-3, k))
    values[field] = spread
    params = RoundParams(**values)
    hom = solve_homogeneous(params)
    assert hom.draft_lengths[0] >= 1
    assert np.all(np.diff(hom.bandwidth) > 0.0)  # weaker devices / channels get more band


@pytest.mark.parametrize("seed", range(6))
def test_heterogeneous_lengths_and_shares_grow_with_acceptance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 9))
    params = RoundParams(
        acceptance=np.sort(rng.uniform(0.3, 0.95, k)),
        draft_time=np.full(k, rng.choice([0.002, 0.004])),
        # Bandwidth-limited (c_k comparable to t_k): when drafting time alone pins the
        # sync time, every user drafts the same floor(tau / t) tokens.
        upload_time=np.full(k, _log_uniform(rng, 1e-3, 5e-3, 1)[0]),
    )
    het = solve_heterogeneous(params)
    assert np.all(np.diff(het.draft_lengths) >= 0)
    assert np.all(np.diff(het.bandwidth) >= -1e-15)
    assert het.draft_lengths[-1] > het.draft_lengths[0]  # better drafts are rewarded
    assert het.bandwidth[-1] > het.bandwidth[0]


# --------------------------------------------------------------------------- extremes and larger K


@pytest.mark.parametrize("k", [1, 64, 256])
def test_extremes_stay_finite_and_deep_fade_is_excluded(k: int) -> None:
    rng = np.random.default_rng(k)
    a = rng.choice([1e-6, 0.3, 0.7, 0.999999], k)
    c = _log_uniform(rng, 1e-7, 10.0, k)
    c[0] = 1e6  # a deep-faded user: drafting even one token costs ~1e6 s
    if k > 1:
        a[0] = 0.999999
    params = RoundParams(acceptance=a, draft_time=_log_uniform(rng, 1e-4, 0.1, k), upload_time=c, max_draft=10)
    het, hom = solve_heterogeneous(params), solve_homogeneous(params)
    check_allocation(params, het, equal_finish=True)
    check_allocation(params, hom, equal_finish=True)
    check_allocation(params, equal_bandwidth_fixed(params), equal_finish=False)
    check_allocation(params, equal_bandwidth_tuned(params), equal_finish=False)
    assert het.draft_lengths[0] == 0 and het.bandwidth[0] == 0.0
    assert het.goodput >= hom.goodput * (1 - TIE)


@pytest.mark.parametrize("seed", range(3))
def test_larger_systems_keep_the_ordering(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    params = make_instance(rng, ("base", "wide", "mixed_extremes")[seed], (16, 32, 64)[seed], 10)
    het, hom = solve_heterogeneous(params), solve_homogeneous(params)
    tuned, fixed = equal_bandwidth_tuned(params), equal_bandwidth_fixed(params)
    check_allocation(params, het, equal_finish=True)
    check_allocation(params, hom, equal_finish=True)
    assert het.goodput >= hom.goodput * (1 - TIE) >= tuned.goodput * (1 - 2 * TIE)
    assert hom.goodput >= fixed.goodput * (1 - TIE)
    # Local optimality of the heterogeneous lengths: no single user's change helps.
    for user in range(params.num_users):
        trial = np.repeat(het.draft_lengths[None, :], params.max_draft + 1, axis=0)
        trial[:, user] = np.arange(params.max_draft + 1)
        assert expected_goodput(params, trial).max() <= het.goodput * (1 + TIE)


# --------------------------------------------------------------------------- baselines


def test_equal_fixed_uses_the_given_length_and_equal_shares() -> None:
    params = make_instance(np.random.default_rng(5), "base", 5, 8)
    default = equal_bandwidth_fixed(params)
    assert np.all(default.draft_lengths == 4) and np.allclose(default.bandwidth, 0.2)
    for length in (0, 1, 8):
        alloc = equal_bandwidth_fixed(params, draft_length=length)
        assert np.all(alloc.draft_lengths == length)
        assert np.all(alloc.bandwidth == (0.2 if length else 0.0))
        assert alloc.goodput == pytest.approx(float(expected_goodput(params, alloc.draft_lengths, alloc.bandwidth)))
    short = RoundParams(acceptance=[0.7], draft_time=[0.01], upload_time=[1e-3], max_draft=2)
    assert equal_bandwidth_fixed(short).draft_lengths.tolist() == [2]  # default 4 capped at L_max


@pytest.mark.parametrize("bad", [-1, 9, 2.5, float("nan"), "4", [4], True])
def test_equal_fixed_rejects_bad_length(bad: object) -> None:
    params = make_instance(np.random.default_rng(6), "base", 3, 8)
    with pytest.raises(ValueError, match="draft_length"):
        equal_bandwidth_fixed(params, draft_length=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(5))
def test_equal_tuned_is_tuned_for_the_average_user(seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = make_instance(rng, "wide", int(rng.integers(2, 8)), 10)
    k = params.num_users
    tuned = equal_bandwidth_tuned(params)
    average = RoundParams(
        acceptance=np.full(k, params.acceptance.mean()),
        draft_time=np.full(k, params.draft_time.mean()),
        upload_time=np.full(k, params.upload_time.mean()),
        verify_base=params.verify_base,
        verify_per_token=params.verify_per_token,
        max_draft=params.max_draft,
        downlink_time=params.downlink_time,
    )
    lengths = np.arange(params.max_draft + 1)[:, None] * np.ones(k, dtype=int)
    shares = np.where(lengths > 0, 1.0 / k, 0.0)
    believed = expected_goodput(average, lengths, shares)
    assert tuned.draft_lengths[0] == int(believed.argmax())
    assert np.all(tuned.draft_lengths == tuned.draft_lengths[0])
    # The reported goodput is the true one, with every user's own parameters.
    true = float(expected_goodput(params, tuned.draft_lengths, tuned.bandwidth))
    assert tuned.goodput == pytest.approx(true, rel=1e-12)


@pytest.mark.parametrize(
    "solver", [solve_homogeneous, solve_heterogeneous, equal_bandwidth_fixed, equal_bandwidth_tuned]
)
@pytest.mark.parametrize("bad", [None, {"acceptance": [0.5]}, np.array([0.5])])
def test_solvers_require_round_params(solver: Callable[[RoundParams], Allocation], bad: object) -> None:
    with pytest.raises(TypeError, match="RoundParams"):
        solver(bad)  # type: ignore[arg-type]


def test_allocation_arrays_are_read_only() -> None:
    alloc = solve_heterogeneous(make_instance(np.random.default_rng(7), "base", 4, 6))
    with pytest.raises(ValueError):
        alloc.draft_lengths[0] = 3
    with pytest.raises(ValueError):
        alloc.bandwidth[0] = 0.5
