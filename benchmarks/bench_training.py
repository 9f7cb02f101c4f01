#!/usr/bin/env python
"""Where PPO's training time goes (the environment vs the learner), and ppo.yml against ppo_fast.yml.

    python benchmarks/bench_training.py                      # ppo.yml, heterogeneous id, 200k steps
    python benchmarks/bench_training.py --algo sac -n 5000   # any algorithm / budget
    python benchmarks/bench_training.py --env-kwargs acceptance_process:markov --json results/bench_training.json
    python benchmarks/bench_training.py --compare -n 150000 --env MultiSpinSuite/IIDStatic-v0   # docs/training.md
    python benchmarks/bench_training.py --compare -n 150000 --fast-timesteps 750000 --env MultiSpinSuite/IIDStatic-v0

``--compare`` trains agents/hyperparams/ppo.yml and ppo_fast.yml one after the other (same env, seed and, unless
``--fast-timesteps`` gives ppo_fast.yml its own, budget) and prints, for each, rounds per CPU-second
(``time.process_time`` around ``model.learn``: shared cores inflate it far less than wall time) and
the trained agent's share of the oracle's goodput on ``--eval-episodes`` seeded episodes, then the ratios.
``--fast-timesteps`` compares at (about) equal CPU time instead of equal rounds: ppo_fast.yml trains that many
rounds (e.g. 5x ``-n``) and the CPU-seconds of both runs are printed side by side, so that the comparison states
which of the two used less.

Two timers, nested, measure the share of ``model.learn`` wall time spent
(a) in ``MultiSpinEnv.step``/``reset`` themselves (a gym wrapper directly around
each env), and (b) in the whole vectorised env stack SB3 steps (DummyVecEnv +
Monitor + training wrappers + the envs; a VecEnvWrapper under VecNormalize).
With ``--vec-env batched`` the id's compiled, batched vector env (same-step
autoreset, through :mod:`agents.vec_env`) is timed instead.
Everything else -- policy forward passes, rollout buffer, gradient steps,
VecNormalize, logging -- is the learner. No evaluation callback runs, so the
shares are those of training proper. The training setup is train.py's (same
hyperparameter file and rl-zoo3 processing, wrappers, VecNormalize, one PyTorch thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper, VecMonitor, VecNormalize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cli import OneLineParser, check_env_id, int_at_least, store_dict_or_words


class _TimedStepReset:
    """Adds the wall time (s) of the wrapped ``env``'s ``step`` and ``reset`` to a shared list cell."""

    env: Any
    cell: list[float]

    def step(self, action: Any) -> Any:
        t = time.perf_counter()
        out = self.env.step(action)
        self.cell[0] += time.perf_counter() - t
        return out

    def reset(self, **kwargs: Any) -> Any:
        t = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.cell[0] += time.perf_counter() - t
        return out


class StepTimer(_TimedStepReset, gym.Wrapper):
    """Wall time of the wrapped env's ``step`` and ``reset`` (s)."""

    def __init__(self, env: gym.Env, cell: list[float]) -> None:
        super().__init__(env)
        self.cell = cell


class VecTimer(VecEnvWrapper):
    """Wall time of the whole VecEnv stack below it: ``reset`` and ``step_async`` + ``step_wait`` (s)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.seconds = 0.0
        self.steps = 0

    def reset(self) -> Any:
        t = time.perf_counter()
        out = self.venv.reset()
        self.seconds += time.perf_counter() - t
        return out

    def step_async(self, actions: np.ndarray) -> None:
        t = time.perf_counter()
        self.venv.step_async(actions)
        self.seconds += time.perf_counter() - t

    def step_wait(self) -> Any:
        t = time.perf_counter()
        out = self.venv.step_wait()
        self.seconds += time.perf_counter() - t
        self.steps += self.num_envs
        return out


class VectorStepTimer(_TimedStepReset, gym.vector.VectorWrapper):
    """Wall time of a Gymnasium vector env's own ``step`` and ``reset`` (s), for ``--vec-env batched``."""

    def __init__(self, env: gym.vector.VectorEnv, cell: list[float]) -> None:
        super().__init__(env)
        self.cell = cell


