"""Scenario presets: user populations and their physical parameters (docs/model.md section 4).

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

from multispin_env._checks import IntegerRange, RealRange, is_real, real_setting, short_repr
from multispin_env.channel import (
    DEVICE_CLASSES,
    PAYLOAD_MODELS,
    dbm_to_watts,
    draft_powers_of,
    draft_times_of,
    mean_snr_db,
    payload_bits,
    spectral_efficiency,
    upload_time_per_token,
)
from multispin_env.model import (
    MAX_DRAFT,
    MAX_USERS,
    VERIFY_PROFILE_SECONDS,
    VERIFY_PROFILE_TOKENS,
    RoundParams,
    check_verify_profile,
    verification_profile,
)

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


# Rates spanning docs/model.md section 4's measured range (0.5-0.9); the named model-pair profiles refine this.
register_acceptance_profile(
    AcceptanceProfile(
        name="generic",
        rates={"chat": 0.65, "code": 0.80, "math": 0.72, "translation": 0.55, "summarisation": 0.60},
        weights={"chat": 0.3, "code": 0.2, "math": 0.15, "translation": 0.15, "summarisation": 0.2},
        source="docs/model.md section 4: measured per-token acceptance of 0.5-0.9 across model pairs and tasks",
    )
)


def acceptance_from_mean_tokens(mean_tokens: float, draft_length: int) -> float:
    """Per-token i.i.d. acceptance rate a that yields ``mean_tokens`` tokens per round at draft length L.

    Inverts eq. (4), E[n] = (1 - a^(L+1)) / (1 - a), the mean tokens a round
    produces (accepted drafts + the target's token; "mean accepted length" /
    "#MAT" / "tau" in the speculative-decoding literature), for a in (0, 1).
    Needs 1 < mean_tokens < L + 1. This is how published per-round numbers
    become the per-token rates of the profiles below.
    """
    tokens = float(mean_tokens)
    length = int(draft_length)
    if length < 1 or not 1.0 < tokens < length + 1.0:
        raise ValueError(
            f"need draft_length >= 1 and 1 < mean_tokens < draft_length + 1, got {mean_tokens}, {draft_length}"
        )
    low, high = 1e-12, 1.0 - 1e-12
    for _ in range(200):  # bisection: E[n] increases with a
        mid = 0.5 * (low + high)
        if (1.0 - mid ** (length + 1)) / (1.0 - mid) < tokens:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


#: Spec-Bench task categories as used in EAGLE-2's Table 1 (task name -> benchmark).
SPEC_BENCH_TASKS: Mapping[str, str] = {
    "chat": "MT-bench",
    "code": "HumanEval",
    "math": "GSM8K",
    "instruction": "Alpaca",
    "summarisation": "CNN/DailyMail",
    "qa": "Natural Questions",
}

#: Mean tokens per round (tau) of standard speculative sampling (SpS) with the 68M-parameter LLaMA-architecture
#: draft vicuna-68m for the LLaMA fine-tune Vicuna-13B-v1.3, greedy (T = 0), per task: EAGLE-2 (Li et al.,
#: EMNLP 2024, arXiv 2406.16858) Table 1, rows "V 13B / SpS" (mean 2.18, the same as Spec-Bench's leaderboard
#: #Mean Accepted Tokens of SpS for Vicuna-13B on an A100). Figures taken from public reading notes of that
#: table; not re-checked against the PDF.
LLAMA_SPS_MEAN_TOKENS: Mapping[str, float] = {
    "chat": 2.27,
    "code": 2.57,
    "math": 2.01,
    "instruction": 2.03,
    "summarisation": 2.33,
    "qa": 1.88,
}

#: The draft length at which LLAMA_SPS_MEAN_TOKENS are inverted. Spec-Bench's SpS runs Hugging Face assisted
#: generation, whose draft starts at num_assistant_tokens = 5 and adapts (+2 after a fully accepted draft, -1
#: otherwise), so 5 is an approximation: inverting at L = 4 instead raises every rate by 0.01-0.03.
LLAMA_SPS_DRAFT_LENGTH = 5

# "llama2" profile: a = inverse of eq. (4) at L = 5, rounded to 0.01:
#   chat 0.575, code 0.637, math 0.511, instruction 0.517, summarisation 0.589, qa 0.474.
# The per-task measurement is of a LLaMA(-1)-family pair with a 68M draft, the closest published per-task
# numbers we found for a small on-device-sized draft; it is used for Llama-2 pairs because of two checks:
# TinyLlama-1.1B drafting for Llama-2-7B-Chat (4-bit), greedy, chat: per-position acceptance 0.567 / 0.553 /
# 0.588 at depths 1-3 (arXiv 2604.14682, as quoted in public notes) -- matches chat 0.58; and an EAGLE draft head
# for LLaMA2-Chat-70B on MT-bench: per-position 0.75, 0.69, 0.65, 0.64, 0.64 (EAGLE, arXiv 2401.15077, Table 2),
# an upper reference since an EAGLE head reads the target's features and cannot run on a device.
register_acceptance_profile(
    AcceptanceProfile(
        name="llama2",
        rates={
            task: round(acceptance_from_mean_tokens(tau, LLAMA_SPS_DRAFT_LENGTH), 2)
            for task, tau in LLAMA_SPS_MEAN_TOKENS.items()
        },
        weights=dict.fromkeys(LLAMA_SPS_MEAN_TOKENS, 1.0),
        source=(
            "Llama-family pair with a 68M draft (vicuna-68m -> Vicuna-13B-v1.3, greedy): per-task mean tokens per "
            "round of SpS from EAGLE-2 (arXiv 2406.16858) Table 1 / Spec-Bench (chat=MT-bench, code=HumanEval, "
            "math=GSM8K, instruction=Alpaca, summarisation=CNN/DM, qa=Natural Questions), inverted with "
            "E[n] = (1 - a^(L+1)) / (1 - a) at L = 5; cross-checked against TinyLlama-1.1B -> Llama-2-7B-Chat "
            "(chat ~0.57, arXiv 2604.14682). Equal task weights (Spec-Bench's equal-size task sets): an assumption."
        ),
    )
)

#: Qwen3-1.7B drafting for Qwen3-32B in vLLM, draft length 5, thinking mode, T = 1, text-only math questions
#: (MathVision-mini): mean 3.87 tokens per target pass and 0.573 of drafted tokens accepted (= 2.87 / 5, consistent),
#: from a public experiment log (RESULTS.md of a vLLM speculative-decoding study, April 2026). Inverting eq. (4) at
#: L = 5 gives a = 0.82, in line with docs/model.md section 4 ("~0.8").
QWEN_MATH_MEAN_TOKENS, QWEN_DRAFT_LENGTH = 3.87, 5


def _logit(x: float) -> float:
    return math.log(x / (1.0 - x))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# "qwen" profile. Only the math rate is measured (0.82 above). ASSUMPTION: the other tasks differ from math by the
# same log-odds offsets as in the llama2 profile (code and summarisation easier, qa harder), which gives
# chat 0.86, code 0.88, instruction 0.82, summarisation 0.86, qa 0.80. Qualitatively consistent with task-dependent
# acceptance reported elsewhere (e.g. coding far above creative writing for Qwen MTP drafting), but the offsets
# themselves are not measured for this pair.
_QWEN_MATH_RATE = acceptance_from_mean_tokens(QWEN_MATH_MEAN_TOKENS, QWEN_DRAFT_LENGTH)
_LLAMA_LOGIT = {
    t: _logit(acceptance_from_mean_tokens(v, LLAMA_SPS_DRAFT_LENGTH)) for t, v in LLAMA_SPS_MEAN_TOKENS.items()
}
register_acceptance_profile(
    AcceptanceProfile(
        name="qwen",
        rates={
            task: round(_expit(_logit(_QWEN_MATH_RATE) + _LLAMA_LOGIT[task] - _LLAMA_LOGIT["math"]), 2)
            for task in LLAMA_SPS_MEAN_TOKENS
        },
        weights=dict.fromkeys(LLAMA_SPS_MEAN_TOKENS, 1.0),
        source=(
            "Qwen3-1.7B -> Qwen3-32B (vLLM, L = 5, T = 1, thinking mode): 3.87 mean tokens per round on math "
            "questions (public experiment log, 2026) -> a = 0.82 via E[n] = (1 - a^(L+1)) / (1 - a); docs/model.md "
            "section 4 (~0.8). Other tasks: ASSUMED to keep the llama2 profile's log-odds offsets from math. "
            "Equal task weights (assumption)."
        ),
    )
)


@dataclass(frozen=True)
class VerifyProfile:
    """A measured batch-verification time profile: (tokens, seconds) points, eq. (2') of docs/model.md."""

    name: str
    points: tuple[tuple[float, float], ...]
    source: str


#: Measured verification profiles by name (``Scenario.verify_profile`` / the ``verify_profile`` setting).
VERIFY_PROFILES: dict[str, VerifyProfile] = {
    profile.name: profile
    for profile in (
        VerifyProfile(
            "llama2-7b-prefill",
            ((16, 0.0057), (64, 0.0062), (128, 0.0077), (256, 0.0116), (512, 0.0202), (1024, 0.0384), (2048, 0.078)),
            "Llama-2-7B prefill time against prompt tokens, jetstream-pytorch PR #68: flat to ~64 tokens, then "
            "~37 us/token.",
        ),
        VerifyProfile(
            "llama-7b-f16-v100",
            ((1, 0.0326), (2, 0.039), (3, 0.0395)),
            "Llama-7B F16 on a V100, batch of 1-3 tokens, llama.cpp#3649 on GitHub: the first extra token costs "
            "6.4 ms, the next 0.5 ms (extended linearly beyond 3 tokens at that slope).",
        ),
    )
}


#: Weight of a device class in ``device_mix`` (finite weights whose sum stays finite).
DEVICE_WEIGHT = RealRange(0.0, 1e12)


def verify_profile_setting(name: str, value: Any) -> str | tuple[tuple[float, float], ...] | None:
    """A verification profile: None, a name from :data:`VERIFY_PROFILES`, or >= 2 (tokens, seconds) points as a
    tuple of float pairs, tokens increasing by >= 1 in :data:`VERIFY_PROFILE_TOKENS`, seconds non-decreasing in
    :data:`VERIFY_PROFILE_SECONDS` (eq. (2')); a one-line ValueError naming the first bad point otherwise. Strings
    and bools are not numbers (section 4.1)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in VERIFY_PROFILES:
            raise ValueError(
                f"{name} must be one of {sorted(VERIFY_PROFILES)}, a (tokens, seconds) table or None, got {value!r}"
            )
        return value
    try:
        points = list(value)
    except TypeError as exc:
        raise ValueError(f"{name} must be a profile name or (tokens, seconds) pairs, got {short_repr(value)}") from exc
    if len(points) < 2:
        raise ValueError(f"{name} must have at least 2 (tokens, seconds) points, got {len(points)}")
    for i, point in enumerate(points):
        try:
            pair = () if isinstance(point, (str, bytes)) else tuple(point)
        except TypeError:
            pair = ()
        if len(pair) != 2 or not (is_real(pair[0]) and is_real(pair[1])):
            where = f"{name}[{i}] = {short_repr(pair if len(pair) == 2 else point)}"
            raise ValueError(f"{name} must be a profile name or (tokens, seconds) pairs of real numbers: {where}")
    try:
        table = np.array([tuple(point) for point in points], dtype=np.float64)
    except OverflowError:  # an int beyond float's range: out of VERIFY_PROFILE_TOKENS/SECONDS either way
        raise ValueError(
            f"{name} must have tokens in {VERIFY_PROFILE_TOKENS} and seconds in {VERIFY_PROFILE_SECONDS}"
        ) from None
    check_verify_profile(table, name)  # the model's one rule (eq. (2')), shared with RoundParams
    return tuple((float(t), float(sec)) for t, sec in table)


def device_mix_setting(name: str, value: Any) -> dict[str, float]:
    """Device class -> weight, classes from :data:`~multispin_env.channel.DEVICE_CLASSES`, weights in
    :data:`DEVICE_WEIGHT`, not all 0; a one-line ValueError otherwise."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{name} must map classes from {sorted(DEVICE_CLASSES)} to weights, got {short_repr(value)}")
    unknown = [key for key in value if key not in DEVICE_CLASSES]
    if unknown:
        raise ValueError(
            f"{name} must map classes from {sorted(DEVICE_CLASSES)} to weights, got unknown class(es) "
            f"{', '.join(short_repr(key, 40) for key in unknown[:8])}"
        )
    mix = {key: DEVICE_WEIGHT(f"{name} weight of {key!r}", weight) for key, weight in value.items()}
    if sum(mix.values()) <= 0:
        raise ValueError(f"{name} weights must not all be 0, got {mix!r}")
    return mix


