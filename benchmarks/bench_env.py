"""Environment throughput: MultiSpin-Heterogeneous-v0 beside CartPole-v1 measured the same way, as ratios.

Three measurements, each for MultiSpin (the compiled round) and for CartPole-v1, all in the same run:

- ``gym.make`` single env: env-steps/s of a Python loop of ``step`` with pre-drawn
  random actions, resetting when an episode ends (wrappers included, as a user gets them);
- ``gym.make_vec`` with 64 and 256 sub-envs through the ``vector_entry_point``
  (MultiSpin's batched env, CartPole's CartPoleVectorEnv): env-steps/s =
  batch steps/s x num_envs (autoreset included).

Goals: single env >= 0.5x CartPole; vector env at 256 >= 0.5x CartPole's.
The machine may be shared, so time is this process's CPU time by default
(``--clock wall`` for wall time), the cases are interleaved over several rounds
and the best rate of each is kept (best-of-N is the least disturbed by background load).
The numba kernels are compiled (or loaded from numba's cache) when the envs are built, before any timing.
Prints a markdown table. Usage: ``python benchmarks/bench_env.py [--rounds 10] [--seconds 0.5]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym

try:
    import multispin_env  # registers the ids
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import multispin_env  # noqa: F401

MULTISPIN = "MultiSpin-Heterogeneous-v0"
CARTPOLE = "CartPole-v1"
GOAL = 0.5


def single_runner(env_id: str, seed: int = 0, **kwargs: object) -> Callable[[int], None]:
    """A function stepping a gym.make'd env n times with pre-drawn random actions."""
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(1024)]

    def run(steps: int) -> None:
        for i in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[i & 1023])
            if terminated or truncated:
                env.reset()

    return run


def vector_runner(env_id: str, num_envs: int, seed: int = 0, **kwargs: object) -> Callable[[int], None]:
    """A function stepping a gym.make_vec'd (vector_entry_point) env n batch steps with pre-drawn actions."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    actions = [envs.action_space.sample() for _ in range(64)]

    def run(steps: int) -> None:
        for i in range(steps):
            envs.step(actions[i & 63])

    return run


def rate(run: Callable[[int], None], seconds: float, clock: Callable[[], float] = time.process_time) -> float:
    """Calls of ``run``'s unit per second of ``clock`` over about ``seconds`` (after a short warm-up)."""
    run(20)
    steps = 50
    while True:
        start = clock()
        run(steps)
        elapsed = clock() - start
        if elapsed >= seconds:
            return steps / elapsed
        steps = int(steps * min(10.0, 1.5 * seconds / max(elapsed, 1e-6)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved repetitions; the best rate is kept")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per timed chunk")
    parser.add_argument("--clock", choices=("process", "wall"), default="process", help="CPU time or wall time")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "process" else time.perf_counter

    measurements = {
        "`gym.make` single env": (1, single_runner(MULTISPIN), single_runner(CARTPOLE)),
        "`gym.make_vec`, 64 envs": (64, vector_runner(MULTISPIN, 64), vector_runner(CARTPOLE, 64)),
        "`gym.make_vec`, 256 envs": (256, vector_runner(MULTISPIN, 256), vector_runner(CARTPOLE, 256)),
    }
    # Case (measurement, env) -> (env-steps per call, runner).
    cases: dict[tuple[str, str], tuple[int, Callable[[int], None]]] = {}
    for name, (num_envs, ours, cartpole) in measurements.items():
        cases[(name, MULTISPIN)] = (num_envs, ours)
        cases[(name, CARTPOLE)] = (num_envs, cartpole)
    best = dict.fromkeys(cases, 0.0)
    for _ in range(args.rounds):
        for case, (num_envs, run) in cases.items():
            best[case] = max(best[case], num_envs * rate(run, args.seconds, clock))

    goals = {"`gym.make` single env": GOAL, "`gym.make_vec`, 256 envs": GOAL}
    print(
        f"Env-steps per {args.clock} second, best of {args.rounds} interleaved rounds "
        f"({MULTISPIN}, K = 6, default config)\n"
    )
    print("| measurement | MultiSpin env-steps/s | CartPole-v1 env-steps/s | ratio | goal |")
    print("|---|---:|---:|---:|---|")
    for name in measurements:
        ours, cartpole = best[(name, MULTISPIN)], best[(name, CARTPOLE)]
        ratio = ours / cartpole
        goal = goals.get(name)
        verdict = "-" if goal is None else f">= {goal}x: {'met' if ratio >= goal else 'missed'}"
        print(f"| {name} | {ours:,.0f} | {cartpole:,.0f} | {ratio:.2f}x | {verdict} |")


if __name__ == "__main__":
    main()
