"""Training-side wrappers: VecHorizonTermination, VecStochasticRounding, VecRateReward and VecTaskReward (rl-zoo3
``vec_env_wrapper`` key) and the search-time EpisodeGoodputReward.

Why :class:`VecHorizonTermination`: the MultiSpin envs reward the tokens of
each round and truncate the episode when the simulated clock passes
``horizon``. SB3 bootstraps the value at a truncation, which turns the problem
into an infinite-horizon discounted sum of tokens *per round*: that objective
prefers long rounds (long drafts) and ignores how long a round takes -- it is
not goodput (tokens per second). The observation carries ``time_left``, so the
end of the episode at the horizon is part of the state: treating it as a real
termination (no bootstrap) makes the undiscounted return the number of tokens
generated within ``horizon`` seconds, i.e. ``horizon`` x goodput, and with
gamma close to 1 the critic learns V ~ goodput x time left, so the advantage of
a round is about its tokens minus goodput x its latency. The last round, which
ends after the horizon, is pro-rated (its reward times the share of its latency
that falls before the horizon), so a long final round earns no free tokens.

Why :class:`VecStochasticRounding`: the env rounds each continuous length entry to the nearest integer
(L = rint(x), docs/model.md section 8.1). Once the policy's noise is small, a small move of the mean
length changes nothing the env plays, so the policy gradient of the length vanishes and training
can stall between two integers (one of four PPO seeds stuck at 89.6% of the oracle on
i.i.d. acceptance). Rounding stochastically during training, floor(x) + Bernoulli(x - floor(x)),
makes the expected played length equal to x, so the return is piecewise linear in x and its
gradient does not vanish. Evaluation keeps the env's deterministic rounding.

Evaluation is unaffected: goodput is always measured from ``info`` of an
unwrapped env (:mod:`agents.evaluation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from multispin_env._checks import flag_setting


class VecHorizonTermination(VecEnvWrapper):
    """The end of the simulated horizon as a termination (no value bootstrap), last round pro-rated.

    :param venv: SB3 VecEnv of MultiSpin envs (their infos carry ``clock`` and ``latency``, in s)
    :param horizon: simulated seconds per episode (default: read from the envs' ``config``)
    """

    def __init__(self, venv: VecEnv, horizon: float | None = None) -> None:
        super().__init__(venv)
        if horizon is None:
            horizon = float(venv.get_attr("config", [0])[0].horizon)
        self.horizon = float(horizon)

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for i in np.flatnonzero(dones):
            info = infos[i]
            if not info.get("TimeLimit.truncated", False):
                continue
            info["TimeLimit.truncated"] = False  # SB3 then treats the step as terminal
            if "clock" in info:
                rewards[i] = rewards[i] * pro_rata(info, self.horizon)
        return obs, rewards, dones, infos


def pro_rata(info: Any, horizon: float) -> float:
    """The share of a round's latency that falls before the horizon, in [0, 1] (1 if the info has no latency).

    :param info: a MultiSpin step info with the round's ``latency`` and the ``clock`` at its end (s)
    :param horizon: simulated seconds per episode
    """
    latency = float(info.get("latency", 0.0))
    if latency <= 0.0:
        return 1.0
    start = float(info["clock"]) - latency
    return min(max((horizon - start) / latency, 0.0), 1.0)


class EpisodeGoodputReward(gym.Wrapper):
    """Reward 0 during the episode and the episode's goodput (tokens / final clock, tokens/s) at its last step.

    Why: rl-zoo3's hyperparameter search ranks trials by mean episode return; on this env that return
    is then the mean episode goodput, the quantity the analytic policies optimise. Evaluation only.
    The episode's end is reported as a termination, so :class:`VecHorizonTermination` (which rl-zoo3
    also wraps around eval envs, to keep their VecNormalize aligned) leaves that reward whole.

    :param env: a MultiSpin env (its infos carry ``tokens`` and ``clock``, s)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._tokens = 0.0

    def reset(self, **kwargs: Any) -> Any:
        self._tokens = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, _, terminated, truncated, info = self.env.step(action)
        self._tokens += float(np.sum(info["tokens"]))
        ended = terminated or truncated
        reward = self._tokens / float(info["clock"]) if ended and info["clock"] > 0 else 0.0
        return obs, reward, ended, False, info


