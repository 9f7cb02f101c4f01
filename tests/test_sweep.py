"""agents.sweep: a command fanned out over seeds as local processes (and, slow, as Ray tasks on a local Ray)."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pytest
from cli_helpers import cli_error

from agents.sweep import expand, main

# Each run writes its seed into a file named after it, and its start and end times (to see that runs overlap).
WRITE = (
    "import sys, time; t = time.time(); time.sleep(1); open(sys.argv[1], 'w').write(sys.argv[2]); "
    "open(sys.argv[1] + '.t', 'w').write(f'{t} {time.time()}')"
)


def test_expand() -> None:
    assert expand(["a", "--seed", "{seed}", "x{value}y"], "7") == ["a", "--seed", "7", "x7y"]


def test_local_runs_in_parallel_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--seeds",
            "0",
            "1",
            "-j",
            "2",
            "--log-dir",
            str(tmp_path / "logs"),
            "--",
            sys.executable,
            "-c",
            WRITE,
            str(tmp_path / "out_{seed}.txt"),
            "{seed}",
        ]
    )
    assert code == 0
    assert (tmp_path / "out_0.txt").read_text() == "0" and (tmp_path / "out_1.txt").read_text() == "1"
    (start0, end0), (start1, end1) = (map(float, (tmp_path / f"out_{i}.txt.t").read_text().split()) for i in (0, 1))
    assert start1 < end0 and start0 < end1  # the two runs overlapped
    out = capsys.readouterr().out
    assert "0: ok" in out and "1: ok" in out
    assert (tmp_path / "logs" / "run_1.log").is_file()


def test_failed_run_is_reported_and_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--values",
            "0",
            "3",
            "--log-dir",
            str(tmp_path),
            "--",
            sys.executable,
            "-c",
            "import sys; print('run', sys.argv[1]); sys.exit(int(sys.argv[1]))",
            "{value}",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "0: ok" in out and "3: FAILED (exit 3)" in out
    assert (tmp_path / "run_3.log").read_text().strip() == "run 3"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0", "python", "x"], "give the command after --"),
        (["--seeds", "0", "--"], "the command after -- is empty"),
        (["--seeds", "0", "--", "echo", "same"], "has no {seed} or {value}"),
        (["--seeds", "0", "-j", "0", "--", "echo", "{seed}"], "argument -j/--jobs: expected an integer >= 1, got 0"),
        (["--seeds", "a", "--", "echo", "{seed}"], "expected an integer, got 'a'"),
        (["--seeds", "0", "--ray", "127.0.0.1:1", "--", "echo", "{seed}"], "could not connect to Ray at '127.0.0.1:1'"),
        (["--seeds", "0", "--cpus-per-run", "nan", "--", "echo", "{seed}"], "expected a number > 0, got nan"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli_error(partial(main, prog="sweep"), argv, capsys, "sweep", message)


@pytest.mark.slow
def test_ray_tasks_on_local_ray(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    code = main(
        [
            "--ray",
            "local",
            "--seeds",
            "4",
            "5",
            "--log-dir",
            str(tmp_path / "logs"),
            "--",
            sys.executable,
            "-c",
            WRITE,
            str(tmp_path / "out_{seed}.txt"),
            "{seed}",
        ]
    )
    assert code == 0
    assert (tmp_path / "out_4.txt").read_text() == "4" and (tmp_path / "out_5.txt").read_text() == "5"
