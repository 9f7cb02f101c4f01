"""The benchmark: files written, analytic rows against the solvers' expected goodput, one-line errors."""

from __future__ import annotations

import csv
import json
import math
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from cli_helpers import cli_error

import multispin_env  # noqa: F401  (registers the ids)
from agents.benchmark import main as bench_main
from agents.benchmark import paired_comparison, run_benchmark
from agents.train import main as train_main
from baselines.information import static_params
from baselines.policies import policies_for
from baselines.solvers import equal_bandwidth_fixed, equal_bandwidth_tuned, solve_heterogeneous, solve_homogeneous

ENV = "MultiSpin-Heterogeneous-v0"
TINY_PPO = ["n_envs:2", "n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:dict(net_arch=[16])"]


@pytest.fixture(scope="module")
def tiny_agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PPO run folder (with evaluations.npz) trained for a few hundred steps on 1-second episodes."""
    log = tmp_path_factory.mktemp("bench") / "logs"
    argv = [
        "--algo",
        "ppo",
        "-n",
        "256",
        "--seed",
        "0",
        "-f",
        str(log),
        "--eval-freq",
        "128",
        "--eval-episodes",
        "2",
        "--baselines",
        "equal-fixed",
        "het-opt-static",
        "het-opt-oracle",
        "--verbose",
        "0",
        "--env-kwargs",
        "horizon:1.0",
        "-params",
        *TINY_PPO,
    ]
    assert train_main(argv) == 0
    return log / "ppo" / f"{ENV}_1"


def test_tiny_benchmark_writes_all_files(tmp_path: Path, tiny_agent: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    status = bench_main(
        ["--agents", f"ppo-tiny={tiny_agent}", "--episodes", "3", "--seed", "5", "-o", str(out), "--jobs", "2"]
    )
    assert status == 0
    for name in ("benchmark.csv", "benchmark.json", "goodput.png", "training_curve.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    printed = capsys.readouterr().out
    assert "het-opt-oracle" in printed and "ppo-tiny" in printed

    with (out / "benchmark.csv").open() as f:
        rows = list(csv.DictReader(f))
    valid = policies_for(gym.make(ENV))  # every analytic policy but the deadline ones
    assert [r["policy"] for r in rows] == [*valid, "ppo-tiny"]
    assert [r["kind"] for r in rows] == ["analytic"] * len(valid) + ["agent"]
    for r in rows:
        assert float(r["goodput_mean"]) > 0 and float(r["goodput_ci95"]) >= 0 and int(r["episodes"]) == 3
        assert 0 <= float(r["mean_draft_length"]) <= 10
        assert 1 / 6 - 1e-9 <= float(r["bandwidth_hhi"]) <= 1 + 1e-9
    oracle = next(r for r in rows if r["policy"] == "het-opt-oracle")
    assert float(oracle["ratio_to_oracle"]) == pytest.approx(1.0) and float(oracle["ratio_ci95"]) == pytest.approx(0.0)

    report = json.loads((out / "benchmark.json").read_text())
    # The agent's env config (from its run folder) was used for every policy, on seeds 5, 6, 7.
    assert report["env_id"] == ENV and report["env_kwargs"] == {"horizon": 1.0}
    assert report["seeds"] == [5, 6, 7] and report["oracle"] == "het-opt-oracle"
    agent = report["policies"][-1]
    assert set(agent["paired"]) == set(valid)
    assert [e["seed"] for e in agent["episodes_detail"]] == [5, 6, 7]


def test_training_curve_only(tmp_path: Path, tiny_agent: Path) -> None:
    out = tmp_path / "curve"
    status = bench_main(
        [
            "--training-log",
            str(tiny_agent),
            "--policies",
            "equal-fixed",
            "--episodes",
            "2",
            "--env-kwargs",
            "horizon:1.0",
            "-o",
            str(out),
            "-q",
        ]
    )
    assert status == 0
    assert (out / "training_curve.png").is_file() and (out / "benchmark.csv").is_file()


@pytest.mark.parametrize("env_id", ["MultiSpin-Heterogeneous-v0", "MultiSpin-Homogeneous-v0"])
def test_analytic_rows_match_the_solvers_expected_goodput(env_id: str) -> None:
    """iid acceptance, no fading: every round has the mean parameters, so the static and oracle policies play
    the solver's allocation and their measured goodput must match its expected goodput eq. (5)."""
    kwargs = {"fading": False, "acceptance_process": "iid"}
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    params = static_params(env.unwrapped)
    solver_goodput = {
        "equal-fixed": equal_bandwidth_fixed(params).goodput,
        "equal-tuned": equal_bandwidth_tuned(params).goodput,
        "hom-opt-static": solve_homogeneous(params).goodput,
        "hom-opt-oracle": solve_homogeneous(params).goodput,
        "het-opt-static": solve_heterogeneous(params).goodput,
        "het-opt-oracle": solve_heterogeneous(params).goodput,
    }
    names = [n for n in policies_for(env) if n in solver_goodput]
    rows = run_benchmark(env_id, kwargs, episodes=12, seed=100, policies=names, jobs=2)
    for row in rows:
        mean, half = row.result.goodput_ci()
        expected = solver_goodput[row.policy]
        # Sampling error (95% t-interval) plus 1% for the finite horizon (the last round overshoots it).
        assert abs(mean - expected) <= half + 0.01 * expected, (row.policy, mean, half, expected)


