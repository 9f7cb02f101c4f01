"""The MultiSpin benchmark suite: standard tasks with fixed settings and evaluation seeds, and normalized scores.

A task is ``MultiSpin-Heterogeneous-v0`` with a fixed set of settings (population, horizon, what varies), a fixed
tuple of evaluation seeds and a sentence saying what it tests (docs/suite.md). Each is registered as a Gymnasium
id in the ``MultiSpinSuite`` namespace (``gym.make("MultiSpinSuite/IIDStatic-v0")``); :data:`TASKS` is the tuple
of the suite's ids, defined here once. A task whose dynamics, seeds or metric change gets a new version; the
earlier one stays registered (:data:`RETIRED`, with its references) so that results measured on it still
reproduce, but leaves the suite.

:func:`normalized_score` maps a task's metric on its evaluation seeds to 100 (v - v_server) / (v_oracle - v_server):
0 = server-only decoding (every L_k = 0), 100 = het-opt-oracle (or the task's own reference controller, the best
full-information controller for its metric: ``Task.reference``), both measured on the task's evaluation seeds. The
metric (:data:`METRICS`, ``Task.metric``) is the episode-mean goodput (tokens/s); for the request-arrival tasks the
mean request completion time (s; lower is better, the formula is the same); for Deadlines the share of requests that
meet their completion-time target; for Fairness the users' geometric-mean throughput (tokens/s, the exponential of
the mean log throughput). The reference values ship in ``suite_references.json``; they are
recomputed by ``python -m experiments.suite_references`` (the env package cannot run the analytic policies
itself: it does not import the controllers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_ANALYTIC_SCORE",
    "EDGES",
    "LOWER_IS_BETTER",
    "METRICS",
    "METRIC_LABELS",
    "MIN_REFERENCE_SPAN",
    "NAMESPACE",
    "RETIRED",
    "SCORE_SCALE",
    "TASKS",
    "TASK_SPECS",
    "Task",
    "normalized_score",
    "reference_goodputs",
    "reference_span",
    "reference_values",
    "task",
]

#: Gymnasium namespace of the task ids.
NAMESPACE = "MultiSpinSuite"
#: Evaluation seeds of every task (one episode each).
EVAL_SEEDS: tuple[int, ...] = tuple(range(1000, 1010))
_REFERENCES = Path(__file__).with_name("suite_references.json")
#: The suite's scale standard (docs/suite.md): on every task of :data:`TASKS` the two references differ by at least
#: this share of the larger one (:func:`reference_span`) ...
MIN_REFERENCE_SPAN = 0.10
#: ... and no analytic controller scores above this (the 100-reference is the best full-information controller).
MAX_ANALYTIC_SCORE = 105.0
#: What a task's normalized score measures, by name.
METRICS: Mapping[str, str] = {
    "goodput": "mean episode goodput on the evaluation seeds, tokens/s (higher is better)",
    "completion_mean": "mean completion time of the requests completed in the evaluation episodes (pooled), s "
    "(lower is better; docs/model.md section 5.8)",
    "deadline_share": "share of the decided requests that met their completion-time target, met / (met + missed) "
    "pooled over the evaluation episodes (higher is better; a request still in the system at the episode's end "
    "with its target ahead is undecided; docs/model.md eq. (9d))",
    "throughput_geomean": "proportional fairness: mean over the evaluation episodes of the users' geometric-mean "
    "throughput exp((1/K) sum_k log x_k), x_k = user k's episode tokens (at least 1) / the episode's time, tokens/s "
    "(higher is better; docs/suite.md)",
}

#: The metrics of :data:`METRICS` where a lower value is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"completion_mean"})

#: What a learned controller can have over the best non-oracle analytic controller on a task (docs/suite.md), by
#: name: the why-column of the verdict (agents/verdict.py).
EDGES: Mapping[str, str] = {
    "none": "an analytic controller plans with the true model and everything the round's outcome depends on: a "
    "learned controller can at best match it",
    "information": "the non-oracle controllers lack something a learned controller can infer over rounds or learn "
    "for the task's fixed population (a hidden acceptance regime or request rate, which het-opt-posterior filters "
    "but does not probe; the channel behind a stale or noisy estimate)",
    "foresight": "the metric spans rounds (request completion times, deadlines, an energy budget, fairness) while the controllers plan each "
    "round on its own (its goodput, or a price or weights of the state so far): planning across rounds pays",
    "model mismatch": "the controllers plan with an approximate model of the round (an averaged acceptance curve, "
    "the nominal draft times): a learned controller meets the real one",
}


@dataclass(frozen=True)
class Task:
    """One standard task.

    :param name: the id's name part (``MultiSpinSuite/<name>-v0``)
    :param tests: what the task tests, one sentence (docs/suite.md)
    :param settings: the env settings that define it (over the defaults of docs/model.md section 4.1)
    :param eval_seeds: the reset seeds of its evaluation episodes
    :param metric: what its normalized score measures, a key of :data:`METRICS`
    :param version: the id's version (``-v<version>``); a change of a task's dynamics, seeds or metric is a new
        version (docs/suite.md)
    :param retired: why a later version replaced this one, empty for a task of the suite (:data:`TASKS`)
    :param reference: the analytic controller (a name of ``baselines.policies.ANALYTIC_POLICIES``) whose value on
        the evaluation seeds is the task's 100: the best full-information controller for its metric
    :param edge: what a learned controller can have over the best non-oracle analytic controller, a key of
        :data:`EDGES`
    """

    name: str
    tests: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    eval_seeds: tuple[int, ...] = EVAL_SEEDS
    metric: str = "goodput"
    version: int = 0
    retired: str = ""
    reference: str = "het-opt-oracle"
    edge: str = "none"

    def __post_init__(self) -> None:
        if self.edge not in EDGES:
            raise ValueError(f"Task {self.name!r} edge must be one of {list(EDGES)}, got {self.edge!r}")

    @property
    def env_id(self) -> str:
        return f"{NAMESPACE}/{self.name}-v{self.version}"

    @property
    def label(self) -> str:
        """The task's short name in tables and file names: ``name``, with ``-v<version>`` from version 1 on
        (unique over every registered task)."""
        return self.name if self.version == 0 else f"{self.name}-v{self.version}"


_STATIC = {"fading": False}
# Request arrivals (docs/model.md section 5.8; docs/suite.md): requests of 50 tokens on average, 60 s episodes
# (queues start empty). The rates load het-opt-adaptive's saturated goodput (~120 tokens/s with every user busy)
# to ~37% and ~85%.
_ARRIVALS = dict(_STATIC, mean_request_tokens=50.0, horizon=60.0)
# Version 1 of the arrival tasks: every request exactly 50 tokens, 30 evaluation episodes. Each policy meets its
# own request stream (the arrival draws share the episode's generator), so the geometric lengths of version 0
# made the mean completion time of 10 episodes differ by ~0.8 s between two sets of seeds, more than the
# references' span (docs/suite.md).
_ARRIVALS_V1 = dict(_ARRIVALS, request_length="fixed")
_ARRIVAL_SEEDS: tuple[int, ...] = tuple(range(1000, 1030))
# Slow fading for the stale-CSI tasks of version 1: f_D = 1 Hz keeps the one-round correlation J0(2 pi f_D T)
# near 0.9 over the ~0.1 s rounds of het-opt-oracle (eq. (5.2b)); at the default 10 Hz it is ~0.2, and ~0 over
# three rounds, so the delayed estimate says little about the channel (docs/suite.md).
_SLOW_FADING = {"doppler_hz": 1.0}
# Request deadlines (docs/model.md eq. (9d); docs/suite.md): the fixed 50-token requests of the arrival tasks at
# 0.2 requests/s per user, each with a target of 0.06 s per token (3 s), which het-opt-oracle misses about half the
# time.
_DEADLINES = dict(_ARRIVALS_V1, arrival_rate=0.2, request_deadline_per_token=0.06)
# The energy budget of EnergyBudget (docs/suite.md): 8 J per device per 10 s episode. Unconstrained, het-opt-oracle
# spends 5.2 J (low-end devices), 8.3 J (mid) and 13.3 J (high-end) of the fixed population's devices in an episode
# of the static channel, so its high-end devices run dry at ~60% of the episode and its mid device near the end.
_ENERGY_BUDGET_J = 8.0
#: The current tasks by id, in report order (every task: base scenario, its fixed population, 10 s episodes,
#: i.i.d. acceptance unless stated, the default 0.5 s upload deadline).
_CURRENT: tuple[Task, ...] = (
    Task(
        "IIDStatic",
        "the paper's static system: i.i.d. acceptance, no fading; adaptive control should match the oracle",
        dict(_STATIC),
    ),
    Task(
        "Markov",
        "acceptance drifting between easy and hard regimes (markov), static channel: tracking a hidden "
        "state from outcomes",
        dict(_STATIC, acceptance_process="markov"),
        edge="information",
    ),
    Task(
        "Tasks",
        "acceptance changing with each request's task (tasks process), static channel",
        dict(_STATIC, acceptance_process="tasks"),
        edge="information",
    ),
    Task(
        "Positional",
        "acceptance falling along the draft (positional): planning with the right curve",
        dict(_STATIC, acceptance_process="positional"),
    ),
    Task("Fading", "Rayleigh fading with current channel information", {}),
    Task(
        "StaleCSI1",
        "slow Rayleigh fading (Doppler 1 Hz) with channel information one round old: predicting the channel "
        "from a correlated estimate",
        dict(_SLOW_FADING, csi_delay=1),
        version=1,
        edge="information",
    ),
    Task(
        "StaleCSI3",
        "slow Rayleigh fading (Doppler 1 Hz) with channel information three rounds old",
        dict(_SLOW_FADING, csi_delay=3),
        version=1,
        edge="information",
    ),
    Task(
        "NoisyCSI",
        "fading with a noisy channel estimate (CN(0, 0.3^2) error)",
        {"csi_noise_std": 0.3},
        edge="information",
    ),
    Task(
        "HighMobility",
        "fast fading (Doppler 100 Hz): the channel of one round is unrelated to the last one's",
        {"doppler_hz": 100.0},
    ),
    Task(
        "Jitter",
        "draft times jittering from round to round (log-normal sigma 0.3), static channel",
        dict(_STATIC, draft_time_jitter=0.3),
        version=1,
        edge="model mismatch",
    ),
    Task(
        "LargeK",
        "32 users sharing the verification batch, static channel, greedy verification (token-only uploads)",
        dict(_STATIC, num_users=32, payload="token-only"),
        version=1,
    ),
    Task(
        "Knee",
        "verification flat up to a knee of 64 batch tokens (eq. (2')), static channel",
        dict(_STATIC, verify_knee_tokens=64.0),
    ),
    Task(
        "TightDeadline",
        "fading with a 0.02 s upload deadline (eq. (1')), below the unconstrained "
        "optimum's sync time: late uploads are dropped",
        {"upload_deadline": 0.02},
    ),
    Task(
        "ArrivalsLight",
        "Poisson arrivals of 50-token requests at light load (0.15 requests/s per user, ~37% of the "
        "saturated goodput): idle users, mean request completion time",
        dict(_ARRIVALS_V1, arrival_rate=0.15),
        eval_seeds=_ARRIVAL_SEEDS,
        metric="completion_mean",
        version=1,
        edge="foresight",
    ),
    Task(
        "ArrivalsHeavy",
        "Poisson arrivals of 50-token requests at heavy load (0.34 requests/s per user, ~85% of the "
        "saturated goodput): queues, mean request completion time",
        dict(_ARRIVALS_V1, arrival_rate=0.34),
        eval_seeds=_ARRIVAL_SEEDS,
        metric="completion_mean",
        version=1,
        edge="foresight",
    ),
    Task(
        "Deadlines",
        "Poisson arrivals of 50-token requests (0.2 requests/s per user), each with a 3 s completion-time target "
        "(0.06 s per token): share of requests that meet it",
        _DEADLINES,
        eval_seeds=_ARRIVAL_SEEDS,
        metric="deadline_share",
        edge="foresight",
    ),
    Task(
        "EnergyBudget",
        "an energy budget of 8 J per device per 10 s episode (eq. (5.7a)), static channel: greedy control drains "
        "the fast devices early, a price on energy spreads their drafting over the episode",
        dict(_STATIC, energy_budget=_ENERGY_BUDGET_J),
        reference="het-opt-energy",
        edge="foresight",
    ),
    Task(
        "Fairness",
        "proportional fairness (the users' geometric-mean throughput) in the strongly heterogeneous scenario, "
        "static channel, running throughputs observed: max-sum control leaves the weak users at one token a round",
        dict(_STATIC, scenario="strong-heterogeneity", population_seed=1, observe_throughput=True),
        metric="throughput_geomean",
        reference="het-opt-pf",
        edge="foresight",
    ),
)
#: Earlier versions of tasks, still registered so that results measured on them can be reproduced and scored,
#: but not in the suite (:data:`TASKS`); ``retired`` says why each was replaced (docs/suite.md).
_RETIRED: tuple[Task, ...] = (
    Task(
        "StaleCSI1",
        "fading with channel information one round old",
        {"csi_delay": 1},
        retired="at Doppler 10 Hz the one-round correlation is ~0.2: the delayed estimate carries little "
        "channel information",
    ),
    Task(
        "StaleCSI3",
        "fading with channel information three rounds old",
        {"csi_delay": 3},
        retired="at Doppler 10 Hz the three-round correlation is ~0: the delayed estimate carries no channel "
        "information",
    ),
    Task(
        "Jitter",
        "draft times jittering from round to round (log-normal sigma 0.5), static channel",
        dict(_STATIC, draft_time_jitter=0.5),
        retired="its references are 9% apart",
    ),
    Task(
        "LargeK",
        "32 users sharing the band and the verification batch, static channel",
        dict(_STATIC, num_users=32),
        retired="its references are 1.7% apart: 32 top-k uploads fill the band, speculation barely pays",
    ),
    Task(
        "ArrivalsLight",
        "Poisson request arrivals at light load (0.15 requests/s per user, ~37% of the "
        "saturated goodput): idle users, mean request completion time",
        dict(_ARRIVALS, arrival_rate=0.15),
        metric="completion_mean",
        retired="with geometric request lengths and 10 episodes its metric is mostly noise (references 5% apart, "
        "analytic controllers up to 302)",
    ),
    Task(
        "ArrivalsHeavy",
        "Poisson request arrivals at heavy load (0.34 requests/s per user, ~85% of the "
        "saturated goodput): queues, mean request completion time",
        dict(_ARRIVALS, arrival_rate=0.34),
        metric="completion_mean",
        retired="with geometric request lengths and 10 episodes its metric is noisy (het-opt-adaptive 109)",
    ),
)
#: Every registered task by id: the suite's, then the retired versions.
TASK_SPECS: dict[str, Task] = {spec.env_id: spec for spec in (*_CURRENT, *_RETIRED)}

#: The suite's task ids, in report order (the retired versions are not among them).
TASKS: tuple[str, ...] = tuple(spec.env_id for spec in _CURRENT)
#: The retired task ids (registered, with their references, but not in the suite).
RETIRED: tuple[str, ...] = tuple(spec.env_id for spec in _RETIRED)


#: How a value of each metric of :data:`METRICS` is printed (its unit; the leaderboard's progress lines, the references).
METRIC_LABELS: dict[str, str] = {
    "goodput": "{:.1f} tokens/s",
    "completion_mean": "mean completion {:.2f} s",
    "deadline_share": "deadline share {:.3f}",
    "throughput_geomean": "geometric-mean throughput {:.2f} tokens/s",
}


def _score_scale() -> str:
    others = [f"{t.reference} on {t.name}" for t in map(TASK_SPECS.get, TASKS) if t and t.reference != "het-opt-oracle"]
    return "0 = server-only, 100 = het-opt-oracle" + (f" ({'; '.join(others)})" if others else "")


#: The normalized score's scale in words, for generated pages and plots (with the tasks that have another reference).
SCORE_SCALE = _score_scale()


def task(env_id: str) -> Task:
    """The :class:`Task` of ``env_id``; ValueError listing the tasks otherwise."""
    if env_id not in TASK_SPECS:
        raise ValueError(f"unknown task {env_id!r}; the tasks are {list(TASKS)}")
    return TASK_SPECS[env_id]


def resolve_tasks(names: Sequence[str]) -> list[str]:
    """The task ids of ``names``, each a task's id, name (``ArrivalsHeavy``: the suite's version) or name and version
    (``ArrivalsHeavy-v0``: a retired version too); ValueError naming every unknown one and listing the tasks."""
    if isinstance(names, str):
        raise TypeError("resolve_tasks takes a sequence of task names, not one string")
    by_name = {t.split("/", 1)[1]: t for t in TASK_SPECS} | {TASK_SPECS[t].name: t for t in TASKS}
    bad = [name for name in names if name not in TASK_SPECS and name not in by_name]
    if bad:
        known = ", ".join(TASK_SPECS[t].name for t in TASKS)
        raise ValueError(f"unknown task(s) {', '.join(bad)}; the tasks are {known}")
    return [name if name in TASK_SPECS else by_name[name] for name in names]


@lru_cache(maxsize=1)
def _references() -> dict[str, dict[str, float]]:
    return json.loads(_REFERENCES.read_text())["tasks"]


def reference_goodputs(env_id: str) -> tuple[float, float]:
    """(server-only, the task's reference controller) mean episode goodput, tokens/s, on the task's evaluation
    seeds (for a task of another metric: its values, see :func:`reference_values`)."""
    return reference_values(env_id)


def reference_values(env_id: str) -> tuple[float, float]:
    """(server-only, the task's reference controller, :attr:`Task.reference`) values of the task's metric
    (:data:`METRICS`) on its evaluation seeds."""
    spec = task(env_id)
    references = _references()
    if env_id not in references or spec.reference not in references[env_id]:
        raise ValueError(f"no reference goodputs for {env_id}: run python -m experiments.suite_references")
    entry = references[env_id]
    return entry["server-only"], entry[spec.reference]


def reference_span(env_id: str) -> float:
    """How far apart the task's two references are, as a share of the larger: |v100 - v0| / max(v0, v100) (both
    positive: goodputs or completion times); the suite's tasks keep it at least :data:`MIN_REFERENCE_SPAN`."""
    low, high = reference_values(env_id)
    return abs(high - low) / max(low, high)


def normalized_score(env_id: str, value: float) -> float:
    """100 (value - server-only) / (reference - server-only) on task ``env_id`` (the reference controller is
    het-opt-oracle unless the task names another, :attr:`Task.reference`); ``value`` the task's metric
    (:data:`METRICS`) on its evaluation seeds: the mean episode goodput in tokens/s, for the arrival tasks the
    mean request completion time in s, for the deadline task the share of requests that met their
    target, for Fairness the mean geometric-mean user throughput in tokens/s."""
    low, high = reference_values(env_id)
    return 100.0 * (float(value) - low) / (high - low)
