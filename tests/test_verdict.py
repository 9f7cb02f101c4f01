"""The verdict (agents/verdict.py) on small fake result files: interval overlap and outcomes, the best learned and
best non-oracle analytic entry per task, missing and unconverged runs reported, the aggregate over tasks, the goals
and the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from board_helpers import fake_result
from cli_helpers import cli_error
from hypothesis import given
from hypothesis import strategies as st

from agents.leaderboard import SCORE_TIE
from agents.verdict import MARGIN, main, outcome, overlap, verdict
from baselines.policies import ORACLE_POLICIES, policies_for
from multispin_env.suite import EDGES, TASKS, task

IID, NOISY, LIGHT = "MultiSpinSuite/IIDStatic-v0", "MultiSpinSuite/NoisyCSI-v0", "MultiSpinSuite/ArrivalsLight-v1"


_result = fake_result


def _flat(converged: bool = True, cpu: float = 360.0) -> dict:
    return {
        "cpu_seconds": cpu,
        "train_seconds": 2 * cpu,
        "convergence": {
            "status": "flat" if converged else "cap",
            "converged": converged,
            "budget": 400_000,
            "improvement": 0.001 if converged else 0.02,
        },
    }


def _board() -> list[dict]:
    results = []
    for t in (IID, NOISY, LIGHT):
        results += [_result(t, "het-opt-oracle", 100.0), _result(t, "het-opt-adaptive", 60.0)]
    results += [_result(IID, "het-opt-static", 100.0), _result(NOISY, "het-opt-predictive", 67.5)]
    results += [_result(LIGHT, "het-opt-static", 100.0)]
    for seed in range(5):
        results.append(_result(IID, "good", 99.0 + 0.1 * seed, seed, **_flat(), commit="abc1234"))
        results.append(_result(IID, "weak", 50.0 + seed, seed, **_flat(), commit="abc1234"))
        results.append(_result(NOISY, "good", 80.0 + seed, seed, **_flat(seed != 3), commit="abc1234"))
        if seed != 4:  # one seed of "weak" missing on NoisyCSI
            results.append(_result(NOISY, "weak", 60.0 + seed, seed, **_flat(), commit="abc1234"))
        results.append(_result(LIGHT, "good", 120.0 + seed, seed, **_flat(), commit="abc1234"))
    return results


@given(st.floats(-100, 100), st.floats(0, 50), st.floats(-100, 100), st.floats(0, 50))
def test_outcome_is_the_interval_order(a: float, wa: float, b: float, wb: float) -> None:
    x, y = (a, a + wa), (b, b + wb)
    assert overlap(x, y) == overlap(y, x) == (max(x[0], y[0]) <= min(x[1], y[1]) + SCORE_TIE)
    assert outcome(x, y) == {"learned": "analytic", "analytic": "learned", "tie": "tie"}[outcome(y, x)]
    assert (outcome(x, y) == "learned") == (x[0] > y[1] + MARGIN)
    assert (outcome(x, y, margin=0.0) == "tie") == (max(x[0], y[0]) <= min(x[1], y[1]))
    assert outcome(x, y) == "tie" or not overlap(x, y)  # overlapping intervals are a tie


def test_a_gap_under_the_margin_is_a_tie() -> None:
    """Zero-width intervals a hundredth of a point apart (a residual agent that kept its controller) tie."""
    assert outcome((89.02, 89.02), (89.0, 89.0)) == "tie"
    assert outcome((89.0 + MARGIN + 0.01,) * 2, (89.0, 89.0)) == "learned"
    assert outcome((89.0 - MARGIN - 0.01,) * 2, (89.0, 89.0)) == "analytic"


def test_verdict_per_task_best_entries_outcomes_and_missing_runs() -> None:
    v = verdict(_board(), list(TASKS), seeds=range(5), reps=100)
    rows = {r["label"]: r for r in v["tasks"]}
    iid, noisy, light = rows["IIDStatic"], rows["NoisyCSI"], rows["ArrivalsLight-v1"]
    # Best learned: the highest IQM; best analytic: the highest non-oracle score (oracle rows never chosen).
    assert iid["learned"]["entry"] == "good" and iid["analytic"]["entry"] == "het-opt-static"
    assert noisy["analytic"]["entry"] == "het-opt-predictive"
    # IQM of 5 seeds: the mean of the middle three (scipy's 25% trimmed mean equals rliable's here).
    assert iid["learned"]["score"] == pytest.approx(np.mean([99.1, 99.2, 99.3]))
    assert iid["outcome"] == "analytic" and not iid["overlap"]  # CI within [99.0, 99.4] < 100
    assert noisy["outcome"] == "learned" and noisy["difference"] == pytest.approx(
        82.0 - 67.5
    )  # IQM of 80-84: 81, 82, 83
    assert light["outcome"] == "learned" and light["edge"] == "foresight" == task(LIGHT).edge
    assert iid["why"] == EDGES["none"]
    # Analytic controllers not evaluated are reported: the best analytic entry is the best of those evaluated.
    assert iid["analytic"]["evaluated"] == 3 and iid["analytic"]["controllers"] == len(policies_for(gym.make(IID)))
    assert {
        "task": "NoisyCSI",
        "controllers": [
            c
            for c in policies_for(gym.make(NOISY))
            if c not in ("het-opt-oracle", "het-opt-adaptive", "het-opt-predictive")
        ],
    } in v["missing_analytic"]
    assert noisy["learned"]["converged"] == 4 and noisy["learned"]["seeds"] == 5
    # Tasks without learned results are not compared.
    assert all(
        "outcome" not in r for label, r in rows.items() if label not in ("IIDStatic", "NoisyCSI", "ArrivalsLight-v1")
    )
    # Missing: weak's seed 4 on NoisyCSI, weak on ArrivalsLight, both agents on the 12 tasks without results.
    assert {"task": "NoisyCSI", "agent": "weak", "seeds": [4]} in v["missing"]
    assert len(v["missing"]) == 2 + 2 * (len(TASKS) - 3)
    assert v["unconverged"] == [
        {"task": "NoisyCSI", "agent": "good", "seed": 3, "status": "cap", "budget": 400_000, "improvement": 0.02}
    ]
    assert v["compute"]["train_cpu_hours"] == pytest.approx(24 * 360 / 3600)  # 24 learned runs
    assert v["commits"] == {"unknown": 9, "abc1234": 24}  # 9 analytic results without a commit


def test_full_information_controllers_are_never_the_analytic_rival() -> None:
    """het-opt-energy and het-opt-pf plan with the true state (oracle level) under names without "oracle"."""
    assert {"het-opt-energy", "het-opt-pf", "het-opt-oracle", "het-opt-urgency-oracle"} <= ORACLE_POLICIES
    assert not {"het-opt-adaptive", "het-opt-predictive", "het-opt-urgency-adaptive"} & ORACLE_POLICIES
    results = [_result(IID, "het-opt-energy", 100.0), _result(IID, "het-opt-pf", 100.0)]
    results += [_result(IID, "het-opt-adaptive", 90.0)]
    results += [_result(IID, "a", s, i, **_flat()) for i, s in enumerate([95.0, 95.5, 96.0, 96.5, 97.0])]
    row = verdict(results, [IID], reps=100)["tasks"][0]
    assert row["analytic"]["entry"] == "het-opt-adaptive" and row["outcome"] == "learned"


def test_a_tie_when_the_learned_interval_covers_the_analytic_score() -> None:
    results = [_result(IID, "het-opt-static", 100.0)]
    results += [_result(IID, "a", s, i, **_flat()) for i, s in enumerate([95.0, 98.0, 101.0, 103.0, 99.0])]
    row = verdict(results, [IID], reps=100)["tasks"][0]
    assert row["learned"]["ci95"][0] < 100.0 < row["learned"]["ci95"][1]
    assert row["overlap"] and row["outcome"] == "tie"


def test_a_difference_that_rounds_to_zero_prints_without_a_minus_sign() -> None:
    """A residual agent that plays its controller differs by ~1e-14 (episodes summed in another order)."""
    from agents.verdict import _ci, _signed

    assert [_signed(x) for x in (-1e-14, 0.0, 0.04, -0.26, 12.71)] == ["+0.0", "+0.0", "+0.0", "-0.3", "+12.7"]
    assert _ci(-0.04, (-0.3, 0.02)) == "0.0 [-0.3, 0.0]"  # an interval's ends too


def test_an_agent_level_with_its_controller_meets_the_over_tasks_goal() -> None:
    """Scores 1e-13 below the controller's (the same episodes summed in another order) are level: ">=" is met."""
    results = [_result(t, "het-opt-adaptive", s) for t, s in ((IID, 90.0), (NOISY, 60.0))]
    results += [
        _result(t, "ppo_residual", s - 1e-13, seed) for t, s in ((IID, 90.0), (NOISY, 60.0)) for seed in range(5)
    ]
    (goal,) = [g for g in verdict(results, [IID, NOISY], reps=100)["goals"] if g["goal"].startswith("over tasks")]
    assert goal["met"] and goal["detail"].endswith("difference +0.00")