def test_adaptive_policies_stay_below_the_oracle_within_error() -> None:
    kwargs = {"fading": False, "acceptance_process": "iid"}
    rows = {
        r.policy: r
        for r in run_benchmark(ENV, kwargs, episodes=6, seed=7, policies=["het-opt-adaptive", "het-opt-oracle"])
    }
    ratio = rows["het-opt-adaptive"].ratio_to_oracle
    assert 0.8 < ratio < 1.0 + rows["het-opt-adaptive"].ratio_ci95 + 1e-9


def test_paired_comparison() -> None:
    a = np.array([10.0, 12.0, 11.0])
    b = np.array([5.0, 6.0, 5.5])
    cmp = paired_comparison(a, b)
    assert cmp["diff_mean"] == pytest.approx(5.5)
    assert cmp["ratio_mean"] == pytest.approx(2.0) and cmp["ratio_ci95"] == pytest.approx(0.0)
    assert math.isnan(paired_comparison(a, np.zeros(3))["ratio_mean"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "MultiSpin-Homogenous-v0"], "is not a registered env id; MultiSpin ids: MultiSpin-Heterogeneous-v0"),
        (["--env", "CartPole-v1"], "'CartPole-v1' is not a MultiSpin env"),
        (
            ["--env", "MultiSpin-Homogeneous-v0", "--policies", "het-opt-oracle"],
            "not valid on MultiSpin-Homogeneous-v0",
        ),
        (["--agents", "no/such/run"], "no/such/run"),
        (["--env-kwargs", "fading"], "malformed --env-kwargs pair 'fading'"),
        (["--env-kwargs", "fading:maybe"], "env kwargs do not fit"),
        (["--episodes", "0"], "argument --episodes: expected an integer >= 1, got 0"),
    ],
)
def test_benchmark_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    cli_error(partial(bench_main, prog="benchmark"), [*argv, "-o", str(tmp_path / "out")], capsys, "benchmark", message)


def test_demo_end_to_end_on_a_tiny_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agents.demo import main as demo_main

    out = tmp_path / "results"
    # --quick sets the defaults only: the explicit budget and episodes are used.
    assert demo_main(["--quick", "-n", "256", "--episodes", "2", "-o", str(out), "-f", str(tmp_path / "logs")]) == 0
    for name in ("benchmark.csv", "benchmark.json", "goodput.png", "training_curve.png"):
        assert (out / name).is_file(), name
    assert all(len(row["episodes_detail"]) == 2 for row in json.loads((out / "benchmark.json").read_text())["policies"])
    printed = capsys.readouterr().out
    assert "for 256 steps" in printed
    assert "het-opt-oracle" in printed and "ppo" in printed and "demo finished" in printed


