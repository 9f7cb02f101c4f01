"""rl-zoo3-format hyperparameter files: loading, ``k:v`` overrides and validation against the algorithm.

One YAML file per algorithm (``agents/hyperparams/{algo}.yml``), keyed by env
id, with an optional ``default`` entry, exactly as in rl-zoo3 (the files can be
passed to ``python -m rl_zoo3.train -conf``). Keys understood besides the
algorithm's own constructor arguments:

- ``n_envs`` (int): parallel training envs; ``n_timesteps`` (number): training
  budget in env steps (rounds);
- ``policy`` (str): ``MlpPolicy``;
- ``normalize``: ``true``/``false``, a dict of :class:`VecNormalize` kwargs or its
  rl-zoo3 string form ``"dict(norm_obs=True, norm_reward=False)"``;
- ``policy_kwargs``: a dict or rl-zoo3's string form ``"dict(net_arch=[64, 64])"``;
- ``env_kwargs`` (dict): passed to ``gym.make``;
- ``env_wrapper``: a gym.Wrapper class path, or a list of paths / ``{path: kwargs}`` (rl-zoo3's
  form), applied to every training env;
- ``vec_env_wrapper``: the same for SB3 VecEnvWrappers, applied to the vectorised training env
  below VecNormalize (e.g. ``agents.wrappers.VecHorizonTermination``);
- ``noise_type`` (``normal`` / ``ornstein-uhlenbeck``) and ``noise_std``: action
  noise of the off-policy algorithms;
- schedules: ``learning_rate``/``clip_range``/``clip_range_vf`` may be ``"lin_<x>"``
  (linear decay from x to 0 over training).

Every other key must be a constructor argument of the algorithm; anything else
raises :class:`HyperparameterError` with a one-line message.
"""

from __future__ import annotations

import ast
import copy
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import yaml
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

#: The algorithms train.py builds, by rl-zoo3 name.
ALGOS: dict[str, type[BaseAlgorithm]] = {"a2c": A2C, "ppo": PPO, "sac": SAC, "td3": TD3}

#: Keys that configure the experiment rather than the algorithm's constructor.
EXPERIMENT_KEYS: frozenset[str] = frozenset(
    {"n_envs", "n_timesteps", "normalize", "env_kwargs", "noise_type", "noise_std", "env_wrapper", "vec_env_wrapper", "frame_stack"}
)
#: Constructor arguments train.py sets itself.
RESERVED_KEYS: frozenset[str] = frozenset({"env", "seed", "verbose", "tensorboard_log", "device", "_init_setup_model"})
SCHEDULE_KEYS: tuple[str, ...] = ("learning_rate", "clip_range", "clip_range_vf")


class HyperparameterError(ValueError):
    """A hyperparameter file or override that does not fit the algorithm (message is one line)."""


class ArgumentError(ValueError):
    """A malformed command-line value such as a ``k:v`` pair (message is one line)."""


class LinearSchedule:
    """Linear decay from ``initial_value`` (progress_remaining = 1) to 0 (end of training); picklable.

    :param initial_value: value at the start of training
    """

    def __init__(self, initial_value: float) -> None:
        self.initial_value = float(initial_value)

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial_value

    def __repr__(self) -> str:
        return f"lin_{self.initial_value}"


def default_hyperparams_dir() -> Path:
    """The folder holding the packaged ``{algo}.yml`` files."""
    return Path(str(resources.files("agents") / "hyperparams"))


def hyperparams_file(algo: str, conf_file: str | Path | None = None) -> Path:
    """Path of the YAML file for ``algo`` (``conf_file`` overrides the packaged one)."""
    if algo not in ALGOS:
        raise HyperparameterError(f"unknown algorithm {algo!r}; known: {', '.join(sorted(ALGOS))}")
    path = Path(conf_file) if conf_file else default_hyperparams_dir() / f"{algo}.yml"
    if not path.is_file():
        raise HyperparameterError(f"hyperparameter file {str(path)!r} not found")
    return path


