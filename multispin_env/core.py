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

Steps 1-4 run in one call of the compiled step (:mod:`multispin_env._kernels`, whatever the batch size: the
single env's step takes the same path); this class owns the state it works on (packed in the records of
:mod:`multispin_env.layout`), draws the random variates from the env's numpy Generator and hands the outcome
back; :meth:`MultiSpinCore.report` assembles the observation and the info dict of every env kind. Per round
the draws come in this order: the blocks of :meth:`MultiSpinCore._next_block` when used up, the acceptance
process's own draws, the requests' draws (arrivals, new requests' lengths and tasks:
:mod:`multispin_env.requests`), restarts, CSI estimation noise; a seed gives one trajectory.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from multispin_env.acceptance import AcceptanceProcess, acceptance_estimate, make_acceptance_process
from multispin_env.channel import (
    FadingModel,
    efficiency,
    make_fading_model,
    rayleigh_gains,
    snr_linear,
    upload_time_per_token,
)
from multispin_env.config import EnvConfig
from multispin_env.layout import (
    C_ENERGY_SPENT,
    C_EPISODE_TOKENS,
    C_FAILURES,
    C_LAST_DRAFT_LENGTHS,
    C_LAST_TOKENS,
    C_SUCCESSES,
    CHANNEL_ROWS,
    CONSTANTS,
    COUNT_ROWS,
    E_CLOCK,
    E_LATENCY,
    E_REWARD,
    E_SYNC_TIME,
    E_VERIFY_TIME,
    ENV_ROWS,
    H_EFFICIENCY,
    H_OBSERVED_EFFICIENCY,
    H_UPLOAD_TIME,
    I_ACCEPTED,
    I_DRAFT_LENGTHS,
    I_TOKENS,
    INT_ROWS,
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
    RandomBlocks,
    Restarts,
    RoundBuffers,
    RoundConstants,
    SystemState,
)
from multispin_env.model import remaining_energy, running_throughput, verification_times
from multispin_env.requests import Requests, request_state_bytes
from multispin_env.scenarios import Population
from multispin_env.spaces import ObservationLayout, check_finite, nonfinite_error, observation_bounds, observation_scale

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
    "DEADLINE_ROUND_KEYS",
    "DEADLINE_STATE_KEYS",
    "state_bytes",
]

