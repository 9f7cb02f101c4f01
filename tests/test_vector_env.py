"""The compiled, batched vector env: make_vec wiring, autoreset modes, determinism, agreement with the single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from baselines.information import oracle_params, static_params
from multispin_env.envs import MultiSpinEnv
from multispin_env.model import round_latency
from multispin_env.vector_env import ROUND_INFO_KEYS, MultiSpinVectorEnv

REGISTERED_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("MultiSpin-"))
HET = "MultiSpin-Heterogeneous-v0"


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_make_vec_uses_the_batched_entry_point(env_id):
    envs = gym.make_vec(env_id, num_envs=5, acceptance_process="markov")
    assert isinstance(envs, MultiSpinVectorEnv)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    single = gym.make(env_id)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (5, *single.observation_space.shape)
    assert envs.action_space.shape == (5, *single.action_space.shape)
    obs, info = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    assert info["acceptance"].shape == (5, envs.num_users) and info["_acceptance"].all()
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(obs)
    assert reward.shape == terminated.shape == truncated.shape == (5,)
    assert terminated.dtype == truncated.dtype == np.bool_
    for key in (*ROUND_INFO_KEYS, "clock", "acceptance", "spectral_efficiency"):
        assert info[key].shape[0] == 5 and info[f"_{key}"].shape == (5,)
    assert info["tokens"].shape == (5, envs.num_users)


def test_vector_seed_determinism():
    actions = np.random.default_rng(0).uniform(-1, 1, (60, 8, 12)).astype(np.float32)

    def run(seed):
        envs = gym.make_vec(
            HET, num_envs=8, horizon=1.0, acceptance_process="tasks", csi_noise_std=0.1, resample_population=True
        )
        out = [envs.reset(seed=seed)]
        out += [envs.step(a) for a in actions]
        return out

    first, second, other = run(5), run(5), run(6)
    for a, b in zip(first, second, strict=True):
        assert data_equivalence(a, b, exact=True)
    assert not np.array_equal(first[-1][0], other[-1][0])


def test_next_step_autoreset():
    envs = MultiSpinVectorEnv(num_envs=6, horizon=0.5)
    obs, _ = envs.reset(seed=1)
    actions = np.random.default_rng(1).uniform(-1, 1, (200, 6, 12)).astype(np.float32)
    previous_truncated = np.zeros(6, dtype=bool)
    episodes = np.zeros(6, dtype=int)
    time_left = envs.observation_layout["time_left"].start
    for action in actions:
        obs, reward, terminated, truncated, info = envs.step(action)
        assert not terminated.any()
        reset = previous_truncated
        # Sub-envs truncated last step were reset now: reset observation, zero reward, not done.
        assert np.all(reward[reset] == 0.0) and not truncated[reset].any()
        assert np.all(obs[reset, time_left] == 1.0) and np.all(info["clock"][reset] == 0.0)
        assert np.array_equal(info["_tokens"], ~reset) and info["_clock"].all()
        assert np.all(info["tokens"][reset] == 0) and np.all(info["tokens"][~reset] >= 1)
        assert np.all(reward[~reset] > 0.0)
        assert np.all(info["clock"][truncated] >= 0.5) and np.all(info["clock"][~truncated] < 0.5)
        episodes += truncated
        previous_truncated = truncated
    assert episodes.min() >= 2


def test_single_and_vector_envs_agree_in_distribution():
    config = dict(acceptance_process="positional", horizon=1e9)
    single = MultiSpinEnv(**config)
    single.reset(seed=0)
    action = single.encode_action([2, 4, 6, 3, 5, 1], [0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    single_latency, single_tokens = [], []
    for _ in range(3000):
        _, _, _, _, info = single.step(action)
        single_latency.append(info["latency"])
        single_tokens.append(info["tokens"])
    envs = MultiSpinVectorEnv(num_envs=100, **config)
    envs.reset(seed=100)
    actions = np.tile(action, (100, 1))
    vector_latency, vector_tokens = [], []
    for _ in range(30):
        _, _, _, _, info = envs.step(actions)
        vector_latency.append(info["latency"])
        vector_tokens.append(info["tokens"])
    vector_latency = np.concatenate(vector_latency)
    vector_tokens = np.concatenate(vector_tokens)
    single_tokens = np.array(single_tokens)
    assert stats.ks_2samp(single_latency, vector_latency).pvalue > 1e-3
    for user in range(6):
        table = np.array(
            [np.bincount(single_tokens[:, user], minlength=8)[:8], np.bincount(vector_tokens[:, user], minlength=8)[:8]]
        )
        table = table[:, table.sum(axis=0) > 0]
        assert stats.chi2_contingency(table).pvalue > 1e-3


def test_fixed_population_is_shared_and_resampled_populations_differ():
    fixed = MultiSpinVectorEnv(num_envs=4)
    fixed.reset(seed=0)
    single = MultiSpinEnv()
    single.reset(seed=9)
    for i in range(4):
        np.testing.assert_array_equal(static_params(fixed, i).upload_time, static_params(single).upload_time)
    resampled = MultiSpinVectorEnv(num_envs=4, resample_population=True)
    resampled.reset(seed=0)
    uploads = np.array([static_params(resampled, i).upload_time for i in range(4)])
    assert len({tuple(u) for u in uploads}) == 4


def test_round_params_per_sub_env_match_the_step():
    envs = MultiSpinVectorEnv(num_envs=3, acceptance_process="markov", markov_switch_prob=0.3)
    envs.reset(seed=2)
    actions = envs.encode_action(np.tile([3, 3, 3, 0, 5, 5], (3, 1)), np.tile([0.2, 0.2, 0.2, 0, 0.2, 0.2], (3, 1)))
    for _ in range(5):
        upcoming = [oracle_params(envs, i) for i in range(3)]
        _, _, _, _, info = envs.step(actions)
        for i in range(3):
            expected = round_latency(upcoming[i], info["draft_lengths"][i], info["bandwidth"][i])
            assert info["latency"][i] == pytest.approx(float(expected), rel=1e-12)
            np.testing.assert_array_equal(info["acceptance"][i], oracle_params(envs, i).acceptance)


@given(
    st.lists(st.integers(0, 10), min_size=18, max_size=18),
    st.lists(st.floats(1e-3, 1.0), min_size=18, max_size=18),
)
def test_batch_encode_decode_round_trip(lengths, weights):
    envs = MultiSpinVectorEnv(num_envs=3)
    lengths = np.array(lengths).reshape(3, 6)
    shares = np.where(lengths > 0, np.array(weights).reshape(3, 6), 0.0)
    totals = shares.sum(axis=1, keepdims=True)
    shares = shares / np.where(totals > 0, totals, 1.0)
    actions = envs.encode_action(lengths, shares)
    assert actions.shape == (3, 12) and envs.action_space.contains(actions)
    decoded_lengths, decoded_shares = envs.decode_action(actions)
    np.testing.assert_array_equal(decoded_lengths, lengths)
    np.testing.assert_allclose(decoded_shares, shares, atol=1e-6, rtol=0)


def test_vector_action_validation():
    envs = MultiSpinVectorEnv(num_envs=2)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros((3, 12), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros(12, dtype=np.float32))
    bad = np.zeros((2, 12), dtype=np.float32)
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        envs.step(bad)
    with pytest.raises(ValueError, match="num_envs"):
        MultiSpinVectorEnv(num_envs=0)


def test_vector_render():
    envs = gym.make_vec(HET, num_envs=2, render_mode="ansi")
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    frames = envs.render()
    assert isinstance(frames, tuple) and len(frames) == 2 and all("latency" in f for f in frames)


def _episode_actions(envs, steps, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (steps, *envs.action_space.shape)).astype(np.float32)


def test_same_step_autoreset():
    horizon = 0.5
    envs = gym.make_vec(HET, num_envs=5, autoreset_mode="SAME_STEP", horizon=horizon)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    time_left = envs.unwrapped.observation_layout["time_left"].start
    obs, _ = envs.reset(seed=2)
    episodes = np.zeros(5, dtype=int)
    for action in _episode_actions(envs, 150, 2):
        obs, reward, terminated, truncated, info = envs.step(action)
        assert not terminated.any() and np.all(reward > 0.0)  # every sub-env plays every step
        if truncated.any():
            final_obs, final_info = info["final_obs"], info["final_info"]
            assert np.array_equal(info["_final_obs"], truncated) and np.array_equal(info["_final_info"], truncated)
            # the ended episode's last observation and round, then the new episode's first observation
            assert np.all(final_obs[truncated, time_left] == 0.0) and np.all(obs[truncated, time_left] == 1.0)
            assert np.all(final_info["clock"][truncated] >= horizon)
            np.testing.assert_allclose(0.1 * final_info["tokens"][truncated].sum(axis=1), reward[truncated])
            assert np.all(info["clock"][truncated] == 0.0) and np.all(info["tokens"][truncated] == 0)
        else:
            assert "final_obs" not in info
        assert np.array_equal(info["_tokens"], ~truncated) and info["_clock"].all()
        assert np.all(info["clock"][~truncated] < horizon)
        episodes += truncated
    assert episodes.min() >= 2


def test_same_step_runs_are_seed_deterministic():
    def run(seed):
        envs = MultiSpinVectorEnv(num_envs=3, horizon=0.4, autoreset_mode=AutoresetMode.SAME_STEP)
        out = [envs.reset(seed=seed)]
        out += [envs.step(a) for a in _episode_actions(envs, 60, 0)]
        return out

    first, second = run(5), run(5)
    for a, b in zip(first, second, strict=True):
        assert data_equivalence(a, b, exact=True)


def test_disabled_autoreset_and_reset_mask():
    envs = gym.make_vec(HET, num_envs=4, autoreset_mode=AutoresetMode.DISABLED, horizon=0.3)
    time_left = envs.unwrapped.observation_layout["time_left"].start
    envs.reset(seed=0)
    ended = np.zeros(4, dtype=bool)
    for action in _episode_actions(envs, 100, 1):
        before = envs.unwrapped._core.clock.copy()
        obs, _, _, truncated, info = envs.step(action)
        assert np.all(info["clock"] > before)  # nobody is reset by step
        ended |= truncated
        if ended.any() and not ended.all():
            break
    assert ended.any() and not ended.all()
    clocks = info["clock"].copy()
    obs, info = envs.reset(options={"reset_mask": ended})
    assert np.array_equal(info["_clock"], ended)
    assert np.all(obs[ended, time_left] == 1.0) and np.all(info["clock"][ended] == 0.0)
    np.testing.assert_array_equal(envs.unwrapped._core.clock[~ended], clocks[~ended])  # the others untouched
    assert np.all(obs[ended, envs.unwrapped.observation_layout["last_tokens"]] == 0.0)


@pytest.mark.parametrize(
    "mask, message",
    [(np.zeros(3, dtype=bool), "at least one"), (np.ones(2, dtype=bool), "shape"), (np.ones(3), "bool")],
)
def test_reset_mask_validation(mask, message):
    envs = MultiSpinVectorEnv(num_envs=3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        envs.reset(options={"reset_mask": mask})


def test_unknown_autoreset_mode():
    with pytest.raises(ValueError, match="autoreset_mode"):
        MultiSpinVectorEnv(num_envs=2, autoreset_mode="sometimes")


@pytest.mark.parametrize("mode", ["NEXT_STEP", "SAME_STEP"])
def test_the_deadline_keys_are_masked_and_zeroed_where_an_episode_restarts(mode: str) -> None:
    """With deadlines, deadline_met and deadline_missed are round keys (zero and masked out for a sub-env restarted in
    the step: its counts are in final_info) and slack a state key, masked like every other key (docs/model.md 8.3)."""
    envs = gym.make_vec("MultiSpinSuite/Deadlines-v0", num_envs=2, autoreset_mode=mode, horizon=4.0, arrival_rate=1.0)
    envs.reset(seed=3)
    rng = np.random.default_rng(0)
    restarts, final_decided = 0, 0
    for _ in range(300):
        *_, truncated, info = envs.step(rng.uniform(-1, 1, envs.action_space.shape).astype(np.float32))
        for key in ("deadline_met", "deadline_missed", "slack"):
            assert f"_{key}" in info and info[key].shape == (2, envs.num_users), key
        assert info["_slack"].all()
        played = info["_completed"]
        for key in ("deadline_met", "deadline_missed"):
            np.testing.assert_array_equal(info[f"_{key}"], played)
            assert not info[key][~played].any()  # nothing counted twice with final_info
        if mode == "SAME_STEP" and truncated.any():
            restarts += 1
            final = info["final_info"]
            final_decided += int((final["deadline_met"] + final["deadline_missed"])[truncated].sum())
    assert mode == "NEXT_STEP" or (restarts >= 2 and final_decided > 0)
