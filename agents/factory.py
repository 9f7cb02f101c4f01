"""Build, save and load agents: vectorised envs, VecNormalize, the SB3 model, and the rl-zoo3 run layout.

A run folder (``logs/{algo}/{env}_{run}/``, rl-zoo3's layout) holds::

    {env}.zip                  the final model
    best_model.zip             the model with the best evaluation goodput (if evaluated)
    evaluations.npz            evaluation history (see agents.callbacks)
    {env}/config.yml           the hyperparameters used (rl-zoo3 format)
    {env}/args.yml             the command-line arguments
    {env}/command.txt          the command line
    {env}/vecnormalize.pkl     VecNormalize statistics (if normalize)
    0.monitor.csv ...          per-episode Monitor logs of the training envs
    tensorboard/{ALGO}_1/      TensorBoard events (default -tb)
"""

from __future__ import annotations

import difflib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor, VecNormalize

from agents.hyperparams import ALGOS, ExperimentConfig, HyperparameterError, import_object

VEC_ENV_CLASSES: dict[str, type[VecEnv]] = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}
#: --vec-env choices: SB3's two, and the id's numpy-batched vector env (agents.vec_env).
VEC_ENV_TYPES: tuple[str, ...] = ("dummy", "subproc", "batched")
#: The ids this package tunes hyperparameters for.
MULTISPIN_IDS: tuple[str, ...] = ("MultiSpin-Homogeneous-v0", "MultiSpin-Heterogeneous-v0")


class EnvIdError(ValueError):
    """An env id that is not registered (message is one line, with the closest match)."""


def register_envs() -> None:
    """Import :mod:`multispin_env` so its ids are registered (no-op if it registers nothing yet)."""
    import multispin_env  # noqa: F401


def check_env_id(env_id: str) -> None:
    """Raise :class:`EnvIdError` if ``env_id`` is not registered, suggesting the closest id."""
    register_envs()
    if env_id in gym.envs.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise EnvIdError(f"unknown env id {env_id!r}{hint}")


def env_name(env_id: str) -> str:
    """rl-zoo3's folder name of an env id (``module:Id-v0`` -> ``Id-v0``)."""
    return env_id.split(":")[-1]


def next_run_dir(log_folder: str | Path, algo: str, env_id: str) -> Path:
    """``{log_folder}/{algo}/{env}_{n+1}`` where n is the largest existing run number (rl-zoo3's rule)."""
    base = Path(log_folder) / algo
    name = env_name(env_id)
    latest = 0
    if base.is_dir():
        for path in base.glob(f"{name}_*"):
            run = path.name[len(name) + 1 :]
            if run.isdigit():
                latest = max(latest, int(run))
    return base / f"{name}_{latest + 1}"


def _make(env_id: str, **kwargs: Any) -> gym.Env:
    # Module-level so SubprocVecEnv can pickle it; the import registers the ids in the worker.
    register_envs()
    return gym.make(env_id, **kwargs)


class WrapperChain:
    """Apply (class path, kwargs) wrappers in order; picklable for SubprocVecEnv."""

    def __init__(self, specs: list[tuple[str, dict[str, Any]]]) -> None:
        self.specs = list(specs)

    def __call__(self, env: gym.Env) -> gym.Env:
        for path, kwargs in self.specs:
            env = import_object(path)(env, **kwargs)
        return env


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """One (unvectorised) env, as the evaluation loop and the analytic policies use it."""
    check_env_id(env_id)
    return _make(env_id, **(env_kwargs or {}))