#: Info keys of the round just played that exist with arrivals (docs/model.md section 5.8): per user, whether
#: a request ended in it (at most one does), its completion time in s (0 where none ended) and the requests that
#: arrived in it to a full queue and were dropped (eq. (9')).
ARRIVAL_ROUND_KEYS = ("completed", "completion_time", "blocked")
#: Info keys of the current state that exist with arrivals: whether the user has a request for the round about
#: to be played, the tokens left in it and the requests queued behind it.
ARRIVAL_STATE_KEYS = ("active", "remaining", "queued")
#: Info keys of the round just played that exist with request deadlines (docs/model.md eq. (9d)): per user, the
#: requests that completed in it by their target and those whose target passed in it unmet (or were blocked).
DEADLINE_ROUND_KEYS = ("deadline_met", "deadline_missed")
#: Info keys of the current state that exist with request deadlines: the time left to the current request's target
#: (s; negative: overdue; 0 for an idle user).
DEADLINE_STATE_KEYS = ("slack",)

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
    layout = ObservationLayout.of_config(config, k)
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
        + INT_ROWS
    )  # the last round: its rows and the int64 n_k, A_k, L_k
    user_bytes = 8 * user_rows + request_state_bytes(
        config.max_queued_requests if layout.arrivals else None, layout.deadlines
    )
    observation_size = layout.size
    if population is None:
        population = scenario.sample_population(np.random.default_rng(config.population_seed))
    populations = _population_bytes(population)
    env_bytes = 8 * (1 + ENV_ROWS) + 1 + 4 * observation_size + 8  # + truncated, observation, a list slot
    shared = (
        8 * max_draft
        + 16 * observation_size
        + CONSTANTS.itemsize  # positions, observation scales
        + 16 * len(scenario.verify_profile_points[0])
        + 16  # the gain ring's newest slot and the blocks' next_round (int64 each)
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


class RoundOutcome:
    """What one round produced: row views of the compiled step's outputs (a
    :class:`~multispin_env.layout.RoundBuffers`, new arrays each round), arrays over envs (users on the last axis).
    """

    __slots__ = ("buffers",)

    def __init__(self, buffers: RoundBuffers) -> None:
        self.buffers = buffers

    @property
    def draft_lengths(self) -> FloatArray:
        """(n, K) L_k, tokens."""
        return self.buffers.rounds[R_DRAFT_LENGTHS]

    @property
    def bandwidth(self) -> FloatArray:
        """(n, K) shares b_k."""
        return self.buffers.rounds[R_BANDWIDTH]

    @property
    def accepted(self) -> FloatArray:
        """(n, K) A_k, tokens."""
        return self.buffers.rounds[R_ACCEPTED]

    @property
    def tokens(self) -> FloatArray:
        """(n, K) n_k = A_k + 1 (eq. 4), tokens."""
        return self.buffers.rounds[R_TOKENS]

    @property
    def dropped(self) -> FloatArray:
        """(n, K) 1.0 where the upload missed the deadline (eq. 1')."""
        return self.buffers.rounds[R_DROPPED]

    @property
    def energy(self) -> FloatArray:
        """(n, K) device energy E_k, J (section 5.7)."""
        return self.buffers.rounds[R_ENERGY]

    @property
    def sync_time(self) -> FloatArray:
        """(n,) tau, s (eq. 1)."""
        return self.buffers.per_env[E_SYNC_TIME]

    @property
    def verify_time(self) -> FloatArray:
        """(n,) T_ver, s (eq. 2)."""
        return self.buffers.per_env[E_VERIFY_TIME]

    @property
    def latency(self) -> FloatArray:
        """(n,) T, s (eq. 3)."""
        return self.buffers.per_env[E_LATENCY]

    @property
    def reward(self) -> FloatArray:
        """(n,) reward_scale (sum_k n_k - energy_weight sum_k E_k)."""
        return self.buffers.per_env[E_REWARD]

    @property
    def truncated(self) -> BoolArray:
        """(n,) clock >= horizon."""
        return self.buffers.truncated

    @property
    def counts(self) -> IntArray:
        """(INT_ROWS, n, K) int64 n_k, A_k, L_k (rows I_TOKENS, I_ACCEPTED, I_DRAFT_LENGTHS)."""
        return self.buffers.counts

    @property
    def observation(self) -> NDArray[np.float32] | None:
        """(n, S) float32 observations after the round when the step wrote them (nothing drawn after it), else
        None."""
        observation = self.buffers.observation
        return observation if observation.shape[0] else None


class MultiSpinCore:
    """``num_envs`` independent Multi-SPIN systems advanced one round per :meth:`step`.

    :param config: validated settings (:func:`multispin_env.config.resolve_config`)
    :param num_envs: number of systems (batch rows)

    Public state (rows = envs, read-only views of the packed arrays): ``clock`` (s), ``gain`` (the complex
    fading h), ``draft_time`` t_k and ``upload_time`` c_k (s/token), ``draft_power`` P_draft,k (W),
    ``spectral_efficiency`` e_k (bit/s/Hz) of the round about to be played, ``mean_upload_time`` (s/token, |h|^2 = 1), ``base_acceptance``, the
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
        self._actions_shape = (n, self.action_size)
        #: The observation's fields (docs/model.md section 5.5): slices on its last axis, and the optional groups
        #: the settings turn on (arrivals, deadlines, energy budget, running throughput).
        self.observation_layout = layout = ObservationLayout.of_config(config, k)
        self.observation_size = layout.size
        #: Whether requests arrive (``arrival_rate`` set; docs/model.md section 5.8).
        self.arrivals = layout.arrivals
        #: Whether requests have completion-time targets (``request_deadline_per_token`` set; eq. (9d)).
        self.deadlines = layout.deadlines
        #: Info keys of the state beyond clock, acceptance and spectral efficiency that the settings add (docs/model.md
        #: section 5.6; the arrival keys are :data:`ARRIVAL_STATE_KEYS`): the remaining energy budget, the running
        #: throughput.
        self.optional_state_keys: tuple[str, ...] = tuple(
            key for key, on in (("energy_left", layout.energy_budget), ("throughput", layout.throughput)) if on
        )
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
                deadline=None
                if config.request_deadline_per_token is None
                else (config.request_deadline_per_token, config.request_deadline_base),
            )
        self._request_state = self.requests.state if self.requests is not None else np.zeros((REQUEST_ROWS, 0, 0))

        # Packed state (never rebound: the public attributes are views of it, the records hold it).
        self._population = np.ones((POPULATION_ROWS, n, k))
        self._counts = np.zeros((COUNT_ROWS, n, k))
        self._channel = np.empty((CHANNEL_ROWS, n, k))
        # Complex gains h of this round and the csi_delay rounds before: a ring buffer, the current one in the slot
        # _newest[0] (the compiled round advances it).
        self._gains = np.ones((config.csi_delay + 1, n, k), dtype=np.complex128)
        self._newest = np.zeros(1, dtype=np.int64)
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
        self._last_round: RoundBuffers | None = None
        self._process_ready = False  # True after a full reset
        # The process's arrays are updated in place (docs/model.md section 9), so the record can hold them.
        self._state = SystemState(
            self._population,
            self._counts,
            self._channel,
            self._gains,
            self._newest,
            self.clock,
            self._request_state,
            self.process.cumulative_hazard,
        )

        # Random variates of a round come from blocks of `_block_rounds` rounds (fewer, larger RNG calls: each
        # costs ~1 us), refilled in place: Exp(1) (the acceptance samples) and N(0, 1) (fading innovations,
        # drafting-time jitter), drawn in this order when a block is used up; a full reset discards the unused
        # rest. The compiled round reads its variates at the blocks' next_round and advances it.
        self._block_rounds = rounds = _block_rounds(n, k)
        per_user = (n, k)
        self._exponential_block = np.zeros((rounds, *per_user))
        self._normal_block = np.zeros((rounds, 2, *(per_user if self.fading.evolves else (0, 0))))
        self._jitter_block = np.zeros((rounds, *(per_user if config.draft_time_jitter > 0.0 else (0, 0))))
        self._blocks = RandomBlocks(
            self._exponential_block, self._normal_block, self._jitter_block, np.full(1, rounds, dtype=np.int64)
        )

        scale = observation_scale(
            layout,
            self.max_draft,
            config.horizon,
            config.mean_request_tokens if layout.arrivals else None,
            self.mean_target if layout.deadlines else None,
            config.energy_budget,
            self.server_round_time() if layout.throughput else None,
        )
        tokens, seconds = (np.ascontiguousarray(a, dtype=np.float64) for a in scenario.verify_profile_points)
        self._fixed = RoundConstants(
            self.kernel_constants(),
            tokens,
            seconds,
            np.ascontiguousarray(np.stack((scale, self.observation_bounds()[1]))),
            layout.offsets,
        )
        #: Factor of each observation entry (raw value in its unit times it, :func:`observation_scale`): the
        #: kernel's encoding, read back by the API's decoding (MultiSpinEnvAPI.observation_value).
        self.observation_scale: FloatArray = self._fixed.observation_scale[0]
        self._no_noise = np.zeros((0, 0), dtype=np.complex128)
        self._no_actions = np.zeros((0, self.action_size))  # the step's "lengths and shares already decoded"
        self._no_restarts = Restarts(np.zeros(0, dtype=np.int64), np.zeros((2, 0, 0)))
        # Restarts within the round's kernel call when no draw would come between the round's and theirs (and
        # the acceptance process needs no reset, see _reset_rows).
        self._restart_in_kernel = not (
            self.process.evolves
            or config.resample_population
            or config.csi_noise_std > 0.0
            or self.requests is not None
        )
        # The step updates the channel and observes in its kernel unless the estimate needs noise or the
        # observation shows requests (they arrive and start after the round).
        self._finish_in_kernel = config.csi_noise_std == 0.0 and not self.arrivals
        self._compiled = _kernels().COMPILED

    def kernel_constants(self) -> NDArray[np.void]:
        """The record of :data:`~multispin_env.layout.CONSTANTS` the kernels read, filled by name from the
        derived values below, the resolved scenario's fields or the config's settings (in that order: the
        scenario holds the resolved value of the config's overrides such as ``doppler_hz``)."""
        deadline = self.config.upload_deadline
        derived = {
            "length_entries": self.length_entries,
            "observed_is_true": self._observed_is_true,
            "upload_deadline": np.inf if deadline is None else deadline,
            "fading": self.fading.kernel_code,
            "fading_line_of_sight": self.fading.line_of_sight,
            "fading_scatter": self.fading.scatter,
            "arrivals": self.arrivals,
            "energy_budget": np.inf if self.config.energy_budget is None else self.config.energy_budget,
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
        self.draft_power = self._population[P_DRAFT_POWER]  # P_draft,k, W (section 5.7)
        self.mean_upload_time = self._population[P_MEAN_UPLOAD_TIME]  # c_k of the mean channel, s/token
        self.upload_time = self._channel[H_UPLOAD_TIME]  # c_k of the current channel, s/token
        self.spectral_efficiency = self._channel[H_EFFICIENCY]  # e_k of the current channel, bit/s/Hz

    def __getstate__(self) -> dict[str, Any]:
        """Pickle/deepcopy support: the compiled functions are looked up again, the views re-linked on
        unpickling (the records and the attributes share their arrays in the copy as in the original)."""
        state = self.__dict__.copy()
        state["_compiled"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._link_views()
        self._compiled = _kernels().COMPILED

    # ------------------------------------------------------------------ state
    @property
    def gain(self) -> NDArray[np.complex128]:
        """Complex fading gains h (n, K) of the round about to be played (a view of the gain ring buffer)."""
        return self._gains[self._newest[0]]

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
        return None if self._last_round is None else RoundOutcome(self._last_round)

    def observation_bounds(self) -> tuple[FloatArray, FloatArray]:
        """Low and high of one observation (the Box of the single observation space)."""
        return observation_bounds(self.observation_layout, self.scenario, self.draft_time)

    @property
    def mean_target(self) -> float:
        """The completion-time target of a request of the mean length, s: base + per_token * mean_request_tokens
        (eq. (9d); the slack observation's unit); nan without deadlines."""
        per_token = self.config.request_deadline_per_token
        if per_token is None:
            return float("nan")
        return self.config.request_deadline_base + per_token * self.config.mean_request_tokens

    def server_round_time(self) -> float:
        """T_ver(K) + T_dl, s: the round of server-only decoding with every user in the batch (eq. (2'), (3));
        the unit of the observed running throughput (section 5.9: x_k times it is tokens per such round)."""
        tokens, seconds = self.scenario.verify_profile_points
        return float(verification_times(float(self.num_users), (tokens, seconds))) + self.scenario.downlink_time

    @property
    def energy_spent(self) -> FloatArray:
        """Device energy E_k summed over the episode's rounds so far (n, K), J (section 5.7)."""
        return self._counts[C_ENERGY_SPENT]

    @property
    def energy_left(self) -> FloatArray:
        """The remaining energy budget B_k (n, K), J (section 5.7, eq. (5.7a)); inf without a budget. A new
        array."""
        budget = self.config.energy_budget
        return remaining_energy(np.inf if budget is None else budget, self.energy_spent)

    @property
    def episode_tokens(self) -> FloatArray:
        """Counted tokens n_k summed over the episode's rounds so far (n, K)."""
        return self._counts[C_EPISODE_TOKENS]

    @property
    def throughput(self) -> FloatArray:
        """The running throughput x_k = episode tokens / clock (n, K), tokens/s (section 5.9); 0 before the first
        round. A new array."""
        return running_throughput(self.episode_tokens, self.clock[:, None])

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
        # payload_bits as a float: the ufunc's float64 loop, the one the kernels use (an int would compile another)
        self._population[P_MEAN_UPLOAD_TIME, index] = upload_time_per_token(
            float(self.scenario.payload_bits), self.scenario.bandwidth_hz, mean_efficiency
        )
        self.base_acceptance[index] = [p.acceptance for p in populations]

    # ------------------------------------------------------------------ reset
    def reset(self, rng: np.random.Generator) -> None:
        """Start new episodes in every env, drawing from ``rng``."""
        self._blocks.next_round[0] = self._block_rounds  # the unused rest of the blocks is discarded
        self._gains[...] = 1.0
        self._newest[0] = 0
        self._last_round = None
        self._process_ready = False
        self._reset_rows(np.arange(self.num_envs), rng)
        self._process_ready = True  # every row's process state is now its population's
        self._update_channel(rng)

    def restart(self, rows: BoolArray, rng: np.random.Generator) -> None:
        """New episodes now in the envs of the mask ``rows``, the others untouched (partial and same-step resets)."""
        self._reset_rows(np.flatnonzero(rows), rng)
        self._update_channel(rng)

    def _restarts(self, index: NDArray[np.intp], rng: np.random.Generator) -> Restarts:
        """The :class:`~multispin_env.layout.Restarts` of the envs ``index``: their rows and the N(0, 1) pairs
        (2, count, K) of their start gains, drawn only when the fading model's start gains are random (the kernel
        turns them into gains as the model's ``initial_gains`` does)."""
        # numpy's own call: a kernel taking the Generator costs ~7 us to unbox it, more than a few rows' draws.
        shape = (2, index.size, self.num_users)
        normals = rng.standard_normal(shape) if self.fading.evolves else self._no_restarts.normals
        return Restarts(index.astype(np.int64, copy=False), normals)

    def _reset_rows(self, index: NDArray[np.intp], rng: np.random.Generator) -> None:
        """New episodes in the envs ``index``: population (if resampled), clock, counts, channel, acceptance."""
        if self.config.resample_population:
            self._set_populations(index, [self.scenario.sample_population(rng) for _ in range(index.size)])
        self._compiled.reset_rows(self._state, self._fixed, self._restarts(index, rng))
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
    def _checked_actions(self, actions: FloatArray) -> FloatArray:
        """``actions`` if they are what the compiled step reads, a C-contiguous float64 array (num_envs,
        action_size); ValueError otherwise (the step is called without numba's type checks)."""
        if actions.dtype != np.float64 or actions.shape != self._actions_shape or not actions.flags.c_contiguous:
            raise ValueError(
                f"actions must be a C-contiguous float64 array of shape {self._actions_shape}, got "
                f"{actions.dtype} {actions.shape}"
            )
        return actions

    def decode(self, actions: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Draft lengths and shares (n, K) of a batch of raw float64 actions (n, action_size), clipped into
        [-1, 1] (docs/model.md section 8.1); ValueError if an entry is NaN or inf."""
        if actions.dtype != np.float64 or actions.ndim != 2 or actions.shape[1] != self.action_size:
            raise ValueError(
                f"actions must be a float64 array (n, {self.action_size}), got {actions.dtype} {actions.shape}"
            )
        actions = np.ascontiguousarray(actions)
        out = np.empty((2, actions.shape[0], self.num_users))  # the rows R_DRAFT_LENGTHS and R_BANDWIDTH
        if not self._compiled.decode(actions, self._fixed, out):
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
        """Play one round with decoded lengths/shares (num_envs, K); returns the outcome and advances the state.

        ``reset_rows`` (boolean mask over envs) start new episodes in those envs instead: they ignore the action
        (their round in the outcome is zero and not truncated) and share one channel update with the others.
        The outcome's arrays are not shared with the state.
        """
        return RoundOutcome(self._play(self._no_actions, rng, reset_rows, (draft_lengths, bandwidth)))

    def step_actions(
        self, actions: FloatArray, rng: np.random.Generator, reset_rows: BoolArray | None = None
    ) -> RoundOutcome:
        """:meth:`decode` and :meth:`step` in one kernel call: raw actions, a C-contiguous float64 array
        (num_envs, action_size), clipped into [-1, 1]; ValueError (state and generator untouched) if an entry is
        NaN or inf."""
        return RoundOutcome(self._play(self._checked_actions(actions), rng, reset_rows, None))

    def _play(
        self,
        actions: FloatArray,
        rng: np.random.Generator,
        reset_rows: BoolArray | None,
        decoded: tuple[FloatArray, FloatArray] | None,
        given: FloatArray | None = None,
    ) -> RoundBuffers:
        """The round of :meth:`step` (``decoded`` lengths and shares, empty ``actions``), :meth:`step_actions`
        and :meth:`step_single` (raw ``actions``, decoded by the kernel): one call of the compiled step, the
        draws that follow the round, the restarts; returns the round's outputs (also kept for
        ``last_outcome``). ``given``: the actions as the caller gave them, if not ``actions`` (a NaN/inf entry is
        named by its index in them)."""
        # The kernel rejects a NaN/inf action before it changes anything, but a block refill or the restarts'
        # start gains would be drawn before it runs: check first whenever something is drawn first.
        used_up = self._blocks.next_round[0] == self._block_rounds
        if reset_rows is not None or used_up:
            check_finite(actions if given is None else given)
        if used_up:
            self._next_block(rng)
        restarts = self._no_restarts
        if reset_rows is not None and self._restart_in_kernel and self._process_ready:  # no draw comes between
            restarts = self._restarts(reset_rows.nonzero()[0], rng)  # as in _reset_rows
            reset_rows = None
        finish = reset_rows is None and self._finish_in_kernel
        n, k = self.num_envs, self.num_users
        # tuple.__new__: the record without its generated __new__'s argument binding (a quarter of a microsecond a
        # step, ~2% of the single env's); the fields in RoundBuffers' order.
        out: RoundBuffers = tuple.__new__(
            RoundBuffers,
            (
                np.empty((ROUND_ROWS, n, k)),
                np.empty((ENV_ROWS, n)),
                np.empty(n, dtype=bool),
                np.empty((INT_ROWS, n, k), dtype=np.int64),
                # The observations come out of the same kernel call when nothing is drawn after the round.
                np.empty((n if finish else 0, self.observation_size), dtype=np.float32),
            ),
        )
        if decoded is not None:
            out.rounds[R_DRAFT_LENGTHS], out.rounds[R_BANDWIDTH] = decoded
        if self._compiled.step(actions, self._state, self._blocks, self._fixed, restarts, out, finish) < 0:
            raise nonfinite_error(actions if given is None else given)
        self._last_round = out
        if self.process.evolves:
            self.process.advance(out.rounds[R_TOKENS], rng)
        if self.requests is not None:
            self.requests.advance(out.rounds[R_TOKENS], out.per_env[E_LATENCY], self.clock, rng)
        if reset_rows is not None:
            rows = np.flatnonzero(reset_rows)
            self._reset_rows(rows, rng)
            self._discard(out, rows)
        if not finish:
            self._update_channel(rng)
        return out

    def step_single(
        self, action: FloatArray, rng: np.random.Generator
    ) -> tuple[NDArray[np.float32], float, bool, dict[str, Any]]:
        """The single env's step, the path of :meth:`step_actions` and :meth:`report` for a batch of one raw
        action (action_size,) and its row. Returns (observation (S,), reward, truncated, info), the info of one
        system (per-user arrays (K,), floats). ValueError (state and generator untouched) if an entry is NaN or
        inf.
        """
        out = self._play(self._checked_actions(action.reshape(1, -1)), rng, None, None, action)
        observation, info = self._report(out, 0)
        return observation, out.per_env.item(E_REWARD, 0), out.truncated.item(0), info

    def _next_block(self, rng: np.random.Generator) -> int:
        """Index of this round's variates in the blocks (the round advances it), refilling them in place when
        used up."""
        next_round = self._blocks.next_round
        if next_round[0] < self._block_rounds:
            return int(next_round[0])
        self._compiled.standard_exponential(rng, self._exponential_block.reshape(-1))  # = rng.standard_exponential
        if self.fading.evolves:
            self._compiled.standard_normal(rng, self._normal_block.reshape(-1))  # = rng.standard_normal
        sigma = self.config.draft_time_jitter
        if sigma > 0.0:  # log-normal factors exp(sigma z - sigma^2 / 2) of the draft times (section 5.3)
            jitter = self._jitter_block
            self._compiled.standard_normal(rng, jitter.reshape(-1))
            np.exp(sigma * jitter - 0.5 * sigma * sigma, out=jitter)
        next_round[0] = 0
        return 0

    @property
    def _block_index(self) -> int:
        """The next round's index in the blocks of variates (``_block_rounds``: used up)."""
        return int(self._blocks.next_round[0])

    # ---------------------------------------------------------------- channel
    def _update_channel(self, rng: np.random.Generator) -> None:
        """Spectral efficiency and upload time of the current channel, and the observed estimate (in place).

        The estimate is the channel of ``csi_delay`` rounds ago plus CN(0, csi_noise_std^2) noise drawn here.
        """
        std = self.config.csi_noise_std
        noise = std * rayleigh_gains(rng, (self.num_envs, self.num_users)) if std > 0.0 else self._no_noise
        self._compiled.update_channel(self._state, self._fixed, noise)

    # ------------------------------------------------------------ observation
    def observation(self) -> NDArray[np.float32]:
        """The float32 observations (n, observation_size), a new array (docs/model.md section 5.5)."""
        out = np.empty((self.num_envs, self.observation_size), dtype=np.float32)
        self._compiled.observe(self._state, self._fixed, out)
        return out

    @staticmethod
    def _discard(out: RoundBuffers, rows: NDArray[np.intp]) -> None:
        """Zero the round of the systems ``rows`` in ``out`` (its per-user rows, times, reward, counts) and
        clear their truncation: the sub-envs that ignored the action and started a new episode instead (what
        the kernel does itself when it restarts them)."""
        for row in rows:  # a few rows a step: basic indexing is cheaper than fancy indexing here
            out.rounds[:, row] = 0.0  # L, b, A, n, dropped, energy (the layout's round rows)
            out.per_env[:E_CLOCK, row] = 0.0  # tau, T_ver, T, reward
            out.counts[:, row] = 0
        out.truncated[rows] = False

    def report(self, outcome: RoundOutcome, row: int | None = None) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """The observation and the info dict after the round ``outcome`` of :meth:`step`/:meth:`step_actions`
        (docs/model.md section 8): of every env (arrays with envs on the first axis: the vector env's), or with
        ``row`` of that env alone (per-user arrays (K,) and floats: the single env's). Every array is new (the
        outcome's own arrays are new each round, the state's are copied)."""
        return self._report(outcome.buffers, row)

    def _report(self, out: RoundBuffers, row: int | None) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """:meth:`report` of the round's outputs ``out`` (the one place where the info dict is assembled)."""
        rounds, counts = out.rounds, out.counts
        # A row of every per-user array, and the times as floats (one tolist: cheaper than a float() each).
        at, times = (slice(None), out.per_env) if row is None else (row, out.per_env[:, row].tolist())
        info = {
            "tokens": counts[I_TOKENS, at],
            "accepted": counts[I_ACCEPTED, at],
            "draft_lengths": counts[I_DRAFT_LENGTHS, at],
            "bandwidth": rounds[R_BANDWIDTH, at],
            "dropped": rounds[R_DROPPED, at].astype(bool),  # 0.0 or 1.0 (a cast costs a third of a compare)
            "energy": rounds[R_ENERGY, at],
            "latency": times[E_LATENCY],
            "sync_time": times[E_SYNC_TIME],
            "verify_time": times[E_VERIFY_TIME],
        }
        self._state_entries(info, row)
        if self.arrivals:
            arrivals = self.arrival_info(row)
            info.update({key: arrivals[key] for key in ARRIVAL_ROUND_KEYS})
            if self.deadlines:
                info.update({key: arrivals[key] for key in DEADLINE_ROUND_KEYS})
        observation = out.observation if out.observation.shape[0] else self.observation()
        return (observation if row is None else observation[row]), info

    def arrival_info(self, row: int | None = None) -> dict[str, Any]:
        """With arrivals: the info keys :data:`ARRIVAL_ROUND_KEYS` (of the last round) and
        :data:`ARRIVAL_STATE_KEYS` (of the current state), new arrays (n, K), or (K,) of the env ``row``."""
        requests = self.requests
        if requests is None:
            raise ValueError("arrival info needs request arrivals (arrivals=True)")
        at = slice(None) if row is None else row
        info = {
            "completed": requests.completed[at].copy(),
            "completion_time": requests.completion_time[at].copy(),
            "blocked": requests.blocked[at].copy(),
            "active": requests.active[at],
            "remaining": requests.remaining[at].astype(np.int64),
            "queued": requests.waiting[at].astype(np.int64),
        }
        if self.deadlines:  # eq. (9d)
            info["deadline_met"] = requests.met[at].copy()
            info["deadline_missed"] = requests.missed[at].copy()
            info["slack"] = requests.slack(self.clock)[at]
        return info

    def state_info(self, row: int | None = None) -> dict[str, Any]:
        """The info keys of the current state (after a reset, and in every round's :meth:`report`): the clock (s)
        and the true state of the round about to be played, new arrays over envs, or of the env ``row`` alone
        (a float clock, per-user arrays (K,))."""
        info: dict[str, Any] = {}
        self._state_entries(info, row)
        return info

    def _state_entries(self, info: dict[str, Any], row: int | None) -> None:
        """Write the keys of :meth:`state_info` into ``info`` (of every env, or of the env ``row``)."""
        if row is None:
            info["clock"] = self.clock.copy()
            info["acceptance"] = self.process.rate.copy()
            info["spectral_efficiency"] = self.spectral_efficiency.copy()
        else:
            info["clock"] = self.clock.item(row)
            info["acceptance"] = self.process.rate[row].copy()
            info["spectral_efficiency"] = self.spectral_efficiency[row].copy()
        if self.arrivals:
            arrivals = self.arrival_info(row)
            info.update({key: arrivals[key] for key in ARRIVAL_STATE_KEYS})
            if self.deadlines:
                info.update({key: arrivals[key] for key in DEADLINE_STATE_KEYS})
        at = slice(None) if row is None else row
        for key in self.optional_state_keys:  # energy_left, throughput: the properties of those names
            info[key] = getattr(self, key)[at]