def payload_setting(name: str, value: Any) -> str:
    """A payload model of :data:`~multispin_env.channel.PAYLOAD_MODELS`; ValueError otherwise."""
    if not isinstance(value, str) or value not in PAYLOAD_MODELS:
        raise ValueError(f"{name} must be one of {PAYLOAD_MODELS}, got {short_repr(value)}")
    return value


def _checked(default: Any, check: Any) -> Any:
    """A Scenario field with its check (``check(name, value)`` returns the normalised value, or raises a one-line
    ValueError naming the field); the checks are the one declaration of each field's range."""
    return field(default=default, metadata={"check": check})


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

    @property
    def draft_power(self) -> FloatArray:
        """Drafting power per user, W (docs/model.md section 5.7)."""
        return draft_powers_of(self.device_class)


def _range(name: str, value: Any, low: float, high: float, *, closed: bool = True) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (low, high) pair, got {short_repr(value)}") from exc
    lo = real_setting(f"{name} low", lo, low, high, low_open=not closed, high_open=not closed)
    hi = real_setting(f"{name} high", hi, low, high, low_open=not closed, high_open=not closed)
    if lo > hi:
        raise ValueError(f"{name} must satisfy {low} <= low <= high <= {high}, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class Scenario:
    """A family of Multi-SPIN systems; the defaults are docs/model.md section 4's base scenario.

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
    :param verify_knee_tokens: batch tokens verified in T0 before the time grows, eq. (2') (0: eq. (2))
    :param verify_profile: a name from :data:`VERIFY_PROFILES` or a (tokens, seconds) table replacing T0,
        kappa and the knee; None: the affine/knee model
    :param downlink_time: T_dl, s
    """

    name: str = "base"
    num_users: int = _checked(6, IntegerRange(1, MAX_USERS))
    max_draft: int = _checked(10, IntegerRange(1, MAX_DRAFT))
    # The channel's ranges keep the mean SNR within about +-1500 dB, so 10^(SNR/10) and e_k are finite (section 4.2).
    bandwidth_hz: float = _checked(10e6, RealRange(1.0, 1e12))
    distance_range_m: tuple[float, float] = (50.0, 300.0)
    shadowing_sigma_db: float = _checked(8.0, RealRange(0.0, 100.0))
    tx_power_dbm: float = _checked(23.0, RealRange(-100.0, 100.0))
    noise_density_dbm_hz: float = _checked(-174.0, RealRange(-300.0, 0.0))
    noise_figure_db: float = _checked(9.0, RealRange(0.0, 100.0))
    doppler_hz: float = _checked(10.0, RealRange(0.0, 1e4))
    payload: str = _checked("top-k", payload_setting)
    device_mix: Mapping[str, float] = field(
        default_factory=lambda: {"high": 1.0, "mid": 1.0, "low": 1.0}, metadata={"check": device_mix_setting}
    )
    acceptance_range: tuple[float, float] = (0.5, 0.9)
    acceptance_profile: str | None = None
    # The bounds of RoundParams: T_ver <= 1e9 + 1e9 * 1e7 s even at the largest batch, so the clock stays finite.
    verify_base: float = _checked(0.060, RealRange(0.0, 1e9, low_open=True))
    verify_per_token: float = _checked(0.0005, RealRange(0.0, 1e9))
    downlink_time: float = _checked(0.0, RealRange(0.0, 1e9))
    verify_knee_tokens: float = _checked(0.0, RealRange(0.0, 1e6))
    verify_profile: Any = _checked(None, verify_profile_setting)
    description: str = "docs/model.md section 4 base scenario"

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            if "check" in spec.metadata:
                object.__setattr__(self, spec.name, spec.metadata["check"](spec.name, getattr(self, spec.name)))
        object.__setattr__(self, "distance_range_m", _range("distance_range_m", self.distance_range_m, 1e-3, 1e6))
        object.__setattr__(
            self, "acceptance_range", _range("acceptance_range", self.acceptance_range, 0.0, 1.0, closed=False)
        )
        self.verify_profile_points  # eq. (2')'s profile of the checked numbers  # noqa: B018
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
    def verify_table(self) -> tuple[tuple[float, float], ...] | None:
        """The verification profile's (tokens, seconds) points, or None for the affine/knee model."""
        if self.verify_profile is None:
            return None
        if isinstance(self.verify_profile, str):
            return VERIFY_PROFILES[self.verify_profile].points
        return self.verify_profile  # already (tokens, seconds) float pairs (verify_profile_setting)

    @property
    def verify_profile_points(self) -> tuple[FloatArray, FloatArray]:
        """The verification time model as (tokens, seconds) points, eq. (2')."""
        return verification_profile(self.verify_base, self.verify_per_token, self.verify_knee_tokens, self.verify_table)

    @property
    def transmit_power_w(self) -> float:
        """P_tx, W: ``tx_power_dbm`` in watts (the device's power while it uploads, section 5.7)."""
        return float(dbm_to_watts(self.tx_power_dbm))

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
        return self.system_params(
            population.acceptance if acceptance is None else acceptance,
            population.draft_time,
            self.upload_time(population.snr_db, fading_power),
        )

    def system_params(
        self,
        acceptance: ArrayLike | None,
        draft_time: ArrayLike,
        upload_time: ArrayLike,
        *,
        survival: ArrayLike | None = None,
        upload_deadline: float | None = None,
        weights: ArrayLike | None = None,
    ) -> RoundParams:
        """RoundParams of users with these rates (or acceptance curves ``survival``), t_k and c_k (s/token) on
        this scenario's server: its T0, kappa, knee or profile, L_max and T_dl, ``upload_deadline`` (s) and the
        users' objective ``weights`` (eq. (5w); None: unweighted)."""
        return RoundParams(
            acceptance=acceptance,
            survival=survival,
            draft_time=draft_time,
            upload_time=upload_time,
            verify_base=self.verify_base,
            verify_per_token=self.verify_per_token,
            max_draft=self.max_draft,
            downlink_time=self.downlink_time,
            verify_knee_tokens=self.verify_knee_tokens,
            verify_profile=self.verify_table,
            upload_deadline=upload_deadline,
            weights=weights,
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

#: Unconditional acceptance by draft position 1-6 of a 16-token drafter (vLLM PR #52992): 71.2%, 51.7%, 39.0%,
#: 30.5%, 24.4%, 20.0%. A Beta-rate mixture of mean VLLM_DRAFTER_RATE and concentration 9.745 (the mixture
#: process's default ``mixture_concentration``) reproduces them within 0.005 (docs/model.md section 5.1).
VLLM_DRAFTER_ACCEPTANCE: tuple[float, ...] = (0.712, 0.517, 0.390, 0.305, 0.244, 0.200)
VLLM_DRAFTER_RATE = 0.7078
register_scenario(
    Scenario(
        name="vllm-drafter",
        acceptance_range=(VLLM_DRAFTER_RATE, VLLM_DRAFTER_RATE),
        description="base scenario with every user's mean acceptance fitted to a measured 16-token drafter; "
        "use with acceptance_process='mixture' (vLLM PR #52992)",
    )
)


# --- Heterogeneity knobs -------------------------------------------------------------------------------------
#
# Three independent knobs say how different the users are; each maps onto Scenario fields.
#   acceptance spread -> acceptance_range = centre +- spread / 2        (spread of a_k)
#   device mix        -> device_mix, one of DEVICE_MIXES                 (spread of t_k: 4 / 10 / 25 ms per token)
#   channel spread    -> distance_range_m and shadowing_sigma_db, one of CHANNEL_SPREADS (spread of SNR, so of c_k)

#: Centre of the acceptance range of the heterogeneity knob: the base scenario's U(0.5, 0.9) is centre 0.7, spread 0.4.
ACCEPTANCE_CENTRE = 0.7

#: Device-class mixes, from identical devices to the two extreme classes only.
DEVICE_MIXES: Mapping[str, Mapping[str, float]] = {
    "high-only": {"high": 1.0},
    "mid-only": {"mid": 1.0},
    "low-only": {"low": 1.0},
    "all": {"high": 1.0, "mid": 1.0, "low": 1.0},
    "high-low": {"high": 1.0, "low": 1.0},
}

#: Channel spreads: (distance range in m, shadowing sigma in dB). "none" puts every user at the mean distance of the
#: base range with no shadowing; "base" is docs/model.md section 4; "wide" is a larger cell with heavier shadowing (an
#: assumption chosen to span cell-edge users, not a measured deployment).
CHANNEL_SPREADS: Mapping[str, tuple[tuple[float, float], float]] = {
    "none": ((175.0, 175.0), 0.0),
    "narrow": ((100.0, 250.0), 4.0),
    "base": ((50.0, 300.0), 8.0),
    "wide": ((20.0, 500.0), 12.0),
}

#: Named heterogeneity levels: (acceptance spread, device mix, channel spread).
HETEROGENEITY_LEVELS: Mapping[str, tuple[float, str, str]] = {
    "none": (0.0, "mid-only", "none"),
    "weak": (0.2, "all", "narrow"),
    "base": (0.4, "all", "base"),
    "strong": (0.5, "high-low", "wide"),
}


def acceptance_range_for(spread: float, centre: float = ACCEPTANCE_CENTRE) -> tuple[float, float]:
    """The acceptance range centre +- spread / 2 (spread 0: every user has a = centre); it must stay inside (0, 1)."""
    spread, centre = float(spread), float(centre)
    low, high = round(centre - spread / 2.0, 12), round(centre + spread / 2.0, 12)
    if not (math.isfinite(spread) and spread >= 0.0 and low > 0.0 and high < 1.0):
        raise ValueError(
            f"acceptance spread {spread} around centre {centre} must keep the range inside (0, 1), got ({low}, {high})"
        )
    return (low, high)


def heterogeneous_scenario(
    acceptance_spread: float = 0.4,
    device_mix: str | Mapping[str, float] = "all",
    channel_spread: str | tuple[tuple[float, float], float] = "base",
    *,
    base: str | Scenario = "base",
    name: str | None = None,
    acceptance_centre: float = ACCEPTANCE_CENTRE,
    **overrides: Any,
) -> Scenario:
    """A scenario with the given heterogeneity; every other field from ``base`` (and ``overrides``).

    :param acceptance_spread: width of the uniform range of a_k around ``acceptance_centre`` (0 = identical drafts)
    :param device_mix: a name from :data:`DEVICE_MIXES` or a class -> weight mapping
    :param channel_spread: a name from :data:`CHANNEL_SPREADS` or ``((d_min, d_max), shadowing_sigma_db)``
    :param base: the scenario the rest comes from
    :param name: the new scenario's name (default: built from the knob values)
    """
    if isinstance(device_mix, str):
        if device_mix not in DEVICE_MIXES:
            raise ValueError(f"device_mix must be one of {sorted(DEVICE_MIXES)} or a mapping, got {device_mix!r}")
        mix_name, mix = device_mix, dict(DEVICE_MIXES[device_mix])
    else:
        mix = dict(device_mix)
        mix_name = "+".join(sorted(mix))
    if isinstance(channel_spread, str):
        if channel_spread not in CHANNEL_SPREADS:
            raise ValueError(
                f"channel_spread must be one of {sorted(CHANNEL_SPREADS)} or a pair, got {channel_spread!r}"
            )
        channel_name = channel_spread
        distance, shadowing = CHANNEL_SPREADS[channel_spread]
    else:
        try:
            distance, shadowing = channel_spread
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"channel_spread must be a name or ((d_min, d_max), sigma_db), got {channel_spread!r}"
            ) from exc
        channel_name = f"{distance[0]:g}-{distance[1]:g}m/{shadowing:g}dB"
    label = name or f"het(a+-{float(acceptance_spread) / 2:g},{mix_name},{channel_name})"
    fields: dict[str, Any] = {
        "name": label,
        "acceptance_range": acceptance_range_for(acceptance_spread, acceptance_centre),
        "acceptance_profile": None,
        "device_mix": mix,
        "distance_range_m": tuple(distance),
        "shadowing_sigma_db": float(shadowing),
        "description": (
            f"acceptance U{acceptance_range_for(acceptance_spread, acceptance_centre)}, devices {mix_name}, "
            f"channel {channel_name}"
        ),
    }
    fields.update(overrides)
    return get_scenario(base, **fields)


def heterogeneity_scenario(level: str, **overrides: Any) -> Scenario:
    """One of the named heterogeneity levels ``none``, ``weak``, ``base``, ``strong`` (:data:`HETEROGENEITY_LEVELS`)."""
    if level not in HETEROGENEITY_LEVELS:
        raise ValueError(f"heterogeneity level must be one of {list(HETEROGENEITY_LEVELS)}, got {level!r}")
    spread, mix, channel = HETEROGENEITY_LEVELS[level]
    return heterogeneous_scenario(spread, mix, channel, **overrides)


register_scenario(
    heterogeneity_scenario(
        "none",
        name="homogeneous-users",
        description="identical users: a = 0.7, mid-range devices, all at 175 m, no shadowing",
    )
)
register_scenario(
    heterogeneity_scenario(
        "weak", name="weak-heterogeneity", description="a ~ U(0.6, 0.8), all device classes, 100-250 m, 4 dB shadowing"
    )
)
register_scenario(
    heterogeneity_scenario(
        "strong",
        name="strong-heterogeneity",
        description="a ~ U(0.45, 0.95), only high-end and low-end devices, 20-500 m, 12 dB shadowing",
    )
)
register_scenario(
    heterogeneous_scenario(
        0.6,
        "high-only",
        "none",
        acceptance_centre=0.6,
        bandwidth_hz=2e6,
        name="acceptance-only",
        description=(
            "users differ only in acceptance, a ~ U(0.3, 0.9): identical high-end devices (4 ms/token) at 175 m, no "
            "shadowing, W = 2 MHz so that uploading a token (~1.9 ms) costs about half as much as drafting it "
            "(het-opt gains ~4% over hom-opt here; with mid-range devices and W = 10 MHz drafting dominates the "
            "round, lengths still grow with a_k but the gain is below 1%)"
        ),
    )
)
register_scenario(
    Scenario(
        name="llama2",
        acceptance_profile="llama2",
        description="base scenario; each user's task (so a_k, 0.47-0.64) drawn from the llama2 profile",
    )
)
register_scenario(
    Scenario(
        name="qwen",
        acceptance_profile="qwen",
        description="base scenario; each user's task (so a_k, 0.80-0.88) drawn from the qwen profile",
    )
)
