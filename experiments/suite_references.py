"""Recompute the reference goodputs of the benchmark suite (``multispin_env/suite_references.json``).

For every task of :data:`multispin_env.suite.TASKS`: the task's metric (mean episode goodput in tokens/s, or the
mean request completion time in s for the arrival tasks) of server-only decoding (every L_k = 0) and of
het-opt-oracle on the task's evaluation seeds; :func:`multispin_env.suite.normalized_score` maps them to 0 and
100. Deterministic given the seeds. An existing output file keeps the tasks not recomputed. Usage::

    python -m experiments.suite_references                 # all tasks, writes the package's JSON (~3 min)
    python -m experiments.suite_references --tasks MultiSpinSuite/IIDStatic-v0 -o /tmp/refs.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate, evaluate_analytic, suite_metric
from multispin_env import suite
from multispin_env.spaces import MultiSpinEnvAPI


class ServerOnly:
    """The policy of every L_k = 0 (the target model decodes one token per user per round), SB3-like."""

    def __init__(self, env: gym.Env) -> None:
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, MultiSpinEnvAPI):
            raise ValueError(f"ServerOnly acts on a MultiSpin env, got {unwrapped!r}")
        k = unwrapped.num_users
        self._action = unwrapped.encode_action(np.zeros(k), np.zeros(k))

    def reset(self) -> None:
        """Nothing to forget."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        return self._action.copy(), state


def references(env_id: str) -> dict[str, float]:
    """{"server-only": v0, "het-opt-oracle": v100} of task ``env_id``'s metric (tokens/s or s)."""
    spec = suite.task(env_id)
    env = gym.make(env_id)
    seeds = list(spec.eval_seeds)
    server = evaluate(env, ServerOnly(env), seeds, name="server-only")
    oracle = evaluate_analytic(env, seeds, ["het-opt-oracle"])["het-opt-oracle"]
    return {"server-only": suite_metric(server, spec.metric), "het-opt-oracle": suite_metric(oracle, spec.metric)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.suite_references", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(suite.TASKS), help="task ids (default: all)")
    parser.add_argument(
        "-o",
        "--out",
        default=str(Path(suite.__file__).with_name("suite_references.json")),
        help="output JSON (default: the package's %(default)s)",
    )
    args = parser.parse_args(argv)
    unknown = [t for t in args.tasks if t not in suite.TASK_SPECS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; the tasks are {list(suite.TASKS)}")
    out = Path(args.out)
    table: dict[str, dict[str, float]] = json.loads(out.read_text())["tasks"] if out.is_file() else {}
    for env_id in args.tasks:
        start = time.perf_counter()
        table[env_id] = references(env_id)
        unit = "tok/s" if suite.task(env_id).metric == "goodput" else "s"
        print(
            f"{env_id:38s} server-only {table[env_id]['server-only']:8.2f}  het-opt-oracle "
            f"{table[env_id]['het-opt-oracle']:8.2f} {unit}  ({time.perf_counter() - start:.1f} s)"
        )
    table = {env_id: table[env_id] for env_id in suite.TASKS if env_id in table}  # report order
    out.write_text(
        json.dumps(
            {"command": "python -m experiments.suite_references", "seeds": "each task's eval_seeds", "tasks": table},
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
