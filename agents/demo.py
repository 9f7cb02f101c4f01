"""``make demo``: train PPO briefly on the default heterogeneous scenario, benchmark it, write ``results/``.

    python -m agents.demo            # about 4 minutes on 2 cores
    python -m agents.demo --quick    # about 1 minute (a smoke run: the agent is still poor)

Steps: (1) ``train.py --algo ppo --env MultiSpin-Heterogeneous-v0 -P`` with the
tuned hyperparameters of ``agents/hyperparams/ppo.yml`` and a reduced budget,
evaluating the agent against the analytic policies during training (progress
bar); (2) ``python -m agents.benchmark`` on the trained agent: every analytic
policy and the agent on the same seeds; (3) ``results/benchmark.{csv,json}``,
``results/goodput.png``, ``results/training_curve.png``, and the table printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents import benchmark
from agents.train import OneLineParser, build_parser, run

DEMO_ENV = "MultiSpin-Heterogeneous-v0"


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m agents.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--n-timesteps", type=int, default=800_000, help="PPO training env steps")
    p.add_argument("--episodes", type=int, default=20, help="benchmark episodes per policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="results", help="results folder")
    p.add_argument("-f", "--log-folder", default="logs", help="training log folder")
    p.add_argument("--quick", action="store_true", help="a one-minute smoke run (20k steps, 5 episodes)")
    args = p.parse_args(argv)
    if args.quick:
        args.n_timesteps, args.episodes = 20_000, 5
    start = time.perf_counter()

    print(f"[1/2] training PPO on {DEMO_ENV} for {args.n_timesteps} steps", flush=True)
    train_args = build_parser().parse_args(
        [
            "--algo", "ppo", "--env", DEMO_ENV, "-n", str(args.n_timesteps), "--seed", str(args.seed),
            "-f", args.log_folder, "-P", "--eval-freq", str(max(args.n_timesteps // 8, 1)), "--eval-episodes", "5",
            "--num-threads", "1", "--verbose", "0",
        ]
    )
    trained = run(train_args)
    print(f"      saved {trained.model_path} ({trained.train_seconds:.0f} s)", flush=True)

    print(f"[2/2] benchmark: every analytic policy and the agent, {args.episodes} episodes each", flush=True)
    status = benchmark.main(
        [
            "--agents", f"ppo={trained.run_dir}", "--episodes", str(args.episodes), "--seed", str(args.seed),
            "-o", args.output, "--jobs", "2", "-P",
        ]
    )
    print(f"demo finished in {time.perf_counter() - start:.0f} s; results in {Path(args.output).resolve()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
