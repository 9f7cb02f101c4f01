"""Tests for baselines.solvers: P-hom and P-het against exhaustive search, structure and baselines.

The brute force enumerates every integer length vector in {0..L_max}^K and gives
each the equal-finish-time shares of model.md section 3, so it is the exact
optimum of P-het (and, restricted to equal lengths, of P-hom). Instances are
drawn from fixed-seed numpy Generators, so every run checks the same systems.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize

import baselines
from baselines import (
    SOLVERS,
    Allocation,
    equal_bandwidth_fixed,
    equal_bandwidth_tuned,
    solve_heterogeneous,
    solve_homogeneous,
)
from baselines.solvers import _equal_finish_shares, _make_allocation
from multispin_env.model import (
    RoundParams,
    equal_finish_time,
    expected_goodput,
    expected_tokens,
    finish_time,
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
    """One system of a named family; all families together span the extremes of the model's parameter ranges."""
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
PER_FAMILY = 60  # 6 families x 60 = 360 instances, a third of them with K = 1 or 2


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
        finish = finish_time(lengths, params.draft_time, params.upload_time, shares)
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
    values = {
        "acceptance": np.full(k, rng.uniform(0.6, 0.9)),
        "draft_time": np.full(k, 0.01),
        "upload_time": np.full(k, 1e-3),
    }
    # Users identical except for the one field, sorted ascending in it.
    if field == "draft_time":
        values[field] = np.sort(rng.uniform(0.004, 0.025, k))
    else:
        values[field] = np.sort(_log_uniform(rng, 1e-4, 5e-3, k))
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


def test_registry_lists_every_solver_with_its_length_structure() -> None:
    assert list(SOLVERS) == ["equal-fixed", "equal-tuned", "hom-opt", "het-opt"]
    assert {spec.solve for spec in SOLVERS.values()} == {
        equal_bandwidth_fixed,
        equal_bandwidth_tuned,
        solve_homogeneous,
        solve_heterogeneous,
    }
    with pytest.raises(TypeError):
        SOLVERS["mine"] = SOLVERS["hom-opt"]  # type: ignore[index]
    rng = np.random.default_rng(11)
    params = [make_instance(rng, family, 5, 6) for family in FAMILIES]
    for name, spec in SOLVERS.items():
        assert spec.name == name
        allocs = [spec.solve(p) for p in params]
        common = [bool(np.all(a.draft_lengths == a.draft_lengths[0])) for a in allocs]
        if spec.common_length:
            assert all(common), name
        else:  # a per-user solver does use its freedom on some of these systems
            assert not all(common), name
    # baselines re-exports exactly the solvers module's public names.
    assert baselines.__all__ == baselines.solvers.__all__
    assert all(hasattr(baselines, name) for name in baselines.__all__)


def test_allocation_arrays_are_read_only() -> None:
    alloc = solve_heterogeneous(make_instance(np.random.default_rng(7), "base", 4, 6))
    with pytest.raises(ValueError):
        alloc.draft_lengths[0] = 3
    with pytest.raises(ValueError):
        alloc.bandwidth[0] = 0.5


# --------------------------------------------------------------------------- hard instances

