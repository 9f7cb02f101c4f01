"""``het-opt-predictive``: P-het planned with the channel's conditional distribution given stale or noisy CSI.

The observation shows a channel estimate that is ``csi_delay`` rounds old and carries CN(0, s^2) noise
(docs/model.md section 5.2); het-opt-adaptive plans as if it were the channel of the round. This policy knows
the channel model's parameters (Doppler f_D, the CSI delay and noise, each user's large-scale SNR, as the
static level knows the mean channel) and plans with the distribution of the round's channel given the
estimate (docs/model.md section 7.2):

- the lag correlation r over the rounds since the observed channel, eq. (5.2b), from the round latencies the
  observation's ``time_left`` shows;
- the MMSE prediction of h and its error (the fading model's ``predict``, eq. (5.2b)), hence the Rician law
  of |h|^2 that M channel draws sample;
- candidates (the constructor chooses which): the P-het solution for the observed channel (het-opt-adaptive's
  plan), for the MMSE channel power, for quantiles of the drawn powers and for some single draws; the candidate
  with the best sample-average goodput, eq. (10), over the M draws is played (the deadline of eq. (1') applied per
  draw). A single candidate is played without scoring.

The candidates' channels are built here for all sub-envs of a vector env at once, and one compiled call
(:func:`baselines._solver_kernels.predictive_packed`) solves P-het for every candidate of every sub-env and scores
them on the draws; a single env is the same code with N = 1. With request arrivals (docs/model.md section 5.8) each
sub-env plans for the users its observation shows active (idle users: L_k = 0, no band), as het-opt-adaptive.

Acceptance: the running estimate of the observation, as het-opt-adaptive. Without uncertainty (no delay, no
noise) the policy plays het-opt-adaptive's allocation; with ``fading=False`` it plans with the true (mean)
channel, whatever the estimate's noise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv
from numpy.typing import NDArray

from baselines.information import active_users, adaptive_params, observation_starts_episode
from baselines.protocol import episode_starts
from baselines.rate_posterior import RatePosterior, check_posterior
from baselines.solvers import Allocation, BatchResult, PackedSystems, raise_for_status
from multispin_env._checks import flag_setting, integer_setting, is_real, short_repr
from multispin_env.channel import snr_linear

__all__ = ["ACCEPTANCE_PLANS", "PredictivePolicy", "sample_fading_power"]

#: What het-opt-predictive's acceptance curves can come from (its ``acceptance`` argument).
ACCEPTANCE_PLANS = ("estimate", "posterior")

FloatArray = NDArray[np.float64]


def sample_fading_power(mean: FloatArray, variance: FloatArray | float, normals: FloatArray) -> FloatArray:
    """Draws of |h_k|^2 = |mu_k + sigma w|^2, w ~ CN(0, 1), eq. (5.2b) (the phase of mu is irrelevant: w is
    circularly symmetric); ``normals`` (2, ..., M, K) standard normals give (..., M, K) draws for |mu_k| ``mean``
    and sigma^2 ``variance`` broadcasting against them (e.g. (N, 1, K) and (N, 1, 1) for N systems)."""
    scale = np.sqrt(np.asarray(variance, dtype=np.float64) / 2.0)
    return (mean + scale * normals[0]) ** 2 + (scale * normals[1]) ** 2


def _quantiles(value: Any) -> tuple[float, ...]:
    """The ``quantiles`` setting as a tuple of distinct levels in (0, 1), in the order given; ValueError otherwise."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise ValueError(f"quantiles must be a tuple of distinct numbers in (0, 1), got {short_repr(value)}")
    if not all(is_real(q) and 0.0 < float(q) < 1.0 for q in value) or len(set(value)) != len(value):
        raise ValueError(f"quantiles must be a tuple of distinct numbers in (0, 1), got {short_repr(value)}")
    return tuple(float(q) for q in value)


def _seeded(rng: np.random.Generator | None) -> np.random.Generator:
    """A sub-env's episode generator, seeded when its episode started (before it is planned for)."""
    if rng is None:
        raise RuntimeError("a sub-env was planned for before its episode generator was seeded")
    return rng


