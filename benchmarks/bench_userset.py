#!/usr/bin/env python
"""Training speed of the user-set policy against plain PPO: rounds per CPU-second and per wall-second, same run.

    python benchmarks/bench_userset.py                              # K = 6, 8 chunks of 8192 rounds per agent
    python benchmarks/bench_userset.py --env-kwargs num_users:32 -n 4096 --chunks 4
    python benchmarks/bench_userset.py --zero-shot RUN --users 3 10 16 32 --episodes 20    # docs/userset.md

Both agents are set up exactly as ``train.py --algo ppo [--agent userset]`` sets them up (their hyperparameter files,
the batched vector env, wrappers and VecNormalize; no evaluation callback) and then trained in alternating chunks,
so that any background load slows both alike. CPU time is this process's (``time.process_time``, one PyTorch
thread), which background load does not inflate; the ratio userset / ppo is the figure to read.

``--zero-shot RUN`` instead plays a trained user-set model at each of ``--users`` (the model's own K included if
listed) against het-opt-oracle on the same seeded episodes (seeds ``--seed``..), and prints per K both goodputs,
the model's share of the oracle's (paired per episode, 95% half-width) and both mean draft lengths.
``--reference-users N`` replaces the model's K_train for the spectral-efficiency scaling (agents/userset.py;
``0``: no scaling, the raw observation), to measure what the scaling does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cli import OneLineParser, check_env_id, int_at_least, store_dict_or_words

AGENTS = {"ppo": "ppo.yml", "ppo --agent userset": "ppo_userset.yml"}


def setup(config: str, env_id: str, env_kwargs: dict[str, Any], seed: int) -> Any:
    """The PPO model train.py would train (its manager's set-up, no evaluation), in a temporary log folder."""
    from agents.train import HYPERPARAMS_DIR, MultiSpinExperimentManager

    manager = MultiSpinExperimentManager(
        argparse.Namespace(),
        "ppo",
        env_id,
        tempfile.mkdtemp(),
        eval_freq=-1,
        env_kwargs=env_kwargs,
        seed=seed,
        config=str(HYPERPARAMS_DIR / config),
        verbose=0,
    )
    model, _ = manager.setup_experiment()
    return model


def zero_shot(
    run: str,
    env_id: str,
    env_kwargs: dict[str, Any],
    users: list[int],
    episodes: int,
    seed: int,
    reference_users: int | None = None,
) -> list[dict[str, Any]]:
    """The user-set model of ``run`` against het-opt-oracle at each K of ``users`` on ``episodes`` seeded episodes;
    ``reference_users``: None keeps the model's K_train, 0 turns the scaling off, else replaces K_train. One dict
    per K: goodputs (tokens/s), share of the oracle (paired mean and 95% half-width), mean draft lengths."""
    from agents.benchmark import load_agent_policy, make_env, paired_comparison
    from agents.evaluation import AgentPolicy, evaluate, evaluate_analytic, evaluation_seeds
    from agents.userset import is_userset

    rows: list[dict[str, Any]] = []
    seeds = evaluation_seeds(seed, episodes)
    for k in users:
        env = make_env(env_id, {**env_kwargs, "num_users": k})
        agent = load_agent_policy(run, env)
        policy = agent.model.policy if isinstance(agent, AgentPolicy) else None
        if policy is None or not is_userset(policy):
            raise ValueError(f"--zero-shot: {run} is not a user-set model")
        if reference_users is not None:
            policy.reference_users = reference_users or None
        oracle = evaluate_analytic(env, seeds, ["het-opt-oracle"])["het-opt-oracle"]
        played = evaluate(env, agent, seeds, name="agent")
        env.close()
        share = paired_comparison(played.goodputs, oracle.goodputs)
        rows.append(
            {
                "users": k,
                "reference_users": policy.reference_users,
                "oracle_goodput": float(oracle.goodputs.mean()),
                "agent_goodput": float(played.goodputs.mean()),
                "share_of_oracle": share["ratio_mean"],
                "share_ci95": share["ratio_ci95"],
                "agent_mean_length": played.mean_draft_length,
                "oracle_mean_length": oracle.mean_draft_length,
            }
        )
        r = rows[-1]
        print(
            f"  K = {k:3d} (K_train scaling {r['reference_users']}): oracle {r['oracle_goodput']:7.2f}, agent "
            f"{r['agent_goodput']:7.2f} tokens/s, share {100 * r['share_of_oracle']:5.1f}% +- "
            f"{100 * r['share_ci95']:.1f}, mean L agent / oracle {r['agent_mean_length']:.2f} / "
            f"{r['oracle_mean_length']:.2f}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="MultiSpin-Heterogeneous-v0")
    p.add_argument("--env-kwargs", nargs="+", default={}, metavar="K:V", action=store_dict_or_words())
    p.add_argument("-n", "--chunk", type=int, default=8192, help="rounds per chunk")
    p.add_argument("--chunks", type=int, default=8, help="chunks per agent (alternating)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zero-shot", metavar="RUN", default=None, help="a trained user-set run folder or .zip")
    p.add_argument("--users", nargs="+", type=int_at_least(1), default=[3, 6, 10, 16, 32], help="with --zero-shot")
    p.add_argument("--episodes", type=int_at_least(1), default=20, help="with --zero-shot: episodes per K")
    p.add_argument(
        "--reference-users",
        type=int_at_least(0),
        default=None,
        help="with --zero-shot: K_train for the spectral-efficiency scaling (0: none; default: the model's)",
    )
    args = p.parse_args(argv)
    check_env_id(args.env)
    if args.zero_shot is not None:
        print(f"{args.zero_shot} on {args.env} {args.env_kwargs or ''}, {args.episodes} episodes from seed {args.seed}")
        try:
            zero_shot(
                args.zero_shot, args.env, args.env_kwargs, args.users, args.episodes, args.seed, args.reference_users
            )
        except (OSError, ValueError) as exc:  # no such run; BenchmarkError (unloadable run, bad env kwargs)
            p.error(str(exc))
        return 0
    import torch

    torch.set_num_threads(1)
    models = {name: setup(config, args.env, args.env_kwargs, args.seed) for name, config in AGENTS.items()}
    cpu = dict.fromkeys(models, 0.0)
    wall = dict.fromkeys(models, 0.0)
    for model in models.values():  # warm-up (first rollout, compilation): not timed
        model.learn(model.n_steps * model.n_envs, reset_num_timesteps=False)
    for _ in range(args.chunks):
        for name, model in models.items():
            c, w = time.process_time(), time.perf_counter()
            model.learn(args.chunk, reset_num_timesteps=False)
            cpu[name] += time.process_time() - c
            wall[name] += time.perf_counter() - w
    rounds = args.chunks * args.chunk
    print(f"{args.env} {args.env_kwargs or ''}: {args.chunks} x {args.chunk} rounds per agent, alternating")
    for name in models:
        params = sum(q.numel() for q in models[name].policy.parameters())
        print(
            f"  {name:<22} {rounds / cpu[name]:8.0f} rounds/CPU-s {rounds / wall[name]:8.0f} rounds/s  "
            f"({params} parameters)"
        )
    a, b = AGENTS
    print(
        f"  userset / ppo: {cpu[a] / cpu[b]:.2f} of the rounds per CPU-second, {wall[a] / wall[b]:.2f} per wall-second"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
