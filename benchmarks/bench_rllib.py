"""RLlib policies next to SB3 agents and the analytic baselines, on one env config and the same seeds.

    python benchmarks/bench_rllib.py --rllib logs/rllib/heterogeneous_1 logs/rllib/multiagent_1 \\
        --sb3 logs/ppo/MultiSpin-Heterogeneous-v0_1 --env-kwargs fading:False --episodes 30 -o results/rllib

Every policy plays ``MultiSpin-Heterogeneous-v0`` (or ``--env``) with the given settings, one episode per seed
``seed .. seed + episodes - 1`` (:func:`agents.evaluation.evaluate`); a per-user (multi-agent) RLlib module acts for
every user of the single env (:class:`agents.rllib.RLlibPolicy`), so centralised and decentralised policies see
identical episodes. Reports goodput (tokens/s, 95% t-interval) and its share of het-opt-oracle (mean of the
per-episode ratios, paired on seeds, 95% t-interval), plus the training env steps and wall time that RLlib's
``run.json`` (and SB3's ``monitor.csv``) record. Given RLlib and SB3 runs (e.g. 3 seeds each), it also prints
each group's share of het-opt-oracle, RLlib's share / SB3's and the training wall-time ratio. Needs ray[rllib]
and stable-baselines3 (run it with .venv-rllib/bin/python).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import multispin_env  # noqa: F401
from agents.evaluation import evaluate, evaluate_analytic, evaluation_seeds, mean_ci
from agents.rllib import load_policy, parse_env_kwargs

ORACLE = "het-opt-oracle"
DEFAULT_BASELINES = (ORACLE, "het-opt-adaptive", "het-opt-static", "hom-opt-oracle", "equal-tuned")


def compare_groups(results: dict[str, Any], meta: dict[str, dict], oracle: np.ndarray) -> dict[str, float]:
    """RLlib's runs against SB3's: each group's share of the oracle (the mean over its runs of the per-run mean of
    the per-episode ratios, every run on the same episodes), RLlib's share / SB3's, and the mean training wall
    times and their ratio (nan where a run recorded none)."""
    out: dict[str, float] = {}
    for kind in ("rllib", "sb3"):
        names = [name for name, info in meta.items() if info["kind"] == kind]
        out[f"{kind}_runs"] = len(names)
        out[f"{kind}_share"] = float(np.mean([np.mean(results[name].goodputs / oracle) for name in names]))
        walls = [meta[name].get("wall_s") for name in names]
        out[f"{kind}_wall_s"] = float(np.mean([w if w is not None else math.nan for w in walls]))
    out["share_ratio"] = out["rllib_share"] / out["sb3_share"]
    out["wall_ratio"] = out["rllib_wall_s"] / out["sb3_wall_s"]
    return out


def unique_name(name: str, taken: dict[str, Any]) -> str:
    """``name``, or ``name`` with the first free suffix ``-2``, ``-3`` ... (run folders of the same name, e.g.
    rl-zoo3's ``<env>_1`` under different log folders, stay separate rows)."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def sb3_wall_time(run: str | Path) -> float | None:
    """Training wall time (s) of an SB3 run folder: the end of its last episode in SB3's ``monitor.csv`` (column
    ``t``, seconds since the start of training)."""
    monitors = sorted(Path(run).glob("**/monitor.csv"))
    if not monitors:
        return None
    import csv

    with monitors[0].open() as handle:
        next(handle)  # the JSON header line
        times = [float(row["t"]) for row in csv.DictReader(handle)]
    return max(times) if times else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rllib", nargs="*", default=[], metavar="RUN_DIR", help="agents.rllib output dirs")
    p.add_argument("--sb3", nargs="*", default=[], metavar="RUN_DIR", help="SB3 run folders (train.py)")
    p.add_argument("--env", default="MultiSpin-Heterogeneous-v0")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY:VALUE")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines", nargs="*", default=list(DEFAULT_BASELINES))
    p.add_argument("-o", "--output", default=None, help="write bench_rllib.json here")
    args = p.parse_args(argv)

    env = gym.make(args.env, **parse_env_kwargs(args.env_kwargs))
    seeds = evaluation_seeds(args.seed, args.episodes)
    baselines = list(dict.fromkeys([ORACLE, *args.baselines]))
    results = evaluate_analytic(env, seeds, baselines)
    meta: dict[str, dict] = {name: {"kind": "analytic"} for name in results}
    for run in args.rllib:
        policy = load_policy(run, name=unique_name(f"rllib:{Path(run).name}", results))
        record = json.loads((Path(run) / "run.json").read_text())
        last = record["iterations"][-1] if record["iterations"] else {}
        results[policy.name] = evaluate(env, policy, seeds, name=policy.name)
        meta[policy.name] = {
            "kind": "rllib",
            "env": record["env"],
            "reward_mode": record["env_config"].get("reward_mode"),
            "env_steps": last.get("env_steps"),
            "wall_s": record.get("wall_s"),
        }
    if args.sb3:
        from agents.benchmark import load_agent_policy

        for run in args.sb3:
            name = unique_name(f"sb3:{Path(run).name}", results)
            results[name] = evaluate(env, load_agent_policy(run, env, name), seeds, name=name)
            meta[name] = {"kind": "sb3", "wall_s": sb3_wall_time(run)}

    oracle = results[ORACLE].goodputs
    rows = []
    print(f"{args.env} {args.env_kwargs}, seeds {seeds[0]}..{seeds[-1]}")
    print(
        f"| policy | goodput (tokens/s) | share of {ORACLE} | mean L | bandwidth HHI | training rounds | "
        "training wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        mean, half = result.goodput_ci()
        share, share_half = mean_ci(result.goodputs / oracle)
        info = meta[name]
        steps = info.get("env_steps")
        wall = info.get("wall_s")
        steps_text = "" if steps is None else f"{steps:.0f}"
        wall_text = "" if wall is None else f"{wall:.0f}"
        print(
            f"| {name} | {mean:.2f} +- {half:.2f} | {100 * share:.1f}% +- {100 * share_half:.1f}% | "
            f"{result.mean_draft_length:.2f} | {result.bandwidth_hhi:.2f} | {steps_text} | {wall_text} |"
        )
        rows.append(
            {
                "policy": name,
                **info,
                "goodput_mean": mean,
                "goodput_ci95": half,
                "share_of_oracle": share,
                "share_ci95": share_half,
                "mean_draft_length": result.mean_draft_length,
                "bandwidth_hhi": result.bandwidth_hhi,
                "goodputs": result.goodputs.tolist(),
            }
        )
    parity = compare_groups(results, meta, oracle) if args.rllib and args.sb3 else None
    if parity is not None:
        print(
            f"RLlib {100 * parity['rllib_share']:.1f}% of {ORACLE} ({parity['rllib_runs']} runs), SB3 "
            f"{100 * parity['sb3_share']:.1f}% ({parity['sb3_runs']} runs): ratio RLlib / SB3 "
            f"{parity['share_ratio']:.3f}; training wall time RLlib / SB3 {parity['wall_ratio']:.2f} "
            f"({parity['rllib_wall_s']:.0f} s / {parity['sb3_wall_s']:.0f} s per run)"
        )
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_rllib.json").write_text(
            json.dumps(
                {"env": args.env, "env_kwargs": args.env_kwargs, "seeds": seeds, "rows": rows, "parity": parity},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