def load_hyperparams(algo: str, env_id: str, conf_file: str | Path | None = None) -> dict[str, Any]:
    """The raw (unprocessed) hyperparameters of ``algo`` on ``env_id``: the env's entry, else ``default``."""
    path = hyperparams_file(algo, conf_file)
    try:
        table = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise HyperparameterError(f"{path}: not valid YAML ({_one_line(exc)})") from exc
    if not isinstance(table, dict):
        raise HyperparameterError(f"{path}: expected a mapping of env ids to hyperparameters")
    if env_id in table:
        entry = table[env_id]
    elif "default" in table:
        entry = table["default"]
    else:
        raise HyperparameterError(f"no hyperparameters for {algo} on {env_id} (nor a 'default' entry) in {path}")
    if not isinstance(entry, dict):
        raise HyperparameterError(f"{path}: the entry of {env_id} must be a mapping")
    return copy.deepcopy(entry)


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal (``0.1``, ``True``, ``[64, 64]``, ``'x'``, ``dict(a=1)``), else the raw string.

    Unlike rl-zoo3 this never runs arbitrary code: ``dict(...)`` calls with literal
    arguments are the only calls accepted, and bare words (``markov``) stay strings.
    """
    text = text.strip()
    if text == "":
        raise ArgumentError("empty value")
    try:
        return _literal(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError):
        # A bare word or anything that is not a literal stays a string (markov, tasks, lin_3e-4).
        if any(ch in text for ch in "()[]{}"):
            raise ArgumentError(f"cannot parse value {text!r}") from None
        return text


def _literal(node: ast.AST) -> Any:
    """``ast.literal_eval`` extended with ``dict(k=literal, ...)`` (rl-zoo3's string form of kwargs)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Attribute):
        # nn.ReLU, th.nn.Tanh: torch activation classes in policy_kwargs.
        return _torch_attribute(node)
    return ast.literal_eval(node)


def _torch_attribute(node: ast.Attribute) -> Any:
    parts: list[str] = []
    cur: ast.AST = node
    while isinstance(cur, ast.Attribute):
        parts.append(cur.attr)
        cur = cur.value
    if not isinstance(cur, ast.Name):
        raise ValueError("unsupported expression")
    parts.append(cur.id)
    dotted = list(reversed(parts))
    if dotted[0] in ("th", "torch"):
        dotted = dotted[1:]
    if len(dotted) != 2 or dotted[0] != "nn" or not hasattr(th.nn, dotted[1]):
        raise ValueError(f"unsupported name {'.'.join(reversed(parts))}")
    return getattr(th.nn, dotted[1])


def parse_key_values(pairs: Iterable[str] | None, what: str = "argument") -> dict[str, Any]:
    """``["k:v", ...]`` -> ``{k: parse_value(v)}``; raises :class:`ArgumentError` on a malformed pair."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition(":")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ArgumentError(f"malformed {what} {pair!r}: expected key:value, e.g. learning_rate:0.001")
        try:
            out[key] = parse_value(value)
        except ArgumentError as exc:
            raise ArgumentError(f"malformed {what} {pair!r}: {exc}") from None
    return out


@dataclass
class ExperimentConfig:
    """Processed hyperparameters: what the experiment needs and what the algorithm's constructor gets.

    :param algo: rl-zoo3 algorithm name
    :param env_id: registered env id
    :param n_envs: parallel training envs
    :param n_timesteps: training budget (env steps, i.e. rounds, summed over envs)
    :param normalize: wrap the training env in VecNormalize
    :param normalize_kwargs: VecNormalize kwargs (``gamma`` follows the algorithm's)
    :param env_kwargs: ``gym.make`` kwargs
    :param env_wrappers: (class path, kwargs) of the training env wrappers, innermost first
    :param vec_env_wrappers: the same for VecEnvWrappers (below VecNormalize)
    :param model_kwargs: constructor kwargs of the algorithm (policy included)
    :param saved: the unprocessed hyperparameters, as written to ``config.yml``
    """

    algo: str
    env_id: str
    n_envs: int
    n_timesteps: int
    normalize: bool
    normalize_kwargs: dict[str, Any]
    env_kwargs: dict[str, Any]
    model_kwargs: dict[str, Any]
    env_wrappers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    vec_env_wrappers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    saved: dict[str, Any] = field(default_factory=dict)


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())


def _as_kwargs(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = parse_value(value)
        except ArgumentError as exc:
            raise HyperparameterError(f"{key}: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise HyperparameterError(f"{key} must be a mapping or 'dict(...)', got {value!r}")
    return dict(value)


def _wrapper_specs(value: Any, key: str) -> list[tuple[str, dict[str, Any]]]:
    """rl-zoo3's ``env_wrapper`` forms -> [(class path, kwargs)], each class checked to be importable."""
    items = value if isinstance(value, list) else [value]
    specs: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if isinstance(item, str):
            path, kwargs = item, {}
        elif isinstance(item, Mapping) and len(item) == 1:
            ((path, kwargs),) = item.items()
            kwargs = dict(kwargs or {})
        else:
            raise HyperparameterError(f"{key}: expected a class path or {{path: kwargs}}, got {item!r}")
        try:
            import_object(path)
        except (ImportError, AttributeError, ValueError):
            raise HyperparameterError(f"{key}: cannot import {path!r}") from None
        specs.append((str(path), kwargs))
    return specs


def import_object(path: str) -> Any:
    """``package.module.Name`` -> the object."""
    import importlib

    module, _, name = str(path).rpartition(".")
    if not module:
        raise ValueError(f"not a dotted path: {path!r}")
    return getattr(importlib.import_module(module), name)


def _schedule(value: Any, key: str) -> Any:
    if isinstance(value, str):
        kind, _, initial = value.partition("_")
        try:
            if kind != "lin":
                raise ValueError
            return LinearSchedule(float(initial))
        except ValueError:
            raise HyperparameterError(f"{key}: expected a number or 'lin_<initial value>', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HyperparameterError(f"{key}: expected a number or 'lin_<initial value>', got {value!r}")
    return float(value)


def constructor_params(algo: str) -> set[str]:
    """Names of the keyword arguments of ``ALGOS[algo].__init__`` (without the reserved ones)."""
    params = inspect.signature(ALGOS[algo].__init__).parameters
    return {name for name in params if name != "self"} - RESERVED_KEYS


def process_hyperparams(
    algo: str,
    env_id: str,
    raw: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    n_timesteps: int | None = None,
    action_dim: int | None = None,
) -> ExperimentConfig:
    """Validate and convert rl-zoo3 hyperparameters into an :class:`ExperimentConfig`.

    :param raw: the YAML entry (see :func:`load_hyperparams`)
    :param overrides: ``-params k:v`` values, applied over ``raw``
    :param env_kwargs: ``--env-kwargs`` values, merged over the file's ``env_kwargs``
    :param n_timesteps: overrides the file's budget when > 0
    :param action_dim: size of the Box action space (needed for action noise)
    """
    if algo not in ALGOS:
        raise HyperparameterError(f"unknown algorithm {algo!r}; known: {', '.join(sorted(ALGOS))}")
    hp = dict(copy.deepcopy(dict(raw)))
    hp.update(copy.deepcopy(dict(overrides or {})))
    if env_kwargs:
        merged = _as_kwargs(hp.get("env_kwargs"), "env_kwargs")
        merged.update(env_kwargs)
        hp["env_kwargs"] = merged
    saved = {k: hp[k] for k in sorted(hp)}

    allowed = constructor_params(algo)
    unknown = sorted(k for k in hp if k not in allowed and k not in EXPERIMENT_KEYS)
    if unknown:
        reserved = [k for k in unknown if k in RESERVED_KEYS]
        hint = " (set by train.py itself)" if reserved else ""
        raise HyperparameterError(f"hyperparameter(s) {', '.join(unknown)} do not fit {algo}{hint}")
    if "frame_stack" in hp:
        raise HyperparameterError("hyperparameter frame_stack is not supported by this train.py")
    wrappers = _wrapper_specs(hp.pop("env_wrapper"), "env_wrapper") if hp.get("env_wrapper") else []
    vec_wrappers = _wrapper_specs(hp.pop("vec_env_wrapper"), "vec_env_wrapper") if hp.get("vec_env_wrapper") else []
    hp.pop("env_wrapper", None)
    hp.pop("vec_env_wrapper", None)

    try:
        n_envs = int(hp.pop("n_envs", 1))
        budget = int(float(hp.pop("n_timesteps")))
    except KeyError:
        raise HyperparameterError(f"n_timesteps missing for {algo} on {env_id}") from None
    except (TypeError, ValueError):
        raise HyperparameterError("n_envs and n_timesteps must be numbers") from None
    if n_timesteps is not None and n_timesteps > 0:
        budget = int(n_timesteps)
    if n_envs < 1 or budget < 1:
        raise HyperparameterError("n_envs and n_timesteps must be >= 1")

    norm = hp.pop("normalize", False)
    if isinstance(norm, str) or isinstance(norm, Mapping):
        normalize_kwargs = _as_kwargs(norm, "normalize")
        normalize = True
    elif isinstance(norm, bool):
        normalize, normalize_kwargs = norm, {}
    else:
        raise HyperparameterError(f"normalize must be true/false or a dict, got {norm!r}")
    if normalize and "gamma" in hp:
        normalize_kwargs["gamma"] = float(hp["gamma"])
    bad_norm = set(normalize_kwargs) - {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs_keys"}
    if bad_norm:
        raise HyperparameterError(f"normalize: unknown VecNormalize option(s) {', '.join(sorted(bad_norm))}")

    env_kw = _as_kwargs(hp.pop("env_kwargs", None), "env_kwargs")

    for key in SCHEDULE_KEYS:
        if key in hp and hp[key] is not None:
            hp[key] = _schedule(hp[key], key)
    if "policy_kwargs" in hp:
        hp["policy_kwargs"] = _as_kwargs(hp["policy_kwargs"], "policy_kwargs")
    if isinstance(hp.get("train_freq"), list):
        hp["train_freq"] = tuple(hp["train_freq"])
    hp.setdefault("policy", "MlpPolicy")
    if not isinstance(hp["policy"], str) or hp["policy"] != "MlpPolicy":
        raise HyperparameterError(f"policy must be 'MlpPolicy' (flat Box observations), got {hp['policy']!r}")

    noise_type = hp.pop("noise_type", None)
    noise_std = hp.pop("noise_std", None)
    if noise_type is not None:
        if algo not in ("sac", "td3"):
            raise HyperparameterError(f"noise_type does not fit {algo} (action noise is for off-policy algorithms)")
        if action_dim is None:
            raise HyperparameterError("noise_type needs the action dimension")
        std = float(noise_std if noise_std is not None else 0.1)
        mean, sigma = np.zeros(action_dim), std * np.ones(action_dim)
        if str(noise_type).strip() == "normal":
            hp["action_noise"] = NormalActionNoise(mean=mean, sigma=sigma)
        elif str(noise_type).strip() == "ornstein-uhlenbeck":
            hp["action_noise"] = OrnsteinUhlenbeckActionNoise(mean=mean, sigma=sigma)
        else:
            raise HyperparameterError(f"unknown noise_type {noise_type!r} (normal, ornstein-uhlenbeck)")

    return ExperimentConfig(
        algo=algo,
        env_id=env_id,
        n_envs=n_envs,
        n_timesteps=budget,
        normalize=normalize,
        normalize_kwargs=normalize_kwargs,
        env_kwargs=env_kw,
        model_kwargs=hp,
        env_wrappers=wrappers,
        vec_env_wrappers=vec_wrappers,
        saved=saved,
    )


def yaml_safe(value: Any) -> Any:
    """``value`` with tuples turned into lists and non-YAML objects into strings (for config.yml)."""
    if isinstance(value, Mapping):
        return {str(k): yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [yaml_safe(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)
