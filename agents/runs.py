"""Saved runs in rl-zoo3's layout: which model file to load, its algorithm, env and VecNormalize statistics.

A run folder ``logs/{algo}/{env}_{run}/`` holds ``{env}.zip`` (the final model),
``best_model.zip`` (best evaluation goodput, or the task's metric), ``rl_model_{steps}_steps.zip``
checkpoints (``--save-freq``, each with ``rl_model_vecnormalize_{steps}_steps.pkl``)
and ``{env}/{args,config,training}.yml``. rl-zoo3 writes those YAML files with Python tags
(OrderedDict); :func:`read_yaml` reads them without running code.

A run folder is code: the model ``.zip`` files hold pickled objects and ``vecnormalize*.pkl`` is a pickle, and
loading either runs whatever a planted file says (as for PyTorch's ``torch.load``). Load only runs you made or
trust (docs/runs.md). :func:`load_run_file` turns a truncated or corrupt file into one error naming it.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from agents.cli import UserError

#: What the help of every flag that loads a run says (docs/runs.md).
TRUST_NOTE = (
    "a run folder is code: its .zip and .pkl files are pickles, which run code when loaded; load only runs you trust"
)

T = TypeVar("T")


class RunFileError(UserError):
    """A file of a run folder that cannot be read (truncated, corrupt, not what its name says); one line."""


def load_run_file(path: str | Path, load: Callable[[], T]) -> T:
    """``load()``, with any failure to read ``path`` (a truncated zip, a corrupt pickle, another SB3 version's
    file) raised as :class:`RunFileError` naming the file.

    :param path: the file ``load`` reads (a model ``.zip`` or a ``vecnormalize*.pkl``)
    :param load: reads it, e.g. ``lambda: PPO.load(path)``
    """
    try:
        return load()
    except (KeyboardInterrupt, MemoryError, UserError):
        raise
    except Exception as exc:
        what = (
            "a truncated or corrupt zip file" if isinstance(exc, zipfile.BadZipFile) else f"{type(exc).__name__}: {exc}"
        )
        raise RunFileError(f"cannot load {path}: {' '.join(what.split())[:300]}") from None


def write_atomic(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` to ``path`` through a temporary file beside it and one rename: a reader, or a run killed
    mid-write, finds the old file or the new one, never a part of either (what a run saves is not lost to a kill;
    a power loss is another matter: nothing is synced to disk).

    :param path: the file to (re)write (through a symlink: its target); its folder must exist
    :param content: its whole new content: text (written as UTF-8, line ends as given) or bytes
    :return: ``path``
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # a symlink stays one: its target is replaced
    # Hidden, and one per process and thread: no two writers share it.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        tmp.write_bytes(data)
        if target.exists():  # keep a rewritten file's permissions, as writing it in place would
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_CHECKPOINT = re.compile(r"rl_model_(\d+)_steps\.zip$")


class _RunYamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads rl-zoo3's ``!!python/object/apply:collections.OrderedDict`` mappings."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    assert isinstance(node, yaml.SequenceNode)
    (pairs_node,) = node.value
    return {str(k): v for k, v in loader.construct_sequence(pairs_node, deep=True)}


def _python_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> str:
    # Other Python objects rl-zoo3 dumps (e.g. policy_kwargs' optimizer_class): their name, never the object.
    return suffix.split(":", 1)[-1]


_RunYamlLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)
_RunYamlLoader.add_multi_constructor("tag:yaml.org,2002:python/", _python_tag)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A run's config.yml / args.yml (plain or rl-zoo3's OrderedDict tags), without running code; a file that
    cannot be read or is not a YAML mapping raises :class:`RunFileError` naming it."""
    try:
        data = (
            yaml.load(Path(path).read_text(), Loader=_RunYamlLoader) or {}
        )  # a safe loader (yaml.SafeLoader subclass)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AssertionError, ValueError, TypeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise RunFileError(f"cannot read {path}: {type(exc).__name__}: {first}") from None
    if not isinstance(data, dict):
        raise RunFileError(f"cannot read {path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def checkpoint_steps(path: Path) -> int | None:
    """The step count of an ``rl_model_{steps}_steps.zip`` checkpoint (None for other files)."""
    match = _CHECKPOINT.search(path.name)
    return int(match.group(1)) if match else None


@dataclass
class RunInfo:
    """What a saved agent's folder says about it.

    :param model_path: the model file chosen
    :param kind: ``final``, ``best``, ``checkpoint`` or ``file`` (a .zip named directly)
    :param algo: rl-zoo3 algorithm name (None if the folder does not say)
    :param env_id: training env id (None if unknown)
    :param env_kwargs: training env kwargs
    :param vecnormalize_path: the VecNormalize statistics saved with that model (None: none)
    :param vec_env_wrapper: the run's rl-zoo3 ``vec_env_wrapper`` hyperparameter (None: none), e.g. to find
        the :class:`~agents.residual.VecResidual` settings of a residual agent
    :param training: the run's ``training.yml`` (done and planned steps, ``interrupted``...; empty: none)
    """

    model_path: Path
    kind: str
    algo: str | None
    env_id: str | None
    env_kwargs: dict[str, Any]
    vecnormalize_path: Path | None
    vec_env_wrapper: Any = None
    training: dict[str, Any] = field(default_factory=dict)


def _pick_model(folder: Path) -> tuple[Path, str]:
    """Final model, else best model, else the checkpoint with the most steps (a killed run)."""
    finals = [p for p in sorted(folder.glob("*.zip")) if p.name != "best_model.zip" and checkpoint_steps(p) is None]
    if finals:
        return finals[0], "final"
    if (folder / "best_model.zip").is_file():
        return folder / "best_model.zip", "best"
    checkpoints = sorted(folder.glob("rl_model_*_steps.zip"), key=lambda p: checkpoint_steps(p) or -1)
    if checkpoints:
        return checkpoints[-1], "checkpoint"
    raise FileNotFoundError(f"no model .zip in {folder}")


def vecnormalize_for(model_path: str | Path, env_name: str | None = None) -> Path | None:
    """The VecNormalize statistics saved with ``model_path`` (None if there are none).

    A checkpoint uses ``rl_model_vecnormalize_{steps}_steps.pkl``; ``best_model.zip`` uses
    ``{env}/vecnormalize_best.pkl`` when present; otherwise ``{env}/vecnormalize.pkl``.
    """
    model_path = Path(model_path)
    folder = model_path.parent
    steps = checkpoint_steps(model_path)
    if steps is not None:
        path = folder / f"rl_model_vecnormalize_{steps}_steps.pkl"
        return path if path.is_file() else None
    names = (["vecnormalize_best.pkl"] if model_path.name == "best_model.zip" else []) + ["vecnormalize.pkl"]
    for name in names:
        found = [folder / env_name / name] if env_name else sorted(folder.glob(f"*/{name}"))
        found = [p for p in found if p.is_file()]
        if found:
            return found[0]
    return None


def resolve_agent(path: str | Path) -> RunInfo:
    """Find the model, algorithm, env and VecNormalize statistics of a saved agent (run folder or .zip).

    The algorithm comes from ``{env}/args.yml``, else from the parent folder's name (``logs/{algo}/...``).
    """
    from rl_zoo3.utils import ALGOS

    path = Path(path)
    if path.is_dir():
        model_path, kind = _pick_model(path)
    elif path.is_file() and path.suffix == ".zip":
        model_path, kind = path, "file"
    else:
        raise FileNotFoundError(f"{path} is neither a model .zip nor a run folder")
    folder = model_path.parent
    args: dict[str, Any] = {}
    config: dict[str, Any] = {}
    training: dict[str, Any] = {}
    for args_file in sorted(folder.glob("*/args.yml")):
        args = read_yaml(args_file)
        if (args_file.parent / "config.yml").is_file():
            config = read_yaml(args_file.parent / "config.yml")
        if (args_file.parent / "training.yml").is_file():
            training = read_yaml(args_file.parent / "training.yml")
        break
    algo = str(args.get("algo") or folder.parent.name).lower()
    env_id = args.get("env")
    env_kwargs: dict[str, Any] = {}
    for source, table in (("config.yml", config), ("args.yml", args)):
        kwargs = table.get("env_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise RunFileError(f"env_kwargs in {source} of {folder} is a {type(kwargs).__name__}, not a mapping")
        env_kwargs.update(kwargs)
    return RunInfo(
        model_path=model_path,
        kind=kind,
        algo=algo if algo in ALGOS else None,
        env_id=env_id,
        env_kwargs=env_kwargs,
        # rl-zoo3 names the folder with "/" replaced by "-" (MultiSpinSuite/IIDStatic-v0 -> MultiSpinSuite-IIDStatic-v0).
        vecnormalize_path=vecnormalize_for(model_path, env_id.split(":")[-1].replace("/", "-") if env_id else None),
        vec_env_wrapper=config.get("vec_env_wrapper"),
        training=training,
    )


def final_model(folder: str | Path, timesteps: int | None = None) -> Path | None:
    """The final model of the newest finished training under a log folder.

    :param folder: a training's ``-f`` log folder (its runs in ``{algo}/{env}_{run}/``)
    :param timesteps: the planned budget, env steps (None: any)
    :returns: the newest run's final model; None when there is none, when that training was interrupted (its
        ``training.yml`` says so: a final model, but not of the whole budget) or when it planned another budget than
        ``timesteps``
    """
    for args_file in sorted(Path(folder).rglob("*/args.yml"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            info = resolve_agent(args_file.parent.parent)
        except FileNotFoundError:
            continue
        record = info.training
        if record.get("interrupted"):  # saved on Ctrl-C / SIGTERM
            return None
        if timesteps is not None and record.get("planned_timesteps") != timesteps:
            return None
        if info.kind == "final":
            return info.model_path
    return None
