"""Uplink channel, payload and device models (docs/model.md section 4), and the physical builder of RoundParams.

Units: metres, dB/dBm, Hz, bits, seconds. Arrays put users on the last axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types, vectorize
from numba.extending import get_cython_function_address
from numpy.typing import ArrayLike, NDArray

from multispin_env._checks import Choice, register_class
from multispin_env._numba import JIT, jit_cache
from multispin_env.model import RoundParams

FloatArray = NDArray[np.float64]

#: Draft time per token, s/token, of each device class (docs/model.md section 4).
DEVICE_CLASSES: Mapping[str, float] = {"high": 0.004, "mid": 0.010, "low": 0.025}

#: Power drawn while drafting, W, of each device class (docs/model.md section 5.7). ASSUMED orders of
#: magnitude, not measurements of these draft models: sustained LLM decoding was measured at < 2 W on an NPU
#: module (Hailo-10H), a few W on flagship phones and 34.1 W on a laptop GPU (RTX 4050) in arXiv 2603.23640
#: (Qwen 2.5 1.5B, 4-bit); a small draft model on a fast (high) device draws more than on a slow (low) one.
DEVICE_DRAFT_POWER_W: Mapping[str, float] = {"high": 8.0, "mid": 4.0, "low": 2.0}

#: Payload models for one uploaded draft token (docs/model.md section 4).
PAYLOAD_MODELS: tuple[str, ...] = ("token-only", "top-k", "full")

#: Spectral efficiency floor in bit/s/Hz, so a user in a deep fade has a huge but finite upload time.
MIN_SPECTRAL_EFFICIENCY = 1e-9

_SQRT_HALF = math.sqrt(0.5)
_SQRT_TWO = math.sqrt(2.0)

# scipy's Bessel J0 (double j0(double, int skip_dispatch), the function behind scipy.special.j0) under a fixed
# symbol name, so that compiled code calling it can be cached (cached code links by name).
llvm.add_symbol("multispin_env_scipy_j0", get_cython_function_address("scipy.special.cython_special", "j0"))
# Both are called only inside compiled code, where numba resolves the call (its stubs type them as type objects).
_scipy_j0: Any = types.ExternalFunction("multispin_env_scipy_j0", types.float64(types.float64, types.intc))
# scipy's log1p (cephes), likewise: about twice as fast as the libm log1p numba calls for math.log1p, and the
# round evaluates it for every user every round.
llvm.add_symbol(
    "multispin_env_scipy_log1p", get_cython_function_address("scipy.special.cython_special", "__pyx_fuse_1log1p")
)
_scipy_log1p: Any = types.ExternalFunction("multispin_env_scipy_log1p", types.float64(types.float64, types.intc))
_INV_LN2 = 1.0 / math.log(2.0)

# The formulas the compiled round calls (numba ufuncs: numpy calls them on arrays, the kernels on scalars).
with jit_cache():

    @njit(**JIT, inline="always")
    def log1p(x):
        """log(1 + x), the same double as scipy's log1p: that (cephes) returns log(1 + x) itself when 1 + x lies
        outside [sqrt(1/2), sqrt(2)] and uses a rational approximation only inside. Outside, the usual case here
        (SNR |h|^2 > 0.41), the log is inlined instead of calling scipy (~5 ns per user and round)."""
        z = 1.0 + x
        if z < _SQRT_HALF or z > _SQRT_TWO:
            return math.log(z)
        return _scipy_log1p(x, 0)

    @vectorize(cache=JIT["cache"])
    def efficiency(snr, fading_power):
        """Spectral efficiency e = log2(1 + SNR |h|^2) in bit/s/Hz from the linear SNR, floored at
        :data:`MIN_SPECTRAL_EFFICIENCY` (section 4)."""
        return max(log1p(snr * fading_power) * _INV_LN2, MIN_SPECTRAL_EFFICIENCY)

    @vectorize(cache=JIT["cache"])
    def upload_time_per_token(payload, bandwidth_hz, spectral_efficiency):
        """c_k = D / (W e_k): seconds per draft token with the whole band (e_k floored as in :func:`efficiency`)."""
        return payload / (bandwidth_hz * max(spectral_efficiency, MIN_SPECTRAL_EFFICIENCY))

    @vectorize(cache=JIT["cache"])
    def fading_correlation(doppler_hz, dt):
        """Jakes lag correlation rho = J0(2 pi f_D dt) of the Gauss-Markov fading (section 4)."""
        return _scipy_j0(2.0 * math.pi * doppler_hz * dt, 0)

    @vectorize(cache=JIT["cache"])
    def complex_gain(z1, z2):
        """A CN(0, 1) variate (z1 + i z2) / sqrt(2) from two independent N(0, 1) variates (section 5.2)."""
        return complex(z1 * _SQRT_HALF, z2 * _SQRT_HALF)

    @vectorize(cache=JIT["cache"])
    def gauss_markov_step(gain, rho, innovation):
        """One Gauss-Markov step h' = rho h + sqrt(1 - rho^2) w with w ~ CN(0, 1) (section 4); keeps E|h|^2 = 1."""
        return rho * gain + math.sqrt(max(1.0 - rho * rho, 0.0)) * innovation


