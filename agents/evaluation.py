"""The one evaluation loop: run a policy on a MultiSpin env for given seeds and measure goodput.

Any :class:`baselines.protocol.Policy` (SB3's ``predict`` and a ``reset`` per
episode) can be evaluated: an analytic policy of :mod:`baselines.policies`, or an SB3 model
through :class:`AgentPolicy` (which applies the agent's VecNormalize
observation statistics). "Equal terms": the same env config and the same
seeds, ``env.reset(seed=seeds[i])`` for episode i.

Per-episode metrics (all computed from ``info``, never from the scaled reward):

- goodput (tokens/s) = sum over rounds and users of ``info["tokens"]`` / final ``info["clock"]``;
- mean draft length (tokens) = mean over rounds and users of the applied L_k;
- bandwidth concentration = mean over rounds of the Herfindahl index sum_k s_k^2
  of the applied bandwidth shares renormalised to s_k = b_k / sum_j b_j
  (1/K: equal split, 1: one user gets the whole band; rounds in which no
  user uploads are skipped).

With request arrivals (docs/model.md section 5.8; ``info["completed"]`` present) also:

- the completion time of every request completed in the episode (s; pooled over episodes: mean and 95th
  percentile);
- Jain's fairness index of the users' token rates x_k = tokens_k / clock, (sum x_k)^2 / (K sum x_k^2)
  (1: equal rates, 1/K: one user gets everything).

With request deadlines (docs/model.md eq. (9d); ``info["deadline_met"]`` present) also the requests that met and
missed their completion-time target, and the share met / (met + missed) pooled over episodes.

Every episode also has the users' geometric-mean throughput exp((1/K) sum_k log x_k), x_k = max(tokens_k, 1) /
clock (tokens/s): proportional fairness's objective sum_k log x_k on the scale of a throughput (the suite's
Fairness metric, docs/suite.md); a user without a token counts as one, so the logarithm stays finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from baselines.protocol import Policy


class AgentPolicy:
    """An SB3 model as a :class:`Policy` on raw (unnormalised) observations of a single env.

    :param model: the trained SB3 model
    :param vec_normalize: the VecNormalize whose observation statistics the model was trained with
        (live: the statistics are read at every call, so a training-time callback sees updates), or None
    :param name: the policy's name in reports
    """

    def __init__(self, model: BaseAlgorithm, vec_normalize: VecNormalize | None = None, name: str = "agent") -> None:
        self.model = model
        self.vec_normalize = vec_normalize
        self.name = name

    def reset(self) -> None:
        """Nothing to forget: a recurrent policy's state travels through ``predict``'s ``state`` argument."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[Any, Any]:
        obs: NDArray[Any] | dict[str, NDArray[Any]] = np.asarray(observation, dtype=np.float32)
        if self.vec_normalize is not None:
            obs = self.vec_normalize.normalize_obs(obs)
        return self.model.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)


@dataclass
class EpisodeMetrics:
    """One evaluation episode.

    :param seed: ``env.reset`` seed
    :param goodput: tokens/s (all users)
    :param tokens: tokens generated (all users)
    :param clock: simulated duration of the episode (s)
    :param rounds: rounds played
    :param mean_draft_length: mean applied L_k over rounds and users (tokens)
    :param bandwidth_hhi: mean Herfindahl index of the bandwidth shares (1/K..1)
    :param episode_return: sum of rewards (scaled tokens)
    :param completion_times: with arrivals, the completion time (s) of every request completed in the episode;
        None without arrivals
    :param fairness: Jain's index of the users' token rates (1/K..1)
    :param deadline_met: with request deadlines, the requests that met their target (eq. (9d)); None without
    :param deadline_missed: with request deadlines, the requests that missed it (undecided ones at the episode's
        end count in neither); None without
    :param throughput_geomean: the users' geometric-mean throughput exp((1/K) sum_k log(max(tokens_k, 1) /
        clock)), tokens/s
    """

    seed: int
    goodput: float
    tokens: float
    clock: float
    rounds: int
    mean_draft_length: float
    bandwidth_hhi: float
    episode_return: float
    completion_times: list[float] | None = None
    fairness: float = math.nan
    deadline_met: int | None = None
    deadline_missed: int | None = None
    throughput_geomean: float = math.nan