def length_entries(venv: VecEnv) -> tuple[int, int]:
    """(number of length entries at the start of the action, L_max in tokens) of a VecEnv of MultiSpin envs:
    the action is lengths then one share per user (docs/model.md section 8.1)."""
    num_users = int(venv.get_attr("num_users", [0])[0])
    max_draft = int(venv.get_attr("max_draft", [0])[0])
    assert venv.action_space.shape is not None
    return int(venv.action_space.shape[-1]) - num_users, max_draft


def stochastic_round(x: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """floor(x) + Bernoulli(x - floor(x)) elementwise: an integer with expectation exactly ``x``."""
    low = np.floor(x)
    return low + (rng.random(np.shape(x)) < (x - low))


def round_length_entries(
    actions: NDArray[Any], length_entries: int, max_draft: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """A copy of ``actions`` (..., A) whose first ``length_entries`` entries (length entries a in [-1, 1], decoded
    to (a + 1) L_max / 2 tokens) are moved to the entry of an integer length, floor or ceil, without bias
    (:func:`stochastic_round`); the other entries pass through.

    :param actions: actions of MultiSpin envs, one per row
    :param length_entries: how many leading entries of an action are draft lengths
    :param max_draft: L_max (tokens)
    :param rng: the rounding's random stream
    """
    out = np.array(actions, dtype=np.float64, copy=True)
    half = max_draft / 2.0
    entries = np.clip(out[..., :length_entries], -1.0, 1.0)
    out[..., :length_entries] = stochastic_round((entries + 1.0) * half, rng) / half - 1.0
    return out


class VecStochasticRounding(VecEnvWrapper):
    """Rounds the continuous draft-length entries of the actions stochastically (unbiased) before the env does.

    The env decodes length entry a in [-1, 1] to rint((a + 1) L_max / 2) tokens; this wrapper replaces a by the
    entry of floor(x) or floor(x) + 1 (x = (a + 1) L_max / 2) with probabilities that make E[L] = x, so the env's
    own rounding then leaves it unchanged. Share entries pass through. Training only: evaluation plays the
    env's deterministic rounding.

    :param venv: SB3 VecEnv of MultiSpin envs
    :param seed: seed of the rounding's random stream (:meth:`seed` reseeds it from the env seed)
    """

    def __init__(self, venv: VecEnv, seed: int | None = None) -> None:
        super().__init__(venv)
        self.length_entries, self.max_draft = length_entries(venv)
        self.rng = np.random.default_rng(seed)
        #: False passes actions through (the env's deterministic rounding): evaluation envs built with the
        #: training wrappers (rl-zoo3's --optimize) turn it off.
        self.enabled = True

    def seed(self, seed: int | None = None) -> Any:
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 0x5EED])
        return self.venv.seed(seed)

    def reset(self) -> Any:
        return self.venv.reset()

    def round_actions(self, actions: NDArray[Any]) -> NDArray[np.float64]:
        """Actions (n, A) with each length entry moved to an integer length, chosen without bias."""
        return round_length_entries(actions, self.length_entries, self.max_draft, self.rng)

    def step_async(self, actions: NDArray[Any]) -> None:
        self.venv.step_async(self.round_actions(actions) if self.enabled else actions)

    def step_wait(self) -> Any:
        return self.venv.step_wait()


