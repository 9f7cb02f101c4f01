#!/usr/bin/env python
"""Training speed of the user-set policy against plain PPO: rounds per CPU-second and per wall-second, same run.

    python benchmarks/bench_userset.py                              # K = 6, 8 chunks of 8192 rounds per agent
    python benchmarks/bench_userset.py --env-kwargs num_users:32 -n 4096 --chunks 4

Both agents are set up exactly as ``train.py --algo ppo [--agent userset]`` sets them up (their hyperparameter files,
the batched vector env, wrappers and VecNormalize; no evaluation callback) and then trained in alternating chunks,
so that any background load slows both alike. CPU time is this process's (``time.process_time``, one PyTorch
thread), which background load does not inflate; the ratio userset / ppo is the figure to read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cli import check_env_id, store_dict_or_words

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="MultiSpin-Heterogeneous-v0")
    p.add_argument("--env-kwargs", nargs="+", default={}, metavar="K:V", action=store_dict_or_words())
    p.add_argument("-n", "--chunk", type=int, default=8192, help="rounds per chunk")
    p.add_argument("--chunks", type=int, default=8, help="chunks per agent (alternating)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    check_env_id(args.env)
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
