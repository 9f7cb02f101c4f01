"""Train an SB3 agent on a MultiSpin env with rl-zoo3's flags and output layout.

    python train.py --algo ppo --env MultiSpin-Heterogeneous-v0 -n 200000 --seed 0 -P

writes ``logs/{algo}/{env}_{run}/`` (see :mod:`agents.factory` for the files).
Errors in the command line (unknown env id or algorithm, malformed ``k:v``
pairs, hyperparameters that do not fit the algorithm, bad env kwargs) print a
single ``train.py: error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.utils import set_random_seed

from agents.callbacks import GoodputEvalCallback
from agents.factory import (
    VEC_ENV_TYPES,
    EnvIdError,
    RunInfo,
    check_env_id,
    cpu_threads,
    env_name,
    make_env,
    make_train_env,
    next_run_dir,
    save_run,
    vecnormalize_path,
)
from agents.hyperparams import (
    ALGOS,
    ArgumentError,
    HyperparameterError,
    load_hyperparams,
    parse_key_values,
    process_hyperparams,
    yaml_safe,
)

DEFAULT_ENV = "MultiSpin-Heterogeneous-v0"
#: Evaluation seeds start here (+ 1000 * --seed), away from the training envs' seeds.
EVAL_SEED_OFFSET = 10_000


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``prog: error: message``), without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser(prog: str = "train.py") -> OneLineParser:
    """The command line: rl-zoo3's flag names (a subset) plus ``--eval-seed`` and ``--no-tensorboard``."""
    p = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--algo", default="ppo", help=f"RL algorithm ({', '.join(ALGOS)})")
    p.add_argument("--env", default=DEFAULT_ENV, help="registered env id")
    p.add_argument("-n", "--n-timesteps", type=int, default=-1, help="training env steps (overrides the YAML's n_timesteps)")
    p.add_argument("--seed", type=int, default=0, help="random seed (-1: draw one)")
    p.add_argument("-f", "--log-folder", default="logs", help="log folder: runs go to {log_folder}/{algo}/{env}_{run}")
    p.add_argument("--eval-freq", type=int, default=10_000, help="evaluate every n env steps (<= 0: only at start and end)")
    p.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes (one per seed)")
    p.add_argument("--eval-seed", type=int, default=None, help=f"first evaluation seed (default {EVAL_SEED_OFFSET} + 1000 * seed)")
    p.add_argument("--no-eval", action="store_true", help="no evaluation at all (no analytic baselines either)")
    p.add_argument("--baselines", nargs="*", default=None, metavar="POLICY", help="analytic policies evaluated next to the agent (default: all valid for the env; no names: none)")
    p.add_argument("--env-kwargs", nargs="+", default=None, metavar="K:V", help="gym.make kwargs, e.g. acceptance_process:markov")
    p.add_argument("-params", "--hyperparams", nargs="+", default=None, metavar="K:V", help="override hyperparameters, e.g. learning_rate:0.001")
    p.add_argument("-conf", "--conf-file", default=None, help="hyperparameter YAML (default: agents/hyperparams/{algo}.yml)")
    p.add_argument("--vec-env", default="batched", choices=list(VEC_ENV_TYPES),
                   help="VecEnv type: batched (default: the id's numpy-batched vector env, one process), dummy or subproc (SB3)")
    p.add_argument("-P", "--progress", action="store_true", help="show a progress bar (tqdm + rich)")
    p.add_argument("-tb", "--tensorboard-log", default="", help="TensorBoard folder (default: {run}/tensorboard)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events")
    p.add_argument("-i", "--trained-agent", default="", help="continue training this agent (.zip)")
    p.add_argument("--num-threads", type=int, default=1, help="PyTorch threads (-1: PyTorch's default)")
    p.add_argument("--save-freq", type=int, default=-1, help="checkpoint every n env steps (<= 0: none)")
    p.add_argument("--log-interval", type=int, default=-1, help="SB3 log interval (-1: the algorithm's default)")
    p.add_argument("--gym-packages", nargs="+", default=[], help="extra modules to import (rl-zoo3 compatibility)")
    p.add_argument("--verbose", type=int, default=1, help="0: quiet, 1: info")
    return p


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    model_path: Path
    model: BaseAlgorithm
    eval_callback: GoodputEvalCallback | None
    train_seconds: float


