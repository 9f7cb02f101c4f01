"""Fair baselines under stale or noisy CSI: het-opt-adaptive vs het-opt-predictive vs bandit-ucb vs the oracle.

Every policy plays the same seeds (one episode each) of each setting; the table gives the mean episode goodput
(tokens/s) with its 95% t-interval, the normalized score of the suite's tasks (docs/suite.md) and the paired
difference of het-opt-predictive and bandit-ucb to het-opt-adaptive (mean over seeds of the per-seed
difference, with its 95% t-interval). Deterministic given the seeds. Usage::

    python -m experiments.stale_csi                    # the settings of docs/baselines.md (~10 min on one core)
    python -m experiments.stale_csi --settings MultiSpinSuite/StaleCSI1-v0 --policies het-opt-adaptive het-opt-predictive
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate, mean_ci
from baselines.policies import ANALYTIC_POLICIES, make_policy
from multispin_env import suite

POLICIES: tuple[str, ...] = ("het-opt-static", "het-opt-adaptive", "het-opt-predictive", "bandit-ucb", "het-opt-oracle")
#: The policies compared to het-opt-adaptive, paired on seeds.
PAIRED: tuple[str, ...] = ("het-opt-predictive", "bandit-ucb")


@dataclass(frozen=True)
class Setting:
    """An env and its seeds: a suite task (its evaluation seeds) or the heterogeneous id with settings."""

    label: str
    env_id: str
    seeds: tuple[int, ...]
    settings: dict[str, Any] = field(default_factory=dict)


#: The fading setting of docs/results/result2-fading (where PPO beats het-opt-adaptive), then the suite's fading
#: tasks with current, stale and noisy CSI and fast fading as docs/baselines.md measured them (the stale-CSI ones
#: at version 0, Doppler 10 Hz, retired since; ``--settings MultiSpinSuite/StaleCSI1-v1`` runs the suite's).
SETTINGS: dict[str, Setting] = {
    s.label: s
    for s in (
        Setting("csi_delay=1 (result2-fading)", "MultiSpin-Heterogeneous-v0", tuple(range(30)), {"csi_delay": 1}),
        *(
            Setting(task_id, task_id, suite.task(task_id).eval_seeds)
            for task_id in (
                "MultiSpinSuite/Fading-v0",
                "MultiSpinSuite/StaleCSI1-v0",
                "MultiSpinSuite/StaleCSI3-v0",
                "MultiSpinSuite/NoisyCSI-v0",
                "MultiSpinSuite/HighMobility-v0",
            )
        ),
    )
}


def setting_for(label: str) -> Setting:
    """The setting of ``label``: one of :data:`SETTINGS`, or a suite task id on its evaluation seeds."""
    return SETTINGS.get(label) or Setting(label, label, suite.task(label).eval_seeds)


def measure(setting: Setting, policies: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-seed episode goodputs (tokens/s) of every policy on ``setting``."""
    env = gym.make(setting.env_id, **setting.settings)
    return {name: evaluate(env, make_policy(name, env), setting.seeds, name=name).goodputs for name in policies}


def table(results: dict[str, dict[str, np.ndarray]], policies: Sequence[str]) -> list[str]:
    """Markdown rows: goodput +- CI (normalized score for suite tasks), then the paired differences."""
    paired = [p for p in PAIRED if p in policies]
    diff_header = [f"{p} - het-opt-adaptive" for p in paired] if "het-opt-adaptive" in policies else []
    lines = [
        "| setting | seeds | " + " | ".join([*policies, *diff_header]) + " |",
        "|---|---:|" + "---:|" * (len(policies) + len(diff_header)),
    ]
    for label, goodputs in results.items():
        setting = setting_for(label)
        cells = []
        for name in policies:
            mean, half = mean_ci(goodputs[name])
            score = f" ({suite.normalized_score(label, mean):.0f})" if label in suite.TASK_SPECS else ""
            cells.append(f"{mean:.1f} +- {half:.1f}{score}")
        if diff_header:
            for name in paired:
                mean, half = mean_ci(goodputs[name] - goodputs["het-opt-adaptive"])
                cells.append(f"{mean:+.1f} +- {half:.1f}")
        lines.append(f"| {label} | {len(setting.seeds)} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.stale_csi", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(SETTINGS),
        help="setting labels or suite task ids (default: all of SETTINGS)",
    )
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), help="analytic policies")
    args = parser.parse_args(argv)
    bad = [p for p in args.policies if p not in ANALYTIC_POLICIES]
    bad += [s for s in args.settings if s not in SETTINGS and s not in suite.TASK_SPECS]
    if bad:
        print(f"error: unknown policy or setting {', '.join(bad)}", file=sys.stderr)
        return 2
    results = {}
    for label in args.settings:
        setting = setting_for(label)
        results[label] = measure(setting, args.policies)
        print(f"done {label}", file=sys.stderr, flush=True)
    print("\n".join(table(results, args.policies)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
