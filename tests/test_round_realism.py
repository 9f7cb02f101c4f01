"""Round realism (docs/model.md eq. (1'), (2'), section 5.7): deadline, verification knee/profile, energy.

The Monte-Carlo checks compare the environment's goodput with the expected goodput of the same static
allocation, computed by :func:`multispin_env.model.expected_goodput` from the same RoundParams the analytic
policies plan with: they hold only if the simulated round and the model agree on the new terms.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from baselines.information import static_params
from multispin_env.channel import dbm_to_watts
from multispin_env.model import RoundParams, expected_goodput, finish_time, verify_time

HET = "MultiSpin-Heterogeneous-v0"


def _monte_carlo_goodput(env: gym.Env, action: np.ndarray, rounds: int) -> tuple[float, dict[str, np.ndarray]]:
    """Tokens per simulated second of ``rounds`` rounds of a fixed action (one long episode), and the last info."""
    env.reset(seed=0)
    tokens = 0.0
    for _ in range(rounds):
        *_, info = env.step(action)
        tokens += info["tokens"].sum()
    return tokens / info["clock"], info


@pytest.mark.parametrize(
    "settings",
    [
        dict(verify_knee_tokens=32.0, upload_deadline=None),
        dict(verify_profile="llama2-7b-prefill", upload_deadline=None),
        dict(verify_profile=((1, 0.0326), (2, 0.039), (3, 0.0395)), upload_deadline=None),
        dict(upload_deadline=0.03),  # binding: the slowest drafting users miss it every round
    ],
)
def test_monte_carlo_goodput_of_a_static_allocation_matches_the_model(settings: dict) -> None:
    env = gym.make(HET, fading=False, horizon=1e9, **settings).unwrapped
    params = static_params(env)
    lengths = np.array([2, 4, 6, 3, 8, 5])
    shares = np.full(6, 1 / 6)
    expected = float(expected_goodput(params, lengths, shares))
    goodput, info = _monte_carlo_goodput(env, env.encode_action(lengths, shares), 20_000)
    assert goodput == pytest.approx(expected, rel=0.02)
    binding = params.upload_deadline is not None
    assert info["dropped"].any() == binding
    # the model's own terms are what the round played (deterministic without fading and jitter)
    np.testing.assert_allclose(info["verify_time"], verify_time(np.where(info["dropped"], 0, lengths), params))


def test_a_binding_deadline_drops_exactly_the_late_users_with_one_token_each() -> None:
    env = gym.make(HET, fading=True, upload_deadline=0.25, horizon=1e9).unwrapped
    env.reset(seed=3)
    action = env.encode_action(np.full(6, 6), np.full(6, 1 / 6))
    seen = 0
    for _ in range(500):
        core = env.core
        finish = finish_time(np.full(6, 6.0), core.draft_time[0], core.upload_time[0], np.full(6, 1 / 6))
        *_, info = env.step(action)
        np.testing.assert_array_equal(info["dropped"], finish > 0.25)
        assert np.all(info["tokens"][info["dropped"]] == 1) and np.all(info["accepted"][info["dropped"]] == 0)
        if info["dropped"].any():
            assert info["sync_time"] == 0.25
            seen += 1
        else:
            assert info["sync_time"] == pytest.approx(finish.max(), rel=1e-12)
    assert 0 < seen < 500


def test_energy_is_drafting_plus_transmit_power_times_their_durations() -> None:
    env = gym.make(HET, fading=False, upload_deadline=0.04, energy_weight=0.5, reward_scale=1.0).unwrapped
    env.reset(seed=1)
    core = env.core
    lengths, shares = np.array([0, 3, 6, 9, 2, 10]), np.array([0.0, 0.1, 0.2, 0.3, 0.1, 0.3])
    _, reward, _, _, info = env.step(env.encode_action(lengths, shares))
    draft_power = core.populations[0].draft_power
    drafting = lengths * core.draft_time[0]
    upload_end = np.minimum(drafting + lengths * core.upload_time[0] / np.maximum(info["bandwidth"], 1e-300), 0.04)
    upload_end = np.where(lengths > 0, upload_end, 0.0)
    expected = draft_power * drafting + dbm_to_watts(23.0) * np.maximum(upload_end - drafting, 0.0)
    np.testing.assert_allclose(info["energy"], expected, rtol=1e-12)
    assert info["energy"][0] == 0.0 and info["dropped"].any()
    assert reward == pytest.approx(info["tokens"].sum() - 0.5 * info["energy"].sum(), rel=1e-12)


def test_round_params_deadline_makes_late_users_count_as_one_token() -> None:
    params = RoundParams(
        acceptance=[0.6, 0.8], draft_time=[0.01, 0.02], upload_time=[0.001, 0.002], upload_deadline=0.05
    )
    # user 1 drafting 4 tokens finishes at 4 (0.02 + 0.002 / b) > 0.05 for any share: dropped
    g = float(expected_goodput(params, [3, 4], [0.5, 0.5]))
    latency = 0.05 + 0.060 + 0.0005 * (3 + 1 + 0 + 1)
    assert g == pytest.approx(((1 - 0.6**4) / 0.4 + 1.0) / latency, rel=1e-12)


@pytest.mark.parametrize(
    "bad", [((1, 0.03),), ((2, 0.03), (1, 0.04)), ((1, 0.04), (2, 0.03)), "nope", ((1, -1), (2, 1))]
)
def test_bad_verify_profiles_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError, match="verify_profile"):
        gym.make(HET, verify_profile=bad)
