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
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multispin_env._checks import flag_setting, integer_setting, real_setting
from multispin_env.acceptance import ACCEPTANCE_PROCESSES, MIXTURE_SCOPES
from multispin_env.channel import PAYLOAD_MODELS
from multispin_env.model import MAX_DRAFT, MAX_USERS
from multispin_env.requests import REQUEST_LENGTHS
from multispin_env.scenarios import ACCEPTANCE_PROFILES, AcceptanceProfile, Scenario, get_scenario
from multispin_env.traces import load_trace

__all__ = ["EnvConfig", "default_config", "resolve_config", "DEFAULT_TASK_PROFILE", "MAX_CSI_DELAY", "SETTINGS"]

#: Task mix of the ``tasks`` acceptance process when the scenario names no acceptance profile.
DEFAULT_TASK_PROFILE = "generic"
#: Longest CSI delay, rounds (the state keeps this many past channels per user).
MAX_CSI_DELAY = 1000

Check = Callable[[str, Any], Any]


def _setting(default: Any, check: Check, doc: str) -> Any:
    """A settings field: its default, the check that validates (and normalises) a value, and its meaning."""
    return field(default=default, metadata={"check": check, "doc": doc})


def _flag() -> Check:
    return flag_setting


def _integer(low: int, high: int | None = None) -> Check:
    return lambda name, value: integer_setting(name, value, low, high)


