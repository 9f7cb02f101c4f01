"""The benchmark suite (multispin_env.suite, docs/suite.md): registered tasks, documented, with normalized scores
whose shipped references reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import multispin_env  # noqa: F401  (registers the ids)
from experiments.suite_references import channel_correlation, references
from multispin_env import suite
from multispin_env.config import EnvConfig

DOCS = Path(__file__).resolve().parents[1] / "docs" / "suite.md"


def test_at_least_ten_tasks_each_registered_documented_and_with_references() -> None:
    assert len(suite.TASKS) >= 10 and len(set(suite.TASKS)) == len(suite.TASKS)
    docs = DOCS.read_text()
    shipped = json.loads(Path(suite.__file__).with_name("suite_references.json").read_text())["tasks"]
    assert list(shipped) == list(suite.TASK_SPECS)  # every registered task, the suite's first
    for env_id in suite.TASK_SPECS:
        spec = gym.spec(env_id)
        assert spec.kwargs == dict(suite.task(env_id).settings)
        assert f"`{env_id}`" in docs and suite.task(env_id).tests in docs
        assert set(shipped[env_id]) == {"server-only", suite.task(env_id).reference}
        low, high = suite.reference_values(env_id)
        assert suite.task(env_id).metric in suite.METRICS
        if suite.task(env_id).metric in ("goodput", "throughput_geomean"):
            assert high > low > 0
        elif suite.task(env_id).metric == "deadline_share":  # a share of requests: the reference meets more
            assert 1 >= high > low >= 0
        else:  # completion time: the oracle completes requests sooner
            assert low > high > 0


def test_the_suite_holds_current_versions_and_the_retired_ones_stay_registered() -> None:
    """One id per task name in the suite, at its newest version; every retired id is an earlier version of a
    suite task, registered (Gymnasium flags it out of date), with the reason in docs/suite.md; labels unique."""
    names = [suite.task(t).name for t in suite.TASKS]
    assert len(set(names)) == len(names)
    assert set(suite.RETIRED).isdisjoint(suite.TASKS) and set(suite.TASK_SPECS) == {*suite.TASKS, *suite.RETIRED}
    newest = {suite.task(t).name: suite.task(t).version for t in suite.TASKS}
    docs = DOCS.read_text()
    for env_id in suite.RETIRED:
        old = suite.task(env_id)
        assert old.retired and old.version < newest[old.name], env_id
        assert env_id in gym.registry and gym.spec(env_id).version == old.version
        assert old.retired in docs
    for env_id in suite.TASKS:
        assert not suite.task(env_id).retired and env_id.endswith(f"-v{suite.task(env_id).version}")
    labels = [spec.label for spec in suite.TASK_SPECS.values()]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize("env_id", suite.TASKS)
def test_every_suite_task_has_references_far_enough_apart(env_id: str) -> None:
    """The scale standard on the shipped references (which reproduce: below): at least 10% of the larger apart."""
    low, high = suite.reference_values(env_id)
    assert suite.reference_span(env_id) == pytest.approx(abs(high - low) / max(low, high))
    assert suite.reference_span(env_id) >= suite.MIN_REFERENCE_SPAN


@pytest.mark.parametrize("env_id", suite.TASK_SPECS)
def test_the_score_and_the_model_selection_agree_on_which_way_is_better(env_id: str) -> None:
    """Two places know a metric's direction: LOWER_IS_BETTER (model selection, agents/callbacks.py) and the order of
    the task's references (normalized_score rises from server-only to the reference). They must agree."""
    low, high = suite.reference_values(env_id)
    assert (high < low) == (suite.task(env_id).metric in suite.LOWER_IS_BETTER), (low, high)


def test_stale_csi_tasks_carry_channel_information() -> None:
    """Under het-opt-oracle's rounds, the observed and the current gain of the stale-CSI tasks are correlated by at
    least 0.5 (eq. (5.2b)); the retired versions' (Doppler 10 Hz) were not."""
    measured = {
        f"{name}-v{v}": channel_correlation(f"MultiSpinSuite/{name}-v{v}")
        for name in ("StaleCSI1", "StaleCSI3")
        for v in (0, 1)
    }
    for label in ("StaleCSI1-v1", "StaleCSI3-v1"):
        one_round, over_delay = measured[label]
        assert one_round >= 0.5 and over_delay >= 0.5, label
    assert measured["StaleCSI1-v1"][0] == measured["StaleCSI1-v1"][1]  # one round of delay
    assert measured["StaleCSI3-v1"][1] < measured["StaleCSI3-v1"][0]  # three rounds: a product of three J0
    for label in ("StaleCSI1-v0", "StaleCSI3-v0"):
        assert abs(measured[label][1]) < 0.3, label
    with pytest.raises(ValueError, match="static channel"):
        channel_correlation("MultiSpinSuite/IIDStatic-v0")


