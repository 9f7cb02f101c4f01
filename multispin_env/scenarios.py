"""Scenario presets: user populations and their physical parameters (model.md section 4).

A :class:`Scenario` is a frozen description; :meth:`Scenario.sample_population`
draws one user population (distances, shadowing, device classes, acceptance
rates) from it, and :meth:`Scenario.round_params` turns a population and a
fading state into :class:`~multispin_env.model.RoundParams`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from multispin_env.channel import (
    DEVICE_CLASSES,
    PAYLOAD_MODELS,
    draft_times_of,
    mean_snr_db,
    payload_bits,
    spectral_efficiency,
    upload_time_per_token,
)
from multispin_env.model import RoundParams

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class AcceptanceProfile:
    """Per-task acceptance rates of one draft/target model pair.

    :param rates: task name -> per-token acceptance rate a in (0, 1)
    :param weights: task name -> relative frequency of requests of that task
    :param source: where the rates come from
    """

    name: str
    rates: Mapping[str, float]
    weights: Mapping[str, float]
    source: str = ""

    def __post_init__(self) -> None:
        if not self.rates:
            raise ValueError(f"acceptance profile {self.name!r}: rates must name at least one task")
        if set(self.rates) != set(self.weights):
            raise ValueError(f"acceptance profile {self.name!r}: rates and weights must name the same tasks")
        for task, rate in self.rates.items():
            if not 0.0 < float(rate) < 1.0:
                raise ValueError(f"acceptance profile {self.name!r}: rate of task {task!r} must be in (0, 1)")
        if any(float(w) < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError(f"acceptance profile {self.name!r}: weights must be >= 0 with a positive sum")

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.rates)

    def rate_array(self) -> FloatArray:
        """Acceptance rate of each task, in the order of :attr:`tasks`."""
        return np.array([self.rates[t] for t in self.tasks], dtype=np.float64)

    def probabilities(self) -> FloatArray:
        """Task probabilities (normalised weights), in the order of :attr:`tasks`."""
        w = np.array([self.weights[t] for t in self.tasks], dtype=np.float64)
        return w / w.sum()


ACCEPTANCE_PROFILES: dict[str, AcceptanceProfile] = {}


def register_acceptance_profile(profile: AcceptanceProfile) -> AcceptanceProfile:
    """Add (or replace) a named acceptance profile."""
    ACCEPTANCE_PROFILES[profile.name] = profile
    return profile


# Rates spanning model.md section 4's measured range (0.5-0.9); the named model-pair profiles refine this.
register_acceptance_profile(
    AcceptanceProfile(
        name="generic",
        rates={"chat": 0.65, "code": 0.80, "math": 0.72, "translation": 0.55, "summarisation": 0.60},
        weights={"chat": 0.3, "code": 0.2, "math": 0.15, "translation": 0.15, "summarisation": 0.2},
        source="model.md section 4: measured per-token acceptance of 0.5-0.9 across model pairs and tasks",
    )
)


@dataclass(frozen=True)
class Population:
    """One drawn user population (all arrays have shape (K,))."""

    distance_m: FloatArray
    shadowing_db: FloatArray
    device_class: tuple[str, ...]
    draft_time: FloatArray
    acceptance: FloatArray
    task: tuple[str, ...] | None
    snr_db: FloatArray

    @property
    def num_users(self) -> int:
        return int(self.distance_m.size)


def _range(name: str, value: Any, low: float, high: float, *, closed: bool = True) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from exc
    ok_low = lo >= low if closed else lo > low
    ok_high = hi <= high if closed else hi < high
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi and ok_low and ok_high):
        raise ValueError(f"{name} must satisfy {low} <= low <= high <= {high}, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class Scenario:
    """A family of Multi-SPIN systems; the defaults are model.md section 4's base scenario.

    :param num_users: K
    :param max_draft: L_max, tokens
    :param bandwidth_hz: W, Hz
    :param distance_range_m: users are uniform in this range of distances, metres
    :param shadowing_sigma_db: log-normal shadowing standard deviation, dB (0 disables)
    :param tx_power_dbm: transmit power, dBm
    :param noise_density_dbm_hz: thermal noise density, dBm/Hz
    :param noise_figure_db: receiver noise figure, dB
    :param doppler_hz: maximum Doppler f_D of the Gauss-Markov fading, Hz
    :param payload: payload model per draft token (token-only, top-k, full)
    :param device_mix: device class -> weight; each user's class is drawn from it
    :param acceptance_range: a_k ~ U(low, high) when ``acceptance_profile`` is None
    :param acceptance_profile: name of an :class:`AcceptanceProfile`; each user's task (and so a_k) is drawn from it
    :param verify_base: T0, s
    :param verify_per_token: kappa, s/token
    :param downlink_time: T_dl, s
    """

    name: str = "base"
    num_users: int = 6
    max_draft: int = 10
    bandwidth_hz: float = 10e6
    distance_range_m: tuple[float, float] = (50.0, 300.0)
    shadowing_sigma_db: float = 8.0
    tx_power_dbm: float = 23.0
    noise_density_dbm_hz: float = -174.0
    noise_figure_db: float = 9.0
    doppler_hz: float = 10.0
    payload: str = "top-k"
    device_mix: Mapping[str, float] = field(default_factory=lambda: {"high": 1.0, "mid": 1.0, "low": 1.0})
    acceptance_range: tuple[float, float] = (0.5, 0.9)
    acceptance_profile: str | None = None
    verify_base: float = 0.060
    verify_per_token: float = 0.0005
    downlink_time: float = 0.0
    description: str = "model.md section 4 base scenario"

    def __post_init__(self) -> None:
        for name in ("num_users", "max_draft"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("bandwidth_hz", "verify_base"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("shadowing_sigma_db", "doppler_hz", "verify_per_token", "downlink_time"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("tx_power_dbm", "noise_density_dbm_hz", "noise_figure_db"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        object.__setattr__(self, "distance_range_m", _range("distance_range_m", self.distance_range_m, 1e-3, 1e6))
        object.__setattr__(
            self, "acceptance_range", _range("acceptance_range", self.acceptance_range, 0.0, 1.0, closed=False)
        )
        if self.payload not in PAYLOAD_MODELS:
            raise ValueError(f"payload must be one of {PAYLOAD_MODELS}, got {self.payload!r}")
        mix = dict(self.device_mix)
        unknown = sorted(set(mix) - set(DEVICE_CLASSES))
        if unknown or not mix:
            raise ValueError(f"device_mix must map classes from {sorted(DEVICE_CLASSES)} to weights, got {mix!r}")
        if any(not math.isfinite(float(w)) or float(w) < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError(f"device_mix weights must be finite, >= 0 and not all 0, got {mix!r}")
        object.__setattr__(self, "device_mix", mix)
        if self.acceptance_profile is not None and self.acceptance_profile not in ACCEPTANCE_PROFILES:
            raise ValueError(
                f"acceptance_profile must be one of {sorted(ACCEPTANCE_PROFILES)} or None, got {self.acceptance_profile!r}"
            )

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated); unknown names raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown scenario setting(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    @property
    def profile(self) -> AcceptanceProfile | None:
        return None if self.acceptance_profile is None else ACCEPTANCE_PROFILES[self.acceptance_profile]

    @property
    def payload_bits(self) -> int:
        """D, bits per uploaded draft token."""
        return payload_bits(self.payload)

    def sample_population(self, rng: np.random.Generator) -> Population:
        """Draw distances, shadowing, device classes and acceptance rates for K users."""
        k = self.num_users
        distance = rng.uniform(*self.distance_range_m, size=k)
        shadowing = rng.normal(0.0, self.shadowing_sigma_db, size=k) if self.shadowing_sigma_db > 0 else np.zeros(k)
        classes = tuple(self.device_mix)
        weights = np.array([self.device_mix[c] for c in classes], dtype=np.float64)
        device = tuple(classes[i] for i in rng.choice(len(classes), size=k, p=weights / weights.sum()))
        profile = self.profile
        if profile is None:
            acceptance = rng.uniform(*self.acceptance_range, size=k)
            tasks = None
        else:
            index = rng.choice(len(profile.tasks), size=k, p=profile.probabilities())
            acceptance = profile.rate_array()[index]
            tasks = tuple(profile.tasks[i] for i in index)
        snr = mean_snr_db(
            distance, shadowing, self.tx_power_dbm, self.bandwidth_hz, self.noise_density_dbm_hz, self.noise_figure_db
        )
        return Population(distance, shadowing, device, draft_times_of(device), acceptance, tasks, snr)

    def upload_time(self, snr_db: ArrayLike, fading_power: ArrayLike = 1.0) -> FloatArray:
        """c_k = D / (W e_k) in s/token for the given mean SNR (dB) and fading power |h|^2."""
        return upload_time_per_token(self.payload_bits, self.bandwidth_hz, spectral_efficiency(snr_db, fading_power))

    def round_params(
        self, population: Population, fading_power: ArrayLike = 1.0, acceptance: ArrayLike | None = None
    ) -> RoundParams:
        """RoundParams of ``population`` under ``fading_power`` (1 = mean channel) and ``acceptance`` (default: the population's)."""
        return RoundParams(
            acceptance=population.acceptance if acceptance is None else acceptance,
            draft_time=population.draft_time,
            upload_time=self.upload_time(population.snr_db, fading_power),
            verify_base=self.verify_base,
            verify_per_token=self.verify_per_token,
            max_draft=self.max_draft,
            downlink_time=self.downlink_time,
        )


SCENARIOS: dict[str, Scenario] = {}


def register_scenario(scenario: Scenario) -> Scenario:
    """Add (or replace) a named scenario preset."""
    SCENARIOS[scenario.name] = scenario
    return scenario


def get_scenario(scenario: str | Scenario = "base", **overrides: Any) -> Scenario:
    """A preset by name (or a Scenario as is), with ``overrides`` applied; ValueError for unknown names."""
    if isinstance(scenario, Scenario):
        base = scenario
    elif isinstance(scenario, str):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {sorted(SCENARIOS)}")
        base = SCENARIOS[scenario]
    else:
        raise ValueError(f"scenario must be a preset name or a Scenario, got {scenario!r}")
    return base.replace(**overrides) if overrides else base


register_scenario(Scenario())
register_scenario(
    Scenario(
        name="tasks",
        acceptance_profile="generic",
        description="base scenario with each user's acceptance drawn from a task mix",
    )
)