class VecRateReward(VecEnvWrapper):
    """Each round's reward minus the running goodput times the round's latency: r - rho T (tokens, s).

    Why: goodput is a ratio, tokens per second. Without this wrapper the only trace of a round's latency in the
    return is the rounds that no longer fit into the horizon, which the critic has to learn (V ~ goodput x time
    left, :class:`VecHorizonTermination`): a delayed, noisy signal, and seeds stalled at ~90% of the oracle on the
    static system (docs/training.md). A policy that maximises E[n - rho T] per round with rho the best goodput
    maximises goodput (Dinkelbach's method for ratio objectives; the average-reward form of a semi-Markov
    decision process, where each decision takes the time T), so with rho estimated as the policy improves every
    round's advantage prices its own latency at once.

    rho is a running estimate of the policy's goodput: exponentially weighted sums of reward and latency over all
    sub-envs and steps, rho = sum r / sum T (reward units per second), shared by the sub-envs. The objective does
    not depend on rho: a round is priced for its latency within the horizon (the part of the last round after the
    horizon is free, as :class:`VecHorizonTermination` pro-rates its tokens), so the priced latencies of an
    episode add up to its horizon and every episode's undiscounted return moves by the same rho x horizon,
    whatever the system and the policy. What changes is the credit of each round: its own latency is charged at
    once instead of through the rounds that later no longer fit. Training only: :func:`for_evaluation` turns it
    off, and the goodput evaluation reads ``info``, never the reward.

    :param venv: SB3 VecEnv of MultiSpin envs (their infos carry ``latency`` and ``clock``, s)
    :param rate_decay: weight of the newest step in the running sums, in (0, 1] (0.01: about the last 100 steps)
    :param horizon: simulated seconds per episode (default: read from the envs' ``config``)
    """

    def __init__(self, venv: VecEnv, rate_decay: float = 0.01, horizon: float | None = None) -> None:
        super().__init__(venv)
        if horizon is None:
            horizon = float(venv.get_attr("config", [0])[0].horizon)
        self.estimate = RunningRate(rate_decay, float(horizon))
        #: False passes the rewards through unchanged (evaluation envs, see :func:`for_evaluation`).
        self.enabled = True

    @property
    def rate(self) -> float:
        """The current estimate rho of the policy's goodput, reward units per second (0 before any step)."""
        return self.estimate.rate

    @property
    def priced_latency(self) -> NDArray[np.float64]:
        """The last step's priced latencies (s, per sub-env): the part of each round within the horizon."""
        return self.estimate.priced_latency

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        if not self.enabled:
            return obs, rewards, dones, infos
        return obs, self.estimate.price(rewards, infos).astype(np.float32), dones, infos


class RunningRate:
    """The rate reward's formula, r - rho T, with rho a running estimate of the policy's goodput (the reasoning
    is :class:`VecRateReward`'s; this class is shared by it and the RLlib env wrappers of :mod:`agents.rllib`).

    rho = sum r / sum T over exponentially weighted sums of the rewards and priced latencies of all the rounds
    passed to :meth:`price` (each call adds one step of any number of envs).

    :param rate_decay: weight of the newest step in the running sums, in (0, 1] (0.01: about the last 100 steps)
    :param horizon: simulated seconds per episode (s); the part of a round after it is not priced
    """

    def __init__(self, rate_decay: float, horizon: float) -> None:
        if isinstance(rate_decay, bool) or not isinstance(rate_decay, (int, float)) or not 0.0 < rate_decay <= 1.0:
            raise ValueError(f"VecRateReward rate_decay must be a number in (0, 1], got {rate_decay!r}")
        self.rate_decay = float(rate_decay)
        self.horizon = float(horizon)
        #: Running sums of reward and latency (s) per step; None before the first step.
        self.reward_sum: float | None = None
        self.latency_sum = 0.0
        #: The last step's priced latencies (s, per round): the part of each round within the horizon.
        self.priced_latency = np.zeros(0)

    @property
    def rate(self) -> float:
        """The current estimate rho of the policy's goodput, reward units per second (0 before any step)."""
        return 0.0 if self.reward_sum is None or self.latency_sum <= 0.0 else self.reward_sum / self.latency_sum

    def price(self, rewards: Any, infos: Any) -> NDArray[np.float64]:
        """``rewards`` (n,) of one step of n rounds minus rho times each round's latency within the horizon.

        :param rewards: the rounds' rewards (reward units)
        :param infos: the rounds' step infos (``latency`` and ``clock``, s)
        """
        latency = np.array([float(info.get("latency", 0.0)) for info in infos])
        clock = np.array([float(info.get("clock", 0.0)) for info in infos])
        latency = self.priced_latency = np.clip(self.horizon - (clock - latency), 0.0, latency)
        return self.price_amounts(rewards, latency)

    def price_amounts(self, rewards: Any, amounts: Any) -> NDArray[np.float64]:
        """``rewards`` (n,) minus rho times ``amounts`` (n,), after adding both to the running sums: the ratio
        sum r / sum a priced by Dinkelbach's method whatever the amount is (a round's latency for the rate reward,
        its decided requests for the deadline reward of :class:`VecTaskReward`).

        :param rewards: one step's numerators (reward units)
        :param amounts: the same step's denominators (s for the rate reward)
        """
        rewards = np.asarray(rewards, dtype=np.float64)
        latency = np.asarray(amounts, dtype=np.float64)
        reward_sum, latency_sum = float(np.sum(rewards)), float(np.sum(latency))
        if self.reward_sum is None:
            self.reward_sum, self.latency_sum = reward_sum, latency_sum
        else:
            self.reward_sum += self.rate_decay * (reward_sum - self.reward_sum)
            self.latency_sum += self.rate_decay * (latency_sum - self.latency_sum)
        return rewards - self.rate * latency


