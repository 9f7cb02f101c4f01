"""What each information level of an analytic controller knows, as RoundParams (docs/model.md section 7.1).

- ``static``: the population's mean system: mean channel (|h|^2 = 1) and the acceptance process's long-run
  (nominal) acceptance curve; solved once per population;
- ``adaptive``: what the observation shows: the observed channel estimate (delayed/noisy when configured) and
  the curve the process's shape implies for the running acceptance estimate;
- ``oracle``: the true acceptance curve and channel of the round about to be played.

Every level also carries the scenario's verification profile (eq. (2')) and the upload deadline (eq. (1')), and the
users' objective weights when the builder is given them (eq. (5w); None: unweighted).

Each builder takes a MultiSpin env (single or vector, wrapped or not) and, for the vector env, the index of
the sub-env; ``adaptive_params`` takes one observation.

With request arrivals (docs/model.md section 5.8) a policy plans for the users the observation shows active:
:func:`solve_for_active` solves the system of those users and gives the idle ones L_k = 0 and no band.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from baselines.solvers import Allocation, equal_bandwidth_fixed
from multispin_env.acceptance import RequestRates
from multispin_env.core import MultiSpinCore
from multispin_env.model import RoundParams, verification_times

__all__ = [
    "INFORMATION_LEVELS",
    "active_users",
    "adaptive_params",
    "episode_static_solver",
    "observation_starts_episode",
    "oracle_batch",
    "oracle_params",
    "round_params_for",
    "solve_for_active",
    "static_params",
]

FloatArray = NDArray[np.float64]

#: The information levels, from least to most informed.
INFORMATION_LEVELS: tuple[str, ...] = ("static", "adaptive", "oracle")


def _unwrapped(env: Any) -> Any:
    unwrapped = getattr(env, "unwrapped", env)
    if not isinstance(getattr(unwrapped, "core", None), MultiSpinCore):
        raise ValueError(f"expected a MultiSpin env (single or vector), got {env!r}")
    return unwrapped


def _system(
    core: MultiSpinCore,
    acceptance: ArrayLike,
    draft_time: ArrayLike,
    upload_time: ArrayLike,
    survival: ArrayLike,
    weights: ArrayLike | None = None,
) -> RoundParams:
    return core.scenario.system_params(
        acceptance,
        draft_time,
        upload_time,
        survival=survival,
        upload_deadline=core.config.upload_deadline,
        weights=weights,
    )


def _index(core: MultiSpinCore, index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < core.num_envs:
        raise ValueError(f"index must be a sub-env index in 0..{core.num_envs - 1}, got {index!r}")
    return int(index)


def oracle_params(env: Any, index: int = 0, weights: ArrayLike | None = None) -> RoundParams:
    """The true system of sub-env ``index``'s round about to be played: current acceptance rates (the rate of
    draft position 1 for ``positional``), nominal draft times and the upload times of the true channel;
    ``weights``: the users' objective weights (eq. (5w); None: unweighted), as for every level."""
    core = _unwrapped(env).core
    i = _index(core, index)
    return _system(
        core, core.process.rate[i], core.draft_time[i], core.upload_time[i], core.process.survival()[i], weights
    )


def oracle_batch(env: Any, weights: ArrayLike | None = None) -> tuple[RoundParams, FloatArray, FloatArray, FloatArray]:
    """:func:`oracle_params` of every sub-env at once, as arrays: (the system of sub-env 0, whose K, L_max,
    verification profile, downlink time and deadline all sub-envs share; t_k s/token (N, K); c_k of the true
    channel s/token (N, K); the true survival curves (N, K, L_max)) -- for the batched solvers
    (:meth:`baselines.solvers.PackedSystems.uniform`)."""
    core = _unwrapped(env).core
    survival = core.process.survival()
    template = _system(core, core.process.rate[0], core.draft_time[0], core.upload_time[0], survival[0], weights)
    return template, core.draft_time, core.upload_time, survival


def static_params(env: Any, index: int = 0, weights: ArrayLike | None = None) -> RoundParams:
    """The mean system of sub-env ``index``'s population: mean channel (|h|^2 = 1) and the acceptance
    process's long-run mean rates. With ``fading=False`` and i.i.d. acceptance it is the simulated system."""
    core = _unwrapped(env).core
    i = _index(core, index)
    base = core.base_acceptance[i]
    return _system(
        core,
        core.process.mean_rate(base),
        core.draft_time[i],
        core.mean_upload_time[i],
        core.process.mean_survival(base),
        weights,
    )


#: Solves at most of :func:`episode_static_solver`'s fixed point (it stops earlier when the round count repeats).
EPISODE_PLAN_SOLVES = 8


def episode_static_solver(env: Any, solver: Callable[[RoundParams], Allocation]) -> Callable[[RoundParams], Allocation]:
    """``solver`` planning a static allocation for the env's episodes instead of the long run (docs/model.md
    sections 5.1 and 7.1): under per-request rates (tasks, mixture with scope "request") with geometric request
    lengths and always-busy users, the static curve becomes the episode curve
    :meth:`~multispin_env.acceptance.RequestRates.episode_survival` for M = ceil(horizon / T) rounds, T the planned
    allocation's latency, found by a fixed point from the long-run plan (at most :data:`EPISODE_PLAN_SOLVES` solves,
    stopping when M repeats). For any other env ``solver`` itself. Use with the static level, e.g.
    ``AnalyticPolicy(env, episode_static_solver(env, solve_heterogeneous), "static")``.

    :param env: the MultiSpin env (single or vector) the policy plays
    :param solver: RoundParams -> Allocation, e.g. :func:`baselines.solvers.solve_heterogeneous`
    """
    core = _unwrapped(env).core
    process = core.process
    if not (isinstance(process, RequestRates) and process.per_request) or core.arrivals:
        return solver
    if process.request_length != "geometric":
        return solver
    horizon = core.config.horizon

    def solve(params: RoundParams) -> Allocation:
        allocation = solver(params)
        seen: set[int] = set()
        for _ in range(EPISODE_PLAN_SOLVES - 1):
            rounds = max(1, math.ceil(horizon / allocation.latency))
            if rounds in seen:
                break
            seen.add(rounds)
            # params.acceptance is the process's mean_rate of the population: the base rate itself for the
            # mixture, unused by the tasks mix
            curve = process.episode_survival(params.acceptance, rounds)
            allocation = solver(dataclasses.replace(params, survival=curve))
        return allocation

    solve.__name__ = f"episode_{getattr(solver, '__name__', 'solver')}"
    return solve


