"""``bandit-ucb``: per-user draft lengths learned online by UCB, knowing none of the model's parameters.

In the spirit of BanditSpec (ICML 2025) and UCB-SpecStop (arXiv 2606.20591): each user k runs a UCB index
over the arms L in 0..L_max (docs/model.md section 7.3). What it reads, from the observation only:

- the outcome of the last round: the applied lengths L_k and tokens n_k (``last_draft_lengths``,
  ``last_tokens``) and its latency (the drop of ``time_left``, in units of the horizon);
- for the shares: the nominal draft times t_k and the observed channel as upload times c_k = D / (W e_hat_k)
  (the observation's channel entry decoded by the env's ``upload_time_from_observation``: D and W are the
  link's protocol constants, not statistics of the system).

It never reads acceptance rates or their estimate, the verification profile, the deadline, the Doppler or the
CSI model. Reward of a round, credited to every user's played arm: the round's goodput sum_j n_j / T (tokens
per unit of time), the quantity whose long-run ratio is eq. (5); a user's own n_k / T would ignore that its
longer draft delays every other user's round (every user shares T), and the users would over-draft. Shares:
the equal-finish shares of the chosen lengths (section 3, :func:`multispin_env.model.optimal_bandwidth`)
with the observed channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv
from numpy.typing import NDArray

from baselines.information import observation_starts_episode
from baselines.protocol import episode_starts
from baselines.solvers import Allocation
from multispin_env.model import optimal_bandwidth

__all__ = ["CONTEXTS", "BanditPolicy", "UCBLengths"]

#: Channel contexts of a user's arms: its observed upload time per token c_hat_k is at most, or more than,
#: :data:`FADE_RATIO` times its median over the episode's rounds so far (a deep fade, as far as the estimate
#: shows).
CONTEXTS: tuple[str, ...] = ("usual", "fade")
FADE_RATIO = 2.0

FloatArray = NDArray[np.float64]


class UCBLengths:
    """Unimodal UCB over draft lengths 0..L_max for K users of one system, per channel context (one episode's
    statistics; docs/model.md section 7.3).

    Arms of user k in context j (:data:`CONTEXTS`): the lengths L. Index after t rounds:
    mean_kjL + c r_bar sqrt(ln t / N_kjL), with r_bar the mean reward so far (the rewards are positive rates
    in units the bandit does not know, so the confidence width is relative to them) and c = ``exploration``.
    An arm is trusted after ``min_pulls`` pulls (one unlucky round of a long draft would otherwise bury it).
    Goodput is close to unimodal in a user's length (section 3), so a user only tries the leader (its best
    trusted mean) and the leader's two neighbours, untrusted ones first (the idea of unimodal bandits, e.g.
    OSUB); every user starts at L = 0, so a long draft of a slow device is only tried when the shorter ones
    pay. One user explores per round, in turn; the others play their leaders, so that the change of the
    shared reward is that user's doing (users exploring together move in lockstep).

    :param num_users: K
    :param max_draft: L_max (arms 0..L_max)
    :param exploration: c, the confidence width relative to the mean reward
    :param rng: the tie-breaking generator
    :param min_pulls: pulls before an arm's mean is trusted
    """

    def __init__(
        self, num_users: int, max_draft: int, exploration: float, rng: np.random.Generator, min_pulls: int = 3
    ) -> None:
        arms = max_draft + 1
        self.counts = np.zeros((num_users, len(CONTEXTS), arms))
        self.sums = np.zeros((num_users, len(CONTEXTS), arms))
        self.exploration = exploration
        self.min_pulls = min_pulls
        self.rounds = 0
        self._reward_sum = np.zeros(num_users)
        self._rank = np.argsort(np.argsort(rng.random((num_users, arms)), axis=1), axis=1)  # random tie-break
        #: First arm (the leader before any arm is trusted): L = 0, server-side decoding, costs nothing to try.
        self.start = 0

    def update(self, played: NDArray[np.int64], context: NDArray[np.int64], reward: FloatArray) -> None:
        """Credit ``reward`` (K,) to every user's played arm ``played`` (K,) in its ``context`` (K,)."""
        users = np.arange(played.size)
        self.counts[users, context, played] += 1.0
        self.sums[users, context, played] += reward
        self.rounds += 1
        self._reward_sum += reward

    def choose(self, context: NDArray[np.int64]) -> NDArray[np.int64]:
        """The arm (draft length) of every user for the next round, each in its ``context`` (K,)."""
        users = np.arange(context.size)
        counts, sums = self.counts[users, context], self.sums[users, context]
        tried = counts >= self.min_pulls
        means = np.where(tried, sums / np.maximum(counts, 1.0), -np.inf)
        leader = np.where(tried.any(axis=1), self._argmax(means), self.start)
        choice = leader.copy()
        explorer = self.rounds % context.size
        arms = np.arange(counts.shape[1])
        near = np.abs(arms - leader[explorer]) <= 1
        n = max(self.rounds, 1)
        scale = self._reward_sum[explorer] / n or 1.0  # the mean reward: the bonus is relative to it
        bonus = self.exploration * scale * np.sqrt(math.log(max(n, 2)) / np.maximum(counts[explorer], 1.0))
        index = np.where(tried[explorer], means[explorer] + bonus, np.inf)  # an untried neighbour first
        choice[explorer] = self._argmax(np.where(near, index, -np.inf)[None, :], explorer)[0]
        return choice

    def _argmax(self, values: FloatArray, user: int | None = None) -> NDArray[np.int64]:
        """Per row (user), the arm of the largest value; ties break by the random rank."""
        rank = self._rank if user is None else self._rank[user : user + 1]
        best = values.max(axis=1, keepdims=True)
        return np.argmin(np.where(values >= best, rank, np.iinfo(np.int64).max), axis=1)


