"""Fan a command out over seeds (or any values) as Ray tasks on a cluster, or as local processes.

    python -m agents.sweep --seeds 0 1 2 3 -j 2 -- python train.py --algo ppo -n 300000 --seed {seed} -f logs/seeds
    python -m agents.sweep --ray 10.0.0.5:6379 --seeds 0 1 2 3 -- python train.py --seed {seed} -f /shared/logs
    python -m agents.sweep --values base urban -- python -m agents.benchmark --env-kwargs scenario:{value} -o results/{value}

Every ``{seed}`` / ``{value}`` in the command is replaced by one value per run. A ``--values`` entry must be a
plain value: a number (``0.5``, ``1e-3``), ``True``/``False``/``None`` or a word (``urban``, ``a/b``), never an
expression or a quoted string: values often end up in ``--env-kwargs``, whose values go through Python's ``eval``,
and a plain value reads the same there, whatever the text around it. Without ``--ray`` the runs go to up
to ``-j`` local processes at once; with ``--ray ADDRESS`` each run is a Ray task (``--cpus-per-run`` CPUs, default 1)
on that cluster, in the task's working directory there (``--ray local`` starts a local Ray: for testing). Outputs
are written where the command runs: on a cluster, give output paths on a shared filesystem. Each run's output goes
to ``{log_dir}/run_<value>.log``; the command prints one line per run (exit code, seconds) and exits 1 if any failed.
A failed run does not stop the others.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agents.cli import (
    HelpFormatter,
    OneLineParser,
    UserError,
    check_no_repeats,
    check_output_folder,
    int_at_least,
    plain_value,
    positive_float,
    program_name,
)
from agents.ray_jobs import require_ray

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


def _run_value(value: str, command: Sequence[str], log_dir: str) -> tuple[int, float]:
    """One run of the sweep: the command for ``value``, its output into ``log_dir/run_<value>.log``."""
    return _run(expand(command, value), str(Path(log_dir) / f"run_{value}.log"))


def run_ray(
    command: Sequence[str], values: Sequence[str], log_dir: Path, address: str, cpus: float
) -> list[tuple[int, float]]:
    """Each run as a Ray task of ``cpus`` CPUs on the cluster at ``address`` (``local``: a new local Ray), run again
    when its worker dies (:func:`agents.ray_jobs.as_tasks`); a run whose worker died every time counts as exit 1."""
    from agents.ray_jobs import as_tasks, ray_session

    with ray_session(address):
        done = dict(as_tasks(_run_value, values, list(command), str(log_dir.resolve()), cpus=cpus))
    return [(1, math.nan) if isinstance(done[v], BaseException) else done[v] for v in values]


def _value(text: str) -> str:
    """An argparse ``type`` for ``--values``: a plain value (:func:`agents.cli.plain_value`)."""
    try:
        return plain_value(text, "value")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(
        prog=prog,
        usage=f"{prog} (--seeds N [N ...] | --values V [V ...]) [options] -- COMMAND ...",
        description="Run a command once per seed/value, in parallel: every {seed} / {value} in the "
        "command after -- is replaced by one value per run.",
        formatter_class=HelpFormatter,
    )
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--seeds", nargs="+", type=int_at_least(0), help="values of {seed} (and {value})")
    group.add_argument(
        "--values",
        nargs="+",
        type=_value,
        help="values of {value} (and {seed}); each a number, True/False/None or a word (letters, digits, "
        "_ . + - /), never an expression or a quoted string: values often reach --env-kwargs, which runs eval",
    )
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="Ray cluster to run on (default: local processes)")
    p.add_argument("-j", "--jobs", type=int_at_least(1), default=2, help="local processes at once")
    p.add_argument("--cpus-per-run", type=positive_float, default=1.0, help="Ray CPUs per run (with --ray)")
    p.add_argument("--log-dir", default="logs/sweep", help="one log file per run")
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status (0 all runs ok, 1 some failed, 2 user error).

    :param argv: arguments without the program name; ``None`` reads ``sys.argv``
    :param prog: the name for errors (default: the console script as invoked, else ``python -m agents.sweep``)
    """
    prog = prog or program_name("python -m agents.sweep")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    own, command = argv[:split], argv[split + 1 :]
    p = build_parser(prog)
    if split == len(argv) and not {"-h", "--help"} & set(argv):
        p.error("give the command after --, e.g. -- python train.py --seed {seed}")
    args = p.parse_args(own)
    if not command:
        p.error("the command after -- is empty")
    values = [str(v) for v in (args.seeds if args.seeds is not None else args.values)]
    try:
        check_no_repeats(
            values, "--seeds" if args.seeds is not None else "--values", "two runs would write one log file"
        )
    except UserError as exc:
        p.error(str(exc))
    if not any("{seed}" in part or "{value}" in part for part in command):
        p.error("the command has no {seed} or {value}: every run would be the same")
    try:
        check_output_folder(args.log_dir, "--log-dir")
    except UserError as exc:
        p.error(str(exc))
    log_dir = Path(args.log_dir)
    if args.ray:
        try:
            require_ray(args.ray)
        except UserError as exc:
            p.error(str(exc))
        try:
            results = run_ray(command, values, log_dir, args.ray, args.cpus_per_run)
        except UserError as exc:
            p.error(str(exc))
    else:
        results = run_local(command, values, log_dir, args.jobs)
    for value, (code, seconds) in zip(values, results, strict=True):
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{value}: {status} in {seconds:.1f} s, log {log_dir / f'run_{value}.log'}")
    return 0 if all(code == 0 for code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
