"""The rate posterior of ``het-opt-posterior`` (:class:`baselines.policies.RatePosteriorPolicy`; docs/model.md section 7.5).

het-opt-adaptive plans with the running estimate a_hat and the curve a_hat^i; het-opt-static with the process's
long-run curve of the population's rates. The rate posterior combines the two: it knows what the static level knows
(each user's population rate a_k and the acceptance process's law around it) and updates, round by round, the
posterior of the hidden state of the round about to be played given every round the observation has shown this
episode (a Bayes filter, exact for every env it is offered for):

- the hidden state is a node of a finite set with its own acceptance curve: the population rate (``iid``,
  ``positional``); the easy and the hard regime (``markov``); the quadrature nodes of the Beta law (``mixture``) or
  the task rates (``tasks``) of a request's rate;
- a played round with L_k >= 1 and n_k tokens weighs each node by P(A_k = n_k - 1 | node, L_k); with request
  arrivals a round that ended its request may have been cut at the request's last token, so there only
  P(A_k >= n_k - 1 | node) (eq. (7.5a));
- then the state moves as the process does: the regime flips with probability s (``markov``); the rate is drawn
  again every round (``mixture`` of scope "round"); a request ends, and the next one's rate is drawn from the law
  (the per-request processes): with probability 1 - (1 - 1/m)^n_k after a round of n_k tokens for geometric
  request lengths without arrivals (memoryless), when its tokens reach ceil(m) for fixed lengths (counted from the
  episode's start), and with arrivals when the observation's ``remaining`` shows the request ended;
- the round is planned with the posterior's curve S_k(i) = sum_j pi_kj S_j(i) (eq. (7.5b)).

With an upload deadline U (eq. (1')) a dropped upload shows one token, as a rejection at the first position does. A
drop can happen only in a round that lasted at least U + T_ver(1) + T_dl (the server waited until U, then verified
at least the dropped user's token); in such a round, its latency read from the observation's time left, a drafting
user with one token gives no evidence (skipped). The filter is exact while no round lasts that long (every suite
task; TightDeadline's acceptance is i.i.d. anyway: one node, nothing to filter); where most rounds do, skipping those
rejections makes it optimistic. With a horizon so long that the float32 time left cannot resolve a round (beyond
about 1e6 s) every one-token round counts as one that can have dropped. Not offered for traces.
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
)
from multispin_env.model import verification_times

__all__ = ["RatePosterior", "check_posterior", "posterior_applies"]

FloatArray = NDArray[np.float64]


def posterior_applies(core: Any) -> str | None:
    """None if :class:`RatePosteriorPolicy` can play the env of ``core``, else why not (one sentence)."""
    process = core.process
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
        process = core.process
        #: Tokens a user's current request had left before the round, from the last observation (with arrivals).
        self._remaining = np.zeros((n, k))
        #: ceil(m), the tokens of a fixed-length request, whose ends it counts without arrivals (else 0: not counted)
        self._request_tokens = 0.0
        if isinstance(process, RequestRates) and process.request_length == "fixed" and not core.arrivals:
            self._request_tokens = float(math.ceil(process.mean_request_tokens))
        #: Tokens left in each user's current fixed-length request (without arrivals).
        self._left = np.full((n, k), self._request_tokens)
        #: The clock at the last observation, s (a round's latency says whether an upload could have been dropped).
        self._clock = np.zeros(n)
        #: The shortest round that can have dropped an upload, s: the server waited until the deadline U (eq. (1')),
        #: then verified at least the dropped user's one token and sent it down (eq. (2'), (3)); None: no deadline.
        self._drop_latency: float | None = None
        if core.config.upload_deadline is not None:
            verify_one = float(verification_times(1.0, core.scenario.verify_profile_points))
            self._drop_latency = core.config.upload_deadline + verify_one + core.scenario.downlink_time

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
            rates, weights = process.rate_law(base)
            return rates[..., None] ** self._positions, weights
        if isinstance(process, RequestRates):
            rates, weights = process.request_rate_law(base)
            return rates[..., None] ** self._positions, weights
        return process.survival_from_rate(base)[..., None, :], np.ones((*base.shape, 1))  # iid, positional

    def _move(self, posterior: FloatArray, prior: FloatArray, ends: FloatArray) -> FloatArray:
        """The law of the next round's state from this round's (posterior (R, K, M), after its outcome); ``ends``
        (R, K): the probability that the round ended the user's request (per-request processes)."""
        process = self._core.process
        if isinstance(process, MarkovAcceptance):
            s = process.switch_prob
            return (1.0 - s) * posterior + s * posterior[..., ::-1]
        if isinstance(process, RoundMixture):
            return prior.copy()
        if isinstance(process, RequestRates):
            return (1.0 - ends[..., None]) * posterior + ends[..., None] * prior
        return posterior

    def _request_ends(self, going: NDArray[np.bool_], tokens: FloatArray, finished: FloatArray) -> FloatArray:
        """P(the round ended the user's request) (R, K) for the rows ``going``: ``finished`` (with arrivals: the
        request's last token came in this round), fixed lengths counted, else the geometric 1 - (1 - 1/m)^n."""
        process = self._core.process
        if not isinstance(process, RequestRates):
            return np.zeros_like(tokens)
        if self._core.arrivals:
            return finished
        if self._request_tokens:
            left = self._left[going] - tokens
            ended = left <= 0.0
            self._left[going] = np.where(ended, self._request_tokens, left)  # the env starts a new request
            return ended.astype(np.float64)
        return -np.expm1(tokens * math.log1p(-1.0 / process.mean_request_tokens))

    def observe(self, rows: FloatArray, starts: NDArray[np.bool_]) -> None:
        """Update every sub-env's posterior with the round its observation (rows (N, size)) shows; ``starts`` (N,)
        flags new episodes (an observation that shows one starts one too)."""
        unwrapped = self._unwrapped
        new = starts | ~self._started | observation_starts_episode(unwrapped, rows)
        clock = self._core.config.horizon * (1.0 - unwrapped.time_left_from_observation(rows))
        if new.any():
            curves, prior = self._nodes(self._core.base_acceptance[new])
            self.curves[new, ..., 1:] = curves
            self.prior[new] = prior
            self.posterior[new] = prior
            self._left[new] = self._request_tokens  # each user starts a fresh request at the reset
        going = ~new
        if going.any():
            lengths = np.rint(unwrapped.observation_value(rows[going], "last_draft_lengths"))
            tokens = np.rint(unwrapped.observation_value(rows[going], "last_tokens"))
            # With arrivals the round's tokens stop at the request's last one: a round that reached it says only
            # A >= n - 1 (eq. (7.5a)), and it ended the request.
            finished = (tokens >= self._remaining[going]) & (tokens >= 1.0) if self._core.arrivals else tokens < 0.0
            accepted = np.clip(tokens - 1.0, 0.0, lengths).astype(np.intp)
            curves = self.curves[going]  # (R, K, M, L_max + 1)
            at = np.take_along_axis(curves, accepted[..., None, None], axis=-1)[..., 0]
            after = np.take_along_axis(curves, np.minimum(accepted + 1, lengths.astype(np.intp))[..., None, None], -1)
            # P(A = a | node) = S(a) - S(a + 1) for a < L; S(L) for a = L or a round cut at its request's end
            likelihood = np.where(((accepted < lengths) & ~finished)[..., None], at - after[..., 0], at)
            drafted = (lengths >= 1) & (tokens >= 1)
            if self._drop_latency is not None:  # a round that can have dropped an upload: one token is moot
                latency = clock[going] - self._clock[going]
                resolution = self._core.config.horizon * 2.0**-22  # of a clock read from float32 time left
                drafted &= ~((latency >= self._drop_latency - resolution)[:, None] & (tokens == 1.0))
            drafted = drafted[..., None]
            weighted = np.where(drafted, self.posterior[going] * likelihood, self.posterior[going])
            total = weighted.sum(axis=-1, keepdims=True)
            updated = np.where(total > 0.0, weighted / np.where(total > 0.0, total, 1.0), self.prior[going])
            ends = self._request_ends(going, tokens, finished.astype(np.float64))
            self.posterior[going] = self._move(updated, self.prior[going], ends)
        if self._core.arrivals:  # what each request has left before the next round
            self._remaining = np.rint(unwrapped.observation_value(rows, "remaining"))  # whole tokens (float32 obs)
        self._clock = clock
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
