"""Settings that are unknown, of the wrong type, or at the edge of their ranges: the error each gives, or finite
output (docs/model.md section 4.1)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.config import SETTINGS, EnvConfig, UnknownSettingError
from multispin_env.registration import ENV_IDS
from multispin_env.scenarios import Scenario
from multispin_env.suite import TASK_SPECS

ALL_IDS = [*ENV_IDS, *TASK_SPECS]
HET = "MultiSpin-Heterogeneous-v0"


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_an_unknown_keyword_is_a_type_error_in_pythons_words(env_id: str) -> None:
    with pytest.raises(TypeError, match=r"__init__\(\) got an unexpected keyword argument 'frameskip'") as caught:
        gym.make(env_id, frameskip=4)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, UnknownSettingError)
    message = str(caught.value)
    assert "\n" not in message and all(name in message for name in SETTINGS)  # the known settings, listed


def test_the_vector_env_names_the_unknown_keyword_too() -> None:
    with pytest.raises(TypeError, match=r"VectorEnv.__init__\(\) got an unexpected keyword argument 'frameskip'"):
        gym.make_vec(HET, num_envs=2, frameskip=4)


def test_unknown_config_keys_of_any_type_are_listed_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^config has unknown setting\(s\) 1, 'x'; known settings: ") as caught:
        gym.make(HET, config={1: 2, "x": 3})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "profile",
    [
        [("0", "0.01"), ("1", "0.02")],
        [(True, 0.01), (2, 0.02)],
        [(0, 0.01), (1, "2")],
        [(0, 0.01), (1, False)],
        [(0, 0.01), (1, 0.02 + 0j)],
    ],
)
def test_a_verify_profile_of_strings_or_bools_is_rejected(profile: list) -> None:
    message = (
        r"^verify_profile must be a profile name or \(tokens, seconds\) pairs of real numbers: "
        r"verify_profile\[[01]\]"
    )
    with pytest.raises(ValueError, match=message):
        EnvConfig(verify_profile=profile)
    with pytest.raises(ValueError, match=message):
        Scenario(verify_profile=profile)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (((1.0, 0.03), (1.0 + 1e-9, 0.04)), "tokens must increase by at least 1"),
        (((1.0, 0.04), (2.0, 0.03)), "seconds must not decrease"),
        (((1.0, 0.0), (2.0, 0.03)), "must have tokens in"),
        (((1.0, 0.03), (2.0, math.inf)), "is not finite"),
    ],
)
def test_round_params_and_the_env_setting_share_one_verify_profile_rule(profile: object, message: str) -> None:
    """The same table is refused with the same line by the env setting and by the solvers' RoundParams."""
    from multispin_env.model import RoundParams

    lines = []
    for build in (
        lambda: EnvConfig(verify_profile=profile),
        lambda: RoundParams(draft_time=[0.01], upload_time=[0.001], acceptance=[0.7], verify_profile=profile),
    ):
        with pytest.raises(ValueError, match=message) as caught:
            build()
        lines.append(str(caught.value))
    assert lines[0] == lines[1] and lines[0].startswith("verify_profile")


def test_a_bad_point_of_a_long_verify_profile_is_named_in_a_short_line() -> None:
    table = [(float(i), 0.01 + 1e-6 * i) for i in range(100_001)]
    table[77_777] = (table[77_777][0], math.nan)
    with pytest.raises(ValueError, match=r"^verify_profile\[77777\] = \(77777\.0, nan\) is not finite$") as caught:
        EnvConfig(verify_profile=table)
    assert len(str(caught.value)) < 200
    table[77_777] = (table[77_777][0] - 0.5, 0.02)
    with pytest.raises(
        ValueError,
        match=r"^verify_profile tokens must increase by at least 1 from point to point: "
        r"verify_profile\[77777\] = \(77776\.5, 0\.02\) after \(77776\.0, ",
    ) as caught:
        EnvConfig(verify_profile=table)
    assert len(str(caught.value)) < 200


