"""What the length-biased acceptance curves change for the planners under per-request rates, measured in the env.

Usage: ``python benchmarks/bench_planning_curves.py [--episodes 10] [--horizons 10,300]``

For the acceptance processes whose rate holds for a whole request (docs/model.md section 5.1: ``tasks`` on the
``tasks`` scenario, ``mixture`` with ``mixture_scope="request"`` on ``vllm-drafter``), het-opt-static and
het-opt-adaptive play ``MultiSpin-Heterogeneous-v0`` (fading off, the scenario's fixed population, episode seeds
0..n-1 shared by every row: common random numbers) with two acceptance curves each:

- ``now``: as built (:mod:`baselines.information`): static the long-run planning curve of eq. (5.1e), adaptive
  the curve the process gives the running estimate (a_hat^i);
- ``before``: static the request-weighted mix E_p[r^i] of the request rates (what a round would see if every
  request lasted the same number of rounds); adaptive for the mixture the Beta-mixture curve of mean a_hat (the
  scope "round" curve), for tasks unchanged (a_hat^i);
- ``episode`` (static only): :func:`baselines.information.episode_static_solver`, the curve of the episode's
  rounds (eq. (5.1f)) for the round count of the planned allocation.

Goodput = tokens / simulated clock of each episode, mean over episodes, with the paired change; per horizon, since a
short episode starts with fresh requests and is less length-biased than the long run. Prints a markdown table.
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
from bench_curves import episode  # the same episode loop (goodput, mean draft length)

import multispin_env  # noqa: F401  (registers the environments)
from agents.cli import int_at_least
from baselines.information import episode_static_solver
from baselines.policies import AnalyticPolicy
from baselines.solvers import Allocation, solve_heterogeneous
from multispin_env.acceptance import make_acceptance_process
from multispin_env.model import RoundParams

#: The per-request processes measured, each with its scenario.
CASES: dict[str, dict[str, Any]] = {
    "tasks": dict(scenario="tasks", acceptance_process="tasks"),
    "mixture-request": dict(scenario="vllm-drafter", acceptance_process="mixture", mixture_scope="request"),
}


def before_solver(env: Any, level: str) -> Any:
    """P-het with the curve the ``level`` planned with before the rounds were length-biased (see the module
    docstring)."""
    process = env.unwrapped.core.process
    if level == "static":
        mix = process.request_survival(env.unwrapped.core.base_acceptance[0])

        def static(params: RoundParams) -> Allocation:
            return solve_heterogeneous(dataclasses.replace(params, survival=mix))

        return static
    if process.name != "mixture":
        return solve_heterogeneous
    per_round = make_acceptance_process(dataclasses.replace(env.unwrapped.core.config, mixture_scope="round"), 1)

    def adaptive(params: RoundParams) -> Allocation:
        # params.acceptance is the running estimate a_hat (baselines.information.adaptive_params)
        return solve_heterogeneous(
            dataclasses.replace(params, survival=per_round.survival_from_rate(params.acceptance))
        )

    return adaptive


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the markdown table.

    :param argv: arguments without the program name; ``None`` reads ``sys.argv``
    :returns: the exit status, 0 on success
    """
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench_planning_curves.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--episodes", type=int_at_least(2), default=10, help="episodes per row (seeds 0..n-1)")
    parser.add_argument("--horizons", default="10,300", help="comma-separated simulated seconds per episode")
    args = parser.parse_args(argv)
    try:
        horizons = [float(text) for text in args.horizons.split(",")]
    except ValueError:
        parser.error(f"--horizons: expected comma-separated numbers, got {args.horizons!r}")
    start = time.perf_counter()
    print(
        f"het-opt with the length-biased curves (now) vs the per-request curves (before); fading off, "
        f"{args.episodes} episodes per row (seeds 0..{args.episodes - 1}); goodput = tokens / clock, mean +- "
        "standard error over episodes\n"
    )
    print("| process | horizon (s) | policy | goodput, now (tok/s) | goodput, before (tok/s) | change | better / worse "
          "(paired) | mean L, now | mean L, before | goodput, episode plan (tok/s) | episode vs now | mean L, "
          "episode |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case, settings in CASES.items():
        for horizon in horizons:
            env = gym.make("MultiSpin-Heterogeneous-v0", fading=False, horizon=horizon, **settings)
            try:
                for level in ("static", "adaptive"):
                    results = {}
                    variants = [("now", solve_heterogeneous), ("before", before_solver(env, level))]
                    if level == "static":
                        variants.append(("episode", episode_static_solver(env, solve_heterogeneous)))
                    for variant, solver in variants:
                        policy = AnalyticPolicy(env, solver, level, name=f"het-opt-{level}-{variant}")
                        results[variant] = np.array([episode(env, policy, seed) for seed in range(args.episodes)])
                    now, before = results["now"], results["before"]

                    def cell(values: np.ndarray) -> str:
                        return f"{values.mean():.2f} +- {values.std(ddof=1) / np.sqrt(values.size):.2f}"

                    episode_cells = "- | - | -"
                    if "episode" in results:
                        plan = results["episode"]
                        episode_cells = (
                            f"{cell(plan[:, 0])} | {plan[:, 0].mean() / now[:, 0].mean() - 1.0:+.2%} | "
                            f"{plan[:, 1].mean():.2f}"
                        )
                    print(
                        f"| {case} | {horizon:g} | het-opt-{level} | {cell(now[:, 0])} | {cell(before[:, 0])} | "
                        f"{now[:, 0].mean() / before[:, 0].mean() - 1.0:+.2%} | "
                        f"{int(np.sum(now[:, 0] > before[:, 0]))} / {int(np.sum(now[:, 0] < before[:, 0]))} | "
                        f"{now[:, 1].mean():.2f} | {before[:, 1].mean():.2f} | {episode_cells} |",
                        flush=True,
                    )
            finally:
                env.close()
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
