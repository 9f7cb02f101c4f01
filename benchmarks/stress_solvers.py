"""Stress check of the solvers against exhaustive search on random round-realism instances.

The instances are those of ``tests/test_solvers_realism.py`` (random non-increasing acceptance curves in three
shapes, verification knees and measured-looking profiles, deadlines binding about half the time), drawn from
seeds the test does not use. Prints how many instances missed the exhaustive optimum by more than the test's
tolerance and the worst relative gaps. Usage: ``python benchmarks/stress_solvers.py [--instances 2000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the instance generator of the test
sys.path.insert(0, str(ROOT))

from test_solvers_realism import MAX_GAP, _exhaustive, _instance  # noqa: E402

from baselines.solvers import solve_heterogeneous, solve_homogeneous  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000, help="random instances (default 2000)")
    parser.add_argument("--first-seed", type=int, default=10_000, help="seed of the first instance (default 10000)")
    args = parser.parse_args(argv)
    worst_het = worst_hom = 0.0
    misses = 0
    start = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.instances):
        params = _instance(seed)
        best_het, best_hom = _exhaustive(params)
        gap_het = (best_het - solve_heterogeneous(params).goodput) / best_het
        gap_hom = (best_hom - solve_homogeneous(params).goodput) / best_hom
        worst_het, worst_hom = max(worst_het, gap_het), max(worst_hom, gap_hom)
        misses += gap_het > MAX_GAP or gap_hom > MAX_GAP
    print(f"{args.instances} instances (seeds {args.first_seed}..{args.first_seed + args.instances - 1}): "
          f"{misses} missed by more than {MAX_GAP:g}; worst gap P-het {worst_het:.2e}, P-hom {worst_hom:.2e}; "
          f"{time.perf_counter() - start:.0f} s")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
