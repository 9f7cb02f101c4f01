"""How controllers spend the energy budget over an episode (EnergyBudget, docs/model.md section 5.7).

    python -m experiments.energy_use --policies het-opt-static het-opt-energy --agents RUN [RUN ...]

Plays each analytic policy and each saved agent (a run folder or .zip, as ``agents.benchmark --agents``) on the
task's evaluation seeds (``--episodes`` of them) and prints, averaged over the episodes and the devices: the share
of the budget B left at half the episode's time and at its end, the share of the episode's tokens produced in its last
20% of time, and the share of the rounds of that last 20% in which some device had less than 2% of its budget left
(it can then hardly draft). A controller that rations the budget keeps more of it for the end.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import multispin_env  # noqa: F401  (registers the ids)
from agents.cli import OneLineParser
from agents.evaluation import play_episode
from baselines.policies import ANALYTIC_POLICIES, make_policy
from baselines.protocol import Policy
from multispin_env import suite
from multispin_env.spaces import MultiSpinEnvAPI

TASK = "MultiSpinSuite/EnergyBudget-v0"
#: A device with less than this share of its budget left counts as drained.
DRAINED = 0.02
#: The episode's last part whose tokens and drained rounds are reported (share of its time).
LATE = 0.2


@dataclass(frozen=True)
class EnergyUse:
    """Averages over episodes (shares in [0, 1])."""

    left_at_half: float
    left_at_end: float
    late_tokens: float
    late_drained: float


def episode_use(env: gym.Env, policy: Policy, seed: int) -> EnergyUse:
    """One episode of ``policy`` from ``env.reset(seed=seed)``: its :class:`EnergyUse`.

    :param env: an env with an energy budget (its info has ``energy_left``, J)
    """
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, MultiSpinEnvAPI)
    budget = unwrapped.core.config.energy_budget
    if budget is None:
        raise ValueError(f"{unwrapped.spec.id if unwrapped.spec else 'the env'} has no energy budget")
    clock, left, tokens = [], [], []
    for _, _, info in play_episode(env, policy, seed):
        clock.append(info["clock"])
        left.append(np.asarray(info["energy_left"]) / budget)
        tokens.append(float(np.sum(info["tokens"])))
    times, shares, counts = np.array(clock), np.array(left), np.array(tokens)
    late = times > (1.0 - LATE) * times[-1]
    half = min(int(np.searchsorted(times, 0.5 * times[-1])), times.size - 1)
    return EnergyUse(
        left_at_half=float(shares[half].mean()),
        left_at_end=float(shares[-1].mean()),
        late_tokens=float(counts[late].sum() / counts.sum()),
        late_drained=float((shares[late] < DRAINED).any(axis=1).mean()),
    )


def energy_use(env: gym.Env, policy: Policy, seeds: Sequence[int]) -> EnergyUse:
    """:func:`episode_use` averaged over the episodes of ``seeds``."""
    uses = [episode_use(env, policy, seed) for seed in seeds]
    return EnergyUse(*(float(np.mean([getattr(u, f) for u in uses])) for f in EnergyUse.__dataclass_fields__))


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m experiments.energy_use", description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="*", default=["het-opt-static", "het-opt-energy"], help="analytic policies")
    parser.add_argument("--agents", nargs="*", default=[], help="saved agents (run folders or .zip files)")
    parser.add_argument("--episodes", type=int, default=None, help="the first N evaluation seeds (default: all)")
    args = parser.parse_args(argv)
    bad = [p for p in args.policies if p not in ANALYTIC_POLICIES]
    if bad:
        parser.error(f"unknown policy {', '.join(bad)}")
    if args.episodes is not None and args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    seeds = suite.task(TASK).eval_seeds[: args.episodes]
    env = gym.make(TASK)
    entries: list[tuple[str, Policy]] = [(name, make_policy(name, env)) for name in args.policies]
    if args.agents:
        from agents.benchmark import BenchmarkError, load_agent_policy

        for path in args.agents:
            try:
                entries.append((str(path), load_agent_policy(path, env)))
            except (BenchmarkError, OSError, ValueError) as exc:
                parser.error(f"cannot load the agent {path}: {exc}")
    print(f"{TASK}, {len(seeds)} evaluation episodes")
    print("| controller | budget left at half time | at the end | tokens in the last 20% | drained rounds of it |")
    print("|---|---:|---:|---:|---:|")
    for name, policy in entries:
        use = energy_use(env, policy, seeds)
        print(
            f"| {name} | {use.left_at_half:.2f} | {use.left_at_end:.2f} | {100 * use.late_tokens:.1f}% "
            f"| {100 * use.late_drained:.0f}% |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