# Systems on which a simplified P-het solver fell short of exhaustive search during
# development (found by random search over K = 3-5). The variant is named for
# each: "nols" = no local search, "nopairs" = no pairwise moves, "nopoles" = no
# sync-time points just above the poles l t_k, "onestart" = a single local-search
# start. The expected optimum is recomputed by brute force here, never stored.
HARD_INSTANCES: list[dict[str, object]] = [
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.5, 0.5, 0.999999],
        draft_time=[0.00020391882593537105, 0.027070438510009478, 0.009369087550373262],
        upload_time=[0.0008283397571796577, 0.0024136519976981517, 0.00010699660439076007],
        verify_base=0.2307014182227917,
        verify_per_token=0.0,
        max_draft=10,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.6238527013344557, 0.7483903218342591, 0.37174223144357343, 0.32278620184243295],
        draft_time=[0.018329559671114052, 0.00040870004818526775, 0.0066376108232427695, 0.00019524731659100635],
        upload_time=[0.00011918224937008999, 0.024089354718562866, 0.0001230539330978127, 0.0046634285291689585],
        verify_base=0.03820160720728551,
        verify_per_token=2.0248219310105998e-05,
        max_draft=10,
        downlink_time=0.046339089891758084,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.6102648942063447, 0.776249293085447, 0.5637204885925771, 0.7739120195161406, 0.640063796532508],
        draft_time=[
            0.0003517952185037895,
            0.0001422109329373134,
            0.02236185616209657,
            0.00010312344008669859,
            0.004243403584606772,
        ],
        upload_time=[
            0.001606468195035624,
            1.058976890966824e-06,
            4.504924348614109e-07,
            0.00811724456996653,
            0.0020554302613401405,
        ],
        verify_base=0.27625141604903064,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.8081296595430165, 0.4757602429508122, 0.45061582799418, 0.8735498993106614, 0.46586393778133106],
        draft_time=[
            0.004486712561534537,
            0.06681984289799021,
            0.0018415198312799245,
            0.014437791373864311,
            0.006927303161581016,
        ],
        upload_time=[
            0.024891032155850156,
            0.08488684617568532,
            1000000.0,
            2.9513428237739688e-06,
            0.0007113651499288746,
        ],
        verify_base=0.13260041039960832,
        verify_per_token=0.0015532005478414424,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.6233609530994916, 0.6602476164137214, 0.5827554659560241, 0.3716640763021819],
        draft_time=[0.0001276763925030869, 0.014204997409014156, 0.0006684434295800944, 0.002208122894129909],
        upload_time=[0.0028662739891507755, 0.00013325783158076333, 0.011151556285869913, 0.023424053222748424],
        verify_base=0.022576074571669394,
        verify_per_token=3.2498596294969496e-05,
        max_draft=10,
        downlink_time=0.040480746030102724,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[
            0.0004597429163048701,
            0.0017560424688907858,
            0.23302294363897164,
            0.18822934958112023,
            5.333584771210256e-06,
        ],
        draft_time=[
            0.00023513377864777714,
            0.0005896979202723265,
            0.002646230964100318,
            0.00952798062383967,
            0.021233597155999043,
        ],
        upload_time=[
            6.67679640602326e-07,
            4.98128748431023e-07,
            1.5089985654665354,
            1.2169610707720824e-07,
            0.6397715490831735,
        ],
        verify_base=0.30841377352618404,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.009432414169574306,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.7847076665778199, 0.49983695226438374, 0.47017492553501067, 0.5022068485974335],
        draft_time=[0.012, 0.004, 0.008, 0.004],
        upload_time=[1.4249241908190607e-06, 0.006363684975125078, 7.583636541654231e-06, 0.0026202241504463086],
        verify_base=0.043267337537703766,
        verify_per_token=0.0,
        max_draft=10,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nopoles
    dict(
        acceptance=[0.6251870611833886, 0.8896160645896458, 0.9741250041028349, 0.9849907018330848],
        draft_time=[0.004, 0.008, 0.012, 0.02],
        upload_time=[0.0008036689602052343, 2.4911876530611246e-05, 1.0095982031546078e-06, 0.001037309425372346],
        verify_base=0.04321823915901966,
        verify_per_token=0.0,
        max_draft=10,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nopoles
    dict(
        acceptance=[0.9864458420634097, 0.4293651105463955, 0.742009681585433, 0.7809472299152079],
        draft_time=[0.01, 0.012, 0.008, 0.02],
        upload_time=[1.917140123051994e-05, 0.003756617071412479, 0.00017167561376161796, 0.0014381466103232114],
        verify_base=0.04647094938229691,
        verify_per_token=0.0,
        max_draft=10,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nopoles
    dict(
        acceptance=[0.9633176066042468, 0.5829266861640985, 0.4441989042952389, 0.654306702619419, 0.8959995051756611],
        draft_time=[0.004, 0.01, 0.008, 0.01, 0.004],
        upload_time=[
            1.5885742137763443e-06,
            0.0006033661604276125,
            0.00017785393970656783,
            4.743070567147992e-05,
            4.150568938674471e-06,
        ],
        verify_base=0.01832375702964181,
        verify_per_token=0.0005,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[
            0.48888683845351466,
            0.6059602755293049,
            0.6028940130697453,
            0.9196282231604245,
            0.32641424652099116,
        ],
        draft_time=[0.012, 0.008, 0.02, 0.01, 0.004],
        upload_time=[
            3.405332930896488e-05,
            0.009541712517640119,
            0.001512161269203686,
            1.0499884655549632e-06,
            0.0002524821567394039,
        ],
        verify_base=0.08882958018969259,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.8267582769447852, 0.7906896395164575, 0.8546539186380258, 0.5480664205960382],
        draft_time=[0.002207541721068908, 0.003933507359804434, 0.03285031532335506, 0.012616018079187948],
        upload_time=[0.0029170781525321094, 0.04834164457342979, 3.0655471757955e-05, 0.028623886378066742],
        verify_base=0.2296604874189869,
        verify_per_token=0.003693321826187824,
        max_draft=10,
        downlink_time=0.01587872285408143,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.7964263960278374, 0.7581229241795215, 0.5499502186290057, 0.4199678235082805, 0.3524277630029573],
        draft_time=[0.012, 0.008, 0.004, 0.01, 0.004],
        upload_time=[
            1.2503990707463209e-05,
            2.310966616270431e-06,
            0.0029159020818186705,
            3.536377064892272e-05,
            0.003060862470896565,
        ],
        verify_base=0.04419108109259168,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[1e-06, 0.999999, 0.5, 0.999999],
        draft_time=[0.06632838882175499, 0.009780310706960749, 0.0009773147714081185, 0.02472884924421757],
        upload_time=[0.0002027138316972704, 0.02863131304618448, 0.0015443978445581152, 0.0001510506549467396],
        verify_base=0.11270129210544624,
        verify_per_token=1.2518096984941013e-05,
        max_draft=10,
        downlink_time=0.022199814642125178,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.73545327629502, 0.6789428564114524, 0.4751589767869945, 0.9768850788530801, 0.8581107667738403],
        draft_time=[0.012, 0.004, 0.012, 0.02, 0.004],
        upload_time=[
            0.005843698403153839,
            0.0031112898877001987,
            0.00043962012387647217,
            1.1155321407712748e-06,
            2.2391374082904697e-06,
        ],
        verify_base=0.04191534163934125,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.3585828557435546, 0.32296255762342296, 0.9234157569392867],
        draft_time=[0.0003495728848603165, 0.046254142505896885, 0.0028120156573323476],
        upload_time=[0.0007237713798033065, 5.293195673395575, 3.0489662631060105e-06],
        verify_base=0.027388591984467168,
        verify_per_token=0.0,
        max_draft=10,
        downlink_time=0.037204186213551434,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[
            0.8797010150993592,
            0.6819432230172187,
            0.32563060730784726,
            0.8914968780112114,
            0.7774018457600465,
        ],
        draft_time=[
            0.054564908417583394,
            0.00031381816770052127,
            0.001041983342946022,
            0.006529071070052584,
            0.02241249771289635,
        ],
        upload_time=[
            0.01888267108818922,
            0.00017976891493882963,
            0.0012444173992260648,
            0.00011320261507298819,
            0.026167593311251024,
        ],
        verify_base=0.21644200320071383,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.4312463540401914, 0.40637045177987163, 0.605666451260064, 0.8848351764985998, 0.7125701694952371],
        draft_time=[
            0.0014749002094878792,
            0.0006977899480259839,
            0.005734466501892795,
            0.0028094150198780207,
            0.0040633597393016025,
        ],
        upload_time=[
            0.001043007107914281,
            0.00015933950529073182,
            0.0179662506707504,
            0.0002672696364497855,
            0.0005555662539696012,
        ],
        verify_base=0.17335570562088054,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.999999, 0.5, 0.999999, 1e-06, 0.5],
        draft_time=[
            0.044165255409963036,
            0.00040907331591206965,
            0.005488488983260635,
            0.0005371465685596756,
            0.0008940208110252794,
        ],
        upload_time=[
            5.443187275526523e-06,
            4.1186466778010675e-05,
            5.269670197873027e-07,
            1.3433974666896134e-06,
            0.08681105563971067,
        ],
        verify_base=0.062347884036994365,
        verify_per_token=0.0,
        max_draft=5,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[
            0.36722897373802665,
            0.7449106119947553,
            0.9003109922805914,
            0.3990915459477854,
            0.9264395819496065,
        ],
        draft_time=[
            0.0007453246308159082,
            0.0030101287796995987,
            0.06937891961590803,
            0.0006095403172365403,
            0.012941173628260269,
        ],
        upload_time=[
            0.0029203306821825987,
            0.008604302312366873,
            0.0011676961742724174,
            0.012320664646075962,
            0.00013053103372535357,
        ],
        verify_base=0.1962355212844592,
        verify_per_token=5.3110017779734483e-05,
        max_draft=5,
        downlink_time=0.023454924593493544,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.4753158146856784, 0.6401834162919204, 0.8187571532520515, 0.8799242580213753],
        draft_time=[0.006642956188274884, 0.08955017765581912, 0.00020449516156388034, 0.00011876401791092824],
        upload_time=[0.030267980222620828, 0.0001388418779081431, 0.004325864619965372, 0.006064656855075002],
        verify_base=0.13301522155845427,
        verify_per_token=0.0,
        max_draft=10,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: nols
    dict(
        acceptance=[0.8845389171544893, 0.9824874160296593, 0.31122793940625876, 0.649308537908508],
        draft_time=[0.01, 0.01, 0.008, 0.004],
        upload_time=[1.2499496199973103e-05, 7.989048974086542e-05, 2.122136263931246e-05, 0.00011424893334635635],
        verify_base=0.07229457729373433,
        verify_per_token=0.0,
        max_draft=10,
        downlink_time=0.0,
    ),
    # simpler variant that missed it: starts within 1 % of the best candidate only
    dict(
        acceptance=[0.64295754, 0.72254118, 0.83339955, 0.35122895, 0.65604317],
        draft_time=[0.01107051, 0.00021825, 0.00094754, 0.00107925, 0.03841637],
        upload_time=[0.040329871, 8.36703716, 0.0695117553, 0.00122435634, 2.10851469e-07],
        verify_base=0.19974697105208905,
        verify_per_token=1.189150017331753e-05,
        max_draft=5,
        downlink_time=7.21169129470678e-05,
    ),
]


