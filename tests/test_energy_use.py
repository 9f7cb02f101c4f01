"""experiments/energy_use.py: how a controller spends EnergyBudget's energy over the episode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from cli_helpers import cli_error

import multispin_env  # noqa: F401  (registers the ids)
from baselines.policies import make_policy
from experiments.energy_use import TASK, energy_use, episode_use, main
from multispin_env import suite

SEEDS = suite.task(TASK).eval_seeds[:2]


def test_the_shares_are_the_episode_s_own() -> None:
    """Replayed by hand: the budget left at half time and at the end is the info's energy_left / B after the first
    round ending at half the episode's time and after the last round, and the late tokens are those of the rounds
    that end after 80% of the episode's time."""
    env = gym.make(TASK)
    budget = env.unwrapped.core.config.energy_budget
    use = episode_use(env, make_policy("het-opt-static", env), SEEDS[0])
    policy = make_policy("het-opt-static", env)
    obs, _ = env.reset(seed=SEEDS[0])
    rounds = []
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.predict(obs)[0])
        done = terminated or truncated
        rounds.append((info["clock"], float(np.sum(info["tokens"])), info["energy_left"].copy()))
    end = rounds[-1][0]
    assert use.left_at_end == pytest.approx(float(np.mean(rounds[-1][2])) / budget)
    at_half = next(left for c, _, left in rounds if c >= 0.5 * end)  # the first round ending at half time or later
    assert use.left_at_half == pytest.approx(float(np.mean(at_half)) / budget)
    late = sum(t for c, t, _ in rounds if c > 0.8 * end) / sum(t for _, t, _ in rounds)
    assert use.late_tokens == pytest.approx(late)
    assert 0.0 <= use.left_at_end <= use.left_at_half <= 1.0 and 0.0 <= use.late_drained <= 1.0


def test_the_energy_price_keeps_more_budget_for_later() -> None:
    """het-opt-energy prices a joule (docs/model.md section 7.4): at half time it has more of the budget left than
    het-opt-static, which spends it as if it were free."""
    env = gym.make(TASK)
    priced, free = (energy_use(env, make_policy(name, env), SEEDS) for name in ("het-opt-energy", "het-opt-static"))
    assert priced.left_at_half > free.left_at_half


def test_bad_input_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    cli_error(main, ["--policies", "nope"], capsys, message="unknown policy nope")
    cli_error(main, ["--episodes", "0"], capsys, message="--episodes must be at least 1")
    cli_error(main, ["--policies", "--agents", "/nonexistent/run"], capsys, message="cannot load the agent")


def test_the_table_lists_every_controller(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--policies", "het-opt-static", "--episodes", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{TASK}, 1 evaluation episodes" and lines[-1].startswith("| het-opt-static | 0.")