def test_over_tasks_counts_the_controllers_as_often_as_the_best_learned_agent() -> None:
    """An agent with a missing run (4 seeds) whose scores equal its controller's is level with it over tasks, even
    when another agent has 5 seeds on some task (which sets the board's own count); level CIs overlap."""
    tasks = list(TASKS[:6])
    levels = [0.0, 10.0, 20.0, 30.0, 90.0, 100.0]
    results = [_result(t, "het-opt-adaptive", s) for t, s in zip(tasks, levels, strict=True)]
    results += [
        _result(t, "ppo_residual", s - 1e-13, seed) for t, s in zip(tasks, levels, strict=True) for seed in range(4)
    ]
    results += [_result(tasks[0], "ppo", 0.0, seed) for seed in range(5)]
    over = verdict(results, tasks, reps=100)["over_tasks"]
    assert over["learned"] == "ppo_residual" and over["analytic"] == "het-opt-adaptive"
    assert over["controller_runs"] == 4
    assert over["difference"] == pytest.approx(0.0, abs=1e-9) and over["overlap"] and over["outcome"] == "tie"


def test_a_missed_goal_points_to_the_reasons() -> None:
    from agents.verdict import markdown

    results = [_result(t, "het-opt-adaptive", 90.0) for t in (IID, NOISY)]
    results += [_result(t, "ppo", 80.0 + seed, seed) for t in (IID, NOISY) for seed in range(5)]
    page = markdown(verdict(results, [IID, NOISY], reps=50), "cmd")
    assert "- MISSED: over tasks" in page
    assert 'Why a goal is missed, agent by agent: docs/leaderboard.md, section "The verdict".' in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "a result is a JSON object, got list"),
        ("null", "a result is a JSON object, got NoneType"),
        ('{"entry": "x", "kind": "analytic", "score": 1.0, "goodput": 1.0}', "missing key(s) task"),
        (
            '{"task": "MultiSpinSuite/NoSuch-v0", "entry": "x", "kind": "analytic", "score": 1.0, "goodput": 1.0}',
            "unknown task 'MultiSpinSuite/NoSuch-v0'",
        ),
        (
            '{"task": "MultiSpinSuite/Knee-v0", "entry": "x", "kind": "analytic", "score": "abc", "goodput": 1.0}',
            "score must be a number, got 'abc'",
        ),
        (
            '{"task": "MultiSpinSuite/Knee-v0", "entry": "x", "kind": "agent", "score": 1.0, "goodput": 1.0}',
            "an agent's result needs its training seed",
        ),
        ('{"task": "MultiSpinSuite/Knee-v0", "entry": "x", "kind": "oops", "score": 1, "goodput": 1}', "kind must be"),
    ],
)
def test_a_result_file_of_the_wrong_shape_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    bad = tmp_path / "board" / "jobs" / "Knee" / "x.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    cli_error(
        main, [str(tmp_path / "board"), "-o", str(tmp_path / "v.md")], capsys, "python -m agents.verdict", message
    )
    dest = tmp_path / "copy"
    argv = [str(tmp_path / "board"), "--export", str(dest), "--runs", str(tmp_path)]
    cli_error(main, argv, capsys, "python -m agents.verdict", message)
    assert not dest.exists()  # checked before anything is copied


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--runs", "r"], "--runs is read by --export only"),
        (["--no-plots"], "--no-plots applies to --board"),
    ],
)
def test_an_option_that_would_be_ignored_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = [str(tmp_path), "-o", str(tmp_path / "v.md"), *extra]
    cli_error(main, argv, capsys, "python -m agents.verdict", message)
    (tmp_path / "file").write_text("x")
    cli_error(
        main, [str(tmp_path / "file")], capsys, "python -m agents.verdict", "'" + str(tmp_path / "file") + "' is a file"
    )


