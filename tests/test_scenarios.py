"""Scenario presets, acceptance profiles and heterogeneity knobs (docs/model.md section 4)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from baselines.information import static_params
from multispin_env.channel import DEVICE_CLASSES
from multispin_env.model import RoundParams, expected_tokens
from multispin_env.scenarios import (
    ACCEPTANCE_PROFILES,
    CHANNEL_SPREADS,
    DEVICE_MIXES,
    HETEROGENEITY_LEVELS,
    LLAMA_SPS_DRAFT_LENGTH,
    LLAMA_SPS_MEAN_TOKENS,
    SCENARIOS,
    AcceptanceProfile,
    Population,
    Scenario,
    acceptance_from_mean_tokens,
    acceptance_range_for,
    get_scenario,
    heterogeneity_scenario,
    heterogeneous_scenario,
    register_acceptance_profile,
    register_scenario,
)

PRESETS = (
    "base",
    "tasks",
    "llama2",
    "qwen",
    "homogeneous-users",
    "weak-heterogeneity",
    "strong-heterogeneity",
    "acceptance-only",
)


def test_existing_api_is_intact() -> None:
    base = get_scenario()
    assert base == Scenario() and base.name == "base"
    # docs/model.md section 4 defaults
    assert (base.num_users, base.max_draft, base.bandwidth_hz) == (6, 10, 10e6)
    assert base.distance_range_m == (50.0, 300.0) and base.shadowing_sigma_db == 8.0
    assert base.acceptance_range == (0.5, 0.9) and base.payload == "top-k"
    population = base.sample_population(np.random.default_rng(0))
    assert isinstance(population, Population) and population.num_users == 6
    params = base.round_params(population)
    assert isinstance(params, RoundParams)
    np.testing.assert_allclose(params.upload_time, base.upload_time(population.snr_db))
    assert callable(register_scenario) and callable(register_acceptance_profile)
    assert isinstance(ACCEPTANCE_PROFILES["generic"], AcceptanceProfile)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_populations_and_round_params(name: str) -> None:
    scenario = get_scenario(name)
    assert scenario.name == name and name in SCENARIOS and scenario.description
    for k in (1, 7):
        sized = get_scenario(name, num_users=k)
        population = sized.sample_population(np.random.default_rng(k))
        params = sized.round_params(population)
        assert params.num_users == k
        assert np.all((params.acceptance > 0) & (params.acceptance < 1))
        assert set(population.device_class) <= set(sized.device_mix)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_accepted_by_the_environment(name: str) -> None:
    import gymnasium as gym

    import multispin_env  # noqa: F401  (registers the environments)

    env = gym.make("MultiSpin-Heterogeneous-v0", scenario=name, num_users=3)
    try:
        env.reset(seed=0)
        assert static_params(env.unwrapped).num_users == 3
    finally:
        env.close()


@given(
    a=st.floats(0.05, 0.97),
    length=st.integers(1, 12),
)
def test_acceptance_from_mean_tokens_inverts_eq4(a: float, length: int) -> None:
    tokens = float(expected_tokens(a, length))
    if not 1.0 + 1e-9 < tokens < length + 1.0 - 1e-9:
        return
    assert acceptance_from_mean_tokens(tokens, length) == pytest.approx(a, abs=1e-7)


def test_acceptance_from_mean_tokens_rejects_impossible_means() -> None:
    for tokens, length in ((1.0, 5), (6.0, 5), (0.5, 3), (2.0, 0)):
        with pytest.raises(ValueError):
            acceptance_from_mean_tokens(tokens, length)


def test_llama2_profile_is_the_documented_conversion() -> None:
    profile = ACCEPTANCE_PROFILES["llama2"]
    assert set(profile.rates) == set(LLAMA_SPS_MEAN_TOKENS)
    for task, tau in LLAMA_SPS_MEAN_TOKENS.items():
        a = profile.rates[task]
        assert a == round(acceptance_from_mean_tokens(tau, LLAMA_SPS_DRAFT_LENGTH), 2)
        # The rate reproduces the published mean tokens per round at the stated draft length (to rounding).
        assert float(expected_tokens(a, LLAMA_SPS_DRAFT_LENGTH)) == pytest.approx(tau, abs=0.03)
    # Documented values: chat (MT-bench) 0.58, code (HumanEval) highest, qa (Natural Questions) lowest.
    assert profile.rates["chat"] == 0.58
    assert max(profile.rates, key=profile.rates.get) == "code"
    assert min(profile.rates, key=profile.rates.get) == "qa"
    assert "EAGLE-2" in profile.source and "Spec-Bench" in profile.source


def test_qwen_profile_is_anchored_on_the_measured_pair() -> None:
    profile = ACCEPTANCE_PROFILES["qwen"]
    assert profile.rates["math"] == 0.82  # 3.87 tokens per round at L = 5
    assert acceptance_from_mean_tokens(3.87, 5) == pytest.approx(0.82, abs=0.005)
    llama = ACCEPTANCE_PROFILES["llama2"]
    assert set(profile.rates) == set(llama.rates)
    # Same task order as llama2 (the assumption) and every Qwen rate above the 68M-draft rates.
    order = sorted(profile.rates, key=lambda t: (profile.rates[t], llama.rates[t]))
    assert [llama.rates[t] for t in order] == sorted(llama.rates[t] for t in order)
    assert all(profile.rates[t] > llama.rates[t] for t in profile.rates)
    assert "Qwen3-1.7B" in profile.source and "ASSUMED" in profile.source


@pytest.mark.parametrize("name", ["llama2", "qwen"])
def test_profile_scenarios_draw_their_task_rates(name: str) -> None:
    scenario = get_scenario(name, num_users=300)
    population = scenario.sample_population(np.random.default_rng(1))
    rates = ACCEPTANCE_PROFILES[name].rates
    assert population.task is not None
    np.testing.assert_array_equal(population.acceptance, [rates[t] for t in population.task])
    assert set(population.task) == set(rates)  # 300 users: every task appears


def test_acceptance_range_for() -> None:
    assert acceptance_range_for(0.4) == (0.5, 0.9)
    assert acceptance_range_for(0.0) == (0.7, 0.7)
    assert acceptance_range_for(0.6, centre=0.6) == (0.3, 0.9)
    for spread, centre in ((0.7, 0.7), (-0.1, 0.7), (1.0, 0.5), (float("nan"), 0.5)):
        with pytest.raises(ValueError):
            acceptance_range_for(spread, centre)


def test_heterogeneous_scenario_maps_knobs_onto_fields() -> None:
    s = heterogeneous_scenario(0.2, "high-low", "wide", num_users=9)
    assert s.acceptance_range == (0.6, 0.8)
    assert s.device_mix == dict(DEVICE_MIXES["high-low"])
    assert (s.distance_range_m, s.shadowing_sigma_db) == CHANNEL_SPREADS["wide"]
    assert s.num_users == 9 and s.acceptance_profile is None
    # Everything else comes from the base scenario.
    assert s.bandwidth_hz == Scenario().bandwidth_hz and s.payload == Scenario().payload
    custom = heterogeneous_scenario(0.0, {"low": 2.0, "mid": 1.0}, ((80.0, 90.0), 3.0), base="llama2", name="x")
    assert custom.name == "x" and custom.device_mix == {"low": 2.0, "mid": 1.0}
    assert custom.distance_range_m == (80.0, 90.0) and custom.shadowing_sigma_db == 3.0
    with pytest.raises(ValueError):
        heterogeneous_scenario(0.2, "no-such-mix")
    with pytest.raises(ValueError):
        heterogeneous_scenario(0.2, "all", "no-such-channel")
    with pytest.raises(ValueError):
        heterogeneous_scenario(0.2, {"tpu": 1.0})
    with pytest.raises(ValueError):
        heterogeneity_scenario("extreme")


def test_identical_users_are_identical() -> None:
    s = get_scenario("homogeneous-users", num_users=20)
    population = s.sample_population(np.random.default_rng(3))
    params = s.round_params(population)
    for values in (params.acceptance, params.draft_time, params.upload_time):
        assert np.ptp(values) == pytest.approx(0.0, abs=1e-15)
    assert params.draft_time[0] == DEVICE_CLASSES["mid"]


def _spreads(scenario: Scenario, seed: int) -> tuple[float, float, float]:
    population = scenario.replace(num_users=2000).sample_population(np.random.default_rng(seed))
    return (
        float(np.std(population.acceptance)),
        float(np.std(np.log(population.draft_time))),
        float(np.std(population.snr_db)),
    )


def test_named_levels_order_every_spread() -> None:
    """none < weak < base < strong in the spread of a_k, of log t_k and of the SNR."""
    spreads = np.array([_spreads(heterogeneity_scenario(level), 7) for level in HETEROGENEITY_LEVELS])
    assert list(HETEROGENEITY_LEVELS) == ["none", "weak", "base", "strong"]
    assert np.all(spreads[0] == pytest.approx(0.0, abs=1e-12))
    assert np.all(np.diff(spreads[:, 0]) > 0)
    assert np.all(np.diff(spreads[:, 2]) > 0)
    assert np.all(np.diff(spreads[:, 1]) >= 0) and spreads[3, 1] > spreads[1, 1] > 0
    # The registered presets are these levels.
    assert dataclasses.replace(get_scenario("strong-heterogeneity"), name="", description="") == dataclasses.replace(
        heterogeneity_scenario("strong"), name="", description=""
    )


def test_acceptance_only_preset_varies_only_acceptance() -> None:
    s = get_scenario("acceptance-only", num_users=50)
    params = s.round_params(s.sample_population(np.random.default_rng(5)))
    assert np.ptp(params.draft_time) == 0 and np.ptp(params.upload_time) == 0
    assert params.acceptance.min() >= 0.3 and params.acceptance.max() <= 0.9 and np.ptp(params.acceptance) > 0.4
