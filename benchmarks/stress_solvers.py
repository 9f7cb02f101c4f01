"""Stress check of the solvers against exhaustive search on random round-realism instances.

Two families: ``realism`` (default), the instances of ``tests/test_solvers_realism.py`` (random non-increasing
acceptance curves in three shapes, verification knees and measured-looking profiles, deadlines binding about half
the time), drawn from seeds the test does not use; ``sweep``, the i.i.d. systems that exercise the sync-time sweep
of docs/heterogeneous_solver.md section 3, in turn pole-heavy (K = 5, L_max = 6, t_k in {4, 8, 10, 12, 20} ms,
c_k 0.01-1 ms), base-like (K = 6, L_max = 4) and wide-range (K = 4, L_max = 10). ``--weighted`` gives every
instance random user weights (those of ``tests/test_solvers_weighted.py``: log-uniform, integer priorities, some
users at 0, or equal) and checks the weighted objective sum_k w_k E[n_k] / T (docs/model.md eq. (5w)) against
exhaustive search of it. Prints how many instances missed the exhaustive optimum by more than the test's tolerance
and the worst relative gaps.
Usage: ``python benchmarks/stress_solvers.py [--family realism|sweep] [--instances 2000] [--weighted]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the instance generator of the test
sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
from test_solvers_realism import MAX_GAP, _exhaustive, _instance  # noqa: E402
from test_solvers_weighted import exhaustive_weighted, random_weights  # noqa: E402

from baselines.solvers import solve_heterogeneous, solve_homogeneous  # noqa: E402
from multispin_env.model import RoundParams  # noqa: E402


def sweep_instance(seed: int) -> RoundParams:
    """An i.i.d. system of the ``sweep`` family: pole-heavy, base-like or wide-range by ``seed % 3``."""
    rng = np.random.default_rng([77, seed])
    if seed % 3 == 0:  # drafting-limited users on shared poles l t_k
        k, max_draft = 5, 6
        t, c = rng.choice([0.004, 0.008, 0.010, 0.012, 0.020], k), 10.0 ** rng.uniform(-5.0, -3.0, k)
    elif seed % 3 == 1:  # model.md section 4's base scenario
        k, max_draft = 6, 4
        t, c = rng.choice([0.004, 0.010, 0.025], k), 10.0 ** rng.uniform(-4.0, np.log10(5e-3), k)
    else:
        k, max_draft = 4, 10
        t, c = 10.0 ** rng.uniform(-4.0, -1.0, k), 10.0 ** rng.uniform(-6.0, -1.0, k)
    return RoundParams(
        acceptance=rng.uniform(0.3, 0.95, k),
        draft_time=t,
        upload_time=c,
        verify_base=float(rng.uniform(0.01, 0.1)),
        verify_per_token=float(10.0 ** rng.uniform(-4, -2.5)),
        max_draft=max_draft,
    )


FAMILIES = {"realism": _instance, "sweep": sweep_instance}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000, help="random instances (default 2000)")
    parser.add_argument("--first-seed", type=int, default=10_000, help="seed of the first instance (default 10000)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="realism", help="instance family")
    parser.add_argument("--weighted", action="store_true", help="random user weights; check the weighted objective")
    args = parser.parse_args(argv)
    make = FAMILIES[args.family]
    worst_het = worst_hom = 0.0
    misses = 0
    start = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.instances):
        params = make(seed)
        if args.weighted:
            weights = random_weights(np.random.default_rng([31, seed]), params.num_users)
            params = dataclasses.replace(params, weights=weights)
            best_het, best_hom = exhaustive_weighted(params)
            het, hom = solve_heterogeneous(params).objective, solve_homogeneous(params).objective
        else:
            best_het, best_hom = _exhaustive(params)
            het, hom = solve_heterogeneous(params).goodput, solve_homogeneous(params).goodput
        assert het is not None and hom is not None
        gap_het = (best_het - het) / best_het
        gap_hom = (best_hom - hom) / best_hom
        worst_het, worst_hom = max(worst_het, gap_het), max(worst_hom, gap_hom)
        misses += gap_het > MAX_GAP or gap_hom > MAX_GAP
    print(
        f"{args.instances} {'weighted ' if args.weighted else ''}{args.family} instances (seeds {args.first_seed}..{args.first_seed + args.instances - 1}): "
        f"{misses} missed by more than {MAX_GAP:g}; worst gap P-het {worst_het:.2e}, P-hom {worst_hom:.2e}; "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
