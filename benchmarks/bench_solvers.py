"""Speed of the compiled, batched P-hom and P-het solvers (baselines.solvers) and of het-opt-oracle and
het-opt-predictive on a vector env.

Usage: ``python benchmarks/bench_solvers.py [--quick] [--seed N] [--clock cpu|wall]``

Systems follow the base scenario of model.md section 4: acceptance U(0.5, 0.9),
draft time per token in {4, 10, 25} ms, upload time per token log-uniform in
0.1-5 ms, T0 = 60 ms, kappa = 0.5 ms, L_max = 10. For each K a batch of random
systems is solved in one call (``solve_packed``; the packing is timed too, via
``solve_batch``) and the time per system is the call's time / N; the median over
repeated calls is reported, beside the median of single-system calls
(``solve_homogeneous`` / ``solve_heterogeneous``, Python overhead included).
Then het-opt-oracle acts on a 256-env ``gym.make_vec`` env (policy + env step,
env-steps/s), and het-opt-predictive on one with one-round-old channel information
(``csi_delay=1``, the StaleCSI1 task's setting: with current CSI it would play
het-opt-adaptive's plan alone). The machine may be shared, so time is this process's CPU time by
default (``--clock wall`` for wall time). The solvers are compiled (or loaded
from numba's cache) before any timing; the first call's time is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

try:
    from baselines.solvers import SOLVERS, solve_batch
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from baselines.solvers import SOLVERS, solve_batch

from baselines.policies import make_policy
from multispin_env.model import RoundParams

USERS = (1, 6, 16, 64, 256)
# The two optimisers of baselines.solvers.SOLVERS, under the paper's problem names.
SOLVER_OF = {"P-hom": "hom-opt", "P-het": "het-opt"}
MAX_DRAFT = 10
VECTOR_ENVS = 256
# (solver, K, limit in seconds per system of a batched call): the speed targets.
TARGETS = (("P-hom", 6, 10e-6), ("P-het", 6, 100e-6), ("P-het", 64, 2e-3))
# Policy on a VECTOR_ENVS-env vector env with these settings -> its target, env-steps/s.
POLICY_TARGETS = {"het-opt-oracle": ({}, 20_000.0), "het-opt-predictive": ({"csi_delay": 1}, 10_000.0)}


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


def median_per_system(call: Callable[[], object], systems: int, repeats: int, clock: Callable[[], float]) -> float:
    """Median over ``repeats`` calls of (time of one call) / ``systems``, s."""
    samples = []
    for _ in range(repeats):
        start = clock()
        call()
        samples.append((clock() - start) / systems)
    return float(np.median(samples))


def policy_env_steps(
    make: Callable[[Any], Any], settings: dict[str, object], steps: int, clock: Callable[[], float]
) -> float:
    """env-steps/s of the analytic policy ``make(envs)`` (predict + step) on a VECTOR_ENVS-env vector env of the
    default task with ``settings``."""
    envs = gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=VECTOR_ENVS, **settings)
    policy = make(envs)
    obs, _ = envs.reset(seed=0)
    policy.reset()
    obs, *_ = envs.step(policy.predict(obs)[0])  # warm-up
    start = clock()
    for _ in range(steps):
        obs, *_ = envs.step(policy.predict(obs)[0])
    elapsed = clock() - start
    envs.close()
    return steps * VECTOR_ENVS / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few systems and repeats (a smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random systems")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    rng = np.random.default_rng(args.seed)
    warm = [base_like(rng, 6)]
    start = time.perf_counter()
    for problem in SOLVER_OF.values():
        solve_batch(problem, warm)
    print(f"First calls (compile or load from numba's cache): {time.perf_counter() - start:.2f} s wall\n")

    results: dict[tuple[str, int], float] = {}
    print(
        f"Time per system ({args.clock} clock), L_max = {MAX_DRAFT}, random base-like systems; batched: one "
        "solve_batch call for N systems, single: one call per system\n"
    )
    print(
        "| K | N | P-hom batched (us) | P-hom single (us) | P-het batched (us) | P-het single (us) | "
        "G(P-het) / G(P-hom), median |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k in USERS:
        n = (4 if k >= 64 else 16) if args.quick else (8 if k >= 256 else 32 if k >= 64 else 128)
        systems = [base_like(rng, k) for _ in range(n)]
        row = {}
        for problem, name in SOLVER_OF.items():
            fast = problem == "P-hom" or k <= 16
            repeats = (3 if args.quick else 20) if fast else (1 if args.quick else 3)
            results[problem, k] = median_per_system(
                lambda name=name, systems=systems: solve_batch(name, systems), n, repeats, clock
            )
            solve = SOLVERS[name].solve
            single = median_per_system(
                lambda solve=solve, systems=systems: [solve(p) for p in systems], n, max(1, repeats // 3), clock
            )
            row[problem] = (results[problem, k], single)
        hom, het = solve_batch("hom-opt", systems), solve_batch("het-opt", systems)
        gain = float(np.median([a.goodput / b.goodput for a, b in zip(het, hom, strict=True)]))
        print(
            f"| {k} | {n} | {row['P-hom'][0] * 1e6:.2f} | {row['P-hom'][1] * 1e6:.1f} | "
            f"{row['P-het'][0] * 1e6:.1f} | {row['P-het'][1] * 1e6:.1f} | {gain:.4f} |"
        )

    print()
    rates = {}
    for name, (settings, _) in POLICY_TARGETS.items():
        rates[name] = policy_env_steps(partial(make_policy, name), settings, 2 if args.quick else 10, clock)
        where = f" with {settings}" if settings else ""
        print(f"{name} on a {VECTOR_ENVS}-env gym.make_vec env{where} (policy + step): {rates[name]:,.0f} env-steps/s")

    print("\nTargets:")
    for name, k, limit in TARGETS:
        measured = results[name, k]
        verdict = "met" if measured <= limit else "MISSED"
        print(
            f"- {name} K={k}, per system of a batched call: {measured * 1e6:.1f} us <= {limit * 1e6:.0f} us: {verdict}"
        )
    for name, (_, target) in POLICY_TARGETS.items():
        verdict = "met" if rates[name] >= target else "MISSED"
        print(f"- {name}, {VECTOR_ENVS} envs: {rates[name]:,.0f} >= {target:,.0f} env-steps/s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
