"""Fan a command out over seeds (or any values) as Ray tasks on a cluster, or as local processes.

    python -m agents.sweep --seeds 0 1 2 3 -j 2 -- python train.py --algo ppo -n 300000 --seed {seed} -f logs/seeds
    python -m agents.sweep --ray 10.0.0.5:6379 --seeds 0 1 2 3 -- python train.py --seed {seed} -f /shared/logs
    python -m agents.sweep --values base urban -- python -m agents.benchmark --env-kwargs scenario:{value} -o results/{value}

Every ``{seed}`` / ``{value}`` in the command is replaced by one value per run. Without ``--ray`` the runs go to up
to ``-j`` local processes at once; with ``--ray ADDRESS`` each run is a Ray task (``--cpus-per-run`` CPUs, default 1)
on that cluster, in the task's working directory there (``--ray local`` starts a local Ray: for testing). Outputs
are written where the command runs: on a cluster, give output paths on a shared filesystem. Each run's output goes
to ``{log_dir}/run_<value>.log``; the command prints one line per run (exit code, seconds) and exits 1 if any failed.
A failed run does not stop the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["expand", "main", "run_local", "run_ray"]


def expand(command: Sequence[str], value: str) -> list[str]:
    """The command with ``{seed}`` and ``{value}`` replaced by ``value`` (other text untouched)."""
    return [part.replace("{seed}", value).replace("{value}", value) for part in command]


def _run(command: list[str], log_path: str) -> tuple[int, float]:
    start = time.perf_counter()
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        try:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        except OSError as exc:
            log.write(f"could not start {command[0]!r}: {exc}\n")
            code = 127
    return code, time.perf_counter() - start


def run_local(command: Sequence[str], values: Sequence[str], log_dir: Path, jobs: int) -> list[tuple[int, float]]:
    """Each run as a local process, at most ``jobs`` at once; (exit code, seconds) per value, in order."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run, expand(command, v), str(log_dir / f"run_{v}.log")) for v in values]
        return [f.result() for f in futures]


def run_ray(
    command: Sequence[str], values: Sequence[str], log_dir: Path, address: str, cpus: float
) -> list[tuple[int, float]]:
    """Each run as a Ray task of ``cpus`` CPUs on the cluster at ``address`` (``local``: a new local Ray)."""
    import ray

    if address == "local":
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=cpus)(_run)
        refs = [task.remote(expand(command, v), str((log_dir / f"run_{v}.log").resolve())) for v in values]
        return list(ray.get(refs))
    finally:
        ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("sweep: error: give the command after --, e.g. -- python train.py --seed {seed}", file=sys.stderr)
        return 2
    split = argv.index("--")
    own, command = argv[:split], argv[split + 1:]
    p = argparse.ArgumentParser(prog="sweep", description="Run a command once per seed/value, in parallel.")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--seeds", nargs="+", type=int, help="values of {seed}")
    group.add_argument("--values", nargs="+", help="values of {value} (and {seed})")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="Ray cluster to run on (default: local processes)")
    p.add_argument("-j", "--jobs", type=int, default=2, help="local processes at once (default 2)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray CPUs per run (with --ray)")
    p.add_argument("--log-dir", default="logs/sweep", help="one log file per run (default logs/sweep)")
    args = p.parse_args(own)
    if not command:
        p.error("the command after -- is empty")
    if args.jobs < 1:
        p.error(f"-j must be >= 1, got {args.jobs}")
    values = [str(v) for v in (args.seeds if args.seeds is not None else args.values)]
    if not any("{seed}" in part or "{value}" in part for part in command):
        p.error("the command has no {seed} or {value}: every run would be the same")
    log_dir = Path(args.log_dir)
    if args.ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("sweep: error: --ray needs ray: pip install 'multispin-env[rllib]'", file=sys.stderr)
            return 2
        if args.ray != "local":
            from agents.rllib import RLlibError, check_address

            try:
                check_address(args.ray)
            except RLlibError as exc:
                print(f"sweep: error: {exc}", file=sys.stderr)
                return 2
        results = run_ray(command, values, log_dir, args.ray, args.cpus_per_run)
    else:
        results = run_local(command, values, log_dir, args.jobs)
    for value, (code, seconds) in zip(values, results, strict=True):
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{value}: {status} in {seconds:.1f} s, log {log_dir / f'run_{value}.log'}")
    return 0 if all(code == 0 for code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