#: The fairness rewards of :class:`VecTaskReward`.
FAIRNESS_REWARDS: Mapping[str, str] = {
    "log": "the round's increase of (1/K) sum_k log max(tokens_k, 1)",
    "linear": "(1/K) sum_k n_k / x_k minus the round's latency, x_k the users' running throughputs over all "
    "sub-envs and episodes",
}

#: What a round earns under :class:`VecTaskReward`, by suite metric (``multispin_env.suite.METRICS``; the reasoning
#: is docs/training.md, "Training on the task's metric"). Every metric has one.
TASK_REWARDS: Mapping[str, str] = {
    "goodput": "the env's reward (scaled tokens) minus the running goodput times the round's latency (the rate "
    "reward of VecRateReward)",
    "completion_mean": "minus the request-seconds the round adds to the requests in the system (Little's law): "
    "(requests in the system at its start + half its arrivals) x its latency",
    "deadline_share": "the requests that met their target minus the running share met / decided times the requests "
    "decided (met or missed) in the round",
    "throughput_geomean": f"{FAIRNESS_REWARDS['linear']} (or, fairness='log', {FAIRNESS_REWARDS['log']})",
}

#: The version of each metric's training reward (:data:`TASK_REWARDS`; for ``throughput_geomean`` the default
#: ``fairness="linear"``), raised whenever what a round earns changes: a run trained on an older version is not
#: continued or kept but trained again (:func:`agents.converge.hyperparameters_fingerprint`). Version 2 of
#: ``throughput_geomean`` prices each round's latency (docs/training.md section 9): unpriced, every round earned about
#: its length, so a discount per round made fewer, longer rounds look better than the metric says.
TASK_REWARD_VERSIONS: Mapping[str, int] = {
    "goodput": 1,
    "completion_mean": 1,
    "deadline_share": 1,
    "throughput_geomean": 2,
}


def task_reward_version(metric: str, fairness: str = "linear") -> int:
    """The version of the training reward of ``metric`` (:data:`TASK_REWARD_VERSIONS`); ``fairness="log"``'s
    reward of ``throughput_geomean`` has not changed (1)."""
    if metric == "throughput_geomean" and fairness == "log":
        return 1
    return TASK_REWARD_VERSIONS[metric]


