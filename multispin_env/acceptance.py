"""Acceptance processes (docs/model.md section 5.1), batched over arrays of shape (num_envs, K).

Every process keeps, for the round about to be played, each user's per-token acceptance rate
(:attr:`AcceptanceProcess.rate`, the rate of draft position 1) and the table the round samples from,
:attr:`AcceptanceProcess.cumulative_hazard`: H_k(i) = -sum_{j<=i} log a_{k,j} for draft positions
i = 1..L_max, a_{k,j} the acceptance probability of position j given the positions before it were accepted.
The accepted prefix is sampled the same way for every process (:func:`accepted_prefix`):

    A_k = #{i <= L_k : H_k(i) <= E},  E ~ Exp(1),  so  P(A_k >= i) = P(E >= H_k(i)) = prod_{j<=i} a_{k,j}.

Draft token i is accepted only if all tokens before it were, so A_k is the index of the first rejection (or
L_k when the whole draft is accepted). The mean N(a, L) of eq. (4) is never used in the simulation.

A process is a small component: its constructor takes the batch shape and its settings (the config fields
named in :attr:`AcceptanceProcess.parameters`), :meth:`~AcceptanceProcess.reset` and
:meth:`~AcceptanceProcess.advance` keep ``rate`` and ``cumulative_hazard`` up to date, and
:func:`register_acceptance_process` makes it selectable by name (docs/model.md section 9).

Processes (:data:`ACCEPTANCE_PROCESSES`):

- ``iid``: a_k fixed, the population's rate (the paper's model).
- ``positional``: a_{k,i} = a_k d^(i-1), d = ``positional_decay``.
- ``markov``: a sticky two-regime hidden Markov chain per user; the easy
  regime has the population's rate a_k, the hard one a_k * ``markov_hard_factor``;
  each round each user switches regime with probability ``markov_switch_prob``.
- ``tasks``: each new request of a user (:mod:`multispin_env.requests`) draws its
  task, hence its rate, from an :class:`~multispin_env.scenarios.AcceptanceProfile`.
- ``mixture``: rates of varying difficulty, Beta around a_k, drawn every round or per request.
- ``trace``: recorded rounds of a real draft/target pair replayed (:mod:`multispin_env.traces`): each round a
  user's accepted prefix is min(A_max, L_k) of the next recorded round of its current request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numba import njit, vectorize
from numpy.typing import ArrayLike, NDArray
from scipy.special import roots_jacobi

from multispin_env._checks import integer_setting, real_setting, register_class, short_repr
from multispin_env._numba import JIT, jit_cache
from multispin_env.model import MAX_DRAFT, token_table
from multispin_env.scenarios import AcceptanceProfile
from multispin_env.traces import AcceptanceTrace, load_trace, token_rate

if TYPE_CHECKING:
    from multispin_env.config import EnvConfig

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = [
    "ACCEPTANCE_PROCESSES",
    "AcceptanceProcess",
    "IIDAcceptance",
    "PositionalAcceptance",
    "RequestRates",
    "MarkovAcceptance",
    "TaskAcceptance",
    "MixtureAcceptance",
    "RequestMixture",
    "RoundMixture",
    "TraceAcceptance",
    "MIXTURE_SCOPES",
    "accepted_prefix",
    "acceptance_estimate",
    "sample_prefixes",
    "make_acceptance_process",
    "register_acceptance_process",
    "beta_quadrature",
    "request_rounds",
]

with jit_cache():

    @vectorize(cache=JIT["cache"])
    def acceptance_estimate(successes, failures, prior, prior_weight):
        """The observed acceptance estimate a_hat = (S + w0 a0) / (S + F + w0) (docs/model.md section 5.4): S and F
        the discounted accepted draft tokens and first rejections, a0 the prior rate, w0 its weight."""
        numerator = successes + prior_weight * prior
        return numerator / (numerator + failures + prior_weight * (1.0 - prior))

    @njit(**JIT, inline="always")
    def accepted_prefix(cumulative_hazard, i, k, draft_length, draw):
        """A = min(L, #{j : H(j) <= E}): the accepted prefix of user k of system i, drafting ``draft_length``
        tokens, for the Exp(1) variate ``draw``; ``cumulative_hazard[i, k]`` is the user's H(1..L_max).

        H is non-decreasing, so counting every position below E and capping at L is the prefix; the count has
        no data-dependent branch (a loop that stops at the first rejection is 3x slower on random draws).
        """
        reached = 0.0
        for j in range(cumulative_hazard.shape[2]):
            reached += np.float64(cumulative_hazard[i, k, j] <= draw)
        return min(reached, draft_length)

    @njit(**JIT)  # compiled on first use (tests, analysis), not at import
    def _sample_prefixes(cumulative_hazard, draft_lengths, exponential, out):
        for i in range(out.shape[0]):
            for k in range(out.shape[1]):
                out[i, k] = accepted_prefix(cumulative_hazard, i, k, draft_lengths[i, k], exponential[i, k])

    @njit(**JIT)  # compiled on first use (planning with fixed request lengths)
    def _fixed_request_rounds(rates, max_draft, tokens, out):
        """E[rounds of a request of ``tokens`` tokens | rate r, draft length L] into ``out`` (M, max_draft + 1), by
        the renewal recursion u(s) = 1 + sum_j P(n = j) u(s - j), u(s <= 0) = 0 (docs/model.md eq. (5.1b)), in O(1)
        per step: with G(s) = sum_{j=1..L} r^(j-1) u(s - j), u(s) = 1 + (1 - r) G(s) + r^L u(s - L - 1)."""
        u = np.zeros(tokens + 1)
        for m in range(rates.size):
            r = rates[m]
            for length in range(max_draft + 1):
                top = r**length  # P(n = L + 1): the whole draft accepted
                g = 0.0
                for s in range(1, tokens + 1):
                    g_tail = u[s - length - 1] if s - length - 1 >= 1 else 0.0
                    u[s] = 1.0 + (1.0 - r) * g + top * g_tail
                    # G(s + 1) = u(s) + r G(s) - r^L u(s - L)
                    g = u[s] + r * g - (top * u[s - length] if s - length >= 1 else 0.0)
                out[m, length] = u[tokens]


def sample_prefixes(cumulative_hazard: FloatArray, draft_lengths: FloatArray, exponential: FloatArray) -> FloatArray:
    """:func:`accepted_prefix` of every user (n, K), as the compiled round samples them, as floats."""
    lengths = np.ascontiguousarray(draft_lengths, dtype=np.float64)
    draws = np.ascontiguousarray(exponential, dtype=np.float64)
    out = np.empty(lengths.shape)
    _sample_prefixes(np.ascontiguousarray(cumulative_hazard, dtype=np.float64), lengths, draws, out)
    return out


#: Fixed request lengths up to this many tokens get the exact renewal recursion; longer ones the renewal theorem's
#: asymptote (docs/model.md eq. (5.1b)).
EXACT_FIXED_TOKENS = 1 << 14


#: Rounds of an episode that :meth:`RequestRates.episode_tokens` follows exactly; later ones count at the long-run
#: value (the rate chain has then forgotten the episode's start unless a request lasts ~1e4 rounds).
EPISODE_EXACT_ROUNDS = 10_000


def _token_law(rates: FloatArray, max_draft: int) -> tuple[FloatArray, FloatArray]:
    """P(n = j | r, L) of a round's tokens n = min(A, L) + 1: ``powers`` r^0..r^L_max (..., L_max + 1) and ``steps``
    r^(j-1) (1 - r) for j = 1..L_max (..., L_max): P(n = j) = steps[j - 1] for j <= L, P(n = L + 1) = r^L."""
    powers = rates[..., None] ** np.arange(max_draft + 1)
    return powers, powers[..., :-1] * (1.0 - rates[..., None])


def request_rounds(rates: ArrayLike, max_draft: int, mean_tokens: float, length: str) -> FloatArray:
    """E[rounds a request lasts | its rate r] for a user drafting L tokens every round, L = 0..L_max
    (docs/model.md eq. (5.1a), (5.1b)): shape (*rates.shape, L_max + 1).

    :param rates: per-token acceptance rates r in [0, 1) of the request (its rate holds for the whole request)
    :param max_draft: L_max, tokens
    :param mean_tokens: m, the mean request length in tokens (``mean_request_tokens``, >= 1)
    :param length: the length distribution (``request_length``, :data:`~multispin_env.requests.REQUEST_LENGTHS`)

    A round gives n = min(A, L) + 1 tokens, P(n = j) = r^(j-1) (1 - r) for j <= L and r^L for j = L + 1, and the
    request ends in the first round whose tokens reach its length (section 5.8). Geometric lengths
    (P(R > s) = (1 - 1/m)^s) are memoryless, so each round ends the request with probability
    q = 1 - E[(1 - 1/m)^n] and the rounds are geometric of mean 1 / q. A fixed length R = ceil(m) gives the
    renewal recursion u(s) = 1 + sum_j P(n = j) u(s - j), u(s <= 0) = 0, solved exactly for
    R <= :data:`EXACT_FIXED_TOKENS`; beyond, the renewal theorem's u(R) = (R + E[n^2] / (2 mu) - 1 / 2) / mu,
    mu = E[n] (relative error at most L / R, exponentially small unless r is within ~1 / R of 0 or 1).
    """
    max_draft = integer_setting("max_draft", max_draft, 0, MAX_DRAFT)
    mean_tokens = real_setting("mean_tokens", mean_tokens, 1.0, 1e12)
    rate = np.asarray(rates, dtype=np.float64)
    if not np.all((rate >= 0.0) & (rate < 1.0)):  # also NaN
        raise ValueError(f"rates must lie in [0, 1), got {short_repr(rates)}")
    powers, steps = _token_law(rate, max_draft)
    if length == "geometric":
        # 1 - (1 - 1/m)^j for j = 1..L_max + 1, without the cancellation of 1 - x^j for m ~ 1e12
        with np.errstate(divide="ignore"):  # m = 1: log(0) = -inf, so every round ends the request
            reach = -np.expm1(np.arange(1, max_draft + 2) * np.log1p(-1.0 / mean_tokens))
        below = np.concatenate([np.zeros((*rate.shape, 1)), np.cumsum(steps * reach[:-1], axis=-1)], axis=-1)
        return 1.0 / (below + powers * reach)  # q_L = sum_{j<=L} P(n=j) reach_j + r^L reach_{L+1}
    if length != "fixed":
        raise ValueError(f"request_length must be 'geometric' or 'fixed', got {length!r}")
    tokens = int(np.ceil(mean_tokens))
    if tokens <= EXACT_FIXED_TOKENS:
        flat = np.ascontiguousarray(rate.reshape(-1))
        out = np.empty((flat.size, max_draft + 1))
        _fixed_request_rounds(flat, max_draft, tokens, out)
        return out.reshape(*rate.shape, max_draft + 1)
    j = np.arange(1, max_draft + 2, dtype=np.float64)
    first, second = (
        np.concatenate([np.zeros((*rate.shape, 1)), np.cumsum(steps * j[:-1] ** p, axis=-1)], axis=-1) + powers * j**p
        for p in (1, 2)
    )  # E[n | L] and E[n^2 | L]
    return (tokens + second / (2.0 * first) - 0.5) / first


def beta_quadrature(mean: float, concentration: float, nodes: int) -> tuple[FloatArray, FloatArray]:
    """Nodes r and weights (summing to 1) of a ``nodes``-point quadrature for E[g(r)], r ~ Beta(kappa a, kappa (1 - a))
    with a = ``mean``, kappa = ``concentration``: exact for polynomials g of degree < 2 ``nodes``.

    Gauss-Jacobi (the Beta density is its weight, so endpoint singularities for kappa a < 1 are exact); for
    kappa > 1000, where the Jacobi weights overflow, Gauss-Legendre on the central 1 - 1e-14 of the law with the
    density as weight (the law is then within a few standard deviations <= 0.016 of a, and smooth there).
    """
    alpha = max(concentration * mean, 1e-12)
    beta = max(concentration * (1.0 - mean), 1e-12)
    if alpha + beta <= 1000.0:
        # weight (1 - x)^(beta-1) (1 + x)^(alpha-1), r = (1 + x) / 2; scipy evaluates both branches of a where()
        # that divides by 0 at kappa = 1 and keeps the finite one
        with np.errstate(invalid="ignore", divide="ignore"):
            x, w = roots_jacobi(nodes, beta - 1.0, alpha - 1.0)
        return (x + 1.0) / 2.0, w / w.sum()
    from scipy import stats  # here, not at import: scipy.stats is slow to import, and every env would pay for it

    law = stats.beta(alpha, beta)
    low, high = law.ppf(5e-15), law.isf(5e-15)
    x, w = np.polynomial.legendre.leggauss(nodes)
    r = low + (high - low) * (x + 1.0) / 2.0
    w = w * np.exp(law.logpdf(r) - law.logpdf(alpha / (alpha + beta)))
    return r, w / w.sum()


def _concave_increments(values: FloatArray) -> FloatArray:
    """The increments (..., n) of the least concave majorant of ``values`` (..., n + 1) at 0..n, clipped at 0: equal
    to ``np.diff(values)`` where that is non-increasing."""
    increments = np.diff(values, axis=-1)
    if np.all(np.diff(increments, axis=-1) <= 1e-12):
        return np.maximum(increments, 0.0)
    out = np.empty_like(increments)
    flat_in, flat_out = values.reshape(-1, values.shape[-1]), out.reshape(-1, increments.shape[-1])
    for row, y in enumerate(flat_in):
        hull = [0]  # upper hull by the monotone chain over x = 0..n
        for x in range(1, y.size):
            while len(hull) >= 2 and (y[hull[-1]] - y[hull[-2]]) * (x - hull[-2]) <= (y[x] - y[hull[-2]]) * (
                hull[-1] - hull[-2]
            ):
                hull.pop()
            hull.append(x)
        flat_out[row] = np.diff(np.interp(np.arange(y.size), hull, y[hull]))
    return np.maximum(out, 0.0)


class AcceptanceProcess:
    """Base class: a per-round acceptance rate per user, the same for every draft position (i.i.d.).

    :param num_envs: number of independent systems (batch rows)
    :param num_users: K
    :param max_draft: L_max, tokens

    Attributes (updated in place, never rebound: the compiled round holds them):

    - ``rate`` (num_envs, K): a_k of the round about to be played (the rate of draft position 1);
    - ``cumulative_hazard`` (num_envs, K, L_max): H_k(i) for i = 1..L_max (see the module docstring);
    - ``base_rate`` (num_envs, K): the population's rate a_k the process was reset with.
    """

    name: ClassVar[str] = ""
    #: Config fields (:class:`~multispin_env.config.EnvConfig`) passed to the constructor as keywords.
    parameters: ClassVar[tuple[str, ...]] = ()
    #: Whether the state evolves between rounds (:meth:`advance` is not a no-op, and may draw randomness).
    #: False: the state is a function of the base rates alone, so resetting rows to unchanged base rates
    #: changes nothing.
    evolves: ClassVar[bool] = False

    def __init__(self, num_envs: int, num_users: int, max_draft: int) -> None:
        shape = (num_envs, num_users)
        self.num_envs = num_envs
        self.num_users = num_users
        self.max_draft = max_draft
        self.positions = np.arange(1, max_draft + 1, dtype=np.float64)
        self.base_rate: FloatArray = np.full(shape, 0.5)
        self.rate: FloatArray = np.full(shape, 0.5)
        self.cumulative_hazard: FloatArray = np.zeros((*shape, max_draft))
        self.set_rates(None, self.rate)

    def set_rates(self, where: BoolArray | None, rates: FloatArray) -> None:
        """Give the users of the mask ``where`` (None: all) the position-independent ``rates`` (one per selected
        user): ``rate`` = a and H(i) = i (-log a)."""
        sel = slice(None) if where is None else where
        self.rate[sel] = rates
        self.cumulative_hazard[sel] = -np.log(self.rate[sel])[..., None] * self.positions

    def _user_mask(self, rows: BoolArray | None) -> BoolArray:
        """A (num_envs, K) mask of every user of the systems ``rows`` (None: all)."""
        where = np.zeros(self.rate.shape, dtype=bool)
        where[slice(None) if rows is None else rows] = True
        return where

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        """Restart the process in ``rows`` (a boolean mask over envs; None = all) from ``base_rate`` (num_envs, K)."""
        sel = slice(None) if rows is None else rows
        self.base_rate[sel] = base_rate[sel]
        self.set_rates(rows, base_rate[sel])

    def advance(self, tokens: FloatArray, rng: np.random.Generator) -> None:
        """Evolve the process after a round in which each user gained ``tokens`` (no-op for i.i.d.)."""

    @property
    def per_request(self) -> bool:
        """Whether the rates change with each request (then the core keeps a
        :class:`~multispin_env.requests.Requests` that calls :meth:`start_requests`)."""
        return False

    def start_requests(self, where: BoolArray, rng: np.random.Generator) -> None:
        """New requests begin for the users of the mask ``where`` (n, K) (no-op unless :attr:`per_request`)."""

    def sample(self, draft_lengths: FloatArray, exponential: FloatArray) -> FloatArray:
        """Accepted prefixes (n, K) for the Exp(1) variates ``exponential``, as the round samples them."""
        return sample_prefixes(self.cumulative_hazard, draft_lengths, exponential)

    def survival(self) -> FloatArray:
        """P(A_k >= i) = exp(-H_k(i)) for i = 1..L_max, shape (num_envs, K, L_max): the current acceptance curve
        (what an oracle plans with)."""
        return np.exp(-self.cumulative_hazard)

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        """Long-run mean rate per user given the population's ``base_rate`` (position 1 for positional)."""
        return np.array(base_rate, dtype=np.float64)

    def mean_survival(self, base_rate: FloatArray) -> FloatArray:
        """The long-run (nominal) acceptance curve P(A_k >= i), i = 1..L_max, given the population's
        ``base_rate`` (..., K): what a static policy plans with. i.i.d. in the positions: a^i.

        Its partial sums 1 + sum_{i<=L} are the long-run tokens per round of a user drafting L tokens every round
        (eq. (4)); for a process whose rates hold for whole requests that is not the per-round curve of any one L
        (see :meth:`round_survival`)."""
        return self.survival_from_rate(self.mean_rate(base_rate))

    def round_tokens(self, base_rate: FloatArray) -> FloatArray:
        """Long-run tokens per round E[n_k] of a user drafting L tokens every round, L = 0..L_max, shape
        (..., K, L_max + 1): 1 + sum_{i<=L} of :meth:`mean_survival` (eq. (4))."""
        return token_table(self.mean_survival(base_rate))

    def round_survival(self, base_rate: FloatArray, draft_length: ArrayLike) -> FloatArray:
        """The long-run per-round curve P(A_k >= i), i = 1..L_max, that the rounds of a user drafting
        ``draft_length`` (..., K) tokens in every round show, given the population's ``base_rate`` (..., K); shape
        (..., K, L_max). The share of rounds in each state of the process does not depend on the draft length here,
        so it is :meth:`mean_survival` whatever the length."""
        curve = self.mean_survival(base_rate)
        return np.broadcast_to(
            curve, (*np.broadcast_shapes(np.shape(base_rate), np.shape(draft_length)), self.max_draft)
        ).copy()

    def survival_from_rate(self, rate: FloatArray) -> FloatArray:
        """The curve P(A_k >= i) this process's shape implies for a position-1 rate ``rate`` (..., K), e.g. an
        estimate from observed outcomes (what an adaptive policy plans with). i.i.d.: rate^i."""
        return np.asarray(rate, dtype=np.float64)[..., None] ** np.arange(1, self.max_draft + 1)


#: Acceptance processes by name (:func:`register_acceptance_process` adds one).
ACCEPTANCE_PROCESSES: dict[str, type[AcceptanceProcess]] = {}


def register_acceptance_process(cls: type[AcceptanceProcess]) -> type[AcceptanceProcess]:
    """Class decorator: make ``cls`` selectable as ``acceptance_process=cls.name``."""
    return register_class(ACCEPTANCE_PROCESSES, cls)


@register_acceptance_process
class IIDAcceptance(AcceptanceProcess):
    """i.i.d. acceptance with the population's fixed rate a_k (docs/model.md eq. (4))."""

    name = "iid"


@register_acceptance_process
class PositionalAcceptance(AcceptanceProcess):
    """Acceptance falling with the draft position: a_{k,i} = a_k d^(i-1) (docs/model.md section 5.1).

    :param positional_decay: d in (0, 1]; d = 1 is i.i.d. (measured: 0.805, 0.632, 0.483 for positions 1-3,
        i.e. d ~ 0.79)

    ``rate`` (and :meth:`mean_rate`) give the position-1 rate a_k.
    """

    name = "positional"
    parameters = ("positional_decay",)

    def __init__(self, num_envs: int, num_users: int, max_draft: int, *, positional_decay: float) -> None:
        self.decay = float(positional_decay)
        positions = np.arange(1, max_draft + 1, dtype=np.float64)
        # -sum_{j<=i} log d^(j-1) = -log(d) i (i - 1) / 2
        self._decay_hazard = -np.log(self.decay) * positions * (positions - 1.0) / 2.0
        super().__init__(num_envs, num_users, max_draft)

    def set_rates(self, where: BoolArray | None, rates: FloatArray) -> None:
        super().set_rates(where, rates)
        sel = slice(None) if where is None else where
        self.cumulative_hazard[sel] += self._decay_hazard

    def survival_from_rate(self, rate: FloatArray) -> FloatArray:
        """a^i d^(i (i - 1) / 2): the position-1 rate ``rate`` decaying by d per position."""
        return super().survival_from_rate(rate) * np.exp(-self._decay_hazard)


@register_acceptance_process
class MarkovAcceptance(AcceptanceProcess):
    """Sticky two-regime (easy/hard content) hidden Markov acceptance (docs/model.md section 5.1).

    :param markov_switch_prob: probability per round that a user's regime flips (both directions)
    :param markov_hard_factor: hard-regime rate = a_k * factor, factor in (0, 1]

    The chain is symmetric, so each regime has stationary probability 1/2; resets draw the regime from it.
    """

    name = "markov"
    parameters = ("markov_switch_prob", "markov_hard_factor")
    evolves = True

    def __init__(
        self, num_envs: int, num_users: int, max_draft: int, *, markov_switch_prob: float, markov_hard_factor: float
    ) -> None:
        super().__init__(num_envs, num_users, max_draft)
        self.switch_prob = float(markov_switch_prob)
        self.hard_factor = float(markov_hard_factor)
        #: True where the user is in the hard regime.
        self.hard: BoolArray = np.zeros((num_envs, num_users), dtype=bool)

    def _apply_regime(self, where: BoolArray) -> None:
        self.set_rates(where, np.where(self.hard, self.base_rate * self.hard_factor, self.base_rate)[where])

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        sel = slice(None) if rows is None else rows
        self.base_rate[sel] = base_rate[sel]
        self.hard[sel] = rng.random(self.hard[sel].shape) < 0.5
        where = self._user_mask(rows)
        self._apply_regime(where)

    def advance(self, tokens: FloatArray, rng: np.random.Generator) -> None:
        flips = rng.random(self.hard.shape) < self.switch_prob
        if flips.any():
            self.hard ^= flips
            self._apply_regime(flips)

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        return np.asarray(base_rate, dtype=np.float64) * (1.0 + self.hard_factor) / 2.0

    def mean_survival(self, base_rate: FloatArray) -> FloatArray:
        """Each regime half of the time: (a^i + (a f)^i) / 2 (not (mean a)^i: the regime holds for a round)."""
        base = np.asarray(base_rate, dtype=np.float64)
        return 0.5 * (self.survival_from_rate(base) + self.survival_from_rate(base * self.hard_factor))


class RequestRates(AcceptanceProcess):
    """Base of the processes whose rate is drawn per request and holds for the whole request (tasks, mixture with
    scope "request"): their long-run curves are length-biased (docs/model.md section 5.1, eq. (5.1a)-(5.1e)).

    :param mean_request_tokens: m, the mean request length, tokens (section 5.8)
    :param request_length: the length distribution, "geometric" or "fixed"

    A request at rate r lasts E[N | r, L] rounds (:func:`request_rounds`), so a user drafting L tokens every round
    spends a share p(r) E[N | r, L] / sum p E[N | ., L] of its rounds at rate r (renewal-reward over its
    requests, p the law of a request's rate): low rates, whose requests last more rounds, weigh more than their
    share of requests. The subclass gives p as nodes and weights (:meth:`request_rate_law`).
    """

    def __init__(
        self, num_envs: int, num_users: int, max_draft: int, *, mean_request_tokens: float, request_length: str
    ) -> None:
        super().__init__(num_envs, num_users, max_draft)
        self.mean_request_tokens = float(mean_request_tokens)
        self.request_length = request_length

    def request_rate_law(self, base_rate: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The law of a new request's rate for users of population rate ``base_rate`` (..., K): nodes r and
        probabilities p, each (..., K, M), p summing to 1 over the last axis."""
        raise NotImplementedError

    def _round_shares(self, base_rate: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(rates (..., K, M), shares of rounds (..., K, L_max + 1, M)): eq. (5.1c), for every L = 0..L_max."""
        rates, probabilities = self.request_rate_law(np.asarray(base_rate, dtype=np.float64))
        rounds = request_rounds(rates, self.max_draft, self.mean_request_tokens, self.request_length)
        shares = np.swapaxes(probabilities[..., None] * rounds, -1, -2)
        return rates, shares / shares.sum(axis=-1, keepdims=True)

    def round_tokens(self, base_rate: FloatArray) -> FloatArray:
        """Long-run tokens per round E[n_k] of a user drafting L tokens every round, L = 0..L_max, shape
        (..., K, L_max + 1) (eq. (5.1d)): total tokens over total rounds, sum_r share_L(r) (1 + sum_{i<=L} r^i)."""
        rates, shares = self._round_shares(base_rate)
        per_rate = np.cumsum(rates[..., None, :] ** np.arange(self.max_draft + 1)[:, None], axis=-2)  # (..., L+1, M)
        return np.sum(shares * per_rate, axis=-1)

    def round_survival(self, base_rate: FloatArray, draft_length: ArrayLike) -> FloatArray:
        """sum_r share_L(r) r^i (eq. (5.1c)) at each user's L = ``draft_length``."""
        rates, shares = self._round_shares(base_rate)
        length = np.broadcast_to(np.asarray(draft_length, dtype=np.intp), shares.shape[:-2])
        at_length = np.take_along_axis(shares, length[..., None, None], axis=-2)[..., 0, :]  # (..., K, M)
        return self._rate_mix(at_length, rates)

    def request_survival(self, base_rate: FloatArray) -> FloatArray:
        """E_p[r^i], i = 1..L_max (..., K, L_max): the curve of a new request, its rate r drawn from the request law
        p. Request-weighted, not length-biased: not what the rounds show (that is :meth:`round_survival`)."""
        rates, probabilities = self.request_rate_law(np.asarray(base_rate, dtype=np.float64))
        return self._rate_mix(probabilities, rates)

    def _rate_mix(self, weights: FloatArray, rates: FloatArray) -> FloatArray:
        """sum_r weight(r) r^i over the rate nodes (last axis of both, (..., K, M)), i = 1..L_max: (..., K, L_max)."""
        return np.sum(weights[..., None, :] * rates[..., None, :] ** self.positions[:, None], axis=-1)

    def mean_survival(self, base_rate: FloatArray) -> FloatArray:
        """The static planning curve S(i) = E[n | i] - E[n | i - 1] of :meth:`round_tokens` (eq. (5.1e)): its partial
        sums 1 + sum_{i<=L} S(i) are the long-run tokens per round at every L, so the solvers' objective (eq. (4),
        (5)) is the long-run goodput of every allocation played in every round.

        For long geometric requests E[n | L] is concave in L and S a survival curve. For short requests with rates
        near 0 and 1, or fixed lengths (a request's rounds jump with ceil(R / (L + 1)) when most drafts are
        accepted), it need not be: S is then the increments of its least concave majorant, clipped at 0 (exact at
        the majorant's vertices)."""
        return _concave_increments(self.round_tokens(base_rate))

    def episode_tokens(self, base_rate: FloatArray, rounds: int) -> FloatArray:
        """Mean tokens per round over the first ``rounds`` rounds of an episode of always-busy users (each starts a
        fresh request at the reset, section 5.8) drafting L tokens every round, L = 0..L_max, shape
        (..., K, L_max + 1) (eq. (5.1f)). Geometric request lengths only: they are memoryless, so the rate of the
        round is a Markov chain (each round the request ends with probability 1 / E[N | r, L] and a new rate is
        drawn from p). Rounds beyond :data:`EPISODE_EXACT_ROUNDS` count at the long-run value of eq. (5.1d)."""
        if self.request_length != "geometric":
            raise ValueError(
                f"episode_tokens needs request_length='geometric' (memoryless requests), got {self.request_length!r}"
            )
        rounds = integer_setting("rounds", rounds, 1)
        base = np.asarray(base_rate, dtype=np.float64)
        rates, probabilities = self.request_rate_law(base)
        ends = np.swapaxes(1.0 / request_rounds(rates, self.max_draft, self.mean_request_tokens, "geometric"), -1, -2)
        per_rate = np.cumsum(rates[..., None, :] ** np.arange(self.max_draft + 1)[:, None], axis=-2)  # (..., L+1, M)
        fresh = np.broadcast_to(probabilities[..., None, :], ends.shape)
        state = fresh.copy()  # the law of the rate in the round, per L
        total = np.zeros(ends.shape[:-1])
        exact = min(rounds, EPISODE_EXACT_ROUNDS)
        for _ in range(exact):
            total += np.sum(state * per_rate, axis=-1)
            state = state * (1.0 - ends) + fresh * np.sum(state * ends, axis=-1, keepdims=True)
        if rounds > exact:
            total += (rounds - exact) * self.round_tokens(base)
        return total / rounds

    def episode_survival(self, base_rate: FloatArray, rounds: int) -> FloatArray:
        """The static planning curve for episodes of ``rounds`` rounds: the increments of :meth:`episode_tokens`
        (their least concave majorant where they are not concave), as :meth:`mean_survival` is for the long run."""
        return _concave_increments(self.episode_tokens(base_rate, rounds))

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        """The mean rate per request, E_p[r] (not per round: rounds at low rates are more frequent, see
        :meth:`round_survival`)."""
        rates, probabilities = self.request_rate_law(np.asarray(base_rate, dtype=np.float64))
        return np.sum(rates * probabilities, axis=-1)


@register_acceptance_process
class TaskAcceptance(RequestRates):
    """Requests of random length, each of a task drawn from an acceptance profile (docs/model.md section 5.1).

    :param task_profile: the task mix: task rates and request frequencies
    :param mean_request_tokens: m, the mean request length, tokens (the static curve's length bias)
    :param request_length: the length distribution, "geometric" or "fixed"

    Each request of a user (:mod:`multispin_env.requests`: lengths of mean ``mean_request_tokens``, back to back
    or arriving) draws a task, hence the user's rate, when it starts. The population's rate is not used: each
    user's rate is the current task's. :meth:`mean_rate` is the request-weighted mean rate of the profile; the
    share of rounds in each task is length-biased (:class:`RequestRates`).
    """

    name = "tasks"
    parameters = ("task_profile", "mean_request_tokens", "request_length")
    evolves = True

    def __init__(
        self,
        num_envs: int,
        num_users: int,
        max_draft: int,
        *,
        task_profile: AcceptanceProfile,
        mean_request_tokens: float,
        request_length: str,
    ) -> None:
        super().__init__(
            num_envs, num_users, max_draft, mean_request_tokens=mean_request_tokens, request_length=request_length
        )
        self.profile = task_profile
        self.task_rates = task_profile.rate_array()
        self._task_cdf = np.cumsum(task_profile.probabilities())
        #: Index into ``profile.tasks`` of each user's current task.
        self.task: NDArray[np.intp] = np.zeros((num_envs, num_users), dtype=np.intp)

    @property
    def per_request(self) -> bool:
        return True

    def start_requests(self, where: BoolArray, rng: np.random.Generator) -> None:
        count = int(np.count_nonzero(where))
        task = np.searchsorted(self._task_cdf, rng.random(count), side="right")
        task = np.minimum(task, self.task_rates.size - 1)  # guards a cumulative sum that ends just below 1
        self.task[where] = task
        self.set_rates(where, self.task_rates[task])

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        """The base rates only: the tasks are drawn when the users' requests start."""
        sel = slice(None) if rows is None else rows
        self.base_rate[sel] = base_rate[sel]

    def request_rate_law(self, base_rate: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The task mix: task rates a_j with request frequencies p_j, the same for every user."""
        shape = (*np.shape(base_rate), self.task_rates.size)
        return (
            np.broadcast_to(self.task_rates, shape).copy(),
            np.broadcast_to(self.profile.probabilities(), shape).copy(),
        )


#: When the mixture process draws a new rate: every round, or with every new request.
MIXTURE_SCOPES = ("round", "request")


@register_acceptance_process
class MixtureAcceptance(AcceptanceProcess):
    """Rates of varying difficulty: each user's rate is drawn from Beta(kappa a_k, kappa (1 - a_k)) around the
    population's a_k, anew every round or with every request (docs/model.md section 5.1).

    Its settings (keywords, as :data:`parameters` names them): ``mixture_concentration`` kappa = alpha + beta of
    the Beta distribution (> 0; large kappa is i.i.d.); ``mixture_scope`` "round" (a new rate every round) or
    "request" (one rate per request, :mod:`multispin_env.requests`); ``mean_request_tokens`` m, the mean request
    length, tokens, and ``request_length``, "geometric" or "fixed" (scope "request": the static curve's length bias).

    Within a round the rate r holds for every position, so the round's curve is r^i; averaged over the Beta
    it is E[r^i] = prod_{j<i} (kappa a + j) / (kappa + j): the unconditional acceptance falls along the draft
    more slowly than a^i, i.e. the conditional rate rises, as measured (docs/model.md section 5.1).

    Constructing it gives the process of the scope: :class:`RoundMixture` (the rounds' curve is E[r^i], what static
    and adaptive policies plan with) or :class:`RequestMixture` (the rounds are length-biased, :class:`RequestRates`).
    """

    name = "mixture"
    parameters = ("mixture_concentration", "mixture_scope", "mean_request_tokens", "request_length")
    evolves = True
    #: kappa of the Beta law
    concentration: float
    #: "round" or "request"
    scope: str

    def __new__(cls, *args: Any, **settings: Any) -> MixtureAcceptance:
        if cls is MixtureAcceptance:
            scope = settings.get("mixture_scope")
            if scope not in MIXTURE_SCOPES:
                raise ValueError(f"mixture_scope must be one of {list(MIXTURE_SCOPES)}, got {scope!r}")
            cls = RequestMixture if scope == "request" else RoundMixture
        return super().__new__(cls)

    def _draw(self, where: BoolArray, rng: np.random.Generator) -> None:
        mean = self.base_rate[where]
        # kappa a underflows to 0 for a rate a near 0 (numpy rejects Beta(0, b)); the smallest normal float in its
        # place draws the same limit, a rate of 0. kappa (1 - a) cannot underflow: kappa >= 1e-6 and 1 - a >= 1e-16.
        rate = rng.beta(
            np.maximum(self.concentration * mean, np.finfo(np.float64).tiny), self.concentration * (1.0 - mean)
        )
        self.set_rates(where, np.clip(rate, 1e-12, 1.0 - 1e-12))  # a Beta draw can round to 0 or 1

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        """a_k, the Beta law's mean: per round (scope "round") or per request (scope "request")."""
        return AcceptanceProcess.mean_rate(self, base_rate)

    def rate_law(self, base_rate: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Beta(kappa a_k, kappa (1 - a_k)) for users of population rate ``base_rate`` (..., K) as quadrature nodes
        and weights, each (..., K, L_max + 40) (:func:`beta_quadrature`, exact for polynomials of degree
        < 2 (L_max + 40), so for every r^i the curves use)."""
        base = np.asarray(base_rate, dtype=np.float64)
        nodes = self.max_draft + 40
        rates = np.empty((*base.shape, nodes))
        weights = np.empty((*base.shape, nodes))
        values, inverse = np.unique(base, return_inverse=True)
        for index, value in enumerate(values):
            where = inverse.reshape(base.shape) == index
            rates[where], weights[where] = beta_quadrature(float(value), self.concentration, nodes)
        return rates, weights


class RoundMixture(MixtureAcceptance):
    """:class:`MixtureAcceptance` of scope "round": a new rate every round, so every round's curve is E[r^i]."""

    def __init__(
        self,
        num_envs: int,
        num_users: int,
        max_draft: int,
        *,
        mixture_concentration: float,
        mixture_scope: str = "round",
        mean_request_tokens: float | None = None,
        request_length: str | None = None,
    ) -> None:
        # The request settings shape only the per-request scope's curves: unused here.
        super().__init__(num_envs, num_users, max_draft)
        self.concentration = float(mixture_concentration)
        self.scope = "round"

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        """The base rates and a rate for the first round."""
        sel = slice(None) if rows is None else rows
        self.base_rate[sel] = base_rate[sel]
        self._draw(self._user_mask(rows), rng)

    def advance(self, tokens: FloatArray, rng: np.random.Generator) -> None:
        self._draw(np.ones(self.rate.shape, dtype=bool), rng)

    def survival_from_rate(self, rate: FloatArray) -> FloatArray:
        """E[r^i] = prod_{j<i} (kappa a + j) / (kappa + j) for Beta rates of mean ``rate`` (..., K)."""
        mean = np.asarray(rate, dtype=np.float64)[..., None]
        steps = np.arange(self.max_draft, dtype=np.float64)
        ratios: FloatArray = (self.concentration * mean + steps) / (self.concentration + steps)
        return ratios.cumprod(axis=-1)


class RequestMixture(MixtureAcceptance, RequestRates):
    """:class:`MixtureAcceptance` of scope "request": one rate per request, held for all its rounds. Static policies
    plan with the long-run curve of eq. (5.1e), adaptive ones with a_hat^i (the estimate follows the current
    request's rate, which holds for every round of it)."""

    def __init__(
        self,
        num_envs: int,
        num_users: int,
        max_draft: int,
        *,
        mixture_concentration: float,
        mixture_scope: str = "request",
        mean_request_tokens: float,
        request_length: str,
    ) -> None:
        super().__init__(
            num_envs, num_users, max_draft, mean_request_tokens=mean_request_tokens, request_length=request_length
        )
        self.concentration = float(mixture_concentration)
        self.scope = "request"

    @property
    def per_request(self) -> bool:
        return True

    def start_requests(self, where: BoolArray, rng: np.random.Generator) -> None:
        self._draw(where, rng)

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        """The base rates only: the rates come with the requests."""
        sel = slice(None) if rows is None else rows
        self.base_rate[sel] = base_rate[sel]

    def request_rate_law(self, base_rate: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The Beta law of a request's rate (:meth:`MixtureAcceptance.rate_law`)."""
        return self.rate_law(base_rate)


@register_acceptance_process
class TraceAcceptance(AcceptanceProcess):
    """Replay of a recorded acceptance trace (docs/model.md section 5.1, docs/traces.md).

    :param trace_path: the trace file (JSON lines, :mod:`multispin_env.traces`); None: the shipped example
        (tiny random models, for smoke tests only)

    Each user serves requests drawn uniformly from the trace's requests, independently of the other users and
    of its earlier requests. Every round plays the next recorded round of the user's request: the round's
    table is H(i) = 0 for i <= A_max and +inf beyond, so the accepted prefix is min(A_max, L_k) for every draw.
    Once its recorded rounds are used up the request ends and the next round starts a new one. With request
    arrivals (``arrival_rate``) every arriving request starts on a freshly drawn recorded request, idle users
    consume no recorded round, and a request that outlasts its recording continues on another one. A round
    consumes one recorded round whatever L_k and whether the upload was dropped (open-loop replay: a draft
    shorter than A_max would have moved the real context differently).

    A_max is clipped to the env's L_max (exact: no draft is longer); a trace recorded with a smaller L_max
    than the env's raises a ValueError (a longer draft's outcome is unknown). The population's rates are not
    used. ``rate`` is the current request's per-token rate (:func:`~multispin_env.traces.token_rate` at
    L_max); :meth:`mean_survival` is the trace's pooled curve P(A_max >= i), the same for every user.
    """

    name = "trace"
    parameters = ("trace_path",)
    evolves = True

    def __init__(self, num_envs: int, num_users: int, max_draft: int, *, trace_path: str | None = None) -> None:
        trace = load_trace(trace_path)
        if trace.max_draft < max_draft:
            raise ValueError(
                f"trace_path: the trace was recorded with drafts of up to {trace.max_draft} tokens, "
                f"fewer than the env's max_draft {max_draft}: record with a larger max draft or set "
                f"max_draft <= {trace.max_draft}"
            )
        self.trace: AcceptanceTrace = trace
        self._accepted = np.minimum(trace.accepted, max_draft).astype(np.float64)
        self._starts = trace.request_starts
        self._request_rates = np.array([token_rate(trace.request(r), max_draft) for r in range(trace.num_requests)])
        shape = (num_envs, num_users)
        #: Index of each user's current request in the trace.
        self.request: NDArray[np.intp] = np.zeros(shape, dtype=np.intp)
        #: Index of the round about to be played within that request.
        self.round: NDArray[np.intp] = np.zeros(shape, dtype=np.intp)
        super().__init__(num_envs, num_users, max_draft)
        self._apply(None)

    @property
    def accepted_max(self) -> FloatArray:
        """A_max (clipped to L_max) of each user's round about to be played, tokens (num_envs, K)."""
        return self._accepted[self._starts[self.request] + self.round]

    def _new_requests(self, where: BoolArray, rng: np.random.Generator) -> None:
        self.request[where] = rng.integers(self.trace.num_requests, size=int(np.count_nonzero(where)))
        self.round[where] = 0

    def _apply(self, where: BoolArray | None) -> None:
        sel = slice(None) if where is None else where
        self.rate[sel] = self._request_rates[self.request[sel]]
        reached = self.positions <= self.accepted_max[sel][..., None]
        self.cumulative_hazard[sel] = np.where(reached, 0.0, np.inf)

    def reset(self, rows: BoolArray | None, base_rate: FloatArray, rng: np.random.Generator) -> None:
        sel = slice(None) if rows is None else rows
        self.base_rate[sel] = base_rate[sel]
        where = self._user_mask(rows)
        self._new_requests(where, rng)
        self._apply(where)

    def start_requests(self, where: BoolArray, rng: np.random.Generator) -> None:
        """With request arrivals (section 5.8): a user's new request replays a freshly drawn recorded request."""
        self._new_requests(where, rng)
        self._apply(where)

    def advance(self, tokens: FloatArray, rng: np.random.Generator) -> None:
        self.round += np.asarray(tokens) > 0.0  # an idle user (arrivals: n_k = 0) plays no recorded round
        done = self._starts[self.request] + self.round >= self._starts[self.request + 1]
        if done.any():
            self._new_requests(done, rng)
        self._apply(None)

    def mean_rate(self, base_rate: FloatArray) -> FloatArray:
        """The per-token rate of the whole trace (:func:`~multispin_env.traces.token_rate` at L_max)."""
        return np.full(np.shape(base_rate), token_rate(self.trace.accepted, self.max_draft))

    def mean_survival(self, base_rate: FloatArray) -> FloatArray:
        """The trace's curve P(A_max >= i) over all recorded rounds pooled: a user drawing requests uniformly
        spends a share of its rounds in each request proportional to the request's rounds (renewal-reward), so
        the long-run per-round distribution is the pooled one, for every user alike."""
        curve = self.trace.survival(self.max_draft)
        return np.broadcast_to(curve, (*np.shape(base_rate), self.max_draft)).copy()


def make_acceptance_process(config: EnvConfig, num_envs: int) -> AcceptanceProcess:
    """The process ``config.acceptance_process`` for ``num_envs`` systems of ``config``'s scenario, with its
    parameters (the config fields it names in ``parameters``; validated by the config)."""
    name = config.acceptance_process
    if name not in ACCEPTANCE_PROCESSES:
        raise ValueError(f"acceptance_process must be one of {sorted(ACCEPTANCE_PROCESSES)}, got {name!r}")
    cls = ACCEPTANCE_PROCESSES[name]
    kwargs: dict[str, Any] = {key: getattr(config, key) for key in cls.parameters}
    return cls(num_envs, config.scenario.num_users, config.scenario.max_draft, **kwargs)