def test_a_plan_leaves_out_the_runs_not_on_its_schedule() -> None:
    """With the plan's schedules (agents.leaderboard.plan_expects) a run judged flat before the plan's minimum, or
    capped at another cap, is left out and listed with the reason; the pair lacks that seed."""
    from agents.leaderboard import Schedule
    from agents.verdict import markdown

    def run(seed: int, status: str, budget: int, cap: int = 6_400_000) -> dict:
        record = {"status": status, "converged": status == "flat", "budget": budget, "first_chunk": 100_000, "cap": cap}
        return _result(IID, "ppo", 90.0 + seed, seed, convergence=record)

    results = [_result(IID, "het-opt-static", 100.0)]
    results += [run(0, "flat", 3_200_000), run(1, "flat", 800_000), run(2, "cap", 1_600_000, cap=1_600_000)]
    results += [run(seed, "flat", 6_400_000) for seed in (3, 4)]
    pairs = {(IID, "ppo"): Schedule(100_000, 3_200_000, 6_400_000)}
    v = verdict(results, [IID], ["ppo"], range(5), reps=50, pairs=pairs)
    assert [(o["seed"], o["why"]) for o in v["off_schedule"]] == [
        (1, "judged flat at 800000 env steps, before the minimum 3200000"),
        (2, "stopped at a cap of 1600000 env steps, not 6400000"),
    ]
    assert v["missing"] == [{"task": "IIDStatic", "agent": "ppo", "seeds": [1, 2]}]
    assert v["tasks"][0]["learned"]["seeds"] == 3
    page = markdown(v, "cmd")
    assert (
        "; 2 of the runs they lack have a result not trained on the plan's schedule)" in page
        and "| IIDStatic | ppo | 2 | stopped at a cap" in page
    )
    # without schedules (a set of pairs, or none) every run counts
    assert verdict(results, [IID], ["ppo"], range(5), reps=50, pairs=set(pairs))["off_schedule"] == []