class VecTaskReward(VecRateReward):
    """The training reward of a suite task's own metric (``multispin_env.suite.METRICS``): an episode's rewards add
    up to the metric's numerator, or to the standard surrogate of it (docs/training.md, "Training on the task's
    metric"; :data:`TASK_REWARDS`), computed from the step infos the env already returns.

    - ``goodput``: exactly :class:`VecRateReward` (the rewards bit for bit);
    - ``completion_mean``: -(h + a / 2) T per round, h the requests in the system (in progress or queued) at the
      round's start, a the round's kept arrivals, T its latency (s). The arrivals of a round are uniform over it
      (docs/model.md eq. (6)) and wait at least until the next round, so (h + a / 2) T is the expected
      request-seconds the round adds given its counts, and an episode's rewards add up, in expectation, to minus
      the time its requests spend in the system: the completed ones' completion times (eq. (9)) plus the
      unfinished ones' time so far. By Little's law that is the arrivals times the mean time in the system; the
      arrivals do not depend on the controller, so minimising it minimises the mean completion time, and a
      request left waiting keeps costing (the metric alone would not count it). Every reward is negative, so the
      discount per round cuts many short rounds' late costs more than fewer, longer rounds' (docs/training.md
      section 9: priced at the running mean number in the system instead, PPO learned less).
    - ``deadline_share``: m - s (m + x) per round, m and x the requests counted met and missed in it (eq. (9d)) and
      s the running share sum m / sum (m + x) (:class:`RunningRate` on decided requests): Dinkelbach's method for
      the pooled ratio met / (met + missed), as the rate reward is for tokens per second. Missing a target costs
      s, abandoning a request is not free. :attr:`rate` is s here.
    - ``throughput_geomean`` (``fairness="linear"``, the default): (1/K) sum_k n_k / x_k - T per round (s), x_k
      user k's running throughput over all sub-envs and episodes (exponentially weighted tokens over seconds, at
      least one token per horizon), T the round's latency: an episode earns (1/K) sum_k tokens_k / x_k - t, t its
      clock, which is t times the first-order expansion at x of the metric's log, (1/K) sum_k log(tokens_k / t),
      minus its value at x (an episode at exactly the throughputs x earns 0). The price T makes a round's reward
      about 0 at the policy's own throughputs: unpriced, every round earns about its length, and the discount per
      round would make fewer, longer rounds look better. Its fixed point is the proportional-fair optimum: on a convex set of achievable throughputs, x*
      maximises sum_k log x_k exactly when no x gives sum_k x_k / x*_k more than at x* -- the running-estimate
      step the rate reward takes for goodput. The weights 1 / x_k are het-opt-pf's (eq. (7.4b)), but averaged
      over episodes rather than the episode so far, so every round of an episode has the same scale.
      ``fairness="log"``: the round's increase of (1/K) sum_k log max(tokens_k, 1), tokens_k user k's counted
      tokens of the episode so far (docs/model.md eq. (5.9a) x t): an episode's rewards add up exactly to the log
      of the users' geometric-mean token count, log(geomean throughput x episode time), but the early rounds earn
      most (a token is worth 1 / tokens_k so far); PPO learned far less with it (docs/training.md).

    The task rewards are in their own units (request-seconds, requests, seconds or nats), not scaled by ``reward_scale``
    (VecNormalize's reward normalisation makes the scale irrelevant), and not pro-rated at the horizon: the metric
    counts the last round whole. Training only: :func:`for_evaluation` turns it off.

    The formulas are :class:`TaskRewards`' (shared with the RLlib env wrapper of :mod:`agents.rllib`).

    :param venv: SB3 VecEnv of MultiSpin envs
    :param metric: ``"auto"`` (the task's metric when the envs' id is a suite task, ``multispin_env.suite.task(id)
        .metric``, else goodput) or a key of :data:`TASK_REWARDS`
    :param rate_decay: weight of the newest step in the running goodput or share, in (0, 1]
    :param horizon: simulated seconds per episode (default: read from the envs' ``config``)
    :param price_goodput: on goodput, True prices the rounds' latencies (:class:`VecRateReward`), False passes the
        env's reward through unchanged (to train on the env's own reward)
    :param fairness: the throughput_geomean reward, a key of :data:`FAIRNESS_REWARDS`
    """

    def __init__(
        self,
        venv: VecEnv,
        metric: str = "auto",
        rate_decay: float = 0.01,
        horizon: float | None = None,
        price_goodput: bool = True,
        fairness: str = "linear",
    ) -> None:
        super().__init__(venv, rate_decay=rate_decay, horizon=horizon)
        #: The rewards' formulas and running state; its :class:`RunningRate` is this wrapper's :attr:`estimate`.
        self.rewards = TaskRewards(task_metric(venv, metric), venv.num_envs, self.estimate, price_goodput, fairness)

    @property
    def metric(self) -> str:
        """The metric the rewards are for (a key of :data:`TASK_REWARDS`)."""
        return self.rewards.metric

    @property
    def price_goodput(self) -> bool:
        """On goodput: True prices the rounds' latencies, False passes the env's reward through."""
        return self.rewards.price_goodput

    @property
    def fairness(self) -> str:
        """The throughput_geomean reward, a key of :data:`FAIRNESS_REWARDS`."""
        return self.rewards.fairness

    @property
    def user_rates(self) -> NDArray[np.float64]:
        """The running throughputs x_k of the users over all sub-envs (tokens/s; :attr:`TaskRewards.user_rates`)."""
        return self.rewards.user_rates

    def reset(self) -> Any:
        self.rewards.new_episodes()
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        if not self.enabled:
            return obs, rewards, dones, infos
        return obs, self.rewards(rewards, infos, np.asarray(dones, dtype=bool)).astype(np.float32), dones, infos


