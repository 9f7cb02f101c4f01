#!/usr/bin/env python
"""What a Gaussian policy's exploration noise costs at the optimum, and which allocation it favours (docs/training.md).

    python benchmarks/bench_policy_noise.py                               # MultiSpinSuite/IIDStatic-v0, 8 episodes
    python benchmarks/bench_policy_noise.py --sigmas 0 0.05 0.1 --noise lengths
    python benchmarks/bench_policy_noise.py --agent logs/ppo/MultiSpinSuite-IIDStatic-v0_1 --sigmas 0

PPO's Gaussian policy plays its mean action plus N(0, sigma^2) noise on every action entry (in the action's
[-1, 1] units: one draft token is 2 / L_max, 0.2 for L_max = 10), and PPO improves the return of that noisy
policy, not of its mean. This script plays het-opt-oracle's allocation (docs/model.md section 8.1 encoding) as a
noisy policy would: noise on the length entries, the share entries or both (``--noise``), then clipping into
[-1, 1] and the training's unbiased stochastic rounding of the lengths (agents/wrappers.py), and with the
lengths of the users to which the oracle gives the fewest tokens (its shortest drafts, the slow devices on
IIDStatic) moved by ``--offsets`` tokens (-1 with L = 1 excludes them: L = 0). Goodput = tokens / clock per
episode (eq. (5) as the env measures it), mean over the episodes (seeds 10000.., common to every cell), printed
as a share of the noise-free oracle's. ``--agent RUN`` also prints a trained agent's allocation (its mean action,
deterministic) next to the oracle's on the same episodes, per user, and the policy's noise std per action entry.
Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import multispin_env  # noqa: F401  (registers the environments)
from agents.cli import check_env_id, int_at_least, store_dict_or_words
from agents.evaluation import evaluation_seeds
from agents.wrappers import stochastic_round
from baselines.policies import make_policy


def noisy_goodput(
    env: gym.Env, sigma: float, offset: float, moved: np.ndarray, noise: str, seeds: list[int], rng: np.random.Generator
) -> float:
    """Mean episode goodput (tokens/s) of het-opt-oracle's actions with the ``moved`` users' lengths shifted by
    ``offset`` tokens and N(0, ``sigma``^2) noise on the ``noise`` entries ("lengths", "shares" or "all")."""
    base = env.unwrapped
    k, half = base.num_users, base.max_draft / 2.0
    oracle = make_policy("het-opt-oracle", env)
    scale = np.r_[np.full(k, float(noise != "shares")), np.full(k, float(noise != "lengths"))]
    goodputs = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        oracle.reset()
        tokens = 0.0
        while True:
            action = np.array(oracle.predict(obs)[0], dtype=np.float64)
            action[:k] += moved * offset / half
            action = np.clip(action + sigma * scale * rng.standard_normal(action.shape), -1.0, 1.0)
            if sigma > 0:  # the training's rounding (VecStochasticRounding); without noise the env's own
                action[:k] = stochastic_round((action[:k] + 1.0) * half, rng) / half - 1.0
            obs, _, terminated, truncated, info = env.step(action.astype(np.float32))
            tokens += float(np.sum(info["tokens"]))
            if terminated or truncated:
                goodputs.append(tokens / float(info["clock"]))
                break
    return float(np.mean(goodputs))


def compare_allocations(env: gym.Env, run: str, seeds: list[int]) -> None:
    """Per user: mean draft length and bandwidth share (docs/model.md section 8.1) of the saved agent ``run`` and of
    het-opt-oracle over the rounds of the ``seeds`` episodes (each policy plays its own episode), and the agent's
    exploration std per action entry (a state-independent Gaussian policy)."""
    import torch

    from agents.benchmark import load_agent_policy

    base = env.unwrapped
    agent = load_agent_policy(run, env)
    for name, policy in (("agent", agent), ("het-opt-oracle", make_policy("het-opt-oracle", env))):
        lengths, shares = [], []
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            policy.reset()
            while True:
                action = policy.predict(obs, deterministic=True)[0]
                obs, _, terminated, truncated, info = env.step(action)
                lengths.append(info["draft_lengths"])
                shares.append(info["bandwidth"])
                if terminated or truncated:
                    break
        print(
            f"{name:>15}: mean L_k {np.round(np.mean(lengths, axis=0), 2).tolist()}, "
            f"mean b_k {np.round(np.mean(shares, axis=0), 3).tolist()}"
        )
    log_std = getattr(getattr(agent, "model", None), "policy", None)
    if log_std is not None and hasattr(log_std, "log_std"):
        std = torch.exp(log_std.log_std).detach().numpy().astype(np.float64)
        print(
            f"{'agent std':>15}: lengths {np.round(std[: base.num_users], 3).tolist()}, "
            f"shares {np.round(std[base.num_users :], 3).tolist()} (action units)"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_policy_noise.py", description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MultiSpinSuite/IIDStatic-v0")
    p.add_argument("--env-kwargs", nargs="+", default={}, metavar="K:V", action=store_dict_or_words())
    p.add_argument("--episodes", type=int_at_least(1), default=8, help="episodes per cell (seeds 10000..)")
    p.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=[0.0, 0.03, 0.05, 0.1, 0.2, 0.32],
        help="noise std in action units (PPO's log_std_init -1.0 starts at 0.37)",
    )
    p.add_argument(
        "--offsets",
        type=float,
        nargs="+",
        default=[-1.0, 0.0, 1.0],
        help="tokens added to the lengths of the users with the oracle's shortest drafts",
    )
    p.add_argument(
        "--noise", choices=["all", "lengths", "shares"], default="all", help="which action entries are noisy"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument(
        "--agent", default=None, metavar="RUN", help="also compare this saved agent's allocation with the oracle's"
    )
    args = p.parse_args(argv)
    if any(s < 0 for s in args.sigmas):
        p.error(f"--sigmas must be >= 0, got {args.sigmas}")
    check_env_id(args.env)
    env = gym.make(args.env, **args.env_kwargs)
    obs, _ = env.reset(seed=10_000)
    lengths, shares = env.unwrapped.decode_action(make_policy("het-opt-oracle", env).predict(obs)[0])
    moved = (lengths == lengths.min()).astype(np.float64)
    seeds = evaluation_seeds(10_000, args.episodes)
    if args.agent is not None:
        compare_allocations(env, args.agent, seeds)
    rng = np.random.default_rng(args.seed)
    reference = noisy_goodput(env, 0.0, 0.0, moved, args.noise, seeds, rng)
    print(
        f"{args.env}: het-opt-oracle's first allocation L = {lengths.tolist()}, b = {np.round(shares, 3).tolist()}; "
        f"noise-free goodput {reference:.2f} tokens/s; moved users {np.flatnonzero(moved).tolist()}; noise on {args.noise}"
    )
    print("| sigma | " + " | ".join(f"offset {o:+g}" for o in args.offsets) + " |")
    print("|---:|" + "---:|" * len(args.offsets))
    for sigma in args.sigmas:
        row = [noisy_goodput(env, sigma, o, moved, args.noise, seeds, rng) / reference for o in args.offsets]
        print(f"| {sigma:g} | " + " | ".join(f"{100 * r:.1f}%" for r in row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
