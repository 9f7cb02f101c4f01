"""Bad input, tried as a new user would: each gets a one-line ValueError naming what is wrong.

Before these fixes each case below crashed deep in numpy or numba (OverflowError, TypeError, "No matching
definition"), or was accepted and produced NaN/inf or gigabytes of state.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env._numba import choose_cache_dir
from multispin_env.model import MAX_DRAFT, MAX_USERS, RoundParams

HET = "MultiSpin-Heterogeneous-v0"
HOM = "MultiSpin-Homogeneous-v0"
PARAMS = {"acceptance": [0.6, 0.8], "draft_time": [0.01, 0.02], "upload_time": [0.001, 0.002]}


@pytest.mark.parametrize(
    "key, value",
    [
        ("horizon", 10**400),
        ("num_users", 10**400),
        ("max_draft", 10**400),
        ("csi_delay", 10**400),
        ("reward_scale", 10**400),
        ("population_seed", 10**400),
        ("horizon", "10"),
        ("num_users", "3"),
        ("csi_noise_std", 0.1 + 0.2j),
        ("doppler_hz", 1e308),
        ("reward_scale", 1e308),
        ("draft_time_jitter", 1e308),
        ("num_users", 10**9),
        ("csi_delay", 10**9),
        ("max_draft", 10**9),
        ("acceptance_process", ["iid"]),
        ("acceptance_process", "no-such-process"),
        ("device_mix", {"high": 1e308, "low": 1e308}),
        ("device_mix", ["high"]),
        ("fading", "yes"),
    ],
)
def test_bad_setting_is_a_value_error_naming_it(key: str, value: object) -> None:
    for maker in (gym.make, gym.make_vec):
        with pytest.raises(ValueError, match=key) as caught:
            maker(HET, **{key: value})
        assert "\n" not in str(caught.value)


def test_limits_are_checked_before_memory_is_allocated() -> None:
    # At the limits each alone is fine; together with many envs the state would not fit: refused up front.
    with pytest.raises(ValueError, match="num_envs"):
        gym.make_vec(HET, num_envs=100_000, num_users=MAX_USERS, max_draft=MAX_DRAFT)


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="config must be a dict"):
        gym.make(HET, config="base")


@pytest.mark.parametrize(
    "field, value",
    [
        ("verify_base", 10**400),
        ("verify_per_token", "0.001"),
        ("downlink_time", float("inf")),
        ("max_draft", "3"),
        ("max_draft", 10**400),
        ("max_draft", 2.5),
        ("acceptance", ["0.6", "0.8"]),
        ("acceptance", [10**400, 0.5]),
        ("draft_time", [0.01 + 0j, 0.02]),
        ("upload_time", [True, False]),
    ],
)
def test_bad_round_params_are_value_errors(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RoundParams(**{**PARAMS, field: value})


def test_round_params_accept_an_integral_float_length() -> None:
    assert RoundParams(**PARAMS, max_draft=7.0).max_draft == 7


@pytest.mark.parametrize("env_id", [HET, HOM])
def test_read_only_actions_are_accepted(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=0)
    action = env.action_space.sample().astype(np.float64)
    action.setflags(write=False)
    env.step(action)
    env.step(np.frombuffer(env.action_space.sample().tobytes(), dtype=np.float32))
    envs = gym.make_vec(env_id, num_envs=3)
    envs.reset(seed=0)
    actions = envs.action_space.sample()
    actions.setflags(write=False)
    envs.step(actions)
    assert np.all(np.isfinite(actions))  # not clipped in place either


@pytest.mark.parametrize(
    "make_action",
    [
        lambda a: a.astype(np.complex128),
        lambda a: a.astype(str),
        lambda a: np.array([datetime.datetime(2026, 1, 1)] * a.size),
        lambda a: a > 0,
        lambda a: [str(x) for x in a],
    ],
)
def test_non_real_actions_are_value_errors(make_action) -> None:
    env = gym.make(HET)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(make_action(env.action_space.sample()))
    envs = gym.make_vec(HET, num_envs=2)
    envs.reset(seed=0)
    batch = np.stack([np.asarray(make_action(a)) for a in envs.action_space.sample()])
    with pytest.raises(ValueError, match="action"):
        envs.step(batch)


def test_vector_nan_error_names_the_entry_in_one_line() -> None:
    envs = gym.make_vec(HET, num_envs=300)
    envs.reset(seed=0)
    actions = np.full(envs.action_space.shape, 5.0, dtype=np.float32)  # out of range: clipped when played
    actions[250, 3] = -np.inf
    actions[299, 0] = np.nan
    with pytest.raises(ValueError) as caught:
        envs.step(actions)
    assert str(caught.value) == "action[250, 3] is -inf: actions must not contain NaN or inf"  # not the array


def test_unwritable_cache_dirs_fall_back_with_one_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = [(blocker / "cache", False), (blocker / "home" / ".cache", False)]  # even root cannot write there
    fallback = tmp_path / "temp"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = choose_cache_dir([*unwritable, (fallback, True)], "abc")
    assert chosen == fallback / "numba-abc" and chosen.is_dir()
    assert len(caught) == 1 and "cached in" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert choose_cache_dir(unwritable, "abc") is None
    assert len(caught) == 1 and "compiled in every process" in str(caught[0].message)


def test_a_home_that_cannot_be_written_does_not_break_import(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "HOME": str(blocker), "XDG_CACHE_HOME": str(blocker), "NUMBA_CACHE_DIR": str(tmp_path / "c")}
    code = "import multispin_env._numba as m; print(m.CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(str(tmp_path / "c" / "multispin_env" / "numba-"))
