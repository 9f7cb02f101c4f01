"""``python -m agents.verdict OUT``: does the best learned agent beat the best analytic controller, per task?

    python -m agents.verdict OUT --export docs/leaderboard/v1 --runs RUNS    # copy the per-job results, paths relative
    python -m agents.verdict docs/leaderboard/v1 -o docs/verdict.md --board --plan docs/leaderboard/v1/plan.yml
    # the page, and the leaderboard files; expecting every agent and seed of the plan

Reads the per-job result files of a leaderboard run (``OUT/jobs/*/*.json``, :mod:`agents.leaderboard`) and writes a
Markdown page answering, per task of :data:`multispin_env.suite.TASKS`: the best learned agent (highest IQM over
its training seeds, with its stratified-bootstrap 95% CI, rliable) against the best non-oracle analytic controller
(its score on the task's evaluation seeds: deterministic, so its interval is the point), their difference, whether
the intervals overlap, and why a learned controller could differ (the task's ``edge``,
:data:`multispin_env.suite.EDGES`). Then the aggregate over the tasks both sides have (IQM over tasks with 95% CIs),
the goals, the compute (training CPU-hours summed from the runs' records) and the commits measured at. Runs that did
not converge (trained until the cap, or not trained until flat) are marked; expected runs without a result are
listed as missing, so the page says which tasks and agents it covers (``--plan``: the agents, tasks and seeds of a
board's plan file, :mod:`agents.board_plan`, and runs not trained on its schedules are left out and listed; else
``--agents``/``--seeds``, every agent on every task).

``--board`` also writes the leaderboard's files (:func:`agents.leaderboard.write_outputs`: tables, JSON, plots)
into the results folder from the same per-job results, so that a board assembled from several resumed commands
is regenerated whole. ``--export DIR`` copies the per-job results into ``DIR/jobs`` with the paths of the models
relative to ``--runs`` (results kept in a repository name no machine's folders), and stops.

An outcome is ``learned`` (the learned CI lies wholly above the analytic score, by more than :data:`MARGIN`
points), ``analytic`` (wholly below, by more than :data:`MARGIN`) or ``tie`` (they overlap or lie closer).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.cli import (
    HelpFormatter,
    OneLineParser,
    UserError,
    check_no_repeats,
    check_output_folder,
    int_at_least,
    one_line,
)
from agents.converge import FLAT_TOLERANCE, FLAT_WINDOW
from agents.leaderboard import (
    DEFAULT_SEEDS,
    SCORE_TIE,
    Schedule,
    aggregate,
    best_row,
    check_agents,
    check_result,
    compute_totals,
    off_schedule,
    plan_expects,
    relative_to_runs,
    short,
)
from agents.runs import write_atomic
from baselines.policies import ORACLE_POLICIES

#: The learners' goal: on these tasks the best learned IQM is at least this controller's score.
PREDICTIVE_GOAL: tuple[tuple[str, ...], str] = (("NoisyCSI", "StaleCSI1", "Positional"), "het-opt-predictive")


def load_results(out: Path) -> list[dict[str, Any]]:
    """Every per-job result under ``out/jobs`` (a leaderboard output folder); UserError when there are none."""
    files = sorted((out / "jobs").glob("*/*.json"))
    if not files:
        raise UserError(f"no per-job results under {out / 'jobs'} (run multispin-leaderboard -o {out} first)")
    results = []
    for path in files:
        try:
            results.append(check_result(json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {one_line(exc)}") from None
    return results


def export(out: Path, runs: Path, dest: Path) -> int:
    """Copy ``out/jobs/*/*.json`` into ``dest/jobs`` with their model paths under ``runs`` made relative to it
    (:func:`agents.leaderboard.relative_to_runs`); returns the number of files copied."""
    results = load_results(out)
    for path, result in zip(sorted((out / "jobs").glob("*/*.json")), results, strict=True):
        target = dest / "jobs" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, json.dumps(relative_to_runs(result, runs), indent=1))
    return len(results)


