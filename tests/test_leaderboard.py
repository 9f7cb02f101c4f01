"""multispin-leaderboard (agents/leaderboard.py): planning from the registries, resumable jobs, rliable aggregates,
goal checks, the output files and one-line CLI errors."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from board_helpers import fake_result
from cli_helpers import assert_one_line_error, cli_error
from scipy.stats import trim_mean

import multispin_env  # noqa: F401  (registers the ids)
from agents.leaderboard import (
    DEFAULT_AGENTS,
    PLAIN_GOAL,
    agent_command,
    agent_names,
    aggregate,
    best_row,
    goal_checks,
    main,
    short,
)
from agents.runs import resolve_agent
from agents.verdict import main as verdict_main
from multispin_env.suite import METRIC_LABELS, METRICS, TASK_SPECS, TASKS, reference_goodputs

REPO = Path(__file__).resolve().parents[1]
TASK = "MultiSpinSuite/IIDStatic-v0"


def test_every_metric_has_a_progress_label() -> None:
    """The progress line names each task's metric (Fairness was printed as a mean completion time)."""
    assert set(METRIC_LABELS) == set(METRICS)
    assert METRIC_LABELS["throughput_geomean"].format(22.09) == "geometric-mean throughput 22.09 tokens/s"
    assert all(label.format(1.0) for label in METRIC_LABELS.values())


def test_agents_are_the_hyperparameter_files() -> None:
    assert set(DEFAULT_AGENTS) <= set(agent_names())
    assert agent_command("ppo") == ["--algo", "ppo"]
    assert agent_command("ppo_lstm") == ["--algo", "ppo_lstm"]  # an rl-zoo3 algorithm, not ppo + "lstm"
    assert agent_command("ppo_residual") == ["--algo", "ppo", "--agent", "residual"]
    assert agent_command("ppo_residual_predictive") == ["--algo", "ppo", "--agent", "residual_predictive"]
    assert agent_command("ppo_lstm_x") == ["--algo", "ppo_lstm", "--agent", "x"]


_result = fake_result


def test_aggregate_scores_iqm_with_bootstrap_cis_and_goal_checks() -> None:
    tasks = list(TASKS[:2])
    rng = np.random.default_rng(0)
    results = [_result(t, "het-opt-adaptive", 95.0) for t in tasks] + [
        _result(t, "het-opt-oracle", 100.0) for t in tasks
    ]
    scores = {t: rng.normal(96.0, 2.0, 5) for t in tasks}
    results += [_result(t, "ppo", s, seed) for t in tasks for seed, s in enumerate(scores[t])]
    agg = aggregate(results, tasks, reps=500)
    cell = {(r["task"], r["entry"]): r for r in agg["board"]}
    for t in tasks:
        row = cell[(t, "ppo")]
        assert row["score"] == pytest.approx(trim_mean(scores[t], 0.25))  # rliable's IQM
        assert row["ci_low"] <= row["score"] <= row["ci_high"] and row["runs"] == 5
        assert cell[(t, "het-opt-adaptive")]["score"] == pytest.approx(95.0)
    over = agg["aggregate"]["ppo"]
    both = np.stack([scores[t] for t in tasks], axis=1)
    assert over["IQM"]["value"] == pytest.approx(trim_mean(both.ravel(), 0.25))
    assert over["IQM"]["ci95"][0] <= over["IQM"]["value"] <= over["IQM"]["ci95"][1]
    assert over["Mean"]["value"] == pytest.approx(both.mean())
    assert agg["aggregate"]["het-opt-oracle"]["Optimality gap"]["value"] == pytest.approx(0.0, abs=1e-9)
    fraction = np.asarray(agg["profiles"]["ppo"]["fraction"])
    assert fraction[0] == 1.0 and np.all(np.diff(fraction) <= 0)  # profiles fall with tau

    checks = goal_checks(agg, results, tasks)
    per_task = {c["task"]: c for c in checks if "learned" in c}
    for t in tasks:
        expected = trim_mean(scores[t], 0.25) >= 95.0
        assert per_task[TASK_SPECS[t].name]["met"] == expected
        assert per_task[TASK_SPECS[t].name]["analytic"] == "het-opt-adaptive"  # the oracle is not a rival
    plain = next(c for c in checks if "share_of_oracle" in c)
    oracle = reference_goodputs(PLAIN_GOAL[0])[1]
    shares = [r["goodput"] / oracle for r in results if r["task"] == PLAIN_GOAL[0] and r["entry"] == "ppo"]
    assert plain["met"] == all(s >= 0.97 for s in shares)


