"""Training until the validation curve is flat: chunks of growing budget, each continuing from the last.

``multispin-leaderboard --train --until-flat`` trains each (agent, task, seed) run in chunks into
``RUN/chunk{i}/``: chunk 0 from scratch with the first budget, every later chunk from the previous chunk's final
model (with its VecNormalize statistics, rl-zoo3's ``-i``) for as many env steps as all chunks before it, so the
run's budget doubles, up to a cap. After each chunk the run's validation curve (the evaluation callback's value on
its validation episodes, seeds 10000 + 1000 x training seed + i, the same in every chunk: the mean goodput, or on a
suite task of another metric that metric, signed so that higher is better; :func:`chunk_curve`) is tested for
flatness:

    flat  <=>  (best_100 - best_80) / |best_80| < tolerance      (tolerance 0.005: 0.5%)

with ``best_80`` the best validation value at or before 80% of the run's env steps so far and ``best_100`` the
best over the whole run: the last 20% of training improved the validation value by less than 0.5%. (Judged on the
task's metric, not on goodput: on Fairness a run's goodput can be flat while its geometric-mean throughput still
rises.) A run stops
when flat (``status: flat``) or when its budget reaches the cap (``status: cap``, not converged). A minimum budget
(``--min-timesteps``) holds the verdict back until the run has trained that long (finished chunks trained beyond
it with a larger minimum are kept, and the run judged after them): a run that starts at a good
policy, as a residual agent does (its controller's), is flat from its first chunk whether or not it could improve
with more training, and the criterion alone cannot tell "does not move yet" from "converged".

Each finished chunk writes ``chunk.json`` (its budget, start, wall and CPU seconds and a hash of the
hyperparameter entry it was trained with) after its model is saved; a killed run, started again, keeps its finished
chunks and trains the unfinished one again from the last finished chunk's model. A chunk trained with another entry
(the file was edited since) is trained again, with every chunk after it. A linearly annealed learning rate (``lin_X`` in the hyperparameter file) is trained at its
constant initial value X instead (:func:`constant_learning_rate`): an anneal to 0 needs the budget in advance, and
annealed within each chunk it would freeze the policy in the last 20% of every run and make it look flat. The rate
reward (:class:`agents.wrappers.VecRateReward`) re-estimates its running goodput within a chunk's first ~100 steps;
the scored model is the best validated one over all chunks, so a chunk that does worse cannot lower it ("best" by
the evaluation callback's selection value: goodput, or on a suite task of another metric that metric).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.runs import final_model, write_atomic

#: Flatness tolerance: the last ``FLAT_WINDOW`` of training improves the best validation value by less than this
#: share (0.5%).
FLAT_TOLERANCE = 0.005
#: The tail of the run (share of its env steps) whose improvement the criterion measures (the last 20%).
FLAT_WINDOW = 0.2
#: First chunk of a run, env steps, when ``--timesteps`` is not given.
DEFAULT_FIRST_CHUNK = 100_000
#: Cap on a run's env steps when ``--max-timesteps`` is not given: this many times the first chunk (4 doublings).
DEFAULT_CAP_FACTOR = 16

#: Restarts of a run whose hyperparameter entry changed while it trained before it stops with an error.
MAX_RESTARTS = 3
#: Trains one chunk: ``train_chunk(folder, budget, previous)`` trains ``budget`` env steps into ``folder``,
#: continuing from the model file ``previous`` (None: from scratch).
ChunkTrainer = Callable[[Path, int, "Path | None"], None]


def hyperparameters(agent: str, env_id: str) -> dict[str, Any]:
    """The entry of ``agent``'s hyperparameter file that trains ``env_id`` (its own, the id it is registered on, or
    ``default``: :func:`agents.train.hyperparams_key`)."""
    from agents.runs import read_yaml
    from agents.train import HYPERPARAMS_DIR, hyperparams_key

    path = HYPERPARAMS_DIR / f"{agent}.yml"
    table = read_yaml(path)
    entry: dict[str, Any] = table.get(hyperparams_key(str(path), env_id)) or table.get("default") or {}
    return entry


def task_reward_of(entry: dict[str, Any], env_id: str) -> int:
    """The version of the task reward a hyperparameter ``entry`` trains ``env_id`` on
    (:func:`agents.wrappers.task_reward_version`): that of its ``VecTaskReward`` wrapper's metric (``"auto"``: the
    suite task's, goodput for any other id); 1 for an entry without that wrapper."""
    from agents.wrappers import task_metric_of_id, task_reward_version

    kwargs = _wrappers(entry).get("agents.wrappers.VecTaskReward")
    if kwargs is None:
        return 1
    metric = task_metric_of_id(env_id, str(kwargs.get("metric", "auto")))
    return task_reward_version(metric, str(kwargs.get("fairness", "linear")))