@pytest.mark.parametrize("env_id", suite.TASKS)
def test_every_task_passes_the_gymnasium_checker(env_id: str) -> None:
    env = gym.make(env_id)
    for key, value in suite.task(env_id).settings.items():
        got = getattr(env.unwrapped.config, key, None)
        if key in ("num_users", "doppler_hz", "verify_knee_tokens"):
            got = getattr(env.unwrapped.config.scenario, key)
        else:  # as the setting's check normalises it (fading=False is the model "none"), with the task's others
            value = getattr(EnvConfig(**suite.task(env_id).settings), key)
        assert got == value, key
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize(
    "env_id",
    [
        "MultiSpinSuite/Markov-v0",
        "MultiSpinSuite/TightDeadline-v0",
        "MultiSpinSuite/LargeK-v1",
        "MultiSpinSuite/Fairness-v0",
        pytest.param("MultiSpinSuite/EnergyBudget-v0", marks=pytest.mark.slow),  # tunes the price: ~100 episodes
    ],
)
def test_shipped_references_reproduce(env_id: str) -> None:
    """The command's numbers for some tasks (deterministic given the seeds) equal the shipped ones."""
    low, high = suite.reference_goodputs(env_id)
    fresh = references(env_id)
    assert fresh["server-only"] == pytest.approx(low, rel=1e-12)
    assert fresh[suite.task(env_id).reference] == pytest.approx(high, rel=1e-12)


@pytest.mark.slow
def test_shipped_arrival_references_reproduce() -> None:
    """An arrival task's references (mean completion times over 30 episodes, ~1 min to recompute) reproduce."""
    env_id = "MultiSpinSuite/ArrivalsHeavy-v1"
    low, high = suite.reference_values(env_id)
    fresh = references(env_id)
    assert fresh["server-only"] == pytest.approx(low, rel=1e-12)
    assert fresh["het-opt-oracle"] == pytest.approx(high, rel=1e-12)


def test_arrival_tasks_have_the_arrival_observation() -> None:
    arrival_tasks = [t for t in suite.TASKS if gym.spec(t).kwargs.get("arrival_rate") is not None]
    assert len(arrival_tasks) == 3
    for env_id in arrival_tasks:
        env = gym.make(env_id)
        k = env.unwrapped.num_users
        if gym.spec(env_id).kwargs.get("request_deadline_per_token") is None:
            assert env.observation_space.shape == (7 * k + 1,) and suite.task(env_id).metric == "completion_mean"
        else:  # the slack field too (docs/model.md eq. (9d))
            assert env.observation_space.shape == (8 * k + 1,) and suite.task(env_id).metric == "deadline_share"


def test_normalized_score_maps_server_only_to_0_and_the_oracle_to_100() -> None:
    env_id = suite.TASKS[0]
    low, high = suite.reference_goodputs(env_id)
    assert suite.normalized_score(env_id, low) == 0.0
    assert suite.normalized_score(env_id, high) == pytest.approx(100.0, abs=1e-12)
    assert suite.normalized_score(env_id, (low + high) / 2) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="unknown task"):
        suite.normalized_score("MultiSpin-Heterogeneous-v0", 100.0)


def test_task_ids_work_for_vector_envs() -> None:
    envs = gym.make_vec("MultiSpinSuite/LargeK-v1", num_envs=2)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 5 * 32 + 1) and envs.unwrapped.num_users == 32
    _, reward, *_ = envs.step(envs.action_space.sample())
    assert np.all(reward > 0)


def test_the_score_scale_names_every_task_with_its_own_reference() -> None:
    others = [suite.task(t) for t in suite.TASKS if suite.task(t).reference != "het-opt-oracle"]
    assert others and all(f"{t.reference} on {t.name}" in suite.SCORE_SCALE for t in others)
    assert suite.SCORE_SCALE.startswith("0 = server-only, 100 = het-opt-oracle")


def test_resolve_tasks_takes_ids_names_and_retired_versions_and_names_every_unknown_one() -> None:
    current = suite.TASKS[0]
    name = suite.task(current).name
    retired = next(iter(suite.RETIRED))
    assert suite.resolve_tasks([current, name, retired.split("/", 1)[1]]) == [current, current, retired]
    assert suite.resolve_tasks([]) == []
    with pytest.raises(ValueError, match=r"unknown task\(s\) Nope, Nada; the tasks are IIDStatic, ") as err:
        suite.resolve_tasks(["Nope", name, "Nada"])
    assert "\n" not in str(err.value)
    with pytest.raises(TypeError, match="not one string"):
        suite.resolve_tasks(name)