@pytest.mark.parametrize("index", range(len(HARD_INSTANCES)))
def test_heterogeneous_equals_brute_force_on_hard_instances(index: int) -> None:
    params = RoundParams(**HARD_INSTANCES[index])  # type: ignore[arg-type]
    grid, values = brute_force(params)
    het = solve_heterogeneous(params)
    best = float(values.max())
    assert (best - het.goodput) / best <= MAX_GAP, (het, grid[values.argmax()])
    check_allocation(params, het, equal_finish=True)


# --------------------------------------------------------------------------- extreme but valid inputs

HUGE = float(np.finfo(np.float64).max)  # the largest finite time RoundParams accepts, ~1.8e308 s


def _restricted_optimum(params: RoundParams, free: np.ndarray) -> tuple[float, float]:
    """Exhaustive (P-het, P-hom) optima when only the users in ``free`` may draft (the others keep L_k = 0).

    Exact for systems whose other users take ~1e308 s per token: any allocation that gives them a
    token has a latency beyond 1e308 s, i.e. a goodput below 1e-305 tokens/s.
    """
    idx = np.flatnonzero(free)
    grid = np.zeros(((params.max_draft + 1) ** idx.size, params.num_users), dtype=np.int64)
    grid[:, idx] = list(itertools.product(range(params.max_draft + 1), repeat=idx.size))
    values = expected_goodput(params, grid)
    hom = float(values[0]) if idx.size < params.num_users else float(values[grid.min(1) == grid.max(1)].max())
    return float(values.max()), hom


