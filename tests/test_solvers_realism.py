"""The solvers against exhaustive search on the round-realism instances (docs/model.md eq. (1'), (2'), any
acceptance curve): random non-increasing survival curves, verification knees in {0, 8, 32, 128}, measured
profiles, binding and loose upload deadlines.

Exhaustive search: every length vector in {0..L_max}^K with the equal-finish shares, scored by
:func:`multispin_env.model.expected_goodput` (which applies the deadline's drop rule, eq. (1')).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from baselines.solvers import equal_bandwidth_tuned, solve_heterogeneous, solve_homogeneous
from multispin_env.model import RoundParams, expected_goodput, round_latency

MAX_GAP = 1e-9  # accepted relative shortfall against the exhaustive optimum
INSTANCES = 240
KNEES = (0.0, 8.0, 32.0, 128.0)


def _survival(rng: np.random.Generator, k: int, max_draft: int) -> np.ndarray:
    """Random acceptance curves P(A >= i): products of random conditional rates, in three shapes (falling,
    rising along the draft as measured, i.i.d.-like), so the curve is non-increasing by construction."""
    shape = rng.integers(3)
    base = rng.uniform(0.3, 0.95, (k, 1))
    if shape == 0:  # conditional rate falling with the position (positional-like)
        conditional = base * rng.uniform(0.6, 1.0, (k, 1)) ** np.arange(max_draft)
    elif shape == 1:  # rising along the draft (rounds of varying difficulty)
        conditional = 1.0 - (1.0 - base) * rng.uniform(0.5, 1.0, (k, 1)) ** np.arange(max_draft)
    else:  # any curve: independent conditional rates per position
        conditional = rng.uniform(0.05, 0.99, (k, max_draft))
    return np.cumprod(np.clip(conditional, 1e-6, 1.0), axis=1)


def _instance(seed: int) -> RoundParams:
    rng = np.random.default_rng([2026, 11, seed])
    k = int(rng.integers(1, 5))
    max_draft = int(rng.integers(3, 8 if k <= 3 else 6))
    t = rng.choice([0.004, 0.010, 0.025], k) * rng.uniform(0.5, 2.0, k)
    c = 10.0 ** rng.uniform(-4.5, -1.5, k)
    kind = seed % 3
    verify = {"verify_base": float(rng.uniform(0.01, 0.1)), "verify_per_token": float(10.0 ** rng.uniform(-4, -2))}
    if kind == 1:  # a knee: from the set, or inside this batch's range so that T_ver kinks within it
        in_range = float(rng.uniform(k, k * (max_draft + 1)))
        verify["verify_knee_tokens"] = KNEES[(seed // 6) % len(KNEES)] if (seed // 3) % 2 else in_range
    elif kind == 2:  # a measured-looking monotone profile
        tokens = np.cumsum(rng.integers(1, 12, int(rng.integers(2, 6))))
        seconds = np.cumsum(rng.uniform(0.0, 0.02, tokens.size)) + rng.uniform(0.01, 0.08)
        verify["verify_profile"] = tuple(zip(tokens.tolist(), seconds.tolist(), strict=True))
    params = RoundParams(
        acceptance=None,
        survival=_survival(rng, k, max_draft),
        draft_time=t,
        upload_time=c,
        max_draft=max_draft,
        downlink_time=float(rng.choice([0.0, 0.005])),
        **verify,
    )
    if seed % 2:  # a deadline around the unconstrained optimum's sync time: binding about half of the time
        sync = solve_heterogeneous(params).sync_time
        deadline = float(sync * rng.uniform(0.3, 1.5)) if sync > 0 else float(rng.uniform(0.01, 0.2))
        params = RoundParams(
            acceptance=None,
            survival=params.survival,
            draft_time=t,
            upload_time=c,
            max_draft=max_draft,
            downlink_time=params.downlink_time,
            upload_deadline=deadline,
            **verify,
        )
    return params


def _exhaustive(params: RoundParams) -> tuple[float, float]:
    """(P-het optimum, P-hom optimum) by enumeration; goodputs in tokens/s."""
    k, lm = params.num_users, params.max_draft
    grid = np.array(list(itertools.product(range(lm + 1), repeat=k)), dtype=np.float64)
    het = float(expected_goodput(params, grid).max())
    common = np.repeat(np.arange(lm + 1, dtype=np.float64)[:, None], k, axis=1)
    hom = float(expected_goodput(params, common).max())
    return het, hom


@pytest.mark.parametrize("block", range(8))
def test_solvers_match_exhaustive_search_on_realism_instances(block: int) -> None:
    binding = 0
    for seed in range(block, INSTANCES, 8):
        params = _instance(seed)
        best_het, best_hom = _exhaustive(params)
        het, hom = solve_heterogeneous(params), solve_homogeneous(params)
        assert het.goodput >= best_het * (1 - MAX_GAP), (seed, het, best_het)
        assert hom.goodput >= best_hom * (1 - MAX_GAP), (seed, hom, best_hom)
        for alloc in (het, hom):
            # Never past the deadline, and the reported goodput is the model's for that allocation.
            assert alloc.sync_time <= params.deadline * (1 + 1e-12)
            assert alloc.goodput == pytest.approx(
                float(expected_goodput(params, alloc.draft_lengths, alloc.bandwidth)), rel=1e-9
            )
            assert alloc.latency == pytest.approx(
                float(round_latency(params, alloc.draft_lengths, alloc.bandwidth)), rel=1e-9
            )
        assert het.goodput >= hom.goodput * (1 - 1e-12)
        tuned = equal_bandwidth_tuned(params)
        assert tuned.goodput == pytest.approx(
            float(expected_goodput(params, tuned.draft_lengths, tuned.bandwidth)), rel=1e-9
        )
        unconstrained = RoundParams(
            acceptance=None,
            survival=params.survival,
            draft_time=params.draft_time,
            upload_time=params.upload_time,
            max_draft=params.max_draft,
            verify_base=params.verify_base,
            verify_per_token=params.verify_per_token,
            verify_knee_tokens=params.verify_knee_tokens,
            verify_profile=params.verify_profile,
            downlink_time=params.downlink_time,
        )
        binding += params.upload_deadline is not None and solve_heterogeneous(unconstrained).sync_time > params.deadline
    if block % 2:  # odd seeds carry a deadline
        assert binding >= 3, "the instances should include binding deadlines"


def test_a_knee_makes_drafting_free_until_the_batch_fills_it() -> None:
    """Below the knee verification costs nothing per token: the optimum drafts longer than without it."""
    users = {
        "acceptance": [0.7] * 4,
        "draft_time": [0.004] * 4,
        "upload_time": [1e-4] * 4,
        "max_draft": 8,
        "verify_base": 0.05,
        "verify_per_token": 0.004,
    }
    flat = solve_heterogeneous(RoundParams(**users, verify_knee_tokens=64.0))
    affine = solve_heterogeneous(RoundParams(**users))
    assert flat.draft_lengths.sum() > affine.draft_lengths.sum()
    assert flat.goodput > affine.goodput


def test_a_positional_curve_changes_the_optimum_an_iid_model_would_pick() -> None:
    """Planning with the true (falling) curve, not the position-1 rate as if i.i.d., drafts less and gains."""
    a, decay, lm = np.array([0.9, 0.85]), 0.7, 10
    positions = np.arange(1, lm + 1)
    curve = a[:, None] ** positions * decay ** (positions * (positions - 1) / 2)
    common = {"draft_time": [0.004, 0.01], "upload_time": [1e-3, 1e-3], "max_draft": lm}
    truth = RoundParams(acceptance=None, survival=curve, **common)
    naive = solve_heterogeneous(RoundParams(acceptance=a, **common))
    informed = solve_heterogeneous(truth)
    assert informed.draft_lengths.sum() < naive.draft_lengths.sum()
    assert float(expected_goodput(truth, informed.draft_lengths, informed.bandwidth)) > float(
        expected_goodput(truth, naive.draft_lengths, naive.bandwidth)
    )
