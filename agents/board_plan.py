"""A leaderboard's training plan: which agents train on which tasks with which until-flat schedule.

A board whose agents need different schedules (a residual agent is flat after its first chunk, a policy learned
from scratch is held to millions of rounds on the tasks whose metric spans the episode) is one plan file, run by one
command (``multispin-leaderboard --plan FILE``, docs/leaderboard.md)::

    seeds: [0, 1, 2, 3, 4]          # training seeds of every group (default: DEFAULT_SEEDS)
    groups:
      - agents: [ppo_fast]
        tasks: [EnergyBudget, Fairness]  # suite names or ids; omitted: every task of the suite
        timesteps: 400000           # the first chunk, env steps (--timesteps)
        min_timesteps: 3200000      # steps before a run may be called flat (--min-timesteps; default none)
        max_timesteps: 6400000      # the cap (--max-timesteps; default 16 x the first chunk)

Every group trains until flat (``--until-flat``); every analytic controller is evaluated on every task of the plan.
An (agent, task) pair in two groups is an error: its runs would be trained into one folder twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.cli import UserError

#: A group's keys: the leaderboard option each one sets (the value's type is checked by the option's own parser).
GROUP_OPTIONS = {
    "agents": "--agents",
    "tasks": "--tasks",
    "timesteps": "--timesteps",
    "min_timesteps": "--min-timesteps",
    "max_timesteps": "--max-timesteps",
}
PLAN_KEYS = ("seeds", "groups")


@dataclass(frozen=True)
class BoardPlan:
    """A parsed plan file.

    :param seeds: the training seeds of every group
    :param groups: each group's leaderboard options (``--agents``, ``--tasks``, the schedule), as argv fragments
    """

    seeds: tuple[int, ...]
    groups: tuple[tuple[str, ...], ...]


def _values(value: Any, where: str) -> list[str]:
    """A scalar or a list of scalars as strings (the option's parser checks them)."""
    items = value if isinstance(value, list) else [value]
    if not items or any(isinstance(v, (dict, list)) or v is None or isinstance(v, bool) for v in items):
        raise UserError(f"{where} must be a value or a non-empty list of values, got {value!r}")
    # The values become option arguments: a text starting with '-' would be read as an option (-h, --agents ...).
    option = next((v for v in items if isinstance(v, str) and v.startswith("-")), None)
    if option is not None:
        raise UserError(f"{where}: {option!r} is not a value (a name or number; it would be read as an option)")
    return [str(v) for v in items]


def read_plan(path: str | Path) -> BoardPlan:
    """Parse and check the plan file ``path`` (its structure; the leaderboard checks the values as options);
    raises :class:`UserError` naming what is wrong."""
    from agents.runs import RunFileError, read_yaml

    try:
        data = read_yaml(path)
    except RunFileError as exc:
        raise UserError(f"--plan: {exc}") from None
    unknown = [k for k in data if k not in PLAN_KEYS]
    if unknown:
        raise UserError(f"--plan {path}: unknown key(s) {', '.join(map(str, unknown))}; keys: {', '.join(PLAN_KEYS)}")
    from agents.leaderboard import DEFAULT_SEEDS

    seeds = _values(data.get("seeds", list(DEFAULT_SEEDS)), f"--plan {path}: seeds")
    if not all(s.isascii() and s.isdigit() for s in seeds):
        raise UserError(f"--plan {path}: seeds must be integers >= 0, got {', '.join(seeds)}")
    groups = data.get("groups")
    if not isinstance(groups, list) or not groups:
        raise UserError(f"--plan {path}: 'groups' must be a non-empty list of groups")
    argvs = []
    for i, group in enumerate(groups, start=1):
        where = f"--plan {path}: group {i}"
        if not isinstance(group, dict):
            raise UserError(f"{where} must be a mapping of {', '.join(GROUP_OPTIONS)}")
        bad = [k for k in group if k not in GROUP_OPTIONS]
        if bad:
            raise UserError(f"{where}: unknown key(s) {', '.join(map(str, bad))}; keys: {', '.join(GROUP_OPTIONS)}")
        if "agents" not in group:
            raise UserError(f"{where}: 'agents' is missing (the agents this group trains)")
        argv: list[str] = []
        for key, flag in GROUP_OPTIONS.items():
            if key in group:
                argv += [flag, *_values(group[key], f"{where}: {key}")]
        argvs.append(tuple(argv))
    return BoardPlan(tuple(int(s) for s in seeds), tuple(argvs))


def check_no_overlap(groups: Sequence[tuple[Sequence[str], Sequence[str]]]) -> None:
    """``groups``: each group's (agents, resolved tasks); an (agent, task) pair in two groups raises
    :class:`UserError`."""
    seen: dict[tuple[str, str], int] = {}
    for i, (agents, tasks) in enumerate(groups, start=1):
        for agent in agents:
            for task in tasks:
                if (agent, task) in seen:
                    raise UserError(
                        f"--plan: {agent} on {task} is in groups {seen[(agent, task)]} and {i} "
                        "(its runs would train into one folder twice)"
                    )
                seen[(agent, task)] = i


__all__ = ["GROUP_OPTIONS", "BoardPlan", "check_no_overlap", "read_plan"]
