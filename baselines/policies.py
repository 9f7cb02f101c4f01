"""Analytic policies that act on a MultiSpin env through ``encode_action`` (docs/model.md section 7).

Every policy is a :class:`baselines.protocol.Policy`: SB3's ``predict(obs, state=None, episode_start=None,
deterministic=True) -> (action, state)`` and a ``reset()`` after every ``env.reset()``, so one evaluation loop
serves agents and baselines. Information levels of the optimising policies:

- ``static``: solved once per population from the mean parameters
  (:func:`baselines.information.static_params`: mean channel, mean acceptance);
- ``adaptive``: re-solved every round from the observation only (the
  observed channel and the running acceptance estimate);
- ``oracle``: re-solved every round from the true acceptance and channel of
  the round about to be played (:func:`baselines.information.oracle_params`).

With request deadlines (docs/model.md eq. (9d)) the ``het-opt-urgency-*`` policies solve P-het with urgency
weights recomputed every round from the observation (:func:`urgency_weights`, docs/baselines.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from baselines.bandit import BanditPolicy
from baselines.information import (
    INFORMATION_LEVELS,
    active_users,
    adaptive_params,
    oracle_batch,
    round_params_for,
    solve_for_active,
)
from baselines.predictive import PredictivePolicy
from baselines.protocol import Policy, episode_starts
from baselines.rate_posterior import RatePosterior, check_posterior, posterior_applies
from baselines.solvers import SOLVERS, Allocation, PackedSystems, solve_batch, solve_packed
from multispin_env.model import FloatArray, RoundParams, user_weights

Solver = Callable[[RoundParams], Allocation]

#: Policy name -> (solver name in :data:`baselines.solvers.SOLVERS`, information level).
_POLICY_SOLVER: dict[str, tuple[str, str]] = {
    **{name: (name, "static") for name, spec in SOLVERS.items() if not spec.per_information_level},
    **{
        f"{name}-{level}": (name, level)
        for name, spec in SOLVERS.items()
        if spec.per_information_level
        for level in INFORMATION_LEVELS
    },
}


def _energy_price_policy(information: str) -> Callable[[Any], Policy]:
    def make(env: Any) -> Policy:
        from baselines.foresight import EnergyPricePolicy  # it builds on AnalyticPolicy, defined here

        return EnergyPricePolicy(env, information=information)

    return make


def _proportional_fair_policy(information: str) -> Callable[[Any], Policy]:
    def make(env: Any) -> Policy:
        from baselines.foresight import ProportionalFairPolicy

        return ProportionalFairPolicy(env, information)

    return make


#: Policies with a state of their own (per-user lengths: the heterogeneous env only): name -> a factory of env.
_STATEFUL_POLICIES: dict[str, Callable[[Any], Policy]] = {
    "het-opt-predictive": PredictivePolicy,
    "het-opt-posterior": lambda env: RatePosteriorPolicy(env),
    "het-opt-predictive-posterior": lambda env: PredictivePolicy(
        env, acceptance="posterior", name="het-opt-predictive-posterior"
    ),
    "bandit-ucb": BanditPolicy,
    "het-opt-energy": _energy_price_policy("oracle"),
    "het-opt-pf": _proportional_fair_policy("oracle"),
    "het-opt-energy-static": _energy_price_policy("static"),
    "het-opt-pf-static": _proportional_fair_policy("static"),
}

#: The policies that plan with the rate posterior (:mod:`baselines.rate_posterior`): offered where it applies.
_POSTERIOR_POLICIES = ("het-opt-posterior", "het-opt-predictive-posterior")

#: The urgency-weighted P-het policies (envs with request deadlines only): name -> information level.
_URGENCY_POLICIES: dict[str, str] = {"het-opt-urgency-adaptive": "adaptive", "het-opt-urgency-oracle": "oracle"}

#: Every analytic policy name: the equal-share baselines, hom-opt / het-opt at each information level,
#: het-opt-predictive (:mod:`baselines.predictive`), bandit-ucb (:mod:`baselines.bandit`), het-opt-energy and
#: het-opt-pf with their ``-static`` versions (:mod:`baselines.foresight`) and the urgency-weighted het-opt policies
#: (:class:`UrgencyPolicy`).
ANALYTIC_POLICIES: tuple[str, ...] = (*_POLICY_SOLVER, *_STATEFUL_POLICIES, *_URGENCY_POLICIES)

#: The analytic policies that plan with the true state of the round (the oracle information level, docs/model.md
#: section 7.1): the ``*-oracle`` ones and het-opt-energy and het-opt-pf (:mod:`baselines.foresight`). A learned
#: controller sees only the observation, so the leaderboard and the verdict compare it with the others.
ORACLE_POLICIES: frozenset[str] = frozenset(
    [name for name, (_, level) in _POLICY_SOLVER.items() if level == "oracle"]
    + [name for name, level in _URGENCY_POLICIES.items() if level == "oracle"]
    + ["het-opt-energy", "het-opt-pf"]
)

#: Largest urgency weight of :func:`urgency_weights` (a user whose request needs 10 times the reference rate or more).
URGENCY_MAX_WEIGHT = 10.0


class AnalyticPolicy:
    """A solver applied to the information of one level, acting through ``env.unwrapped.encode_action``.

    :param env: a MultiSpin env the policy is bound to: a single env (possibly wrapped) or a vector env
    :param solver: RoundParams -> Allocation
    :param information: ``static``, ``adaptive`` or ``oracle`` (:mod:`baselines.information`)
    :param name: the policy's name in reports
    :param weights: w_k per user (K,), the user weights of the objective sum_k w_k E[n_k] / T that the solver
        maximises (docs/model.md eq. (5w)), checked by :func:`multispin_env.model.user_weights`; None: all 1

    Bound to a vector env of N sub-envs, :meth:`predict` takes the batch of N observations and returns N
    actions (sub-env i planned with its own state). Bound to a single env it takes one observation; an
    ``adaptive`` policy also takes a batch of observations (each is all it needs).
    """

    def __init__(
        self,
        env: Any,
        solver: Solver,
        information: str = "static",
        name: str | None = None,
        weights: Any = None,
    ) -> None:
        if information not in INFORMATION_LEVELS:
            raise ValueError(f"information must be one of {INFORMATION_LEVELS}, got {information!r}")
        self.env = env
        self.solver = solver
        self.information = information
        self.name = name or f"{getattr(solver, '__name__', 'solver')}-{information}"
        unwrapped = getattr(env, "unwrapped", env)
        #: Number of sub-envs of a vector env (None for a single env).
        self.num_envs: int | None = unwrapped.num_envs if isinstance(unwrapped, VectorEnv) else None
        self._observation_size = unwrapped.core.observation_size
        #: The users' objective weights (checked), or None (unweighted).
        self.weights: FloatArray | None = None if weights is None else user_weights(weights, unwrapped.core.num_users)
        # static solutions by (sub-env, the active users' flags with arrivals: docs/model.md section 5.8)
        self._static_actions: dict[tuple[int, bytes], np.ndarray] = {}
        self.last_allocation: Allocation | None = None
        # A registered solver is solved for all sub-envs of a vector env in one batched call (with request
        # arrivals each sub-env solves its own active users' system instead: their sizes differ).
        self._batch_solver = next((n for n, spec in SOLVERS.items() if spec.solve is solver), None)
        if unwrapped.core.arrivals:
            self._batch_solver = None

    def reset(self) -> None:
        """Forget the cached static solutions (call after ``env.reset()``: the population may have changed)."""
        self._static_actions.clear()

    def round_params(self, obs: np.ndarray, index: int) -> RoundParams:
        """The system sub-env ``index`` plans with for its observation ``obs`` (a hook: the policy's information
        level, :func:`baselines.information.round_params_for`, with its weights)."""
        return round_params_for(self.env, self.information, obs, index, self.weights)

    def _act(self, obs: np.ndarray, index: int) -> np.ndarray:
        params = self.round_params(obs, index)
        allocation = solve_for_active(self.solver, params, active_users(self.env, obs))
        self.last_allocation = allocation
        return self.env.unwrapped.encode_action(allocation.draft_lengths, allocation.bandwidth)

    #: True for a policy that keeps a state per sub-env across rounds (read from each round's outcome in
    #: :meth:`_observe_round`): bound to a single env it takes one observation at a time, never a batch.
    keeps_state = False

    def _observe_round(self, rows: np.ndarray, starts: np.ndarray) -> None:
        """A hook before planning: the observations (N, size) of every sub-env (one row for a single env) and their
        episode-start flags (N,). The plain policies keep no state across rounds."""

    #: True for a policy whose objective changes every round (weights or prices of the episode so far): even at the
    #: static level it plans each round, and keeps no static plan.
    replans_every_round = False

    def _act_cached(self, obs: np.ndarray, index: int, restart: bool) -> np.ndarray:
        if self.information != "static" or self.replans_every_round:
            return self._act(obs, index)
        active = active_users(self.env, obs)
        key = (index, b"" if active is None else active.tobytes())
        if restart:
            for stale in [cached for cached in self._static_actions if cached[0] == index]:
                del self._static_actions[stale]
        if key not in self._static_actions:
            self._static_actions[key] = self._act(obs, index)
        return self._static_actions[key].copy()

    def _act_batch(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Actions of all sub-envs of the vector env: the systems to (re-)solve are solved in one batched call
        (the oracle's straight from the env's arrays, :func:`baselines.information.oracle_batch`)."""
        num_envs, batch_solver = self.num_envs, self._batch_solver
        assert num_envs is not None and batch_solver is not None, "predict calls this for vector envs only"
        cached = self.information == "static"
        keys = [(i, b"") for i in range(num_envs)]  # as _act_cached's keys without arrivals
        todo = [i for i in range(num_envs) if not cached or starts[i] or keys[i] not in self._static_actions]
        if not todo:
            return np.stack([self._static_actions[key].copy() for key in keys])
        k = self.env.unwrapped.core.num_users
        problem = SOLVERS[batch_solver].packed
        if self.information == "oracle" and problem is not None:
            result = solve_packed(problem, PackedSystems.uniform(*oracle_batch(self.env, self.weights)))
            if result.status.any():  # a round beyond the float64 range: the per-system path names the settings
                solve_batch(
                    batch_solver,
                    [
                        round_params_for(self.env, "oracle", obs[i], int(i), self.weights)
                        for i in np.flatnonzero(result.status)
                    ],
                )
            lengths, shares = result.draft_lengths.reshape(-1, k), result.bandwidth.reshape(-1, k)
            self.last_allocation = Allocation(
                lengths[-1],
                shares[-1],
                float(result.goodput[-1]),
                float(result.sync_time[-1]),
                float(result.latency[-1]),
                None if result.objective is None else float(result.objective[-1]),
            )
        else:
            systems = [self.round_params(obs[i], i) for i in todo]
            allocations = solve_batch(batch_solver, systems)
            lengths = np.stack([allocation.draft_lengths for allocation in allocations])
            shares = np.stack([allocation.bandwidth for allocation in allocations])
            self.last_allocation = allocations[-1]
        actions = self.env.unwrapped.encode_action(lengths, shares)
        if not cached:
            return actions
        for row, i in enumerate(todo):
            self._static_actions[keys[i]] = actions[row]
        return np.stack([self._static_actions[key].copy() for key in keys])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Action(s) for the observation(s), SB3 style; ``state`` is passed through.

        ``episode_start`` (one flag per observation) marks new episodes: static solutions are recomputed there.
        """
        obs = np.asarray(observation, dtype=np.float64)
        size = self._observation_size
        if obs.ndim == 0 or obs.shape[-1] != size:
            raise ValueError(f"{self.name}: observation must have {size} entries on the last axis, got {obs.shape}")
        if self.num_envs is not None:
            if obs.shape != (self.num_envs, size):
                raise ValueError(
                    f"{self.name}: bound to a vector env of {self.num_envs} sub-envs, expected "
                    f"observations of shape ({self.num_envs}, {size}), got {obs.shape}"
                )
            starts = episode_starts(episode_start, self.num_envs, self.name)
            self._observe_round(obs, starts)
            if self._batch_solver is not None:
                return self._act_batch(obs, starts), state
            return np.stack([self._act_cached(obs[i], i, bool(starts[i])) for i in range(self.num_envs)]), state
        if obs.ndim == 1:
            starts = episode_starts(episode_start, 1, self.name)
            self._observe_round(obs[None], starts)
            return self._act_cached(obs, 0, bool(starts[0])), state
        if self.information != "adaptive" or self.keeps_state or obs.ndim != 2:
            raise ValueError(
                f"{self.name}: bound to a single env, expected one observation of shape ({size},), "
                f"got {obs.shape}; bind the policy to a vector env to act on a batch"
            )
        return np.stack([self._act(row, 0) for row in obs]), state


def urgency_weights(remaining: FloatArray, slack: FloatArray, reference_rate: float) -> FloatArray:
    """The urgency weights w_k of the ``het-opt-urgency-*`` policies (docs/baselines.md, "Urgency weights").

    w_k = clip(rho_k / rho_ref, 1, :data:`URGENCY_MAX_WEIGHT`) with rho_k = r_k / s_k the rate (tokens/s) at which
    user k's current request must be served to meet its target (docs/model.md eq. (9d)), rho_ref the rate a request
    of the mean length needs from its arrival; w_k = 1 where the slack is 0 (an overdue request, or an idle user).

    :param remaining: r_k (K,), tokens left in each user's current request
    :param slack: s_k (K,), s, time left to its target (>= 0; 0: overdue or idle)
    :param reference_rate: rho_ref = mean_request_tokens / the mean request's target, tokens/s (> 0)
    """
    remaining = np.asarray(remaining, dtype=np.float64)
    slack = np.asarray(slack, dtype=np.float64)
    urgent = slack > 0.0
    need = np.divide(remaining, reference_rate * slack, out=np.ones_like(remaining), where=urgent)
    return np.clip(need, 1.0, URGENCY_MAX_WEIGHT)


class UrgencyPolicy(AnalyticPolicy):
    """P-het with urgency weights (:func:`urgency_weights`) recomputed every round from the observation's
    ``remaining`` and ``slack`` fields, at the information level ``information`` (adaptive or oracle) for the
    acceptance and the channel; the env must have request deadlines (docs/model.md eq. (9d)).

    :param env: a heterogeneous MultiSpin env (single or vector) with ``request_deadline_per_token`` set
    :param information: ``adaptive`` or ``oracle``
    :param name: the policy's name in reports
    """

    def __init__(self, env: Any, information: str, name: str) -> None:
        core = getattr(env, "unwrapped", env).core
        if not core.deadlines:
            raise ValueError(f"policy {name!r} needs request deadlines (set request_deadline_per_token)")
        super().__init__(env, SOLVERS["het-opt"].solve, information, name=name)
        #: rho_ref, tokens/s: a request of the mean length served from its arrival to its target.
        self.reference_rate = core.config.mean_request_tokens / core.mean_target

    def _act(self, obs: np.ndarray, index: int) -> np.ndarray:
        unwrapped = self.env.unwrapped
        remaining = unwrapped.observation_value(obs, "remaining")
        slack = unwrapped.observation_value(obs, "slack")
        self.weights = urgency_weights(remaining, slack, self.reference_rate)
        return super()._act(obs, index)


class RatePosteriorPolicy(AnalyticPolicy):
    """het-opt-posterior (:mod:`baselines.rate_posterior`, docs/model.md section 7.5), SB3-like ``predict``, bound to
    a heterogeneous MultiSpin env (single, or vector: one posterior per sub-env).

    :param env: the env the policy plays
    :param name: the policy's name in reports
    """

    replans_every_round = True
    keeps_state = True

    def __init__(self, env: Any, name: str = "het-opt-posterior") -> None:
        unwrapped = getattr(env, "unwrapped", env)
        check_posterior(unwrapped, name)
        super().__init__(env, SOLVERS["het-opt"].solve, "adaptive", name=name)
        #: The rate posterior of every sub-env (eq. (7.5a)-(7.5b)).
        self.filter = RatePosterior(env)
        # every sub-env's curves for its next round, computed once per predict (the plans read them per sub-env)
        self._curves = self.filter.survival()

    def reset(self) -> None:
        """Forget every sub-env's posterior (the next observation starts an episode)."""
        super().reset()
        self.filter.reset()

    def survival(self, index: int = 0) -> FloatArray:
        """The curves (K, L_max) sub-env ``index`` plans its next round with (eq. (7.5b))."""
        return self._curves[index]

    def round_params(self, obs: np.ndarray, index: int) -> RoundParams:
        return adaptive_params(self.env, obs, self.weights, survival=self.survival(index))

    def _observe_round(self, rows: np.ndarray, starts: np.ndarray) -> None:
        self.filter.observe(rows, starts)
        self._curves = self.filter.survival()


