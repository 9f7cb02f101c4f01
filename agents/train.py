"""``train.py`` / ``multispin-train``: rl-zoo3's training command with the MultiSpin extension points.

Every rl-zoo3 flag works (``python -m rl_zoo3.train --help``), including ``--optimize``,
``--n-trials``, ``--storage``/``--study-name``, ``-i``, ``--save-freq`` and ``-P``; the
algorithms are rl-zoo3's (SB3 and sb3-contrib: ``ppo_lstm``, ``tqc``...). What is ours:

- :class:`MultiSpinExperimentManager` (an rl-zoo3 ``ExperimentManager``) trains on the id's
  compiled, batched vector env (``--vec-env batched``, the default here; agents/vec_env.py), reads
  ``agents/hyperparams/{algo}.yml`` by default, configures the goodput evaluation callback named in
  the YAML (``callback: agents.callbacks.GoodputEvalCallback``), and makes ``--optimize`` rank
  trials by mean episode goodput with the search spaces of :mod:`agents.search`;
- ``--baselines``: which analytic policies the evaluation runs next to the agent;
- checks of the command line with one-line errors (exit status 2, no half-made run folder),
  VecNormalize statistics saved with every checkpoint and loaded with it, ``training.yml``
  (done steps, fps, final goodput, whether the run was interrupted), and SIGTERM handled like Ctrl-C:
  the model is saved, then the command exits 130 (SIGINT) or 143 (SIGTERM), as a killed command does.

rl-zoo3 builds its parser inside ``rl_zoo3.train.train()``; :func:`zoo_parser` captures that parser
instead of copying it, and :func:`main` runs ``train()`` with our manager and parsed arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import os
import pickle
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import gymnasium as gym
import yaml
from rl_zoo3 import exp_manager as zoo_exp_manager
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.utils import ALGOS, EnvironmentName
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CheckpointCallback, ProgressBarCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, VecNormalize

from agents.callbacks import GoodputEvalCallback
from agents.cli import (
    EVAL_NOTE,
    UserError,
    check_env_id,
    check_output_folder,
    check_readable_file,
    multispin_ids,
    one_line,
    store_dict_or_words,
)
from agents.runs import TRUST_NOTE, load_run_file, read_yaml, resolve_agent, vecnormalize_for, write_atomic
from agents.search import CONVERTERS, SAMPLERS
from agents.wrappers import EpisodeGoodputReward, for_evaluation
from multispin_env.registration import DEFAULT_ENV_ID

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"


def _load_vecnormalize(path: Path, env: VecEnv) -> VecNormalize:
    """``VecNormalize.load(path, env)``; statistics saved at another observation size (a user-set model continued at
    another K) are kept for the reward only: observation normalisation must be off (a per-entry statistic has no
    meaning at another K)."""
    from agents.userset import check_normalisation

    with open(path, "rb") as file:
        stats: VecNormalize = pickle.load(file)
    size = env.observation_space.shape
    if stats.observation_space.shape != size:
        try:
            check_normalisation(stats, size, str(path))
        except ValueError as error:
            raise UserError(str(error)) from None
        stats.obs_rms = RunningMeanStd(shape=size or ())  # type: ignore[assignment]  # a Box: one statistic
        stats.observation_space, stats.action_space = env.observation_space, env.action_space  # pickled with the old K
    stats.set_venv(env)
    return stats


def agent_names() -> tuple[str, ...]:
    """Every agent (``--algo`` with its own hyperparameters): the stems of the hyperparameter files."""
    return tuple(sorted(p.stem for p in HYPERPARAMS_DIR.glob("*.yml")))


class BoundedProgressBar(ProgressBarCallback):
    """SB3's progress bar, stopped at its total: rollouts of n_steps x n_envs overshoot a budget that is no multiple."""

    def _on_step(self) -> bool:
        self.pbar.update(max(0, min(self.training_env.num_envs, self.pbar.total - self.pbar.n)))
        return True