def test_the_board_written_with_a_plan_verdict_leaves_out_the_same_runs(tmp_path: Path) -> None:
    from agents.leaderboard import Schedule
    from agents.verdict import write_verdict

    def run(seed: int, budget: int) -> dict:
        record = {"status": "flat", "converged": True, "budget": budget, "first_chunk": 100_000, "cap": 6_400_000}
        return _result(IID, "ppo", 90.0 + seed, seed, convergence=record)

    results = [_result(IID, "het-opt-static", 100.0), run(0, 3_200_000), run(1, 800_000)]
    pairs = {(IID, "ppo"): Schedule(100_000, 3_200_000, 6_400_000)}
    write_verdict(
        results, tmp_path / "v.md", "cmd", ["ppo"], [0, 1], 50, board_folder=tmp_path, plots=False, pairs=pairs
    )
    with open(tmp_path / "runs.csv") as file:
        seeds = [row["seed"] for row in csv.DictReader(file) if row["entry"] == "ppo"]
    assert seeds == ["0"]


def test_intervals_level_to_within_score_tie_overlap() -> None:
    assert overlap((100.0 - 1e-13, 100.0 - 1e-13), (100.0, 100.0))
    assert overlap((1.0, 2.0), (2.0, 3.0))
    assert not overlap((1.0, 2.0), (2.01, 3.0))