@pytest.mark.parametrize("value", [1e308, HUGE])
@pytest.mark.parametrize("field", ["upload_time", "draft_time"])
@pytest.mark.parametrize(("k", "slow"), [(1, 1), (2, 1), (3, 2), (3, 3), (4, 1)])
def test_a_user_taking_1e308_s_per_token_does_not_draft(value: float, field: str, k: int, slow: int) -> None:
    rng = np.random.default_rng(k * 10 + slow)
    base = make_instance(rng, "base", k, 4)
    times = {"draft_time": base.draft_time.copy(), "upload_time": base.upload_time.copy()}
    times[field][:slow] = value  # e.g. a deep fade: one token's upload takes 1e308 s
    params = RoundParams(acceptance=base.acceptance, max_draft=4, **times)
    free = np.arange(k) >= slow
    best_het, best_hom = _restricted_optimum(params, free)

    het, hom = solve_heterogeneous(params), solve_homogeneous(params)
    assert np.all(het.draft_lengths[:slow] == 0) and np.all(het.bandwidth[:slow] == 0.0)
    assert (best_het - het.goodput) / best_het <= MAX_GAP and het.goodput <= best_het * (1 + TIE)
    # One common length would make the slow user draft too: server-only decoding is the P-hom optimum.
    assert np.all(hom.draft_lengths == 0) and abs(hom.goodput - best_hom) <= TIE * best_hom
    tuned = equal_bandwidth_tuned(params)  # the mean user is as slow: it does not draft either
    assert np.all(tuned.draft_lengths == 0)
    for alloc in (het, hom, tuned):
        check_allocation(params, alloc, equal_finish=True)
    # The fixed baseline does give the slow user 4 tokens: a latency beyond float range, named.
    with pytest.raises(ValueError, match=r"overflows float64.*upload_time"):
        equal_bandwidth_fixed(params)


