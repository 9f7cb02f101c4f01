"""Wall time of the P-hom and P-het solvers (baselines.solvers) on random base-like systems.

Usage: ``python benchmarks/bench_solvers.py [--quick] [--seed N]``

Systems follow the base scenario of model.md section 4: acceptance U(0.5, 0.9),
draft time per token in {4, 10, 25} ms, upload time per token log-uniform in
0.1-5 ms, T0 = 60 ms, kappa = 0.5 ms, L_max = 10. Each solver is warmed up,
then every call is timed with time.perf_counter and the median over all calls
is reported (P-hom in microseconds, P-het in milliseconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

try:
    from baselines.solvers import SOLVERS
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from baselines.solvers import SOLVERS

from multispin_env.model import RoundParams

USERS = (1, 6, 16, 64, 256)
# The two optimisers of baselines.solvers.SOLVERS, under the paper's problem names.
SOLVER_OF = {"P-hom": "hom-opt", "P-het": "het-opt"}
MAX_DRAFT = 10
# (solver, K, limit in seconds) from the issue.
TARGETS = (("P-hom", 6, 100e-6), ("P-het", 6, 5e-3), ("P-het", 64, 100e-3))


def base_like(rng: np.random.Generator, k: int) -> RoundParams:
    """A random system of the base scenario's kind (model.md section 4)."""
    return RoundParams(
        acceptance=rng.uniform(0.5, 0.9, k),
        draft_time=rng.choice([0.004, 0.01, 0.025], k),
        upload_time=10 ** rng.uniform(-4.0, np.log10(5e-3), k),
        verify_base=0.060,
        verify_per_token=0.0005,
        max_draft=MAX_DRAFT,
    )


def median_time(solver: Callable[[RoundParams], object], systems: list[RoundParams], repeats: int) -> float:
    """Median wall time (s) of one call over ``repeats`` calls on each system, after a warm-up."""
    for params in systems[:2]:
        solver(params)
    samples = []
    for params in systems:
        for _ in range(repeats):
            start = time.perf_counter()
            solver(params)
            samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few systems and repeats (a smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random systems")
    args = parser.parse_args(argv)

    n_systems = 4 if args.quick else 20
    rng = np.random.default_rng(args.seed)
    results: dict[tuple[str, int], float] = {}
    gains = {}
    print(f"Median wall time per solve, L_max = {MAX_DRAFT}, {n_systems} random base-like systems per K\n")
    print("| K | P-hom median (us) | P-het median (ms) | G(P-het) / G(P-hom), median |")
    print("|---:|---:|---:|---:|")
    for k in USERS:
        systems = [base_like(rng, k) for _ in range(n_systems)]
        hom_repeats = 20 if args.quick else 200
        het_repeats = 1 if k >= 64 else (3 if args.quick else 10)
        hom, het = (SOLVERS[SOLVER_OF[problem]].solve for problem in ("P-hom", "P-het"))
        results["P-hom", k] = median_time(hom, systems, hom_repeats)
        results["P-het", k] = median_time(het, systems, het_repeats)
        gains[k] = float(np.median([het(p).goodput / hom(p).goodput for p in systems]))
        print(f"| {k} | {results['P-hom', k] * 1e6:.1f} | {results['P-het', k] * 1e3:.2f} | {gains[k]:.4f} |")

    print("\nTargets:")
    for name, k, limit in TARGETS:
        measured = results[name, k]
        verdict = "ok" if measured < limit else "MISSED"
        unit, scale = ("us", 1e6) if limit < 1e-3 else ("ms", 1e3)
        print(f"- {name} K={k}: {measured * scale:.2f} {unit} < {limit * scale:.0f} {unit}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
