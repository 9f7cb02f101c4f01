"""The single Multi-SPIN env: registration, API checkers, config, actions, dynamics and statistics."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.special import j0
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import multispin_env
from baselines.information import adaptive_params, oracle_params, static_params
from multispin_env.acceptance import ACCEPTANCE_PROCESSES
from multispin_env.config import SETTINGS, default_config
from multispin_env.envs import MultiSpinEnv
from multispin_env.model import expected_goodput, expected_tokens, round_latency
from multispin_env.registration import ENV_IDS, register_envs

REPO = Path(__file__).resolve().parents[1]
# Generated from the registry: every MultiSpin id is checked.
REGISTERED_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("MultiSpin-"))
HET = "MultiSpin-Heterogeneous-v0"
HOM = "MultiSpin-Homogeneous-v0"


def make(env_id: str = HET, **kwargs) -> MultiSpinEnv:
    return gym.make(env_id, **kwargs).unwrapped  # type: ignore[return-value]


def constant_policy(env: MultiSpinEnv, lengths, shares=None) -> np.ndarray:
    k = env.num_users
    lengths = np.broadcast_to(np.asarray(lengths, dtype=float), (k,))
    if shares is None:
        shares = np.where(lengths > 0, 1.0, 0.0) / max(1, np.count_nonzero(lengths))
    return env.encode_action(lengths, shares)


# ---------------------------------------------------------------- registration


def test_registry_holds_both_ids_with_vector_entry_points():
    assert sorted(ENV_IDS) == REGISTERED_IDS
    for env_id in REGISTERED_IDS:
        spec = gym.spec(env_id)
        variant = env_id.split("-")[1]
        assert spec.entry_point == f"multispin_env.envs:MultiSpin{variant}Env"
        assert spec.vector_entry_point == f"multispin_env.vector_env:MultiSpin{variant}VectorEnv"
        assert spec.max_episode_steps is None
        assert spec.kwargs == {}
        for maker in (gym.make, gym.make_vec):
            env = maker(env_id)
            assert env.unwrapped.config.homogeneous == ENV_IDS[env_id]["homogeneous"]


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
@pytest.mark.parametrize("homogeneous", [True, False])
def test_an_id_rejects_the_setting_it_fixes(env_id: str, homogeneous: bool):
    for maker in (gym.make, gym.make_vec):
        with pytest.raises(ValueError, match=r"homogeneous.*fixed by this environment id"):
            maker(env_id, homogeneous=homogeneous)


def test_registration_is_idempotent():
    before = {env_id: gym.spec(env_id) for env_id in REGISTERED_IDS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
        register_envs()
    assert {env_id: gym.spec(env_id) for env_id in REGISTERED_IDS} == before


def test_make_in_a_fresh_spawned_interpreter():
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('multispin_env:MultiSpin-Heterogeneous-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "obs, reward, terminated, truncated, info = env.step(env.action_space.sample())\n"
        "assert env.observation_space.contains(obs) and reward > 0\n"
        "print('ok')\n"
    )
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.slow
def test_sb3_subproc_vec_env_with_spawn():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # The "module:" prefix makes the spawned workers import (and so register) multispin_env.
    venv = make_vec_env(
        f"multispin_env:{HET}", n_envs=2, vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": "spawn"}
    )
    try:
        venv.seed(0)
        venv.reset()
        _, rewards, _, _ = venv.step(np.zeros((2, 12), dtype=np.float32))
        assert rewards.shape == (2,) and np.all(rewards > 0)
    finally:
        venv.close()


# ------------------------------------------------------------------- checkers


@pytest.mark.parametrize("process", sorted(ACCEPTANCE_PROCESSES))
@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_gymnasium_and_sb3_checkers_pass_without_warnings(env_id, process):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id, acceptance_process=process, csi_delay=1, csi_noise_std=0.1, draft_time_jitter=0.1)
        gym_check_env(env.unwrapped, skip_render_check=process != "iid")
        sb3_check_env(env.unwrapped)
        env.close()
    assert [str(w.message) for w in caught] == []


def test_checkers_with_resampled_populations_and_no_fading():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(HET, resample_population=True, fading=False, scenario="tasks")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


# --------------------------------------------------------------------- config


def test_default_config_documented_and_overridable():
    config = MultiSpinEnv.default_config()
    assert config == default_config()
    assert set(config) == set(SETTINGS)
    for key, doc in SETTINGS.items():
        assert len(doc) > 10, f"{key} is not documented"
    env = make(HET, config={"horizon": 3.0, "num_users": 4}, reward_scale=1.0, num_users=3)
    assert env.config.horizon == 3.0 and env.config.reward_scale == 1.0
    assert env.num_users == 3  # kwargs win over the config dict
    assert env.action_space.shape == (6,) and env.observation_space.shape == (16,)


@pytest.mark.parametrize(
    "key, value",
    [
        ("horizon", -1.0),
        ("horizon", float("nan")),
        ("reward_scale", 0.0),
        ("csi_delay", -1),
        ("csi_delay", 1.5),
        ("csi_noise_std", -0.1),
        ("draft_time_jitter", "big"),
        ("acceptance_process", "no-such-process"),
        ("num_users", 0),
        ("max_draft", True),
        ("fading", "yes"),
        ("resample_population", 1),
        ("population_seed", -3),
        ("positional_decay", 1.5),
        ("markov_switch_prob", 2.0),
        ("mean_request_tokens", 0.5),
        ("acceptance_prior", 1.0),
        ("acceptance_forgetting", 1.1),
        ("acceptance_prior_weight", 0.0),
        ("scenario", "nowhere"),
        ("device_mix", {"ultra": 1.0}),
        ("payload", "zip"),
        ("doppler_hz", -5.0),
        ("homogeneous", "no"),
    ],
)
def test_invalid_setting_raises_value_error_naming_it(key, value):
    with pytest.raises(ValueError, match=key):
        gym.make(HET, **{key: value})


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="bandwith"):
        gym.make(HET, bandwith=5)


def test_scenario_overrides_apply():
    env = make(HOM, num_users=3, max_draft=5, payload="token-only", device_mix={"high": 1.0}, doppler_hz=0.0)
    scenario = env.config.scenario
    assert (scenario.num_users, scenario.max_draft, scenario.payload, scenario.doppler_hz) == (3, 5, "token-only", 0.0)
    env.reset(seed=0)
    np.testing.assert_array_equal(static_params(env).draft_time, np.full(3, 0.004))
    assert env.action_space.shape == (4,)


# ---------------------------------------------------------------- action codec


def test_action_validation():
    env = make(HET)
    env.reset(seed=0)
    good = np.zeros(12, dtype=np.float32)
    for bad in (np.zeros(11, np.float32), np.zeros((1, 12), np.float32), "x"):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    for value in (np.nan, np.inf, -np.inf):
        action = good.copy()
        action[3] = value
        with pytest.raises(ValueError, match="NaN or inf"):
            env.step(action)


def test_out_of_range_actions_are_clipped():
    rng = np.random.default_rng(0)
    raw = rng.normal(0.0, 3.0, (20, 12))
    results = []
    for actions in (raw, np.clip(raw, -1, 1)):
        env = make(HET)
        env.reset(seed=5)
        results.append([env.step(a)[1] for a in actions])
    assert results[0] == results[1]


def test_decoding_rules():
    env = make(HET, num_users=4, max_draft=10)
    lengths, shares = env.decode_action([-1.0, 0.0, 1.0, 0.2, 1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(lengths, [0, 5, 10, 6])  # round((x + 1) / 2 * L_max)
    np.testing.assert_allclose(shares, [0.0, 1 / 2.5, 0.5 / 2.5, 1 / 2.5])  # user 0 does not draft
    # A drafting user with weight 0 cannot upload: its length becomes 0.
    lengths, shares = env.decode_action([1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 0.0, -3.0])
    np.testing.assert_array_equal(lengths, [10, 0, 10, 0])
    np.testing.assert_allclose(shares, [2 / 3, 0.0, 1 / 3, 0.0])
    # Every drafting user has weight 0: they share equally.
    lengths, shares = env.decode_action([1.0, -1.0, 0.0, 0.0, -1.0, 1.0, -1.0, -1.0])
    np.testing.assert_array_equal(lengths, [10, 0, 5, 5])
    np.testing.assert_allclose(shares, [1 / 3, 0.0, 1 / 3, 1 / 3])
    # Nobody drafts.
    lengths, shares = env.decode_action(-np.ones(8))
    np.testing.assert_array_equal(lengths, np.zeros(4))
    np.testing.assert_array_equal(shares, np.zeros(4))


def test_homogeneous_decoding_uses_one_length():
    env = make(HOM, num_users=3, max_draft=8)
    lengths, shares = env.decode_action([0.5, 1.0, 0.0, -1.0])
    np.testing.assert_array_equal(lengths, [6, 6, 0])
    np.testing.assert_allclose(shares, [2 / 3, 1 / 3, 0.0])


@st.composite
def allocations(draw, num_users: int, max_draft: int, homogeneous: bool):
    if homogeneous:
        common = draw(st.integers(0, max_draft))
        drafting = draw(st.lists(st.booleans(), min_size=num_users, max_size=num_users))
        lengths = np.where(drafting, common, 0)
    else:
        lengths = np.array(draw(st.lists(st.integers(0, max_draft), min_size=num_users, max_size=num_users)))
    raw = np.array(draw(st.lists(st.floats(1e-3, 1.0), min_size=num_users, max_size=num_users)))
    shares = np.where(lengths > 0, raw, 0.0)
    if shares.sum() > 0:
        shares = shares / shares.sum()
    return lengths, shares


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_encode_decode_round_trip(env_id):
    env = make(env_id)
    k, max_draft = env.num_users, env.max_draft

    @given(allocations(k, max_draft, env.config.homogeneous))
    def check(allocation):
        lengths, shares = allocation
        action = env.encode_action(lengths, shares)
        assert action.dtype == np.float32 and env.action_space.contains(action)
        decoded_lengths, decoded_shares = env.decode_action(action)
        np.testing.assert_array_equal(decoded_lengths, lengths)
        np.testing.assert_allclose(decoded_shares, shares, atol=1e-6, rtol=0)

    check()


def test_encode_normalises_over_drafting_users_and_batches():
    env = make(HET, num_users=3)
    action = env.encode_action([4, 0, 2], [0.2, 0.5, 0.2])
    lengths, shares = env.decode_action(action)
    np.testing.assert_array_equal(lengths, [4, 0, 2])
    np.testing.assert_allclose(shares, [0.5, 0.0, 0.5], atol=1e-6)
    batch = env.encode_action([[1, 2, 3], [0, 0, 0]], [[0.2, 0.3, 0.5], [0, 0, 0]])
    assert batch.shape == (2, 6)
    lengths, _ = env.decode_action(batch)
    np.testing.assert_array_equal(lengths, [[1, 2, 3], [0, 0, 0]])


@pytest.mark.parametrize(
    "lengths, shares, match",
    [
        ([1, 2], [0.5, 0.5], "draft_lengths"),
        ([1, 2, 11], [0.3, 0.3, 0.4], "draft_lengths"),
        ([1, 2.5, 1], [0.3, 0.3, 0.4], "draft_lengths"),
        ([1, 2, 3], [0.5, 0.5], "bandwidth"),
        ([1, 2, 3], [0.5, 0.5, -0.1], "bandwidth"),
        ([1, 2, 3], [0.5, 0.5, 0.0], "share > 0"),
        ([1, 2, 3], [0.5, 0.5, 0.5], "sum"),
        ([1, 2, 3], [np.nan, 0.5, 0.5], "bandwidth"),
    ],
)
def test_encode_rejects_invalid_allocations(lengths, shares, match):
    env = make(HET, num_users=3)
    with pytest.raises(ValueError, match=match):
        env.encode_action(lengths, shares)


def test_homogeneous_encode_rejects_unequal_lengths():
    env = make(HOM, num_users=3)
    with pytest.raises(ValueError, match="same length"):
        env.encode_action([1, 2, 2], [0.3, 0.3, 0.4])


# ------------------------------------------------------------------ dynamics


@pytest.mark.parametrize("process", sorted(ACCEPTANCE_PROCESSES))
def test_same_seed_same_actions_identical_trajectory(process):
    kwargs = dict(acceptance_process=process, csi_delay=2, csi_noise_std=0.2, draft_time_jitter=0.3, horizon=3.0)
    actions = np.random.default_rng(1).uniform(-1, 1, (150, 12)).astype(np.float32)

    def trajectory(seed):
        env = make(HET, **kwargs)
        out = [env.reset(seed=seed)]
        for action in actions:
            out.append(env.step(action))
            if out[-1][3]:
                out.append(env.reset())
        return out

    first, second, other = trajectory(3), trajectory(3), trajectory(4)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert data_equivalence(a, b, exact=True)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=False))


def test_fixed_population_ignores_reset_seed_and_resampling_does_not():
    env = make(HET)
    env.reset(seed=1)
    first = static_params(env)
    env.reset(seed=2)
    second = static_params(env)
    np.testing.assert_array_equal(first.upload_time, second.upload_time)
    np.testing.assert_array_equal(first.acceptance, second.acceptance)
    other_population = make(HET, population_seed=7)
    other_population.reset(seed=1)
    assert not np.array_equal(static_params(other_population).upload_time, first.upload_time)

    resampling = make(HET, resample_population=True)
    resampling.reset(seed=1)
    a = static_params(resampling)
    resampling.reset()
    b = static_params(resampling)
    assert not np.array_equal(a.upload_time, b.upload_time)
    resampling.reset(seed=1)
    np.testing.assert_array_equal(static_params(resampling).upload_time, a.upload_time)


def test_round_accounting_and_truncation():
    env = make(HET, horizon=2.0, reward_scale=0.25)
    obs, info = env.reset(seed=0)
    assert info["clock"] == 0.0
    action = constant_policy(env, [3, 0, 5, 2, 10, 1])
    clock, tokens, steps = 0.0, 0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        assert terminated is False
        np.testing.assert_array_equal(info["draft_lengths"], [3, 0, 5, 2, 10, 1])
        assert np.all(info["accepted"] <= info["draft_lengths"]) and np.all(info["accepted"] >= 0)
        np.testing.assert_array_equal(info["tokens"], info["accepted"] + 1)
        assert info["bandwidth"][1] == 0.0 and abs(info["bandwidth"].sum() - 1.0) < 1e-12
        assert reward == pytest.approx(0.25 * info["tokens"].sum())
        assert info["latency"] == pytest.approx(info["sync_time"] + info["verify_time"])
        assert info["verify_time"] == pytest.approx(0.060 + 0.0005 * (21 + 6))  # eq. (2)
        clock += info["latency"]
        tokens += int(info["tokens"].sum())
        assert info["clock"] == pytest.approx(clock)
        assert env.time_left_from_observation(obs) == pytest.approx(max(0.0, 1 - clock / 2.0), abs=1e-6)
        if truncated:
            break
        assert clock < 2.0
    assert clock >= 2.0 and steps > 3


def test_no_drafting_round_takes_verify_time_and_gives_one_token_each():
    env = make(HET)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(-np.ones(12, dtype=np.float32))
    np.testing.assert_array_equal(info["tokens"], np.ones(6))
    assert info["sync_time"] == 0.0
    assert info["latency"] == pytest.approx(0.060 + 0.0005 * 6)
    assert reward == pytest.approx(0.1 * 6)


def test_observation_fields_recover_the_physics():
    env = make(HET, acceptance_prior=0.6, acceptance_prior_weight=3.0, acceptance_forgetting=0.5)
    obs, info = env.reset(seed=2)
    layout = env.observation_layout
    assert sorted(layout) == sorted(
        ["spectral_efficiency", "draft_time", "acceptance", "last_draft_lengths", "last_tokens", "time_left"]
    )
    assert sum(s.stop - s.start for s in layout.values()) == env.observation_space.shape[0]
    truth = oracle_params(env)
    np.testing.assert_allclose(env.upload_time_from_observation(obs), truth.upload_time, rtol=1e-6)
    np.testing.assert_allclose(env.spectral_efficiency_from_observation(obs), info["spectral_efficiency"], rtol=1e-6)
    np.testing.assert_allclose(env.draft_time_from_observation(obs), truth.draft_time, rtol=1e-6)
    np.testing.assert_allclose(env.acceptance_from_observation(obs), 0.6, rtol=1e-6)  # the prior
    np.testing.assert_array_equal(obs[layout["last_draft_lengths"]], 0.0)
    assert env.time_left_from_observation(obs) == 1.0

    lengths = np.array([2, 4, 0, 6, 8, 10])
    successes, failures = np.zeros(6), np.zeros(6)
    for _ in range(5):
        obs, _, _, _, info = env.step(constant_policy(env, lengths))
        accepted = info["accepted"]
        successes = 0.5 * successes + accepted
        failures = 0.5 * failures + (accepted < lengths)
        np.testing.assert_allclose(
            env.acceptance_from_observation(obs), (successes + 1.8) / (successes + failures + 3.0), rtol=1e-6
        )
        np.testing.assert_allclose(obs[layout["last_draft_lengths"]], lengths / 10, rtol=1e-6)
        np.testing.assert_allclose(obs[layout["last_tokens"]], info["tokens"] / 11, rtol=1e-6)
        truth = oracle_params(env)
        np.testing.assert_allclose(env.upload_time_from_observation(obs), truth.upload_time, rtol=1e-6)
        np.testing.assert_array_equal(info["acceptance"], truth.acceptance)
    params = adaptive_params(env, obs)
    np.testing.assert_allclose(params.upload_time, truth.upload_time, rtol=1e-6)


def test_csi_delay_shows_an_old_channel():
    env = make(HET, csi_delay=2)
    obs, info = env.reset(seed=0)
    seen = [info["spectral_efficiency"]]
    action = constant_policy(env, 2)
    for _ in range(6):
        obs, _, _, _, info = env.step(action)
        seen.append(info["spectral_efficiency"])
        delayed = seen[max(0, len(seen) - 3)]
        np.testing.assert_allclose(env.spectral_efficiency_from_observation(obs), delayed, rtol=1e-6)


def test_csi_noise_perturbs_only_the_observation():
    clean, noisy = make(HET), make(HET, csi_noise_std=0.5)
    obs_clean, info_clean = clean.reset(seed=0)
    obs_noisy, info_noisy = noisy.reset(seed=0)
    np.testing.assert_array_equal(info_clean["spectral_efficiency"], info_noisy["spectral_efficiency"])
    assert not np.allclose(obs_clean[:6], obs_noisy[:6])


def test_fading_off_iid_is_exactly_the_solver_model():
    env = make(HET, fading=False, horizon=1e9)
    env.reset(seed=0)
    params = static_params(env)
    truth = oracle_params(env)
    np.testing.assert_array_equal(params.upload_time, truth.upload_time)
    np.testing.assert_array_equal(params.acceptance, truth.acceptance)
    lengths = np.array([3, 5, 1, 0, 7, 4])
    shares = np.array([0.2, 0.3, 0.1, 0.0, 0.25, 0.15])
    action = env.encode_action(lengths, shares)
    tokens, latencies = [], []
    for _ in range(6000):
        _, _, _, _, info = env.step(action)
        tokens.append(info["tokens"])
        latencies.append(info["latency"])
    # Every round takes exactly the model's latency for the decoded allocation (eq. 1-3).
    expected_latency = round_latency(params, info["draft_lengths"], info["bandwidth"])
    np.testing.assert_allclose(latencies, expected_latency, rtol=1e-13)
    # Mean tokens per user match N(a_k, L_k) (eq. 4), so the goodput is the solver's expected goodput (eq. 5).
    tokens = np.array(tokens)
    standard_error = tokens.std(axis=0) / np.sqrt(len(tokens)) + 1e-12
    assert np.all(np.abs(tokens.mean(axis=0) - expected_tokens(params.acceptance, lengths)) < 5 * standard_error)
    per_round = tokens.sum(axis=1)
    relative_error = per_round.std() / np.sqrt(per_round.size) / per_round.mean()
    goodput = per_round.sum() / np.sum(latencies)
    model = expected_goodput(params, info["draft_lengths"], info["bandwidth"])
    assert goodput == pytest.approx(float(model), rel=5 * relative_error)


def test_iid_sampler_statistics_in_the_env():
    env = make(HET, horizon=1e9)
    env.reset(seed=11)
    lengths = np.array([4, 4, 4, 2, 6, 4])
    action = constant_policy(env, lengths)
    accepted = np.array([env.step(action)[4]["accepted"] for _ in range(5000)])
    rates = static_params(env).acceptance
    for user in range(6):
        survival = rates[user] ** np.arange(lengths[user] + 1)
        probabilities = survival - np.append(survival[1:], 0.0)
        observed = np.bincount(accepted[:, user], minlength=lengths[user] + 1)
        assert stats.chisquare(observed, probabilities * len(accepted)).pvalue > 1e-4
        tokens = accepted[:, user] + 1
        assert abs(tokens.mean() - expected_tokens(rates[user], lengths[user])) < 5 * tokens.std() / np.sqrt(5000)


@pytest.mark.parametrize("doppler", [2.0, 10.0])
def test_channel_lag_one_autocorrelation_is_jakes(doppler):
    env = make(HET, doppler_hz=doppler, horizon=1e9)
    env.reset(seed=3)
    action = -np.ones(12, dtype=np.float32)  # nobody drafts: every round lasts T0 + kappa K
    gains, latencies = [env.channel_gain], []
    for _ in range(4000):
        latencies.append(env.step(action)[4]["latency"])
        gains.append(env.channel_gain)
    gains = np.array(gains)
    dt = latencies[0]
    np.testing.assert_allclose(latencies, dt)
    correlation = np.mean(gains[1:] * gains[:-1].conj()) / np.mean(np.abs(gains[:-1]) ** 2)
    rho = j0(2 * np.pi * doppler * dt)
    assert abs(correlation.real - rho) < 0.03
    assert abs(correlation.imag) < 0.03
    assert np.mean(np.abs(gains) ** 2) == pytest.approx(1.0, abs=0.05)


def test_info_contents_and_oracle_params():
    env = make(HET, acceptance_process="markov", markov_switch_prob=0.5)
    _, info = env.reset(seed=0)
    assert set(info) == {"clock", "acceptance", "spectral_efficiency"}
    np.testing.assert_array_equal(info["acceptance"], oracle_params(env).acceptance)
    for _ in range(5):
        upcoming = oracle_params(env)
        _, _, _, _, info = env.step(constant_policy(env, 3))
        assert set(info) == {
            "tokens",
            "accepted",
            "draft_lengths",
            "bandwidth",
            "dropped",
            "energy",
            "latency",
            "sync_time",
            "verify_time",
            "clock",
            "acceptance",
            "spectral_efficiency",
        }
        expected_latency = round_latency(upcoming, info["draft_lengths"], info["bandwidth"])
        assert info["latency"] == pytest.approx(float(expected_latency), rel=1e-12)
        np.testing.assert_array_equal(info["acceptance"], oracle_params(env).acceptance)
        rates = static_params(env).acceptance
        np.testing.assert_allclose(rates, env._core.base_acceptance[0] * 0.8)


def test_draft_time_jitter_is_mean_preserving():
    env = make(
        HET,
        fading=False,
        draft_time_jitter=0.5,
        horizon=1e9,
        num_users=1,
        device_mix={"low": 1.0},
        payload="token-only",
        upload_deadline=None,
    )  # no deadline: it would cut the slowest rounds
    env.reset(seed=0)
    action = env.encode_action([10], [1.0])
    sync = np.array([env.step(action)[4]["sync_time"] for _ in range(4000)])
    params = static_params(env)
    upload = 10 * params.upload_time[0]
    draft = (sync - upload) / 10  # per-token draft time of each round
    assert draft.std() > 0.005
    assert draft.mean() == pytest.approx(0.025, rel=0.03)


def test_render_modes():
    env = make(HET, render_mode="ansi")
    env.reset(seed=0)
    assert "no round played" in env.render()
    env.step(constant_policy(env, 4))
    text = env.render()
    assert "latency" in text and len(text.splitlines()) == 4 + env.num_users
    pytest.importorskip("matplotlib")
    frame = make(HET, render_mode="rgb_array")
    frame.reset(seed=0)
    frame.step(constant_policy(frame, 4))
    image = frame.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    with pytest.raises(ValueError, match="render_mode"):
        MultiSpinEnv(render_mode="human")


def test_package_exports():
    assert multispin_env.MultiSpinEnv is MultiSpinEnv
    assert hasattr(multispin_env, "MultiSpinVectorEnv")


def test_rgb_render_labels_do_not_overlap_and_say_when_no_round_was_played():
    """The y-label of the right panel must not sit over the left panel, and the axes say so when no round was
    played yet (they were empty)."""
    from multispin_env.rendering import render_figure

    env = make(HET, render_mode="rgb_array")
    env.reset(seed=0)
    figure = render_figure(env.unwrapped.core)
    assert [t.get_text() for a in figure.axes for t in a.texts] == ["no round played yet"] * 2
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()
    left, right = figure.axes
    renderer = figure.canvas.get_renderer()
    label = right.yaxis.label.get_window_extent(renderer)
    assert label.x0 >= left.get_window_extent(renderer).x1  # the right panel's y-label is right of the left axes
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3
    figure = render_figure(env.unwrapped.core)
    assert not any(a.texts for a in figure.axes) and len(figure.axes[0].patches) == 2 * env.unwrapped.num_users


def test_observation_value_decodes_every_field_in_its_unit():
    """observation_value inverts the env's own encoding: each field equals the raw quantity the info reports (the
    clipped ones below their caps), for an env with every optional field on."""
    env = make(
        HET,
        arrival_rate=4.0,
        mean_request_tokens=8.0,
        request_deadline_per_token=0.05,
        energy_budget=2.0,
        observe_throughput=True,
        horizon=3.0,
    )
    assert set(env.observation_layout) >= {"remaining", "slack", "energy_left", "throughput"}
    value = env.observation_value
    obs, info = env.reset(seed=4)
    assert value(obs, "time_left") == pytest.approx(3.0)
    np.testing.assert_allclose(value(obs, "spectral_efficiency"), info["spectral_efficiency"], rtol=1e-6)
    np.testing.assert_allclose(value(obs, "draft_time"), env.core.draft_time[0], rtol=1e-6)
    tokens = np.zeros(env.num_users)
    rng = np.random.default_rng(1)
    for _ in range(20):
        action = env.action_space.sample() if rng.random() < 0.5 else constant_policy(env, 3)
        obs, _, _, truncated, info = env.step(action)
        tokens += info["tokens"]
        np.testing.assert_allclose(value(obs, "last_tokens"), info["tokens"], rtol=1e-6)
        np.testing.assert_allclose(value(obs, "last_draft_lengths"), info["draft_lengths"], rtol=1e-6)
        assert value(obs, "time_left") == pytest.approx(max(3.0 - info["clock"], 0.0), rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(value(obs, "energy_left"), info["energy_left"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(value(obs, "remaining"), np.minimum(info["remaining"], 80.0), rtol=1e-6)
        slack = np.clip(info["slack"], 0.0, 10.0 * env.core.mean_target)
        np.testing.assert_allclose(value(obs, "slack"), slack, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(value(obs, "throughput"), tokens / info["clock"], rtol=1e-5)
        if truncated:
            break
    with pytest.raises(ValueError, match="no observation field 'no_such_field'; this env's fields: spectral_eff"):
        value(obs, "no_such_field")