def _real(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    return lambda name, value: real_setting(name, value, low, high, low_open=low_open, high_open=high_open)


def _optional(check: Check) -> Check:
    return lambda name, value: None if value is None else check(name, value)


def _choice(choices: Callable[[], Mapping[str, Any]]) -> Check:
    def check(name: str, value: Any) -> str:
        names = choices()
        if not isinstance(value, str) or value not in names:
            raise ValueError(f"{name} must be one of {sorted(names)}, got {value!r}")
        return value

    return check


def _scenario(name: str, value: Any) -> str | Scenario:
    if not isinstance(value, (str, Scenario)):
        raise ValueError(f"{name} must be a preset name or a Scenario, got {value!r}")
    return value


def _device_mix(name: str, value: Any) -> Mapping[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must map device classes to weights, got {value!r}")
    for weight in value.values():  # finite weights whose sum is finite (1e308 + 1e308 = inf)
        real_setting(f"{name} weight", weight, 0.0, 1e12)
    return dict(value)


def _verify_profile(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    try:
        return tuple((float(tokens), float(seconds)) for tokens, seconds in value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name} must be a profile name or (tokens, seconds) pairs, got "
                         f"{reprlib.repr(value)}") from exc  # reprlib: a long table gives a short line


def _trace_path(name: str, value: Any) -> str | None:
    """A readable, valid trace file (its path as a string), or None (the shipped example)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path to a trace file or None, got {value!r}")
    try:
        load_trace(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    return os.fspath(value)


def _payload(name: str, value: Any) -> str | None:
    if value is not None and value not in PAYLOAD_MODELS:
        raise ValueError(f"{name} must be one of {PAYLOAD_MODELS} or None, got {value!r}")
    return value


@dataclass(frozen=True)
class EnvConfig:
    """The validated settings of one environment (units and ranges in each field's ``doc``).

    After validation ``scenario`` holds the resolved :class:`~multispin_env.scenarios.Scenario` (the preset with
    the overrides ``num_users`` ... ``doppler_hz`` applied) and ``task_profile`` the task mix of the ``tasks``
    process.
    """

    homogeneous: bool = _setting(False, _flag(), "one common draft length for all users (P-hom) instead of one "
                                 "per user (P-het); fixed by the registered ids")
    scenario: Any = _setting("base", _scenario, "a preset name from multispin_env.scenarios.SCENARIOS or a Scenario")
    num_users: int | None = _setting(None, _optional(_integer(1, MAX_USERS)),
                                     f"K, users (1..{MAX_USERS}); None keeps the scenario's")
    max_draft: int | None = _setting(None, _optional(_integer(1, MAX_DRAFT)),
                                     f"L_max, tokens (1..{MAX_DRAFT}); None keeps the scenario's")
    payload: str | None = _setting(None, _payload, "payload model per draft token (token-only, top-k, full); None "
                                   "keeps the scenario's")
    device_mix: Mapping[str, float] | None = _setting(None, _device_mix, "device class -> weight (each <= 1e12); "
                                                      "None keeps the scenario's")
    doppler_hz: float | None = _setting(None, _optional(_real(0.0, 1e4)), "f_D of the fading, Hz (0..1e4: 500 km/h "
                                        "at 6 GHz is 2.8 kHz); None keeps the scenario's")
    verify_knee_tokens: float | None = _setting(None, _optional(_real(0.0, 1e6)), "batch tokens verified in T0 "
                                                "before T_ver grows, eq. (2'); None keeps the scenario's (0)")
    verify_profile: Any = _setting(None, _verify_profile, "a measured verification profile: a name from "
                                   "multispin_env.scenarios.VERIFY_PROFILES or (tokens, seconds) pairs; None keeps "
                                   "the scenario's")
    upload_deadline: float | None = _setting(0.5, _optional(_real(0.0, 1e9, low_open=True)), "seconds after the "
                                             "round start at which the server stops waiting for uploads; later "
                                             "users are dropped (eq. (1')); None: no deadline")
    energy_weight: float = _setting(0.0, _real(0.0, 1e6), "tokens per joule traded off in the reward: reward = "
                                    "scale (sum_k n_k - weight sum_k E_k) (section 5.7)")
    fading: bool = _setting(True, _flag(), "Rayleigh block fading evolving by Gauss-Markov steps, rho = "
                            "J0(2 pi f_D T); False: |h|^2 = 1 every round (shadowing fixed)")
    csi_delay: int = _setting(0, _integer(0, MAX_CSI_DELAY), "rounds by which the observed channel lags the true one")
    csi_noise_std: float = _setting(0.0, _real(0.0, 10.0), "std of the CN(0, std^2) error added to the observed h")
    draft_time_jitter: float = _setting(0.0, _real(0.0, 3.0), "sigma of a mean-one log-normal factor exp(sigma Z - "
                                        "sigma^2/2) on every t_k each round (0..3)")
    acceptance_process: str = _setting("iid", _choice(lambda: ACCEPTANCE_PROCESSES), "iid, positional, markov, tasks, "
                                       "mixture or trace (docs/model.md section 5.1), or a registered process")
    positional_decay: float = _setting(0.8, _real(0.0, 1.0, low_open=True), "d of the positional process, "
                                       "a_k,i = a_k d^(i-1)")
    markov_switch_prob: float = _setting(0.05, _real(0.0, 1.0), "per-round probability that a user's easy/hard "
                                         "regime flips")
    markov_hard_factor: float = _setting(0.6, _real(0.0, 1.0, low_open=True), "hard-regime rate = a_k * factor")
    mean_request_tokens: float = _setting(100.0, _real(1.0, 1e12), "mean request length, tokens: of the arrivals' "
                                          "requests and of those the tasks and mixture processes reset on")
    request_length: str = _setting("geometric", _choice(lambda: dict.fromkeys(REQUEST_LENGTHS)), "distribution of "
                                   "a request's length, mean mean_request_tokens: geometric on {1, 2, ...} or "
                                   "fixed (docs/model.md section 5.8)")
    arrival_rate: float | None = _setting(None, _optional(_real(0.0, 1e6, low_open=True)), "requests per second "
                                          "per user, Poisson (docs/model.md section 5.8); None: every user is "
                                          "always busy")
    max_queued_requests: int = _setting(1000, _integer(0, 10**6), "with arrivals, requests a user can hold "
                                        "queued behind its current one (0..1,000,000); a request arriving when "
                                        "its queue is full is blocked: dropped and counted in info['blocked'] "
                                        "(docs/model.md section 5.8)")
    mixture_concentration: float = _setting(9.745, _real(0.0, 1e6, low_open=True), "kappa = alpha + beta of the "
                                            "mixture process's Beta rates (default: fitted to vLLM's measured "
                                            "acceptance by position, preset scenario vllm-drafter)")
    mixture_scope: str = _setting("round", _choice(lambda: dict.fromkeys(MIXTURE_SCOPES)), "when the mixture "
                                  "process draws a new rate: every round or per request")
    trace_path: str | None = _setting(None, _trace_path, "acceptance trace replayed by the trace process "
                                      "(JSON lines, docs/traces.md); None: the shipped example, recorded on tiny "
                                      "random models (smoke tests only)")
    acceptance_forgetting: float = _setting(0.9, _real(0.0, 1.0), "per-round forgetting factor lambda of the "
                                            "observed acceptance estimate")
    acceptance_prior: float = _setting(0.7, _real(0.0, 1.0, low_open=True, high_open=True), "prior rate a0 of "
                                       "the estimate a_hat = (S + w0 a0) / (S + F + w0)")
    acceptance_prior_weight: float = _setting(2.0, _real(0.0, 1e6, low_open=True), "prior weight w0 of that "
                                              "estimate, pseudo-tokens")
    horizon: float = _setting(10.0, _real(0.0, 1e9, low_open=True), "simulated seconds per episode; truncated at "
                              "the first round ending at or after it")
    reward_scale: float = _setting(0.1, _real(0.0, 1e6, low_open=True), "reward per generated token")
    resample_population: bool = _setting(False, _flag(), "True: a new population at each reset; False: one "
                                         "population from population_seed for every reset and sub-env")
    population_seed: int = _setting(0, _integer(0, 2**63 - 1), "seed of the fixed population")

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
        for name in ("num_users", "max_draft"):  # a Scenario given directly is bounded too
            integer_setting(f"scenario.{name}", getattr(scenario, name), 1, MAX_USERS if name == "num_users"
                            else MAX_DRAFT)
        real_setting("scenario.doppler_hz", scenario.doppler_hz, 0.0, 1e4)
        profile_name = scenario.acceptance_profile or DEFAULT_TASK_PROFILE
        if profile_name not in ACCEPTANCE_PROFILES:
            raise ValueError(f"scenario's acceptance_profile {profile_name!r} is not registered")
        object.__setattr__(self, "scenario", scenario)
        object.__setattr__(self, "task_profile", ACCEPTANCE_PROFILES[profile_name])


#: Config keys that override the Scenario field of the same name when not None.
SCENARIO_OVERRIDES = ("num_users", "max_draft", "payload", "device_mix", "doppler_hz", "verify_knee_tokens",
                      "verify_profile")

#: The settings: name -> the doc of its field (for listings and docs).
SETTINGS: Mapping[str, str] = {spec.name: spec.metadata["doc"] for spec in dataclasses.fields(EnvConfig) if spec.init}


def default_config() -> dict[str, Any]:
    """Every setting and its default (the fields of :class:`EnvConfig`; units in their ``doc``)."""
    return {spec.name: spec.default for spec in dataclasses.fields(EnvConfig) if spec.init}


def resolve_config(
    config: Mapping[str, Any] | None = None, *, fixed: Mapping[str, Any] | None = None, **kwargs: Any
) -> EnvConfig:
    """Merge ``config`` and ``kwargs`` (kwargs win) over the defaults and validate them into an EnvConfig.

    :param fixed: settings fixed by a registered id; giving one of them is an error
    Raises a ValueError naming the first unknown or invalid setting.
    """
    if config is not None and not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict of settings, got {config!r}")
    given = {**dict(config or {}), **kwargs}
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known settings: {sorted(SETTINGS)}")
    clash = sorted(set(given) & set(fixed or {}))
    if clash:
        raise ValueError(f"setting(s) {clash} are fixed by this environment id; use the other id instead")
    return EnvConfig(**{**given, **dict(fixed or {})})