def test_a_residual_agent_is_measured_against_its_own_controller(tmp_path: Path) -> None:
    """A residual agent's row says how far it moved from the controller its hyperparameter file corrects (read
    through agents.residual.residual_base), and over tasks the page says its standing is its controller's."""
    results = [_result(t, "het-opt-static", 100.0) for t in (IID, NOISY)]
    results += [_result(t, "het-opt-adaptive", 90.0) for t in (IID, NOISY)]
    for seed in range(5):
        results.append(_result(IID, "ppo_residual", 90.2, seed, **_flat()))
        results.append(_result(NOISY, "ppo_residual", 89.5, seed, **_flat()))
        results.append(_result(IID, "ppo", 95.0 + seed, seed, **_flat()))
    v = verdict(results, [IID, NOISY], reps=100)
    iid, noisy = v["tasks"]
    assert iid["learned"]["entry"] == "ppo" and "controller" not in iid["learned"]  # learns from scratch
    assert noisy["learned"]["entry"] == "ppo_residual" and noisy["learned"]["controller"] == "het-opt-adaptive"
    assert noisy["learned"]["over_controller"] == pytest.approx(-0.5)
    over = v["over_tasks"]
    assert over["learned"] == "ppo_residual" and over["controllers"] == ["het-opt-adaptive"]  # ppo: not on NoisyCSI
    assert over["controller_gaps"] == pytest.approx([-0.5, 0.2])
    # A result that names its controller (the leaderboard records the run's own) is compared with that one.
    named = [dict(r, controller="het-opt-static") if r["entry"] == "ppo_residual" else r for r in results]
    noisy_named = verdict(named, [IID, NOISY], reps=100)["tasks"][1]["learned"]
    assert noisy_named["controller"] == "het-opt-static" and noisy_named["over_controller"] == pytest.approx(-10.5)
    out = tmp_path / "board"
    for r in results:
        name = r["entry"] if r["seed"] is None else f"{r['entry']}_seed{r['seed']}"
        path = out / "jobs" / task(r["task"]).label / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    assert main([str(out), "-o", str(tmp_path / "v.md"), "--reps", "100"]) == 0
    page = (tmp_path / "v.md").read_text()
    assert "| NoisyCSI | ppo_residual 89.5 [89.5, 89.5] | 5/5 | 5/5 | -0.5 (het-opt-adaptive) |" in page
    assert (
        "ppo_residual is a residual agent over het-opt-adaptive: on each compared task its IQM is -0.5 to +0.2" in page
    )


def test_aggregate_and_goals() -> None:
    v = verdict(_board(), list(TASKS), seeds=range(5), reps=100)
    over = v["over_tasks"]
    assert over["tasks"] == ["IIDStatic", "NoisyCSI", "ArrivalsLight-v1"]
    # het-opt-predictive and weak lack a task (weak has 4 seeds on NoisyCSI but all tasks): only full coverage.
    assert "het-opt-predictive" in over["partial"] and "het-opt-oracle" in over["entries"]
    assert over["learned"] == "good" and over["analytic"] in ("het-opt-static", "het-opt-adaptive")
    goals = {g["goal"]: g["met"] for g in v["goals"]}
    assert goals[
        "ArrivalsLight-v1 (foresight): the best learned agent beats the best analytic controller with "
        f"non-overlapping 95% CIs (the learned one wholly above, by more than {MARGIN} points)"
    ]
    assert goals["NoisyCSI: the best learned IQM >= het-opt-predictive's score"]
    assert not any("Positional" in g for g in goals)  # not measured: no result there