class TaskRewards:
    """The formulas of :class:`VecTaskReward` for one step of n envs, with their running state: what the SB3 wrapper
    and the RLlib env wrapper (:mod:`agents.rllib`, n = 1) both call.

    :param metric: a key of :data:`TASK_REWARDS` (resolved: :func:`task_metric`)
    :param num_envs: envs per step, n
    :param estimate: the running goodput or deadline share, by metric (:class:`RunningRate`; its horizon is the
        episode's, s)
    :param price_goodput: on goodput, True prices the rounds' latencies (the rate reward), False passes the env's
        reward through unchanged
    :param fairness: the throughput_geomean reward, a key of :data:`FAIRNESS_REWARDS`
    """

    def __init__(
        self, metric: str, num_envs: int, estimate: RunningRate, price_goodput: bool = True, fairness: str = "linear"
    ) -> None:
        if metric not in TASK_REWARDS:
            raise ValueError(f"TaskRewards metric must be one of {list(TASK_REWARDS)}, got {metric!r}")
        self.metric = metric
        self.estimate = estimate
        self.price_goodput = flag_setting("VecTaskReward price_goodput", price_goodput)
        if not isinstance(fairness, str) or fairness not in FAIRNESS_REWARDS:
            raise ValueError(f"VecTaskReward fairness must be one of {list(FAIRNESS_REWARDS)}, got {fairness!r}")
        self.fairness = fairness
        #: Exponentially weighted sums of each user's tokens and of the rounds' latencies (s) over all envs, for
        #: the linearised fairness reward (None before the first step).
        self.user_token_sum: NDArray[np.float64] | None = None
        self.time_sum = 0.0
        #: Requests in the system (in progress or queued) at the start of each env's next round.
        self.in_system = np.zeros(num_envs)
        #: Each env's counted tokens of the episode so far, per user (None before the first step).
        self.episode_tokens: NDArray[np.float64] | None = None

    def new_episodes(self) -> None:
        """Every env starts a new episode (an env reset): no request in the system, no token counted."""
        self.in_system = np.zeros_like(self.in_system)  # every episode starts with no request (docs/model.md 5.8)
        self.episode_tokens = None

    def __call__(self, rewards: Any, infos: Any, dones: NDArray[np.bool_]) -> NDArray[np.float64]:
        """The step's training rewards (n,), in the metric's units (:data:`TASK_REWARDS`).

        :param rewards: the env's rewards (n,)
        :param infos: the step infos (n,)
        :param dones: which envs' episodes ended with this step (their state restarts)
        """
        if self.metric == "goodput":
            return self.estimate.price(rewards, infos) if self.price_goodput else np.asarray(rewards, np.float64)
        if self.metric == "completion_mean":
            return self.completion_rewards(infos, dones)
        if self.metric == "deadline_share":
            met = np.array([float(np.sum(info["deadline_met"])) for info in infos])
            missed = np.array([float(np.sum(info["deadline_missed"])) for info in infos])
            return self.estimate.price_amounts(met, met + missed)
        return self.fairness_rewards(infos, dones)

    def completion_rewards(self, infos: Any, dones: NDArray[np.bool_]) -> NDArray[np.float64]:
        """-(h + a / 2) T of one step (request-seconds, per env); updates :attr:`in_system`."""
        latency = np.array([float(info["latency"]) for info in infos])
        after = np.array([float(np.sum(info["active"]) + np.sum(info["queued"])) for info in infos])
        completed = np.array([float(np.sum(info["completed"])) for info in infos])
        # Requests leave only at round ends and a round's arrivals wait for the next one (docs/model.md 5.8), so
        # the kept arrivals are what the count gained beyond the completions.
        arrivals = after - self.in_system + completed
        rewards = -(self.in_system + 0.5 * arrivals) * latency
        self.in_system = np.where(dones, 0.0, after)
        return rewards

    def fairness_rewards(self, infos: Any, dones: NDArray[np.bool_]) -> NDArray[np.float64]:
        """The fairness reward of one step per sub-env: :meth:`linear_fairness_rewards` or (``fairness="log"``) the
        step's increase of (1/K) sum_k log max(tokens_k, 1) (nats), updating :attr:`episode_tokens`."""
        tokens = np.array([np.asarray(info["tokens"], dtype=np.float64) for info in infos])
        if self.fairness == "linear":
            return self.linear_fairness_rewards(tokens, infos)
        if self.episode_tokens is None:
            self.episode_tokens = np.zeros_like(tokens)
        before = np.log(np.maximum(self.episode_tokens, 1.0)).mean(axis=1)
        self.episode_tokens += tokens
        rewards = np.log(np.maximum(self.episode_tokens, 1.0)).mean(axis=1) - before
        self.episode_tokens[dones] = 0.0
        return rewards

    @property
    def user_rates(self) -> NDArray[np.float64]:
        """The running throughputs x_k of the users over all envs (tokens/s; at least one token per horizon)."""
        if self.user_token_sum is None or self.time_sum <= 0.0:
            return np.zeros(0)
        return np.maximum(self.user_token_sum / self.time_sum, 1.0 / self.estimate.horizon)

    def linear_fairness_rewards(self, tokens: NDArray[np.float64], infos: Any) -> NDArray[np.float64]:
        """(1/K) sum_k n_k / x_k - T per sub-env (s), x_k the running throughputs (:attr:`user_rates`) after adding
        the step, whose rounds' tokens (n, K) and infos (``latency`` T, s) are given."""
        latency = np.array([float(info["latency"]) for info in infos])
        step_tokens, step_time = tokens.sum(axis=0), float(latency.sum())
        if self.user_token_sum is None:
            self.user_token_sum, self.time_sum = step_tokens, step_time
        else:
            decay = self.estimate.rate_decay
            self.user_token_sum = self.user_token_sum + decay * (step_tokens - self.user_token_sum)
            self.time_sum += decay * (step_time - self.time_sum)
        return np.asarray((tokens / self.user_rates).mean(axis=1) - latency, dtype=np.float64)


