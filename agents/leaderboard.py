"""``multispin-leaderboard`` / ``make leaderboard``: every analytic controller and every saved agent on every suite task.

    multispin-leaderboard --runs runs/leaderboard -o results/leaderboard --jobs 2                # evaluate saved agents
    multispin-leaderboard --train --timesteps 300000 --agents ppo ppo_residual --seeds 0 1 2 3 4  # train, then evaluate
    multispin-leaderboard --ray HEAD_IP:6379 --train --timesteps 300000  # the jobs as Ray tasks on a cluster
    multispin-leaderboard --train --until-flat --agents ppo_fast --tasks NoisyCSI  # train each run until flat

Entries and tasks come from their registries: the tasks are :data:`multispin_env.suite.TASKS`, the analytic
controllers every policy of :func:`baselines.policies.policies_for` valid on the task, the agents the files of
``agents/hyperparams`` (an agent is named by its file: ``ppo``, ``ppo_lstm``, ``ppo_residual`` = ``--algo ppo
--agent residual``). Saved agents are found under ``--runs`` by their ``args.yml`` (task, seed, hyperparameter file);
``--train`` trains the missing (agent, task, seed) runs first, into ``RUNS/{agent}/{task}/seed{seed}``.
With ``--until-flat`` each run trains in chunks of doubling budget until its validation curve is flat or the
``--max-timesteps`` cap is reached (:mod:`agents.converge`); its result file records the budget, wall and CPU time,
the criterion and whether it converged. ``python -m agents.verdict`` turns the results into docs/verdict.md.

A learned agent is evaluated at its best model (``--model best``, the default): the goodput evaluation callback
checkpoints the model with the best mean goodput (on a task of another metric: the best value of that metric) on
validation episodes during training (``--validation`` episodes
at the start, every tenth of the budget and at the end; seeds 10000 + 1000 x training seed + i, disjoint from the task's evaluation seeds), so a
residual agent that drifts below its controller keeps its starting point. ``--model final`` takes the last model.

Every entry is evaluated on the task's evaluation seeds (one episode each) and its task metric (goodput, or the mean
request completion time on the arrival tasks) scored with :func:`multispin_env.suite.normalized_score` (0 =
server-only, 100 = the task's reference controller, :data:`multispin_env.suite.SCORE_SCALE`). Learned agents are aggregated
over their training seeds with rliable: the interquartile mean (IQM) per task and over tasks with stratified
bootstrap 95% CIs, and performance profiles. Each (task, entry, seed) job writes its result to
``OUT/jobs/...json`` as it finishes; a killed run, started again, keeps the finished results (and finished trainings).
Ctrl-C or ``kill`` (SIGTERM) stops the command and its ``--jobs`` processes: each running training saves its model
(as train.py does), the queued jobs are dropped and the command exits 130 / 143; on Linux the job processes also
stop when the command is killed outright (SIGKILL).

Outputs in ``OUT``: ``leaderboard.csv`` (one row per task and entry), ``runs.csv`` (one row per evaluated run),
``leaderboard.json`` (all of it, the aggregates, the goal checks, the commit and the wall time), ``leaderboard.md``,
``leaderboard.png`` (scores per task), ``aggregate.png`` (rliable interval estimates) and ``profiles.png``
(performance profiles).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from agents.benchmark import _json_safe, _pyplot
from agents.cli import (
    HelpFormatter,
    OneLineParser,
    UserError,
    check_no_repeats,
    check_output_folder,
    int_at_least,
    one_line,
    positive_float,
)
from agents.converge import DEFAULT_CAP_FACTOR, DEFAULT_FIRST_CHUNK, FLAT_TOLERANCE, FLAT_WINDOW
from agents.runs import TRUST_NOTE, final_model, write_atomic
from agents.train import HYPERPARAMS_DIR, Interrupts, agent_names
from baselines.policies import ORACLE_POLICIES
from multispin_env.suite import METRIC_LABELS

#: Agents trained by ``--train`` when ``--agents`` is not given (names of agents/hyperparams files).
DEFAULT_AGENTS: tuple[str, ...] = ("ppo", "ppo_residual", "ppo_lstm")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
#: Budget assumed for the validation schedule when --timesteps is not given (the files' own budgets are ~1e6).
DEFAULT_BUDGET = 1_000_000
#: The goal "plain agent >= 97% of the oracle's goodput on every seed" is checked on this task with this agent.
PLAIN_GOAL = ("MultiSpinSuite/IIDStatic-v0", "ppo", 0.97)
RUN_COLUMNS = (
    "task",
    "entry",
    "kind",
    "seed",
    "metric",
    "value",
    "goodput",
    "score",
    "eval_seconds",
    "train_seconds",
    "cpu_seconds",
    "num_timesteps",
    "fps",
    "model",
)
BOARD_COLUMNS = ("task", "entry", "kind", "runs", "score", "ci_low", "ci_high", "metric", "value", "goodput")


# -- entries ------------------------------------------------------------------------------------------------------
def agent_command(agent: str) -> list[str]:
    """The train.py flags that select ``agent``'s hyperparameter file: ``--algo A`` or ``--algo A --agent V``."""
    from rl_zoo3.utils import ALGOS

    if agent in ALGOS:
        return ["--algo", agent]
    parts = agent.split("_")
    for cut in range(len(parts) - 1, 0, -1):  # the longest algorithm prefix: ppo_lstm_x is ppo_lstm + x
        algo, variant = "_".join(parts[:cut]), "_".join(parts[cut:])
        if algo in ALGOS:
            return ["--algo", algo, "--agent", variant]
    raise UserError(f"cannot tell the algorithm of agent {agent!r} (name a file of {HYPERPARAMS_DIR})")