# Values that were accepted and gave NaN/inf observations or a foreign exception: now each is rejected naming the
# setting, or gives finite rounds.
EDGE_CASES = [
    ({"acceptance_prior_weight": 5e-324, "acceptance_prior": 0.5}, "acceptance_prior_weight"),  # a_hat was 0 / 0
    ({"acceptance_prior_weight": 1e-6, "acceptance_prior": 0.5, "acceptance_forgetting": 0.0}, None),
    ({"acceptance_prior_weight": 1e-6, "acceptance_prior": 5e-324}, None),
    ({"acceptance_prior_weight": 1e-6, "acceptance_prior": 1 - 1e-16}, None),
    ({"verify_profile": [(0, 0.01), (1, 1e308)]}, "verify_profile must have tokens in"),
    ({"verify_profile": [(0, 0.01), (1e-300, 1e9)]}, "verify_profile tokens must increase by at least 1"),
    ({"verify_profile": [(0, 0.01), (1, 1e9)], "horizon": 1e9}, None),
    ({"mixture_concentration": 5e-324, "acceptance_process": "mixture"}, "mixture_concentration"),
    (
        {
            "mixture_concentration": 1e-6,
            "acceptance_process": "mixture",
            "scenario": {"acceptance_range": (0.5, 1 - 1e-16)},
        },
        None,
    ),
    (
        {
            "mixture_concentration": 1e6,
            "acceptance_process": "mixture",
            "mixture_scope": "request",
            "scenario": {"acceptance_range": (5e-324, 5e-324)},
        },
        None,
    ),
    ({"scenario": {"tx_power_dbm": 1e308}}, "tx_power_dbm"),
    ({"scenario": {"verify_base": 1e308}}, "verify_base"),
    ({"scenario": {"verify_per_token": 1e308}}, "verify_per_token"),
    ({"scenario": {"downlink_time": 1e308}}, "downlink_time"),
    ({"scenario": {"bandwidth_hz": 5e-324}}, "bandwidth_hz"),
    ({"scenario": {"shadowing_sigma_db": 1e308}}, "shadowing_sigma_db"),
    ({"scenario": {"noise_figure_db": -1e308}}, "noise_figure_db"),
    (
        {
            "scenario": {"verify_base": 1e9, "verify_per_token": 1e9, "downlink_time": 1e9},
            "horizon": 1e9,
            "num_users": 4096,
            "max_draft": 256,
            "upload_deadline": None,
        },
        None,
    ),
    (
        {
            "scenario": {
                "tx_power_dbm": 100.0,
                "noise_density_dbm_hz": -300.0,
                "noise_figure_db": 0.0,
                "bandwidth_hz": 1.0,
                "shadowing_sigma_db": 100.0,
                "distance_range_m": (1e-3, 1e-3),
            }
        },
        None,
    ),
    (
        {
            "scenario": {
                "tx_power_dbm": -100.0,
                "noise_density_dbm_hz": 0.0,
                "noise_figure_db": 100.0,
                "bandwidth_hz": 1e12,
                "shadowing_sigma_db": 100.0,
                "distance_range_m": (1e6, 1e6),
            },
            "upload_deadline": None,
            "payload": "full",
        },
        None,
    ),
]


@pytest.mark.parametrize(("settings", "rejected"), EDGE_CASES)
def test_range_edges_are_rejected_by_name_or_finite(settings: dict, rejected: str | None) -> None:
    kwargs = dict(settings)
    try:
        if "scenario" in kwargs:
            kwargs["scenario"] = Scenario(**kwargs["scenario"])
        env = gym.make(HET, disable_env_checker=True, **kwargs)
    except ValueError as exc:
        assert rejected is not None and str(exc).startswith(rejected) and "\n" not in str(exc), str(exc)
        return
    assert rejected is None, f"accepted {settings}"
    obs, _ = env.reset(seed=3)
    for _ in range(50):
        obs, reward, _, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and math.isfinite(reward)
        for key, value in info.items():
            array = np.asarray(value)
            assert array.dtype.kind not in "fc" or np.all(np.isfinite(array)), key
        if truncated:
            env.reset()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_torchrl_wraps_every_id(env_id: str) -> None:
    """torchrl's GymEnv passes ``frameskip`` first and retries without it on Python's unexpected-keyword
    TypeError; then its spec check runs a rollout through the wrapper."""
    envs = pytest.importorskip("torchrl.envs")
    utils = pytest.importorskip("torchrl.envs.utils")
    env = envs.GymEnv(env_id)
    utils.check_env_specs(env, seed=0)
    env.close()