@pytest.mark.parametrize(
    ("scalars", "outcome"),
    [
        ({"verify_base": 1e9}, "drafts"),  # verification dwarfs drafting: draft everything
        ({"downlink_time": 1e9}, "drafts"),
        ({"verify_base": 1e9, "verify_per_token": 1e9}, "optimum"),  # each drafted token costs 1e9 s
        ({"verify_base": HUGE, "downlink_time": HUGE}, "verify_base"),  # beyond RoundParams' 1e9 s bound
        ({"verify_per_token": 1e308}, "verify_per_token"),
    ],
)
def test_huge_verification_and_downlink_times(scalars: dict[str, float], outcome: str) -> None:
    users = {"acceptance": [0.6, 0.8, 0.9], "draft_time": [0.004, 0.01, 0.025], "upload_time": [1e-3, 2e-4, 5e-3]}
    if outcome not in ("drafts", "optimum"):  # scalar times are bounded to 1e9 s (docs/model.md 4.1): named
        with pytest.raises(ValueError, match=outcome):
            RoundParams(**users, max_draft=3, **scalars)
        return
    params = RoundParams(**users, max_draft=3, **scalars)
    solvers = [solve_heterogeneous, solve_homogeneous, equal_bandwidth_tuned, equal_bandwidth_fixed]
    best_het, best_hom = _restricted_optimum(params, np.ones(3, dtype=bool))
    het, hom = solve_heterogeneous(params), solve_homogeneous(params)
    # Goodputs are ~1e-300 tokens/s here: relative gaps (pytest.approx's absolute 1e-12 would pass anything).
    assert abs(het.goodput - best_het) <= MAX_GAP * best_het and abs(hom.goodput - best_hom) <= MAX_GAP * best_hom
    if outcome == "drafts":  # a drafted token costs nothing next to the verification pass: draft all
        assert het.draft_lengths.tolist() == hom.draft_lengths.tolist() == [3, 3, 3]
    else:
        assert het.goodput > hom.goodput * (1 + 1e-3)  # a case where per-user lengths pay
    for solver in solvers:
        check_allocation(params, solver(params), equal_finish=solver in (solve_heterogeneous, solve_homogeneous))


