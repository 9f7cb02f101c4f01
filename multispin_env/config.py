"""Configuration of the Multi-SPIN environments: keys, documented defaults and validation.

:func:`default_config` is the single source of the keys; ``gym.make(id, **kwargs)``
(or ``config={...}``) overrides them and :func:`resolve_config` validates the
result into an :class:`EnvConfig`, raising ``ValueError`` naming any unknown or
invalid setting.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multispin_env._checks import flag_setting, integer_setting, real_setting
from multispin_env.acceptance import ACCEPTANCE_PROCESSES, make_acceptance_process
from multispin_env.scenarios import ACCEPTANCE_PROFILES, AcceptanceProfile, Scenario, get_scenario

__all__ = ["BACKENDS", "EnvConfig", "default_config", "numba_available", "resolve_config", "DEFAULT_TASK_PROFILE"]

#: Task mix of the ``tasks`` acceptance process when the scenario names no acceptance profile.
DEFAULT_TASK_PROFILE = "generic"

#: Values of the ``backend`` setting.
BACKENDS = ("auto", "numpy", "numba")


def default_config() -> dict[str, Any]:
    """The environment settings and their defaults (units in the comments; model.md sections 4-5).

    - ``homogeneous`` (False): one common draft length for all users (P-hom) instead of one per user (P-het);
      set by the registered ids.
    - ``scenario`` ("base"): a preset name from :data:`multispin_env.scenarios.SCENARIOS` or a Scenario.
    - ``num_users``, ``max_draft``, ``payload``, ``device_mix``, ``doppler_hz`` (None): override the
      scenario's K, L_max (tokens), payload model, device-class weights and Doppler f_D (Hz); None keeps it.
    - ``fading`` (True): Rayleigh block fading evolving by Gauss-Markov steps with rho = J0(2 pi f_D dt),
      dt = the round latency. False: |h|^2 = 1 in every round (the population's mean channel, shadowing fixed).
    - ``csi_delay`` (0): the observed channel is the one of this many rounds ago.
    - ``csi_noise_std`` (0.0): std of the CN(0, std^2) estimation error added to the observed h.
    - ``draft_time_jitter`` (0.0): sigma of a mean-one log-normal factor exp(sigma Z - sigma^2/2)
      multiplying every t_k in every round.
    - ``acceptance_process`` ("iid"): one of "iid", "positional", "markov", "tasks" (model.md section 5.1).
    - ``positional_decay`` (0.8): d of the positional process, a_k,i = a_k d^(i-1).
    - ``markov_switch_prob`` (0.05): per-round probability that a user's easy/hard regime flips.
    - ``markov_hard_factor`` (0.6): hard-regime rate = a_k * factor.
    - ``mean_request_tokens`` (100.0): mean request length (tokens) of the tasks process; each new request
      draws its task from the scenario's acceptance profile ("generic" if it has none).
    - ``acceptance_forgetting`` (0.9): per-round forgetting factor lambda of the observed acceptance estimate.
    - ``acceptance_prior`` (0.7), ``acceptance_prior_weight`` (2.0): prior rate a0 and its weight w0
      (pseudo-tokens) of that estimate: a_hat = (S + w0 a0) / (S + F + w0), S and F the discounted counts of
      accepted draft tokens and of first rejections.
    - ``horizon`` (10.0): simulated seconds per episode; the episode is truncated at the first round
      ending at or after it.
    - ``reward_scale`` (0.1): reward per generated token (reward = scale * sum_k n_k).
    - ``resample_population`` (False): False keeps one population (distances, shadowing, device classes,
      acceptance rates) drawn from ``population_seed``, the same for every reset and every vector sub-env;
      True draws a new population from the reset's random generator at each reset.
    - ``population_seed`` (0): seed of the fixed population.
    - ``backend`` ("auto"): implementation of the round: "numba" (JIT-compiled kernels, needs numba; the
      first env of a process loads them from numba's on-disk cache, or compiles them once), "numpy" (the
      reference implementation), or "auto": numba when it can be imported, else numpy. Both compute the
      same model with the same floating-point operations and draw the same random numbers: same seed and
      actions, same trajectory.
    """
    return {
        "homogeneous": False,
        "scenario": "base",
        "num_users": None,
        "max_draft": None,
        "payload": None,
        "device_mix": None,
        "doppler_hz": None,
        "fading": True,
        "csi_delay": 0,
        "csi_noise_std": 0.0,
        "draft_time_jitter": 0.0,
        "acceptance_process": "iid",
        "positional_decay": 0.8,
        "markov_switch_prob": 0.05,
        "markov_hard_factor": 0.6,
        "mean_request_tokens": 100.0,
        "acceptance_forgetting": 0.9,
        "acceptance_prior": 0.7,
        "acceptance_prior_weight": 2.0,
        "horizon": 10.0,
        "reward_scale": 0.1,
        "resample_population": False,
        "population_seed": 0,
        "backend": "auto",
    }


#: Config keys that override the Scenario field of the same name when not None.
SCENARIO_OVERRIDES = ("num_users", "max_draft", "payload", "device_mix", "doppler_hz")


@dataclass(frozen=True)
class EnvConfig:
    """Validated settings (see :func:`default_config` for meanings and units).

    ``scenario`` is the resolved Scenario with the overrides applied; ``settings``
    keeps every key's value as given, for the acceptance process's parameters.
    """

    homogeneous: bool
    scenario: Scenario
    fading: bool
    csi_delay: int
    csi_noise_std: float
    draft_time_jitter: float
    acceptance_process: str
    task_profile: AcceptanceProfile
    acceptance_forgetting: float
    acceptance_prior: float
    acceptance_prior_weight: float
    horizon: float
    reward_scale: float
    resample_population: bool
    population_seed: int
    backend: str  # "numpy" or "numba" ("auto" resolved)
    settings: Mapping[str, Any]


def resolve_config(config: Mapping[str, Any] | None = None, **kwargs: Any) -> EnvConfig:
    """Merge ``config`` and ``kwargs`` (kwargs win) over :func:`default_config` and validate.

    Raises ValueError naming the first unknown or invalid setting.
    """
    defaults = default_config()
    merged = dict(defaults)
    given = {**dict(config or {}), **kwargs}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known settings: {sorted(defaults)}")
    merged.update(given)

    overrides = {key: merged[key] for key in SCENARIO_OVERRIDES if merged[key] is not None}
    for key in ("num_users", "max_draft"):
        if key in overrides:
            overrides[key] = integer_setting(key, overrides[key], 1)
    if "doppler_hz" in overrides:
        overrides["doppler_hz"] = real_setting("doppler_hz", overrides["doppler_hz"], 0.0)
    if "device_mix" in overrides and not isinstance(overrides["device_mix"], Mapping):
        raise ValueError(f"device_mix must map device classes to weights, got {overrides['device_mix']!r}")
    scenario_value = merged["scenario"]
    if not isinstance(scenario_value, (str, Scenario)):
        raise ValueError(f"scenario must be a preset name or a Scenario, got {scenario_value!r}")
    try:
        scenario = get_scenario(scenario_value, **overrides)
    except (TypeError, ValueError) as exc:
        names = ", ".join(["scenario", *overrides])
        raise ValueError(f"invalid scenario setting ({names}): {exc}") from exc

    process = merged["acceptance_process"]
    if process not in ACCEPTANCE_PROCESSES:
        raise ValueError(f"acceptance_process must be one of {sorted(ACCEPTANCE_PROCESSES)}, got {process!r}")
    profile_name = scenario.acceptance_profile or DEFAULT_TASK_PROFILE
    if profile_name not in ACCEPTANCE_PROFILES:
        raise ValueError(f"scenario's acceptance_profile {profile_name!r} is not registered")
    for name in ACCEPTANCE_PROCESSES:  # every process's parameters are validated, used or not
        make_acceptance_process(name, 1, 1, 1, merged, ACCEPTANCE_PROFILES[profile_name])

    return EnvConfig(
        homogeneous=flag_setting("homogeneous", merged["homogeneous"]),
        scenario=scenario,
        fading=flag_setting("fading", merged["fading"]),
        csi_delay=integer_setting("csi_delay", merged["csi_delay"], 0),
        csi_noise_std=real_setting("csi_noise_std", merged["csi_noise_std"], 0.0),
        draft_time_jitter=real_setting("draft_time_jitter", merged["draft_time_jitter"], 0.0),
        acceptance_process=process,
        task_profile=ACCEPTANCE_PROFILES[profile_name],
        acceptance_forgetting=real_setting("acceptance_forgetting", merged["acceptance_forgetting"], 0.0, 1.0),
        acceptance_prior=real_setting("acceptance_prior", merged["acceptance_prior"], 0.0, 1.0, low_open=True,
                               high_open=True),
        acceptance_prior_weight=real_setting("acceptance_prior_weight", merged["acceptance_prior_weight"], 0.0,
                                      low_open=True),
        horizon=real_setting("horizon", merged["horizon"], 0.0, low_open=True),
        reward_scale=real_setting("reward_scale", merged["reward_scale"], 0.0, low_open=True),
        resample_population=flag_setting("resample_population", merged["resample_population"]),
        population_seed=integer_setting("population_seed", merged["population_seed"], 0),
        backend=_backend(merged["backend"]),
        settings=merged,
    )


def numba_available() -> bool:
    """Whether numba can be imported (it is imported on the first call, cached by Python afterwards)."""
    try:
        importlib.import_module("numba")
    except ImportError:
        return False
    return True


def _backend(value: Any) -> str:
    """The ``backend`` setting resolved to "numpy" or "numba"; ValueError naming it if invalid or unavailable."""
    if not isinstance(value, str) or value not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {value!r}")
    if value == "numpy":
        return value
    if numba_available():
        return "numba"
    if value == "numba":
        raise ValueError('backend="numba" needs numba, which cannot be imported: pip install numba '
                         '(or use backend="auto" or "numpy")')
    return "numpy"
