"""What the fading gives at round starts (docs/model.md section 4.2): a round's latency depends on its channel, so
the gains seen at round starts after the first have E|h|^2 > 1; with a latency that does not depend on the channel
(no fading of the upload: the same latency every round) they keep E|h|^2 = 1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import multispin_env  # noqa: F401  (registers the ids)

NUM_ENVS, ROUNDS, WARM_UP = 256, 1500, 100


def _round_start_power(**settings) -> tuple[float, float]:
    """Mean |h|^2 over round starts (one user drafting 10 tokens with the whole band) and its standard error over
    the independent sub-envs."""
    env = gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=NUM_ENVS, num_users=1, horizon=1e9, **settings)
    env.reset(seed=3)
    unwrapped = env.unwrapped
    action = unwrapped.encode_action(np.full((NUM_ENVS, 1), 10), np.ones((NUM_ENVS, 1)))
    power = np.zeros(NUM_ENVS)
    for t in range(ROUNDS):
        if t >= WARM_UP:
            power += np.abs(unwrapped.core.gain[:, 0]) ** 2
        env.step(action)
    env.close()
    per_env = power / (ROUNDS - WARM_UP)
    return float(per_env.mean()), float(per_env.std() / np.sqrt(NUM_ENVS))


def test_round_start_gains_are_biased_up_when_the_latency_depends_on_the_channel():
    """E|h|^2 = 1.056 +- 0.005 at round starts (K = 1, L = 10, f_D = 1 Hz, no deadline), as docs/model.md states."""
    mean, error = _round_start_power(doppler_hz=1.0, upload_deadline=None)
    assert mean - 4 * error > 1.02
    assert abs(mean - 1.056) < 4 * error


def test_round_start_gains_keep_unit_power_with_a_channel_independent_latency():
    """Payload token-only (15 bit per token): the upload is ~1e-6 s, so the latency barely depends on the channel and
    the round-start gains stay CN(0, 1)."""
    mean, error = _round_start_power(doppler_hz=1.0, upload_deadline=None, payload="token-only")
    assert abs(mean - 1.0) < 4 * error