FIELDS = ("acceptance", "draft_time", "upload_time", "verify_base", "verify_per_token", "max_draft", "downlink_time")


def _seconds(zero: bool) -> st.SearchStrategy[float]:
    """Any time RoundParams accepts, log-uniform over the float range, plus its ends."""
    exponents = st.floats(-323.0, 308.25).map(lambda e: 10.0**e).filter(lambda x: 0.0 < x < float("inf"))
    ends = [5e-324, 2.2250738585072014e-308, 1.0, 1e308, HUGE] + ([0.0] if zero else [])
    return st.one_of(exponents, st.sampled_from(ends))


def _scalar_seconds(zero: bool) -> st.SearchStrategy[float]:
    """Any T0, kappa or T_dl RoundParams accepts (up to 1e9 s), log-uniform, plus its ends."""
    exponents = st.floats(-323.0, 9.0).map(lambda e: 10.0**e).filter(lambda x: 0.0 < x <= 1e9)
    return st.one_of(exponents, st.sampled_from([5e-324, 2.2250738585072014e-308, 1.0, 1e9] + ([0.0] if zero else [])))


def independent_objective(params: RoundParams, lengths: np.ndarray, shares: np.ndarray) -> float:
    """sum_k w_k E[n_k] / T of given lengths and shares by eq. (1)-(5) (weights: all ones when None), written here
    without the solvers' or the model's functions; nan when the round leaves the float range."""
    drafting = lengths > 0
    with np.errstate(all="ignore"):
        sync = max(
            float(np.max(lengths * (params.draft_time + params.upload_time / np.where(drafting, shares, 1.0)))), 0.0
        )
        latency = (
            sync + params.verify_base + params.verify_per_token * float((lengths + 1).sum()) + params.downlink_time
        )
        a = params.acceptance
        weights = np.ones(params.num_users) if params.weights is None else params.weights
        # E[n_k] = sum_{i=0}^{L_k} a_k^i, summed term by term: (1 - a^(L+1)) / (1 - a) cancels near a = 1
        tokens = [sum(float(a_k) ** i for i in range(int(l_k) + 1)) for a_k, l_k in zip(a, lengths, strict=True)]
        value = float(np.dot(weights, tokens)) / latency
    return value if np.isfinite(value) and 0.0 < latency < np.inf else float("nan")


@st.composite
def extreme_params(draw: st.DrawFn) -> RoundParams:
    k = draw(st.integers(1, 3))
    users = st.lists(_seconds(False), min_size=k, max_size=k)
    acceptance = st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)
    return RoundParams(
        acceptance=draw(st.lists(acceptance, min_size=k, max_size=k)),
        draft_time=draw(users),
        upload_time=draw(users),
        verify_base=draw(_scalar_seconds(False)),
        verify_per_token=draw(_scalar_seconds(True)),
        downlink_time=draw(_scalar_seconds(True)),
        max_draft=draw(st.integers(1, 3)),
    )