def make_train_env(
    config: ExperimentConfig,
    seed: int,
    vec_env: str = "dummy",
    monitor_dir: str | Path | None = None,
    vecnormalize_path: str | Path | None = None,
) -> VecEnv:
    """The vectorised, monitored, wrapped (and possibly normalised) training env of ``config``.

    :param seed: env ``i`` is seeded with ``seed + i`` at the first reset (``batched``: the vector env with ``seed``)
    :param vec_env: ``dummy`` (in-process), ``subproc`` (one process per env) or ``batched``
        (the id's numpy-batched vector env, :mod:`agents.vec_env`)
    :param monitor_dir: where Monitor CSVs go (None: no files)
    :param vecnormalize_path: load these VecNormalize statistics (continued training)
    """
    if vec_env not in VEC_ENV_TYPES:
        raise HyperparameterError(f"unknown vec env {vec_env!r} ({', '.join(VEC_ENV_TYPES)})")
    env: VecEnv
    if vec_env == "batched":
        if config.env_wrappers:
            raise HyperparameterError("env_wrapper cannot wrap the batched vector env; use vec_env_wrapper or --vec-env dummy")
        from agents.vec_env import make_batched_vec_env

        try:
            env = make_batched_vec_env(config.env_id, config.n_envs, config.env_kwargs)
        except ValueError as exc:
            raise HyperparameterError(f"--vec-env batched: {' '.join(str(exc).split())}") from None
        env.seed(seed)
        filename = str(Path(monitor_dir) / "monitor.csv") if monitor_dir is not None else None
        env = VecMonitor(env, filename=filename)
    else:
        env = make_vec_env(
            _make,
            n_envs=config.n_envs,
            seed=seed,
            env_kwargs={"env_id": config.env_id, **config.env_kwargs},
            monitor_dir=str(monitor_dir) if monitor_dir is not None else None,
            wrapper_class=WrapperChain(config.env_wrappers) if config.env_wrappers else None,
            vec_env_cls=VEC_ENV_CLASSES[vec_env],
        )
    for path, kwargs in config.vec_env_wrappers:
        env = import_object(path)(env, **kwargs)
    if vecnormalize_path is not None and Path(vecnormalize_path).is_file():
        env = VecNormalize.load(str(vecnormalize_path), env)
        env.training = True
    elif config.normalize:
        env = VecNormalize(env, **config.normalize_kwargs)
    return env


def build_model(
    config: ExperimentConfig,
    env: VecEnv,
    seed: int,
    tensorboard_log: str | Path | None = None,
    verbose: int = 0,
) -> BaseAlgorithm:
    """A fresh model of ``config.algo`` on ``env``; constructor errors become :class:`HyperparameterError`."""
    try:
        return ALGOS[config.algo](
            env=env,
            seed=seed,
            verbose=verbose,
            device="cpu",
            tensorboard_log=str(tensorboard_log) if tensorboard_log is not None else None,
            **config.model_kwargs,
        )
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise HyperparameterError(f"hyperparameters do not fit {config.algo}: {msg}") from None


def vecnormalize_path(model_path: str | Path, env_id: str | None = None) -> Path | None:
    """rl-zoo3's location of the VecNormalize statistics saved next to ``model_path`` (None if absent).

    ``logs/ppo/X_1/X.zip`` uses ``logs/ppo/X_1/X/vecnormalize.pkl``; ``best_model.zip`` uses
    ``X/vecnormalize_best.pkl`` when present (the statistics saved with it), else the same file.
    With ``env_id`` unknown, any ``*/vecnormalize*.pkl`` in the folder is used.
    """
    folder = Path(model_path).parent
    names = ["vecnormalize.pkl"]
    if Path(model_path).name == "best_model.zip":
        names.insert(0, "vecnormalize_best.pkl")  # written by GoodputEvalCallback with the best model
    for name in names:
        found = [folder / env_name(env_id) / name] if env_id is not None else sorted(folder.glob(f"*/{name}"))
        found = [p for p in found if p.is_file()]
        if found:
            return found[0]
    return None


def save_run(model: BaseAlgorithm, run_dir: str | Path, env_id: str, filename: str | None = None) -> Path:
    """Save ``model`` (and its VecNormalize statistics, if any) in rl-zoo3's layout; returns the .zip path."""
    run_dir = Path(run_dir)
    params = run_dir / env_name(env_id)
    params.mkdir(parents=True, exist_ok=True)
    path = run_dir / (filename or f"{env_name(env_id)}.zip")
    model.save(str(path))
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.save(str(params / "vecnormalize.pkl"))
    return path