def test_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "board"
    for r in _board():
        name = r["entry"] if r["seed"] is None else f"{r['entry']}_seed{r['seed']}"
        path = out / "jobs" / task(r["task"]).label / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    page = tmp_path / "docs" / "verdict.md"
    assert main([str(out), "-o", str(page), "--json", str(tmp_path / "v.json"), "--reps", "100"]) == 0
    text = page.read_text()
    assert f"covers only the finished runs: 3 of {len(TASKS)} tasks" in text
    assert "| NoisyCSI | weak | 4 |" in text and "| NoisyCSI | good | 3 | cap | 400,000 | 2.00% |" in text
    assert "| IIDStatic | good 99.2 [" in text and "analytic better" in text
    assert "- MISSED: " not in text and "Why a goal is missed" not in text  # every goal met on this board
    assert json.loads((tmp_path / "v.json").read_text())["over_tasks"]["learned"] == "good"
    # --board: the leaderboard files from the same results; --export: a copy with model paths relative to --runs.
    assert main([str(out), "-o", str(page), "--board", "--no-plots", "--reps", "100"]) == 0
    assert "| NoisyCSI |" in (out / "leaderboard.md").read_text() and (out / "runs.csv").is_file()
    assert " min of jobs summed (training " in (out / "leaderboard.md").read_text()  # not one command's wall time
    runs = tmp_path / "runs"
    job = out / "jobs" / "IIDStatic" / "good_seed0.json"
    model = str(runs / "good" / "IIDStatic" / "seed0" / "chunk1" / "best_model.zip")
    final, elsewhere = str(runs / "good" / "IIDStatic" / "seed0" / "chunk1" / "final.zip"), str(tmp_path / "m.zip")
    convergence = {"best_model": model, "final_model": final, "status": "flat", "chunks": [{"chunk": 0}]}
    job.write_text(json.dumps(dict(json.loads(job.read_text()), model=model, convergence=convergence)))
    other = out / "jobs" / "IIDStatic" / "good_seed1.json"
    other.write_text(json.dumps(dict(json.loads(other.read_text()), model=elsewhere)))
    assert main([str(out), "--export", str(tmp_path / "copy"), "--runs", str(runs)]) == 0
    copied = json.loads((tmp_path / "copy" / "jobs" / "IIDStatic" / "good_seed0.json").read_text())
    assert copied["model"] == copied["convergence"]["best_model"] == "good/IIDStatic/seed0/chunk1/best_model.zip"
    assert copied["convergence"] == dict(
        convergence, best_model=copied["model"], final_model="good/IIDStatic/seed0/chunk1/final.zip"
    )
    # A model outside --runs keeps its path.
    assert json.loads((tmp_path / "copy" / "jobs" / "IIDStatic" / "good_seed1.json").read_text())["model"] == elsewhere
    assert len(list((tmp_path / "copy" / "jobs").glob("*/*.json"))) == len(_board())
    capsys.readouterr()
    cli_error(main, [str(tmp_path / "nope"), "-o", str(page)], capsys, "python -m agents.verdict", "does not exist")
    cli_error(main, [str(tmp_path), "-o", str(page)], capsys, "python -m agents.verdict", "no per-job results")
    cli_error(main, [str(out), "-o", str(tmp_path)], capsys, "python -m agents.verdict", "is a folder")
    # Nothing is written when --json names a folder, an agent is unknown or a value repeats.
    written = page.read_text()
    for argv, message in (
        (["--json", str(tmp_path)], "--json"),
        (["--agents", "ppo_resdual"], "unknown agent(s) ppo_resdual"),
        (["--agents", "ppo", "ppo"], "--agents repeats ppo"),
        (["--seeds", "0", "0"], "--seeds repeats 0"),
    ):
        cli_error(main, [str(out), "-o", str(page), *argv], capsys, "python -m agents.verdict", message)
        assert page.read_text() == written
    cli_error(main, [str(out), "--seeds", "-1"], capsys, "python -m agents.verdict", "expected an integer >= 0")
    # --plan: the agents and seeds the plan file trains are the ones expected (here missing: nothing trained them).
    plan = tmp_path / "plan.yml"
    plan.write_text("seeds: [0, 3]\ngroups:\n  - agents: [ppo_fast]\n    tasks: [IIDStatic]\n    timesteps: 1000\n")
    assert main([str(out), "-o", str(page), "--plan", str(plan), "--reps", "100"]) == 0
    assert "| IIDStatic | ppo_fast | 0 3 |" in page.read_text() and "ppo_fast expected on 2 seeds" in page.read_text()
    written = page.read_text()
    for argv, message in (
        (["--agents", "ppo"], "--plan sets --agents"),
        (["--seeds", "0"], "--plan sets --seeds"),
    ):
        cli_error(
            main, [str(out), "-o", str(page), "--plan", str(plan), *argv], capsys, "python -m agents.verdict", message
        )
        assert page.read_text() == written
    cli_error(
        main,
        [str(out), "--export", str(tmp_path / "c"), "--runs", str(tmp_path), "--plan", str(plan)],
        capsys,
        "python -m agents.verdict",
        "--export copies the results and stops; --plan do(es) not apply to it",
    )
    for extra in (["-o", "v.md"], ["--json", "v.json"], ["--board"], ["--agents", "ppo"], ["--seeds", "0"]):
        argv = [str(out), "--export", str(tmp_path / "c"), "--runs", str(tmp_path), *extra]
        message = f"--export copies the results and stops; {'-o/--output' if extra[0] == '-o' else extra[0]} do(es)"
        cli_error(main, argv, capsys, "python -m agents.verdict", message)
    assert not (tmp_path / "c").exists()
    plan.write_text("groups: []\n")
    cli_error(
        main, [str(out), "-o", str(page), "--plan", str(plan)], capsys, "python -m agents.verdict", "non-empty list"
    )
    cli_error(main, [str(out), "--export", str(tmp_path / "c")], capsys, "python -m agents.verdict", "needs --runs")


def test_a_task_edge_is_declared() -> None:
    from multispin_env.suite import Task

    assert all(task(t).edge in EDGES for t in TASKS)
    with pytest.raises(ValueError, match="edge must be one of"):
        Task("X", "a task", edge="luck")