def adaptive_params(
    env: Any, observation: ArrayLike, weights: ArrayLike | None = None, survival: ArrayLike | None = None
) -> RoundParams:
    """The system as one observation shows it: estimated acceptance a_hat_k and upload times c_k of the
    observed channel, nominal draft times; ``survival`` (K, L_max): plan with these acceptance curves instead of
    the ones a_hat implies (the mean rate then S_k(1); e.g. :mod:`baselines.rate_posterior`'s)."""
    unwrapped = _unwrapped(env)
    obs = np.asarray(observation, dtype=np.float64)
    size = unwrapped.core.observation_size
    if obs.shape != (size,):
        raise ValueError(f"expected one observation of shape ({size},), got {obs.shape}")
    if survival is None:
        estimate = unwrapped.acceptance_from_observation(obs)
        curve = unwrapped.core.process.survival_from_rate(estimate)
    else:
        curve = np.asarray(survival, dtype=np.float64)
        estimate = curve[..., 0]
    return _system(
        unwrapped.core,
        estimate,
        unwrapped.draft_time_from_observation(obs),
        unwrapped.upload_time_from_observation(obs),
        curve,
        weights,
    )


def round_params_for(
    env: Any, information: str, observation: ArrayLike, index: int = 0, weights: ArrayLike | None = None
) -> RoundParams:
    """The RoundParams of the information level ``information`` for sub-env ``index`` with ``observation``, with
    the users' objective ``weights`` (eq. (5w); None: unweighted)."""
    if information == "oracle":
        return oracle_params(env, index, weights)
    if information == "adaptive":
        return adaptive_params(env, observation, weights)
    if information == "static":
        return static_params(env, index, weights)
    raise ValueError(f"information must be one of {INFORMATION_LEVELS}, got {information!r}")


def active_users(env: Any, observation: ArrayLike) -> NDArray[np.bool_] | None:
    """The users one observation shows with a request (docs/model.md section 5.8), or None without arrivals
    (every user is always busy)."""
    unwrapped = _unwrapped(env)
    if not unwrapped.core.arrivals:
        return None
    return unwrapped.observation_field(np.asarray(observation, dtype=np.float64), "active") > 0.5


def observation_starts_episode(env: Any, observation: ArrayLike) -> Any:
    """Whether one observation is a reset's (a bool; for a batch (N, size) of them, a bool array (N,)): the whole
    horizon left and no last round. Either alone can mislead: with arrivals a round of idle users shows no tokens
    (section 5.8), and with a horizon ~1e7 times a round the float32 time left of a played round can round to 1;
    after any played round not both."""
    unwrapped = _unwrapped(env)
    obs = np.asarray(observation, dtype=np.float64)
    starts = (unwrapped.time_left_from_observation(obs) >= 1.0) & ~np.any(
        unwrapped.observation_field(obs, "last_tokens"), axis=-1
    )
    return bool(starts) if obs.ndim == 1 else starts


def solve_for_active(
    solver: Callable[[RoundParams], Allocation], params: RoundParams, active: NDArray[np.bool_] | None
) -> Allocation:
    """``solver``'s allocation for the active users of ``params`` (all users if ``active`` is None): it solves
    the system of the active users alone (an idle user adds nothing to the round, section 5.8) and gives the
    idle users L_k = 0 and b_k = 0; nobody active: nobody drafts (goodput 0, latency of an empty batch). With
    user weights (eq. (5w)) the active users keep theirs; when those are all 0 nothing can be gained and nobody
    drafts (objective 0)."""
    if active is None or active.all():
        return solver(params)
    lengths = np.zeros(params.num_users, dtype=np.int64)
    shares = np.zeros(params.num_users)
    if not active.any():
        empty = float(verification_times(0.0, params.verify_profile_points)) + params.downlink_time  # eq. (2'), (3)
        return Allocation(lengths, shares, 0.0, 0.0, empty)
    weights = None if params.weights is None else params.weights[active]
    idle_weights = weights is not None and not np.any(weights > 0.0)
    sub = dataclasses.replace(
        params,
        acceptance=params.acceptance[active],
        draft_time=params.draft_time[active],
        upload_time=params.upload_time[active],
        survival=params.survival[active] if params.survival is not None else None,
        weights=None if idle_weights else weights,
    )
    if idle_weights:  # every allocation's objective is 0: the shortest drafts (server-only decoding)
        server_only = equal_bandwidth_fixed(sub, 0)
        return Allocation(lengths, shares, server_only.goodput, server_only.sync_time, server_only.latency, 0.0)
    allocation = solver(sub)
    lengths[active] = allocation.draft_lengths
    shares[active] = allocation.bandwidth
    return Allocation(
        lengths, shares, allocation.goodput, allocation.sync_time, allocation.latency, allocation.objective
    )
