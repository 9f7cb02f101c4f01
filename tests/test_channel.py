"""Channel, payload and physical-builder tests (docs/model.md section 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.special import j0, log1p

from multispin_env.channel import (
    DEVICE_CLASSES,
    JakesFading,
    NoFading,
    efficiency,
    fading_correlation,
    gauss_markov_step,
    make_fading_model,
    mean_snr_db,
    path_loss_db,
    payload_bits,
    physical_round_params,
    rayleigh_gains,
    spectral_efficiency,
)
from multispin_env.layout import (
    CHANNEL_ROWS,
    CONSTANTS,
    COUNT_ROWS,
    POPULATION_ROWS,
    REQUEST_ROWS,
    Restarts,
    RoundConstants,
    SystemState,
)
from multispin_env.spaces import observation_layout


def test_payload_bits_follow_the_formula() -> None:
    vocab, q, k = 32000, 16, 1024
    id_bits = math.ceil(math.log2(vocab))
    assert id_bits == 15
    assert payload_bits("token-only") == id_bits
    assert payload_bits("top-k") == k * (id_bits + q) + id_bits
    assert payload_bits("full") == vocab * q + id_bits
    # Model.md's orders of magnitude: ~32 kbit top-k, ~512 kbit full.
    assert 30_000 < payload_bits("top-k") < 34_000
    assert 500_000 < payload_bits("full") < 520_000


def test_payload_rejects_unknown_model_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="payload model"):
        payload_bits("zip")
    with pytest.raises(ValueError, match="top_k"):
        payload_bits("top-k", top_k=0)


def test_path_loss_and_snr_at_reference_points() -> None:
    assert path_loss_db(1000.0) == pytest.approx(128.1)
    assert path_loss_db(100.0) == pytest.approx(128.1 - 37.6)
    # 23 dBm, 10 MHz: noise -174 + 9 + 70 = -95 dBm.
    assert mean_snr_db(1000.0) == pytest.approx(23.0 - 128.1 + 95.0)
    assert mean_snr_db(1000.0, shadowing_db=8.0) == pytest.approx(23.0 - 128.1 + 95.0 - 8.0)


def test_spectral_efficiency_is_shannon_and_floored() -> None:
    assert spectral_efficiency(10 * math.log10(3.0)) == pytest.approx(2.0)
    assert spectral_efficiency(20.0, fading_power=0.0) > 0.0


def test_efficiency_is_scipys_log1p_to_the_bit() -> None:
    # The round's log1p inlines log(1 + x) where scipy's (cephes) log1p does the same and calls scipy elsewhere:
    # the efficiencies, hence every trajectory, are the doubles scipy.special.log1p gives.
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            10.0 ** rng.uniform(-12.0, 9.0, 200_000),
            rng.uniform(-0.5, 0.5, 100_000),
            np.nextafter(math.sqrt(2.0) - 1.0, [-1.0, 1.0]),
            np.nextafter(math.sqrt(0.5) - 1.0, [-1.0, 1.0]),
            [0.0, math.sqrt(2.0) - 1.0, math.sqrt(0.5) - 1.0, np.inf],
        ]
    )
    expected = np.maximum(log1p(x) * (1.0 / math.log(2.0)), 1e-9)  # as efficiency scales it
    np.testing.assert_array_equal(efficiency(x, 1.0), expected)
    assert np.isnan(efficiency(np.nan, 1.0))


def test_upload_time_matches_definition_and_deep_fade_stays_finite() -> None:
    p = physical_round_params([100.0, 250.0], [0.6, 0.7], device_classes=["high", "low"])
    snr = mean_snr_db(np.array([100.0, 250.0]))
    expected = payload_bits("top-k") / (10e6 * np.log2(1 + 10 ** (snr / 10)))
    np.testing.assert_allclose(p.upload_time, expected, rtol=1e-12)
    np.testing.assert_allclose(p.draft_time, [DEVICE_CLASSES["high"], DEVICE_CLASSES["low"]])
    faded = physical_round_params([100.0], [0.6], draft_time=[0.01], fading_power=[0.0])
    assert np.isfinite(faded.upload_time).all() and faded.upload_time[0] > 1e5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"distance_m": [-1.0]}, "distance_m"),
        ({"distance_m": [np.nan]}, "distance_m"),
        ({"bandwidth_hz": 0.0}, "bandwidth_hz"),
        ({"fading_power": [-1.0]}, "fading_power"),
        ({"device_classes": ["phone"]}, "device class"),
        ({"device_classes": ["high", "low"]}, "device_classes"),
        ({"payload": "raw"}, "payload"),
        ({"acceptance": [1.5]}, "acceptance"),
        ({"max_draft": 0}, "max_draft"),
    ],
)
def test_physical_builder_names_the_bad_field(kwargs: dict, field: str) -> None:
    args = {"distance_m": [100.0], "acceptance": [0.7], "device_classes": ["mid"]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        physical_round_params(**args)


@given(st.floats(0.0, 200.0), st.floats(1e-4, 1.0))
def test_fading_correlation_is_bessel_j0(doppler: float, dt: float) -> None:
    assert fading_correlation(doppler, dt) == pytest.approx(j0(2 * np.pi * doppler * dt), abs=1e-12)


def test_rayleigh_gains_have_exponential_power() -> None:
    power = np.abs(rayleigh_gains(np.random.default_rng(1), 20_000)) ** 2
    assert stats.kstest(power, "expon").pvalue > 1e-3


def test_gauss_markov_keeps_power_and_has_the_requested_lag_one_correlation() -> None:
    rng = np.random.default_rng(2)
    rho = float(fading_correlation(10.0, 0.02))
    h = rayleigh_gains(rng, 20_000)
    h_next = gauss_markov_step(h, rho, rayleigh_gains(rng, h.shape))
    corr = np.mean(h_next * np.conj(h)).real / np.mean(np.abs(h) ** 2)
    assert corr == pytest.approx(rho, abs=0.02)
    assert np.mean(np.abs(h_next) ** 2) == pytest.approx(1.0, abs=0.03)


# --- Fading models (docs/model.md section 5.2) ----------------------------------------------------------------------


def test_fading_setting_chooses_the_component_the_round_uses() -> None:
    import gymnasium as gym

    faded = gym.make("MultiSpin-Heterogeneous-v0", doppler_hz=30.0).unwrapped._core
    assert isinstance(faded.fading, JakesFading) and faded.fading.doppler_hz == 30.0
    assert faded.kernel_constants()["fading"][0] == JakesFading.kernel_code
    static = gym.make("MultiSpin-Heterogeneous-v0", fading=False).unwrapped._core
    assert isinstance(static.fading, NoFading) and static.kernel_constants()["fading"][0] == NoFading.kernel_code
    static.reset(np.random.default_rng(0))
    assert np.all(static.gain == 1.0)


def test_jakes_model_steps_with_the_bessel_correlation() -> None:
    model = make_fading_model(True, 50.0)
    rng = np.random.default_rng(1)
    start = model.initial_gains(rng.standard_normal((2, 200_000)))
    assert np.mean(np.abs(start) ** 2) == pytest.approx(1.0, abs=0.01)
    nxt = model.step(start, 0.004, rayleigh_gains(rng, start.shape))
    rho = j0(2 * np.pi * 50.0 * 0.004)
    assert model.correlation(0.004) == pytest.approx(rho, rel=1e-12)
    assert np.mean(nxt * np.conj(start)).real == pytest.approx(rho, abs=0.01)
    assert np.mean(np.abs(nxt) ** 2) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("noise_std", [0.0, 0.5])
def test_jakes_prediction_is_the_conditional_law_of_the_current_gain(noise_std: float) -> None:
    """MMSE prediction (eq. (5.2b)) from a gain observed 3 rounds (of given latencies) earlier with noise: the
    error h - mean has the predicted variance and is uncorrelated with the estimate; by simulation."""
    model = JakesFading(80.0)
    rng = np.random.default_rng(2)
    n = 400_000
    intervals = np.array([0.002, 0.003, 0.0025])
    past = rayleigh_gains(rng, n)
    gain = past
    for dt in intervals:
        gain = model.step(gain, dt, rayleigh_gains(rng, n))
    estimate = past + noise_std * rayleigh_gains(rng, n)
    mean, variance = model.predict(estimate, intervals, noise_std)
    error = gain - mean
    assert np.mean(np.abs(error) ** 2) == pytest.approx(variance[0], rel=0.02)
    assert abs(np.mean(error * np.conj(estimate))) < 0.01
    assert np.allclose(variance, variance[0])
    # No delay and no noise: the estimate is the gain.
    exact_mean, exact_var = model.predict(estimate, np.zeros((0,)), 0.0)
    assert np.array_equal(exact_mean, estimate) and np.all(exact_var == 0.0)


def test_no_fading_is_the_mean_channel() -> None:
    model = NoFading()
    assert np.all(model.initial_gains(np.zeros((2, 3, 4))) == 1.0) and model.initial_gains(
        np.zeros((2, 3, 4))
    ).shape == (3, 4)
    mean, var = model.predict(np.full(5, 0.3 + 0.1j), np.ones((5, 2)), 0.4)
    assert np.all(mean == 1.0) and np.all(var == 0.0)
    assert np.all(model.correlation([0.1, 1.0]) == 1.0)


def test_the_compiled_restart_draws_the_models_start_gains() -> None:
    """The kernel's restart turns N(0, 1) pairs into start gains as the fading model's initial_gains does."""
    from multispin_env.core import _kernels

    rng = np.random.default_rng(4)
    n, k, slots = 5, 3, 2
    normals = rng.standard_normal((2, 2, k))
    gains = np.zeros((slots, n, k), dtype=np.complex128)
    rows = np.array([1, 3])
    for model in (JakesFading(10.0), NoFading()):
        constants = np.zeros(1, dtype=CONSTANTS)
        constants["fading"] = model.kernel_code
        constants["fading_line_of_sight"] = model.line_of_sight
        constants["fading_scatter"] = model.scatter
        state = SystemState(
            np.ones((POPULATION_ROWS, n, k)),
            np.ones((COUNT_ROWS, n, k)),
            np.ones((CHANNEL_ROWS, n, k)),
            gains,
            np.zeros(1, dtype=np.int64),
            np.ones(n),
            np.zeros((REQUEST_ROWS, 0, 0)),
            np.zeros((n, k, 1)),
        )
        fixed = RoundConstants(constants, np.zeros(1), np.zeros(1), np.zeros((2, 1)), observation_layout(k).offsets)
        restarts = Restarts(rows, normals if model.evolves else np.zeros((2, 0, 0)))
        _kernels().reset_rows(state, fixed, restarts)  # through numba's dispatch: the records' types are checked
        assert np.all(state.clock[rows] == 0.0) and np.all(state.counts[:, rows] == 0.0)
        for slot in range(slots):
            np.testing.assert_array_equal(gains[slot, rows], model.initial_gains(normals))
