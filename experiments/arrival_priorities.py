"""Is there a completion-time-aware controller better than het-opt-oracle on the arrival tasks?

    python -m experiments.arrival_priorities --tasks ArrivalsLight ArrivalsHeavy --powers 0.5 1 2

The arrival tasks score the mean request completion time, and het-opt-oracle, their 100-reference, maximises each
round's goodput of the active users. A controller that knows the requests can give some users priority: this
script plays P-het with per-user weights w_k recomputed every round (the weighted goodput sum_k w_k E[n_k] / T,
docs/model.md eq. (5w)), with the oracle's acceptance and channel, for two priority rules and each ``--powers`` p:

- ``srpt``: shortest remaining first, w_k = (m / r_k)^p, r_k the tokens left in user k's current request (from the
  observation), m the mean request length;
- ``backlog``: longest backlog first, w_k = (B_k / m)^p, B_k = r_k + m q_k the tokens user k still has to be served,
  q_k its queued requests (from the env's request state: known to the server, not in the observation).

Weights are clipped into [1/10, 10] (the urgency policies' cap); p = 0 is het-opt-oracle itself. Each row is evaluated on the task's
evaluation seeds: the mean completion time (s; lower is better), its normalized score (100 = het-opt-oracle), the
goodput, and the per-episode difference of the mean completion time from het-opt-oracle's with its 95% interval
(the same seeds; a negative difference is faster).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import multispin_env  # noqa: F401  (registers the ids)
from agents.cli import OneLineParser, UserError, check_output_folder
from agents.evaluation import EvaluationResult, evaluate, mean_ci, suite_metric
from agents.runs import write_atomic
from baselines.policies import URGENCY_MAX_WEIGHT, AnalyticPolicy, make_policy
from baselines.solvers import SOLVERS
from multispin_env import suite

#: The priority rules: name -> what the weight grows with.
RULES = ("srpt", "backlog")
#: Weights are clipped into [1 / MAX_WEIGHT, MAX_WEIGHT]: the urgency-weighted policies' cap.
MAX_WEIGHT = URGENCY_MAX_WEIGHT


def check_power(power: float) -> float:
    """``power`` if it is a finite number >= 0 (a negative one would turn the rule around), else ValueError."""
    if not 0.0 <= float(power) < math.inf:
        raise ValueError(f"power must be a finite number >= 0, got {power}")
    return float(power)


class PriorityPolicy(AnalyticPolicy):
    """P-het with the weights of priority ``rule`` and exponent ``power`` recomputed every round, at the oracle's
    information level (true acceptance and channel). For one env (``gym.make``), as the evaluation loop plays it.

    :param env: a heterogeneous MultiSpin env with request arrivals
    :param rule: ``srpt`` or ``backlog`` (:data:`RULES`)
    :param power: p, the exponent of the weight (0: all weights 1, het-opt-oracle)
    """

    def __init__(self, env: Any, rule: str, power: float) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        self.power = check_power(power)
        unwrapped = env.unwrapped
        if unwrapped.config.homogeneous or unwrapped.core.requests is None:
            raise ValueError("the priority policies need a heterogeneous env with request arrivals (arrival_rate set)")
        super().__init__(env, SOLVERS["het-opt"].solve, "oracle", name=f"{rule} p={power:g}")
        self.rule = rule

    def _act(self, obs: np.ndarray, index: int) -> np.ndarray:
        unwrapped = self.env.unwrapped
        core = unwrapped.core
        mean = core.config.mean_request_tokens
        remaining = np.maximum(unwrapped.observation_value(obs, "remaining"), 1.0)  # idle users: weight moot
        if self.rule == "srpt":
            weight = (mean / remaining) ** self.power
        else:
            backlog = core.requests.remaining[index] + mean * core.requests.waiting[index]
            weight = (np.maximum(backlog, 1.0) / mean) ** self.power
        self.weights = np.clip(weight, 1.0 / MAX_WEIGHT, MAX_WEIGHT)
        return super()._act(obs, index)


def episode_means(result: EvaluationResult) -> np.ndarray:
    """The mean completion time of each episode's completed requests, s (nan for an episode with none)."""
    return np.array([np.mean(e.completion_times) if e.completion_times else np.nan for e in result.episodes])


def compare(
    env_id: str, rules: Sequence[str], powers: Sequence[float], seeds: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """het-opt-oracle and every (rule, power) on ``seeds`` (default: the task's evaluation seeds); one row each."""
    env = gym.make(env_id)
    seeds = list(suite.task(env_id).eval_seeds if seeds is None else seeds)
    reference = evaluate(env, make_policy("het-opt-oracle", env), seeds, name="het-opt-oracle")
    base = episode_means(reference)
    rows = []
    for name, result in [
        ("het-opt-oracle", reference),
        *((f"{rule} p={p:g}", evaluate(env, PriorityPolicy(env, rule, p), seeds)) for rule in rules for p in powers),
    ]:
        value = suite_metric(result, "completion_mean")
        difference = episode_means(result) - base
        mean, half = mean_ci(difference[np.isfinite(difference)])  # the t-interval over episodes
        rows.append(
            {
                "task": env_id,
                "policy": name,
                "completion_mean": value,
                "score": suite.normalized_score(env_id, value),
                "goodput": float(result.goodputs.mean()),
                "difference": mean,
                "difference_ci": half if name != "het-opt-oracle" else 0.0,
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m experiments.arrival_priorities", description=__doc__.split("\n")[0])
    arrival_tasks = [suite.task(t).name for t in suite.TASKS if suite.task(t).metric == "completion_mean"]
    parser.add_argument("--tasks", nargs="+", default=arrival_tasks, help="arrival tasks (default: the suite's)")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    parser.add_argument("--powers", nargs="+", type=float, default=[0.5, 1.0, 2.0], help="exponents p of the weights")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    try:
        ids = suite.resolve_tasks(args.tasks)
    except ValueError as exc:
        parser.error(str(exc))
    for env_id in ids:
        if suite.task(env_id).metric != "completion_mean":
            parser.error(f"{env_id} is not an arrival task (its metric is {suite.task(env_id).metric})")
    try:
        for power in args.powers:
            check_power(power)
        if args.json:
            check_output_folder(Path(args.json).parent, "--json")
    except (ValueError, UserError) as exc:
        parser.error(str(exc))
    rows = [row for env_id in ids for row in compare(env_id, args.rules, args.powers)]
    print(f"{'task':32s} {'policy':16s} {'completion (s)':>14s} {'score':>7s} {'goodput':>8s}  vs het-opt-oracle (s)")
    for row in rows:
        versus = "" if row["policy"] == "het-opt-oracle" else f"{row['difference']:+.3f} +- {row['difference_ci']:.3f}"
        print(
            f"{row['task']:32s} {row['policy']:16s} {row['completion_mean']:14.3f} {row['score']:7.1f} "
            f"{row['goodput']:8.2f}  {versus}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(args.json), json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