def test_agent_on_the_other_id_is_refused_in_one_line(
    tiny_agent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A heterogeneous agent (12 actions) on the homogeneous id (7 actions): the action shapes are checked too."""
    status = bench_main(
        ["--agents", str(tiny_agent), "--env", "MultiSpin-Homogeneous-v0", "--episodes", "1", "-o", str(tmp_path)],
        prog="benchmark",
    )
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "has action shape (12,), the env gives (7,)" in lines[0], lines


def test_a_killed_run_loads_its_best_then_its_latest_checkpoint(
    tiny_agent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.runs import resolve_agent

    run = tmp_path / "ppo" / f"{ENV}_1"
    (run / ENV).mkdir(parents=True)
    (run / ENV / "args.yml").write_text((tiny_agent / ENV / "args.yml").read_text())
    model = (tiny_agent / f"{ENV}.zip").read_bytes()
    for steps in (12000, 24000):  # alphabetically rl_model_12000 comes first; 24000 is the latest
        (run / f"rl_model_{steps}_steps.zip").write_bytes(model)
    info = resolve_agent(run)
    assert (info.model_path.name, info.kind) == ("rl_model_24000_steps.zip", "checkpoint")
    (run / "best_model.zip").write_bytes(model)
    assert resolve_agent(run).model_path.name == "best_model.zip"
    (run / f"{ENV}.zip").write_bytes(model)
    assert resolve_agent(run).model_path.name == f"{ENV}.zip"
    assert (
        bench_main(
            [
                "--agents",
                str(run),
                "--policies",
                "equal-fixed",
                "--episodes",
                "1",
                "-o",
                str(tmp_path / "o"),
                "--no-plots",
            ]
        )
        == 0
    )
    assert f"loading {run / f'{ENV}.zip'} (final model" in capsys.readouterr().out


def test_plots_explain_themselves(tiny_agent: Path) -> None:
    """training_curve: legend outside the data, every level's value in it, band cut at zero;
    goodput: the error bars and the learned agent named."""
    from agents.benchmark import goodput_figure, run_benchmark, training_figure

    fig = training_figure([("ppo", tiny_agent)])
    ax = fig.axes[0]
    legend = ax.get_legend()
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # beside the axes, not over the data
    labels = [t.get_text() for t in legend.get_texts()]
    assert any(t.startswith("het-opt-oracle: ") and t.split(": ")[1].replace(".", "").isdigit() for t in labels), labels
    assert any("95% t-interval" in t for t in labels)
    band = next(c for c in ax.collections if c.get_label().endswith("95% t-interval"))
    assert band.get_paths()[0].vertices[:, 1].min() >= 0.0
    assert ax.get_ylim()[0] == 0.0

    rows = run_benchmark(ENV, {"horizon": 1.0}, 2, 0, [("ppo-tiny", str(tiny_agent))], ["equal-fixed"])
    fig = goodput_figure(rows)
    ax = fig.axes[0]
    assert "error bars: 95% t-interval" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["analytic policy", "learned agent"]
    assert [bar.get_hatch() for bar in ax.patches] == [None, "//"]


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    from agents.demo import main as demo_main

    for main, prog in ((bench_main, "benchmark"), (demo_main, "demo")):
        with pytest.raises(SystemExit):
            main(["--help"], prog=prog)
        text = " ".join(capsys.readouterr().out.split())
        assert "``" not in text and "(default: None)" not in text
        assert all(option.count("default") <= 1 for option in text.split(" --")), text
        assert "(default: 20" in text  # --episodes (the demo adds its --quick value)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize("name", [f"{ENV}.zip", f"{ENV}/vecnormalize.pkl"])
def test_a_truncated_or_corrupt_run_file_is_one_line_naming_it(
    tiny_agent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, damage: str
) -> None:
    import shutil

    run = tmp_path / "ppo" / f"{ENV}_1"
    shutil.copytree(tiny_agent, run)
    data = (run / name).read_bytes()
    assert len(data) > 100
    (run / name).write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x80\x04 not a pickle " * 8)
    argv = ["--agents", str(run), "--policies", "equal-fixed", "--episodes", "1", "-o", str(tmp_path / "o")]
    line = cli_error(partial(bench_main, prog="benchmark"), argv, capsys, "benchmark", f"cannot load {run / name}")
    assert not (tmp_path / "o").exists(), line  # found before any evaluation


def test_flags_that_load_runs_or_eval_values_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    """A run folder is code (pickles) and --env-kwargs values go through eval: the help of those flags says so."""
    from agents.leaderboard import main as board_main
    from agents.train import zoo_parser

    texts = {}
    for name, main in (("benchmark", bench_main), ("leaderboard", board_main)):
        with pytest.raises(SystemExit):
            main(["--help"])
        texts[name] = " ".join(capsys.readouterr().out.split())
    texts["train"] = " ".join(zoo_parser().format_help().split())
    for name in ("benchmark", "leaderboard", "train"):
        assert "a run folder is code" in texts[name] and "pickles" in texts[name], name
    for name in ("benchmark", "train"):
        assert "run with eval" in texts[name], name