class PredictivePolicy:
    """het-opt-predictive (module docstring), SB3-like ``predict``, bound to a heterogeneous MultiSpin env.

    :param env: a single env (possibly wrapped) or a vector env of N sub-envs (one state each)
    :param draws: M, channel draws of the sample average, eq. (10)
    :param quantiles: levels in (0, 1), distinct: per-user quantiles of the drawn |h|^2 planned with as candidates
    :param draw_candidates: how many of the draws (0..``draws``) are planned with as candidates
    :param seed: seed of the draws; each episode's generator is seeded from it and the episode's first
        observation, so an episode's draws do not depend on the episodes played before (nor on the other sub-envs)
    :param name: the policy's name in reports
    :param observed: whether the observed channel (het-opt-adaptive's plan) is a candidate
    :param mmse: whether the MMSE channel power E|h|^2 is a candidate
    :param acceptance: the acceptance curves planned with: ``estimate``, a_hat's (as het-opt-adaptive), or
        ``posterior``, the rate posterior of het-opt-posterior (docs/model.md section 7.5)

    With uncertain CSI each sub-env solves P-het once per candidate and round (:attr:`candidates` solves, at least
    one); the candidates are tried in the order observed, MMSE, quantiles, draws (ties go to the earlier). With
    perfect CSI the observed channel is the round's and is planned with alone, whatever the set.
    """

    def __init__(
        self,
        env: Any,
        draws: int = 64,
        quantiles: tuple[float, ...] = (0.1,),
        draw_candidates: int = 0,
        seed: int = 0,
        name: str = "het-opt-predictive",
        observed: bool = False,
        mmse: bool = False,
        acceptance: str = "estimate",
    ) -> None:
        unwrapped = getattr(env, "unwrapped", env)
        if unwrapped.config.homogeneous:
            raise ValueError(f"{name} needs per-user draft lengths (MultiSpin-Heterogeneous-v0)")
        if acceptance not in ACCEPTANCE_PLANS:
            raise ValueError(f"acceptance must be one of {list(ACCEPTANCE_PLANS)}, got {acceptance!r}")
        #: The acceptance curves it plans with: None for a_hat's (as het-opt-adaptive), else the rate posterior of
        #: het-opt-posterior (docs/model.md section 7.5).
        self.rates: RatePosterior | None = None
        if acceptance == "posterior":
            check_posterior(unwrapped, name)
            self.rates = RatePosterior(env)
        self.draws = integer_setting("draws", draws, 1)
        self.draw_candidates = integer_setting("draw_candidates", draw_candidates, 0, self.draws)
        self.quantiles = _quantiles(quantiles)
        self.observed = flag_setting("observed", observed)
        self.mmse = flag_setting("mmse", mmse)
        #: Candidates planned for per sub-env and round with uncertain CSI (section 7.2): P-het solves.
        self.candidates = int(self.observed) + int(self.mmse) + len(self.quantiles) + self.draw_candidates
        if self.candidates == 0:
            raise ValueError(
                "no candidates: keep observed or mmse, or give quantiles or draw_candidates > 0 (section 7.2)"
            )
        self.env = env
        self.name = name
        self.seed = int(seed)
        core = unwrapped.core
        if core.fading.line_of_sight != 0.0:  # docs/model.md 7.2: the law given |h_hat| needs zero-mean fading
            raise ValueError(
                f"{name} plans for zero-mean fading: the observation shows |h_hat| only, not its phase against the "
                f"line-of-sight part of fading={unwrapped.config.fading!r}"
            )
        self._core = core
        self._unwrapped = unwrapped
        self.num_envs: int | None = unwrapped.num_envs if isinstance(unwrapped, VectorEnv) else None
        config = unwrapped.config
        self._delay = int(config.csi_delay)
        self._noise_std = float(config.csi_noise_std)
        self._horizon = float(config.horizon)
        n = self.num_envs or 1
        # Latencies of the last max(delay, 1) rounds played per sub-env, s, oldest first (the newest in the last
        # column), and how many of them the episode has played.
        self._history = np.zeros((n, max(self._delay, 1)))
        self._played = np.zeros(n, dtype=np.int64)
        self._clock = np.zeros(n)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self.last_allocation: Allocation | None = None

    def reset(self) -> None:
        """Forget every sub-env's history (the next observation starts an episode)."""
        self._rngs = [None] * len(self._rngs)
        if self.rates is not None:
            self.rates.reset()

    def latency_history(self, index: int) -> FloatArray:
        """The latencies (s) of sub-env ``index``'s rounds the policy remembers, oldest first (at most
        max(csi_delay, 1), the ones of its episode)."""
        return self._history[
            index, self._history.shape[1] - min(int(self._played[index]), self._history.shape[1]) :
        ].copy()

    # ------------------------------------------------------------------ state
    def _observe(self, obs: FloatArray, starts: NDArray[np.bool_]) -> None:
        """Update every sub-env's latency history from its new observation (rows of ``obs``)."""
        clock = self._horizon * (1.0 - self._unwrapped.time_left_from_observation(obs))
        # The observation shows an episode start even when the caller's episode_start flag is missing (e.g. a
        # vector env's NEXT_STEP reset step).
        new = starts | np.array([rng is None for rng in self._rngs]) | observation_starts_episode(self._unwrapped, obs)
        if self.rates is not None:
            self.rates.observe(obs, new)
        going = ~new
        self._history[going] = np.roll(self._history[going], -1, axis=1)
        self._history[going, -1] = np.maximum(clock[going] - self._clock[going], 0.0)
        self._played[going] += 1
        self._played[new] = 0
        for i in np.flatnonzero(new):
            words = np.frombuffer(np.asarray(obs[i], dtype=np.float32).tobytes(), dtype=np.uint32)
            self._rngs[i] = np.random.default_rng([self.seed, *words.tolist()])
        self._clock = clock

    # ------------------------------------------------------------------ planning
    def _candidates(
        self, obs: FloatArray, observed_upload: FloatArray
    ) -> tuple[FloatArray, NDArray[np.int64], FloatArray]:
        """The candidate channels of every sub-env and the channel draws they are scored on: c_k of candidate j
        (N, C, K) (a sub-env uses its first ``count`` candidates; with perfect CSI candidate 0 alone, the observed
        channel), count (N,), and c_k of draw m (N, M, K) (s/token; M = 1, unread, for a single candidate)."""
        core = self._core
        n, k = observed_upload.shape
        if not core.fading.evolves:  # the channel is the population's mean channel, whatever the estimate shows
            return core.mean_upload_time[:, None], np.ones(n, dtype=np.int64), np.ones((n, 1, k))
        lag = np.minimum(self._played, self._delay)  # the history holds the last max(delay, 1) rounds
        # The lag's intervals, padded in front with 0 s intervals (correlation J0(0) = 1 exactly).
        intervals = np.where(
            np.arange(self._delay) >= self._delay - lag[:, None],
            self._history[:, -self._delay :] if self._delay else self._history[:, :0],
            0.0,
        )
        snr = snr_linear(core.snr_db)
        # |h_hat|^2 from the observed e_hat = log2(1 + SNR |h_hat|^2) (section 5.2); the floor gives ~0.
        observed = np.expm1(self._unwrapped.spectral_efficiency_from_observation(obs) * math.log(2.0)) / snr
        # The fading model's conditional law of h given |h_hat| (eq. (5.2b); the phase is irrelevant, see
        # sample_fading_power): |mu_k| and the error variance, the same for every user.
        mu, error = core.fading.predict(np.sqrt(np.maximum(observed, 0.0)), intervals[:, None, :], self._noise_std)
        mean, variance = np.abs(mu), np.maximum(error.max(axis=1, initial=0.0), 0.0)
        uncertain = variance > 0.0  # perfect CSI: the observed channel is the round's, planned with alone
        count = np.where(uncertain, self.candidates, 1)
        upload = np.empty((n, int(count.max()), k))
        upload[:, 0] = observed_upload
        # One candidate is played without scoring (predictive_packed): its draws serve its quantile only.
        draws = np.ones((n, self.draws if self.candidates > 1 else 1, k))
        some = np.flatnonzero(uncertain)
        if some.size:
            normals = np.empty((some.size, 2, self.draws, k))
            for row, i in enumerate(some):
                _seeded(self._rngs[i]).standard_normal((2, self.draws, k), out=normals[row])
            power = sample_fading_power(mean[some, None, :], variance[some, None, None], np.moveaxis(normals, 1, 0))
            snr_db = core.snr_db[some, None, :]
            if self.candidates > 1:
                draws[some] = core.scenario.upload_time(snr_db, power)
            planning = [
                *([(mean[some] ** 2 + variance[some, None])[:, None]] if self.mmse else []),
                *([np.moveaxis(np.quantile(power, self.quantiles, axis=1), 0, 1)] if self.quantiles else []),
                power[:, : self.draw_candidates],
            ]
            upload[some, int(self.observed) :] = core.scenario.upload_time(snr_db, np.concatenate(planning, axis=1))
        return upload, count, draws

    def _plan(self, obs: FloatArray) -> tuple[NDArray[np.int64], FloatArray]:
        """Lengths and shares (N, K) for the sub-envs' observations ``obs`` (N, size), their state updated."""
        unwrapped = self._unwrapped
        estimate = unwrapped.acceptance_from_observation(obs)
        draft_time = unwrapped.draft_time_from_observation(obs)
        observed_upload = unwrapped.upload_time_from_observation(obs)
        upload, count, draws = self._candidates(obs, observed_upload)
        n, k = estimate.shape
        active = active_users(unwrapped, obs)
        active = np.ones((n, k), dtype=bool) if active is None else active
        busy = np.flatnonzero(active.any(axis=1))  # nobody active: nobody drafts
        lengths, shares = np.zeros((n, k), dtype=np.int64), np.zeros((n, k))
        self.last_allocation = None
        if busy.size == 0:
            return lengths, shares
        template = adaptive_params(unwrapped, obs[busy[0]])
        mask = active[busy]
        packed = PackedSystems.uniform(
            template,
            draft_time[busy],
            observed_upload[busy],
            self._core.process.survival_from_rate(estimate[busy])
            if self.rates is None
            else self.rates.survival()[busy],
            mask,
        )
        m = len(busy)
        result = BatchResult(
            np.zeros(packed.draft_time.size, dtype=np.int64),
            np.zeros(packed.draft_time.size),
            np.zeros(m),
            np.zeros(m),
            np.zeros(m),
            np.zeros(m, dtype=np.int64),
        )
        from baselines import _solver_kernels as kernels  # compiled lazily: importing baselines stays cheap

        kernels.predictive_packed(
            packed.user_start,
            packed.draft_time,
            packed.token_table,
            packed.max_draft,
            packed.profile_start,
            packed.profile_tokens,
            packed.profile_seconds,
            packed.downlink_time,
            packed.deadline,
            count[busy],
            np.ascontiguousarray(upload[busy].transpose(1, 0, 2)[:, mask]),
            np.ascontiguousarray(draws[busy].transpose(1, 0, 2)[:, mask]),
            result.draft_lengths,
            result.bandwidth,
            result.goodput,
            result.sync_time,
            result.latency,
            result.status,
        )
        for row in np.flatnonzero(result.status):  # a round beyond the float64 range: name the settings
            i = busy[row]
            users = slice(packed.user_start[row], packed.user_start[row + 1])
            params = adaptive_params(unwrapped, obs[i])
            raise_for_status(
                params,
                int(result.status[row]),
                result.draft_lengths[users],
                float(result.sync_time[row]),
                float(result.latency[row]),
            )
        rows, cols = np.nonzero(mask)
        lengths[busy[rows], cols] = result.draft_lengths
        shares[busy[rows], cols] = result.bandwidth
        last = len(busy) - 1
        self.last_allocation = Allocation(
            lengths[busy[last]],
            shares[busy[last]],
            float(result.goodput[last]),
            float(result.sync_time[last]),
            float(result.latency[last]),
        )
        return lengths, shares

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[NDArray[np.float32], Any]:
        """Action(s) for the observation(s), SB3 style (``state`` is passed through); ``episode_start`` (one
        flag per observation) marks new episodes."""
        obs = np.asarray(observation, dtype=np.float64)
        size = self._core.observation_size
        n = self.num_envs
        expected = (size,) if n is None else (n, size)
        if obs.shape != expected:
            raise ValueError(
                f"{self.name}: expected observations of shape {expected} (one per sub-env; a history "
                f"is kept per sub-env), got {obs.shape}"
            )
        rows = obs.reshape(-1, size)
        starts = episode_starts(episode_start, len(rows), self.name)
        self._observe(rows, starts)
        lengths, shares = self._plan(rows)
        actions = self._unwrapped.encode_action(lengths, shares)
        return (actions[0] if n is None else actions), state