def test_a_controller_and_an_agent_with_the_same_scores_have_the_same_iqm_over_tasks() -> None:
    """A deterministic controller's score counts once per seed of the agents: with one score per task the IQM
    over 6 tasks would keep 4 of 6 scores (37.5 here) while an agent's 5 seeds keep 16 of 30 (34.375)."""
    tasks = list(TASKS[:6])
    levels = [0.0, 10.0, 20.0, 30.0, 90.0, 100.0]
    results = [_result(t, "het-opt-adaptive", s) for t, s in zip(tasks, levels, strict=True)]
    results += [_result(t, "ppo", s, seed) for t, s in zip(tasks, levels, strict=True) for seed in range(5)]
    over = aggregate(results, tasks, reps=200)["aggregate"]
    assert over["ppo"]["IQM"]["value"] == pytest.approx(34.375)
    assert over["het-opt-adaptive"]["IQM"]["value"] == pytest.approx(34.375)
    assert over["het-opt-adaptive"]["IQM"]["ci95"] == pytest.approx([34.375, 34.375])  # deterministic: a point
    assert over["het-opt-adaptive"]["runs_per_task"] == 1 and over["ppo"]["runs_per_task"] == 5
    assert over["het-opt-adaptive"]["Mean"]["value"] == pytest.approx(np.mean(levels))


def test_controller_runs_sets_how_often_a_controller_counts_over_tasks() -> None:
    """The IQM's trim depends on the count: controllers counted 4 times per task (the seeds of an agent with a
    missing run) have the IQM of an agent with those scores, whatever another agent's seeds; 5 times they do not."""
    tasks = list(TASKS[:6])
    levels = [0.0, 10.0, 20.0, 30.0, 90.0, 100.0]
    results = [_result(t, "het-opt-adaptive", s) for t, s in zip(tasks, levels, strict=True)]
    results += [_result(t, "ppo", s, seed) for t, s in zip(tasks, levels, strict=True) for seed in range(4)]
    results += [_result(tasks[0], "ppo_fast", 0.0, seed) for seed in range(5)]  # another agent, 5 seeds, one task
    agg = aggregate(results, tasks, reps=100)
    assert agg["controller_runs"] == 5 and agg["aggregate"]["ppo"]["runs_per_task"] == 4
    assert agg["aggregate"]["het-opt-adaptive"]["IQM"]["value"] != pytest.approx(
        agg["aggregate"]["ppo"]["IQM"]["value"]
    )
    four = aggregate(results, tasks, reps=100, controller_runs=4)
    assert four["controller_runs"] == 4
    assert four["aggregate"]["het-opt-adaptive"]["IQM"]["value"] == pytest.approx(100 / 3)
    assert four["aggregate"]["ppo"]["IQM"]["value"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="controller_runs must be >= 1, got 0"):
        aggregate(results, tasks, reps=10, controller_runs=0)


def test_ties_within_float_noise_name_the_plainer_controller_and_meet_the_goal() -> None:
    """Scores 2e-14 apart (or 1e-6: float32 channel observations) are one score: the board, its goals and the verdict name the controller first in the
    registry (het-opt-static, not het-opt-energy-static which plays its actions), and a learned agent level with it
    meets ">=" (the board said MISSED for 98.30391009213265 against 98.30391009213267)."""
    rows = [
        {"entry": "het-opt-energy-static", "score": 100.0 + 2e-14},
        {"entry": "het-opt-posterior", "score": 100.0 + 1e-6},
        {"entry": "het-opt-static", "score": 100.0},
        {"entry": "het-opt-adaptive", "score": 99.0},
    ]
    assert best_row(rows)["entry"] == "het-opt-static"
    assert best_row(rows[::-1])["entry"] == "het-opt-static"
    assert best_row([*rows, {"entry": "het-opt-adaptive", "score": 100.1}])["entry"] == "het-opt-adaptive"
    task = TASKS[0]
    results = [_result(task, "het-opt-oracle", 100.0), _result(task, "het-opt-predictive", 98.30391009213267)]
    results += [_result(task, "ppo", 98.30391009213265, seed) for seed in range(5)]
    agg = aggregate(results, [task], reps=50)
    check = next(c for c in goal_checks(agg, results, [task]) if "learned" in c)
    assert check["met"] and check["analytic"] == "het-opt-predictive"
    results[-1] = _result(task, "ppo", 98.3, 4)
    results[-2] = _result(task, "ppo", 98.3, 3)
    results[-3] = _result(task, "ppo", 98.3, 2)
    agg = aggregate(results, [task], reps=50)
    assert not next(c for c in goal_checks(agg, results, [task]) if "learned" in c)["met"]


def test_a_rows_bootstrap_interval_depends_on_its_own_scores_only() -> None:
    """Regenerating a board after one task's runs changed leaves every other row's interval as it was."""
    tasks = list(TASKS[:3])
    rng = np.random.default_rng(1)
    results = [_result(t, "ppo", s, seed) for t in tasks for seed, s in enumerate(rng.normal(90.0, 5.0, 5))]
    changed = [r if r["task"] != tasks[0] else {**r, "score": r["score"] + 7.0} for r in results]
    before, after = (
        {(r["task"], r["entry"]): (r["ci_low"], r["ci_high"]) for r in aggregate(rows, tasks, reps=300)["board"]}
        for rows in (results, changed)
    )
    assert all(before[key] == after[key] for key in before if key[0] != tasks[0])
    assert before[(tasks[0], "ppo")] != after[(tasks[0], "ppo")]
    # The same results give the same board, and numpy's global generator (rliable's) is left as it was.
    np.random.seed(3)  # noqa: NPY002
    expected = np.random.rand()  # noqa: NPY002
    np.random.seed(3)  # noqa: NPY002
    again = aggregate(results, tasks, reps=300)
    assert np.random.rand() == expected  # noqa: NPY002
    assert again == aggregate(results, tasks, reps=300)