#: Score points within which two scores count as equal (scores print to 0.1): the same episodes summed in another
#: order (a residual agent that plays its controller) differ by ~1e-14, the same plan solved from the float32 channel
#: of the observation instead of the true one (het-opt-posterior against het-opt-static on a static task) by ~1e-6.
SCORE_TIE = 1e-4


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row of ``rows`` (board rows with ``entry`` and ``score``) with the highest score. Rows within
    :data:`SCORE_TIE` of it tie; of those, the analytic controller first in ``baselines.policies.ANALYTIC_POLICIES``
    (the plainer one: het-opt-static before het-opt-energy-static, which plays its actions on a static task), then
    the first entry by name, so that the board and the verdict name the same one."""
    from baselines.policies import ANALYTIC_POLICIES

    top = max(r["score"] for r in rows)
    rank = {name: i for i, name in enumerate(ANALYTIC_POLICIES)}
    tied = [r for r in rows if r["score"] >= top - SCORE_TIE]
    return min(tied, key=lambda r: (rank.get(r["entry"], len(rank)), r["entry"]))


def short(task: str) -> str:
    """A suite task's label (:attr:`multispin_env.suite.Task.label`): ``MultiSpinSuite/IIDStatic-v0`` ->
    ``IIDStatic``, ``MultiSpinSuite/LargeK-v1`` -> ``LargeK-v1``."""
    from multispin_env.suite import task as suite_task

    return suite_task(task).label


@dataclass(frozen=True)
class Job:
    """One unit of work: evaluate an analytic controller, or (train and) evaluate one agent run on one task.

    :param kind: ``analytic`` or ``agent``
    :param task: suite task id
    :param entry: policy name or agent name
    :param seed: training seed (agents)
    :param run: run folder to evaluate (a saved agent) or log folder to train into (``--train``)
    :param train: train the run first unless it has a final model
    :param timesteps: training budget, env steps (None: the hyperparameter file's)
    :param model: ``best`` (the run's best_model.zip when it has one) or ``final``
    :param validation: validation episodes of each evaluation during training (0: none)
    :param until_flat: train in chunks until the validation curve is flat (:mod:`agents.converge`);
        ``timesteps`` is then the first chunk
    :param max_timesteps: ``until_flat``: the cap on the run's env steps
    :param min_timesteps: ``until_flat``: env steps a run trains before it may be called flat
    """

    kind: str
    task: str
    entry: str
    seed: int | None = None
    run: str | None = None
    train: bool = False
    timesteps: int | None = None
    model: str = "best"
    validation: int = 5
    until_flat: bool = False
    max_timesteps: int | None = None
    min_timesteps: int = 0

    def result_path(self, out: Path) -> Path:
        name = self.entry if self.seed is None else f"{self.entry}_seed{self.seed}"
        return out / "jobs" / short(self.task) / f"{name}.json"

    @property
    def schedule(self) -> Schedule:
        """The until-flat schedule of an ``until_flat`` job (unset budgets read as 0)."""
        return Schedule(self.timesteps or 0, self.min_timesteps, self.max_timesteps or 0)


def check_result(result: Any) -> dict[str, Any]:
    """``result`` (a per-job result file's content) if it has what the board reads: a mapping with the suite
    ``task`` id (current or retired), the ``entry`` name, its ``kind`` (``agent`` or ``analytic``), ``score``,
    ``goodput`` and ``value`` numbers (NaN where the task's metric is undefined: no request completed), for an agent
    its training ``seed``, and where present numeric times, a known ``metric`` and a ``convergence`` mapping;
    ValueError naming the first thing wrong."""
    from multispin_env._checks import is_real, short_repr
    from multispin_env.suite import METRICS, TASK_SPECS

    if not isinstance(result, dict):
        raise ValueError(f"a result is a JSON object, got {type(result).__name__}")
    missing = [k for k in ("task", "entry", "kind", "score", "goodput") if k not in result]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    if not isinstance(result["task"], str) or result["task"] not in TASK_SPECS:
        raise ValueError(f"unknown task {result['task']!r} (not a suite task id, current or retired)")
    if not isinstance(result["entry"], str) or not result["entry"]:
        raise ValueError(f"entry must be a name, got {result['entry']!r}")
    if result["kind"] not in ("agent", "analytic"):
        raise ValueError(f"kind must be 'agent' or 'analytic', got {result['kind']!r}")
    for key in ("score", "goodput", "value", "train_seconds", "cpu_seconds", "eval_seconds"):
        value: Any = result.get(key)
        if value is None and key not in ("score", "goodput"):
            continue  # absent, or not recorded (a run without a CPU record)
        if not is_real(value):
            raise ValueError(f"{key} must be a number, got {short_repr(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float's range
            number = math.inf
        if math.isinf(number):
            raise ValueError(f"{key} must be a number, got {short_repr(value)}")
    seed = result.get("seed")
    if result["kind"] == "agent" and not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"an agent's result needs its training seed (an integer >= 0), got {seed!r}")
    if "metric" in result and result["metric"] not in METRICS:
        raise ValueError(f"unknown metric {result['metric']!r}; metrics: {', '.join(METRICS)}")
    if result.get("convergence") is not None and not isinstance(result["convergence"], dict):
        raise ValueError(f"convergence must be a JSON object, got {type(result['convergence']).__name__}")
    return result


class TrainingInterrupted(KeyboardInterrupt):
    """A job's training was stopped by SIGINT or SIGTERM (and saved its model): the leaderboard stops as a whole.

    :param status: the training command's exit status, 130 (SIGINT) or 143 (SIGTERM)
    """

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _train(job: Job, folder: Path | None = None, timesteps: int | None = None, previous: Path | None = None) -> None:
    """Train ``job``'s run into ``folder`` (default ``job.run``) for ``timesteps`` env steps (default
    ``job.timesteps``), from scratch or continuing from the model file ``previous`` (rl-zoo3's ``-i``)."""
    from agents.train import main as train_main

    assert job.run is not None and job.seed is not None
    folder = Path(job.run) if folder is None else folder
    timesteps = job.timesteps if timesteps is None else timesteps
    if folder.exists():
        shutil.rmtree(folder)  # a killed training: start it again from scratch (same seed)
    budget = timesteps or DEFAULT_BUDGET
    # Validation for the best-model checkpoint: at the start, every tenth of the budget (>= 10k steps) and at the
    # end; no baselines.
    validation = ["--eval-freq", str(max(budget // 10, 10_000)), "--eval-episodes", str(job.validation), "--baselines"]
    argv = [
        *agent_command(job.entry),
        "--env",
        job.task,
        "--seed",
        str(job.seed),
        "-f",
        str(folder),
        "--verbose",
        "0",
        "-n",
        str(timesteps if timesteps else -1),
        *(validation if job.validation > 0 else ["--eval-freq", "-1"]),
        *(["-i", str(previous)] if previous is not None else []),
    ]
    if job.until_flat:  # a linear anneal needs the budget in advance: its initial rate, constant (agents.converge)
        from agents.converge import constant_learning_rate

        rate = constant_learning_rate(job.entry, job.task)
        argv += [] if rate is None else ["-params", f"learning_rate:{rate!r}"]
    with open(os.devnull, "w") as sink:  # rl-zoo3 prints its hyperparameters and SB3 tables
        saved, sys.stdout = sys.stdout, sink
        try:
            status = train_main(argv)
        finally:
            sys.stdout = saved
    if status in (130, 143):  # the training was interrupted (and saved): stop the leaderboard as a whole
        raise TrainingInterrupted(status)
    if status != 0:
        raise UserError(f"training {job.entry} on {job.task} (seed {job.seed}) failed with status {status}")


def run_job(job: Job, out: Path) -> dict[str, Any]:
    """Do ``job`` and write its result to ``job.result_path(out)`` (atomically); returns the result."""
    import gymnasium as gym
    import torch

    import multispin_env  # noqa: F401  (registers the ids)
    from agents.evaluation import evaluate, suite_metric
    from multispin_env.suite import normalized_score, task

    torch.set_num_threads(1)
    result: dict[str, Any] = {"task": job.task, "entry": job.entry, "kind": job.kind, "seed": job.seed}
    result["commit"] = git_commit()
    if job.kind == "agent" and job.until_flat:
        from agents.converge import constant_learning_rate, hyperparameters_fingerprint, train_until_flat

        assert job.run is not None and job.timesteps is not None and job.max_timesteps is not None
        record = train_until_flat(
            Path(job.run),
            job.timesteps,
            job.max_timesteps,
            lambda folder, budget, previous: _train(job, folder, budget, previous),
            job.min_timesteps,
            lambda: hyperparameters_fingerprint(job.entry, job.task),  # read per chunk, as each chunk's training does
            task(job.task).metric,  # chunks validated on goodput before the task's metric was the curve: again
        )
        record["learning_rate"] = constant_learning_rate(job.entry, job.task) or "the hyperparameter file's"
        chosen = Path(record["best_model" if job.model == "best" else "final_model"])
        result.update(
            model=str(chosen),
            model_mtime=chosen.stat().st_mtime,
            train_seconds=record["wall_seconds"],
            cpu_seconds=record["cpu_seconds"],
            num_timesteps=record["budget"],
            fps=record["budget"] / max(record["wall_seconds"], 1e-9),
            convergence=record,
        )
    elif job.kind == "agent":
        assert job.run is not None
        if job.train and final_model(job.run, job.timesteps) is None:
            _train(job)
        from agents.runs import read_yaml, resolve_agent

        model = final_model(job.run) if job.train else resolve_agent(job.run).model_path
        if model is None:
            raise UserError(f"no final model under {job.run}")
        if job.model == "best" and (model.parent / "best_model.zip").is_file():
            model = model.parent / "best_model.zip"  # loaded with its vecnormalize_best.pkl (agents.runs)
        result["model"] = str(model)
        result["model_mtime"] = model.stat().st_mtime
        for summary in model.parent.glob("*/training.yml"):
            record = read_yaml(summary)
            result.update(
                train_seconds=record.get("train_seconds"),
                num_timesteps=record.get("num_timesteps"),
                planned_timesteps=record.get("planned_timesteps"),
                fps=record.get("fps"),
            )
    env = gym.make(job.task)
    start = time.perf_counter()
    if job.kind == "analytic":
        from baselines.policies import make_policy

        policy: Any = make_policy(job.entry, env)
    else:
        from agents.benchmark import load_agent_policy

        policy = load_agent_policy(result["model"], env, job.entry)
        controller = getattr(policy, "controller", None)  # a residual agent: the controller its run corrected
        if controller is not None:
            result["controller"] = controller.name
    evaluation = evaluate(env, policy, task(job.task).eval_seeds, name=job.entry)
    env.close()
    # The score is of the task's metric: goodput, or the mean completion time on the arrival tasks.
    metric = task(job.task).metric
    value = suite_metric(evaluation, metric)
    result.update(
        goodput=float(evaluation.goodputs.mean()),
        goodputs=evaluation.goodputs.tolist(),
        metric=metric,
        value=value,
        score=normalized_score(job.task, value),
        eval_seconds=time.perf_counter() - start,
    )
    path = job.result_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=1))
    return result


class Schedule(NamedTuple):
    """A run's until-flat schedule (env steps): the first chunk, the minimum before it may be called flat, the cap."""

    timesteps: int
    min_timesteps: int
    max_timesteps: int


def off_schedule(result: dict[str, Any], schedule: Schedule) -> str | None:
    """Why the agent's run of ``result`` was not trained until flat on ``schedule`` as things stand (None: it was): the
    leaderboard continues such a run from its chunks or trains it again, and a plan's verdict leaves it out."""
    from agents.converge import hyperparameters_fingerprint, named_versions, unrecorded_matches
    from multispin_env.suite import task as suite_task

    record = result.get("convergence") or {}
    if record.get("first_chunk") != schedule.timesteps:
        return "trained with another first chunk, or not until flat"
    if record.get("status") == "cap" and record.get("cap") != schedule.max_timesteps:
        return f"stopped at a cap of {record.get('cap')} env steps, not {schedule.max_timesteps}"
    if record.get("status") == "flat" and record.get("budget", 0) < schedule.min_timesteps:
        return f"judged flat at {record.get('budget')} env steps, before the minimum {schedule.min_timesteps}"
    if record.get("judged_on", "goodput") != suite_task(result["task"]).metric:
        return "judged on goodput, before the task's metric was the curve"
    kept = record.get("hyperparameters")  # None: recorded before fingerprints were kept, every wrapper at version 1
    current = hyperparameters_fingerprint(result["entry"], result["task"])
    if kept is None and not unrecorded_matches(current):
        return f"trained on version 1 of its training wrappers, before {', '.join(named_versions(current))}"
    if kept is not None and kept != current:
        return "trained with another hyperparameter entry or training wrapper version than the agent has now"
    return None


def _finished(job: Job, out: Path) -> dict[str, Any] | None:
    """The stored result of ``job`` if it is still valid (an agent's: the same model file, unchanged)."""
    path = job.result_path(out)
    if not path.is_file():
        return None
    try:
        result = check_result(json.loads(path.read_text()))
    except ValueError:  # unreadable (or not a result): the job runs again and writes it anew
        return None
    if result.get("task") != job.task:
        return None  # written for another task (version) of the same label by an older release
    if job.kind == "agent":
        model = Path(result.get("model", ""))
        if not model.is_file() or model.stat().st_mtime != result.get("model_mtime"):
            return None
        if not job.train and job.run is not None and Path(job.run).resolve() not in model.resolve().parents:
            return None
        if job.until_flat:
            if off_schedule(result, job.schedule) is not None:
                return None  # continued from its chunks, or trained again (the reasons: off_schedule)
        elif job.train and job.timesteps is not None and result.get("planned_timesteps") != job.timesteps:
            return None  # trained with another budget: train again
        if (job.model == "best") != (model.name == "best_model.zip") and (model.parent / "best_model.zip").is_file():
            return None  # evaluated with the other --model choice
    return result


@dataclass(frozen=True)
class RayRunner:
    """The jobs as Ray tasks on a cluster (``--ray ADDRESS``) instead of local processes: each reserves ``cpus``
    CPUs, runs on whichever node has them, writes its result file like a local job and is run again when its worker
    dies (:func:`agents.ray_jobs.as_tasks`). The output and runs folders must be on a filesystem every node sees.

    :param address: the cluster (``host:port``, ``ray://host:port``, ``auto``; ``local``: a new local Ray)
    :param cpus: Ray CPUs reserved per job
    :param retries: runs again of a job whose worker died
    :param job: what a task does with a job (:func:`run_job`)
    """

    address: str
    cpus: float = 1.0
    retries: int = 2
    job: Callable[[Job, Path], dict[str, Any]] = run_job

    def run(self, jobs: Sequence[Job], out: Path) -> Iterator[tuple[Job, dict[str, Any] | BaseException]]:
        """Run ``jobs``; yields (job, result or exception) as they finish."""
        from agents.ray_jobs import as_tasks, ray_session

        # Absolute paths: a task runs in its worker's folder.
        placed = [dataclasses.replace(j, run=str(Path(j.run).resolve())) if j.run else j for j in jobs]
        with ray_session(self.address):
            yield from as_tasks(self.job, placed, out.resolve(), cpus=self.cpus, retries=self.retries)


# -- planning -------------------------------------------------------------------------------------------------------
def saved_runs(
    runs: Path, tasks: Sequence[str], agents: Sequence[str] | None, seeds: Sequence[int] | None
) -> list[Job]:
    """Evaluation jobs of the saved agents under ``runs`` (newest run per agent, task and seed)."""
    from agents.runs import read_yaml, resolve_agent

    found: dict[tuple[str, str, int], tuple[float, Path]] = {}
    for args_file in runs.rglob("*/args.yml") if runs.is_dir() else []:
        args = read_yaml(args_file)
        env, seed = args.get("env"), args.get("seed")
        agent = Path(str(args.get("conf_file") or args.get("algo"))).stem
        if env not in tasks or seed is None or (agents is not None and agent not in agents):
            continue
        if seeds is not None and int(seed) not in seeds:
            continue
        key, stamp = (agent, str(env), int(seed)), args_file.stat().st_mtime
        if key not in found or stamp > found[key][0]:
            found[key] = (stamp, args_file.parent.parent)
    jobs = []
    for (agent, task, seed), (_, run) in sorted(found.items()):
        try:
            resolve_agent(run)
        except FileNotFoundError:  # a training killed before its first save, or still running
            print(f"skipping {run}: no model saved yet", flush=True)
            continue
        jobs.append(Job("agent", task, agent, seed, run=str(run)))
    return jobs


def analytic_jobs(tasks: Sequence[str], baselines: Sequence[str] | None) -> list[Job]:
    """One job per task and analytic controller valid for it (``baselines``: the chosen ones; None: every one)."""
    import gymnasium as gym

    import multispin_env  # noqa: F401
    from baselines.policies import policies_for

    jobs: list[Job] = []
    for task in tasks:
        valid = policies_for(gym.make(task))
        chosen = valid if baselines is None else [b for b in baselines if b in valid]
        jobs += [Job("analytic", task, name) for name in chosen]
    return jobs


def plan(args: argparse.Namespace) -> list[Job]:
    """All jobs of the command line: analytic controllers, then agent runs (to train or found)."""
    jobs = analytic_jobs(args.tasks, args.baselines)
    runs = Path(args.runs)
    if args.train:
        for agent in args.agents or DEFAULT_AGENTS:
            for task in args.tasks:
                for seed in args.seeds or DEFAULT_SEEDS:
                    folder = runs / agent / short(task) / f"seed{seed}"
                    jobs.append(
                        Job(
                            "agent",
                            task,
                            agent,
                            seed,
                            run=str(folder),
                            train=True,
                            timesteps=args.timesteps,
                            model=args.model,
                            validation=args.validation,
                            until_flat=args.until_flat,
                            max_timesteps=args.max_timesteps,
                            min_timesteps=args.min_timesteps or 0,
                        )
                    )
    else:
        jobs += [
            Job(j.kind, j.task, j.entry, j.seed, run=j.run, model=args.model)
            for j in saved_runs(runs, args.tasks, args.agents, args.seeds)
        ]
    return jobs


def run_jobs(
    jobs: Sequence[Job], out: Path, n_jobs: int, log: Any = print, ray: RayRunner | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the unfinished jobs (trainings first: they are the long ones) on ``n_jobs`` processes, or as Ray tasks
    with ``ray``; returns every job's result and the error lines of the failed ones."""
    results: list[dict[str, Any]] = []
    todo = []
    for job in jobs:
        done = _finished(job, out)
        if done is None:
            todo.append(job)
        else:
            results.append(done)
    if len(results):
        log(f"{len(results)} of {len(jobs)} results kept from an earlier run in {out / 'jobs'}")
    todo.sort(key=lambda j: (not j.train, j.kind == "analytic"))
    errors: list[str] = []

    def report(job: Job, outcome: dict[str, Any] | BaseException, n: int) -> None:
        what = f"{short(job.task)} {job.entry}" + ("" if job.seed is None else f" seed {job.seed}")
        if isinstance(outcome, BaseException):
            errors.append(f"{what}: {one_line(outcome)}")
            log(f"[{n}/{len(todo)}] {what}: FAILED {one_line(outcome)}")
            return
        results.append(outcome)
        extra = f", trained {outcome['train_seconds']:.0f} s" if job.train and outcome.get("train_seconds") else ""
        metric = outcome.get("metric", "goodput")
        measured = METRIC_LABELS["goodput"].format(outcome["goodput"])
        if metric != "goodput":
            measured = f"{METRIC_LABELS[metric].format(outcome['value'])}, {measured}"
        log(f"[{n}/{len(todo)}] {what}: score {outcome['score']:.1f} ({measured}{extra})")

    if ray is not None and todo:
        for n, (placed, task_outcome) in enumerate(ray.run(todo, out), 1):
            report(placed, task_outcome, n)
        return results, errors
    if n_jobs <= 1 or len(todo) <= 1:
        for n, job in enumerate(todo, 1):
            try:
                outcome: dict[str, Any] | BaseException = run_job(job, out)
            except Exception as exc:  # broad: one failed job must not lose the others
                outcome = exc
            report(job, outcome, n)
        return results, errors
    # spawn: no forked copies of torch / numba thread pools.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_jobs, context, initializer=_stop_with_parent, initargs=(os.getpid(),)) as pool:
        futures: dict[Future[dict[str, Any]], Job] = {pool.submit(_worker_job, job, out): job for job in todo}
        try:
            for n, future in enumerate(as_completed(futures), 1):
                failure = future.exception()
                if isinstance(failure, KeyboardInterrupt):  # a worker's training was stopped: stop them all
                    raise failure
                report(futures[future], failure if failure is not None else future.result(), n)
        except KeyboardInterrupt:
            # The signal may have reached this process alone (``kill PID``): pass it on, so that every worker's
            # training saves its model and stops (train.py), and wait for them; the queued jobs are dropped.
            for worker in multiprocessing.active_children():
                worker.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results, errors


#: In a job process: the leaderboard's process id (:func:`_stop_with_parent`).
_PARENT: int | None = None
#: In a job process: whether a job is running, and whether a signal asked the process to stop.
_RUNNING = False
_STOPPING = False


def _stop_with_parent(parent: int) -> None:
    """Initializer of the job processes: SIGINT and SIGTERM stop the process's work (:func:`_on_signal`), and on
    Linux the kernel sends a worker SIGTERM when the leaderboard process dies, even by SIGKILL, so that no orphaned
    worker trains on (its training saves and stops as on ``kill``, then :func:`_worker_job` ends the process).

    :param parent: the leaderboard's process id (a worker whose parent is already gone stops at once)
    """
    global _PARENT
    _PARENT = parent
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1  # <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _on_signal(signum: int, frame: Any) -> None:
    """A job process's SIGINT / SIGTERM outside a training (which handles its own, agents/train.py): no further job
    starts here, and a running one (an evaluation) stops; an idle process waits for the pool's shutdown."""
    global _STOPPING
    _STOPPING = True
    if _RUNNING:
        raise TrainingInterrupted(128 + signum)


def _worker_job(job: Job, out: Path) -> dict[str, Any]:
    """:func:`run_job` in a job process. After a signal no job starts (the pool hands a worker one job beyond those
    running, which ``cancel_futures`` cannot take back), and the process exits once its job is over if the
    leaderboard is gone (nobody would read its result, and the pool's queues would keep it waiting forever)."""
    global _RUNNING, _STOPPING
    if _STOPPING:
        raise TrainingInterrupted(128 + signal.SIGTERM)
    _RUNNING = True
    try:
        return run_job(job, out)
    except KeyboardInterrupt:
        _STOPPING = True
        raise
    finally:
        _RUNNING = False
        if _PARENT is not None and os.getppid() != _PARENT:
            os._exit(128 + signal.SIGTERM)


# -- aggregation --------------------------------------------------------------------------------------------------
def aggregate(
    results: Sequence[dict[str, Any]],
    tasks: Sequence[str],
    reps: int = 2000,
    seed: int = 0,
    controller_runs: int | None = None,
) -> dict[str, Any]:
    """Scores per task and entry (learned agents: IQM over seeds with a stratified-bootstrap 95% CI) and, per agent,
    the rliable aggregates over tasks (IQM, median, mean, optimality gap with 95% CIs) and performance profiles.

    :param controller_runs: how many times a deterministic controller's score counts per task over tasks (compare it
        with an agent of that many runs per task: the IQM's trim depends on the count); None: as many as the agent
        with the most runs per task (1 without agents). Recorded as the aggregate's ``controller_runs``.
    """
    import warnings

    from rliable import library as rly
    from rliable import metrics

    def rng(*keys: str) -> np.random.RandomState:
        """One bootstrap stream per interval: a row's CI depends on its own scores only, not on which other rows
        the board holds. rliable's stratified bootstrap draws its resampling indices from numpy's global
        generator (the ``random_state`` it passes on is not used for them), so that generator is seeded too;
        its state is restored when the aggregate is done."""
        stream = zlib.crc32("/".join((str(seed), *keys)).encode())
        np.random.seed(stream)  # noqa: NPY002  (rliable draws from the legacy global generator)
        return np.random.RandomState(stream)

    saved = np.random.get_state()  # noqa: NPY002
    try:
        with warnings.catch_warnings():
            # arch (under rliable) warns that its RandomState argument is deprecated; rliable passes one.
            warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
            return _aggregate(results, tasks, reps, rng, rly, metrics, controller_runs)
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def _aggregate(
    results: Sequence[dict[str, Any]],
    tasks: Sequence[str],
    reps: int,
    rng: Callable[..., np.random.RandomState],
    rly: Any,
    metrics: Any,
    controller_runs: int | None,
) -> dict[str, Any]:
    """:func:`aggregate` with the bootstrap streams ``rng(*keys)`` and rliable's ``library`` and ``metrics``."""

    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    kinds: dict[str, str] = {}
    for r in results:
        by.setdefault((r["task"], r["entry"]), []).append(r)
        kinds[r["entry"]] = r["kind"]
    board: list[dict[str, Any]] = []
    for (task, entry), rows in sorted(by.items(), key=lambda kv: (tasks.index(kv[0][0]), kv[0][1])):
        scores = np.array([r["score"] for r in rows], dtype=float)
        row = {
            "task": task,
            "entry": entry,
            "kind": kinds[entry],
            "runs": len(rows),
            "metric": rows[0].get("metric", "goodput"),
            "value": float(np.mean([r.get("value", r["goodput"]) for r in rows])),
            "goodput": float(np.mean([r["goodput"] for r in rows])),
        }
        if kinds[entry] == "agent":
            point, interval = rly.get_interval_estimates(
                {entry: scores[:, None]},
                lambda x: np.array([metrics.aggregate_iqm(x)]),
                reps=reps,
                random_state=rng(task, entry),
            )
            row.update(
                score=float(point[entry][0]),
                ci_low=float(interval[entry][0, 0]),
                ci_high=float(interval[entry][1, 0]),
                seeds=sorted(int(r["seed"]) for r in rows),
                scores=scores.tolist(),
            )
        else:
            row.update(score=float(scores[0]), ci_low=float(scores[0]), ci_high=float(scores[0]))
        board.append(row)
    # Over tasks: each agent on the tasks where it has runs, with the seeds it has on all of them.
    matrices: dict[str, np.ndarray] = {}
    covered: dict[str, list[str]] = {}
    for entry, kind in sorted(kinds.items()):
        have = [t for t in tasks if (t, entry) in by]
        if kind == "agent":
            common = set.intersection(*({int(r["seed"]) for r in by[(t, entry)]} for t in have))
            if not common:
                continue
            seeds = sorted(common)
            matrices[entry] = np.array(
                [[next(r["score"] for r in by[(t, entry)] if int(r["seed"]) == s) for t in have] for s in seeds]
            )
        else:
            matrices[entry] = np.array([[by[(t, entry)][0]["score"] for t in have]])
        covered[entry] = have
    runs = {entry: int(m.shape[0]) for entry, m in matrices.items()}
    # A deterministic controller's one score per task counts once per seed of the agents: the IQM trims 25% of the
    # scores at each end, rounded down, so over 18 tasks 1 score per task keeps 10 of 18 while 5 keep 46 of 90, and
    # the same scores would have another IQM as a controller's than as an agent's (het-opt-predictive-posterior's
    # scores on the v1 board: 97.6 once per task, 97.9 once per seed). The IQMs compare exactly between entries with
    # as many runs per task: an agent with fewer seeds (a missing run) is compared with controllers counted as often
    # (controller_runs; agents.verdict does so for the best learned agent).
    if controller_runs is not None and controller_runs < 1:
        raise ValueError(f"controller_runs must be >= 1, got {controller_runs}")
    seeds_per_task = controller_runs or max((n for entry, n in runs.items() if kinds[entry] == "agent"), default=1)
    for entry in matrices:
        if kinds[entry] != "agent":
            matrices[entry] = np.repeat(matrices[entry], seeds_per_task, axis=0)
    names = ("IQM", "Median", "Mean", "Optimality gap")

    def four(x: np.ndarray) -> np.ndarray:
        return np.array(
            [
                metrics.aggregate_iqm(x),
                metrics.aggregate_median(x),
                metrics.aggregate_mean(x),
                metrics.aggregate_optimality_gap(x, 100.0),
            ]
        )

    over: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    if matrices:
        point, interval = {}, {}
        for entry, matrix in matrices.items():
            estimate = rly.get_interval_estimates({entry: matrix}, four, reps=reps, random_state=rng(entry))
            point[entry], interval[entry] = estimate[0][entry], estimate[1][entry]
        for entry in matrices:
            over[entry] = {
                "kind": kinds[entry],
                "tasks": [short(t) for t in covered[entry]],
                "runs_per_task": runs[entry],
                **{
                    name: {
                        "value": float(point[entry][i]),
                        "ci95": [float(interval[entry][0, i]), float(interval[entry][1, i])],
                    }
                    for i, name in enumerate(names)
                },
            }
        low = min(0.0, 10.0 * math.floor(min(float(m.min()) for m in matrices.values()) / 10.0))
        taus = np.linspace(low, 110.0, 111)  # down to the lowest score: scores below server-only (< 0) happen
        rng("profiles")  # the profiles' bootstrap draws from numpy's global generator only
        dist, dist_ci = rly.create_performance_profile(matrices, taus, reps=min(reps, 2000))
        profiles = {
            "tau": taus.tolist(),
            **{e: {"fraction": dist[e].tolist(), "ci95": np.asarray(dist_ci[e]).tolist()} for e in matrices},
        }
    return {
        "board": board,
        "aggregate": over,
        "profiles": profiles,
        "metrics": list(names),
        "controller_runs": seeds_per_task,
    }


def goal_checks(agg: dict[str, Any], results: Sequence[dict[str, Any]], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The goals, as measured: per task, a sound scale (references at least ``MIN_REFERENCE_SPAN`` apart, no
    analytic controller above ``MAX_ANALYTIC_SCORE``: :mod:`multispin_env.suite`) and best learned IQM >= best
    non-oracle analytic score; on the i.i.d. static task, every seed of the plain agent at >= 97% of
    het-opt-oracle's goodput."""
    from multispin_env.suite import MAX_ANALYTIC_SCORE, MIN_REFERENCE_SPAN, reference_goodputs, reference_span

    checks = []
    for task in tasks:
        rows = [r for r in agg["board"] if r["task"] == task]
        controllers = [r for r in rows if r["kind"] == "analytic"]
        if controllers:  # the scale's soundness (docs/suite.md)
            top = best_row(controllers)
            span = reference_span(task)
            checks.append(
                {
                    "goal": f"references >= {MIN_REFERENCE_SPAN:.0%} apart, no analytic controller above "
                    f"{MAX_ANALYTIC_SCORE:g}",
                    "task": short(task),
                    "met": span >= MIN_REFERENCE_SPAN and top["score"] <= MAX_ANALYTIC_SCORE,
                    "reference_span": span,
                    "top_analytic": top["entry"],
                    "top_analytic_score": top["score"],
                }
            )
        learned = [r for r in rows if r["kind"] == "agent"]
        analytic = [r for r in rows if r["kind"] == "analytic" and r["entry"] not in ORACLE_POLICIES]
        if not learned or not analytic:
            continue
        best_l, best_a = best_row(learned), best_row(analytic)
        checks.append(
            {
                "goal": "best learned IQM >= best non-oracle analytic",
                "task": short(task),
                "met": best_l["score"] >= best_a["score"] - SCORE_TIE,
                "learned": best_l["entry"],
                "learned_score": best_l["score"],
                "analytic": best_a["entry"],
                "analytic_score": best_a["score"],
            }
        )
    task, agent, share = PLAIN_GOAL
    runs = [r for r in results if r["task"] == task and r["entry"] == agent]
    if runs:
        oracle = reference_goodputs(task)[1]
        ratios = {int(r["seed"]): r["goodput"] / oracle for r in runs}
        checks.append(
            {
                "goal": f"{agent} seeds >= {share:.0%} of het-opt-oracle goodput",
                "task": short(task),
                "met": all(v >= share for v in ratios.values()),
                "share_of_oracle": ratios,
                "seeds_met": f"{sum(v >= share for v in ratios.values())}/{len(ratios)}",
            }
        )
    return checks


# -- outputs --------------------------------------------------------------------------------------------------------
def git_commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes), or ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _fmt(row: dict[str, Any]) -> str:
    if row["kind"] == "agent" and row["runs"] > 1:
        return f"{row['score']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
    return f"{row['score']:.1f}"


def markdown(agg: dict[str, Any], checks: Sequence[dict[str, Any]], tasks: Sequence[str], meta: dict[str, Any]) -> str:
    """The leaderboard as Markdown: scores per task (best non-oracle entry in bold), aggregates, goal checks."""
    from multispin_env.suite import SCORE_SCALE

    entries = entry_order(agg)
    cells = {(r["task"], r["entry"]): r for r in agg["board"]}
    minutes = meta["wall_seconds"] / 60
    # jobs None: a board assembled from the per-job results of several commands (agents.verdict --board)
    took = (
        f"{minutes:.1f} min of jobs summed"
        if meta["jobs"] is None
        else f"{minutes:.1f} min wall on {meta['jobs']} process(es)"
    )
    lines = [
        (
            f"Measured at commit `{meta['commit']}`: {took} "
            f"(training {meta['train_seconds_total'] / 60:.1f} min, evaluation {meta['eval_seconds_total'] / 60:.1f} min summed "
            f"over jobs, resumed runs included). Normalized score: {SCORE_SCALE}; learned agents: IQM "
            "over training seeds [stratified-bootstrap 95% CI]."
        ),
        "",
        "| task | " + " | ".join(entries) + " |",
        "|---" * (len(entries) + 1) + "|",
    ]
    for task in tasks:
        present = [cells[(task, e)] for e in entries if (task, e) in cells]
        if not present:
            continue
        rivals = [r for r in present if r["entry"] not in ORACLE_POLICIES]
        best = best_row(rivals)["entry"] if rivals else None
        row = []
        for e in entries:
            cell = cells.get((task, e))
            text = "" if cell is None else _fmt(cell)
            row.append(f"**{text}**" if e == best else text)
        lines.append(f"| {short(task)} | " + " | ".join(row) + " |")
    if agg["aggregate"]:
        lines += [
            "",
            "Over tasks (rliable, stratified bootstrap 95% CIs; a controller's deterministic score counts once per "
            "seed of the agents):",
            "",
            "| entry | tasks | runs/task | " + " | ".join(agg["metrics"]) + " |",
            "|---" * (3 + len(agg["metrics"])) + "|",
        ]
        for entry, a in sorted(agg["aggregate"].items(), key=lambda kv: -kv[1]["IQM"]["value"]):
            vals = " | ".join(
                f"{a[m]['value']:.1f} [{a[m]['ci95'][0]:.1f}, {a[m]['ci95'][1]:.1f}]" for m in agg["metrics"]
            )
            lines.append(f"| {entry} | {len(a['tasks'])} | {a['runs_per_task']} | {vals} |")
    if checks:
        lines += ["", "Goals (measured):", ""]
        lines += [f"- {'met' if c['met'] else 'MISSED'}: {c['task']}: {c['goal']}" + _check_detail(c) for c in checks]
    return "\n".join(lines) + "\n"


def agg_kind(agg: dict[str, Any], entry: str) -> str:
    return next(r["kind"] for r in agg["board"] if r["entry"] == entry)


def entry_order(agg: dict[str, Any]) -> list[str]:
    """Analytic controllers in registry order, then the agents by name."""
    from baselines.policies import ANALYTIC_POLICIES

    entries = {r["entry"] for r in agg["board"]}

    def key(e: str) -> tuple[int, int, str]:
        if agg_kind(agg, e) == "agent":
            return (1, 0, e)
        return (0, ANALYTIC_POLICIES.index(e) if e in ANALYTIC_POLICIES else len(ANALYTIC_POLICIES), e)

    return sorted(entries, key=key)


def _check_detail(check: dict[str, Any]) -> str:
    if "reference_span" in check:
        return (
            f" (references {100 * check['reference_span']:.1f}% apart; top analytic {check['top_analytic']} "
            f"{check['top_analytic_score']:.1f})"
        )
    if "learned" in check:
        return (
            f" ({check['learned']} {check['learned_score']:.1f} vs {check['analytic']} {check['analytic_score']:.1f})"
        )
    shares = ", ".join(f"seed {s}: {100 * v:.1f}%" for s, v in sorted(check["share_of_oracle"].items()))
    return f" ({check['seeds_met']}; {shares})"


def plot_board(agg: dict[str, Any], tasks: Sequence[str], path: Path) -> Path:
    """Heat map of the normalized score per task (rows) and entry (columns; learned agents: IQM)."""
    from multispin_env.suite import SCORE_SCALE

    plt = _pyplot()
    entries = entry_order(agg)
    rows = [t for t in tasks if any(r["task"] == t for r in agg["board"])]
    grid = np.full((len(rows), len(entries)), np.nan)
    for r in agg["board"]:
        if r["task"] in rows:
            grid[rows.index(r["task"]), entries.index(r["entry"])] = r["score"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(entries), 1.2 + 0.4 * len(rows)))
    image = ax.imshow(np.clip(grid, 0, 110), cmap="viridis", vmin=0, vmax=110, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(
                j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="white" if value < 70 else "black"
            )
    ax.set_xticks(
        range(len(entries)),
        [e + (" *" if agg_kind(agg, e) == "agent" else "") for e in entries],
        rotation=40,
        ha="right",
        fontsize=8,
    )
    ax.set_yticks(range(len(rows)), [short(t) for t in rows], fontsize=8)
    fig.colorbar(image, ax=ax, label="normalized score")
    ax.set_title(f"normalized score per task ({SCORE_SCALE};\n* learned: IQM over seeds)", fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_rliable(agg: dict[str, Any], out: Path) -> list[Path]:
    """rliable's interval-estimate plot of the aggregates and its performance-profile plot."""
    from rliable import plot_utils

    plt = _pyplot()
    if not agg["aggregate"]:
        return []
    entries = sorted(agg["aggregate"], key=lambda e: agg["aggregate"][e]["IQM"]["value"])
    point = {e: np.array([agg["aggregate"][e][m]["value"] for m in agg["metrics"]]) for e in entries}
    interval = {
        e: np.array([[agg["aggregate"][e][m]["ci95"][k] for m in agg["metrics"]] for k in (0, 1)]) for e in entries
    }
    fig, _ = plot_utils.plot_interval_estimates(
        point, interval, metric_names=agg["metrics"], algorithms=entries, xlabel="normalized score"
    )
    fig.savefig(out / "aggregate.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    taus = np.asarray(agg["profiles"]["tau"])
    dist = {e: np.asarray(agg["profiles"][e]["fraction"]) for e in entries}
    cis = {e: np.asarray(agg["profiles"][e]["ci95"]) for e in entries}
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7, 4.5))
    palette = plt.cm.tab10 if len(entries) <= 10 else plt.cm.tab20
    colors = {e: palette(i % palette.N) for i, e in enumerate(reversed(entries))}
    plot_utils.plot_performance_profiles(
        dist, taus, performance_profile_cis=cis, ax=ax, xlabel=r"normalized score $\tau$", colors=colors
    )
    ax.legend(
        [Line2D([0], [0], color=colors[e], lw=2) for e in reversed(entries)],
        list(reversed(entries)),
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    fig.savefig(out / "profiles.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [out / "aggregate.png", out / "profiles.png"]


def relative_to_runs(result: dict[str, Any], runs: Path) -> dict[str, Any]:
    """``result`` with its model paths (the evaluated ``model``, and its convergence record's ``best_model`` and
    ``final_model``) relative to the runs folder (a model outside it keeps its path).

    The written tables are copied into the docs and read elsewhere: a path relative to ``--runs`` names the run
    wherever the runs folder lies, an absolute one only on the machine that made it.
    """

    def relative(path: Any) -> Any:
        try:
            return Path(path).resolve().relative_to(runs.resolve()).as_posix() if path else path
        except ValueError:
            return path

    result = {**result, "model": relative(result.get("model"))} if "model" in result else result
    record = result.get("convergence")
    if isinstance(record, dict):
        result["convergence"] = {k: relative(v) if k in ("best_model", "final_model") else v for k, v in record.items()}
    return result


def compute_totals(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The compute of ``results`` summed: ``train_seconds_total`` (training wall), ``train_cpu_seconds_total``
    (training CPU, of the runs that recorded it) and ``eval_seconds_total`` (evaluation wall), seconds."""
    return {
        "train_seconds_total": float(sum(r.get("train_seconds") or 0.0 for r in results)),
        "train_cpu_seconds_total": float(sum(r.get("cpu_seconds") or 0.0 for r in results)),
        "eval_seconds_total": float(sum(r.get("eval_seconds") or 0.0 for r in results)),
    }


def write_outputs(
    results: Sequence[dict[str, Any]],
    agg: dict[str, Any],
    checks: Sequence[dict[str, Any]],
    tasks: Sequence[str],
    meta: dict[str, Any],
    out: Path,
    plots: bool = True,
    runs: Path | None = None,
) -> list[Path]:
    """Write the tables and plots into ``out``; model paths relative to ``runs`` when given."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "runs.csv", out / "leaderboard.csv", out / "leaderboard.json", out / "leaderboard.md"]
    if runs is not None:
        results = [relative_to_runs(r, runs) for r in results]
    ordered = sorted(results, key=lambda r: (tasks.index(r["task"]), r["kind"], r["entry"], r["seed"] or 0))
    for path, columns, rows in ((written[0], RUN_COLUMNS, ordered), (written[1], BOARD_COLUMNS, agg["board"])):
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(path, text.getvalue())
    payload = {
        **meta,
        "board": agg["board"],
        "aggregate": agg["aggregate"],
        "profiles": agg["profiles"],
        "goals": checks,
        "runs": ordered,
    }
    write_atomic(written[2], json.dumps(_json_safe(payload), indent=1, default=str))  # NaN/inf -> null: valid JSON
    write_atomic(written[3], markdown(agg, checks, tasks, meta))
    if plots:
        written.append(plot_board(agg, tasks, out / "leaderboard.png"))
        written += plot_rliable(agg, out)
    return written


# -- command line -------------------------------------------------------------------------------------------------
def build_parser(prog: str = "multispin-leaderboard") -> OneLineParser:
    p = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument(
        "--runs",
        default="runs/leaderboard",
        help=f"folder of saved agents (searched for args.yml); --train trains into it ({TRUST_NOTE})",
    )
    p.add_argument("-o", "--output", default="results/leaderboard", help="output folder")
    p.add_argument("--train", action="store_true", help="train the missing (agent, task, seed) runs first")
    p.add_argument(
        "--timesteps",
        type=int_at_least(1),
        default=None,
        help="--train budget per run, env steps (default: the hyperparameter file's)",
    )
    p.add_argument(
        "--until-flat",
        action="store_true",
        help="--train each run in chunks (doubling its budget, each from the last chunk's model) until its validation "
        f"goodput is flat: the last {100 * FLAT_WINDOW:.0f}%% of its steps improve the best by less than "
        f"{100 * FLAT_TOLERANCE:.1f}%% (--timesteps: the first chunk, default {DEFAULT_FIRST_CHUNK:,})",
    )
    p.add_argument(
        "--max-timesteps",
        type=int_at_least(1),
        default=None,
        help=f"--until-flat: cap on a run's env steps (default {DEFAULT_CAP_FACTOR} x the first chunk)",
    )
    p.add_argument(
        "--min-timesteps",
        type=int_at_least(1),
        default=None,
        help="--until-flat: env steps a run trains before it may be called flat (default: none; for agents that "
        "start at a good policy, such as the residual ones, whose first chunk is flat whether or not they improve)",
    )
    p.add_argument(
        "--agents",
        nargs="+",
        default=None,
        metavar="AGENT",
        help=f"agents (hyperparameter files; --train default: {' '.join(DEFAULT_AGENTS)}; else every saved agent)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int_at_least(0),
        default=None,
        help=f"training seeds (--train default: {' '.join(map(str, DEFAULT_SEEDS))}; else all saved)",
    )
    p.add_argument(
        "--model",
        choices=("best", "final"),
        default="best",
        help="which model of a learned run to score: best on validation episodes during training, or final",
    )
    p.add_argument(
        "--validation",
        type=int_at_least(0),
        default=5,
        help="--train: validation episodes per evaluation (every tenth of the budget) for the best model; 0: none",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        metavar="TASK",
        help="suite tasks, by id or name; a retired version by its id or name-vN, e.g. LargeK-v0 (default: the suite's)",
    )
    p.add_argument(
        "--baselines",
        nargs="*",
        default=None,
        metavar="POLICY",
        help="analytic controllers (default: all valid; no names: none)",
    )
    p.add_argument(
        "--jobs", type=int_at_least(1), default=1, help="worker processes (one job each: a training or an evaluation)"
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the jobs as Ray tasks on this cluster instead of --jobs processes (local: a new local Ray); "
        "--runs and -o must be on a filesystem every node sees",
    )
    p.add_argument("--cpus-per-job", type=positive_float, default=1.0, help="--ray: Ray CPUs reserved per job")
    p.add_argument(
        "--retries", type=int_at_least(0), default=2, help="--ray: runs again of a job whose worker process died"
    )
    p.add_argument("--reps", type=int_at_least(100), default=2000, help="bootstrap resamples of the 95%% CIs")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--plan",
        default=None,
        metavar="FILE",
        help="train and evaluate a board's plan (groups of agents, tasks and until-flat schedules: agents.board_plan; "
        "--tasks/--agents/--baselines filter it), then write the whole board and its verdict page OUT/verdict.md",
    )
    return p


def plan_file_jobs(args: argparse.Namespace, prog: str) -> tuple[list[Job], list[str], list[int]]:
    """The jobs of ``--plan``: every group's training runs (until flat, on its schedule) and every analytic
    controller on the plan's tasks; returns them, the plan's agents and its seeds. Sets ``args.tasks`` and
    ``args.agents`` to the plan's (after the command line's filters)."""
    from agents.board_plan import check_no_overlap, read_plan
    from multispin_env.suite import TASKS, resolve_tasks

    for given, flag in (
        (args.train, "--train"),
        (args.until_flat, "--until-flat"),
        (args.timesteps is not None, "--timesteps"),
        (args.min_timesteps is not None, "--min-timesteps"),
        (args.max_timesteps is not None, "--max-timesteps"),
        (args.seeds is not None, "--seeds"),
    ):
        if given:
            raise UserError(f"--plan sets {flag} (per group of the plan file); drop it")
    board = read_plan(args.plan)
    try:
        only_tasks = None if args.tasks is None else set(resolve_tasks(args.tasks))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_agents(args.agents or [], "one job would run twice")
    check_baselines(args.baselines, "one job would run twice")
    shared = ["--runs", args.runs, "-o", args.output, "--model", args.model, "--validation", str(args.validation)]
    seeds = [str(s) for s in board.seeds]
    jobs: list[Job] = []
    groups: list[tuple[list[str], list[str]]] = []
    for i, argv in enumerate(board.groups, start=1):
        parser = build_parser(f"{prog} --plan {args.plan}: group {i}")
        group = parser.parse_args([*argv, "--train", "--until-flat", "--seeds", *seeds, "--baselines", *shared])
        try:
            check_args(group, folders=False)
        except UserError as exc:
            raise UserError(f"--plan {args.plan}: group {i}: {one_line(exc)}") from None
        group.tasks = [t for t in group.tasks if only_tasks is None or t in only_tasks]
        group.agents = [a for a in group.agents if args.agents is None or a in args.agents]
        groups.append((group.agents, group.tasks))
        if group.tasks and group.agents:
            jobs += plan(group)
    check_no_overlap(groups)
    used = {t for _, tasks in groups for t in tasks}
    args.tasks = [t for t in [*TASKS, *sorted(used - set(TASKS))] if t in used]
    args.agents = list(dict.fromkeys(a for agents, tasks in groups if tasks for a in agents))
    return analytic_jobs(args.tasks, args.baselines) + jobs, args.agents, list(board.seeds)


def plan_expects(path: str | Path, prog: str) -> tuple[list[str], list[int], dict[tuple[str, str], Schedule]]:
    """What the verdict of the plan file ``path`` expects: the agents it trains (in the plan's order), its seeds
    and the (task id, agent) pairs it trains them on, each with its until-flat schedule."""
    jobs, agents, seeds = plan_file_jobs(build_parser(prog).parse_args(["--plan", str(path), "--baselines"]), prog)
    return agents, seeds, {(j.task, j.entry): j.schedule for j in jobs if j.train}


def check_agents(agents: Sequence[str], why: str) -> None:
    """Agent names given on a command line: each a hyperparameter file's (:func:`agents.train.agent_names`), none
    twice (``why``: what a repeat would do); raises :class:`UserError`."""
    check_no_repeats(agents, "--agents", why)
    known = agent_names()
    bad = [a for a in agents if a not in known]
    if bad:
        raise UserError(f"unknown agent(s) {', '.join(bad)}; agents (agents/hyperparams): {', '.join(known)}")


def check_baselines(baselines: Sequence[str] | None, why: str) -> None:
    """``--baselines`` names: each an analytic controller's, none twice (``why``: what a repeat would do); raises
    :class:`UserError`."""
    from baselines.policies import ANALYTIC_POLICIES

    check_no_repeats(baselines or [], "--baselines", why)
    bad = [b for b in baselines or [] if b not in ANALYTIC_POLICIES]
    if bad:
        raise UserError(f"unknown analytic controller(s) {', '.join(bad)}; known: {', '.join(ANALYTIC_POLICIES)}")


def check_args(args: argparse.Namespace, folders: bool = True) -> None:
    """Resolve task names and check the command line; raises :class:`UserError`.

    :param folders: also check the output and runs folders and Ray (False: a ``--plan`` group, whose folders and
        Ray the command line gives and :func:`main` checks once)
    """
    from multispin_env.suite import TASKS, resolve_tasks

    if args.tasks is None:
        args.tasks = list(TASKS)
    else:  # a suite task by id, name or name-vN; a retired version by its id or name-vN
        try:
            args.tasks = resolve_tasks(args.tasks)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    why = "one job would run twice (two trainings into one folder)"
    check_no_repeats(args.tasks, "--tasks", why)
    check_no_repeats(args.seeds or [], "--seeds", why)
    check_baselines(args.baselines, why)
    check_agents(args.agents or [], why)
    for agent in args.agents or (DEFAULT_AGENTS if args.train else ()):
        agent_command(agent)
    if args.timesteps is not None and not args.train:
        raise UserError("--timesteps needs --train")
    if (args.until_flat or args.max_timesteps is not None or args.min_timesteps is not None) and not args.train:
        raise UserError("--until-flat, --max-timesteps and --min-timesteps need --train")
    for given, name in ((args.max_timesteps, "--max-timesteps"), (args.min_timesteps, "--min-timesteps")):
        if given is not None and not args.until_flat:
            raise UserError(f"{name} needs --until-flat")
    if args.until_flat:
        if args.validation == 0:
            raise UserError("--until-flat needs validation episodes (--validation >= 1)")
        args.timesteps = args.timesteps or DEFAULT_FIRST_CHUNK
        cap_given = args.max_timesteps is not None
        args.max_timesteps = args.max_timesteps or DEFAULT_CAP_FACTOR * args.timesteps
        if args.max_timesteps < args.timesteps:
            raise UserError(
                f"--max-timesteps {args.max_timesteps} is below the first chunk --timesteps {args.timesteps}"
            )
        if args.min_timesteps is not None and args.min_timesteps > args.max_timesteps:
            default = "" if cap_given else f" (default {DEFAULT_CAP_FACTOR} x --timesteps)"
            raise UserError(
                f"--min-timesteps {args.min_timesteps} is above the cap --max-timesteps {args.max_timesteps}{default}"
            )
    if not folders:
        return
    check_output_folder(args.output, "-o/--output")
    if args.train:  # trained into; otherwise only read
        check_output_folder(args.runs, "--runs")
    elif Path(args.runs).exists() and not Path(args.runs).is_dir():
        raise UserError(f"--runs {args.runs!r} is a file, not a folder")
    if not args.train and not Path(args.runs).is_dir() and args.agents:
        raise UserError(f"--runs {args.runs!r} does not exist (train with --train)")
    if args.ray is not None:
        from agents.ray_jobs import require_ray

        require_ray(args.ray)


def check_other_results(out: Path, jobs: Sequence[Job]) -> None:
    """Check the result files under ``out/jobs`` that ``jobs`` do not write (:func:`check_result`): ``--plan``'s
    verdict reads them after the jobs, which may take hours. A job's own file is written anew if unreadable."""
    own = {job.result_path(out) for job in jobs}
    for path in sorted((out / "jobs").glob("*/*.json")):
        if path in own:
            continue
        try:
            check_result(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot read {path} (a result of another command, for the verdict): {one_line(exc)}"
            ) from None


def main(argv: Sequence[str] | None = None, prog: str = "multispin-leaderboard") -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 some jobs failed, 2 user error, 130 / 143 interrupted
    by SIGINT / SIGTERM)."""
    args = build_parser(prog).parse_args(argv)
    interrupts = Interrupts()
    start, commit = time.perf_counter(), git_commit()  # the code the jobs run, before anything is edited meanwhile
    out = Path(args.output)
    # --plan: what its verdict expects (the whole plan's runs, whatever part of it this command runs)
    board: tuple[list[str], list[int], dict[tuple[str, str], Schedule]] | None = None
    try:
        if args.plan is not None:
            jobs, _, _ = plan_file_jobs(args, prog)
            board = plan_expects(args.plan, prog)
            check_output_folder(args.output, "-o/--output")
            check_output_folder(args.runs, "--runs")
            if args.ray is not None:
                from agents.ray_jobs import require_ray

                require_ray(args.ray)
            check_other_results(out, jobs)
        else:
            check_args(args)
            jobs = plan(args)
        if not jobs:
            raise UserError(
                "nothing to evaluate: no analytic controllers chosen and no saved agents found under --runs"
            )
        where = f"{args.jobs} process(es)" if args.ray is None else f"Ray ({args.cpus_per_job:g} CPU per job)"
        print(
            f"{len(jobs)} jobs ({sum(j.train for j in jobs)} with training) on {where}; results in {out / 'jobs'}",
            flush=True,
        )
        ray = None if args.ray is None else RayRunner(args.ray, args.cpus_per_job, args.retries)
        # SIGTERM as Ctrl-C: the running trainings save their models and the command exits 143 (130 for SIGINT).
        with interrupts.installed():
            results, errors = run_jobs(jobs, out, args.jobs, log=lambda line: print(line, flush=True), ray=ray)
    except UserError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(
            f"{prog}: interrupted; finished results are kept in {out / 'jobs'} (run the same command to resume)",
            file=sys.stderr,
        )
        return getattr(exc, "status", None) or interrupts.exit_status or 130
    if not results:
        print(f"{prog}: error: every job failed: {errors[0]}", file=sys.stderr)
        return 1
    command = " ".join([prog, *(argv if argv is not None else sys.argv[1:])])
    if board is not None:  # the whole board (every result under -o, earlier commands' too) and its verdict
        from agents.verdict import load_results, write_verdict

        agents, seeds, pairs = board
        try:
            every = load_results(out)
        except UserError as exc:  # a result file under -o changed while the jobs ran (checked before them)
            for line in errors:
                print(f"{prog}: job failed: {line}", file=sys.stderr)
            print(f"{prog}: error: the verdict: {one_line(exc)}", file=sys.stderr)
            return 2
        written = write_verdict(
            every,
            out / "verdict.md",
            command,
            agents,
            seeds,
            args.reps,
            board_folder=out,
            plots=not args.no_plots,
            pairs=pairs,
        )
        print(f"wrote {', '.join(str(p) for p in written)}")
        for line in errors:
            print(f"{prog}: job failed: {line}", file=sys.stderr)
        return 1 if errors else 0
    agg = aggregate(results, args.tasks, reps=args.reps)
    checks = goal_checks(agg, results, args.tasks)
    meta = {
        "commit": commit,
        "wall_seconds": time.perf_counter() - start,
        "jobs": args.jobs,
        "cpus": os.cpu_count(),
        "command": command,
        "tasks": list(args.tasks),
        "timesteps": args.timesteps,
        **compute_totals(results),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "errors": errors,
    }
    written = write_outputs(results, agg, checks, args.tasks, meta, out, plots=not args.no_plots, runs=Path(args.runs))
    print(markdown(agg, checks, args.tasks, meta))
    print(f"wrote {', '.join(str(p) for p in written)}")
    for line in errors:
        print(f"{prog}: job failed: {line}", file=sys.stderr)
    return 1 if errors else 0


def console_main() -> None:
    """``multispin-leaderboard``."""
    sys.exit(main())


__all__ = ["DEFAULT_AGENTS", "Job", "RayRunner", "aggregate", "goal_checks", "main", "plan", "run_job", "run_jobs"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m agents.leaderboard"))