def share_of_oracle(model: Any, env_id: str, env_kwargs: dict[str, Any], episodes: int, seed: int) -> dict[str, Any]:
    """Goodput of the trained ``model`` (deterministic) and of the oracle on the same ``episodes`` seeded episodes
    (the benchmark's seeds from 10000 + ``seed``, away from the training envs'), tokens/s, and their ratio."""
    from agents.evaluation import AgentPolicy, evaluate, evaluate_analytic, evaluation_seeds, oracle_name
    from baselines.policies import policies_for

    env = gym.make(env_id, **env_kwargs)
    seeds = evaluation_seeds(10_000 + seed, episodes)
    oracle = oracle_name(policies_for(env))
    assert oracle is not None
    reference = evaluate_analytic(env, seeds, [oracle])[oracle].goodputs.mean()
    agent = evaluate(env, AgentPolicy(model, model.get_vec_normalize_env()), seeds).goodputs.mean()
    env.close()
    return {
        "oracle": oracle,
        "eval_episodes": episodes,
        "agent_goodput": float(agent),
        "oracle_goodput": float(reference),
        "share_of_oracle": float(agent / reference),
    }


def profile(
    algo: str,
    env_id: str,
    n_timesteps: int,
    env_kwargs: dict[str, Any],
    overrides: dict[str, Any],
    seed: int = 0,
    vec_env: str = "dummy",
    num_threads: int = 1,
    eval_episodes: int = 0,
    config: str | None = None,
) -> dict[str, Any]:
    """Train ``algo`` for ``n_timesteps`` with timers in place; returns the timing breakdown (s and shares), the CPU
        time of ``model.learn`` (s, ``time.process_time``: all threads of this process) and, if ``eval_episodes`` > 0,
        the trained agent's share of the oracle's goodput (:func:`share_of_oracle`). ``config``: the hyperparameter file
    (default ``agents/hyperparams/{algo}.yml``)."""
    import tempfile

    import torch
    from rl_zoo3.utils import ALGOS

    from agents.train import HYPERPARAMS_DIR, MultiSpinExperimentManager

    check_env_id(env_id)
    torch.set_num_threads(num_threads)
    # train.py's hyperparameter processing (rl-zoo3's), without its envs: ours carry the timers.
    manager = MultiSpinExperimentManager(
        argparse.Namespace(),
        algo,
        env_id,
        tempfile.mkdtemp(),
        n_timesteps=n_timesteps,
        eval_freq=-1,
        hyperparams=overrides,
        env_kwargs=env_kwargs,
        seed=seed,
        vec_env_type=vec_env,
        config=config or str(HYPERPARAMS_DIR / f"{algo}.yml"),
        verbose=0,
    )
    raw, saved = manager.read_hyperparameters()
    hyperparams, env_wrapper, _, vec_env_wrapper = manager._preprocess_hyperparams(raw)
    n_envs, env_kwargs = manager.n_envs, manager.env_kwargs
    cell = [0.0]  # in-process envs only: with subproc the inner timer is not visible here
    venv: VecEnv
    if vec_env == "batched":
        from agents.vec_env import GymnasiumVecEnv

        inner = gym.make_vec(
            env_id,
            num_envs=n_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
            **env_kwargs,
        )
        venv = VecMonitor(GymnasiumVecEnv(VectorStepTimer(inner, cell)))
        venv.seed(seed)
    else:

        def make(**kw: Any) -> gym.Env:
            env = StepTimer(gym.make(env_id, **kw), cell)
            return env_wrapper(env) if env_wrapper is not None else env

        venv = make_vec_env(
            make,
            n_envs=n_envs,
            seed=seed,
            env_kwargs=env_kwargs,
            vec_env_cls=SubprocVecEnv if vec_env == "subproc" else DummyVecEnv,
        )
    timer = VecTimer(venv)
    env: VecEnv = timer if vec_env_wrapper is None else vec_env_wrapper(timer)
    if manager.normalize:
        env = VecNormalize(env, **manager.normalize_kwargs)
    hyperparams = manager._preprocess_action_noise(hyperparams, saved, env)
    model = ALGOS[algo](env=env, seed=seed, device="cpu", **hyperparams)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(manager.n_timesteps)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    env_seconds = cell[0] if vec_env != "subproc" else float("nan")
    share = share_of_oracle(model, env_id, env_kwargs, eval_episodes, seed) if eval_episodes > 0 else {}
    env.close()
    return {
        **share,
        "algo": algo,
        "config": Path(config or HYPERPARAMS_DIR / f"{algo}.yml").name,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "vec_env": vec_env,
        "n_envs": n_envs,
        "timesteps": int(model.num_timesteps),
        "learn_seconds": total,
        "learn_cpu_seconds": cpu,
        "steps_per_second": model.num_timesteps / total,
        "steps_per_cpu_second": model.num_timesteps / max(cpu, 1e-9),
        "env_step_seconds": env_seconds,
        "vec_env_seconds": timer.seconds,
        "env_share": env_seconds / total,
        "vec_env_share": timer.seconds / total,
        "learner_share": 1.0 - timer.seconds / total,
        "env_microseconds_per_step": 1e6 * env_seconds / max(timer.steps, 1),
    }