def board(
    results: Sequence[dict[str, Any]], out: Path, command: str, reps: int = 2000, plots: bool = True
) -> list[Path]:
    """The leaderboard's files (:func:`agents.leaderboard.write_outputs`) in ``out`` from per-job results, on the
    tasks that have any."""
    from agents.leaderboard import goal_checks, write_outputs
    from multispin_env.suite import TASKS

    tasks = [t for t in TASKS if any(r["task"] == t for r in results)]
    results = [r for r in results if r["task"] in tasks]
    agg = aggregate(results, tasks, reps=reps)
    commits = Counter(r.get("commit") or "unknown" for r in results)
    meta = {
        "commit": ", ".join(sorted(commits, key=lambda c: -commits[c])),
        # Assembled from per-job results of several commands: the time is the jobs' training and evaluation time
        # summed, not a command's wall time (jobs None says so).
        "wall_seconds": float(sum((r.get("train_seconds") or 0.0) + (r.get("eval_seconds") or 0.0) for r in results)),
        "jobs": None,
        "command": command,
        "tasks": tasks,
        **compute_totals(results),
    }
    return write_outputs(results, agg, goal_checks(agg, results, tasks), tasks, meta, out, plots=plots)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals (low, high) share a point, to within :data:`SCORE_TIE` (a residual agent that
    plays its controller lies ~1e-14 below it)."""
    return a[0] <= b[1] + SCORE_TIE and b[0] <= a[1] + SCORE_TIE


#: Smallest gap (normalized-score points) between the two intervals that counts as a win: a residual agent whose
#: seeds all keep nearly their controller's policy has an interval of width ~0, which would otherwise "beat" the
#: controller by a few hundredths of a point -- less than the controller's own score moves between episode samples.
MARGIN = 0.5


def outcome(learned: tuple[float, float], analytic: tuple[float, float], margin: float = MARGIN) -> str:
    """``learned`` if the learned interval lies wholly above the analytic one by more than ``margin`` (normalized
    points), ``analytic`` if wholly below by more than ``margin``, else ``tie``."""
    if learned[0] > analytic[1] + margin:
        return "learned"
    if learned[1] < analytic[0] - margin:
        return "analytic"
    return "tie"


def converged(result: dict[str, Any]) -> bool | None:
    """A learned run's convergence: True (flat), False (capped), None (not trained until flat)."""
    record = result.get("convergence")
    return None if not record else bool(record.get("converged"))


