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
- candidates: the P-het solution (:func:`baselines.solvers.solve_heterogeneous`) for the observed channel
  (het-opt-adaptive's plan), for the MMSE channel power, for quantiles of the drawn powers and for some single
  draws; the candidate with the best sample-average goodput, eq. (10), over the M draws is played (the deadline
  of eq. (1') applied per draw, :func:`multispin_env.model.allocation_outcome`).

Acceptance: the running estimate of the observation, as het-opt-adaptive. Without uncertainty (no delay, no
noise) the policy plays het-opt-adaptive's allocation; with ``fading=False`` it plans with the true (mean)
channel, whatever the estimate's noise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv
from numpy.typing import NDArray

from baselines.information import adaptive_params, observation_starts_episode
from baselines.solvers import Allocation, solve_heterogeneous
from multispin_env.channel import snr_linear
from multispin_env.model import RoundParams, allocation_outcome

__all__ = ["PredictivePolicy", "sample_fading_power"]

FloatArray = NDArray[np.float64]


def sample_fading_power(mean: FloatArray, variance: float, normals: FloatArray) -> FloatArray:
    """Draws of |h_k|^2 = |mu_k + sigma w|^2, w ~ CN(0, 1), eq. (5.2b) (the phase of mu is irrelevant: w is
    circularly symmetric); ``normals`` (2, M, K) standard normals give (M, K) draws."""
    scale = math.sqrt(variance / 2.0)
    return (mean + scale * normals[0]) ** 2 + (scale * normals[1]) ** 2


class PredictivePolicy:
    """het-opt-predictive (module docstring), SB3-like ``predict``, bound to a heterogeneous MultiSpin env.

    :param env: a single env (possibly wrapped) or a vector env of N sub-envs (one state each)
    :param draws: M, channel draws of the sample average, eq. (10)
    :param quantiles: per-user quantiles of the drawn |h|^2 planned with as candidates
    :param draw_candidates: how many of the draws are planned with as candidates
    :param seed: seed of the draws; each episode's generator is seeded from it and the episode's first
        observation, so an episode's draws do not depend on the episodes played before
    :param name: the policy's name in reports
    """

    def __init__(self, env: Any, draws: int = 64, quantiles: tuple[float, ...] = (0.1, 0.25, 0.5),
                 draw_candidates: int = 4, seed: int = 0, name: str = "het-opt-predictive") -> None:
        unwrapped = getattr(env, "unwrapped", env)
        if unwrapped.config.homogeneous:
            raise ValueError(f"{name} needs per-user draft lengths (MultiSpin-Heterogeneous-v0)")
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
        if isinstance(draw_candidates, bool) or not isinstance(draw_candidates, int) or not 0 <= draw_candidates <= draws:
            raise ValueError(f"draw_candidates must be an integer in 0..draws ({draws}), got {draw_candidates!r}")
        if not all(0.0 < q < 1.0 for q in quantiles):
            raise ValueError(f"quantiles must lie in (0, 1), got {quantiles!r}")
        self.env = env
        self.name = name
        self.draws = draws
        self.quantiles = tuple(float(q) for q in quantiles)
        self.draw_candidates = draw_candidates
        self.seed = int(seed)
        core = unwrapped.core
        self._core = core
        self._unwrapped = unwrapped
        self.num_envs: int | None = unwrapped.num_envs if isinstance(unwrapped, VectorEnv) else None
        config = unwrapped.config
        self._delay = int(config.csi_delay)
        self._noise_std = float(config.csi_noise_std)
        self._horizon = float(config.horizon)
        n = self.num_envs or 1
        self._latencies: list[list[float]] = [[] for _ in range(n)]  # latencies of the rounds played, s
        self._clock = np.zeros(n)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self.last_allocation: Allocation | None = None

    def reset(self) -> None:
        """Forget every sub-env's history (the next observation starts an episode)."""
        self._rngs = [None] * len(self._rngs)

    # ------------------------------------------------------------------ state
    def _observe(self, index: int, obs: FloatArray, start: bool) -> None:
        """Update sub-env ``index``'s round count and latency history from its new observation."""
        clock = self._horizon * (1.0 - float(self._unwrapped.time_left_from_observation(obs)))
        # The observation shows an episode start even when the caller's episode_start flag is missing (e.g. a
        # vector env's NEXT_STEP reset step).
        if start or self._rngs[index] is None or observation_starts_episode(self._unwrapped, obs):
            words = np.frombuffer(np.asarray(obs, dtype=np.float32).tobytes(), dtype=np.uint32)
            self._rngs[index] = np.random.default_rng([self.seed, *words.tolist()])
            self._latencies[index] = []
        else:
            self._latencies[index].append(max(clock - self._clock[index], 0.0))
            self._latencies[index] = self._latencies[index][-max(self._delay, 1):]
        self._clock[index] = clock

    # ------------------------------------------------------------------ planning
    def plan(self, index: int, obs: FloatArray) -> Allocation:
        """The allocation for sub-env ``index`` with observation ``obs`` (its state already updated)."""
        adaptive = adaptive_params(self.env, obs)
        core = self._core
        if not core.fading.evolves:  # the channel is the population's mean channel, whatever the estimate shows
            return solve_heterogeneous(dataclasses.replace(adaptive, upload_time=core.mean_upload_time[index]))
        lag = min(len(self._latencies[index]), self._delay)  # the history holds the last max(delay, 1)
        intervals = np.array(self._latencies[index][-lag:] if lag else [])
        snr = snr_linear(core.snr_db[index])
        # |h_hat|^2 from the observed e_hat = log2(1 + SNR |h_hat|^2) (section 5.2); the floor gives ~0.
        observed = np.expm1(self._unwrapped.spectral_efficiency_from_observation(obs) * math.log(2.0)) / snr
        # The fading model's conditional law of h given |h_hat| (eq. (5.2b); the phase is irrelevant, see
        # sample_fading_power): |mu_k| and the error variance, the same for every user.
        mu, error = core.fading.predict(np.sqrt(np.maximum(observed, 0.0)), intervals, self._noise_std)
        mean, variance = np.abs(mu), float(max(error.max(initial=0.0), 0.0))
        adaptive_plan = solve_heterogeneous(adaptive)
        if variance <= 0.0:  # perfect CSI: the observed channel is the round's
            return adaptive_plan
        rng = self._rngs[index]
        assert rng is not None
        power = sample_fading_power(mean, variance, rng.standard_normal((2, self.draws, snr.size)))
        upload = core.scenario.upload_time(core.snr_db[index], power)
        planning = [mean * mean + variance, *np.quantile(power, self.quantiles, axis=0), *power[:self.draw_candidates]]
        plans = [adaptive_plan]
        for fading_power in planning:
            c = core.scenario.upload_time(core.snr_db[index], fading_power)
            plans.append(solve_heterogeneous(dataclasses.replace(adaptive, upload_time=c)))
        return best_on_draws(adaptive, plans, upload)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[NDArray[np.float32], Any]:
        """Action(s) for the observation(s), SB3 style (``state`` is passed through); ``episode_start`` (one
        flag per observation) marks new episodes."""
        obs = np.asarray(observation, dtype=np.float64)
        size = self._core.observation_size
        n = self.num_envs
        expected = (size,) if n is None else (n, size)
        if obs.shape != expected:
            raise ValueError(f"{self.name}: expected observations of shape {expected} (one per sub-env; a history "
                             f"is kept per sub-env), got {obs.shape}")
        rows = obs.reshape(-1, size)
        starts = np.zeros(len(rows), bool) if episode_start is None else np.asarray(episode_start, bool)
        starts = np.broadcast_to(starts.reshape(-1) if starts.size == len(rows) else np.any(starts), (len(rows),))
        actions = []
        for i, row in enumerate(rows):
            self._observe(i, row, bool(starts[i]))
            allocation = self.plan(i, row)
            self.last_allocation = allocation
            actions.append(self._unwrapped.encode_action(allocation.draft_lengths, allocation.bandwidth))
        return (actions[0] if n is None else np.stack(actions)), state


def best_on_draws(params: RoundParams, plans: list[Allocation], upload_time: FloatArray) -> Allocation:
    """The plan with the best sample-average goodput, eq. (10): sum_m E[tokens]_m / sum_m T_m over the channel
    draws ``upload_time`` (M, K) (c_k in s/token), with the deadline applied per draw; ties go to the first."""
    lengths = np.stack([p.draft_lengths for p in plans])
    shares = np.stack([p.bandwidth for p in plans])
    tokens, latency = allocation_outcome(params, lengths, shares, upload_time[:, None, :])
    score = tokens.mean(axis=0) / latency.mean(axis=0)
    return plans[int(np.argmax(score))]