def env_throughput(
    env_id: str, env_kwargs: dict[str, Any], n_envs: int, steps: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Microseconds per env step (one sub-env, one round) of the single env and of the batched vector env.

    Random actions; the single env is stepped through ``gym.make`` (with its default wrappers) and reset on
    truncation, the vector env (``gym.make_vec``, vector entry point) autoresets itself.
    """
    rng = np.random.default_rng(seed)
    env = gym.make(env_id, **env_kwargs)
    env.reset(seed=seed)
    actions = rng.uniform(-1, 1, (steps, *env.action_space.shape)).astype(np.float32)
    t = time.perf_counter()
    for a in actions:
        if env.step(a)[3]:
            env.reset()
    single = 1e6 * (time.perf_counter() - t) / steps
    env.close()
    venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    venv.reset(seed=seed)
    batch = rng.uniform(-1, 1, (steps // n_envs + 1, n_envs, *venv.single_action_space.shape)).astype(np.float32)
    t = time.perf_counter()
    for a in batch:
        venv.step(a)
    batched = 1e6 * (time.perf_counter() - t) / (len(batch) * n_envs)
    venv.close()
    return {"single_env_us_per_step": single, "batched_env_us_per_step": batched, "n_envs": float(n_envs)}


def print_profile(result: dict[str, Any]) -> None:
    """The timing breakdown of one :func:`profile` result."""
    print(
        f"{result['algo']} on {result['env_id']} {result['env_kwargs'] or ''} ({result['vec_env']}): {result['timesteps']} steps in "
        f"{result['learn_seconds']:.1f} s wall, {result['learn_cpu_seconds']:.1f} s CPU ({result['steps_per_second']:.0f} steps/s, "
        f"{result['steps_per_cpu_second']:.0f} steps per CPU-second, {result['n_envs']} envs)"
    )
    print(
        f"  env.step/reset          {result['env_step_seconds']:7.2f} s  {100 * result['env_share']:5.1f}%  "
        f"({result['env_microseconds_per_step']:.0f} us/step)"
    )
    print(f"  VecEnv stack (+Monitor) {result['vec_env_seconds']:7.2f} s  {100 * result['vec_env_share']:5.1f}%")
    print(
        f"  learner (rest)          {result['learn_seconds'] - result['vec_env_seconds']:7.2f} s  {100 * result['learner_share']:5.1f}%"
    )
    if "share_of_oracle" in result:
        print(
            f"  final goodput {result['agent_goodput']:.2f} tokens/s = {100 * result['share_of_oracle']:.1f}% of {result['oracle']} "
            f"({result['oracle_goodput']:.2f}) on {result['eval_episodes']} episodes"
        )


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """``agents/hyperparams/ppo.yml`` and ``ppo_fast.yml`` trained one after the other with the same env, seed and
    ``-params`` overrides, ppo.yml for ``args.n_timesteps`` rounds and ppo_fast.yml for ``args.fast_timesteps``
    (None: the same); returns both results and the ratios (fast / ppo.yml)."""
    from agents.train import HYPERPARAMS_DIR

    runs = {}
    budgets = {"ppo": args.n_timesteps, "ppo_fast": args.fast_timesteps or args.n_timesteps}
    for name in ("ppo", "ppo_fast"):
        print(f"== agents/hyperparams/{name}.yml, {budgets[name]} rounds", flush=True)
        runs[name] = profile(
            "ppo",
            args.env,
            budgets[name],
            args.env_kwargs,
            dict(args.hyperparams),
            args.seed,
            args.vec_env,
            args.num_threads,
            args.eval_episodes,
            str(HYPERPARAMS_DIR / f"{name}.yml"),
        )
        print_profile(runs[name])
    ref, cur = runs["ppo"], runs["ppo_fast"]
    speed = cur["steps_per_cpu_second"] / ref["steps_per_cpu_second"]
    out: dict[str, Any] = {
        **runs,
        "steps_per_cpu_second_ratio": speed,
        "steps_per_second_ratio": cur["steps_per_second"] / ref["steps_per_second"],
        "timesteps_ratio": cur["timesteps"] / ref["timesteps"],
        "cpu_seconds_ratio": cur["learn_cpu_seconds"] / ref["learn_cpu_seconds"],
    }
    print(
        f"ppo_fast / ppo: {speed:.2f}x steps per CPU-second, {out['steps_per_second_ratio']:.2f}x steps per wall second; "
        f"{out['timesteps_ratio']:.2f}x the rounds in {out['cpu_seconds_ratio']:.2f}x the CPU time "
        f"({cur['learn_cpu_seconds']:.1f} against {ref['learn_cpu_seconds']:.1f} CPU-s)",
        end="",
    )
    if "share_of_oracle" in cur:
        out["share_of_oracle_difference"] = cur["share_of_oracle"] - ref["share_of_oracle"]
        print(
            f"; final share of {cur['oracle']} {100 * cur['share_of_oracle']:.1f}% against {100 * ref['share_of_oracle']:.1f}% "
            f"({100 * out['share_of_oracle_difference']:+.1f} points)",
            end="",
        )
    print()
    return out


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", default="ppo")
    p.add_argument("--env", default="MultiSpin-Heterogeneous-v0")
    p.add_argument("-n", "--n-timesteps", type=int, default=200_000)
    p.add_argument("--env-kwargs", nargs="+", default={}, metavar="K:V", action=store_dict_or_words())
    p.add_argument("-params", "--hyperparams", nargs="+", default={}, metavar="K:V", action=store_dict_or_words())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vec-env", default="batched", choices=["dummy", "subproc", "batched"])
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument(
        "--eval-episodes",
        type=int_at_least(0),
        default=10,
        help="episodes on which the trained agent is scored against the oracle (0: not scored)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="train agents/hyperparams/ppo.yml and ppo_fast.yml side by side (PPO; --algo is ignored)",
    )
    p.add_argument(
        "--fast-timesteps",
        type=int_at_least(1),
        default=None,
        help="with --compare: rounds for ppo_fast.yml (default: -n, equal rounds); e.g. 5x -n for about equal CPU time",
    )
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    if args.fast_timesteps is not None and not args.compare:
        p.error("--fast-timesteps needs --compare")
    if args.compare:
        result = compare(args)
    else:
        result = profile(
            args.algo,
            args.env,
            args.n_timesteps,
            args.env_kwargs,
            args.hyperparams,
            args.seed,
            args.vec_env,
            args.num_threads,
            args.eval_episodes,
        )
        print_profile(result)
        # What the env share would be if the same learner stepped the compiled, batched vector env instead.
        thr = env_throughput(args.env, args.env_kwargs, result["n_envs"], seed=args.seed)
        learner_us = 1e6 * (result["learn_seconds"] - result["vec_env_seconds"]) / max(result["timesteps"], 1)
        overhead_us = 1e6 * (result["vec_env_seconds"] - result["env_step_seconds"]) / max(result["timesteps"], 1)
        projected = thr["batched_env_us_per_step"] / (learner_us + thr["batched_env_us_per_step"])
        result.update(
            thr,
            learner_us_per_step=learner_us,
            vec_overhead_us_per_step=overhead_us,
            projected_batched_env_share=projected,
        )
        print(
            f"  env alone: {thr['single_env_us_per_step']:.0f} us/step single, {thr['batched_env_us_per_step']:.0f} us/step batched "
            f"({result['n_envs']} envs); learner {learner_us:.0f} us/step -> projected env share with the batched env "
            f"{100 * projected:.1f}%"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