class _RunYamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads rl-zoo3's ``!!python/object/apply:collections.OrderedDict`` mappings."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    assert isinstance(node, yaml.SequenceNode)
    (pairs_node,) = node.value
    pairs = loader.construct_sequence(pairs_node, deep=True)
    return {str(k): v for k, v in pairs}


_RunYamlLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A run's config.yml / args.yml, ours (plain) or rl-zoo3's (OrderedDict tags), without running code."""
    data = yaml.load(Path(path).read_text(), Loader=_RunYamlLoader)  # noqa: S506 - safe loader subclass
    return dict(data or {})


@dataclass
class RunInfo:
    """What a saved run folder says about the agent: algorithm, env id, env kwargs, paths."""

    model_path: Path
    algo: str
    env_id: str | None
    env_kwargs: dict[str, Any]
    vecnormalize_path: Path | None


def resolve_agent(path: str | Path) -> RunInfo:
    """Find the model, algorithm, env id and VecNormalize statistics of a saved agent.

    ``path`` is a model ``.zip`` or a run folder ``logs/{algo}/{env}_{run}`` (its
    ``{env}.zip`` is used; ``best_model.zip`` if the final one is missing). The algorithm
    comes from ``{env}/args.yml`` when present, else from the parent folder's name.
    """
    path = Path(path)
    if path.is_dir():
        named = sorted(path.glob("*/args.yml"))
        env_zip = path / f"{named[0].parent.name}.zip" if named else None
        candidates = [env_zip] if env_zip is not None and env_zip.is_file() else []
        candidates += [p for p in sorted(path.glob("*.zip")) if p.name != "best_model.zip" and p not in candidates]
        if not candidates and (path / "best_model.zip").is_file():
            candidates = [path / "best_model.zip"]
        if not candidates:
            raise FileNotFoundError(f"no model .zip in {path}")
        model_path = candidates[0]
    elif path.is_file() and path.suffix == ".zip":
        model_path = path
    else:
        raise FileNotFoundError(f"{path} is neither a model .zip nor a run folder")
    folder = model_path.parent
    args: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for args_file in sorted(folder.glob("*/args.yml")):
        args = read_yaml(args_file)
        config_file = args_file.parent / "config.yml"
        if config_file.is_file():
            config = read_yaml(config_file)
        break
    algo = str(args.get("algo") or folder.parent.name).lower()
    if algo not in ALGOS:
        raise HyperparameterError(f"cannot tell the algorithm of {model_path} (got {algo!r})")
    env_id = args.get("env")
    env_kwargs = dict(config.get("env_kwargs") or {})
    env_kwargs.update(args.get("env_kwargs") or {})
    return RunInfo(
        model_path=model_path,
        algo=algo,
        env_id=env_id,
        env_kwargs=env_kwargs,
        vecnormalize_path=vecnormalize_path(model_path, env_id),
    )


def load_model(info: RunInfo, env: VecEnv | None = None) -> BaseAlgorithm:
    """Load the SB3 model of ``info`` on CPU (``env`` optional: continued training needs one)."""
    return ALGOS[info.algo].load(str(info.model_path), env=env, device="cpu")


def load_vecnormalize_stats(path: str | Path) -> VecNormalize:
    """Saved VecNormalize statistics, frozen and not bound to any env (enough to normalise observations)."""
    with open(path, "rb") as f:
        vn = pickle.load(f)
    if not isinstance(vn, VecNormalize):
        raise HyperparameterError(f"{path} does not hold VecNormalize statistics")
    vn.training = False
    vn.norm_reward = False
    return vn


def cpu_threads(num_threads: int) -> None:
    """Set PyTorch's intra-op threads (> 0) -- 1 is fastest for these small MLPs on 2 cores."""
    if num_threads > 0:
        import torch

        torch.set_num_threads(num_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(num_threads))