@given(extreme_params())
def test_solvers_over_the_whole_valid_range(params: RoundParams) -> None:
    """Any valid RoundParams: an allocation consistent with eq. (1)-(5), or a ValueError naming the settings.

    Never a ZeroDivisionError, an OverflowError, a RuntimeWarning (errors under this suite's
    filterwarnings) or a NaN; and P-het is at least as good as every other solver.
    """
    results: dict[str, Allocation] = {}
    for name, spec in SOLVERS.items():
        try:
            alloc = spec.solve(params)
        except ValueError as exc:
            assert any(field in str(exc) for field in FIELDS), exc
            continue
        results[name] = alloc
        lengths, shares = alloc.draft_lengths, alloc.bandwidth
        assert np.all((lengths >= 0) & (lengths <= params.max_draft))
        assert np.all(shares >= 0.0) and np.all(shares[lengths == 0] == 0.0)
        if lengths.any():
            assert shares.sum() == pytest.approx(1.0, rel=1e-12)
        assert np.isfinite([alloc.goodput, alloc.latency, alloc.sync_time]).all()
        assert alloc.goodput >= 0.0 and alloc.latency > 0.0
        if spec.common_length:
            assert np.all(lengths == lengths[0])
        reported = independent_objective(params, lengths, shares)
        if np.isfinite(reported):
            assert alloc.goodput == pytest.approx(reported, rel=1e-9), name
    if "het-opt" in results:
        for name, alloc in results.items():
            assert results["het-opt"].goodput >= alloc.goodput * (1 - 1e-9), name
        # Exhaustive search over the lengths, each with its equal-finish shares computed the solvers'
        # overflow-safe way (model.optimal_bandwidth itself overflows or loses the shares to rounding
        # at these extremes); allocations whose round leaves the float range are skipped.
        best = 0.0
        for row in itertools.product(range(params.max_draft + 1), repeat=params.num_users):
            lengths = np.array(row, dtype=np.int64)
            try:
                alloc = _make_allocation(params, lengths, _equal_finish_shares(params, lengths))
            except ValueError:
                continue
            best = max(best, alloc.goodput)
        assert results["het-opt"].goodput >= best * (1 - MAX_GAP)


def _root_by_bisection(work: np.ndarray, offset: np.ndarray) -> float:
    """The equal-finish root of sum_k w_k / (tau - o_k) = 1 by bisection: an oracle independent of Newton."""
    active = work > 0.0
    if not active.any():
        return 0.0
    w, o = work[active], offset[active]
    lo, hi = float(o.max()), float(o.max() + w.sum())  # F(lo+) = inf > 1 >= F(hi)
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if np.sum(w / (mid - o)) > 1.0:
            lo = mid
        else:
            hi = mid
    return hi


def test_a_drafting_bound_user_with_a_negligible_upload() -> None:
    # User 0 drafts slowly but uploads in 1e-16 of its drafting time; users 1-2 alone need a longer
    # sync time. Newton started on user 0's pole stopped there (model.equal_finish_time returns
    # NaN here, and a root with F = 1.36 at a ratio of 1e-15).
    params = RoundParams(
        acceptance=[0.9, 0.8, 0.7],
        draft_time=[1.05e-3, 4.87e-4, 1e-9],
        upload_time=[1.05e-19, 5.07e-4, 1.43e-4],
        verify_base=0.01,
        verify_per_token=1e-4,
        max_draft=2,
    )
    best = 0.0
    for row in itertools.product(range(3), repeat=3):
        lengths = np.array(row, dtype=float)
        tau = _root_by_bisection(lengths * params.upload_time, lengths * params.draft_time)
        latency = tau + float(np.sum(lengths + 1)) * params.verify_per_token + params.verify_base
        best = max(best, float(expected_tokens(params.acceptance, lengths).sum()) / latency)
    het = solve_heterogeneous(params)
    assert abs(het.goodput - best) <= MAX_GAP * best
    oracle = _root_by_bisection(het.draft_lengths * params.upload_time, het.draft_lengths * params.draft_time)
    assert het.sync_time == pytest.approx(oracle, rel=1e-9)
    check_allocation(params, het, equal_finish=False)
    hom = solve_homogeneous(params)
    check_allocation(params, hom, equal_finish=False)
    assert hom.sync_time == pytest.approx(
        _root_by_bisection(hom.draft_lengths * params.upload_time, hom.draft_lengths * params.draft_time), rel=1e-9
    )


@pytest.mark.parametrize("seed", range(4))
def test_heterogeneous_is_never_below_homogeneous_even_by_rounding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 9))
    identical = RoundParams(  # the fig. 5 "only a differs" row at spread 0: no gain, exactly
        acceptance=np.full(k, 0.7), draft_time=np.full(k, 0.004), upload_time=np.full(k, 1e-3 * (seed + 1))
    )
    assert solve_heterogeneous(identical).goodput == solve_homogeneous(identical).goodput
    for family in FAMILIES:
        params = make_instance(rng, family, k, 6)
        assert solve_heterogeneous(params).goodput >= solve_homogeneous(params).goodput