class TrainError(ValueError):
    """A one-line user error raised while preparing a run."""


USER_ERRORS = (TrainError, ArgumentError, HyperparameterError, EnvIdError)


def _env_error(env_id: str, exc: BaseException) -> TrainError:
    return TrainError(f"env kwargs do not fit {env_id}: {' '.join(str(exc).split())}")


def run(args: argparse.Namespace) -> TrainResult:
    """Train as ``args`` says and save the run; raises the one-line errors (see :func:`main`)."""
    import importlib

    for module in args.gym_packages:
        importlib.import_module(module)
    if args.algo not in ALGOS:
        raise TrainError(f"unknown algorithm {args.algo!r}; known: {', '.join(ALGOS)}")
    check_env_id(args.env)
    env_kwargs = parse_key_values(args.env_kwargs, "--env-kwargs pair")
    overrides = parse_key_values(args.hyperparams, "-params pair")
    if args.trained_agent and not (args.trained_agent.endswith(".zip") and Path(args.trained_agent).is_file()):
        raise TrainError(f"--trained-agent must be an existing .zip file, got {args.trained_agent!r}")
    if args.seed < 0:
        args.seed = int(np.random.randint(2**31 - 1))
    set_random_seed(args.seed)
    cpu_threads(args.num_threads)

    raw = load_hyperparams(args.algo, args.env, args.conf_file)
    # One throw-away config to learn the env kwargs, then the action size (for action noise).
    pre = process_hyperparams(args.algo, args.env, {k: v for k, v in raw.items() if k not in ("noise_type", "noise_std")},
                              {k: v for k, v in overrides.items() if k not in ("noise_type", "noise_std")}, env_kwargs, args.n_timesteps)
    try:
        eval_env = make_env(args.env, pre.env_kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise _env_error(args.env, exc) from None
    action_dim = int(np.prod(eval_env.action_space.shape or (1,)))
    if args.baselines and not args.no_eval:
        from baselines.policies import policies_for

        bad = [name for name in args.baselines if name not in policies_for(eval_env)]
        if bad:
            raise TrainError(f"unknown or invalid baseline(s) {', '.join(bad)} for {args.env}; valid: {', '.join(policies_for(eval_env))}")
    config = process_hyperparams(args.algo, args.env, raw, overrides, env_kwargs, args.n_timesteps, action_dim)

    run_dir = next_run_dir(args.log_folder, args.algo, args.env)
    params_dir = run_dir / env_name(args.env)
    params_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train(args, config, eval_env, run_dir, params_dir)
    except USER_ERRORS:
        shutil.rmtree(run_dir, ignore_errors=True)  # no half-made run folder for a user error
        raise


def _train(args: argparse.Namespace, config: Any, eval_env: Any, run_dir: Path, params_dir: Path) -> TrainResult:
    if args.no_tensorboard:
        tb_dir: Path | None = None
    elif args.tensorboard_log:
        tb_dir = Path(args.tensorboard_log) / env_name(args.env)
    else:
        tb_dir = run_dir / "tensorboard"

    vn_path = vecnormalize_path(args.trained_agent, args.env) if args.trained_agent else None
    train_env = make_train_env(config, args.seed, args.vec_env, monitor_dir=run_dir, vecnormalize_path=vn_path)
    try:
        model = _make_model(args, config, train_env, tb_dir)
    except BaseException:
        train_env.close()
        raise
    _save_config(args, config.saved, params_dir)

    callbacks: list[BaseCallback] = []
    eval_callback: GoodputEvalCallback | None = None
    if not args.no_eval:
        first = args.eval_seed if args.eval_seed is not None else EVAL_SEED_OFFSET + 1000 * args.seed
        eval_freq = max(args.eval_freq // config.n_envs, 1) if args.eval_freq > 0 else 10**12
        eval_callback = GoodputEvalCallback(
            eval_env,
            seeds=[first + i for i in range(args.eval_episodes)],
            eval_freq=eval_freq,
            log_path=run_dir,
            best_model_save_path=run_dir,
            env_name=env_name(args.env),
            baselines=args.baselines,
            eval_at_start=not args.trained_agent,
            verbose=args.verbose,
        )
        callbacks.append(eval_callback)
    if args.save_freq > 0:
        callbacks.append(CheckpointCallback(max(args.save_freq // config.n_envs, 1), str(run_dir), name_prefix="rl_model"))

    if args.verbose:
        print(f"Training {args.algo} on {args.env} for {config.n_timesteps} steps ({config.n_envs} envs), seed {args.seed}")
        print(f"Log path: {run_dir}")
    if args.progress:
        import warnings

        from tqdm import TqdmExperimentalWarning

        warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)
    learn_kwargs: dict[str, Any] = {"callback": callbacks, "progress_bar": bool(args.progress), "tb_log_name": args.algo.upper()}
    if args.log_interval > 0:
        learn_kwargs["log_interval"] = args.log_interval
    start = time.perf_counter()
    try:
        model.learn(config.n_timesteps, reset_num_timesteps=not args.trained_agent, **learn_kwargs)
    except KeyboardInterrupt:
        pass  # save what was learnt, like rl-zoo3
    seconds = time.perf_counter() - start
    model_path = save_run(model, run_dir, args.env)
    summary = {"train_seconds": seconds, "num_timesteps": int(model.num_timesteps), "fps": config.n_timesteps / max(seconds, 1e-9)}
    if eval_callback is not None and eval_callback.history:
        summary["final_goodput"] = float(eval_callback.history[-1].goodputs.mean())
        share = eval_callback.share_of_oracle(eval_callback.history[-1])
        if share is not None:
            summary["final_share_of_oracle"] = share
    (params_dir / "training.yml").write_text(yaml.safe_dump(summary, sort_keys=True))
    train_env.close()
    if args.verbose:
        print(f"Saved {model_path} ({seconds:.0f} s, {int(model.num_timesteps)} steps)")
    return TrainResult(run_dir=run_dir, model_path=model_path, model=model, eval_callback=eval_callback, train_seconds=seconds)


def _make_model(args: argparse.Namespace, config: Any, train_env: Any, tb_dir: Path | None) -> BaseAlgorithm:
    from agents.factory import build_model

    if not args.trained_agent:
        return build_model(config, train_env, args.seed, tensorboard_log=tb_dir, verbose=max(args.verbose - 1, 0))
    # Continue training: the architecture comes from the .zip, the other hyperparameters from the file/-params.
    kwargs = {k: v for k, v in config.model_kwargs.items() if k not in ("policy", "policy_kwargs")}
    cls = ALGOS[args.algo]
    try:
        model = cls.load(
            args.trained_agent,
            env=train_env,
            seed=args.seed,
            tensorboard_log=str(tb_dir) if tb_dir is not None else None,
            verbose=max(args.verbose - 1, 0),
            device="cpu",
            **kwargs,
        )
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        raise TrainError(f"cannot continue {args.trained_agent} with {args.algo}: {' '.join(str(exc).split())}") from None
    return model


def _save_config(args: argparse.Namespace, saved: dict[str, Any], params_dir: Path) -> None:
    (params_dir / "config.yml").write_text(yaml.safe_dump(yaml_safe(saved), sort_keys=True))
    ordered = OrderedDict((k, vars(args)[k]) for k in sorted(vars(args)))
    as_dict = {k: yaml_safe(v) for k, v in ordered.items()}
    as_dict["env_kwargs"] = parse_key_values(args.env_kwargs, "--env-kwargs pair") or None
    as_dict["hyperparams"] = parse_key_values(args.hyperparams, "-params pair") or None
    (params_dir / "args.yml").write_text(yaml.safe_dump(yaml_safe(as_dict), sort_keys=True))
    command = " ".join(getattr(sys, "orig_argv", sys.argv))
    (params_dir / "command.txt").write_text(command + "\n")


def main(argv: Sequence[str] | None = None, prog: str = "train.py") -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        run(args)
    except USER_ERRORS as exc:
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


__all__ = ["main", "run", "build_parser", "TrainResult", "RunInfo"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m agents.train"))