@dataclass
class _Episode:
    """One sub-env's episode as the bandit sees it."""

    learner: UCBLengths
    time_left: float  # of the last observation, fraction of the horizon
    uploads: list[FloatArray] = field(default_factory=list)  # observed c_hat_k of every round, s/token
    context: NDArray[np.int64] | None = None  # the users' contexts of the round being played


class BanditPolicy:
    """bandit-ucb (module docstring), SB3-like ``predict``, bound to a heterogeneous MultiSpin env.

    :param env: a single env (possibly wrapped) or a vector env of N sub-envs (one learner each)
    :param exploration: c of :class:`UCBLengths`
    :param seed: each episode's generator is seeded from it and the episode's first observation (episodes do
        not depend on the ones played before)
    :param name: the policy's name in reports
    """

    def __init__(self, env: Any, exploration: float = 0.2, seed: int = 0, name: str = "bandit-ucb") -> None:
        unwrapped = getattr(env, "unwrapped", env)
        if unwrapped.config.homogeneous:
            raise ValueError(f"{name} needs per-user draft lengths (MultiSpin-Heterogeneous-v0)")
        if not (isinstance(exploration, (int, float)) and math.isfinite(exploration) and exploration >= 0.0):
            raise ValueError(f"exploration must be a finite number >= 0, got {exploration!r}")
        self.name = name
        self.exploration = float(exploration)
        self.seed = int(seed)
        # What the policy uses of the env: the observation's layout and decoding, and the action's encoding.
        self._api = unwrapped
        self._num_users = int(unwrapped.num_users)
        self._max_draft = int(unwrapped.max_draft)
        self._size = int(unwrapped.observation_space.shape[-1])
        self.num_envs: int | None = unwrapped.num_envs if isinstance(unwrapped, VectorEnv) else None
        self.episodes: list[_Episode | None] = [None] * (self.num_envs or 1)
        #: The last allocation played (goodput and latency nan: the bandit has no model; sync_time: the
        #: equal-finish time over the observed channel, s).
        self.last_allocation: Allocation | None = None

    def reset(self) -> None:
        """Forget every sub-env's statistics (the next observation starts an episode)."""
        self.episodes = [None] * len(self.episodes)

    def _observe(self, index: int, obs: FloatArray, start: bool) -> _Episode:
        """Credit sub-env ``index``'s last round to its learner (or start an episode) from its observation."""
        api = self._api
        time_left = float(api.time_left_from_observation(obs))
        tokens = np.rint(api.observation_value(obs, "last_tokens"))
        episode = self.episodes[index]
        if start or episode is None or observation_starts_episode(api, obs):
            words = np.frombuffer(np.asarray(obs, dtype=np.float32).tobytes(), dtype=np.uint32)
            rng = np.random.default_rng([self.seed, *words.tolist()])
            episode = _Episode(UCBLengths(self._num_users, self._max_draft, self.exploration, rng), time_left)
            self.episodes[index] = episode
        else:
            played = np.rint(api.observation_value(obs, "last_draft_lengths")).astype(np.int64)
            elapsed = episode.time_left - time_left
            # time_left is clipped at 0 in the episode's last observation: that round's latency is unknown.
            if time_left > 0.0 and elapsed > 0.0 and episode.context is not None:
                episode.learner.update(played, episode.context, np.full(played.size, tokens.sum() / elapsed))
            episode.time_left = time_left
        return episode

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[NDArray[np.float32], Any]:
        """Action(s) for the observation(s), SB3 style (``state`` is passed through); ``episode_start`` (one
        flag per observation) marks new episodes."""
        obs = np.asarray(observation, dtype=np.float64)
        n = self.num_envs
        expected = (self._size,) if n is None else (n, self._size)
        if obs.shape != expected:
            raise ValueError(
                f"{self.name}: expected observations of shape {expected} (one per sub-env; a learner "
                f"is kept per sub-env), got {obs.shape}"
            )
        rows = obs.reshape(-1, self._size)
        starts = episode_starts(episode_start, len(rows), self.name)
        actions = []
        for i, row in enumerate(rows):
            episode = self._observe(i, row, bool(starts[i]))
            upload = self._api.upload_time_from_observation(row)
            episode.uploads.append(upload)
            episode.context = (upload > FADE_RATIO * np.median(episode.uploads, axis=0)).astype(np.int64)
            lengths = episode.learner.choose(episode.context)
            shares, tau = optimal_bandwidth(self._api.draft_time_from_observation(row), upload, lengths)
            # The bandit has no model of the round: its expected goodput and latency are unknown (nan).
            self.last_allocation = Allocation(lengths, shares, math.nan, float(tau), math.nan)
            actions.append(self._api.encode_action(lengths, shares))
        return (actions[0] if n is None else np.stack(actions)), state