class MultiSpinExperimentManager(ExperimentManager):
    """rl-zoo3's ExperimentManager with the batched vector env, goodput evaluation and goodput search."""

    def __init__(
        self,
        args: argparse.Namespace,
        *positional: Any,
        vec_env_type: str = "batched",
        interrupts: Interrupts | None = None,
        **kwargs: Any,
    ) -> None:
        """:param interrupts: the command's SIGINT/SIGTERM record (:func:`main`); None: one for :meth:`learn` only"""
        self.batched = vec_env_type == "batched"
        kwargs["vec_env_type"] = "dummy" if self.batched else vec_env_type  # rl-zoo3 passes it by keyword
        super().__init__(args, *positional, **kwargs)
        self.baselines: list[str] | None = getattr(args, "baselines", None)
        self.interrupts = interrupts

    # -- set-up: one-line errors, no half-made run folder ----------------------------------------------
    def setup_experiment(self) -> tuple[BaseAlgorithm, dict[str, Any]] | None:
        try:
            result = super().setup_experiment()
            for cb in self.callbacks:  # an evaluation env the agent cannot play (another K...): refuse before training
                if result is not None and isinstance(cb, GoodputEvalCallback) and cb.single_env is not None:
                    cb.check_agent(result[0])
            return result
        except UserError:
            self._discard_run_folder()
            raise
        except (ValueError, TypeError, AssertionError, KeyError, AttributeError) as exc:
            self._discard_run_folder()
            raise UserError(f"cannot set up {self.algo} on {self.env_name.gym_id}: {one_line(exc)}") from None

    def _discard_run_folder(self) -> None:
        folder = Path(self.save_path)
        if folder.is_dir() and not any(folder.rglob("*.zip")):
            shutil.rmtree(folder, ignore_errors=True)

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        # A suite task (MultiSpinSuite/...-vN) without an entry of its own uses the entry of the id it is
        # registered on (same env classes), not rl-zoo3's untuned "default".
        real = self.env_name
        key = hyperparams_key(self.config, real.gym_id)
        if key != real.gym_id:
            print(f"Using the {key} hyperparameters for {real.gym_id}")
            self.env_name = EnvironmentName(key)
        try:
            return super().read_hyperparameters()
        finally:
            self.env_name = real

    def _preprocess_hyperparams(self, hyperparams: dict[str, Any]) -> Any:
        out = super()._preprocess_hyperparams(hyperparams)
        from agents.userset import names_userset, search_policy_kwargs, with_env_layout

        if names_userset(out[0].get("policy")):  # it learns which entries are per-user fields from the env
            kwargs = out[0].get("policy_kwargs")
            if self.storage and self.study_name and self.trial_id:  # a search trial's kwargs (--trial-id)
                kwargs = search_policy_kwargs(kwargs)
            probe = gym.make(self.env_name.gym_id, **self.env_kwargs)
            out[0]["policy_kwargs"] = with_env_layout(kwargs, probe)
            probe.close()
        if self.optimize_hyperparameters:
            # Trials are ranked by rl-zoo3's own evaluation on goodput-reward envs (create_envs); the
            # analytic-policy callback would only repeat that work in every trial.
            self.specified_callbacks = []
        return out

    # -- envs --------------------------------------------------------------------------------------------
    def create_envs(self, n_envs: int, eval_env: bool = False, no_log: bool = False) -> VecEnv:
        env_id = self.env_name.gym_id
        if eval_env:
            # Only --optimize builds rl-zoo3 eval envs here: their episode return is the episode goodput.
            def make() -> gym.Env:
                return EpisodeGoodputReward(gym.make(env_id, **self.eval_env_kwargs))

            env: VecEnv
            if self.batched:  # wrapped like the training env: sync_envs_normalization walks both stacks
                env = VecMonitor(DummyVecEnv([make] * n_envs))
                env.seed(self.seed)
            else:
                env = make_vec_env(make, n_envs=n_envs, seed=self.seed, vec_env_cls=DummyVecEnv)
            if self.vec_env_wrapper is not None:
                env = for_evaluation(self.vec_env_wrapper(env))  # trials are ranked as evaluated: rint
            return self._maybe_normalize(env, eval_env=True)
        if not self.batched:
            return super().create_envs(n_envs, eval_env=False, no_log=no_log)
        if self.env_wrapper is not None:
            raise UserError("env_wrapper cannot wrap the batched vector env; use vec_env_wrapper or --vec-env dummy")
        from agents.vec_env import make_batched_vec_env

        env = make_batched_vec_env(env_id, n_envs, self.env_kwargs)
        env.seed(self.seed)
        env = VecMonitor(env, filename=None if no_log else os.path.join(self.save_path, "monitor.csv"))
        if self.vec_env_wrapper is not None:
            env = self.vec_env_wrapper(env)
        return self._maybe_normalize(env, eval_env=False)

    def _maybe_normalize(self, env: VecEnv, eval_env: bool) -> VecEnv:
        if not self.continue_training:
            return super()._maybe_normalize(env, eval_env)
        self._check_spaces(env)
        stats = vecnormalize_for(self.trained_agent, str(self.env_name))
        if stats is None:
            return super()._maybe_normalize(env, eval_env)
        if stats.name == "vecnormalize.pkl" and not self._saved_userset:  # rl-zoo3 loads {env}/vecnormalize.pkl
            return load_run_file(stats, lambda: super(MultiSpinExperimentManager, self)._maybe_normalize(env, eval_env))
        print(f"Loading VecNormalize statistics {stats}")
        env = load_run_file(stats, lambda: _load_vecnormalize(stats, env))
        if eval_env:
            env.training, env.norm_reward = False, False
        return env

    @functools.cached_property
    def _saved(self) -> dict[str, Any]:
        """The saved data of the model training continues from (``-i``; read once)."""
        data, _, _ = load_run_file(
            self.trained_agent, lambda: load_from_zip_file(self.trained_agent, load_data=True, device="cpu")
        )
        return data or {}

    @functools.cached_property
    def _saved_userset(self) -> bool:
        """Whether the model training continues from is a user-set model (it may continue at another K)."""
        from agents.userset import names_userset

        return names_userset(self._saved.get("policy_class"))

    def _check_spaces(self, env: VecEnv) -> None:
        data = self._saved
        if self._saved_userset:  # the same weights play any K: only the per-user fields must match
            from agents.userset import check_layout

            kwargs = data.get("policy_kwargs") or {}
            fields, homogeneous = kwargs.get("observation_fields") or (), bool(kwargs.get("homogeneous"))
            probe = gym.make(self.env_name.gym_id, **self.env_kwargs)
            try:
                check_layout(fields, homogeneous, probe, str(self.trained_agent))
            except ValueError as error:
                raise UserError(str(error)) from None
            finally:
                probe.close()
            return
        for what, space in (("observation", env.observation_space), ("action", env.action_space)):
            saved_space = data.get(f"{what}_space")
            if saved_space is not None and saved_space.shape != space.shape:
                raise UserError(
                    f"{self.trained_agent} has {what} shape {saved_space.shape}, {self.env_name.gym_id} with these "
                    f"env kwargs has {space.shape} (continue with the env kwargs it was trained with; only user-set "
                    "models continue at another number of users)"
                )

    def _load_pretrained_agent(self, hyperparams: dict[str, Any], env: VecEnv) -> BaseAlgorithm:
        print(f"Loading pretrained agent {self.trained_agent}")
        if self._saved_userset:  # built for this env's K: its weights do not depend on K (agents/userset.py)
            hyperparams = dict(
                hyperparams,
                custom_objects={"observation_space": env.observation_space, "action_space": env.action_space},
            )
        return super()._load_pretrained_agent(hyperparams, env)

    # -- callbacks ---------------------------------------------------------------------------------------
    def create_callbacks(self) -> None:
        if self.show_progress:
            from tqdm import TqdmExperimentalWarning

            warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)  # SB3's bar is tqdm.rich
            self.callbacks.insert(0, BoundedProgressBar())  # first: rl-zoo3 closes callbacks[0] on Ctrl-C
        if self.save_freq > 0:
            self.save_freq = max(self.save_freq // self.n_envs, 1)
            # save_vecnormalize: a checkpoint resumed with -i keeps its normalisation statistics.
            self.callbacks.append(
                CheckpointCallback(self.save_freq, self.save_path, "rl_model", save_vecnormalize=True, verbose=1)
            )
        goodput = [cb for cb in self.callbacks if isinstance(cb, GoodputEvalCallback)]
        if self.eval_freq <= 0 or self.optimize_hyperparameters:
            self.callbacks = [cb for cb in self.callbacks if not isinstance(cb, GoodputEvalCallback)]
            return
        if not goodput:
            goodput = [GoodputEvalCallback(verbose=self.verbose)]
            self.callbacks.append(goodput[0])
        self.eval_freq = max(self.eval_freq // self.n_envs, 1)
        env = gym.make(self.env_name.gym_id, **self.eval_env_kwargs)
        if self.baselines is not None:
            from baselines.policies import policies_for

            bad = [name for name in self.baselines if name not in policies_for(env)]
            if bad:
                raise UserError(
                    f"unknown or invalid baseline(s) {', '.join(bad)}; valid here: {', '.join(policies_for(env))}"
                )
        for cb in goodput:
            cb.verbose = min(cb.verbose, self.verbose)
            if self.baselines is not None:
                cb.baseline_names = tuple(self.baselines)
            cb.configure(env, self.eval_freq, self.n_eval_episodes, self.seed, self.save_path, self.params_path)

    # -- training and saving -----------------------------------------------------------------------------
    def _save_config(self, saved_hyperparams: dict[str, Any]) -> None:
        saved_hyperparams["n_timesteps"] = self.n_timesteps  # the run's budget, not only the YAML's
        super()._save_config(saved_hyperparams)

    def learn(self, model: BaseAlgorithm) -> None:
        start = time.perf_counter()
        with contextlib.ExitStack() as stack:
            interrupts = self.interrupts or stack.enter_context(Interrupts().installed())
            # Printed once the handlers are in place: from here a signal stops training and the model is saved.
            print(
                f"Training {self.algo} on {self.env_name.gym_id} for {self.n_timesteps} steps "
                "(Ctrl-C or SIGTERM: stop, save and exit 130 / 143)",
                flush=True,
            )
            super().learn(model)  # rl-zoo3 catches the KeyboardInterrupt and returns
            interrupts.defer = True  # training is over: a signal now only waits for the files to be written
        seconds = time.perf_counter() - start
        done = int(model.num_timesteps)  # rl-zoo3 learns with reset_num_timesteps=True
        summary: dict[str, Any] = {
            "train_seconds": seconds,
            "num_timesteps": done,
            "planned_timesteps": int(self.n_timesteps),
            "fps": done / max(seconds, 1e-9),
            "interrupted": interrupts.signum is not None,
        }
        if interrupts.signum is not None:
            summary["signal"] = signal.Signals(interrupts.signum).name
        for cb in self.callbacks:
            if isinstance(cb, GoodputEvalCallback) and cb.history:
                summary["final_goodput"] = float(cb.history[-1].goodputs.mean())
                share = cb.share_of_oracle(cb.history[-1])
                if share is not None:
                    summary["final_share_of_oracle"] = share
        write_atomic(Path(self.params_path, "training.yml"), yaml.safe_dump(summary, sort_keys=True))

    # -- hyperparameter search -----------------------------------------------------------------------------
    def hyperparameters_optimization(self) -> None:
        sampler = SAMPLERS.get(self.algo)
        from agents.userset import names_userset, search_policy_kwargs

        if sampler is not None and names_userset(self._hyperparams.get("policy")):
            # rl-zoo3 replaces the policy kwargs by the trial's: keep the env layout, search the shared width.
            sample, base = sampler, self._hyperparams.get("policy_kwargs")

            def sampler(trial: Any, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
                params = sample(trial, n_actions, n_envs, additional_args)
                return {**params, "policy_kwargs": search_policy_kwargs(params.get("policy_kwargs"), base)}

        table = zoo_exp_manager.HYPERPARAMS_SAMPLER
        original = table.get(self.algo)
        if sampler is not None:
            table[self.algo] = sampler  # rl-zoo3's objective looks the sampler up in this table
        try:
            super().hyperparameters_optimization()
        except ValueError as exc:  # optuna: "No trials are completed yet." when every trial was pruned
            raise UserError(f"hyperparameter search: {one_line(exc)}") from None
        finally:
            if original is not None:
                table[self.algo] = original

    def load_trial(
        self, storage: str, study_name: str, trial_id: int | None = None, convert: bool = True
    ) -> dict[str, Any]:
        params = super().load_trial(storage, study_name, trial_id, convert=False)
        if not convert:
            return params
        converter = CONVERTERS.get(self.algo) or zoo_exp_manager.HYPERPARAMS_CONVERTER[self.algo]
        return converter(params)


def hyperparams_key(config: str, env_id: str) -> str:
    """The entry of hyperparameter file ``config`` that trains ``env_id``: its own, else (a suite task) the entry
    of the MultiSpin id registered with the same env class, else ``env_id`` (rl-zoo3 then uses ``default``)."""
    if not config.endswith((".yml", ".yaml")) or not Path(config).is_file():
        return env_id
    table = read_yaml(config)
    if env_id in table or env_id not in gym.registry:
        return env_id
    from multispin_env.registration import ENV_IDS

    entry_point = gym.spec(env_id).entry_point
    for base in ENV_IDS:
        if base in table and gym.spec(base).entry_point == entry_point:
            return base
    return env_id


class Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM (``kill``, a job scheduler) during a training command.

    The first signal decides the exit status (128 + its number: 130, 143). Until training ends it raises
    KeyboardInterrupt, which rl-zoo3 catches to save the model; once :attr:`defer` is set (training over) it is
    only recorded, so the files being written are written whole. A repeat within :attr:`REPEAT_WINDOW` seconds of
    the first signal is ignored: it is the same interrupt delivered twice (a Ctrl-C reaches a leaderboard's workers
    both from the terminal and from the leaderboard, which forwards it) and must not cut the first one's save
    short; a later one raises again, for a user who insists.
    """

    #: Seconds after the first signal during which another one counts as the same interrupt.
    REPEAT_WINDOW = 2.0

    def __init__(self) -> None:
        self.signum: int | None = None
        self.first_at = 0.0
        self.defer = False

    def handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.signum is None:
            self.signum, self.first_at = signum, now
        elif now - self.first_at < self.REPEAT_WINDOW:
            return
        if not self.defer:
            raise KeyboardInterrupt

    @property
    def exit_status(self) -> int:
        """0 if no signal came, else 128 + the first signal's number (the shell's convention)."""
        return 0 if self.signum is None else 128 + self.signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """The handler in place for SIGINT and SIGTERM, the previous ones restored after (main thread only:
        elsewhere, as in a worker thread, Python keeps its own handling)."""
        previous: dict[int, Any] = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self.handle)
        except ValueError:  # not the main thread
            pass
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


class _Captured(Exception):
    pass


def zoo_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """rl-zoo3's own training parser (built inside ``train()``), with our defaults and ``--baselines``."""
    import rl_zoo3.train as zoo_train

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        raise _Captured(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    try:
        zoo_train.train()
    except _Captured as captured:
        parser: argparse.ArgumentParser = captured.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    parser.prog = prog
    parser.description = "Train an RL agent on a MultiSpin env: rl-zoo3's flags, MultiSpin defaults (agents/train.py)."
    parser.error = lambda message: parser.exit(2, f"{prog}: error: {one_line(message)}\n")  # type: ignore[method-assign]
    for flag in ("--env-kwargs", "--eval-env-kwargs", "--hyperparams"):
        action = parser._option_string_actions[flag]
        action.__class__ = store_dict_or_words()
        action.help = f"{action.help}; {EVAL_NOTE}"
    trained = parser._option_string_actions["--trained-agent"]
    trained.help = f"{trained.help} ({TRUST_NOTE})"
    vec_env = parser._option_string_actions["--vec-env"]
    vec_env.choices = ["batched", "dummy", "subproc"]
    vec_env.help = (
        "VecEnv type: batched (the id's compiled, batched vector env, one process; default), dummy or subproc (SB3)"
    )
    parser.set_defaults(env=DEFAULT_ENV_ID, vec_env="batched", num_threads=1, eval_freq=10_000, eval_episodes=10)
    parser._option_string_actions[
        "--env"
    ].help = "environment id (MultiSpin-Heterogeneous-v0 or MultiSpin-Homogeneous-v0)"
    parser._option_string_actions[
        "--num-threads"
    ].help = "PyTorch threads (1 is fastest for these small networks; -1: PyTorch's default)"
    parser.add_argument(
        "--agent",
        default=None,
        metavar="VARIANT",
        help="hyperparameter variant: agents/hyperparams/{algo}_{VARIANT}.yml (e.g. --algo ppo --agent "
        "residual: corrections to het-opt-adaptive, agents/residual.py)",
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=None,
        metavar="POLICY",
        help="analytic policies evaluated next to the agent (default: all valid for the env; no names: none)",
    )
    return parser


def check_args(args: argparse.Namespace) -> None:
    """What rl-zoo3 would only assert on or silently accept; raises :class:`UserError`."""
    import importlib

    for module in args.gym_packages:
        importlib.import_module(module)
    check_env_id(args.env)
    if args.n_timesteps != -1 and args.n_timesteps <= 0:
        raise UserError(
            f"-n/--n-timesteps must be a positive number of steps (or -1: the YAML's n_timesteps), got {args.n_timesteps}"
        )
    check_output_folder(args.log_folder, "-f/--log-folder")
    if args.eval_freq > 0 and args.eval_episodes < 1:
        raise UserError(f"--eval-episodes must be >= 1 (or --eval-freq -1: no evaluation), got {args.eval_episodes}")
    if args.n_eval_envs < 1:
        raise UserError(f"--n-eval-envs must be >= 1, got {args.n_eval_envs}")
    if args.optimize_hyperparameters and args.n_evaluations is not None and args.n_evaluations < 1:
        # rl-zoo3 divides the budget by it (0: ZeroDivisionError; negative: an evaluation every step)
        raise UserError(f"--n-evaluations must be >= 1, got {args.n_evaluations}")
    from stable_baselines3.common.utils import get_device

    try:
        get_device(args.device)
    except RuntimeError as exc:  # torch: "Expected one of cpu, cuda, ... device type at start of device string: bogus"
        raise UserError(f"--device {args.device!r} is not a PyTorch device: {one_line(exc)}") from None
    if args.conf_file is not None:
        check_conf_file(args.conf_file)
    if args.agent is not None and args.conf_file is not None:
        raise UserError("--agent picks a packaged hyperparameter file; do not combine it with -conf")
    if args.conf_file is None:
        stem = args.algo if args.agent is None else f"{args.algo}_{args.agent}"
        path = HYPERPARAMS_DIR / f"{stem}.yml"
        if not path.is_file():
            have = ", ".join(agent_names())
            what = args.algo if args.agent is None else f"{args.algo} --agent {args.agent}"
            raise UserError(f"no hyperparameters for {what} in {HYPERPARAMS_DIR} (have: {have}); pass -conf FILE")
        args.conf_file = str(path)
    if args.trained_agent:
        if not (args.trained_agent.endswith(".zip") and Path(args.trained_agent).is_file()):
            raise UserError(f"-i/--trained-agent must be an existing .zip file, got {args.trained_agent!r}")
        load_run_file(args.trained_agent, lambda: load_from_zip_file(args.trained_agent, load_data=False, device="cpu"))
        saved = resolve_agent(args.trained_agent).algo
        if saved is not None and saved != args.algo:
            raise UserError(f"{args.trained_agent} was trained with {saved}, not {args.algo}: use --algo {saved}")


def check_conf_file(conf: str) -> None:
    """``-conf``: a YAML file that parses (read as rl-zoo3 reads it), a readable ``.py`` file, or an importable
    module (rl-zoo3's three forms); else :class:`UserError`."""
    if conf.endswith((".yml", ".yaml")):
        check_readable_file(conf, "-conf/--conf-file")
        try:
            table = yaml.safe_load(Path(conf).read_text())
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise UserError(f"-conf/--conf-file {conf!r} is not valid YAML: {one_line(exc)}") from None
        if not isinstance(table, dict):
            raise UserError(f"-conf/--conf-file {conf!r} is not a YAML mapping of env ids to hyperparameters")
    elif conf.endswith(".py"):
        check_readable_file(conf, "-conf/--conf-file")
    else:
        try:
            found = importlib.util.find_spec(conf) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UserError(f"-conf/--conf-file {conf!r} is neither a .yml/.py file nor an importable module")


def main(argv: Sequence[str] | None = None, prog: str = "train.py") -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 user error, 130 / 143 interrupted by SIGINT /
    SIGTERM: the model trained so far is saved and ``training.yml`` says ``interrupted: true``)."""
    import rl_zoo3.train as zoo_train

    parser = zoo_parser(prog)
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except UserError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2

    original_parse = argparse.ArgumentParser.parse_args
    original_manager = zoo_train.ExperimentManager

    def parsed(self: argparse.ArgumentParser, *a: Any, **k: Any) -> argparse.Namespace:
        argparse.ArgumentParser.parse_args = original_parse  # type: ignore[method-assign]
        return args

    interrupts = Interrupts()
    argparse.ArgumentParser.parse_args = parsed  # type: ignore[method-assign,assignment]
    manager = functools.partial(MultiSpinExperimentManager, interrupts=interrupts)
    zoo_train.ExperimentManager = manager  # type: ignore[misc,assignment]
    try:
        with interrupts.installed():
            zoo_train.train()
    except UserError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training started (nothing to save) or a repeated signal while saving
        print(f"{prog}: interrupted", file=sys.stderr)
        return interrupts.exit_status or 130
    finally:
        argparse.ArgumentParser.parse_args = original_parse  # type: ignore[method-assign]
        zoo_train.ExperimentManager = original_manager  # type: ignore[misc]
    if interrupts.signum is not None:
        print(
            f"{prog}: interrupted by {signal.Signals(interrupts.signum).name}; what was trained is saved",
            file=sys.stderr,
        )
    return interrupts.exit_status


def console_main() -> None:
    """``multispin-train``."""
    sys.exit(main(prog="multispin-train"))


__all__ = ["ALGOS", "MultiSpinExperimentManager", "UserError", "check_env_id", "main", "multispin_ids", "zoo_parser"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m agents.train"))
