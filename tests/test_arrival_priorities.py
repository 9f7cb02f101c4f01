"""experiments/arrival_priorities.py: the priority-weighted P-het controllers of the arrival tasks."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from baselines.policies import make_policy
from experiments.arrival_priorities import MAX_WEIGHT, PriorityPolicy, compare, main

TASK = "MultiSpinSuite/ArrivalsLight-v1"


@pytest.mark.parametrize("rule", ["srpt", "backlog"])
def test_power_zero_plays_het_opt_oracle_and_the_weights_follow_the_rule(rule: str) -> None:
    env, twin = gym.make(TASK), gym.make(TASK)
    flat, oracle = PriorityPolicy(env, rule, 0.0), make_policy("het-opt-oracle", twin)
    weighted = PriorityPolicy(gym.make(TASK), rule, 1.0)
    obs, _ = env.reset(seed=3)
    twin.reset(seed=3)
    weighted.env.reset(seed=3)
    checked = 0
    for _ in range(60):
        action = flat.predict(obs, deterministic=True)[0]
        np.testing.assert_array_equal(action, oracle.predict(obs, deterministic=True)[0])  # weights 1: the oracle
        weighted.predict(obs, deterministic=True)
        requests = weighted.env.unwrapped.core.requests
        mean = weighted.env.unwrapped.core.config.mean_request_tokens
        left = np.maximum(requests.remaining[0], 1.0)
        need = left if rule == "srpt" else np.maximum(left + mean * requests.waiting[0], 1.0)
        expected = np.clip((mean / need) if rule == "srpt" else (need / mean), 1 / MAX_WEIGHT, MAX_WEIGHT)
        active = requests.active[0].astype(bool)
        np.testing.assert_allclose(weighted.weights[active], expected[active], rtol=1e-6)
        checked += int(active.sum())
        obs, _, terminated, truncated, _ = env.step(action)
        twin.step(action)
        weighted.env.step(action)
        if terminated or truncated:
            break
    assert checked > 0  # some rounds had requests in service


def test_the_comparison_rows_and_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file.txt").write_text("")
    rows = compare(TASK, ["srpt"], [0.0], seeds=[1000, 1001])
    assert [r["policy"] for r in rows] == ["het-opt-oracle", "srpt p=0"]
    assert rows[1]["completion_mean"] == rows[0]["completion_mean"] and rows[1]["difference"] == 0.0
    for argv, message in [
        (["--tasks", "Nope"], "unknown task(s) Nope"),
        (["--tasks", "IIDStatic"], "is not an arrival task"),
        (["--powers", "nan"], "power must be a finite number >= 0, got nan"),
        (["--powers", "1", "-0.5"], "power must be a finite number >= 0, got -0.5"),
        (["--json", str(tmp_path / "file.txt" / "rows.json")], "--json"),  # its folder is a file: refused first
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert message in line


def test_bad_settings_are_value_errors() -> None:
    with pytest.raises(ValueError, match="rule must be one of"):
        PriorityPolicy(gym.make(TASK), "fifo", 1.0)
    with pytest.raises(ValueError, match="need a heterogeneous env with request arrivals"):
        PriorityPolicy(gym.make("MultiSpin-Heterogeneous-v0"), "srpt", 1.0)
    for power in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="power must be a finite number >= 0"):
            PriorityPolicy(gym.make(TASK), "srpt", power)
