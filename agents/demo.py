"""``make demo`` / ``multispin-demo``: train PPO briefly on the default heterogeneous scenario, benchmark it, write ``results/``.

    python -m agents.demo            # 800k rounds of PPO, then 20 benchmark episodes per policy
    python -m agents.demo --quick    # a smoke run: 20k rounds, 5 episodes (the agent is still poor)

Steps: (1) ``train.py --algo ppo --env MultiSpin-Heterogeneous-v0 -P`` (the default id) with the tuned
hyperparameters of ``agents/hyperparams/ppo.yml`` and a reduced budget, evaluating the
agent against the analytic policies during training; (2) the benchmark on the trained
agent: every analytic policy and the agent on the same seeds; (3)
``results/benchmark.{csv,json}``, ``results/goodput.png``, ``results/training_curve.png``
and the table printed. Times and expected numbers are in docs/getting-started.md ("Quick start").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents import benchmark
from agents.cli import HelpFormatter, OneLineParser, UserError, check_output_folder, int_at_least
from multispin_env.registration import DEFAULT_ENV_ID

#: (training rounds, benchmark episodes per policy) of the demo and of ``--quick``.
BUDGET, QUICK_BUDGET = (800_000, 20), (20_000, 5)
DESCRIPTION = f"""Train PPO briefly on {DEFAULT_ENV_ID}, benchmark it against every analytic policy
on the same seeds, and write benchmark.csv/.json, goodput.png and training_curve.png."""


def main(argv: Sequence[str] | None = None, prog: str = "python -m agents.demo") -> int:
    from agents.train import main as train_main

    p = OneLineParser(prog=prog, description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument(
        "-n",
        "--n-timesteps",
        type=int_at_least(1),
        default=None,
        help=f"PPO training env steps, rounds (default: {BUDGET[0]:,}; --quick: {QUICK_BUDGET[0]:,})",
    )
    p.add_argument(
        "--episodes",
        type=int_at_least(1),
        default=None,
        help=f"benchmark episodes per policy (default: {BUDGET[1]}; --quick: {QUICK_BUDGET[1]})",
    )
    p.add_argument(
        "--seed", type=int_at_least(0), default=0, help="training seed; benchmark seeds are seed..seed+episodes-1"
    )
    p.add_argument("-o", "--output", default="results", help="results folder")
    p.add_argument("-f", "--log-folder", default="logs", help="training log folder")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK_BUDGET[0]:,} steps and {QUICK_BUDGET[1]} episodes (about a minute) unless -n / "
        "--episodes are given",
    )
    args = p.parse_args(argv)
    try:  # both folders before the training: a bad -o must not cost the training
        check_output_folder(args.output, "-o/--output")
        check_output_folder(args.log_folder, "-f/--log-folder")
    except UserError as exc:
        p.error(str(exc))
    # --quick changes the defaults only: an explicit -n or --episodes is what the user asked for.
    steps, episodes = QUICK_BUDGET if args.quick else BUDGET
    args.n_timesteps = steps if args.n_timesteps is None else args.n_timesteps
    args.episodes = episodes if args.episodes is None else args.episodes
    start = time.perf_counter()

    print(f"[1/2] training PPO on {DEFAULT_ENV_ID} for {args.n_timesteps} steps", flush=True)
    status = train_main(
        [
            "--algo",
            "ppo",
            "--env",
            DEFAULT_ENV_ID,
            "-n",
            str(args.n_timesteps),
            "--seed",
            str(args.seed),
            "-f",
            args.log_folder,
            "-P",
            "--eval-freq",
            str(max(args.n_timesteps // 8, 1)),
            "--eval-episodes",
            "5",
            "--num-threads",
            "1",
            "--verbose",
            "0",
        ],
        prog=prog,
    )
    if status:
        return status
    runs = sorted(Path(args.log_folder, "ppo").glob(f"{DEFAULT_ENV_ID}_*"), key=lambda q: int(q.name.rsplit("_", 1)[1]))
    run_dir = runs[-1]
    print(f"      saved {run_dir} ({time.perf_counter() - start:.0f} s)", flush=True)

    print(f"[2/2] benchmark: every analytic policy and the agent, {args.episodes} episodes each", flush=True)
    status = benchmark.main(
        [
            "--agents",
            f"ppo={run_dir}",
            "--episodes",
            str(args.episodes),
            "--seed",
            str(args.seed),
            "-o",
            args.output,
            "--jobs",
            "2",
            "-P",
        ],
        prog=prog,
    )
    print(f"demo finished in {time.perf_counter() - start:.0f} s; results in {Path(args.output).resolve()}")
    return status


def console_main() -> None:
    """``multispin-demo``."""
    sys.exit(main(prog="multispin-demo"))


if __name__ == "__main__":
    sys.exit(main())