def verdict(
    results: Sequence[dict[str, Any]],
    tasks: Sequence[str],
    agents: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    reps: int = 2000,
    pairs: Collection[tuple[str, str]] | Mapping[tuple[str, str], Schedule] | None = None,
) -> dict[str, Any]:
    """The verdict as data: per task the best learned and best non-oracle analytic entry and their outcome, the
    aggregate over the tasks both have, the missing runs, the unconverged runs, the goals and the compute.

    :param results: per-job results (:func:`agents.leaderboard.run_job`)
    :param tasks: task ids, in report order; results of other tasks are ignored
    :param agents: the learned agents expected on every task (None: those with any result)
    :param seeds: the training seeds expected of every agent
    :param reps: bootstrap resamples of the 95% CIs
    :param pairs: (task id, agent) pairs: an agent is expected only on these tasks (None: on every task); a mapping
        to each pair's until-flat schedule (a plan's, :func:`agents.leaderboard.plan_expects`) also leaves out the
        runs not trained on it (:func:`agents.leaderboard.off_schedule`), listed as such
    """
    import gymnasium as gym

    import multispin_env  # noqa: F401  (registers the ids)
    from baselines.policies import policies_for
    from multispin_env.suite import EDGES, task

    results = [r for r in results if r["task"] in tasks]
    learned_runs = [r for r in results if r["kind"] == "agent"]
    expected = sorted({r["entry"] for r in learned_runs}) if agents is None else list(agents)
    learned_runs = [r for r in learned_runs if r["entry"] in expected and int(r["seed"]) in seeds]
    off: list[dict[str, Any]] = []  # runs not on the plan's schedule: left out, as the plan command would redo them
    if isinstance(pairs, Mapping):
        kept = []
        for r in learned_runs:
            schedule = pairs.get((r["task"], r["entry"]))
            why = None if schedule is None else off_schedule(r, schedule)
            if why is None:
                kept.append(r)
            else:
                off.append({"task": short(r["task"]), "agent": r["entry"], "seed": int(r["seed"]), "why": why})
        learned_runs = kept
    results = [r for r in results if r["kind"] == "analytic"] + learned_runs
    agg = aggregate(results, tasks, reps=reps) if results else {"board": [], "aggregate": {}}
    rows: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    missing_analytic: list[dict[str, Any]] = []
    for t in tasks:
        board = [r for r in agg["board"] if r["task"] == t]
        for agent in expected:
            if pairs is not None and (t, agent) not in pairs:
                continue
            have = {int(r["seed"]) for r in learned_runs if r["task"] == t and r["entry"] == agent}
            lacking = [s for s in seeds if s not in have]
            if lacking:
                missing.append({"task": short(t), "agent": agent, "seeds": lacking})
        learned = [r for r in board if r["kind"] == "agent"]
        analytic = [r for r in board if r["kind"] == "analytic" and r["entry"] not in ORACLE_POLICIES]
        row: dict[str, Any] = {
            "task": t,
            "label": short(t),
            "edge": task(t).edge,
            "why": EDGES[task(t).edge],
            "analytic_scores": {r["entry"]: r["score"] for r in board if r["kind"] == "analytic"},
        }
        if learned:
            best = best_row(learned)
            runs = [r for r in learned_runs if r["task"] == t and r["entry"] == best["entry"]]
            row["learned"] = {
                "entry": best["entry"],
                "score": best["score"],
                "ci95": [best["ci_low"], best["ci_high"]],
                "seeds": len(runs),
                "converged": sum(converged(r) is True for r in runs),
            }
            row["learned"].update(_against_controller(runs, t, best["score"], row["analytic_scores"]))
        valid = policies_for(gym.make(t))
        unevaluated = [p for p in valid if p not in row["analytic_scores"]]
        if unevaluated and (learned or analytic):
            missing_analytic.append({"task": short(t), "controllers": unevaluated})
        if analytic:
            top = best_row(analytic)
            row["analytic"] = {
                "entry": top["entry"],
                "score": top["score"],
                "ci95": [top["ci_low"], top["ci_high"]],
                "evaluated": len(valid) - len(unevaluated),
                "controllers": len(valid),
            }
        if learned and analytic:
            a, b = row["learned"], row["analytic"]
            row["difference"] = a["score"] - b["score"]
            row["overlap"] = overlap(tuple(a["ci95"]), tuple(b["ci95"]))
            row["outcome"] = outcome(tuple(a["ci95"]), tuple(b["ci95"]))
        rows.append(row)
    compared = [r["task"] for r in rows if "outcome" in r]
    over = _over_tasks(results, compared, reps) if compared else {}
    if "learned" in over:  # a residual agent: how far its scores are from its controller's, task by task
        scores = {(r["task"], r["entry"]): r["score"] for r in agg["board"]}
        gaps = [
            _against_controller(
                [x for x in learned_runs if x["task"] == r["task"] and x["entry"] == over["learned"]],
                r["task"],
                scores[r["task"], over["learned"]],
                r["analytic_scores"],
            )
            for r in rows
            if r["task"] in compared
        ]
        if all(gaps):
            over["controllers"] = sorted({g["controller"] for g in gaps})
            over["controller_gaps"] = [min(g["over_controller"] for g in gaps), max(g["over_controller"] for g in gaps)]
    unconverged = [
        {
            "task": short(r["task"]),
            "agent": r["entry"],
            "seed": int(r["seed"]),
            "status": (r.get("convergence") or {}).get("status", "not trained until flat"),
            "budget": (r.get("convergence") or {}).get("budget", r.get("num_timesteps")),
            "improvement": (r.get("convergence") or {}).get("improvement"),
        }
        for r in learned_runs
        if converged(r) is not True
    ]
    cpu = [r.get("cpu_seconds") for r in learned_runs]
    # Analytic results record no training: the training totals are the learned runs'.
    totals = compute_totals(results)
    return {
        "tasks": rows,
        "agents": expected,
        "seeds": list(seeds),
        "over_tasks": over,
        "missing": missing,
        "off_schedule": off,
        "missing_analytic": missing_analytic,
        "unconverged": unconverged,
        "goals": _goals(rows, over),
        "compute": {
            "train_cpu_hours": totals["train_cpu_seconds_total"] / 3600.0,
            "train_wall_hours": totals["train_seconds_total"] / 3600.0,
            "eval_wall_hours": totals["eval_seconds_total"] / 3600.0,
            "runs_without_cpu_record": sum(c is None for c in cpu),
            "learned_runs": len(learned_runs),
        },
        "commits": dict(Counter(r.get("commit") or "unknown" for r in results)),
    }


