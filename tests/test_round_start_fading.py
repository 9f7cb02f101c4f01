"""What the fading gives at round starts (docs/model.md section 4.2): a round's latency depends on its channel, so
the gains seen at round starts after the first have E|h|^2 != 1 (above 1 at the low Doppler tested here, where the
one-round correlation falls with the round's length); with a latency that does not depend on the channel (no fading
of the upload: the same latency every round) they keep E|h|^2 = 1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from reference_round import play_round, spectral_efficiency
from test_kernels import pre_round_state, settings_of

import multispin_env  # noqa: F401  (registers the ids)

NUM_ENVS, ROUNDS, WARM_UP, LENGTH = 256, 1500, 100, 10


def _mean_and_error(power: np.ndarray) -> tuple[float, float]:
    """Mean of the per-system averages (n,) and its standard error over the independent systems."""
    per_env = power / (ROUNDS - WARM_UP)
    return float(per_env.mean()), float(per_env.std() / np.sqrt(per_env.size))


def _round_start_power(**settings) -> tuple[tuple[float, float], tuple[float, float]]:
    """Mean |h|^2 over round starts (one user drafting 10 tokens with the whole band) and its standard error, in the
    env and in the same systems simulated by the independent numpy round of tests/reference_round.py (own draws)."""
    env = gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=NUM_ENVS, num_users=1, horizon=1e9, **settings)
    env.reset(seed=3)
    unwrapped = env.unwrapped
    core = unwrapped.core
    oracle, state = settings_of(core, draft_time_high=1.0), pre_round_state(core)
    action = unwrapped.encode_action(np.full((NUM_ENVS, 1), LENGTH), np.ones((NUM_ENVS, 1)))
    power = np.zeros(NUM_ENVS)
    for t in range(ROUNDS):
        if t >= WARM_UP:
            power += np.abs(core.gain[:, 0]) ** 2
        env.step(action)
    env.close()

    rng = np.random.default_rng(4)
    gain, reference = state["gain"], np.zeros(NUM_ENVS)
    ones = np.ones((NUM_ENVS, 1))
    for t in range(ROUNDS):
        if t >= WARM_UP:
            reference += np.abs(gain[:, 0]) ** 2
        efficiency = spectral_efficiency(state["snr"], gain)
        played = play_round(
            oracle,
            state["draft_power"],
            state["draft_time"],
            oracle.payload_bits / (oracle.bandwidth_hz * efficiency),  # c = D / (W e), section 4.2
            state["snr"],
            gain,
            state["cumulative_hazard"],
            state["successes"],
            state["failures"],
            state["clock"],
            LENGTH * ones,
            ones,
            rng.standard_exponential((NUM_ENVS, 1)),
            rng.standard_normal((2, NUM_ENVS, 1)),
            None,
        )
        gain = played.gain
    return _mean_and_error(power), _mean_and_error(reference)


def test_round_start_gains_are_biased_up_when_the_latency_depends_on_the_channel():
    """E|h|^2 > 1 at round starts (K = 1, L = 10, f_D = 1 Hz, no deadline; docs/model.md section 4.2: 1.056), in the
    env and in the independent numpy round, which agree within their sampling errors."""
    (mean, error), (reference, reference_error) = _round_start_power(doppler_hz=1.0, upload_deadline=None)
    assert mean - 4 * error > 1.02 and reference - 4 * reference_error > 1.02
    assert abs(mean - reference) < 4 * np.hypot(error, reference_error)


def test_round_start_gains_keep_unit_power_with_a_channel_independent_latency():
    """Payload token-only (15 bit per token): the upload is ~1e-6 s, so the latency barely depends on the channel and
    the round-start gains stay CN(0, 1)."""
    (mean, error), (reference, reference_error) = _round_start_power(
        doppler_hz=1.0, upload_deadline=None, payload="token-only"
    )
    assert abs(mean - 1.0) < 4 * error and abs(reference - 1.0) < 4 * reference_error
