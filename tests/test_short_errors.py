"""Errors about long inputs stay one short line naming the offending entry, never the whole input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.model import RoundParams, validate_allocation

HET = "MultiSpin-Heterogeneous-v0"
POINTS = 100_001


def _profile(bad_at: int, bad: tuple) -> list:
    points: list = [(float(i), 0.01 + 1e-6 * i) for i in range(POINTS)]
    points[bad_at] = bad
    return points


@pytest.mark.parametrize(
    "profile, message",
    [
        (_profile(5000, (4999.0, 0.02)), r"verify_profile\[5000\] = \(4999\.0, 0\.02\) after \(4999\.0, "),
        (_profile(70000, (70000.0, 0.001)), r"verify_profile\[70000\] = \(70000\.0, 0\.001\) after "),
        (_profile(0, (-1.0, 0.01)), r"verify_profile\[0\] = \(-1\.0, 0\.01\)$"),
        (_profile(123, (123.0, float("inf"))), r"verify_profile\[123\] = \(123\.0, inf\) is not finite"),
        (_profile(50000, (1.0, "x")), r"verify_profile must be a profile name or \(tokens, seconds\) pairs"),
    ],
)
def test_a_bad_long_verify_profile_gives_a_short_message(profile, message):
    with pytest.raises(ValueError, match=message) as caught:
        gym.make(HET, verify_profile=profile)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 300, len(text)


def test_a_nan_in_a_large_batch_of_actions_is_named_in_one_short_line():
    envs = gym.make_vec(HET, num_envs=1000)
    envs.reset(seed=0)
    actions = np.zeros(envs.action_space.shape, dtype=np.float32)
    actions[999, 11] = np.nan
    with pytest.raises(ValueError) as caught:
        envs.step(actions)
    assert str(caught.value) == "action[999, 11] is nan: actions must not contain NaN or inf"


K_LONG = 4096  # the largest K: a message printing the arrays would run to tens of kilobytes


def _long_params():
    return RoundParams(
        acceptance=np.full(K_LONG, 0.7), draft_time=np.full(K_LONG, 0.01), upload_time=np.full(K_LONG, 0.001)
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: RoundParams(
                acceptance=np.r_[np.full(K_LONG - 1, 0.7), np.nan],
                draft_time=np.full(K_LONG, 0.01),
                upload_time=np.full(K_LONG, 0.001),
            ),
            r"^acceptance\[4095\] is nan: acceptance must be finite$",
        ),
        (
            lambda: _validate(np.r_[np.zeros(K_LONG - 2), np.inf, 1.0], None),
            r"^draft_lengths\[4094\] is inf: draft_lengths must be finite$",
        ),
        (lambda: _validate(np.full(K_LONG, 0.5), None), r"^draft_lengths must be integers in 0\.\.10, got array\("),
        (
            lambda: _validate(np.ones(K_LONG), np.r_[np.full(K_LONG - 1, 1.0 / K_LONG), -np.inf]),
            r"^bandwidth\[4095\] is -inf: bandwidth must be finite$",
        ),
        (
            lambda: _validate(np.ones(K_LONG), np.r_[np.full(K_LONG - 1, 1.0 / K_LONG), -0.5]),
            r"^bandwidth shares must be >= 0, got array\(",
        ),
    ],
)
def test_round_parameter_and_allocation_errors_name_the_entry_in_one_short_line(call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    text = str(caught.value)
    assert "\n" not in text and len(text) < 200, len(text)


def _validate(lengths, shares):
    return validate_allocation(_long_params(), lengths, shares)
