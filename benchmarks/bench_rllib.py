"""RLlib policies next to SB3 agents and the analytic baselines, on one env config and the same seeds.

    python benchmarks/bench_rllib.py --rllib logs/rllib/heterogeneous_1 logs/rllib/multiagent_1 \\
        --sb3 logs/ppo/MultiSpin-Heterogeneous-v0_1 --env-kwargs fading:False --episodes 30 -o results/rllib

Every policy plays ``MultiSpin-Heterogeneous-v0`` (or ``--env``) with the given settings, one episode per seed
``seed .. seed + episodes - 1`` (:func:`agents.evaluation.evaluate`); a per-user (multi-agent) RLlib module acts for
every user of the single env (:class:`agents.rllib.RLlibPolicy`), so centralised and decentralised policies see
identical episodes. Reports goodput (tokens/s, 95% t-interval) and its share of het-opt-oracle (mean of the
per-episode ratios, paired on seeds, 95% t-interval), plus the training env steps and wall time that RLlib's
``run.json`` records. Needs ray[rllib] (run it with .venv-rllib/bin/python).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym

import multispin_env  # noqa: F401
from agents.evaluation import evaluate, evaluate_analytic, evaluation_seeds, mean_ci
from agents.rllib import load_policy, parse_env_kwargs

ORACLE = "het-opt-oracle"
DEFAULT_BASELINES = (ORACLE, "het-opt-adaptive", "het-opt-static", "hom-opt-oracle", "equal-tuned")


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
        policy = load_policy(run, name=f"rllib:{Path(run).name}")
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
            name = f"sb3:{Path(run).name}"
            results[name] = evaluate(env, load_agent_policy(run, env, name), seeds, name=name)
            meta[name] = {"kind": "sb3"}

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
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_rllib.json").write_text(
            json.dumps({"env": args.env, "env_kwargs": args.env_kwargs, "seeds": seeds, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
