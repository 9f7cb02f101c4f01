"""What planning with the right acceptance curve changes, measured in the environment.

Usage: ``python benchmarks/bench_curves.py [--episodes 10] [--horizon 10] [--processes positional,tasks,markov]``

For each acceptance process (docs/model.md section 5.1) het-opt-static and het-opt-oracle play
``MultiSpin-Heterogeneous-v0`` (base scenario, fading off, a new population per episode, fixed episode seeds
0..n-1 shared by every row: common random numbers) twice:

- ``curve``: as built (:mod:`baselines.information`): the solver plans with the process's acceptance curve
  P(A_k >= i) (static: the long-run curve, e.g. the task mix sum_j p_j a_j^i; oracle: the current one);
- ``iid``: the same RoundParams with ``survival=None``, i.e. the i.i.d. model a^i of the rate the
  information level reports (static: the process's long-run mean rate, position 1 for positional; oracle: the
  current position-1 rate), which is what every level planned with before the round model took curves.

Goodput = tokens / simulated clock of each episode (eq. (5) as the env measures it), mean over episodes, with
the mean drafted length per user and round. Prints a markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    import baselines  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym

import multispin_env  # noqa: F401  (registers the environments)
from baselines.policies import AnalyticPolicy
from baselines.solvers import Allocation, solve_heterogeneous
from multispin_env.model import RoundParams

PROCESSES = ("positional", "tasks", "markov")
LEVELS = ("static", "oracle")


def iid_model(params: RoundParams) -> RoundParams:
    """``params`` with the acceptance curve replaced by the i.i.d. curve a_k^i of its reported rate a_k
    (``params.acceptance``: the position-1 or long-run mean rate), everything else (times, verification
    profile, deadline) kept."""
    return dataclasses.replace(params, survival=None)


def solve_with_iid_model(params: RoundParams) -> Allocation:
    """P-het planned as if acceptance were i.i.d. at the reported rate (how the planners worked before they took the acceptance process's survival curve)."""
    return solve_heterogeneous(iid_model(params))


def episode(env: Any, policy: AnalyticPolicy, seed: int) -> tuple[float, float]:
    """Play one episode; returns (goodput tokens/s = tokens / clock, mean draft length per user and round)."""
    obs, _ = env.reset(seed=seed)
    policy.reset()
    tokens, lengths, rounds = 0.0, 0.0, 0
    while True:
        action, _ = policy.predict(obs)
        obs, _, terminated, truncated, info = env.step(action)
        tokens += float(np.sum(info["tokens"]))
        lengths += float(np.mean(info["draft_lengths"]))
        rounds += 1
        if terminated or truncated:
            return tokens / float(info["clock"]), lengths / rounds


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the markdown table.

    :param argv: arguments without the program name; ``None`` reads ``sys.argv``
    :returns: the exit status, 0 on success
    """
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_curves.py", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per row (seeds 0..n-1)")
    parser.add_argument("--horizon", type=float, default=10.0, help="simulated seconds per episode")
    parser.add_argument("--processes", default=",".join(PROCESSES), help="comma-separated acceptance processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(
        f"het-opt planning with the process's acceptance curve vs an i.i.d. model of its rate; base scenario, "
        f"fading off, {args.episodes} episodes x {args.horizon:g} s (seeds 0..{args.episodes - 1}, new population "
        "per episode); goodput = tokens / clock, mean +- standard error over episodes\n"
    )
    print(
        "| process | policy | goodput, curve (tok/s) | goodput, i.i.d. model (tok/s) | change | episodes better / "
        "worse (paired) | mean L, curve | mean L, i.i.d. |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for process in args.processes.split(","):
        env = gym.make(
            "MultiSpin-Heterogeneous-v0",
            acceptance_process=process,
            fading=False,
            horizon=args.horizon,
            resample_population=True,
        )
        try:
            for level in LEVELS:
                results = {}
                for model, solver in (("curve", solve_heterogeneous), ("iid", solve_with_iid_model)):
                    policy = AnalyticPolicy(env, solver, level, name=f"het-opt-{level}-{model}")
                    results[model] = np.array([episode(env, policy, seed) for seed in range(args.episodes)])
                curve, iid = results["curve"], results["iid"]
                gain = curve[:, 0].mean() / iid[:, 0].mean() - 1.0
                better = int(np.sum(curve[:, 0] > iid[:, 0]))
                worse = int(np.sum(curve[:, 0] < iid[:, 0]))  # the rest are equal: the same allocations

                def cell(values: np.ndarray) -> str:
                    err = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.0
                    return f"{values.mean():.1f} +- {err:.1f}"

                print(
                    f"| {process} | het-opt-{level} | {cell(curve[:, 0])} | {cell(iid[:, 0])} | {gain:+.1%} | "
                    f"{better} / {worse} | {curve[:, 1].mean():.2f} | {iid[:, 1].mean():.2f} |",
                    flush=True,
                )
        finally:
            env.close()
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
