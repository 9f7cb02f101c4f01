"""benchmarks/bench_training.py --compare: each configuration trains its own budget; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from cli_helpers import cli_error, load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_training.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(SCRIPT)


@pytest.mark.slow
def test_compare_trains_each_configuration_for_its_own_budget(bench: ModuleType, tmp_path: Path) -> None:
    """ppo.yml trains -n rounds, ppo_fast.yml --fast-timesteps (whole rollouts: 8 x 128 and 256 x 16 rounds)."""
    out = tmp_path / "compare.json"
    argv = ["--compare", "-n", "1024", "--fast-timesteps", "8192", "--eval-episodes", "0", "--json", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["ppo"]["timesteps"] == 1024
    assert result["ppo_fast"]["timesteps"] == 8192
    assert result["timesteps_ratio"] == pytest.approx(8.0)
    cpu = result["ppo_fast"]["learn_cpu_seconds"] / result["ppo"]["learn_cpu_seconds"]
    assert result["cpu_seconds_ratio"] == pytest.approx(cpu)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fast-timesteps", "4096"], "--fast-timesteps needs --compare"),
        (["--compare", "--fast-timesteps", "0"], "expected an integer >= 1"),
    ],
)
def test_fast_timesteps_errors_are_one_line(
    bench: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_error(bench.main, argv, capsys, None, message)
