"""Saved runs in rl-zoo3's layout: which model file to load, its algorithm, env and VecNormalize statistics.

A run folder ``logs/{algo}/{env}_{run}/`` holds ``{env}.zip`` (the final model),
``best_model.zip`` (best evaluation goodput), ``rl_model_{steps}_steps.zip``
checkpoints (``--save-freq``, each with ``rl_model_vecnormalize_{steps}_steps.pkl``)
and ``{env}/{args,config}.yml``. rl-zoo3 writes those YAML files with Python tags
(OrderedDict); :func:`read_yaml` reads them without running code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
    """A run's config.yml / args.yml (plain or rl-zoo3's OrderedDict tags), without running code."""
    return dict(yaml.load(Path(path).read_text(), Loader=_RunYamlLoader) or {})  # a safe loader (yaml.SafeLoader subclass)


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
    """

    model_path: Path
    kind: str
    algo: str | None
    env_id: str | None
    env_kwargs: dict[str, Any]
    vecnormalize_path: Path | None
    vec_env_wrapper: Any = None


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
    for args_file in sorted(folder.glob("*/args.yml")):
        args = read_yaml(args_file)
        if (args_file.parent / "config.yml").is_file():
            config = read_yaml(args_file.parent / "config.yml")
        break
    algo = str(args.get("algo") or folder.parent.name).lower()
    env_id = args.get("env")
    env_kwargs = dict(config.get("env_kwargs") or {})
    env_kwargs.update(args.get("env_kwargs") or {})
    return RunInfo(
        model_path=model_path,
        kind=kind,
        algo=algo if algo in ALGOS else None,
        env_id=env_id,
        env_kwargs=env_kwargs,
        # rl-zoo3 names the folder with "/" replaced by "-" (MultiSpinSuite/IIDStatic-v0 -> MultiSpinSuite-IIDStatic-v0).
        vecnormalize_path=vecnormalize_for(model_path, env_id.split(":")[-1].replace("/", "-") if env_id else None),
        vec_env_wrapper=config.get("vec_env_wrapper"),
    )