def check_metric_name(metric: str, what: str = "VecTaskReward metric") -> str:
    """``metric`` itself if it is ``"auto"`` or a key of :data:`TASK_REWARDS` (= ``multispin_env.suite.METRICS``),
    else ValueError naming ``what``."""
    if not isinstance(metric, str) or (metric != "auto" and metric not in TASK_REWARDS):
        raise ValueError(f"{what} must be 'auto' or one of {list(TASK_REWARDS)}, got {metric!r}")
    return metric


def task_metric_of_id(env_id: str | None, metric: str = "auto") -> str:
    """``metric`` itself (a key of :data:`TASK_REWARDS`), or for ``"auto"`` the metric of the suite task ``env_id``
    (goodput for any other id or None); ValueError for an unknown name."""
    from multispin_env import suite

    if check_metric_name(metric) != "auto":
        return metric
    return suite.TASK_SPECS[env_id].metric if env_id in suite.TASK_SPECS else "goodput"


def task_metric(venv: VecEnv | gym.Env, metric: str = "auto", what: str = "VecTaskReward metric") -> str:
    """The metric of a suite task on ``venv`` (an SB3 VecEnv or a single env): ``metric`` itself (a key of
    :data:`TASK_REWARDS`), or for ``"auto"`` the metric of the envs' suite task (goodput for any other id). What
    :class:`VecTaskReward` pays and what the evaluation callback picks its best model by. ValueError (naming
    ``what``) for an unknown name, or for a metric the envs cannot report (no arrivals, no deadlines)."""
    if check_metric_name(metric, what) == "auto":
        try:
            spec = venv.get_attr("spec", [0])[0] if isinstance(venv, VecEnv) else venv.spec
        except AttributeError:
            spec = None
        metric = task_metric_of_id(getattr(spec, "id", None))
    config = venv.get_attr("config", [0])[0] if isinstance(venv, VecEnv) else venv.get_wrapper_attr("config")
    if metric in ("completion_mean", "deadline_share") and config.arrival_rate is None:
        raise ValueError(f"{what} {metric!r} needs request arrivals (arrival_rate), the env has none")
    if metric == "deadline_share" and config.request_deadline_per_token is None:
        raise ValueError(
            f"{what} 'deadline_share' needs request deadlines (request_deadline_per_token), the env has none"
        )
    return metric


#: The wrappers that only shape training (turned off by :func:`for_evaluation`).
TRAINING_ONLY = (VecStochasticRounding, VecRateReward)


def for_evaluation(venv: VecEnv) -> VecEnv:
    """Turn off every training-only wrapper (:data:`TRAINING_ONLY`: stochastic rounding, rate reward) in a VecEnv
    wrapper stack, so that it is played and rewarded as evaluated; returns ``venv``."""
    layer: Any = venv
    while layer is not None:
        if isinstance(layer, TRAINING_ONLY):
            layer.enabled = False
        layer = getattr(layer, "venv", None)
    return venv
