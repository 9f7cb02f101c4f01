"""Fading models are registered components (docs/model.md section 9.1): the ``fading`` setting names one, True/False
are its aliases, and a new model (here Rician fading) plugs in through the recipe alone."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from multispin_env import MultiSpinVectorEnv
from multispin_env.channel import (
    FADING_MODELS,
    JakesFading,
    NoFading,
    complex_normal,
    make_fading_model,
    register_fading_model,
)
from multispin_env.config import EnvConfig

HET = "MultiSpin-Heterogeneous-v0"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "model.md"


def recipe_example() -> str:
    """The code block of docs/model.md section 9.1 (the recipe's example: Rician fading)."""
    section = DOCS.read_text().split("### 9.1 Adding a fading model", 1)[1].split("## 10.", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def rician() -> Iterator[type[JakesFading]]:
    """The recipe's example run as written (it registers "rician"); removed after, so the registry other tests
    see is unchanged."""
    namespace: dict[str, Any] = {}
    exec(compile(recipe_example(), str(DOCS), "exec"), namespace)  # the documented example itself
    try:
        yield namespace["RicianFading"]
    finally:
        FADING_MODELS.pop("rician", None)


def test_bool_settings_are_aliases_of_the_names() -> None:
    assert EnvConfig(fading=True).fading == "jakes" and EnvConfig(fading=np.bool_(False)).fading == "none"
    assert EnvConfig().fading == "jakes"
    assert isinstance(make_fading_model("none", 10.0), NoFading)
    jakes = make_fading_model(True, 10.0)
    assert type(jakes) is JakesFading and jakes.doppler_hz == 10.0
    # the alias and the name give the same trajectory
    for value, name in ((True, "jakes"), (False, "none")):
        runs = []
        for fading in (value, name):
            env = gym.make(HET, fading=fading)
            obs, _ = env.reset(seed=3)
            env.action_space.seed(3)
            runs.append((obs, [env.step(env.action_space.sample())[:2] for _ in range(5)]))
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        for (obs_a, reward_a), (obs_b, reward_b) in zip(runs[0][1], runs[1][1], strict=True):
            np.testing.assert_array_equal(obs_a, obs_b)
            assert reward_a == reward_b


@pytest.mark.parametrize("value", ["rayleigh", 1, None, "JAKES"])
def test_an_unknown_fading_model_is_a_one_line_error_listing_the_registered_ones(value: object) -> None:
    with pytest.raises(ValueError) as error:
        EnvConfig(fading=value)
    message = str(error.value)
    assert "\n" not in message and message.startswith("fading must be one of ['jakes', 'none']")
    with pytest.raises(ValueError, match="fading must be one of"):
        make_fading_model(value, 10.0)  # type: ignore[arg-type]


def test_a_model_needs_a_name() -> None:
    class Nameless(JakesFading):
        name = ""

    with pytest.raises(ValueError, match="Nameless needs a non-empty class attribute name"):
        register_fading_model(Nameless)


def test_a_registered_rician_model_runs_in_the_compiled_round_with_its_statistics(rician: type) -> None:
    """Gains the compiled round draws and evolves under fading="rician": E|h|^2 = 1, E h = mu, and the K-factor
    estimated from the gains (LoS power / scattered power) and from the moments of |h|^2 both near K."""
    k_factor = rician.k_factor
    assert rician.line_of_sight**2 == pytest.approx(k_factor / (k_factor + 1.0))
    env = MultiSpinVectorEnv(num_envs=256, fading="rician", doppler_hz=200.0)
    env.reset(seed=5)
    assert isinstance(env._core.fading, rician)
    gains = [env.channel_gain]
    for _ in range(60):
        env.step(env.action_space.sample())
        gains.append(env.channel_gain)
    h = np.concatenate([g.ravel() for g in gains])
    power = np.abs(h) ** 2
    assert power.mean() == pytest.approx(1.0, abs=0.02)
    assert h.mean().real == pytest.approx(rician.line_of_sight, abs=0.02) and abs(h.mean().imag) < 0.02
    k_direct = abs(h.mean()) ** 2 / np.mean(np.abs(h - h.mean()) ** 2)
    assert k_direct == pytest.approx(k_factor, rel=0.1)
    # moment estimator from powers alone: Var|h|^2 / E[|h|^2]^2 = (1 + 2K) / (1 + K)^2
    root = math.sqrt(1.0 - power.var() / power.mean() ** 2)
    assert root / (1.0 - root) == pytest.approx(k_factor, rel=0.15)
    # the channel moved between rounds (the round evolves it), but stays correlated at this Doppler
    assert not np.array_equal(gains[0], gains[1])
    env.close()


def test_the_compiled_rician_step_and_restart_are_the_models(rician: type) -> None:
    """One round of the kernel moves the gain as the model's numpy step does; the model's start gains have unit
    power (the kernel's restart against ``initial_gains``: tests/test_channel.py)."""
    env = gym.make(HET, fading="rician", doppler_hz=100.0)
    env.reset(seed=7)
    core = env.unwrapped._core
    model = core.fading
    before = core.gain.copy()
    info = env.step(env.action_space.sample())[-1]
    innovation = complex_normal(core._normal_block[core._block_index - 1][:, 0])  # this round's N(0, 1) pairs
    expected = model.step(before[0], info["latency"], innovation)
    np.testing.assert_allclose(core.gain[0], expected, rtol=1e-12, atol=1e-14)
    # a restart: the start gains are the model's initial_gains of the pairs drawn after the reset's block
    rng = copy.deepcopy(env.unwrapped.np_random)
    env.reset()
    np.testing.assert_array_equal(core.gain[0], model.initial_gains(rng.standard_normal((2, 1, core.num_users)))[0])
    starts = model.initial_gains(np.random.default_rng(0).standard_normal((2, 200_000)))
    assert np.mean(np.abs(starts) ** 2) == pytest.approx(1.0, abs=0.01)
    env.close()


def test_gym_make_with_a_registered_model_passes_the_env_checker(rician: type) -> None:
    env = gym.make(HET, fading="rician")
    check_env(env.unwrapped)
    env.close()


def test_het_opt_predictive_refuses_a_line_of_sight_model(rician: type) -> None:
    """Its law of the round's channel given the estimate needs zero-mean fading (docs/model.md 7.2): the
    observation shows |h_hat| only, not its phase against the line-of-sight part."""
    from baselines.predictive import PredictivePolicy

    with pytest.raises(ValueError, match=r"^het-opt-predictive plans for zero-mean fading: .*'rician'") as caught:
        PredictivePolicy(gym.make(HET, fading="rician", csi_delay=1))
    assert "\n" not in str(caught.value)
    PredictivePolicy(gym.make(HET, fading="jakes", csi_delay=1))  # the zero-mean model is planned for