def _against_controller(
    runs: Sequence[dict[str, Any]], task_id: str, score: float, analytic_scores: dict[str, float]
) -> dict[str, Any]:
    """For the runs of a residual agent on a task whose controller was evaluated there: that controller and the
    agent's score minus the controller's; else empty (an agent that learns from scratch). The controller is the one
    the runs' results name (the run's own configuration), else the agent's hyperparameter file's
    (:func:`agents.residual.residual_base`: results from before the leaderboard recorded it)."""
    from agents.residual import residual_base

    named = {r["controller"] for r in runs if r.get("controller")}
    if len(named) > 1:  # seeds trained over different controllers: no one controller to compare with
        return {}
    base = named.pop() if named else residual_base(runs[0]["entry"], task_id) if runs else None
    if base is None or base not in analytic_scores:
        return {}
    return {"controller": base, "over_controller": score - analytic_scores[base]}


def _over_tasks(results: Sequence[dict[str, Any]], tasks: Sequence[str], reps: int) -> dict[str, Any]:
    """IQM over ``tasks`` (rliable, stratified bootstrap 95% CIs) of every entry with a result on all of them; the
    best learned against the best non-oracle analytic."""
    compared = [r for r in results if r["task"] in tasks]
    labels = [short(t) for t in tasks]

    def entries_of(agg: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The entries with a result on every task: kind, IQM and its CI, runs per task."""
        return {
            e: {
                "kind": a["kind"],
                "iqm": a["IQM"]["value"],
                "ci95": a["IQM"]["ci95"],
                "runs_per_task": a["runs_per_task"],
            }
            for e, a in agg["aggregate"].items()
            if a["tasks"] == labels
        }

    agg = aggregate(compared, tasks, reps=reps)
    entries = entries_of(agg)
    partial = sorted(e for e in agg["aggregate"] if e not in entries)
    learned = [e for e, a in entries.items() if a["kind"] == "agent"]
    analytic = [e for e, a in entries.items() if a["kind"] == "analytic" and e not in ORACLE_POLICIES]
    result: dict[str, Any] = {
        "tasks": labels,
        "entries": entries,
        "partial": partial,
        "controller_runs": agg["controller_runs"],
    }
    if learned and analytic:
        bl = best_row([{"entry": e, "score": entries[e]["iqm"]} for e in learned])["entry"]
        runs = entries[bl]["runs_per_task"]
        if runs != agg["controller_runs"]:  # the controllers count as often as the agent they are compared with
            again = entries_of(aggregate(compared, tasks, reps=reps, controller_runs=runs))
            entries.update({e: a for e, a in again.items() if a["kind"] == "analytic"})
        result["controller_runs"] = runs
        ba = best_row([{"entry": e, "score": entries[e]["iqm"]} for e in analytic])["entry"]
        li, ai = tuple(entries[bl]["ci95"]), tuple(entries[ba]["ci95"])
        result.update(
            learned=bl,
            analytic=ba,
            difference=entries[bl]["iqm"] - entries[ba]["iqm"],
            overlap=overlap(li, ai),
            outcome=outcome(li, ai),
        )
    return result


def _goals(rows: Sequence[dict[str, Any]], over: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    if "learned" in over:
        goals.append(
            {
                "goal": "over tasks, the best learned IQM >= the best non-oracle analytic IQM",
                "met": over["difference"] >= -SCORE_TIE,
                "detail": f"{over['learned']} {_fixed(over['entries'][over['learned']]['iqm'])} vs {over['analytic']} "
                f"{_fixed(over['entries'][over['analytic']]['iqm'])} over {len(over['tasks'])} task(s); difference "
                f"{_signed(over['difference'], 2)}",
            }
        )
    for row in rows:
        if row["edge"] == "foresight" and "outcome" in row:
            goals.append(
                {
                    "goal": f"{row['label']} (foresight): the best learned agent beats the best analytic controller "
                    f"with non-overlapping 95% CIs (the learned one wholly above, by more than {MARGIN} points)",
                    "met": row["outcome"] == "learned",
                    "detail": _versus(row),
                }
            )
    names, rival = PREDICTIVE_GOAL
    for row in rows:
        score = row["analytic_scores"].get(rival)
        if row["label"].split("-v")[0] in names and "learned" in row and score is not None:
            best = row["learned"]
            goals.append(
                {
                    "goal": f"{row['label']}: the best learned IQM >= {rival}'s score",
                    "met": best["score"] >= score - SCORE_TIE,
                    "detail": f"{best['entry']} {_ci(best['score'], best['ci95'])} vs {rival} {_fixed(score)}",
                }
            )
    return goals


def _versus(row: dict[str, Any]) -> str:
    a, b = row["learned"], row["analytic"]
    return f"{a['entry']} {_ci(a['score'], a['ci95'])} vs {b['entry']} {_fixed(b['score'])}"


# -- the page -------------------------------------------------------------------------------------------------------
OUTCOME_TEXT = {"learned": "learned better", "analytic": "analytic better", "tie": "tie"}


def _fixed(value: float, digits: int = 1, sign: str = "") -> str:
    """``value`` to ``digits`` decimals (``sign="+"``: with its sign); one that rounds to 0 is 0.0 (not -0.0 for a
    -1e-14)."""
    return f"{round(value, digits) + 0.0:{sign}.{digits}f}"


def _signed(difference: float, digits: int = 1) -> str:
    """A score difference to ``digits`` decimals with its sign (+0.0 where it rounds to 0)."""
    return _fixed(difference, digits, "+")


def _ci(value: float, ci: Sequence[float]) -> str:
    return f"{_fixed(value)} [{_fixed(ci[0])}, {_fixed(ci[1])}]"


def markdown(v: dict[str, Any], command: str) -> str:
    """The verdict page (docs/verdict.md) from :func:`verdict`'s data and the command that made it."""
    from multispin_env.suite import EDGES, SCORE_SCALE

    n_seeds = len(v["seeds"])
    covered = [r["label"] for r in v["tasks"] if "outcome" in r]
    absent = [r["label"] for r in v["tasks"] if "learned" not in r]
    commits = ", ".join(
        f"`{c}` ({n} result{'' if n == 1 else 's'})" for c, n in sorted(v["commits"].items(), key=lambda kv: -kv[1])
    )
    c = v["compute"]
    lines = [
        "# Verdict: learned against analytic control",
        "",
        "Generated by `" + command + "` from the leaderboard's per-job results; do not edit by hand.",
        "",
        f"**Coverage.** This verdict covers only the finished runs: {len(covered)} of {len(v['tasks'])} tasks have "
        f"learned results ({', '.join(covered) or 'none'}), with the agents {', '.join(v['agents']) or 'none'} "
        f"expected on {n_seeds} seeds each ({', '.join(map(str, v['seeds']))}). "
        + (f"Tasks without any learned result: {', '.join(absent)}. " if absent else "")
        + (
            f"{len(v['missing'])} (task, agent) pairs lack seeds (listed under [Missing runs](#missing-runs)"
            + (
                f"; {len(v['off_schedule'])} of the runs they lack have a result not trained on the plan's schedule"
                if v["off_schedule"]
                else ""
            )
            + "); "
            if v["missing"]
            else "No expected learned run is missing. "
        )
        + f"{len(v['unconverged'])} of {c['learned_runs']} learned runs did not converge "
        "([Runs that did not converge](#runs-that-did-not-converge)). A goal measured on part of the tasks or seeds is "
        "reported for that part only.",
        "",
        f"Normalized score: {SCORE_SCALE}. Learned: the best agent's IQM over its training "
        "seeds [stratified-bootstrap 95% CI] (rliable); analytic: the best non-oracle controller's score on the task's "
        "evaluation seeds (deterministic, so its interval is the point). Outcome: *learned better* or *analytic "
        f"better* when the intervals are more than {MARGIN} points apart, else *tie*. Converged: the best agent's seeds whose validation "
        f"curve was flat (the last {100 * FLAT_WINDOW:g}% of training improved the best validation value, goodput or the task's metric, by less than "
        f"{100 * FLAT_TOLERANCE:g}%).",
        "",
        "## Per task",
        "",
        "| task | best learned (IQM [95% CI]) | seeds | converged | residual over its controller | best analytic "
        "| difference | CIs overlap | outcome | why (task's edge) |",
        "|---|---|---:|---:|---|---|---:|---|---|---|",
    ]
    for r in v["tasks"]:
        a, b = r.get("learned"), r.get("analytic")
        learned = f"{a['entry']} {_ci(a['score'], a['ci95'])}" if a else "missing"
        seeds = f"{a['seeds']}/{n_seeds}" if a else ""
        conv = f"{a['converged']}/{a['seeds']}" if a else ""
        analytic = f"{b['entry']} {_fixed(b['score'])}" if b else "missing"
        if b and b["evaluated"] < b["controllers"]:
            analytic += f" (best of {b['evaluated']} of {b['controllers']} controllers evaluated)"
        residual = f"{_signed(a['over_controller'])} ({a['controller']})" if a and "controller" in a else ""
        diff = _signed(r["difference"]) if "difference" in r else ""
        lap = ("yes" if r["overlap"] else "no") if "overlap" in r else ""
        result = OUTCOME_TEXT[r["outcome"]] if "outcome" in r else "not compared"
        lines.append(
            f"| {r['label']} | {learned} | {seeds} | {conv} | {residual} | {analytic} | {diff} | {lap} | {result} "
            f"| {r['edge']} |"
        )
    lines += [
        "",
        "Residual over its controller: for a residual agent (a learned correction to an analytic controller, "
        "`agents.residual`), its IQM minus that controller's score on the task: how much the learning added.",
        "",
        "The why-column is each task's `edge` (`multispin_env.suite.EDGES`, [suite](suite.md)):",
        "",
    ]
    lines += [f"- *{name}*: {text}." for name, text in EDGES.items()]
    o = v["over_tasks"]
    lines += ["", "## Over tasks", ""]
    if not o:
        lines.append("No task has both learned and analytic results yet.")
    else:
        lines += [
            f"IQM over the {len(o['tasks'])} compared task(s) ({', '.join(o['tasks'])}) with stratified-bootstrap 95% "
            "CIs, for every entry with a result on all of them (a controller's score, deterministic, counts "
            f"{o['controller_runs']} time(s) per task, "
            + (
                "once per training seed of the best learned agent, so that the compared IQMs trim the same share of "
                "their scores):"
                if "learned" in o
                else "as often as the agent with the most seeds has runs):"
            ),
            "",
            "| entry | kind | runs/task | IQM over tasks [95% CI] |",
            "|---|---|---:|---|",
        ]
        for e, a in sorted(o["entries"].items(), key=lambda kv: -kv[1]["iqm"]):
            runs = f"1 (counted {o['controller_runs']})" if a["kind"] == "analytic" else str(a["runs_per_task"])
            lines.append(f"| {e} | {a['kind']} | {runs} | {_ci(a['iqm'], a['ci95'])} |")
        if "outcome" in o:
            lines += [
                "",
                f"Best learned {o['learned']} against best non-oracle analytic {o['analytic']}: difference "
                f"{_signed(o['difference'], 2)}, CIs {'overlap' if o['overlap'] else 'do not overlap'}: "
                f"{OUTCOME_TEXT[o['outcome']]}.",
            ]
        if "controller_gaps" in o:
            low, high = o["controller_gaps"]
            lines += [
                "",
                f"{o['learned']} is a residual agent over {', '.join(o['controllers'])}: on each compared task its IQM "
                f"is {_signed(low)} to {_signed(high)} points from its controller's score (the column residual over "
                "its controller, above).",
            ]
        if o["partial"]:
            lines += ["", f"Not on every compared task (left out): {', '.join(o['partial'])}."]
    lines += ["", "## Goals", ""]
    lines += [f"- {'met' if g['met'] else 'MISSED'}: {g['goal']} ({g['detail']})" for g in v["goals"]] or [
        "No goal can be measured on these results yet."
    ]
    if any(not g["met"] for g in v["goals"]):  # plain text: the page is also written outside docs/ (OUT/verdict.md)
        lines += ["", 'Why a goal is missed, agent by agent: docs/leaderboard.md, section "The verdict".']
    lines += [
        "",
        "## Compute",
        "",
        f"Training: {c['train_cpu_hours']:.2f} CPU-hours (process CPU time summed over the {c['learned_runs']} learned "
        f"runs' chunks; {c['runs_without_cpu_record']} runs without a CPU record), {c['train_wall_hours']:.2f} wall "
        f"hours summed over runs; evaluation {c['eval_wall_hours']:.2f} wall hours summed over jobs. Measured at "
        f"commit(s) {commits}.",
        "",
        "## Runs that did not converge",
        "",
    ]
    if v["unconverged"]:
        lines += ["| task | agent | seed | status | env steps | last-20% improvement |", "|---|---|---:|---|---:|---:|"]
        for u in v["unconverged"]:
            imp = "" if u["improvement"] is None else f"{100 * u['improvement']:.2f}%"
            budget = "" if u["budget"] is None else f"{int(u['budget']):,}"
            lines.append(f"| {u['task']} | {u['agent']} | {u['seed']} | {u['status']} | {budget} | {imp} |")
    else:
        lines.append("None.")
    lines += ["", "## Missing runs", ""]
    if v["missing_analytic"]:
        lines += [
            "Analytic controllers not evaluated (the task's best analytic entry is the best of those evaluated):",
            "",
            "| task | controllers not evaluated |",
            "|---|---|",
        ]
        lines += [f"| {m['task']} | {', '.join(m['controllers'])} |" for m in v["missing_analytic"]]
        lines.append("")
    if v["missing"]:
        lines += ["| task | agent | missing seeds |", "|---|---|---|"]
        lines += [f"| {m['task']} | {m['agent']} | {' '.join(map(str, m['seeds']))} |" for m in v["missing"]]
    else:
        lines.append("None.")
    if v["off_schedule"]:
        lines += [
            "",
            "Of those, runs with a result not trained on the plan's schedule (left out above; the plan command "
            "continues each from its chunks or trains it again):",
            "",
            "| task | agent | seed | why |",
            "|---|---|---:|---|",
        ]
        lines += [f"| {o['task']} | {o['agent']} | {o['seed']} | {o['why']} |" for o in v["off_schedule"]]
    return "\n".join(lines) + "\n"


# -- command line -----------------------------------------------------------------------------------------------------
def build_parser(prog: str = "python -m agents.verdict") -> OneLineParser:
    p = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("results", help="a leaderboard output folder (its jobs/ holds the per-job results)")
    p.add_argument("-o", "--output", default=None, help="the page to write (Markdown; default docs/verdict.md)")
    p.add_argument("--json", default=None, help="also write the verdict's data to this JSON file")
    p.add_argument(
        "--agents",
        nargs="+",
        default=None,
        metavar="AGENT",
        help="learned agents expected (default: --plan's, else those found)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int_at_least(0),
        default=None,
        help=f"training seeds expected of every agent (default: --plan's, else {' '.join(map(str, DEFAULT_SEEDS))})",
    )
    p.add_argument(
        "--plan",
        default=None,
        metavar="FILE",
        help="a board's plan file (multispin-leaderboard --plan): expect the runs it trains (agents, tasks, seeds)",
    )
    p.add_argument("--board", action="store_true", help="also write the leaderboard files into RESULTS")
    p.add_argument("--no-plots", action="store_true", help="--board: skip the PNG plots")
    p.add_argument(
        "--export",
        default=None,
        metavar="DIR",
        help="copy the per-job results into DIR/jobs with model paths relative to --runs, and stop",
    )
    p.add_argument("--runs", default=None, help="--export: the runs folder the model paths are made relative to")
    p.add_argument("--reps", type=int_at_least(100), default=2000, help="bootstrap resamples of the 95%% CIs")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m agents.verdict") -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 user error)."""
    args = build_parser(prog).parse_args(argv)
    try:
        out = Path(args.results)
        if not out.is_dir():
            what = "is a file, not a folder" if out.exists() else "does not exist"
            raise UserError(f"results folder {args.results!r} {what}")
        if args.runs is not None and args.export is None:
            raise UserError("--runs is read by --export only (the folder the model paths are made relative to)")
        if args.no_plots and not args.board:
            raise UserError("--no-plots applies to --board (the leaderboard's plots); the page has none")
        if args.export is not None:
            given = {
                "--plan": args.plan,
                "-o/--output": args.output,
                "--json": args.json,
                "--board": args.board or None,
                "--agents": args.agents,
                "--seeds": args.seeds,
            }
            ignored = [flag for flag, value in given.items() if value is not None]
            if ignored:
                raise UserError(f"--export copies the results and stops; {', '.join(ignored)} do(es) not apply to it")
            if args.runs is None:
                raise UserError("--export needs --runs (the folder the model paths are made relative to)")
            check_output_folder(args.export, "--export")
            print(f"copied {export(out, Path(args.runs), Path(args.export))} results into {Path(args.export) / 'jobs'}")
            return 0
        args.output = args.output or "docs/verdict.md"
        if Path(args.output).is_dir():
            raise UserError(f"-o/--output {args.output!r} is a folder; name the page to write, e.g. docs/verdict.md")
        check_output_folder(Path(args.output).parent, "-o/--output")
        if args.json:
            if Path(args.json).is_dir():
                raise UserError(f"--json {args.json!r} is a folder; name the file to write")
            check_output_folder(Path(args.json).parent, "--json")
        pairs = None
        if args.plan is not None:
            for given, flag in ((args.agents, "--agents"), (args.seeds, "--seeds")):
                if given is not None:
                    raise UserError(f"--plan sets {flag} (the plan's); drop it")
            args.agents, args.seeds, pairs = plan_expects(args.plan, prog)
        args.seeds = list(DEFAULT_SEEDS) if args.seeds is None else args.seeds
        check_no_repeats(args.seeds, "--seeds", "a seed would count twice")
        check_agents(args.agents or [], "an agent would count twice")
        results = load_results(out)
    except UserError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    command = " ".join([prog, *(argv if argv is not None else sys.argv[1:])])
    written = write_verdict(
        results,
        args.output,
        command,
        args.agents,
        args.seeds,
        args.reps,
        args.json,
        out if args.board else None,
        plots=not args.no_plots,
        pairs=pairs,
    )
    print(f"wrote {', '.join(map(str, written))}")
    return 0


def write_verdict(
    results: Sequence[dict[str, Any]],
    page: str | Path,
    command: str,
    agents: Sequence[str] | None,
    seeds: Sequence[int],
    reps: int,
    json_path: str | Path | None = None,
    board_folder: Path | None = None,
    plots: bool = True,
    pairs: Collection[tuple[str, str]] | Mapping[tuple[str, str], Schedule] | None = None,
) -> list[Path]:
    """Write the verdict page (and its data as JSON, and the leaderboard's files into ``board_folder``), print the
    page and return the files written.

    :param results: per-job results
    :param page: the Markdown page to write
    :param command: the command that made it (stated on the page)
    :param agents: the learned agents expected on every task (None: those with any result)
    :param seeds: the training seeds expected of every agent
    :param reps: bootstrap resamples of the 95% CIs
    :param pairs: (task id, agent) pairs: an agent is expected only on these tasks (None: on every task); with
        their schedules, the runs not trained on them are left out of the verdict and the board (:func:`verdict`)
    """
    from multispin_env.suite import TASKS

    data = verdict(results, list(TASKS), agents, seeds, reps, pairs)
    data["command"], data["generated"] = command, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = markdown(data, command)
    written = [Path(page)]
    Path(page).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(page, text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(json_path, json.dumps(data, indent=1, default=str))
        written.append(Path(json_path))
    if board_folder is not None:  # the board of the same runs: without those the verdict leaves out
        off = {(o["task"], o["agent"], o["seed"]) for o in data["off_schedule"]}
        kept = [r for r in results if (short(r["task"]), r["entry"], r.get("seed")) not in off]
        written += board(kept, board_folder, command, reps, plots)
    print(text)
    return written


if __name__ == "__main__":
    sys.exit(main())
