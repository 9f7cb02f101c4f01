"""Recompute the reference goodputs of the benchmark suite (``multispin_env/suite_references.json``).

For every registered task (:data:`multispin_env.suite.TASK_SPECS`: the suite's and the retired versions): the task's metric (mean episode goodput in tokens/s, the
mean request completion time in s for the arrival tasks, the share of requests that met their
target for the deadline task, the geometric-mean user throughput in tokens/s for Fairness) of server-only decoding (every L_k = 0) and of the task's reference controller (het-opt-oracle unless
the task names another, ``Task.reference``) on the task's evaluation seeds; :func:`multispin_env.suite.normalized_score` maps them to 0 and
100. Deterministic given the seeds. An existing output file keeps the tasks not recomputed. Usage::

    python -m experiments.suite_references                 # the suite's tasks, writes the package's JSON (a few minutes)
    python -m experiments.suite_references --tasks MultiSpinSuite/IIDStatic-v0 -o /tmp/refs.json
    python -m experiments.suite_references --correlation  # the fading tasks' channel correlation (docs/suite.md)
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
from agents.runs import write_atomic
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
    """{"server-only": v0, <the task's reference controller>: v100} of task ``env_id``'s metric (tokens/s, s or a
    share); the reference is het-opt-oracle unless the task names another (``Task.reference``)."""
    spec = suite.task(env_id)
    env = gym.make(env_id)
    seeds = list(spec.eval_seeds)
    server = evaluate(env, ServerOnly(env), seeds, name="server-only")
    best = evaluate_analytic(env, seeds, [spec.reference])[spec.reference]
    return {"server-only": suite_metric(server, spec.metric), spec.reference: suite_metric(best, spec.metric)}


def channel_correlation(env_id: str, policy: str = "het-opt-oracle") -> tuple[float, float]:
    """(one-round, over-the-delay) mean correlation of a fading task's channel under ``policy``'s rounds, on the
    task's evaluation seeds: the mean over rounds of rho = J0(2 pi f_D T) of the round's latency T (eq. (5.2a)),
    and the mean over rounds of r = the product of the last ``csi_delay`` rounds' rho, the correlation between
    the observed and the current gain (eq. (5.2b); r = rho without a delay). Round lengths depend on the policy,
    hence so do both."""
    from baselines.policies import make_policy

    spec = suite.task(env_id)
    env = gym.make(env_id)
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, MultiSpinEnvAPI)
    core = unwrapped.core
    if not core.fading.evolves:
        raise ValueError(f"{env_id} has a static channel: no fading correlation")
    delay = max(core.config.csi_delay, 1)
    agent = make_policy(policy, env)
    one_round, over_delay = [], []
    for seed in spec.eval_seeds:
        observation, _ = env.reset(seed=seed)
        agent.reset()
        latencies, done = [], False
        while not done:
            action, _ = agent.predict(observation)
            observation, _, terminated, truncated, info = env.step(action)
            latencies.append(info["latency"])
            done = terminated or truncated
        rho = np.asarray(core.fading.correlation(np.asarray(latencies)), dtype=np.float64)
        one_round.append(rho)
        windows = np.lib.stride_tricks.sliding_window_view(rho, delay) if rho.size >= delay else rho[:0, None]
        over_delay.append(windows.prod(axis=1))
    return float(np.concatenate(one_round).mean()), float(np.concatenate(over_delay).mean())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.suite_references", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", nargs="+", default=list(suite.TASKS), help="task ids or names (default: the suite's)"
    )
    parser.add_argument(
        "--correlation",
        action="store_true",
        help="print the fading tasks' channel correlation under het-opt-oracle's rounds instead (writes nothing)",
    )
    parser.add_argument(
        "-o",
        "--out",
        default=str(Path(suite.__file__).with_name("suite_references.json")),
        help="output JSON (default: the package's %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        args.tasks = suite.resolve_tasks(args.tasks)
    except ValueError as exc:
        parser.error(str(exc))
    if args.correlation:
        for env_id in args.tasks:
            unwrapped = gym.make(env_id).unwrapped
            if isinstance(unwrapped, MultiSpinEnvAPI) and not unwrapped.core.fading.evolves:
                continue  # a static channel
            one_round, over_delay = channel_correlation(env_id)
            print(f"{env_id:38s} one-round correlation {one_round:6.3f}  over the CSI delay {over_delay:6.3f}")
        return 0
    out = Path(args.out)
    table: dict[str, dict[str, float]] = json.loads(out.read_text())["tasks"] if out.is_file() else {}
    for env_id in args.tasks:
        start = time.perf_counter()
        table[env_id] = references(env_id)
        spec = suite.task(env_id)
        label = suite.METRIC_LABELS[spec.metric]
        print(
            f"{env_id:38s} server-only {label.format(table[env_id]['server-only'])}, {spec.reference} "
            f"{label.format(table[env_id][spec.reference])}  ({time.perf_counter() - start:.1f} s)"
        )
    table = {env_id: table[env_id] for env_id in suite.TASK_SPECS if env_id in table}  # the suite's, then retired
    record = {"command": "python -m experiments.suite_references", "seeds": "each task's eval_seeds", "tasks": table}
    write_atomic(out, json.dumps(record, indent=1) + "\n")  # the package's references: never half written
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