def t_critical(n: int, confidence: float = 0.95) -> float:
    """Two-sided Student-t critical value for a mean of ``n`` samples (inf for n < 2)."""
    if n < 2:
        return math.inf
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def mean_ci(values: Sequence[float] | NDArray[Any], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its ``confidence`` t-interval (0 half-width for constant values, nan for n < 2)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan
    half = t_critical(x.size, confidence) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, half


@dataclass
class EvaluationResult:
    """All episodes of one policy, with summary statistics."""

    name: str
    episodes: list[EpisodeMetrics] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [e.seed for e in self.episodes]

    @property
    def goodputs(self) -> NDArray[np.float64]:
        """Per-episode goodput (tokens/s), in seed order."""
        return np.array([e.goodput for e in self.episodes], dtype=np.float64)

    def goodput_ci(self, confidence: float = 0.95) -> tuple[float, float]:
        """Mean goodput (tokens/s) and the half-width of its t-interval."""
        return mean_ci(self.goodputs, confidence)

    @property
    def mean_draft_length(self) -> float:
        return float(np.mean([e.mean_draft_length for e in self.episodes]))

    @property
    def bandwidth_hhi(self) -> float:
        vals = [e.bandwidth_hhi for e in self.episodes if not math.isnan(e.bandwidth_hhi)]
        return float(np.mean(vals)) if vals else math.nan

    @property
    def arrivals(self) -> bool:
        """Whether the episodes had request arrivals (completion times measured)."""
        return any(e.completion_times is not None for e in self.episodes)

    @property
    def completion_times(self) -> NDArray[np.float64]:
        """Completion times (s) of every request completed in any episode."""
        return np.array([t for e in self.episodes for t in (e.completion_times or [])], dtype=np.float64)

    def completion_summary(self) -> dict[str, float]:
        """Requests completed, mean and 95th percentile of their completion time (s, pooled over episodes) and
        the mean Jain fairness index; nan without arrivals or completions."""
        times = self.completion_times
        done = times.size > 0
        return {
            "requests_completed": float(times.size) if self.arrivals else math.nan,
            "completion_mean": float(times.mean()) if done else math.nan,
            "completion_p95": float(np.percentile(times, 95)) if done else math.nan,
            "fairness": float(np.mean([e.fairness for e in self.episodes])) if self.arrivals else math.nan,
        }

    @property
    def deadlines(self) -> bool:
        """Whether the episodes had request deadlines (met and missed requests counted)."""
        return any(e.deadline_met is not None for e in self.episodes)

    def deadline_summary(self) -> dict[str, float]:
        """Requests that met and missed their target (eq. (9d)) over all episodes and the share met / (met +
        missed); nan without deadlines or with no decided request."""
        met = float(sum(e.deadline_met or 0 for e in self.episodes))
        missed = float(sum(e.deadline_missed or 0 for e in self.episodes))
        if not self.deadlines:
            return {"deadline_met": math.nan, "deadline_missed": math.nan, "deadline_share": math.nan}
        share = met / (met + missed) if met + missed > 0 else math.nan
        return {"deadline_met": met, "deadline_missed": missed, "deadline_share": share}

    def as_dict(self) -> dict[str, Any]:
        mean, half = self.goodput_ci()
        summary = self.completion_summary() if self.arrivals else {}
        if self.deadlines:
            summary.update(self.deadline_summary())
        return {
            "policy": self.name,
            "goodput_mean": mean,
            "goodput_ci95": half,
            "mean_draft_length": self.mean_draft_length,
            "bandwidth_hhi": self.bandwidth_hhi,
            **summary,
            "episodes": [asdict(e) for e in self.episodes],
        }


def applied_allocation(
    env: gym.Env, action: Any, info: dict[str, Any]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The draft lengths (tokens) and bandwidth shares the env applied in the last step.

    Read from ``info["draft_lengths"]`` / ``info["bandwidth"]`` when the env reports them,
    else decoded from the action with ``env.unwrapped.decode_action``.
    """
    if "draft_lengths" in info and "bandwidth" in info:
        return np.asarray(info["draft_lengths"], dtype=np.float64), np.asarray(info["bandwidth"], dtype=np.float64)
    lengths, shares = env.unwrapped.decode_action(action)  # type: ignore[attr-defined]
    return np.asarray(lengths, dtype=np.float64), np.asarray(shares, dtype=np.float64)


def herfindahl(shares: NDArray[np.float64]) -> float:
    """sum_k s_k^2 of the shares renormalised to sum 1 (nan if no share is positive)."""
    total = float(np.sum(shares))
    if total <= 0:
        return math.nan
    s = shares / total
    return float(np.sum(s * s))


def jain_fairness(rates: NDArray[np.float64]) -> float:
    """Jain's index (sum x_k)^2 / (K sum x_k^2) of non-negative rates (1 if all are 0)."""
    x = np.asarray(rates, dtype=np.float64)
    squares = float(np.sum(x * x))
    return float(np.sum(x)) ** 2 / (x.size * squares) if squares > 0 else 1.0


def play_episode(
    env: gym.Env, policy: Policy, seed: int, deterministic: bool = True, max_steps: int = 1_000_000
) -> Iterator[tuple[Any, float, dict[str, Any]]]:
    """Play one episode of ``policy`` on ``env`` from ``env.reset(seed=seed)``: yields each round's (action, reward,
    info), the policy's recurrent state carried between rounds, until the episode ends (or ``max_steps`` rounds)."""
    obs, _ = env.reset(seed=int(seed))
    policy.reset()
    episode_start = np.ones((1,), dtype=bool)
    state = None
    for _ in range(max_steps):
        action, state = policy.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        episode_start = np.zeros((1,), dtype=bool)
        obs, reward, terminated, truncated, info = env.step(action)
        yield action, float(reward), info
        if terminated or truncated:
            return


def run_episode(
    env: gym.Env, policy: Policy, seed: int, deterministic: bool = True, max_steps: int = 1_000_000
) -> EpisodeMetrics:
    """Play one episode of ``policy`` on ``env`` from ``env.reset(seed=seed)`` (:func:`play_episode`) and measure it."""
    tokens = 0.0
    ret = 0.0
    clock = 0.0
    rounds = 0
    length_sum = 0.0
    length_count = 0
    hhi_sum = 0.0
    hhi_count = 0
    user_tokens: float | NDArray[np.float64] = 0.0  # summed per user (K,) once the first round is played
    completion_times: list[float] | None = None  # with arrivals (a round's info has "completed"): a list
    deadlines = False  # request deadlines: a round's info has "deadline_met"
    met = missed = 0
    for action, reward, info in play_episode(env, policy, seed, deterministic, max_steps):
        ret += reward
        tokens += float(np.sum(info["tokens"]))
        user_tokens = user_tokens + np.asarray(info["tokens"], dtype=np.float64)
        if "completed" in info:
            completion_times = [] if completion_times is None else completion_times
            completion_times += np.asarray(info["completion_time"])[np.asarray(info["completed"])].tolist()
        deadlines = "deadline_met" in info
        if deadlines:
            met += int(np.sum(info["deadline_met"]))
            missed += int(np.sum(info["deadline_missed"]))
        clock = float(info["clock"])
        rounds += 1
        lengths, shares = applied_allocation(env, action, info)
        length_sum += float(lengths.sum())
        length_count += lengths.size
        hhi = herfindahl(shares)
        if not math.isnan(hhi):
            hhi_sum += hhi
            hhi_count += 1
    return EpisodeMetrics(
        seed=int(seed),
        goodput=tokens / clock if clock > 0 else 0.0,
        tokens=tokens,
        clock=clock,
        rounds=rounds,
        mean_draft_length=length_sum / max(length_count, 1),
        bandwidth_hhi=hhi_sum / hhi_count if hhi_count else math.nan,
        episode_return=ret,
        completion_times=completion_times,
        fairness=jain_fairness(np.asarray(user_tokens) / clock)
        if completion_times is not None and clock > 0
        else math.nan,
        deadline_met=met if deadlines else None,
        deadline_missed=missed if deadlines else None,
        throughput_geomean=geometric_mean_throughput(np.asarray(user_tokens, dtype=np.float64), clock),
    )


def geometric_mean_throughput(user_tokens: NDArray[np.float64], clock: float) -> float:
    """exp((1/K) sum_k log x_k), x_k = max(tokens_k, 1) / clock: the users' geometric-mean throughput, tokens/s
    (nan before any round)."""
    if clock <= 0 or np.ndim(user_tokens) == 0:
        return math.nan
    return float(np.exp(np.mean(np.log(np.maximum(user_tokens, 1.0) / clock))))


def evaluate(
    env: gym.Env, policy: Policy, seeds: Sequence[int], name: str = "policy", deterministic: bool = True
) -> EvaluationResult:
    """Run ``policy`` for one episode per seed on ``env``; episodes are independent of evaluation order."""
    return EvaluationResult(name=name, episodes=[run_episode(env, policy, s, deterministic) for s in seeds])


def evaluation_seeds(seed: int, n_episodes: int) -> list[int]:
    """The benchmark's seeds: ``seed, seed + 1, ..., seed + n_episodes - 1``."""
    return [int(seed) + i for i in range(int(n_episodes))]


def evaluate_analytic(
    env: gym.Env, seeds: Sequence[int], names: Sequence[str] | None = None
) -> dict[str, EvaluationResult]:
    """Every analytic policy valid for ``env`` (or ``names``) on ``seeds``; name -> result."""
    from baselines.policies import make_policy, policies_for

    chosen = tuple(names) if names is not None else policies_for(env)
    return {name: evaluate(env, make_policy(name, env), seeds, name=name) for name in chosen}


def oracle_name(names: Sequence[str]) -> str | None:
    """The reference policy for ratios: ``het-opt-oracle`` if present, else ``hom-opt-oracle``."""
    for candidate in ("het-opt-oracle", "hom-opt-oracle"):
        if candidate in names:
            return candidate
    return None


def suite_metric(result: EvaluationResult, name: str) -> float:
    """The suite metric ``name`` (:data:`multispin_env.suite.METRICS`) of an evaluation on a task's seeds: the mean
    episode goodput (tokens/s), the mean completion time of the completed requests (s), the share of the decided
    requests that met their completion-time target or the mean geometric-mean user throughput (tokens/s)."""
    from multispin_env import suite

    if name == "goodput":
        return float(result.goodputs.mean())
    if name == "completion_mean":
        return result.completion_summary()["completion_mean"]
    if name == "deadline_share":
        return result.deadline_summary()["deadline_share"]
    if name == "throughput_geomean":
        return float(np.mean([e.throughput_geomean for e in result.episodes]))
    raise ValueError(f"metric must be one of {sorted(suite.METRICS)}, got {name!r}")