def policies_for(env: Any) -> tuple[str, ...]:
    """The analytic policies that ``env`` can express (het-opt needs per-user lengths; the urgency-weighted ones
    request deadlines; the rate-posterior ones an acceptance process with a finite hidden state)."""
    if env.unwrapped.config.homogeneous:
        return tuple(name for name in _POLICY_SOLVER if SOLVERS[_POLICY_SOLVER[name][0]].common_length)
    core = env.unwrapped.core
    left_out = set() if core.deadlines else set(_URGENCY_POLICIES)
    if posterior_applies(core) is not None:
        left_out.update(_POSTERIOR_POLICIES)
    return tuple(name for name in ANALYTIC_POLICIES if name not in left_out)


def make_policy(name: str, env: Any, weights: Any = None) -> Policy:
    """Build the analytic policy ``name`` (one of :data:`ANALYTIC_POLICIES`) bound to ``env``.

    :param name: the policy's name (:func:`policies_for` lists those ``env`` can express)
    :param env: the MultiSpin env (single, possibly wrapped, or vector) the policy acts on
    :param weights: w_k per user (K,) for the ``hom-opt-*`` and ``het-opt-*`` policies: their solver maximises
        sum_k w_k E[n_k] / T (docs/model.md eq. (5w); checked by :func:`multispin_env.model.user_weights`);
        None: the goodput. The other policies take none (ValueError)
    """
    if name not in ANALYTIC_POLICIES:
        raise ValueError(f"unknown analytic policy {name!r}; known: {list(ANALYTIC_POLICIES)}")
    if name in _URGENCY_POLICIES and not env.unwrapped.config.homogeneous and not env.unwrapped.core.deadlines:
        raise ValueError(f"policy {name!r} needs request deadlines (set request_deadline_per_token)")
    if name in _POSTERIOR_POLICIES and not env.unwrapped.config.homogeneous:
        why = posterior_applies(env.unwrapped.core)
        if why is not None:
            raise ValueError(f"policy {name!r} cannot play this env: {why}")
    if name not in policies_for(env):
        spec = getattr(env, "spec", None)
        which = f"{spec.id} has" if spec is not None else "this env has"
        raise ValueError(f"policy {name!r} needs per-user draft lengths; {which} one common length")
    solver_name, level = _POLICY_SOLVER.get(name, (name, ""))
    if weights is not None and not (solver_name in SOLVERS and SOLVERS[solver_name].per_information_level):
        raise ValueError(f"weights: policy {name!r} takes none (the hom-opt-* and het-opt-* policies do)")
    if name in _STATEFUL_POLICIES:
        return _STATEFUL_POLICIES[name](env)
    if name in _URGENCY_POLICIES:
        return UrgencyPolicy(env, _URGENCY_POLICIES[name], name)
    return AnalyticPolicy(env, SOLVERS[solver_name].solve, level, name=name, weights=weights)