# --- Fading models (docs/model.md section 5.2) -------------------------------------------------------------------


class FadingModel:
    """Small-scale fading of every user's complex gain h (docs/model.md section 5.2): the channel component of the
    round, chosen by name by the ``fading`` setting (:data:`FADING_MODELS`, :func:`register_fading_model`).

    Its public methods are what the rest of the package needs: the start gains of an episode
    (:meth:`initial_gains`), the lag correlation over a round (:meth:`correlation`), one step of the gain
    (:meth:`step`), and the channel's conditional law given a delayed, noisy estimate (:meth:`predict`, what a
    predictive controller plans with). The compiled round runs the same step through the ufuncs
    :func:`fading_correlation` and :func:`gauss_markov_step` (numba cannot call a Python method from a kernel,
    and a first-class function argument costs ~30 us per kernel call); ``kernel_code``, ``line_of_sight`` and
    ``scatter`` tell it which step and with what constants (docs/model.md section 9.1).

    :param doppler_hz: f_D, the maximum Doppler shift, Hz (the scenario's; unused by a model that does not evolve)
    """

    #: the name the ``fading`` setting selects it by
    name: ClassVar[str] = ""
    #: which fading step the compiled round runs: 0 none (h = 1, the population's mean channel), 1 Gauss-Markov
    #: with Jakes correlation around the mean ``line_of_sight`` with scattered amplitude ``scatter`` (eq. (5.2a))
    kernel_code: ClassVar[int] = 0
    #: mu, the constant (line-of-sight) part of h, real (kernel code 1)
    line_of_sight: ClassVar[float] = 0.0
    #: sigma, the scattered part's std: h - mu ~ CN(0, sigma^2) (kernel code 1; mu^2 + sigma^2 = 1 keeps E|h|^2 = 1)
    scatter: ClassVar[float] = 1.0

    def __init__(self, doppler_hz: float = 0.0) -> None:
        self.doppler_hz = float(doppler_hz)

    @property
    def evolves(self) -> bool:
        """True if h changes between rounds (the round keeps a ring of past gains for the CSI delay)."""
        return self.kernel_code != 0

    def initial_gains(self, normals: FloatArray) -> NDArray[np.complex128]:
        """Start gains h (...) of an episode from N(0, 1) pairs ``normals`` (2, ...) (unused if h is fixed)."""
        raise NotImplementedError

    def correlation(self, interval_s: ArrayLike) -> FloatArray:
        """rho = E[(h(t + dt) - mu) (h(t) - mu)*] / sigma^2 for lags ``interval_s`` (s)."""
        raise NotImplementedError

    def step(self, gain: ArrayLike, interval_s: ArrayLike, innovation: ArrayLike) -> NDArray[np.complex128]:
        """The gain ``interval_s`` (s) after ``gain``, with CN(0, 1) ``innovation`` (eq. (5.2a))."""
        raise NotImplementedError

    def predict(
        self, estimate: ArrayLike, intervals_s: ArrayLike, noise_std: float = 0.0
    ) -> tuple[NDArray[np.complex128], FloatArray]:
        """Conditional law of the current gain h given the estimate h_hat = h' + CN(0, noise_std^2) of the gain
        h' that preceded it by the round latencies ``intervals_s`` (..., d) (s; d = the CSI delay, may be 0; the
        leading axes broadcast against ``estimate``'s, e.g. (n, 1, d) for estimates (n, K)):
        h | h_hat ~ CN(mean, variance) (eq. (5.2b)). Returns (mean, variance), shaped like ``estimate``."""
        raise NotImplementedError


