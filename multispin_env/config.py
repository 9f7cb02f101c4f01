"""Every setting of the Multi-SPIN environments, declared once: default, unit, valid range and meaning.

:class:`EnvConfig` is the one declaration. Each field has its default, a comment-like ``doc`` and its check;
:meth:`EnvConfig.__post_init__` validates every field (a one-line ValueError naming the setting) and resolves
the scenario. :func:`default_config` derives the ``{key: default}`` dict from the fields, and
``gym.make(id, **kwargs)`` (or ``config={...}``) overrides them through :func:`resolve_config`. The ranges are
those of docs/model.md section 4.1.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multispin_env._checks import Choice, IntegerRange, RealRange, flag_setting, short_repr
from multispin_env.acceptance import ACCEPTANCE_PROCESSES, MIXTURE_SCOPES
from multispin_env.channel import fading_setting
from multispin_env.model import MAX_DRAFT, MAX_USERS
from multispin_env.requests import REQUEST_LENGTHS
from multispin_env.scenarios import ACCEPTANCE_PROFILES, AcceptanceProfile, Scenario, get_scenario
from multispin_env.traces import load_trace

__all__ = [
    "EnvConfig",
    "default_config",
    "resolve_config",
    "DEFAULT_TASK_PROFILE",
    "MAX_CSI_DELAY",
    "SETTINGS",
    "UnknownSettingError",
    "Choice",
    "OptionalSetting",
]

#: Task mix of the ``tasks`` acceptance process when the scenario names no acceptance profile.
DEFAULT_TASK_PROFILE = "generic"
#: Longest CSI delay, rounds (the state keeps this many past channels per user).
MAX_CSI_DELAY = 1000

Check = Callable[[str, Any], Any]


def _setting(default: Any, check: Check, doc: str) -> Any:
    """A settings field: its default, the check that validates (and normalises) a value, and its meaning."""
    return field(default=default, metadata={"check": check, "doc": doc})


class UnknownSettingError(TypeError, ValueError):
    """An unknown setting: a TypeError as Python raises for an unexpected keyword argument (third-party wrappers,
    e.g. torchrl's GymEnv, retry without an optional keyword on it), and a ValueError like every bad setting."""


def _flag() -> Check:
    return flag_setting


def _integer(low: int, high: int | None = None) -> Check:
    return IntegerRange(low, high)


def _real(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    return RealRange(low, high, low_open, high_open)


@dataclasses.dataclass(frozen=True)
class OptionalSetting:
    """The check of a setting that may be None (the scenario's value) or else passes ``check``."""

    check: Check

    def __call__(self, name: str, value: Any) -> Any:
        return None if value is None else self.check(name, value)


def _optional(check: Check) -> Check:
    return OptionalSetting(check)


def _scenario_check(name: str) -> Check:
    """The check of the Scenario field ``name`` (its one declaration), for the setting that overrides it."""
    return OptionalSetting(next(spec.metadata["check"] for spec in dataclasses.fields(Scenario) if spec.name == name))


def _choice(choices: Callable[[], Mapping[str, Any]], aliases: Mapping[bool, str] | None = None) -> Check:
    return Choice(choices, dict(aliases or {}))


def _scenario(name: str, value: Any) -> str | Scenario:
    if not isinstance(value, (str, Scenario)):
        raise ValueError(f"{name} must be a preset name or a Scenario, got {short_repr(value)}")
    return value


def _trace_path(name: str, value: Any) -> str | None:
    """A path (as a string), or None (the shipped example); the file itself is read and validated by
    :meth:`EnvConfig.__post_init__` only when the acceptance process replays it."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path to a trace file or None, got {short_repr(value)}")
    return os.fspath(value)


@dataclass(frozen=True)
class EnvConfig:
    """The validated settings of one environment (units and ranges in each field's ``doc``).

    After validation ``scenario`` holds the resolved :class:`~multispin_env.scenarios.Scenario` (the preset with
    the overrides ``num_users`` ... ``doppler_hz`` applied) and ``task_profile`` the task mix of the ``tasks``
    process.
    """

    homogeneous: bool = _setting(
        False,
        _flag(),
        "one common draft length for all users (P-hom) instead of one per user (P-het); fixed by the registered ids",
    )
    scenario: Any = _setting("base", _scenario, "a preset name from multispin_env.scenarios.SCENARIOS or a Scenario")
    # The settings that override a Scenario field are checked by that field's own check (scenarios.Scenario).
    num_users: int | None = _setting(
        None, _scenario_check("num_users"), f"K, users (1..{MAX_USERS}); None keeps the scenario's"
    )
    max_draft: int | None = _setting(
        None, _scenario_check("max_draft"), f"L_max, tokens (1..{MAX_DRAFT}); None keeps the scenario's"
    )
    payload: str | None = _setting(
        None,
        _scenario_check("payload"),
        "payload model per draft token (token-only, top-k, full); None keeps the scenario's",
    )
    device_mix: Mapping[str, float] | None = _setting(
        None, _scenario_check("device_mix"), "device class -> weight (each <= 1e12); None keeps the scenario's"
    )
    doppler_hz: float | None = _setting(
        None,
        _scenario_check("doppler_hz"),
        "f_D of the fading, Hz (0..1e4: 500 km/h at 6 GHz is 2.8 kHz); None keeps the scenario's",
    )
    verify_knee_tokens: float | None = _setting(
        None,
        _scenario_check("verify_knee_tokens"),
        "batch tokens verified in T0 before T_ver grows, eq. (2'); None keeps the scenario's (0)",
    )
    verify_profile: Any = _setting(
        None,
        _scenario_check("verify_profile"),
        "a measured verification profile: a "
        "name from "
        "multispin_env.scenarios.VERIFY_PROFILES or (tokens, seconds) pairs; None keeps "
        "the scenario's",
    )
    upload_deadline: float | None = _setting(
        0.5,
        _optional(_real(0.0, 1e9, low_open=True)),
        "seconds after the "
        "round start at which the server stops waiting for uploads; later "
        "users are dropped (eq. (1')); None: no deadline",
    )
    energy_weight: float = _setting(
        0.0,
        _real(0.0, 1e6),
        "tokens per joule traded off in the reward: reward = scale (sum_k n_k - weight sum_k E_k) (section 5.7)",
    )
    fading: str = _setting(
        "jakes",
        fading_setting,
        "the fading model, a name of multispin_env.channel.FADING_MODELS: jakes (Rayleigh, Gauss-Markov steps, "
        "rho = J0(2 pi f_D T)), none (|h|^2 = 1 every round, shadowing fixed) or a registered model; "
        "True/False: jakes/none",
    )
    csi_delay: int = _setting(0, _integer(0, MAX_CSI_DELAY), "rounds by which the observed channel lags the true one")
    csi_noise_std: float = _setting(0.0, _real(0.0, 10.0), "std of the CN(0, std^2) error added to the observed h")
    draft_time_jitter: float = _setting(
        0.0,
        _real(0.0, 3.0),
        "sigma of a mean-one log-normal factor exp(sigma Z - sigma^2/2) on every t_k each round (0..3)",
    )
    acceptance_process: str = _setting(
        "iid",
        _choice(lambda: ACCEPTANCE_PROCESSES),
        "iid, positional, markov, tasks, mixture or trace (docs/model.md section 5.1), or a registered process",
    )
    positional_decay: float = _setting(
        0.8, _real(0.0, 1.0, low_open=True), "d of the positional process, a_k,i = a_k d^(i-1)"
    )
    markov_switch_prob: float = _setting(
        0.05, _real(0.0, 1.0), "per-round probability that a user's easy/hard regime flips"
    )
    markov_hard_factor: float = _setting(0.6, _real(0.0, 1.0, low_open=True), "hard-regime rate = a_k * factor")
    mean_request_tokens: float = _setting(
        100.0,
        _real(1.0, 1e12),
        "mean request length, tokens: of the arrivals' requests and of those the tasks and mixture processes reset on",
    )
    request_length: str = _setting(
        "geometric",
        _choice(lambda: dict.fromkeys(REQUEST_LENGTHS)),
        "distribution of "
        "a request's length, mean mean_request_tokens: geometric on {1, 2, ...} or "
        "fixed (docs/model.md section 5.8)",
    )
    arrival_rate: float | None = _setting(
        None,
        _optional(_real(0.0, 1e6, low_open=True)),
        "requests per second per user, Poisson (docs/model.md section 5.8); None: every user is always busy",
    )
    max_queued_requests: int = _setting(
        1000,
        _integer(0, 10**6),
        "with arrivals, requests a user can hold "
        "queued behind its current one (0..1,000,000); a request arriving when "
        "its queue is full is blocked: dropped and counted in info['blocked'] "
        "(docs/model.md section 5.8)",
    )
    mixture_concentration: float = _setting(
        9.745,
        _real(1e-6, 1e6),
        "kappa = alpha + beta of the "
        "mixture process's Beta rates (default: fitted to vLLM's measured "
        "acceptance by position, preset scenario vllm-drafter)",
    )
    mixture_scope: str = _setting(
        "round",
        _choice(lambda: dict.fromkeys(MIXTURE_SCOPES)),
        "when the mixture process draws a new rate: every round or per request",
    )
    trace_path: str | None = _setting(
        None,
        _trace_path,
        "acceptance trace replayed by the trace process "
        "(JSON lines, docs/traces.md); None: the shipped example, recorded on tiny "
        "random models (smoke tests only)",
    )
    acceptance_forgetting: float = _setting(
        0.9, _real(0.0, 1.0), "per-round forgetting factor lambda of the observed acceptance estimate"
    )
    acceptance_prior: float = _setting(
        0.7,
        _real(0.0, 1.0, low_open=True, high_open=True),
        "prior rate a0 of the estimate a_hat = (S + w0 a0) / (S + F + w0)",
    )
    acceptance_prior_weight: float = _setting(
        2.0,
        _real(1e-6, 1e6),
        "prior weight w0 of that estimate, "
        "pseudo-tokens (>= 1e-6: w0 a0 and w0 (1 - a0) cannot both "
        "underflow to 0, so a_hat is never 0 / 0)",
    )
    horizon: float = _setting(
        10.0,
        _real(0.0, 1e9, low_open=True),
        "simulated seconds per episode; truncated at the first round ending at or after it",
    )
    reward_scale: float = _setting(0.1, _real(0.0, 1e6, low_open=True), "reward per generated token")
    resample_population: bool = _setting(
        False,
        _flag(),
        "True: a new population at each reset; False: one population from population_seed for every reset and sub-env",
    )
    population_seed: int = _setting(0, _integer(0, 2**63 - 1), "seed of the fixed population")
    request_deadline_per_token: float | None = _setting(
        None,
        _optional(_real(1e-6, 1e6)),
        "with arrivals, seconds per token of a request's length in its completion-time target D = base + "
        "per_token * length (docs/model.md eq. (9d)); None: no targets",
    )
    request_deadline_base: float = _setting(
        0.0,
        _real(0.0, 1e9),
        "seconds added to every request's completion-time target (eq. (9d)); needs request_deadline_per_token",
    )

    task_profile: AcceptanceProfile = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            if spec.init:
                object.__setattr__(self, spec.name, spec.metadata["check"](spec.name, getattr(self, spec.name)))
        overrides = {key: getattr(self, key) for key in SCENARIO_OVERRIDES if getattr(self, key) is not None}
        try:
            scenario = get_scenario(self.scenario, **overrides)
        except (TypeError, ValueError) as exc:
            names = ", ".join(["scenario", *overrides])
            raise ValueError(f"invalid scenario setting ({names}): {exc}") from exc
        if self.request_deadline_per_token is not None and self.arrival_rate is None:
            raise ValueError("request_deadline_per_token needs request arrivals (set arrival_rate)")
        if self.request_deadline_base > 0.0 and self.request_deadline_per_token is None:
            raise ValueError("request_deadline_base needs request_deadline_per_token (the targets are off without it)")
        if "trace_path" in ACCEPTANCE_PROCESSES[self.acceptance_process].parameters:  # read only when replayed
            try:
                load_trace(self.trace_path)
            except ValueError as exc:
                raise ValueError(f"trace_path: {exc}") from exc
        profile_name = scenario.acceptance_profile or DEFAULT_TASK_PROFILE
        if profile_name not in ACCEPTANCE_PROFILES:
            raise ValueError(f"scenario's acceptance_profile {profile_name!r} is not registered")
        object.__setattr__(self, "scenario", scenario)
        object.__setattr__(self, "task_profile", ACCEPTANCE_PROFILES[profile_name])


#: Config keys that override the Scenario field of the same name when not None.
SCENARIO_OVERRIDES = (
    "num_users",
    "max_draft",
    "payload",
    "device_mix",
    "doppler_hz",
    "verify_knee_tokens",
    "verify_profile",
)

#: The settings: name -> the doc of its field (for listings and docs).
SETTINGS: Mapping[str, str] = {spec.name: spec.metadata["doc"] for spec in dataclasses.fields(EnvConfig) if spec.init}


def default_config() -> dict[str, Any]:
    """Every setting and its default (the fields of :class:`EnvConfig`; units in their ``doc``)."""
    return {spec.name: spec.default for spec in dataclasses.fields(EnvConfig) if spec.init}


def _keyword_owner() -> str:
    """The function whose keyword arguments :func:`resolve_config` checks, as Python names it in its own error: the
    calling constructor (``MultiSpinHeterogeneousEnv.__init__``) when an env passes its ``**kwargs`` on, else
    ``resolve_config`` itself. Read from the call stack, not taken as an argument, so that no keyword is reserved
    and ``gym.make(id, caller=...)`` stays an unknown setting."""
    frame = sys._getframe(2)  # 0: this function, 1: resolve_config, 2: its caller
    code = frame.f_code
    if code.co_name == "__init__" and "self" in frame.f_locals:
        return f"{type(frame.f_locals['self']).__name__}.__init__"
    return "resolve_config"


def resolve_config(
    config: Mapping[str, Any] | None = None, *, fixed: Mapping[str, Any] | None = None, **kwargs: Any
) -> EnvConfig:
    """Merge ``config`` and ``kwargs`` (kwargs win) over the defaults and validate them into an EnvConfig.

    :param fixed: settings fixed by a registered id; giving one of them is an error
    Raises a ValueError naming the first invalid setting; an unknown one raises :class:`UnknownSettingError` (a
    TypeError and a ValueError) in Python's words for an unexpected keyword argument.
    """
    if config is not None and not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict of settings, got {short_repr(config)}")
    known = ", ".join(sorted(SETTINGS))
    unknown = [key for key in kwargs if key not in SETTINGS]
    if unknown:
        raise UnknownSettingError(
            f"{_keyword_owner()}() got an unexpected keyword argument {unknown[0]!r}; known settings: {known}"
        )
    unknown = [key for key in (config or {}) if key not in SETTINGS]  # keys of any type: listed, not sorted
    if unknown:
        raise UnknownSettingError(
            f"config has unknown setting(s) {', '.join(map(repr, unknown))}; known settings: {known}"
        )
    given = {**dict(config or {}), **kwargs}
    clash = sorted(set(given) & set(fixed or {}))
    if clash:
        raise ValueError(f"setting(s) {clash} are fixed by this environment id; use the other id instead")
    return EnvConfig(**{**given, **dict(fixed or {})})