def _wrappers(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``vec_env_wrapper`` list of a hyperparameter entry as {dotted name: keyword arguments}."""
    wrappers = entry.get("vec_env_wrapper") or []
    named = {}
    # rl-zoo3 also takes one wrapper, a name or a {name: kwargs} mapping, instead of a list.
    for wrapper in wrappers if isinstance(wrappers, list) else [wrappers]:
        name, kwargs = (wrapper, {}) if isinstance(wrapper, str) else next(iter(dict(wrapper).items()))
        named[str(name)] = dict(kwargs or {})
    return named


def wrapper_versions(entry: dict[str, Any], env_id: str) -> dict[str, int]:
    """The versions above 1 of what the training wrappers of a hyperparameter ``entry`` do on ``env_id``: the task
    reward's (``task-reward``, :func:`task_reward_of`) and the residual wrapper's (``residual``,
    :data:`agents.residual.VERSION`); empty when every one is at version 1."""
    from agents.residual import VERSION as RESIDUAL_VERSION
    from agents.residual import WRAPPER_NAME as RESIDUAL_WRAPPER

    versions = {"task-reward": task_reward_of(entry, env_id)}
    if RESIDUAL_WRAPPER in _wrappers(entry):
        versions["residual"] = RESIDUAL_VERSION
    return {name: version for name, version in versions.items() if version > 1}


def hyperparameters_fingerprint(agent: str, env_id: str) -> str:
    """A hash of the entry that trains ``env_id`` (:func:`hyperparameters`; 16 hex digits) followed by the versions
    above 1 of what its training wrappers do (:func:`wrapper_versions`, e.g. ``+task-reward2``): a finished chunk or
    run trained with another entry (the file was edited since) or other versions is not continued or kept, but
    trained again. A record without a fingerprint (from before they were kept) is of version 1 everywhere
    (:func:`unrecorded_matches`)."""
    entry = hyperparameters(agent, env_id)
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return digest + "".join(f"+{name}{version}" for name, version in wrapper_versions(entry, env_id).items())


def named_versions(fingerprint: str) -> list[str]:
    """The training wrappers' versions above 1 a fingerprint names (:func:`hyperparameters_fingerprint`), e.g.
    ``["task-reward2"]``."""
    return fingerprint.split("+")[1:]


def unrecorded_matches(fingerprint: str) -> bool:
    """Whether a chunk or run recorded without a fingerprint (trained before they were kept, on version 1 of every
    training wrapper) may be kept where ``fingerprint`` is current: when it names no version above 1."""
    return not named_versions(fingerprint)


def constant_learning_rate(agent: str, env_id: str) -> float | None:
    """The constant learning rate a run trained until flat uses: X when ``agent``'s hyperparameter file gives
    ``env_id`` the linear schedule ``lin_X``, else None (the file's own rate, constant or not linear, is kept)."""
    rate = hyperparameters(agent, env_id).get("learning_rate")
    if isinstance(rate, str) and rate.startswith("lin_"):
        return float(rate[4:])
    return None


def flatness(
    timesteps: np.ndarray, values: np.ndarray, total: int, tolerance: float = FLAT_TOLERANCE
) -> dict[str, Any]:
    """The flatness criterion of a validation curve.

    :param timesteps: env steps of each validation point since the run's start (increasing, the first at 0)
    :param values: the validation value at each point, higher is better (:func:`chunk_curve`: the mean goodput,
        tokens/s, or the task's metric signed so); -inf where it is undefined (e.g. no request decided yet)
    :param total: the run's env steps so far
    :param tolerance: largest relative improvement of a flat curve (0.005 = 0.5%)
    :returns: ``best_at_80`` and ``best_at_100`` (the values' unit), ``improvement`` (relative; inf while the first
        80% has no defined value), ``flat`` (bool)
    """
    timesteps, values = np.asarray(timesteps, dtype=float), np.asarray(values, dtype=float)
    if timesteps.shape != values.shape or timesteps.size == 0:
        raise ValueError(
            f"a validation curve needs matching non-empty steps and values, got {timesteps.shape} and {values.shape}"
        )
    if np.isnan(values).any() or (values == np.inf).any():
        raise ValueError("the validation curve has a NaN or +inf value")
    cut = (1.0 - FLAT_WINDOW) * total
    early = values[timesteps <= cut]
    best_all = float(values.max())
    best_early = float(early.max()) if early.size else float("-inf")
    # No defined validation point in the first 80% (a curve of one point, or undefined values): not flat.
    defined = np.isfinite(best_early)
    improvement = (best_all - best_early) / max(abs(best_early), 1e-12) if defined else float("inf")
    return {
        "best_at_80": best_early,
        "best_at_100": best_all,
        "improvement": improvement,
        "flat": bool(improvement < tolerance),
    }


def chunk_curve(folder: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """A chunk's validation curve from its ``evaluations.npz``: steps since the chunk's start, the evaluation
    callback's selection value at each (:class:`agents.callbacks.GoodputEvalCallback`: the mean goodput, or on a
    suite task of another metric that metric signed so that higher is better, which the runs are trained and
    scored on; -inf where undefined), and the name of that value (``goodput`` for files that predate it)."""
    files = sorted(folder.rglob("evaluations.npz"))
    if not files:
        raise FileNotFoundError(f"no validation curve (evaluations.npz) under {folder}: train with validation episodes")
    with np.load(files[0]) as data:
        steps = np.asarray(data["timesteps"], dtype=float)
        if "selection" in data:
            selection, metric = np.asarray(data["selection"], dtype=float), str(data["selection_metric"])
        else:
            selection, metric = np.asarray(data["goodput"], dtype=float).mean(axis=1), "goodput"
    return steps, np.where(np.isnan(selection), -np.inf, selection), metric


def _kept_chunk(
    folder: Path, start: int, budget: int, fingerprint: str | None, metric: str | None = None
) -> tuple[dict[str, Any], Path] | None:
    """The record (``chunk.json``) and final model of a finished chunk in ``folder`` that a run may keep: it starts
    at env step ``start``, its training planned ``budget`` steps and was not interrupted
    (:func:`agents.runs.final_model`), it was trained with ``fingerprint`` (None, or a record from before
    fingerprints were kept: kept while ``fingerprint`` names no version above 1, :func:`unrecorded_matches`) and its
    validation curve is of ``metric`` (None: not checked). None: the chunk must be trained (again)."""
    record_file = folder / "chunk.json"
    if not record_file.is_file():
        return None
    record: dict[str, Any] = json.loads(record_file.read_text())
    final = final_model(folder, budget)
    if record.get("start") != start or final is None:
        return None
    recorded = record.get("hyperparameters")
    if fingerprint is not None and (fingerprint != recorded if recorded else not unrecorded_matches(fingerprint)):
        return None
    if metric is not None and chunk_curve(folder)[2] != metric:
        return None  # validated on goodput before the callback selected on the task's metric: its best model too
    return record, final


def train_until_flat(
    run: Path,
    first: int,
    cap: int,
    train_chunk: ChunkTrainer,
    minimum: int = 0,
    fingerprint: str | Callable[[], str] | None = None,
    metric: str | None = None,
) -> dict[str, Any]:
    """Train a run in chunks until flat or capped (module docstring); returns its convergence record.

    :param run: the run's folder (chunks in ``run/chunk{i}``)
    :param first: first chunk, env steps (>= 1)
    :param cap: most env steps of the run (>= ``first``)
    :param train_chunk: trains one chunk (:data:`ChunkTrainer`)
    :param minimum: env steps the run trains before it may be called flat (0 ... ``cap``); a run not flat then
        trains on to the cap. Finished chunks beyond the point where the run is flat (trained with a larger minimum)
        are kept: the run is judged after the last of them.
    :param fingerprint: what the chunks are trained with (:func:`hyperparameters_fingerprint`), recorded in each
        chunk's ``chunk.json``; a finished chunk recorded with another one is trained again, and every chunk after
        it (a chunk without a record of it, from before fingerprints were kept, is kept unless ``fingerprint`` names
        a training wrapper's version above 1; None checks nothing). A
        callable is read again before each chunk, as the training reads the hyperparameter file again: when it
        changes during the run (the file was edited), the run trains again from chunk 0 with the entry as it is now;
        RuntimeError after more than :data:`MAX_RESTARTS` such restarts
    :param metric: the validation value the run is judged on (:func:`chunk_curve`: the task's metric); a finished
        chunk validated on another one is trained again, and every chunk after it (None checks nothing)
    :returns: ``status`` (``flat`` or ``cap``), ``converged``, ``budget`` (env steps), ``wall_seconds`` and
        ``cpu_seconds`` (summed over chunks), the criterion (:func:`flatness`), ``best_model`` (the best validated
        model file of all chunks), ``final_model``, ``chunks`` (each chunk's record), ``first_chunk``, ``cap``,
        ``min_budget`` and ``judged_on`` (the validation value's name, :func:`chunk_curve`)
    """
    if first < 1 or cap < first:
        raise ValueError(f"train_until_flat needs 1 <= first chunk <= cap, got first {first} and cap {cap}")
    if not 0 <= minimum <= cap:
        raise ValueError(f"train_until_flat needs 0 <= minimum budget <= cap, got minimum {minimum} and cap {cap}")

    def chunk_budget(index: int, start: int) -> int:
        """Chunk ``index``'s env steps when it starts at env step ``start``: the first chunk, then doubling, cut at the cap."""
        return min(first if index == 0 else start, cap - start)

    chunks: list[dict[str, Any]] = []
    steps: list[np.ndarray] = []
    values: list[np.ndarray] = []
    best: tuple[float, Path] | None = None
    total, previous, i = 0, None, 0
    kept: str | None = None  # the fingerprint the chunks so far were checked against
    restarts = 0
    while True:
        current = fingerprint() if callable(fingerprint) else fingerprint
        if i > 0 and current != kept:
            # Edited since the earlier chunks trained: one run is trained with one entry, so start it again.
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise RuntimeError(
                    f"the hyperparameter entry of {run} changed {restarts} times while it trained: stopped (finish "
                    "editing the file, then run the same command again)"
                )
            chunks, steps, values, best, total, previous, i = [], [], [], None, 0, None, 0
        kept = current
        folder = run / f"chunk{i}"
        budget = chunk_budget(i, total)
        kept_chunk = _kept_chunk(folder, total, budget, current, metric)
        if kept_chunk is not None:
            record, final = kept_chunk
        else:
            for stale in sorted(run.glob("chunk*")):  # this chunk and any later one: trained again
                if stale.is_dir() and int(stale.name[5:] or -1) >= i:
                    shutil.rmtree(stale)
            wall, cpu = time.perf_counter(), time.process_time()
            train_chunk(folder, budget, previous)
            record = {
                "chunk": i,
                "start": total,
                "timesteps": budget,
                "wall_seconds": time.perf_counter() - wall,
                "cpu_seconds": time.process_time() - cpu,
            }
            if current is not None:
                record["hyperparameters"] = current
            trained = final_model(folder, budget)
            if trained is None:
                raise RuntimeError(f"chunk {i} of {run} saved no final model")
            final = trained
            write_atomic(folder / "chunk.json", json.dumps(record, indent=1))  # recorded once its final model is there
        t, g, judged_on = chunk_curve(folder)
        steps.append(t + total)
        values.append(g)
        best_file = next(folder.rglob("best_model.zip"), None) or final
        if best is None or g.max() > best[0]:
            best = (float(g.max()), best_file)
        total += budget
        chunks.append(record)
        criterion = flatness(np.concatenate(steps), np.concatenate(values), total)
        status = "flat" if criterion["flat"] and total >= minimum else "cap" if total >= cap else ""
        if status == "flat" and _kept_chunk(run / f"chunk{i + 1}", total, chunk_budget(i + 1, total), current, metric):
            status = ""  # trained on earlier (a larger minimum then): keep those chunks, judge after them
        if status:
            break
        previous, i = final, i + 1
    assert best is not None
    return {
        "status": status,
        "converged": status == "flat",
        "budget": total,
        "wall_seconds": float(sum(c["wall_seconds"] for c in chunks)),
        "cpu_seconds": float(sum(c["cpu_seconds"] for c in chunks)),
        "tolerance": FLAT_TOLERANCE,
        **{k: v for k, v in criterion.items() if k != "flat"},
        "best_model": str(best[1]),
        "final_model": str(final),
        "chunks": chunks,
        "first_chunk": first,
        "cap": cap,
        "min_budget": minimum,
        "hyperparameters": current,
        "judged_on": judged_on,
    }