#: Fading models by name (:func:`register_fading_model` adds one).
FADING_MODELS: dict[str, type[FadingModel]] = {}
#: The ``fading`` setting's bool spellings: True is Rayleigh/Jakes fading, False none.
FADING_ALIASES: dict[bool, str] = {True: "jakes", False: "none"}


def register_fading_model(cls: type[FadingModel]) -> type[FadingModel]:
    """Class decorator: make ``cls`` selectable as ``fading=cls.name`` (docs/model.md section 9.1)."""
    return register_class(FADING_MODELS, cls)


@register_fading_model
class NoFading(FadingModel):
    """``fading="none"`` (or False): h = 1 in every round (the population's mean channel)."""

    name = "none"

    def initial_gains(self, normals: FloatArray) -> NDArray[np.complex128]:
        return np.ones(np.shape(normals)[1:], dtype=np.complex128)

    def correlation(self, interval_s: ArrayLike) -> FloatArray:
        return np.ones_like(np.asarray(interval_s, dtype=np.float64))

    def step(self, gain: ArrayLike, interval_s: ArrayLike, innovation: ArrayLike) -> NDArray[np.complex128]:
        return np.ones(
            np.broadcast_shapes(np.shape(gain), np.shape(interval_s), np.shape(innovation)), dtype=np.complex128
        )

    def predict(
        self, estimate: ArrayLike, intervals_s: ArrayLike, noise_std: float = 0.0
    ) -> tuple[NDArray[np.complex128], FloatArray]:
        shape = np.shape(estimate)
        return np.ones(shape, dtype=np.complex128), np.zeros(shape)


@register_fading_model
class JakesFading(FadingModel):
    """``fading="jakes"`` (or True): Rayleigh fading h ~ CN(0, 1), first-order Gauss-Markov from round to round
    with the Jakes correlation rho = J0(2 pi f_D dt) over the round latency dt (docs/model.md section 5.2).

    The methods hold for any mean ``line_of_sight`` mu and scatter sigma (h - mu Gauss-Markov with variance
    sigma^2, eqs. (5.2a)-(5.2b)): a subclass that sets those two class attributes is another model the compiled
    round runs unchanged, e.g. Rician fading (docs/model.md section 9.1).

    :param doppler_hz: f_D, the maximum Doppler shift, Hz
    """

    name = "jakes"
    kernel_code = 1

    def initial_gains(self, normals: FloatArray) -> NDArray[np.complex128]:
        return self.line_of_sight + self.scatter * complex_normal(np.asarray(normals, dtype=np.float64))

    def correlation(self, interval_s: ArrayLike) -> FloatArray:
        return fading_correlation(self.doppler_hz, np.asarray(interval_s, dtype=np.float64))

    def step(self, gain: ArrayLike, interval_s: ArrayLike, innovation: ArrayLike) -> NDArray[np.complex128]:
        mu = self.line_of_sight
        scattered = gauss_markov_step(
            np.asarray(gain, dtype=np.complex128) - mu,
            self.correlation(interval_s),
            self.scatter * np.asarray(innovation, dtype=np.complex128),
        )
        return mu + scattered

    def predict(
        self, estimate: ArrayLike, intervals_s: ArrayLike, noise_std: float = 0.0
    ) -> tuple[NDArray[np.complex128], FloatArray]:
        # h - mu = r (h' - mu) + sqrt(1 - r^2) sigma w with r = prod of the rounds' rho, and h_hat = h' + n:
        # E[h' - mu | h_hat] = g (h_hat - mu), Var = sigma^2 (1 - g), g = sigma^2 / (sigma^2 + s^2) (eq. (5.2b)).
        estimate = np.asarray(estimate, dtype=np.complex128)
        intervals = np.asarray(intervals_s, dtype=np.float64)
        lag = np.prod(self.correlation(intervals), axis=-1) if intervals.ndim and intervals.shape[-1] else 1.0
        mu, power = self.line_of_sight, self.scatter * self.scatter
        shrink = power / (power + noise_std * noise_std)
        mean = np.asarray(mu + lag * shrink * (estimate - mu), dtype=np.complex128)  # already complex128: no copy
        variance = np.broadcast_to(power * (1.0 - lag * lag * shrink), estimate.shape).astype(np.float64)
        return mean, variance


