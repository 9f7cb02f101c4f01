"""The rate posterior of ``het-opt-posterior`` (:class:`baselines.policies.RatePosteriorPolicy`; docs/model.md section 7.5).

het-opt-adaptive plans with the running estimate a_hat and the curve a_hat^i; het-opt-static with the process's
long-run curve of the population's rates. This policy combines the two: it knows what the static level knows (each
user's population rate a_k and the acceptance process's law around it) and updates, round by round, the posterior
of the rate of the round about to be played given every accepted prefix the observation has shown this episode
(an exact Bayes filter over the process's hidden state):

- the hidden state is a node of a finite set with its own acceptance curve: the population rate (``iid``,
  ``positional``); the easy and the hard regime (``markov``); the quadrature nodes of the Beta law (``mixture``) or
  the task rates (``tasks``) of a request's rate;
- a played round with L_k >= 1 and n_k = A_k + 1 tokens weighs each node by P(A_k | node, L_k) (eq. (7.5a));
- then the state moves as the process does: the regime flips with probability s (``markov``); the rate is drawn
  again every round (``mixture`` of scope "round"); a request ends, and the next one's rate is drawn from the law,
  with probability 1 - (1 - 1/m)^n_k after a round of n_k tokens (the per-request processes, geometric request
  lengths: memoryless, so the filter is exact; with fixed lengths the same hazard is an approximation);
- the round is planned with the posterior's curve S_k(i) = sum_j pi_kj S_j(i) (eq. (7.5b)) and the observed
  channel, as het-opt-adaptive.

Averaged over the rounds it plans, its curve is the per-round survival the env produces at every position, whatever
the lengths it chooses (it is the conditional law given everything it saw, so choosing long drafts where the
posterior is high does not bias it, unlike a_hat^i: docs/model.md section 5.1). Not offered for traces and for the
per-request processes with request arrivals (the observation then shows the request boundaries, which this filter
does not read).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from baselines.information import observation_starts_episode
from multispin_env.acceptance import (
    IIDAcceptance,
    MarkovAcceptance,
    PositionalAcceptance,
    RequestRates,
    RoundMixture,
    beta_quadrature,
)

__all__ = ["RatePosterior", "check_posterior", "posterior_applies"]

FloatArray = NDArray[np.float64]


def posterior_applies(core: Any) -> str | None:
    """None if :class:`RatePosteriorPolicy` can play the env of ``core``, else why not (one sentence)."""
    process = core.process
    if isinstance(process, RequestRates) and process.per_request and core.arrivals:
        return "its per-request acceptance rates change at request boundaries the arrivals show, which it does not read"
    if not isinstance(process, (IIDAcceptance, PositionalAcceptance, MarkovAcceptance, RoundMixture, RequestRates)):
        return f"acceptance_process {process.name!r} has no finite hidden state it can filter"
    return None


class RatePosterior:
    """The filter of eq. (7.5a)-(7.5b) for the N sub-envs of an env (one for a single env): each user's posterior
    over its hidden acceptance state, updated from each round's observation.

    :param env: the heterogeneous MultiSpin env (single or vector) whose observations it reads
    """

    def __init__(self, env: Any) -> None:
        unwrapped = getattr(env, "unwrapped", env)
        self._unwrapped = unwrapped
        self._core = core = unwrapped.core
        n, k, max_draft = core.num_envs, core.num_users, core.max_draft
        self._positions = np.arange(1, max_draft + 1, dtype=np.float64)
        nodes = self._nodes(core.base_acceptance[:1])[1].shape[-1]
        #: Per sub-env, user and node: the node's curve with S(0) = 1 (N, K, M, L_max + 1), its prior weight and
        #: the posterior of the round about to be played (N, K, M).
        self.curves = np.ones((n, k, nodes, max_draft + 1))
        self.prior = np.full((n, k, nodes), 1.0 / nodes)
        self.posterior = self.prior.copy()
        self._started = np.zeros(n, dtype=bool)

    def reset(self) -> None:
        """Forget every sub-env's posterior (the next observation starts an episode)."""
        self._started[:] = False

    def _nodes(self, base: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(curves S_j(i), i = 1..L_max (R, K, M, L_max); prior weights (R, K, M)) of the hidden state for users of
        population rates ``base`` (R, K)."""
        process = self._core.process
        if isinstance(process, MarkovAcceptance):
            rates = np.stack([base, base * process.hard_factor], axis=-1)
            return rates[..., None] ** self._positions, np.full(rates.shape, 0.5)
        if isinstance(process, RoundMixture):
            nodes = self._core.max_draft + 40  # exact for polynomials of degree < 2 (L_max + 40), as RequestMixture
            rates, weights = np.empty((*base.shape, nodes)), np.empty((*base.shape, nodes))
            for where in np.ndindex(base.shape):
                rates[where], weights[where] = beta_quadrature(float(base[where]), process.concentration, nodes)
            return rates[..., None] ** self._positions, weights
        if isinstance(process, RequestRates):
            rates, weights = process.request_rate_law(base)
            return rates[..., None] ** self._positions, weights
        return process.survival_from_rate(base)[..., None, :], np.ones((*base.shape, 1))  # iid, positional

    def _move(self, posterior: FloatArray, prior: FloatArray, tokens: FloatArray) -> FloatArray:
        """The law of the next round's state from this round's (posterior (R, K, M), after its outcome) and the
        tokens n_k the round gave (R, K)."""
        process = self._core.process
        if isinstance(process, MarkovAcceptance):
            s = process.switch_prob
            return (1.0 - s) * posterior + s * posterior[..., ::-1]
        if isinstance(process, RoundMixture):
            return prior.copy()
        if isinstance(process, RequestRates):
            # P(the request ends within n tokens) for geometric lengths: 1 - (1 - 1/m)^n
            ends = -np.expm1(tokens * math.log1p(-1.0 / process.mean_request_tokens))[..., None]
            return (1.0 - ends) * posterior + ends * prior
        return posterior

    def observe(self, rows: FloatArray, starts: NDArray[np.bool_]) -> None:
        """Update every sub-env's posterior with the round its observation (rows (N, size)) shows; ``starts`` (N,)
        flags new episodes (an observation that shows one starts one too)."""
        unwrapped = self._unwrapped
        new = starts | ~self._started | observation_starts_episode(unwrapped, rows)
        if new.any():
            curves, prior = self._nodes(self._core.base_acceptance[new])
            self.curves[new, ..., 1:] = curves
            self.prior[new] = prior
            self.posterior[new] = prior
        going = ~new
        if going.any():
            lengths = np.rint(unwrapped.observation_value(rows[going], "last_draft_lengths"))
            tokens = np.rint(unwrapped.observation_value(rows[going], "last_tokens"))
            accepted = np.clip(tokens - 1.0, 0.0, lengths).astype(np.intp)
            curves = self.curves[going]  # (R, K, M, L_max + 1)
            at = np.take_along_axis(curves, accepted[..., None, None], axis=-1)[..., 0]
            after = np.take_along_axis(curves, np.minimum(accepted + 1, lengths.astype(np.intp))[..., None, None], -1)
            # P(A = a | node) = S(a) - S(a + 1) for a < L; S(L) for a = L (eq. (7.5a))
            likelihood = np.where((accepted < lengths)[..., None], at - after[..., 0], at)
            drafted = ((lengths >= 1) & (tokens >= 1))[..., None]
            weighted = np.where(drafted, self.posterior[going] * likelihood, self.posterior[going])
            total = weighted.sum(axis=-1, keepdims=True)
            updated = np.where(total > 0.0, weighted / np.where(total > 0.0, total, 1.0), self.prior[going])
            self.posterior[going] = self._move(updated, self.prior[going], tokens)
        self._started |= new

    def survival(self) -> FloatArray:
        """S_k(i) = sum_j pi_kj S_j(i), i = 1..L_max, of every sub-env (N, K, L_max): the curves of the next round
        (eq. (7.5b))."""
        return np.einsum("nkm,nkmi->nki", self.posterior, self.curves[..., 1:])


def check_posterior(unwrapped: Any, name: str) -> None:
    """Raise ValueError (one line naming ``name`` and why) unless the rate posterior can play the env."""
    if unwrapped.config.homogeneous:
        raise ValueError(f"{name} needs per-user draft lengths (MultiSpin-Heterogeneous-v0)")
    why = posterior_applies(unwrapped.core)
    if why is not None:
        raise ValueError(f"{name}: {why}")
