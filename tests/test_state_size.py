"""The size guard (docs/model.md section 4.1): it counts the bytes of every array a batch holds, per-system arrays
included, and refuses a batch over the limit with a ValueError before allocating anything."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.core import MAX_STATE_BYTES, PROCESS_STATE_ROWS, _population_bytes, check_state_size, state_bytes
from multispin_env.requests import request_state_bytes
from multispin_env.scenarios import Population

HET = "MultiSpin-Heterogeneous-v0"


def _arrays(obj: Any, seen: set[int], found: dict[int, int], populations: list[Population], depth: int = 0) -> None:
    """Every numpy buffer reachable from ``obj`` through the package's objects (base buffers, counted once)."""
    if isinstance(obj, np.ndarray):
        while isinstance(obj.base, np.ndarray):
            obj = obj.base
        found[id(obj)] = obj.nbytes
        return
    if id(obj) in seen or depth > 6:
        return
    seen.add(id(obj))
    if isinstance(obj, Population):
        populations.append(obj)
    if isinstance(obj, dict):
        values = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        values = list(obj)
    elif type(obj).__module__.startswith("multispin_env") and hasattr(obj, "__dict__"):
        values = list(vars(obj).values())
    else:
        return
    for value in values:
        _arrays(value, seen, found, populations, depth + 1)


CASES = [
    dict(),
    dict(num_users=3, csi_delay=4, draft_time_jitter=0.2, acceptance_process="markov"),
    dict(num_users=5, arrival_rate=1e5, max_queued_requests=7, acceptance_process="tasks"),
    dict(
        num_users=4, arrival_rate=1e5, max_queued_requests=3, acceptance_process="positional", resample_population=True
    ),
    dict(num_users=2, fading=False, acceptance_process="mixture", mixture_scope="request", max_draft=30),
    dict(num_users=3, arrival_rate=1e5, max_queued_requests=5, request_deadline_per_token=0.01),
]


@pytest.mark.parametrize("num_envs", [1, 3000])  # 3000: one round per block of variates
@pytest.mark.parametrize("settings", CASES)
def test_the_count_matches_the_arrays_of_a_built_state(settings, num_envs):
    """After reset and a few rounds (variates drawn, queues full): the count is the arrays' nbytes, plus only what
    this state does not use of the allowances (process rows, requests) and the populations' Python objects."""
    envs = gym.make_vec(HET, num_envs=num_envs, horizon=1e9, **settings)
    envs.reset(seed=0)
    for _ in range(4):
        envs.step(envs.action_space.sample())
    core = envs.unwrapped.core
    found: dict[int, int] = {}
    populations: list[Population] = []
    _arrays(core, set(), found, populations)
    actual = sum(found.values()) + 8 * len(core.populations)  # + the list's slots
    users = num_envs * core.num_users
    process_own = sum(
        value.nbytes
        for name, value in vars(core.process).items()
        if isinstance(value, np.ndarray)
        and value.shape == core.process.rate.shape
        and name not in ("rate", "base_rate")
    )
    unused = 8 * PROCESS_STATE_ROWS * users - process_own
    if core.requests is None:
        unused += users * request_state_bytes(None)
    if core.last_outcome.observation is None:  # the observation went to the caller only (counted as held)
        unused += 4 * core.observation_size * num_envs
    # Not counted: a process's fixed tables (the task process's rates), whatever the number of systems.
    fixed = sum(
        value.nbytes
        for name, value in vars(core.process).items()
        if isinstance(value, np.ndarray) and value.shape[:1] != (num_envs,) and name != "positions"
    )
    distinct = {id(p): p for p in populations}.values()
    overhead = sum(_population_bytes(p) - sum(found.get(id(v), 0) for v in vars(p).values()) for p in distinct)
    assert 0 <= process_own <= 8 * PROCESS_STATE_ROWS * users
    if core.requests is not None and settings.get("arrival_rate"):
        assert core.requests.queue.shape[2] == settings["max_queued_requests"] + 1  # the ring at its largest
    assert state_bytes(core.config, num_envs) == actual - fixed + unused + overhead


@pytest.mark.parametrize("process", ["iid", "positional", "markov", "tasks", "mixture", "trace"])
def test_the_processes_own_state_fits_its_allowance(process):
    """Per user, a built-in process keeps at most PROCESS_STATE_ROWS 8-byte rows beside its rates and hazards."""
    core = gym.make_vec(HET, num_envs=3, acceptance_process=process, mixture_scope="request").unwrapped.core
    own = sum(
        value.nbytes
        for name, value in vars(core.process).items()
        if isinstance(value, np.ndarray)
        and value.shape[:1] == (3,)
        and name not in ("rate", "base_rate", "cumulative_hazard")
    )
    assert own <= 8 * PROCESS_STATE_ROWS * core.process.rate.size


def test_too_many_envs_get_the_guards_error_not_a_memory_error():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^num_envs = 13,000,000 .* 5\.\d\d GiB .* limit of 1 GiB") as caught:
        gym.make_vec(HET, num_envs=13_000_000, num_users=1)
    assert "\n" not in str(caught.value) and time.perf_counter() - start < 5.0  # nothing allocated first
    assert MAX_STATE_BYTES == 2**30


@pytest.mark.parametrize(
    "settings",
    [
        dict(num_users=1),
        dict(num_users=64, csi_delay=1000),
        dict(num_users=6, arrival_rate=1.0, max_queued_requests=10**6),
    ],
)
def test_the_limit_is_the_largest_allowed_count(settings):
    """The guard accepts the largest batch whose count is at most 1 GiB and refuses one more system (counted with
    the fixed population the env samples, as the guard counts it)."""
    config = gym.make(HET, **settings).unwrapped.config
    fixed = config.scenario.sample_population(np.random.default_rng(config.population_seed))
    low, high = 1, 2**40
    while low < high:  # the largest num_envs whose count fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if state_bytes(config, mid, fixed) <= MAX_STATE_BYTES else (low, mid - 1)
    check_state_size(config, low, fixed)  # accepted (checked without building a ~1 GiB batch)
    with pytest.raises(ValueError, match="1 GiB"):
        check_state_size(config, low + 1, fixed)
    with pytest.raises(ValueError, match="1 GiB"):
        gym.make_vec(HET, num_envs=low + 1, **settings)
