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
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv
from numpy.typing import NDArray

from baselines.solvers import Allocation
from multispin_env.model import optimal_bandwidth

__all__ = ["BanditPolicy", "UCBLengths"]

FloatArray = NDArray[np.float64]


class UCBLengths:
    """UCB over draft lengths 0..L_max for K users of one system (one episode's statistics).

    Index of arm L of user k after t rounds: mean_kL + c s sqrt(ln t / N_kL), with s the standard deviation
    of all rewards seen so far (the reward's scale is unknown) and c = ``exploration``; untried arms come
    first, in a random order per user (so that users do not explore in lockstep).

    :param num_users: K
    :param max_draft: L_max (arms 0..L_max)
    :param exploration: c, the width of the confidence bonus in reward standard deviations
    :param rng: the tie-breaking and exploration-order generator
    """

    def __init__(self, num_users: int, max_draft: int, exploration: float, rng: np.random.Generator) -> None:
        arms = max_draft + 1
        self.counts = np.zeros((num_users, arms))
        self.sums = np.zeros((num_users, arms))
        self.exploration = exploration
        self.rounds = 0
        self._reward_sum = np.zeros((num_users, 1))
        self._reward_square_sum = np.zeros((num_users, 1))
        # Untried arms are played in this order (a random permutation per user); ties of the index break by it.
        self._rank = np.argsort(np.argsort(rng.random((num_users, arms)), axis=1), axis=1)
        self.start = np.full(num_users, min(1, max_draft), dtype=np.int64)

    def update(self, played: NDArray[np.int64], reward: FloatArray) -> None:
        """Credit ``reward`` (K,) to every user's played arm ``played`` (K,)."""
        users = np.arange(played.size)
        self.counts[users, played] += 1.0
        self.sums[users, played] += reward
        self.rounds += 1
        self._reward_sum += reward[:, None]
        self._reward_square_sum += (reward * reward)[:, None]

    def choose(self) -> NDArray[np.int64]:
        """The arm (draft length) of every user for the next round: the UCB maximiser among the leader (the
        arm with the best mean so far) and its two neighbours, untried neighbours first."""
        tried = self.counts > 0
        means = np.where(tried, self.sums / np.maximum(self.counts, 1.0), -np.inf)
        leader = np.where(tried.any(axis=1), self._argmax(means), self.start)
        arms = np.arange(self.counts.shape[1])
        near = np.abs(arms[None, :] - leader[:, None]) <= 1
        n = max(self.rounds, 1)
        mean_reward = self._reward_sum / n
        scale = np.sqrt(np.maximum(self._reward_square_sum / n - mean_reward * mean_reward, 0.0))
        scale = np.where(scale > 0.0, scale, np.where(mean_reward != 0.0, np.abs(mean_reward), 1.0))
        counts = np.maximum(self.counts, 1.0)
        index = means + self.exploration * scale * np.sqrt(math.log(max(n, 2)) / counts)
        index = np.where(tried, index, np.inf)  # an untried neighbour is played first
        choice = leader.copy()
        # One user explores per round (in turn), the others play their leader: the change of the shared reward
        # is then that user's doing (users exploring together would move in lockstep).
        explorer = self.rounds % choice.size
        choice[explorer] = self._argmax(np.where(near, index, -np.inf))[explorer]
        return choice

    def _argmax(self, values: FloatArray) -> NDArray[np.int64]:
        """Per user, the arm of the largest value; ties break by the random rank."""
        best = values.max(axis=1, keepdims=True)
        return np.argmin(np.where(values >= best, self._rank, np.iinfo(np.int64).max), axis=1)


class BanditPolicy:
    """bandit-ucb (module docstring), SB3-like ``predict``, bound to a heterogeneous MultiSpin env.

    :param env: a single env (possibly wrapped) or a vector env of N sub-envs (one learner each)
    :param exploration: c of :class:`UCBLengths`
    :param seed: each episode's generator is seeded from it and the episode's first observation (episodes do
        not depend on the ones played before)
    :param name: the policy's name in reports
    """

    def __init__(self, env: Any, exploration: float = 1.0, seed: int = 0, name: str = "bandit-ucb",
                 reward: str = "round") -> None:
        self.reward = reward
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
        n = self.num_envs or 1
        self.learners: list[UCBLengths | None] = [None] * n
        self._time_left = np.ones(n)
        #: The last allocation played (goodput and latency nan: the bandit has no model; sync_time: the
        #: equal-finish time over the observed channel, s).
        self.last_allocation: Allocation | None = None

    def reset(self) -> None:
        """Forget every sub-env's statistics (the next observation starts an episode)."""
        self.learners = [None] * len(self.learners)

    def _observe(self, index: int, obs: FloatArray, start: bool) -> UCBLengths:
        api = self._api
        time_left = float(api.time_left_from_observation(obs))
        tokens = np.rint(api.observation_field(obs, "last_tokens") * (self._max_draft + 1))
        learner = self.learners[index]
        if start or learner is None or not np.any(tokens):  # a reset observation shows no last round
            words = np.frombuffer(np.asarray(obs, dtype=np.float32).tobytes(), dtype=np.uint32)
            learner = UCBLengths(self._num_users, self._max_draft, self.exploration,
                                 np.random.default_rng([self.seed, *words.tolist()]))
            self.learners[index] = learner
        else:
            played = np.rint(api.observation_field(obs, "last_draft_lengths") * self._max_draft).astype(np.int64)
            elapsed = self._time_left[index] - time_left
            if time_left > 0.0 and elapsed > 0.0:  # time_left is clipped at 0 in the episode's last observation
                reward = tokens / elapsed if self.reward == "user" else np.full(tokens.size, tokens.sum() / elapsed)
                learner.update(played, reward)
        self._time_left[index] = time_left
        return learner

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[NDArray[np.float32], Any]:
        """Action(s) for the observation(s), SB3 style (``state`` is passed through); ``episode_start`` (one
        flag per observation) marks new episodes."""
        obs = np.asarray(observation, dtype=np.float64)
        n = self.num_envs
        expected = (self._size,) if n is None else (n, self._size)
        if obs.shape != expected:
            raise ValueError(f"{self.name}: expected observations of shape {expected} (one per sub-env; a learner "
                             f"is kept per sub-env), got {obs.shape}")
        rows = obs.reshape(-1, self._size)
        flags = np.zeros(len(rows), bool) if episode_start is None else np.asarray(episode_start, bool).reshape(-1)
        starts = np.broadcast_to(flags if flags.size == len(rows) else flags.any(), (len(rows),))
        actions = []
        for i, row in enumerate(rows):
            lengths = self._observe(i, row, bool(starts[i])).choose()
            shares, tau = optimal_bandwidth(self._api.draft_time_from_observation(row),
                                            self._api.upload_time_from_observation(row), lengths)
            # The bandit has no model of the round: its expected goodput and latency are unknown (nan).
            self.last_allocation = Allocation(lengths, shares, math.nan, float(tau), math.nan)
            actions.append(self._api.encode_action(lengths, shares))
        return (actions[0] if n is None else np.stack(actions)), state