def make_fading_model(fading: str | bool, doppler_hz: float) -> FadingModel:
    """The fading model named ``fading`` (a name of :data:`FADING_MODELS`, or True/False for "jakes"/"none"; the
    ``fading`` setting's check) at Doppler ``doppler_hz`` (Hz)."""
    return FADING_MODELS[fading_setting("fading", fading)](doppler_hz)


#: The check of the ``fading`` setting: a registered name or a bool alias, normalised to the name.
fading_setting = Choice(lambda: FADING_MODELS, FADING_ALIASES)


def payload_bits(model: str = "top-k", vocab_size: int = 32000, prob_bits: int = 16, top_k: int = 1024) -> int:
    """Bits uploaded per draft token, D (docs/model.md section 4).

    - ``token-only``: the token id, ceil(log2 V) bits;
    - ``top-k``: the id plus the top-k draft probabilities with their ids, k (ceil(log2 V) + q) + ceil(log2 V);
    - ``full``: the id plus the full draft distribution, V q + ceil(log2 V).
    """
    for name, value in (("vocab_size", vocab_size), ("prob_bits", prob_bits), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    id_bits = math.ceil(math.log2(vocab_size))
    if model == "token-only":
        return id_bits
    if model == "top-k":
        return min(top_k, vocab_size) * (id_bits + prob_bits) + id_bits
    if model == "full":
        return vocab_size * prob_bits + id_bits
    raise ValueError(f"payload model must be one of {PAYLOAD_MODELS}, got {model!r}")


def path_loss_db(distance_m: ArrayLike) -> FloatArray:
    """3GPP macro path loss 128.1 + 37.6 log10(d / 1 km), in dB."""
    return 128.1 + 37.6 * np.log10(np.asarray(distance_m, dtype=np.float64) / 1000.0)


def noise_power_dbm(bandwidth_hz: float, noise_density_dbm_hz: float = -174.0, noise_figure_db: float = 9.0) -> float:
    """Receiver noise power over the whole band W, in dBm."""
    return noise_density_dbm_hz + noise_figure_db + 10.0 * math.log10(bandwidth_hz)


def mean_snr_db(
    distance_m: ArrayLike,
    shadowing_db: ArrayLike = 0.0,
    tx_power_dbm: float = 23.0,
    bandwidth_hz: float = 10e6,
    noise_density_dbm_hz: float = -174.0,
    noise_figure_db: float = 9.0,
) -> FloatArray:
    """Large-scale SNR in dB (no fast fading).

    Constant transmit power spectral density over the share: the SNR is the
    same for any share b_k, so e_k does not depend on b_k (docs/model.md section 4).
    """
    received = tx_power_dbm - path_loss_db(distance_m) - np.asarray(shadowing_db, dtype=np.float64)
    return received - noise_power_dbm(bandwidth_hz, noise_density_dbm_hz, noise_figure_db)


def snr_linear(snr_db: ArrayLike) -> FloatArray:
    """10^(SNR/10): the linear SNR of a value in dB."""
    return np.power(10.0, np.asarray(snr_db, dtype=np.float64) / 10.0)


def spectral_efficiency(snr_db: ArrayLike, fading_power: ArrayLike = 1.0) -> FloatArray:
    """:func:`efficiency` of a mean SNR in dB: e = log2(1 + SNR |h|^2) in bit/s/Hz, floored."""
    return efficiency(snr_linear(snr_db), fading_power)


def rayleigh_gains(rng: np.random.Generator, shape: int | tuple[int, ...]) -> NDArray[np.complex128]:
    """Independent CN(0, 1) channel coefficients h (so E|h|^2 = 1)."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return complex_normal(rng.standard_normal((2, *dims)))


def complex_normal(normal: FloatArray) -> NDArray[np.complex128]:
    """CN(0, 1) variates (z1 + i z2) / sqrt(2) from standard normals ``normal`` of shape (2, ...)."""
    return complex_gain(normal[0], normal[1])


def draft_times_of(device_classes: Sequence[str]) -> FloatArray:
    """Draft time per token (s) for each named device class."""
    return _per_class(DEVICE_CLASSES, device_classes)


def draft_powers_of(device_classes: Sequence[str]) -> FloatArray:
    """Drafting power (W) for each named device class (:data:`DEVICE_DRAFT_POWER_W`)."""
    return _per_class(DEVICE_DRAFT_POWER_W, device_classes)


def _per_class(table: Mapping[str, float], device_classes: Sequence[str]) -> FloatArray:
    unknown = sorted({c for c in device_classes if c not in table})
    if unknown:
        raise ValueError(f"device class must be one of {sorted(table)}, got {unknown}")
    return np.array([table[c] for c in device_classes], dtype=np.float64)


def dbm_to_watts(power_dbm: float) -> float:
    """10^(P/10) mW in W: 23 dBm is 0.2 W."""
    return 10.0 ** (power_dbm / 10.0) / 1000.0


def physical_round_params(
    distance_m: ArrayLike,
    acceptance: ArrayLike,
    *,
    device_classes: Sequence[str] | None = None,
    draft_time: ArrayLike | None = None,
    shadowing_db: ArrayLike = 0.0,
    fading_power: ArrayLike = 1.0,
    tx_power_dbm: float = 23.0,
    bandwidth_hz: float = 10e6,
    noise_density_dbm_hz: float = -174.0,
    noise_figure_db: float = 9.0,
    payload: str = "top-k",
    vocab_size: int = 32000,
    prob_bits: int = 16,
    top_k: int = 1024,
    verify_base: float = 0.060,
    verify_per_token: float = 0.0005,
    max_draft: int = 10,
    downlink_time: float = 0.0,
) -> RoundParams:
    """Build :class:`RoundParams` from physical parameters (docs/model.md section 4 defaults).

    :param distance_m: user-server distances in metres, shape (K,)
    :param acceptance: a_k per user, shape (K,)
    :param device_classes: names from :data:`DEVICE_CLASSES` (or give ``draft_time`` in s/token)
    :param shadowing_db: log-normal shadowing loss per user in dB
    :param fading_power: |h_k|^2 of the fast fading (1 = the mean channel)
    :param bandwidth_hz: W, the shared uplink band in Hz
    :param payload: payload model, one of :data:`PAYLOAD_MODELS`
    """
    distance = np.asarray(distance_m, dtype=np.float64)
    if distance.ndim != 1 or distance.size == 0:
        raise ValueError(f"distance_m must be a non-empty 1-D array (one entry per user), got shape {distance.shape}")
    if not np.all(np.isfinite(distance)) or np.any(distance <= 0.0):
        raise ValueError(f"distance_m must be finite and > 0 metres, got {distance}")
    if not (math.isfinite(bandwidth_hz) and bandwidth_hz > 0):
        raise ValueError(f"bandwidth_hz must be finite and > 0, got {bandwidth_hz}")
    if not math.isfinite(tx_power_dbm):
        raise ValueError(f"tx_power_dbm must be finite, got {tx_power_dbm}")
    fading = np.asarray(fading_power, dtype=np.float64)
    if not np.all(np.isfinite(fading)) or np.any(fading < 0.0):
        raise ValueError(f"fading_power must be finite and >= 0, got {fading}")
    shadowing = np.asarray(shadowing_db, dtype=np.float64)
    if not np.all(np.isfinite(shadowing)):
        raise ValueError(f"shadowing_db must be finite, got {shadowing}")
    if device_classes is not None and draft_time is None:
        if len(device_classes) != distance.size:
            raise ValueError(
                f"device_classes must have one entry per user ({distance.size}), got {len(device_classes)}"
            )
        draft_time = draft_times_of(device_classes)
    elif device_classes is not None or draft_time is None:
        raise ValueError("give exactly one of device_classes or draft_time")
    bits = payload_bits(payload, vocab_size, prob_bits, top_k)
    snr_db = mean_snr_db(distance, shadowing, tx_power_dbm, bandwidth_hz, noise_density_dbm_hz, noise_figure_db)
    upload = upload_time_per_token(bits, bandwidth_hz, spectral_efficiency(snr_db, fading))
    return RoundParams(
        acceptance=acceptance,
        draft_time=draft_time,
        upload_time=upload,
        verify_base=verify_base,
        verify_per_token=verify_per_token,
        max_draft=max_draft,
        downlink_time=downlink_time,
    )