def test_tiny_leaderboard_trains_evaluates_writes_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, out = tmp_path / "runs", tmp_path / "board"
    argv = [
        "--runs",
        str(runs),
        "-o",
        str(out),
        "--tasks",
        "IIDStatic",
        "--baselines",
        "equal-fixed",
        "het-opt-static",
        "--train",
        "--agents",
        "ppo",
        "--seeds",
        "0",
        "1",
        "--validation",
        "1",
        "--timesteps",
        "256",
        "--reps",
        "200",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for name in (
        "runs.csv",
        "leaderboard.csv",
        "leaderboard.json",
        "leaderboard.md",
        "leaderboard.png",
        "aggregate.png",
        "profiles.png",
    ):
        assert (out / name).is_file(), name
    data = json.loads((out / "leaderboard.json").read_text())
    assert {(r["entry"], r["seed"]) for r in data["runs"]} == {
        ("equal-fixed", None),
        ("het-opt-static", None),
        ("ppo", 0),
        ("ppo", 1),
    }
    static = next(r for r in data["runs"] if r["entry"] == "het-opt-static")
    assert static["score"] == pytest.approx(
        100.0, abs=1e-6
    )  # without fading het-opt-static plays the oracle's allocation
    trained = [r for r in data["runs"] if r["entry"] == "ppo"]
    assert all(
        r["num_timesteps"] >= 256 and r["train_seconds"] > 0 and Path(r["model"]).name == "best_model.zip"
        for r in trained
    )
    for r in trained:  # the best model on the validation episodes, with its own VecNormalize statistics
        assert not Path(r["model"]).is_absolute()  # relative to --runs: the tables hold no machine's paths
        assert resolve_agent(runs / r["model"]).vecnormalize_path.name == "vecnormalize_best.pkl"
    with (out / "runs.csv").open() as f:
        assert {row["model"] for row in csv.DictReader(f) if row["model"]} == {r["model"] for r in trained}
    assert trained[0]["goodputs"] != trained[1]["goodputs"]  # two seeds, two agents
    assert data["commit"] and data["wall_seconds"] > 0 and any(g["task"] == "IIDStatic" for g in data["goals"])
    assert "| IIDStatic |" in printed and "Goals (measured)" in printed
    models = {str(runs / r["model"]): os.stat(runs / r["model"]).st_mtime for r in trained}

    # A killed run resumes: finished jobs (and trainings) are kept; a lost result is redone from the saved model.
    (out / "jobs" / "IIDStatic" / "ppo_seed1.json").unlink()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 of 4 results kept" in printed and "[1/1] IIDStatic ppo seed 1" in printed
    assert {m: os.stat(m).st_mtime for m in models} == models  # not retrained

    # Another budget retrains (a stored run of 256 steps is no run of 512).
    assert main([*argv[:-4], "--timesteps", "512", "--reps", "200", "--seeds", "0", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    retrained = json.loads((out / "jobs" / "IIDStatic" / "ppo_seed0.json").read_text())
    assert retrained["planned_timesteps"] == 512 and "[1/1] IIDStatic ppo seed 0" in printed
    models.pop(retrained["model"])
    assert {m: os.stat(m).st_mtime for m in models} == models  # seed 1 untouched

    # Without --train the saved agents are found under --runs, and their stored evaluations reused.
    assert (
        main(
            ["--runs", str(runs), "-o", str(out), "--tasks", "IIDStatic", "--baselines", "--reps", "200", "--no-plots"]
        )
        == 0
    )
    assert "2 of 2 results kept" in capsys.readouterr().out
    again = json.loads((out / "leaderboard.json").read_text())
    assert sorted(r["seed"] for r in again["runs"]) == [0, 1]
    seed1 = json.loads((out / "jobs" / "IIDStatic" / "ppo_seed1.json").read_text())
    assert {r["seed"]: r["goodputs"] for r in again["runs"]} == {0: retrained["goodputs"], 1: seed1["goodputs"]}


def test_task_versions_resolve_keep_their_own_results_and_check_the_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A suite task by name is its current version, a retired one by name-vN; each has its own job files (a
    result stored for another version under the same file is redone), and the scale goal is checked per task."""
    out = tmp_path / "board"
    argv = ["--runs", str(tmp_path / "none"), "-o", str(out), "--tasks", "LargeK", "LargeK-v0", "--reps", "100"]
    argv += ["--baselines", "equal-fixed", "het-opt-static", "--no-plots"]
    assert main(argv) == 0
    data = json.loads((out / "leaderboard.json").read_text())
    assert {r["task"] for r in data["runs"]} == {"MultiSpinSuite/LargeK-v1", "MultiSpinSuite/LargeK-v0"}
    assert (out / "jobs" / "LargeK-v1" / "het-opt-static.json").is_file()
    assert (out / "jobs" / "LargeK" / "het-opt-static.json").is_file()
    scale = {g["task"]: g for g in data["goals"] if "reference_span" in g}
    assert scale["LargeK-v1"]["met"] and scale["LargeK-v1"]["top_analytic"] == "het-opt-static"
    assert not scale["LargeK"]["met"] and scale["LargeK"]["reference_span"] < 0.1  # the retired version's scale
    printed = capsys.readouterr().out
    assert "- met: LargeK-v1: references >= 10% apart" in printed and "- MISSED: LargeK: references" in printed

    stale = out / "jobs" / "LargeK-v1" / "equal-fixed.json"
    fresh = json.loads(stale.read_text())
    stale.write_text(json.dumps(dict(fresh, task="MultiSpinSuite/LargeK-v0", score=1e9)))
    assert main(argv) == 0
    assert "3 of 4 results kept" in capsys.readouterr().out
    assert json.loads(stale.read_text())["score"] == pytest.approx(fresh["score"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "Nope"], "unknown task(s) Nope; the tasks are IIDStatic"),
        (["--agents", "dqn"], "unknown agent(s) dqn"),
        (["--tasks", "IIDStatic", "MultiSpinSuite/IIDStatic-v0"], "--tasks repeats MultiSpinSuite/IIDStatic-v0"),
        (["--agents", "ppo", "ppo"], "--agents repeats ppo"),
        (["--seeds", "0", "1", "0"], "--seeds repeats 0"),
        (["--baselines", "het-opt-oracle", "het-opt-oracle"], "--baselines repeats het-opt-oracle"),
        (["--baselines", "het-opt-magic"], "unknown analytic controller(s) het-opt-magic"),
        (["--jobs", "0"], "argument --jobs: expected an integer >= 1, got 0"),
        (["--validation", "-1"], "argument --validation: expected an integer >= 0, got -1"),
        (["--model", "worst"], "invalid choice: 'worst'"),
        (["--timesteps", "100"], "needs --train"),
        (["--train", "--timesteps", "-1"], "argument --timesteps: expected an integer >= 1, got -1"),
        (["--baselines", "--tasks", "IIDStatic"], "nothing to evaluate"),
        (["--ray", "127.0.0.1:1"], "could not connect to Ray at '127.0.0.1:1'"),  # a closed port: at once
        (["--cpus-per-job", "0"], "argument --cpus-per-job: expected a number > 0, got 0"),
        (["--retries", "-1"], "argument --retries: expected an integer >= 0, got -1"),
        (["--until-flat"], "--until-flat, --max-timesteps and --min-timesteps need --train"),
        (["--train", "--max-timesteps", "1000"], "--max-timesteps needs --until-flat"),
        (["--train", "--min-timesteps", "1000"], "--min-timesteps needs --until-flat"),
        (["--train", "--until-flat", "--min-timesteps", "0"], "argument --min-timesteps: expected an integer >= 1"),
        (
            ["--train", "--until-flat", "--timesteps", "10", "--min-timesteps", "200"],
            "cap --max-timesteps 160 (default",
        ),
        (
            ["--train", "--until-flat", "--timesteps", "10", "--max-timesteps", "150", "--min-timesteps", "200"],
            "the cap --max-timesteps 150",
        ),
        (["--train", "--until-flat", "--timesteps", "1000", "--max-timesteps", "999"], "is below the first chunk"),
        (["--train", "--until-flat", "--validation", "0"], "--until-flat needs validation episodes"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    cli_error(
        main,
        [*argv, "--runs", str(tmp_path / "none"), "-o", str(tmp_path / "out")],
        capsys,
        "multispin-leaderboard",
        message,
    )


def test_command_line_error_has_no_traceback_and_make_target_exists() -> None:
    assert "\nleaderboard: setup" in (REPO / "Makefile").read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "agents.leaderboard", "--tasks", "Nope"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert_one_line_error(proc.returncode, proc.stderr, "python -m agents.leaderboard", "unknown task(s) Nope")


@pytest.mark.slow
def test_jobs_run_in_parallel_processes(tmp_path: Path) -> None:
    out = tmp_path / "board"
    assert (
        main(
            [
                "-o",
                str(out),
                "--runs",
                str(tmp_path / "runs"),
                "--tasks",
                "IIDStatic",
                "Markov",
                "--baselines",
                "het-opt-static",
                "het-opt-adaptive",
                "--jobs",
                "2",
                "--no-plots",
                "--reps",
                "200",
            ]
        )
        == 0
    )
    data = json.loads((out / "leaderboard.json").read_text())
    assert len(data["runs"]) == 4 and data["jobs"] == 2


@pytest.mark.parametrize("interrupted", [False, True])
def test_an_interrupted_training_is_not_taken_for_a_finished_one(tmp_path: Path, interrupted: bool) -> None:
    """--train trains again a run whose training.yml says it was interrupted (its final model is not the budget's)."""
    import yaml

    from agents.runs import final_model

    task = "MultiSpinSuite/IIDStatic-v0"
    run = tmp_path / "ppo" / "MultiSpinSuite-IIDStatic-v0_1"
    (run / "MultiSpinSuite-IIDStatic-v0").mkdir(parents=True)
    (run / "MultiSpinSuite-IIDStatic-v0.zip").write_bytes(b"model")
    (run / "MultiSpinSuite-IIDStatic-v0" / "args.yml").write_text(
        yaml.safe_dump({"algo": "ppo", "env": task, "seed": 0})
    )
    (run / "MultiSpinSuite-IIDStatic-v0" / "training.yml").write_text(
        yaml.safe_dump(
            {"interrupted": interrupted, "planned_timesteps": 1000, "num_timesteps": 400 if interrupted else 1000}
        )
    )
    expected = None if interrupted else run / "MultiSpinSuite-IIDStatic-v0.zip"
    assert final_model(tmp_path, 1000) == expected
    assert final_model(tmp_path) == expected
    assert final_model(tmp_path, 2000) is None


@pytest.mark.parametrize(
    ("status", "budget", "cap", "minimum", "kept", "settings"),
    [
        ("flat", 100, 1600, 0, True, "current"),
        ("flat", 100, 1600, 0, False, "other"),  # the agent's hyperparameter entry changed since: trains again
        ("flat", 100, 1600, 0, True, None),  # recorded before fingerprints were kept
        ("flat", 100, 1600, 0, False, "unrecorded, residual"),  # ... on version 1 of the residual wrapper: trains again
        ("flat", 100, 1600, 800, False, "current"),  # flat below the minimum now asked for: trains on from its chunks
        ("flat", 1600, 1600, 800, True, "current"),
        ("cap", 1600, 1600, 800, True, "current"),
        ("cap", 1600, 3200, 0, False, "current"),  # capped, and the cap changed
    ],
)
def test_a_stored_until_flat_result_is_kept_only_for_the_same_schedule(
    tmp_path: Path, status: str, budget: int, cap: int, minimum: int, kept: bool, settings: str | None
) -> None:
    from agents.converge import hyperparameters_fingerprint
    from agents.leaderboard import Job, _finished

    model = tmp_path / "runs" / "best_model.zip"
    model.parent.mkdir()
    model.write_bytes(b"model")
    agent = "ppo_residual" if settings == "unrecorded, residual" else "ppo"
    job = Job("agent", TASK, agent, 0, str(tmp_path / "runs"), True, 100, "best", 5, True, cap, minimum)
    record = {"status": status, "budget": budget, "first_chunk": 100, "cap": 1600, "min_budget": 0}
    if settings in ("current", "other"):
        record["hyperparameters"] = hyperparameters_fingerprint("ppo", TASK) if settings == "current" else "0" * 16
    result = {**_result(TASK, agent, 50.0, 0), "model": str(model), "model_mtime": model.stat().st_mtime}
    result["convergence"] = record
    job.result_path(tmp_path / "out").parent.mkdir(parents=True)
    job.result_path(tmp_path / "out").write_text(json.dumps(result))
    assert (_finished(job, tmp_path / "out") is not None) == kept


@pytest.mark.parametrize(
    ("task", "judged_on", "kept"),
    [
        (TASK, None, True),  # a goodput task: judged on goodput, as before
        ("MultiSpinSuite/Fairness-v0", None, False),  # judged on goodput before the metric was the curve: judged again
        ("MultiSpinSuite/Fairness-v0", "throughput_geomean", True),
    ],
)
def test_a_stored_until_flat_result_was_judged_on_the_tasks_metric(
    tmp_path: Path, task: str, judged_on: str | None, kept: bool
) -> None:
    from agents.converge import hyperparameters_fingerprint
    from agents.leaderboard import Job, _finished

    model = tmp_path / "runs" / "best_model.zip"
    model.parent.mkdir()
    model.write_bytes(b"model")
    job = Job("agent", task, "ppo", 0, str(tmp_path / "runs"), True, 100, "best", 5, True, 1600, 0)
    record = {"status": "flat", "budget": 1600, "first_chunk": 100, "cap": 1600, "min_budget": 0}
    record["hyperparameters"] = hyperparameters_fingerprint("ppo", task)
    if judged_on is not None:
        record["judged_on"] = judged_on
    result = {**_result(task, "ppo", 50.0, 0), "model": str(model), "model_mtime": model.stat().st_mtime}
    result["convergence"] = record
    job.result_path(tmp_path / "out").parent.mkdir(parents=True)
    job.result_path(tmp_path / "out").write_text(json.dumps(result))
    assert (_finished(job, tmp_path / "out") is not None) == kept


@pytest.mark.slow
def test_until_flat_trains_in_chunks_and_records_the_criterion(tmp_path: Path) -> None:
    argv = [
        "--train",
        "--until-flat",
        "--timesteps",
        "2048",
        "--max-timesteps",
        "4096",
        "--agents",
        "ppo_userset",
        "--tasks",
        "IIDStatic",
        "--seeds",
        "0",
        "--baselines",
        "--validation",
        "2",
        "--runs",
        str(tmp_path / "runs"),
        "-o",
        str(tmp_path / "out"),
        "--reps",
        "100",
        "--no-plots",
    ]
    assert main(argv) == 0
    result = json.loads((tmp_path / "out" / "jobs" / "IIDStatic" / "ppo_userset_seed0.json").read_text())
    record = result["convergence"]
    assert record["status"] in ("flat", "cap") and record["converged"] == (record["status"] == "flat")
    assert record["budget"] == result["num_timesteps"] == sum(c["timesteps"] for c in record["chunks"])
    assert result["cpu_seconds"] == pytest.approx(sum(c["cpu_seconds"] for c in record["chunks"]))
    assert result["cpu_seconds"] > 0
    if record["status"] == "cap":  # two chunks, the second continued from the first's model
        assert [c["timesteps"] for c in record["chunks"]] == [2048, 2048]
        args = (tmp_path / "runs" / "ppo_userset" / "IIDStatic" / "seed0" / "chunk1").rglob("args.yml")
        assert "chunk0" in str(next(iter(args)).read_text())
    assert Path(result["model"]).is_file() and result["model"].endswith("best_model.zip")


def _live_group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies (an orphan's zombie lingers until reaped)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the parent-death signal is Linux's")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_leaderboard_stops_its_job_processes_which_save(tmp_path: Path, signum: int) -> None:
    """``kill`` (SIGTERM) of the command alone reaches its --jobs processes, whose trainings save and stop, no queued
    job starts, and the command exits 143; killed outright (SIGKILL), its processes still stop and save (Linux:
    parent-death signal). Four trainings on two processes: two run, two wait."""
    runs, log = tmp_path / "runs", tmp_path / "stderr.txt"
    argv = ["--train", "--agents", "ppo", "--tasks", "IIDStatic", "Markov", "--seeds", "0", "1", "--jobs", "2"]
    argv += ["--timesteps", "50000000", "--validation", "0", "--runs", str(runs), "-o", str(tmp_path / "board")]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agents.leaderboard", *argv, "--no-plots"],
            cwd=REPO,
            start_new_session=True,  # its own process group: the test signals the command alone, then checks the group
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 240

        def training() -> int:  # runs whose monitor has a finished episode: their learning loop is running
            return sum(len(m.read_text().splitlines()) > 2 for m in runs.rglob("monitor.csv"))

        while training() < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        proc.send_signal(signum)
        status = proc.wait(timeout=120)
        assert status == (143 if signum == signal.SIGTERM else -signal.SIGKILL), log.read_text()[-3000:]
        deadline = time.monotonic() + 120
        while _live_group_members(proc.pid):  # no process of the command's group is left
            assert time.monotonic() < deadline, f"job processes outlived the leaderboard: {log.read_text()[-3000:]}"
            time.sleep(0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    summaries = [yaml.safe_load(p.read_text()) for p in runs.rglob("training.yml")]
    assert len(summaries) == 2 and len(list(runs.rglob("args.yml"))) == 2  # the queued trainings never started
    assert all(s["interrupted"] and s["signal"] == "SIGTERM" and s["num_timesteps"] > 0 for s in summaries)


V1_PLAN = REPO / "docs" / "leaderboard" / "v1" / "plan.yml"


def _plan_args(*extra: str) -> Any:
    from agents.leaderboard import build_parser

    return build_parser().parse_args(["--runs", "runs-none", "-o", "out-none", *extra])


def test_the_v1_plan_trains_every_agent_on_every_task_once_on_its_schedule() -> None:
    """The committed board's plan: each of its agents on each suite task for seeds 0-4, exactly once, every run
    until flat; the schedules the plan's comments state (the residual agents' first chunk 100k, the learners from
    scratch held to 3.2M rounds on the episode-metric tasks)."""
    from agents.leaderboard import plan_file_jobs

    args = _plan_args("--plan", str(V1_PLAN))
    jobs, agents, seeds = plan_file_jobs(args, "multispin-leaderboard")
    trained = [j for j in jobs if j.train]
    assert seeds == [0, 1, 2, 3, 4] and args.tasks == list(TASKS)
    residual = {"ppo_residual", "ppo_residual_predictive", "ppo_residual_posterior"}
    assert set(agents) == {"ppo_fast", "ppo_userset", "ppo", "ppo_lstm"} | residual
    keys = [(j.entry, j.task, j.seed) for j in trained]
    assert len(keys) == len(set(keys)) == len(agents) * len(TASKS) * 5
    assert all(j.until_flat and j.max_timesteps >= j.timesteps for j in trained)
    schedule = {(j.entry, short(j.task)): (j.timesteps, j.min_timesteps, j.max_timesteps) for j in trained}
    assert schedule[("ppo_residual", "Markov")] == (100_000, 0, 1_600_000)
    assert schedule[("ppo_fast", "EnergyBudget")] == (400_000, 3_200_000, 6_400_000)
    assert schedule[("ppo_fast", "IIDStatic")] == (400_000, 0, 3_200_000)
    assert schedule[("ppo", "Knee")] == (100_000, 800_000, 1_600_000)
    for agent in ("ppo", "ppo_userset", "ppo_lstm"):  # from scratch: 3.2M rounds at least where the metric spans rounds
        assert schedule[(agent, "Fairness")][1:] == (3_200_000, 6_400_000)
    for agent in ("ppo_residual_predictive", "ppo_residual_posterior"):
        assert schedule[(agent, "StaleCSI1-v1")] == (2_000_000, 2_000_000, 4_000_000)
        assert schedule[(agent, "Markov")] == (100_000, 0, 1_600_000)
    analytic = {(j.task, j.entry) for j in jobs if j.kind == "analytic"}
    assert ("MultiSpinSuite/Fairness-v0", "het-opt-pf-static") in analytic and len(analytic) == len(jobs) - len(trained)
    filtered = _plan_args("--plan", str(V1_PLAN), "--tasks", "Fairness", "--agents", "ppo_lstm")
    jobs, agents, _ = plan_file_jobs(filtered, "multispin-leaderboard")
    assert agents == ["ppo_lstm"] and filtered.tasks == ["MultiSpinSuite/Fairness-v0"]
    assert {(j.entry, j.seed) for j in jobs if j.train} == {("ppo_lstm", s) for s in range(5)}


@pytest.mark.parametrize(
    ("plan", "extra", "message"),
    [
        ("groups: [{agents: [ppo]}]\nsteps: 3\n", [], "unknown key(s) steps; keys: seeds, groups"),
        ("groups: []\n", [], "'groups' must be a non-empty list of groups"),
        ("groups: [{tasks: [Knee]}]\n", [], "group 1: 'agents' is missing"),
        ("groups: [{agents: [ppo], chunk: 5}]\n", [], "group 1: unknown key(s) chunk"),
        ("seeds: [0, -1]\ngroups: [{agents: [ppo]}]\n", [], "seeds must be integers >= 0, got 0, -1"),
        ("seeds: ['\u00b2']\ngroups: [{agents: [ppo]}]\n", [], "seeds must be integers >= 0, got \u00b2"),
        # a value is never read as an option (-h printed the help and exited 0; --agents replaced the group's agents)
        ("groups: [{agents: [ppo, -h]}]\n", [], "group 1: agents: '-h' is not a value"),
        ("groups: [{agents: [ppo], tasks: [Knee, --agents, ppo_lstm]}]\n", [], "group 1: tasks: '--agents' is not"),
        ("groups: [{agents: [nope]}]\n", [], "group 1: unknown agent(s) nope"),
        (
            "groups: [{agents: [ppo], tasks: [Knee]}, {agents: [ppo, ppo_lstm], tasks: [Knee]}]\n",
            [],
            "in groups 1 and 2",
        ),
        ("groups: [{agents: [ppo], timesteps: 10, max_timesteps: 5}]\n", [], "group 1: --max-timesteps 5 is below"),
        ("groups: [{agents: [ppo]}]\n", ["--train"], "--plan sets --train (per group of the plan file)"),
        ("groups: [{agents: [ppo]}]\n", ["--seeds", "1"], "--plan sets --seeds"),
        ("groups: [{agents: [ppo], tasks: Nope}]\n", [], "unknown task(s) Nope"),
        ("[1, 2]\n", [], "expected a YAML mapping"),
        (
            "groups: [{agents: [ppo]}]\n",
            ["--baselines", "het-opt-posteror"],
            "unknown analytic controller(s) het-opt-posteror",
        ),
        ("groups: [{agents: [ppo]}]\n", ["--baselines", "het-opt-static", "het-opt-static"], "--baselines"),
    ],
)
def test_plan_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plan: str, extra: list[str], message: str
) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(plan)
    argv = ["--plan", str(path), *extra, "--runs", str(tmp_path / "runs"), "-o", str(tmp_path / "out")]
    cli_error(main, argv, capsys, "multispin-leaderboard", message)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_a_plan_group_does_not_check_default_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plan's groups are checked without folders: the command line's -o and --runs are checked once (a file
    named like the default output folder in the working folder said "group 1: -o/--output 'results/leaderboard'")."""
    from agents.leaderboard import plan_expects

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("a file where the default output folder would go")
    agents, seeds, pairs = plan_expects(V1_PLAN, "prog")
    assert "ppo" in agents and seeds == [0, 1, 2, 3, 4] and pairs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no probe folder left, nothing written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": ["MultiSpinSuite/Knee-v0"]}, "unknown task ['MultiSpinSuite/Knee-v0']"),
        ({"score": 10**400}, "score must be a number, got an integer of about 400 digits"),
        ({"score": float("inf")}, "score must be a number, got inf"),
        ({"train_seconds": "12"}, "train_seconds must be a number, got '12'"),
        ({"metric": "speed"}, "unknown metric 'speed'"),
        ({"convergence": [1]}, "convergence must be a JSON object, got list"),
        ({"seed": True}, "an agent's result needs its training seed"),
    ],
)
def test_check_result_names_what_the_board_cannot_read(change: dict, message: str) -> None:
    from agents.leaderboard import check_result

    good = _result(TASK, "ppo", 50.0, 0, train_seconds=12.0, convergence={"status": "flat"})
    assert check_result(good) is good
    assert check_result(dict(good, score=float("nan"), value=float("nan")))  # the metric undefined: kept
    with pytest.raises(ValueError, match=re.escape(message)):
        check_result(dict(good, **change))


def test_a_stored_result_that_cannot_be_read_is_evaluated_again(tmp_path: Path) -> None:
    from agents.leaderboard import Job, _finished

    job = Job("analytic", TASK, "het-opt-static", None)
    path = job.result_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_result(TASK, "het-opt-static", 90.0)))
    assert _finished(job, tmp_path) is not None
    for broken in ('{"task": "MultiSpin', "[]", json.dumps(dict(_result(TASK, "het-opt-static", 90.0), score="x"))):
        path.write_text(broken)
        assert _finished(job, tmp_path) is None  # the job runs again and writes its result anew


def test_a_plan_refuses_a_bad_result_of_another_command_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--plan's verdict reads every result under -o after the jobs: a bad one is refused before any job runs."""
    plan = tmp_path / "plan.yml"
    plan.write_text("groups: [{agents: [ppo], tasks: [Knee]}]\n")
    bad = tmp_path / "out" / "jobs" / "Fading" / "het-opt-static.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[]")
    argv = ["--plan", str(plan), "--runs", str(tmp_path / "runs"), "-o", str(tmp_path / "out")]
    cli_error(main, argv, capsys, "multispin-leaderboard", f"cannot read {bad} (a result of another command")
    assert not (tmp_path / "runs").exists()


def test_a_plan_value_of_the_wrong_type_names_the_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yml"
    path.write_text("groups: [{agents: [ppo]}, {agents: [ppo_lstm], timesteps: many}]\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--plan", str(path), "--runs", str(tmp_path / "runs"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"multispin-leaderboard --plan {path}: group 2: error: argument --timesteps")


def test_a_plan_trains_its_groups_and_writes_the_board_and_its_verdict(tmp_path: Path) -> None:
    """Two groups on two schedules, run by one command: each run trained on its group's schedule, the board's
    files and the verdict page written; the same command again keeps every result."""
    path = tmp_path / "plan.yml"
    path.write_text(
        "seeds: [0]\ngroups:\n"
        "  - {agents: [ppo_userset], tasks: [IIDStatic], timesteps: 2048, max_timesteps: 2048}\n"
        "  - {agents: [ppo_userset], tasks: [Knee], timesteps: 1024, max_timesteps: 2048}\n"
    )
    argv = ["--plan", str(path), "--baselines", "het-opt-static", "--validation", "2", "--reps", "100", "--no-plots"]
    argv += ["--runs", str(tmp_path / "runs"), "-o", str(tmp_path / "out")]
    out = tmp_path / "out"
    # Part of the plan (a sitting's share): its verdict still expects the whole plan, and only the plan's pairs.
    assert main([*argv, "--tasks", "Knee"]) == 0
    page = (out / "verdict.md").read_text()
    assert "| IIDStatic | ppo_userset | 0 |" in page and "1 (task, agent) pairs lack seeds" in page
    assert main(argv) == 0
    first = json.loads((out / "jobs" / "IIDStatic" / "ppo_userset_seed0.json").read_text())["convergence"]
    second = json.loads((out / "jobs" / "Knee" / "ppo_userset_seed0.json").read_text())["convergence"]
    assert (first["first_chunk"], first["cap"]) == (2048, 2048) and (second["first_chunk"], second["cap"]) == (
        1024,
        2048,
    )
    page = (out / "verdict.md").read_text()
    assert f"--plan {path}" in page and "| IIDStatic | ppo_userset" in page and "| Knee | ppo_userset" in page
    # The verdict's own command with the same plan writes the same page (but for the command it names).
    again = tmp_path / "verdict.md"
    assert verdict_main([str(out), "-o", str(again), "--plan", str(path), "--reps", "100"]) == 0
    assert again.read_text().split("\n")[3:] == page.split("\n")[3:] and "| IIDStatic | ppo_userset | 0 |" not in page
    assert (out / "leaderboard.md").is_file() and "het-opt-static" in (out / "leaderboard.md").read_text()
    stamps = {p: p.stat().st_mtime for p in (out / "jobs").rglob("*.json")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime for p in (out / "jobs").rglob("*.json")} == stamps
