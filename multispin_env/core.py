"""The state of a batch of Multi-SPIN systems, its reset and its step (the round itself is compiled).

:class:`MultiSpinCore` simulates ``num_envs`` independent systems of K users, one round (docs/model.md
section 2) per :meth:`MultiSpinCore.step`. :class:`~multispin_env.envs.MultiSpinEnv` is a batch of one;
:class:`~multispin_env.vector_env.MultiSpinVectorEnv` a batch of N. One round, for every system at once:

1. the action decodes to draft lengths L_k and bandwidth shares b_k (:meth:`MultiSpinCore.decode`);
2. sync time tau (eq. 1), verification time T_ver (eq. 2) and latency T (eq. 3) over the round's true
   channel, i.e. the upload times c_k = D / (W e_k) of the fading state at the round start;
3. accepted prefixes A_k sampled from the acceptance process, tokens n_k = A_k + 1 (eq. 4);
4. the clock advances by T, the acceptance estimate and the acceptance process are updated and the
   channel takes one Gauss-Markov step over T (section 4), giving the channel of the next round.

Steps 1-4 run in the kernels of :mod:`multispin_env._kernels`; this class owns the state they work on (packed
as :mod:`multispin_env.layout` says), draws the random variates from the env's numpy Generator and hands the
outcome back. Per round the draws come in this order: the blocks of :meth:`MultiSpinCore._next_block` when
used up, the acceptance process's own draws, the requests' draws (arrivals, new requests' lengths and tasks:
:mod:`multispin_env.requests`), restarts, CSI estimation noise; a seed gives one trajectory.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from multispin_env.acceptance import AcceptanceProcess, acceptance_estimate, make_acceptance_process
from multispin_env.channel import (
    FadingModel,
    dbm_to_watts,
    efficiency,
    make_fading_model,
    rayleigh_gains,
    snr_linear,
    upload_time_per_token,
)
from multispin_env.config import EnvConfig
from multispin_env.layout import (
    C_FAILURES,
    C_LAST_DRAFT_LENGTHS,
    C_LAST_TOKENS,
    C_SUCCESSES,
    CHANNEL_ROWS,
    CONSTANTS,
    COUNT_ROWS,
    E_LATENCY,
    E_REWARD,
    E_SYNC_TIME,
    E_VERIFY_TIME,
    ENV_ROWS,
    H_EFFICIENCY,
    H_OBSERVED_EFFICIENCY,
    H_UPLOAD_TIME,
    P_DRAFT_POWER,
    P_DRAFT_TIME,
    P_MEAN_EFFICIENCY,
    P_MEAN_UPLOAD_TIME,
    P_SNR,
    POPULATION_ROWS,
    R_ACCEPTED,
    R_BANDWIDTH,
    R_DRAFT_LENGTHS,
    R_DROPPED,
    R_ENERGY,
    R_TOKENS,
    REQUEST_ROWS,
    ROUND_ROWS,
)
from multispin_env.requests import Requests, request_state_bytes
from multispin_env.scenarios import Population
from multispin_env.spaces import (
    check_finite,
    nonfinite_error,
    observation_bounds,
    observation_layout,
    observation_scale,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

__all__ = [
    "MultiSpinCore",
    "RoundOutcome",
    "check_state_size",
    "MAX_STATE_BYTES",
    "PROCESS_STATE_ROWS",
    "ARRIVAL_ROUND_KEYS",
    "ARRIVAL_STATE_KEYS",
    "state_bytes",
]

#: Info keys of the round just played that exist with arrivals (docs/model.md section 5.8): per user, whether
#: a request ended in it (at most one does), its completion time in s (0 where none ended) and the requests that
#: arrived in it to a full queue and were dropped (eq. (9')).
ARRIVAL_ROUND_KEYS = ("completed", "completion_time", "blocked")
#: Info keys of the current state that exist with arrivals: whether the user has a request for the round about
#: to be played, the tokens left in it and the requests queued behind it.
ARRIVAL_STATE_KEYS = ("active", "remaining", "queued")

#: Most bytes the arrays of one batch may hold (:func:`state_bytes`): 1 GiB.
MAX_STATE_BYTES = 2**30
#: Per-user 8-byte rows counted for an acceptance process's own state beyond the rates and cumulative hazards
#: every process has (the built-in processes use at most two: the trace process's request and round indices).
PROCESS_STATE_ROWS = 2


def _block_rounds(num_envs: int, num_users: int) -> int:
    """Rounds of random variates drawn per block (fewer, larger RNG calls: each costs ~1 us), at most 16384
    variates of each kind per block unless one round needs more."""
    return max(1, min(64, 16384 // (num_envs * num_users)))


def _population_bytes(population: Population) -> int:
    """Memory of one :class:`~multispin_env.scenarios.Population`: the object and its fields (arrays with data)."""
    fields = dataclasses.fields(population)
    return sys.getsizeof(population) + sum(sys.getsizeof(getattr(population, f.name)) for f in fields)


def state_bytes(config: EnvConfig, num_envs: int, population: Population | None = None) -> int:
    """The most bytes the arrays of a :class:`MultiSpinCore` of ``num_envs`` systems hold at once (n systems of K
    users, L = L_max, S observation entries): per user the packed state, the acceptance rates, the L cumulative
    hazards and :data:`PROCESS_STATE_ROWS` rows of a process's own state, the gain ring, one block of random
    variates, the requests (with arrivals, the queue at its limit ``max_queued_requests``) and the last round's
    outputs; per system the clock, the last round's times and observation and the population (one each when
    resampled, else one shared); and the tables shared by all. Not counted: an acceptance process's fixed
    tables (task rates, a trace's data), and the temporaries of a reset or a step.

    :param population: a population of the scenario (measured for the per-system populations); None: one is drawn
    """
    scenario = config.scenario
    n, k, max_draft = int(num_envs), scenario.num_users, scenario.max_draft
    arrivals = config.arrival_rate is not None
    fading = make_fading_model(config.fading, scenario.doppler_hz).evolves
    block_kinds = 1 + 2 * fading + (config.draft_time_jitter > 0.0)  # Exp(1); N(0, 1) pairs; jitter factors
    user_rows = (
        POPULATION_ROWS
        + COUNT_ROWS
        + CHANNEL_ROWS
        + 2  # + snr_db, base_acceptance
        + 2
        + max_draft
        + PROCESS_STATE_ROWS  # the process: base_rate, rate, cumulative_hazard, its own
        + 2 * (config.csi_delay + 1)  # the complex gain ring
        + _block_rounds(n, k) * block_kinds
        + ROUND_ROWS
        + 3
    )  # the last round: its rows and the int64 n_k, A_k, L_k
    user_bytes = 8 * user_rows + request_state_bytes(config.max_queued_requests if arrivals else None)
    observation_size = max(where.stop for where in observation_layout(k, arrivals).values())
    if population is None:
        population = scenario.sample_population(np.random.default_rng(config.population_seed))
    populations = _population_bytes(population)
    env_bytes = 8 * (1 + ENV_ROWS) + 1 + 4 * observation_size + 8  # + truncated, observation, a list slot
    shared = (
        8 * max_draft
        + 16 * observation_size
        + CONSTANTS.itemsize  # positions, observation scales
        + 16 * len(scenario.verify_profile_points[0])
    )
    if config.resample_population:
        env_bytes += populations
    else:
        shared += populations
    return n * (k * user_bytes + env_bytes) + shared


def check_state_size(config: EnvConfig, num_envs: int, population: Population | None = None) -> None:
    """ValueError (one line) unless :func:`state_bytes` of the batch is within :data:`MAX_STATE_BYTES`; checked
    before anything is allocated."""
    needed = state_bytes(config, num_envs, population)
    if needed > MAX_STATE_BYTES:
        raise ValueError(
            f"num_envs = {num_envs:,} systems of {config.scenario.num_users} users would hold "
            f"{needed / 2**30:.2f} GiB of state, more than the limit of 1 GiB: use fewer envs or "
            "users, a shorter max_draft, csi_delay or max_queued_requests"
        )


def _kernels() -> ModuleType:
    """The compiled round (imported, hence compiled or loaded from the cache, on the first core of a process)."""
    return importlib.import_module("multispin_env._kernels")


class RoundOutcome(NamedTuple):
    """What one round produced, arrays over envs (and users on the last axis)."""

    draft_lengths: FloatArray  # (n, K), tokens
    bandwidth: FloatArray  # (n, K), shares
    accepted: FloatArray  # (n, K), A_k
    tokens: FloatArray  # (n, K), n_k = A_k + 1
    sync_time: FloatArray  # (n,), s, eq. (1)
    verify_time: FloatArray  # (n,), s, eq. (2)
    latency: FloatArray  # (n,), s, eq. (3)
    reward: FloatArray  # (n,), reward_scale * (sum_k n_k - energy_weight * sum_k E_k)
    truncated: BoolArray  # (n,), clock >= horizon
    dropped: FloatArray  # (n, K), 1.0 where the upload missed the deadline (eq. 1')
    energy: FloatArray  # (n, K), J (section 5.7)
    #: (3, n, K) int64 n_k, A_k, L_k when the kernel wrote them (raw-action steps), else None
    counts: IntArray | None = None
    #: (n, S) float32 observations after the round when the kernel wrote them (nothing drawn after it), else None
    observation: NDArray[np.float32] | None = None

    @classmethod
    def from_rows(
        cls,
        rounds: FloatArray,
        per_env: FloatArray,
        truncated: BoolArray,
        counts: IntArray | None = None,
        observation: NDArray[np.float32] | None = None,
    ) -> RoundOutcome:
        """The outcome whose fields are row views of the kernel's round rows (R_*, (rows, n, K)) and per-env rows
        (E_*, (rows, n)): no copy."""
        return cls(
            rounds[R_DRAFT_LENGTHS],
            rounds[R_BANDWIDTH],
            rounds[R_ACCEPTED],
            rounds[R_TOKENS],
            per_env[E_SYNC_TIME],
            per_env[E_VERIFY_TIME],
            per_env[E_LATENCY],
            per_env[E_REWARD],
            truncated,
            rounds[R_DROPPED],
            rounds[R_ENERGY],
            counts,
            observation,
        )


def _buffer(rows: NDArray[Any]) -> NDArray[Any]:
    """The layout buffer (round rows or per-env rows) that a :class:`RoundOutcome` field is a row view of."""
    if rows.base is None:
        raise ValueError("a RoundOutcome's fields must be row views of the kernel's round buffers")
    return rows.base


class MultiSpinCore:
    """``num_envs`` independent Multi-SPIN systems advanced one round per :meth:`step`.

    :param config: validated settings (:func:`multispin_env.config.resolve_config`)
    :param num_envs: number of systems (batch rows)

    Public state (rows = envs, read-only views of the packed arrays): ``clock`` (s), ``gain`` (the complex
    fading h), ``draft_time`` t_k and ``upload_time`` c_k (s/token), ``spectral_efficiency`` e_k (bit/s/Hz)
    of the round about to be played, ``mean_upload_time`` (s/token, |h|^2 = 1), ``base_acceptance``, the
    acceptance ``process``, the discounted acceptance counts and the last round's lengths and tokens. The
    outputs of the methods never alias the state.
    """

    def __init__(self, config: EnvConfig, num_envs: int) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        scenario = config.scenario
        fixed = (
            None
            if config.resample_population
            else scenario.sample_population(np.random.default_rng(config.population_seed))
        )
        check_state_size(config, num_envs, fixed)
        self.config = config
        self.scenario = scenario
        self.num_envs = n = int(num_envs)
        self.num_users = k = scenario.num_users
        self.max_draft = scenario.max_draft
        self.homogeneous = config.homogeneous
        #: Action entries that encode draft lengths (1 common length, or one per user).
        self.length_entries = 1 if config.homogeneous else k
        self.action_size = self.length_entries + k
        #: Whether requests arrive (``arrival_rate`` set; docs/model.md section 5.8).
        self.arrivals = config.arrival_rate is not None
        self.observation_size = max(where.stop for where in observation_layout(k, self.arrivals).values())
        self._observed_is_true = config.csi_delay == 0 and config.csi_noise_std == 0.0

        self.process: AcceptanceProcess = make_acceptance_process(config, n)
        self.fading: FadingModel = make_fading_model(config.fading, scenario.doppler_hz)
        #: The users' requests (None when no one needs them: no arrivals and a process without requests).
        self.requests: Requests | None = None
        if self.arrivals or self.process.per_request:
            self.requests = Requests(
                n,
                k,
                process=self.process,
                mean_tokens=config.mean_request_tokens,
                length=config.request_length,
                arrival_rate=config.arrival_rate,
                max_queued=config.max_queued_requests if self.arrivals else None,
            )
        self._request_state = self.requests.state if self.requests is not None else np.zeros((REQUEST_ROWS, 0, 0))

        # Packed state (never rebound: the public attributes are views of it).
        self._population = np.ones((POPULATION_ROWS, n, k))
        self._counts = np.zeros((COUNT_ROWS, n, k))
        self._channel = np.empty((CHANNEL_ROWS, n, k))
        # Complex gains h of this round and the csi_delay rounds before: a ring buffer, newest at _newest.
        self._gains = np.ones((config.csi_delay + 1, n, k), dtype=np.complex128)
        self._newest = 0
        self.clock = np.zeros(n)
        self._link_views()
        self.populations: list[Population] = []
        self.snr_db = np.zeros((n, k))
        self.base_acceptance = np.full((n, k), 0.5)
        if fixed is not None:
            self._set_populations(np.arange(n), [fixed])
        self._channel[H_UPLOAD_TIME] = self.mean_upload_time
        self._channel[H_EFFICIENCY] = self._population[P_MEAN_EFFICIENCY]
        self._channel[H_OBSERVED_EFFICIENCY] = self._population[P_MEAN_EFFICIENCY]
        self._last_round: RoundOutcome | tuple[FloatArray, FloatArray, BoolArray] | None = None
        self._process_ready = False  # True after a full reset

        # Random variates of a round come from blocks of `_block_rounds` rounds (fewer, larger RNG calls: each
        # costs ~1 us): Exp(1) (the acceptance samples) and N(0, 1) (fading innovations, drafting-time jitter),
        # drawn in this order when a block is used up; a full reset discards the unused rest.
        self._block_rounds = _block_rounds(n, k)
        self._block_index = self._block_rounds
        self._exponential_block = np.zeros((0, n, k))
        self._normal_block = np.zeros((self._block_rounds, 2, 0, 0))  # (rounds, 2, n, k) with fading
        self._jitter_block = np.zeros((self._block_rounds, 0, 0))  # (rounds, n, k) with jitter

        scale = observation_scale(
            k, self.max_draft, config.horizon, config.mean_request_tokens if self.arrivals else None
        )
        self._observation_scale = np.ascontiguousarray(np.stack((scale, self.observation_bounds()[1])))
        self._constants = self.kernel_constants()
        self._verify_profile = tuple(np.ascontiguousarray(a) for a in scenario.verify_profile_points)
        self._no_noise = np.zeros((0, 0), dtype=np.complex128)
        self._no_normals = np.zeros((2, 0, 0))
        self._no_rows = np.zeros(0, dtype=np.int64)
        # Restarts within the round's kernel call when no draw would come between the round's and theirs (and
        # the acceptance process needs no reset, see _reset_rows).
        self._restart_in_kernel = not (
            self.process.evolves
            or config.resample_population
            or config.csi_noise_std > 0.0
            or self.requests is not None
        )
        # The single-env step updates the channel and observes in its kernel unless the estimate needs noise or
        # the observation shows requests (they arrive and start after the round).
        self._finish_in_kernel = config.csi_noise_std == 0.0 and not self.arrivals
        self._kernels = _kernels()

    def kernel_constants(self) -> NDArray[np.void]:
        """The record of :data:`~multispin_env.layout.CONSTANTS` the kernels read, filled by name from the
        derived values below, the resolved scenario's fields or the config's settings (in that order: the
        scenario holds the resolved value of the config's overrides such as ``doppler_hz``)."""
        deadline = self.config.upload_deadline
        derived = {
            "length_entries": self.length_entries,
            "observed_is_true": self._observed_is_true,
            "upload_deadline": np.inf if deadline is None else deadline,
            "transmit_power_w": dbm_to_watts(self.scenario.tx_power_dbm),
            "fading": self.fading.kernel_code,
            "fading_line_of_sight": self.fading.line_of_sight,
            "fading_scatter": self.fading.scatter,
            "arrivals": self.arrivals,
        }
        record = np.zeros(1, dtype=CONSTANTS)
        for name in CONSTANTS.names or ():  # a structured dtype: never None
            if name in derived:
                record[name] = derived[name]
            elif hasattr(self.scenario, name):
                record[name] = getattr(self.scenario, name)
            else:
                record[name] = getattr(self.config, name)
        return record

    def _link_views(self) -> None:
        """The per-field views of the packed arrays (never rebound)."""
        self.draft_time = self._population[P_DRAFT_TIME]  # nominal t_k, s/token
        self.mean_upload_time = self._population[P_MEAN_UPLOAD_TIME]  # c_k of the mean channel, s/token
        self.upload_time = self._channel[H_UPLOAD_TIME]  # c_k of the current channel, s/token
        self.spectral_efficiency = self._channel[H_EFFICIENCY]  # e_k of the current channel, bit/s/Hz

    def __getstate__(self) -> dict[str, Any]:
        """Pickle/deepcopy support: the kernels module is re-imported, the views re-linked on unpickling."""
        state = self.__dict__.copy()
        state["_kernels"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._link_views()
        self._kernels = _kernels()

    # ------------------------------------------------------------------ state
    @property
    def gain(self) -> NDArray[np.complex128]:
        """Complex fading gains h (n, K) of the round about to be played (a view of the gain ring buffer)."""
        return self._gains[self._newest]

    @property
    def successes(self) -> FloatArray:
        """Discounted accepted draft tokens S (n, K) of the acceptance estimate."""
        return self._counts[C_SUCCESSES]

    @property
    def failures(self) -> FloatArray:
        """Discounted first rejections F (n, K) of the acceptance estimate."""
        return self._counts[C_FAILURES]

    @property
    def last_draft_lengths(self) -> FloatArray:
        """L_k (n, K) of the last round (0 after a reset)."""
        return self._counts[C_LAST_DRAFT_LENGTHS]

    @property
    def last_tokens(self) -> FloatArray:
        """n_k (n, K) of the last round (0 after a reset)."""
        return self._counts[C_LAST_TOKENS]

    @property
    def observed_spectral_efficiency(self) -> FloatArray:
        """e_k (n, K) of the observed (delayed, noisy) channel estimate, bit/s/Hz."""
        return self._channel[H_OBSERVED_EFFICIENCY]

    @property
    def last_outcome(self) -> RoundOutcome | None:
        """The last round's :class:`RoundOutcome` (None after a reset)."""
        last = self._last_round
        if last is None or isinstance(last, RoundOutcome):
            return last
        rounds, per_env, truncated = last  # the single-env kernel step's buffers
        outcome = RoundOutcome.from_rows(rounds, per_env, truncated)
        self._last_round = outcome
        return outcome

    def observation_bounds(self) -> tuple[FloatArray, FloatArray]:
        """Low and high of one observation (the Box of the single observation space)."""
        return observation_bounds(self.num_users, self.scenario, self.draft_time, self.arrivals)

    def acceptance_estimate(self) -> FloatArray:
        """a_hat = (S + w0 a0) / (S + F + w0) (n, K), the estimate the observation shows (section 5.4)."""
        return acceptance_estimate(
            self.successes, self.failures, self.config.acceptance_prior, self.config.acceptance_prior_weight
        )

    # ------------------------------------------------------------- population
    def _set_populations(self, index: NDArray[np.intp], populations: list[Population]) -> None:
        """The systems ``index`` get ``populations``, one each or one for all (a list of one, broadcast: no
        per-system Python objects for a fixed population)."""
        shared = len(populations) == 1 and index.size > 1
        if not self.populations:  # construction: every slot at once
            self.populations = [populations[0]] * self.num_envs
        elif shared:
            for i in index:
                self.populations[i] = populations[0]
        if not shared:
            for i, population in zip(index, populations, strict=True):
                self.populations[i] = population
        self.snr_db[index] = [p.snr_db for p in populations]
        snr = snr_linear(self.snr_db[index])
        mean_efficiency = efficiency(snr, 1.0)
        self._population[P_SNR, index] = snr
        self._population[P_DRAFT_TIME, index] = [p.draft_time for p in populations]
        self._population[P_DRAFT_POWER, index] = [p.draft_power for p in populations]
        self._population[P_MEAN_EFFICIENCY, index] = mean_efficiency
        self._population[P_MEAN_UPLOAD_TIME, index] = upload_time_per_token(
            self.scenario.payload_bits, self.scenario.bandwidth_hz, mean_efficiency
        )
        self.base_acceptance[index] = [p.acceptance for p in populations]

    # ------------------------------------------------------------------ reset
    def reset(self, rng: np.random.Generator) -> None:
        """Start new episodes in every env, drawing from ``rng``."""
        self._block_index = self._block_rounds
        self._gains[...] = 1.0
        self._newest = 0
        self._last_round = None
        self._process_ready = False
        self._reset_rows(np.arange(self.num_envs), rng)
        self._process_ready = True  # every row's process state is now its population's
        self._update_channel(rng)

    def restart(self, rows: BoolArray, rng: np.random.Generator) -> None:
        """New episodes now in the envs of the mask ``rows``, the others untouched (partial and same-step resets)."""
        self._reset_rows(np.flatnonzero(rows), rng)
        self._update_channel(rng)

    def _start_normals(self, count: int, rng: np.random.Generator) -> FloatArray:
        """N(0, 1) pairs (2, count, K) of ``count`` new episodes' start gains, drawn only when the fading model's
        start gains are random (the kernel turns them into gains as the model's ``initial_gains`` does)."""
        # numpy's own call: a kernel taking the Generator costs ~7 us to unbox it, more than a few rows' draws.
        return rng.standard_normal((2, count, self.num_users)) if self.fading.evolves else self._no_normals

    def _reset_rows(self, index: NDArray[np.intp], rng: np.random.Generator) -> None:
        """New episodes in the envs ``index``: population (if resampled), clock, counts, channel, acceptance."""
        count = index.size
        if self.config.resample_population:
            self._set_populations(index, [self.scenario.sample_population(rng) for _ in range(count)])
        self._kernels.reset_rows(
            index.astype(np.int64, copy=False),
            self._start_normals(count, rng),
            self._constants,
            self.clock,
            self._gains,
            self._counts,
        )
        # A process that does not evolve, reset to the same (fixed) population's rates, would not change.
        if self.process.evolves or self.config.resample_population or not self._process_ready:
            rows = np.zeros(self.num_envs, dtype=bool)
            rows[index] = True
            self.process.reset(rows, self.base_acceptance, rng)
        if self.requests is not None:  # right after the process: a new request's task follows its reset
            rows = np.zeros(self.num_envs, dtype=bool)
            rows[index] = True
            self.requests.reset(rows, rng)

    # ----------------------------------------------------------------- action
    def decode(self, actions: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Draft lengths and shares (n, K) of a batch of raw float64 actions (n, action_size), clipped into
        [-1, 1] (docs/model.md section 8.1); ValueError if an entry is NaN or inf."""
        out = np.empty((2, actions.shape[0], self.num_users))
        if not self._kernels.decode(actions, self._constants, out):
            raise nonfinite_error(actions)
        return out[R_DRAFT_LENGTHS], out[R_BANDWIDTH]

    # ------------------------------------------------------------------- step
    def step(
        self,
        draft_lengths: FloatArray,
        bandwidth: FloatArray,
        rng: np.random.Generator,
        reset_rows: BoolArray | None = None,
    ) -> RoundOutcome:
        """Play one round with decoded lengths/shares (n, K); returns the outcome and advances the state.

        ``reset_rows`` (boolean mask over envs) start new episodes in those envs instead: they ignore the action
        (their round in the outcome is zero and not truncated) and share one channel update with the others.
        The outcome's arrays are not shared with the state.
        """
        n, k = draft_lengths.shape
        rounds = np.empty((ROUND_ROWS, n, k))
        rounds[R_DRAFT_LENGTHS] = draft_lengths
        rounds[R_BANDWIDTH] = bandwidth
        return self._play(rounds, rng, reset_rows, None)

    def step_actions(
        self, actions: FloatArray, rng: np.random.Generator, reset_rows: BoolArray | None = None
    ) -> RoundOutcome:
        """:meth:`decode` and :meth:`step` in one kernel call: raw float64 actions (n, action_size), clipped
        into [-1, 1]; ValueError (state and generator untouched) if an entry is NaN or inf."""
        # The kernel rejects a NaN/inf action before it changes anything, but a block refill or the restarts'
        # start gains would be drawn before it runs: check first whenever something is drawn first.
        if reset_rows is not None or self._block_index == self._block_rounds:
            check_finite(actions)
        return self._play(np.empty((ROUND_ROWS, actions.shape[0], self.num_users)), rng, reset_rows, actions)

    def _play(
        self, rounds: FloatArray, rng: np.random.Generator, reset_rows: BoolArray | None, actions: FloatArray | None
    ) -> RoundOutcome:
        """The round of :meth:`step` (lengths and shares already in ``rounds``) or of :meth:`step_actions`
        (raw ``actions``, decoded by the kernel into ``rounds``); returns the outcome (also kept as
        ``_last_round``)."""
        n, k = rounds.shape[1:]
        block = self._next_block(rng)
        per_env = np.empty((ENV_ROWS, n))
        truncated = np.empty(n, dtype=bool)
        restarts, restart_normals = self._no_rows, self._no_normals
        if reset_rows is not None and self._restart_in_kernel and self._process_ready:  # no draw comes between
            restarts = reset_rows.nonzero()[0]
            restart_normals = self._start_normals(restarts.size, rng)  # as in _reset_rows
            reset_rows = None
        channel_update = reset_rows is None and self._finish_in_kernel
        state = (
            self._population,
            self._counts,
            self._channel,
            self._gains,
            self._newest,
            self.clock,
            self._request_state,
            self.process.cumulative_hazard,
            self._exponential_block,
            self._normal_block,
            self._jitter_block,
            block,
            restarts,
            restart_normals,
            self._constants,
            *self._verify_profile,
            channel_update,
        )
        ints = observation = None
        if actions is None:
            self._kernels.play_round(rounds[R_DRAFT_LENGTHS], rounds[R_BANDWIDTH], *state, rounds, per_env, truncated)
        else:
            ints = np.empty((3, n, k), dtype=np.int64)
            # The observations come out of the same kernel call when nothing is drawn after the round.
            observation = np.empty((n if channel_update else 0, self.observation_size), dtype=np.float32)
            if (
                self._kernels.step_actions(
                    actions,
                    *state[:-1],
                    channel_update,
                    self._observation_scale,
                    rounds,
                    per_env,
                    truncated,
                    ints,
                    observation,
                )
                < 0
            ):
                raise nonfinite_error(actions)
        self._block_index = block + 1
        if self.fading.evolves:
            self._newest = (self._newest + 1) % self._gains.shape[0]
        # Rows by index: unpacking an array (``*per_env[:4]``) costs ~3x as much per row.
        outcome = RoundOutcome.from_rows(
            rounds,
            per_env,
            truncated,
            ints,
            observation if channel_update else None,
        )
        self._last_round = outcome
        if self.process.evolves:
            self.process.advance(outcome.tokens, rng)
        if self.requests is not None:
            self.requests.advance(outcome.tokens, outcome.latency, self.clock, rng)
        if reset_rows is not None:
            rows = np.flatnonzero(reset_rows)
            self._reset_rows(rows, rng)
            self.discard(outcome, rows)
        if not channel_update:
            self._update_channel(rng)
        return outcome

    def step_single(
        self, action: FloatArray, rng: np.random.Generator
    ) -> tuple[NDArray[np.float32], float, bool, dict[str, Any]]:
        """The single env's step (batch of one): one raw float64 action (action_size,), checked, clipped,
        decoded and played in one kernel call. Returns (observation (S,), reward, truncated, info) with the
        single env's info (new arrays). ValueError (state and generator untouched) if an entry is NaN or inf.
        """
        if self._block_index == self._block_rounds:  # the block refill draws before the kernel's check
            check_finite(action)
        block = self._next_block(rng)
        k = self.num_users
        rounds = np.empty((ROUND_ROWS, 1, k))
        per_env = np.empty((ENV_ROWS, 1))
        truncated = np.empty(1, dtype=bool)
        ints = np.empty((3, 1, k), dtype=np.int64)
        obs = np.empty((1, self.observation_size), dtype=np.float32)
        status = self._kernels.step_actions(
            action.reshape(1, -1), self._population, self._counts, self._channel, self._gains, self._newest,
            self.clock, self._request_state, self.process.cumulative_hazard, self._exponential_block,
            self._normal_block, self._jitter_block, block, self._no_rows, self._no_normals, self._constants,
            *self._verify_profile, self._finish_in_kernel, self._observation_scale, rounds, per_env, truncated, ints,
            obs,
        )  # fmt: skip
        if status < 0:
            raise nonfinite_error(action)
        self._block_index = block + 1
        if self.fading.evolves:
            self._newest = (self._newest + 1) % self._gains.shape[0]
        self._last_round = (rounds, per_env, truncated)
        if self.process.evolves:
            self.process.advance(rounds[R_TOKENS], rng)
        if self.requests is not None:
            self.requests.advance(rounds[R_TOKENS], per_env[E_LATENCY], self.clock, rng)
        if not self._finish_in_kernel:  # the estimate's noise is drawn after the process's draws
            self._update_channel(rng)
            obs = self.observation()
        sync, verify, latency, reward, clock = per_env[:, 0].tolist()
        tokens, accepted, lengths = ints[:, 0]
        info = {
            "tokens": tokens,
            "accepted": accepted,
            "draft_lengths": lengths,
            "bandwidth": rounds[R_BANDWIDTH, 0],
            "dropped": rounds[R_DROPPED, 0].astype(bool),  # the kernel writes 0.0 or 1.0 (a cast is 3x a compare)
            "energy": rounds[R_ENERGY, 0],
            "latency": latency,
            "sync_time": sync,
            "verify_time": verify,
            "clock": clock,
            "acceptance": self.process.rate[0].copy(),
            "spectral_efficiency": self.spectral_efficiency[0].copy(),
        }
        if self.arrivals:
            info.update({key: value[0] for key, value in self.arrival_info().items()})
        return obs[0], reward, status > 0, info

    def _next_block(self, rng: np.random.Generator) -> int:
        """Index of this round's variates in the blocks, refilling them when used up (the caller stores
        index + 1 in ``_block_index`` once the round is played)."""
        if self._block_index < self._block_rounds:
            return self._block_index
        shape = (self._block_rounds, self.num_envs, self.num_users)
        self._exponential_block = np.empty(shape)  # = rng.standard_exponential(shape), drawn by a kernel
        self._kernels.standard_exponential(rng, self._exponential_block.reshape(-1))
        if self.fading.evolves:
            self._normal_block = self._standard_normal(rng, (self._block_rounds, 2, self.num_envs, self.num_users))
        sigma = self.config.draft_time_jitter
        if sigma > 0.0:  # log-normal factors exp(sigma z - sigma^2 / 2) of the draft times (section 5.3)
            self._jitter_block = np.exp(sigma * self._standard_normal(rng, shape) - 0.5 * sigma * sigma)
        self._block_index = 0
        return 0

    def _standard_normal(self, rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
        """``rng.standard_normal(shape)``: the identical values, drawn twice as fast by a kernel."""
        out = np.empty(shape)
        self._kernels.standard_normal(rng, out.reshape(-1))
        return out

    # ---------------------------------------------------------------- channel
    def _update_channel(self, rng: np.random.Generator) -> None:
        """Spectral efficiency and upload time of the current channel, and the observed estimate (in place).

        The estimate is the channel of ``csi_delay`` rounds ago plus CN(0, csi_noise_std^2) noise drawn here.
        """
        std = self.config.csi_noise_std
        noise = std * rayleigh_gains(rng, (self.num_envs, self.num_users)) if std > 0.0 else self._no_noise
        self._kernels.update_channel(self._population, self._channel, self._gains, self._newest, self._constants, noise)

    # ------------------------------------------------------------ observation
    def observation(self) -> NDArray[np.float32]:
        """The float32 observations (n, observation_size), a new array (docs/model.md section 5.5)."""
        out = np.empty((self.num_envs, self.observation_size), dtype=np.float32)
        self._kernels.observe(
            self._population,
            self._counts,
            self._channel,
            self.clock,
            self._request_state,
            self._constants,
            self._observation_scale,
            out,
        )
        return out

    @staticmethod
    def discard(outcome: RoundOutcome, rows: NDArray[np.intp]) -> None:
        """Zero the round of the systems ``rows`` in ``outcome`` (its per-user rows, times, reward) and clear their
        truncation: the sub-envs that ignored the action and started a new episode instead (what the kernel
        does itself when it restarts them). Two writes into the round's buffers rather than one per field."""
        rounds, per_env = _buffer(outcome.tokens), _buffer(outcome.sync_time)
        for row in rows:  # a few rows a step: basic indexing is cheaper than fancy indexing here
            rounds[:, row] = 0.0  # L, b, A, n, dropped, energy (the layout's round rows)
            per_env[:4, row] = 0.0  # tau, T_ver, T, reward
            if outcome.counts is not None:
                outcome.counts[:, row] = 0
        outcome.truncated[rows] = False

    def report(self, outcome: RoundOutcome) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """The observations (n, observation_size) and the per-round info arrays (rows = envs) after the round
        ``outcome`` of :meth:`step`/:meth:`step_actions`; every array is new (the outcome's own arrays are new
        each round, the state's are copied)."""
        if outcome.counts is not None:  # rows by index (unpacking the array costs ~3x as much)
            counts = outcome.counts
            tokens, accepted, draft_lengths = counts[0], counts[1], counts[2]
        else:
            rounds = _buffer(outcome.tokens)  # the round's buffer in layout rows; the outcome's per-user rows view it
            counts = rounds[: R_TOKENS + 1].astype(np.int64)  # one cast of the leading rows (b_k's is unused)
            tokens, accepted, draft_lengths = counts[R_TOKENS], counts[R_ACCEPTED], counts[R_DRAFT_LENGTHS]
        info = {
            "tokens": tokens,
            "accepted": accepted,
            "draft_lengths": draft_lengths,
            "bandwidth": outcome.bandwidth,
            "dropped": outcome.dropped.astype(bool),  # 0.0 or 1.0 (a cast costs a third of a compare)
            "energy": outcome.energy,
            "latency": outcome.latency,
            "sync_time": outcome.sync_time,
            "verify_time": outcome.verify_time,
            "clock": self.clock.copy(),
            "acceptance": self.process.rate.copy(),
            "spectral_efficiency": self.spectral_efficiency.copy(),
        }
        if self.arrivals:
            info.update(self.arrival_info())
        return self.observation() if outcome.observation is None else outcome.observation, info

    def arrival_info(self) -> dict[str, Any]:
        """With arrivals: the info keys :data:`ARRIVAL_ROUND_KEYS` (of the last round) and
        :data:`ARRIVAL_STATE_KEYS` (of the current state), new arrays (n, K)."""
        requests = self.requests
        if requests is None:
            raise ValueError("arrival info needs request arrivals (arrivals=True)")
        return {
            "completed": requests.completed.copy(),
            "completion_time": requests.completion_time.copy(),
            "blocked": requests.blocked.copy(),
            "active": requests.active,
            "remaining": requests.remaining.astype(np.int64),
            "queued": requests.waiting.astype(np.int64),
        }

    def state_info(self) -> dict[str, Any]:
        """Info after a reset: the clock and the true state of the first round."""
        info = {
            "clock": self.clock.copy(),
            "acceptance": self.process.rate.copy(),
            "spectral_efficiency": self.spectral_efficiency.copy(),
        }
        if self.arrivals:
            arrival_info = self.arrival_info()
            info.update({key: arrival_info[key] for key in ARRIVAL_STATE_KEYS})
        return info
