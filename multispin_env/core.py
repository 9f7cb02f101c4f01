"""The batched Multi-SPIN dynamics shared by the single and the vector environment.

:class:`MultiSpinCore` simulates ``num_envs`` independent systems of K users,
one round (model.md section 2) per :meth:`MultiSpinCore.step`, with arrays of
shape (num_envs, K). :class:`~multispin_env.envs.MultiSpinEnv` is a batch of
one; :class:`~multispin_env.vector_env.MultiSpinVectorEnv` a batch of N. The
physics lives only here.

One round, for every system at once:

1. the action decodes to draft lengths L_k and bandwidth shares b_k (:meth:`MultiSpinCore.decode`);
2. sync time tau (eq. 1), verification time T_ver (eq. 2) and latency T (eq. 3) over the round's true
   channel, i.e. the upload times c_k = D / (W e_k) of the fading state at the round start;
3. accepted prefixes A_k sampled from the acceptance process, tokens n_k = A_k + 1 (eq. 4);
4. the clock advances by T, the acceptance estimate and the acceptance process are updated and the
   channel takes one Gauss-Markov step h' = rho h + sqrt(1 - rho^2) w, rho = J0(2 pi f_D T)
   (model.md section 4), giving the channel of the next round.

The numpy methods here are the reference implementation ("numpy" backend; formulas inlined with the
equation they implement). With ``backend="numba"`` (config; the default when numba is importable)
:meth:`MultiSpinCore.decode`, :meth:`MultiSpinCore.step`, :meth:`MultiSpinCore.step_single`,
:meth:`MultiSpinCore.observation`, :meth:`MultiSpinCore.info_arrays` and the channel update and restarts run
the JIT-compiled kernels of :mod:`multispin_env._kernels` on the same state, which is packed for them into a
few float64 arrays (rows ``P_*``, ``C_*``, ``H_*`` below) and a ring buffer of complex gains. Both backends
draw the same variates from the env's numpy Generator in the same order (per round: the blocks of
:meth:`MultiSpinCore._next_block`, the acceptance process's draws, restarts, CSI noise) and compute in the
same floating-point order, so a seed gives the same trajectory with either.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log1p

from multispin_env.acceptance import PositionalAcceptance, make_acceptance_process
from multispin_env.channel import (
    DEVICE_CLASSES,
    MIN_SPECTRAL_EFFICIENCY,
    complex_normal,
    fading_correlation,
    gauss_markov_step,
    rayleigh_gains,
)
from multispin_env.config import EnvConfig
from multispin_env.model import RoundParams
from multispin_env.scenarios import Population

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["MultiSpinCore", "MultiSpinEnvAPI", "RoundOutcome", "CHANNEL_SCALE", "DRAFT_TIME_SCALE", "CHANNEL_OBS_MAX"]

#: Observation unit of the channel entry: spectral efficiency in units of 10 bit/s/Hz.
CHANNEL_SCALE = 10.0
#: Largest observable channel entry (spectral efficiency 100 bit/s/Hz, an SNR of ~300 dB: never reached).
CHANNEL_OBS_MAX = 10.0
#: Observation unit of the draft-time entry: 10 ms per token.
DRAFT_TIME_SCALE = 0.01
#: Acceptance estimates are clipped into [ACCEPTANCE_EPS, 1 - ACCEPTANCE_EPS] when recovered for a solver.
ACCEPTANCE_EPS = 1e-6

_LN2 = math.log(2.0)
# Shares below this are treated as this in the division of eq. (1): a user that does not draft has
# L_k c_k = 0 and share 0, and 0 / _TINY_SHARE = 0 is its (zero) upload time without a 0/0.
_TINY_SHARE = 1e-300

# Rows of the packed state arrays (n, K each), shared by both backends and indexed by the numba kernels.
# (numba's cache does not notice a change of these numbers: clear multispin_env/__pycache__/_kernels* then.)
#: ``_population``: nominal t_k (s/token), linear mean SNR, c_k (s/token) and ln(1 + SNR) of the mean channel.
P_DRAFT_TIME, P_SNR, P_MEAN_UPLOAD_TIME, P_MEAN_NATS = range(4)
#: ``_counts``: discounted accepted draft tokens S and first rejections F; last round's L_k and n_k.
C_SUCCESSES, C_FAILURES, C_LAST_DRAFT_LENGTHS, C_LAST_TOKENS = range(4)
#: ``_channel``: c_k (s/token) and ln(1 + SNR |h|^2) of the true channel, ln(1 + SNR |h_hat|^2) of the estimate.
H_UPLOAD_TIME, H_NATS, H_OBSERVED_NATS = range(3)
#: Per-user rows of a kernel round's output: L_k, b_k, A_k, n_k and (single-env step) the next round's e_k.
R_DRAFT_LENGTHS, R_BANDWIDTH, R_ACCEPTED, R_TOKENS, R_SPECTRAL_EFFICIENCY = range(5)
#: Per-env rows of a kernel round's output: tau, T_ver, T (s), reward, clock after the round (s).
E_SYNC_TIME, E_VERIFY_TIME, E_LATENCY, E_REWARD, E_CLOCK = range(5)


class RoundOutcome(NamedTuple):
    """What one round produced, arrays over envs (and users on the last axis)."""

    draft_lengths: FloatArray  # (n, K), tokens
    bandwidth: FloatArray  # (n, K), shares
    accepted: FloatArray  # (n, K), A_k
    tokens: FloatArray  # (n, K), n_k = A_k + 1
    sync_time: FloatArray  # (n,), s, eq. (1)
    verify_time: FloatArray  # (n,), s, eq. (2)
    latency: FloatArray  # (n,), s, eq. (3)
    reward: FloatArray  # (n,), reward_scale * sum_k n_k
    truncated: BoolArray  # (n,), clock >= horizon


class MultiSpinCore:
    """``num_envs`` independent Multi-SPIN systems advanced one round per :meth:`step`.

    :param config: validated settings (:func:`multispin_env.config.resolve_config`)
    :param num_envs: number of systems (batch rows)

    State (rows = envs): ``clock`` (s), the complex fading ``gain`` h, the true
    ``spectral_efficiency`` e_k and ``upload_time`` c_k (s/token) of the round about
    to be played, the acceptance process, the discounted acceptance counts, and the
    last round's draft lengths and tokens. Arrays are updated in place (packed for the
    kernels: see the module docstring); the outputs of the methods never alias them.
    """

    def __init__(self, config: EnvConfig, num_envs: int) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        scenario = config.scenario
        self.config = config
        self.scenario = scenario
        self.num_envs = n = int(num_envs)
        self.num_users = k = scenario.num_users
        self.max_draft = scenario.max_draft
        self.homogeneous = config.homogeneous
        #: Action entries that encode draft lengths (1 common length, or one per user).
        self.length_entries = 1 if config.homogeneous else k
        self.action_size = self.length_entries + k
        self.observation_size = 5 * k + 1

        # Constants of the hot path.
        self.payload_bits = scenario.payload_bits
        self._upload_numerator = self.payload_bits * _LN2 / scenario.bandwidth_hz  # c = D ln2 / (W ln(1 + SNR g))
        self._min_nats = MIN_SPECTRAL_EFFICIENCY * _LN2
        self._doppler_hz = scenario.doppler_hz
        self._verify_base = scenario.verify_base
        self._verify_per_token = scenario.verify_per_token
        self._downlink_time = scenario.downlink_time
        self._batch_tokens = float(k)  # the "+1" of every user in eq. (2)
        self._half_max_draft = scenario.max_draft / 2.0
        # Action decoding (x + 1) * scale: L_max / 2 for length entries, 1 / 2 for share weights.
        # Tiled to the batch so the product is one contiguous (fast) ufunc loop.
        scale = np.full(self.action_size, 0.5)
        scale[: self.length_entries] = self._half_max_draft
        self._decode_scale = np.tile(scale, (n, 1))
        self._forgetting = config.acceptance_forgetting
        self._prior_tokens = config.acceptance_prior * config.acceptance_prior_weight
        self._prior_weight = config.acceptance_prior_weight
        self._horizon = config.horizon
        self._reward_scale = config.reward_scale
        self._jitter = config.draft_time_jitter
        self._csi_noise = config.csi_noise_std
        self._observed_is_true = config.csi_delay == 0 and config.csi_noise_std == 0.0

        self.process = make_acceptance_process(
            config.acceptance_process, n, k, scenario.max_draft, config.settings, config.task_profile
        )

        # Population arrays, (n, K): views of the packed ``_population`` (never rebound).
        self.populations: list[Population] = []
        self.snr_db = np.zeros((n, k))
        self._population = np.ones((4, n, k))
        self._population[P_SNR] = 0.0
        self._channel = np.empty((3, n, k))
        self._link_views()
        self.base_acceptance = np.full((n, k), 0.5)
        self._fixed_population: Population | None = None
        if not config.resample_population:
            self._fixed_population = scenario.sample_population(np.random.default_rng(config.population_seed))
            self._set_populations(slice(None), [self._fixed_population] * n)

        # Dynamic state.
        self.clock = np.zeros(n)
        # Complex gains h of this round and the csi_delay rounds before: a ring buffer, newest at _newest.
        self._gains = np.ones((config.csi_delay + 1, n, k), dtype=np.complex128)
        self._newest = 0
        # Channel of the round about to be played (views of the packed ``_channel``, written in place).
        self._channel[H_UPLOAD_TIME] = self.mean_upload_time
        self._channel[H_NATS] = self._mean_nats
        self._channel[H_OBSERVED_NATS] = self._mean_nats
        # Discounted acceptance counts and the last round (properties successes, ..., last_tokens).
        self._counts = np.zeros((4, n, k))
        self._last_round: RoundOutcome | tuple[FloatArray, FloatArray, BoolArray] | None = None
        self._process_ready = False  # True after a full reset
        self._ones = np.ones(k)

        # Random variates of a round come from blocks of `_block_rounds` rounds (fewer, larger RNG calls: each
        # costs ~1 us, ~7 us for the numba backend's normals): Exp(1) (the acceptance samples) and N(0, 1)
        # (fading innovations, drafting-time jitter), drawn in this order when a block is used up; a full
        # reset discards the unused rest.
        self._block_rounds = max(1, min(64, 16384 // (n * k)))
        self._block_index = self._block_rounds
        self._exponential_block = np.zeros((0, n, k))
        self._normal_block = np.zeros((self._block_rounds, 2, 0, 0))  # (rounds, 2, n, k) with fading
        self._jitter_block = np.zeros((self._block_rounds, 0, 0))  # (rounds, n, k) with jitter

        # Observation = clip(concatenated raw fields * scale, low, high), scale and high tiled to the batch.
        per_user = (1.0 / (_LN2 * CHANNEL_SCALE), 1.0 / DRAFT_TIME_SCALE, 1.0, 1.0 / self.max_draft,
                    1.0 / (self.max_draft + 1))
        scale = np.append(np.repeat(per_user, k), 1.0 / config.horizon)
        self._obs_scale = np.tile(scale, (n, 1))
        self._obs_high = np.tile(self.observation_bounds()[1], (n, 1))

        # Backend: the numba kernels, or None for the numpy reference.
        self.backend = config.backend
        self._kernels: ModuleType | None = None
        if config.backend == "numba":
            self._setup_kernels(np.stack((scale, self._obs_high[0])))

    def _link_views(self) -> None:
        """The per-field views of the packed population and channel arrays (never rebound)."""
        self.draft_time = self._population[P_DRAFT_TIME]  # nominal t_k, s/token
        self._snr_linear = self._population[P_SNR]
        self.mean_upload_time = self._population[P_MEAN_UPLOAD_TIME]  # c_k of the mean channel, s/token
        self._mean_nats = self._population[P_MEAN_NATS]
        self.upload_time = self._channel[H_UPLOAD_TIME]  # c_k of the current channel, s/token
        self._nats = self._channel[H_NATS]  # ln(1 + SNR |h|^2) of the true channel
        self._observed_nats = self._channel[H_OBSERVED_NATS]  # the same for the observed channel estimate

    def __getstate__(self) -> dict[str, Any]:
        """Pickle/deepcopy support: the kernels module is re-imported, the views re-linked on unpickling."""
        state = self.__dict__.copy()
        state["_kernels"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._link_views()
        if self.backend == "numba":
            self._kernels = importlib.import_module("multispin_env._kernels")

    def _setup_kernels(self, observation_scale: FloatArray) -> None:
        """Load the numba kernels (compiled, or loaded from numba's cache, on the first use in a process)."""
        kernels = importlib.import_module("multispin_env._kernels")
        config, scenario = self.config, self.scenario
        constants = np.zeros(1, dtype=kernels.CONSTANTS)
        values = {
            "verify_base": self._verify_base,
            "verify_per_token": self._verify_per_token,
            "downlink_time": self._downlink_time,
            "batch_tokens": self._batch_tokens,
            "reward_scale": self._reward_scale,
            "forgetting": self._forgetting,
            "prior_tokens": self._prior_tokens,
            "prior_rest": self._prior_weight - self._prior_tokens,
            "horizon": self._horizon,
            "upload_numerator": self._upload_numerator,
            "min_nats": self._min_nats,
            "two_pi_doppler": 2.0 * np.pi * np.float64(scenario.doppler_hz),  # as channel.fading_correlation
            "jitter": self._jitter,
            "half_max_draft": self._half_max_draft,
            "inverse_ln2": 1.0 / _LN2,
            "length_entries": self.length_entries,
            "fading": config.fading,
            "positional": isinstance(self.process, PositionalAcceptance),
            "observed_is_true": self._observed_is_true,
        }
        for name, value in values.items():
            constants[name] = value
        self._constants = constants
        self._observation_scale = np.ascontiguousarray(observation_scale)  # (2, S): scale, high
        process = self.process
        self._cumulative_hazard = (
            process._cumulative_hazard if isinstance(process, PositionalAcceptance) else np.zeros((1, 1, 1))
        )
        self._no_noise = np.zeros((0, 0), dtype=np.complex128)
        self._no_normals = np.zeros((2, 0, 0))
        self._no_rows = np.zeros(0, dtype=np.int64)
        self._all_rows = np.arange(self.num_envs, dtype=np.int64)
        # Restarts within the round's kernel call: no draw would come between the round's and theirs, and the
        # acceptance process needs no reset (see _reset_rows).
        self._restart_in_kernel = not (self.process.evolves or config.resample_population or self._csi_noise > 0.0)
        # The single-env step updates the channel and observes in its kernel unless the estimate needs noise.
        self._finish_in_kernel = self._csi_noise == 0.0
        self._kernels = kernels

    # ------------------------------------------------------------------ state
    @property
    def gain(self) -> NDArray[np.complex128]:
        """Complex fading gains h (n, K) of the round about to be played (a view of the gain ring buffer)."""
        return self._gains[self._newest]

    @gain.setter
    def gain(self, value: ArrayLike) -> None:
        self._gains[self._newest] = value

    @property
    def successes(self) -> FloatArray:
        """Discounted accepted draft tokens S (n, K) of the acceptance estimate."""
        return self._counts[C_SUCCESSES]

    @successes.setter
    def successes(self, value: ArrayLike) -> None:
        self._counts[C_SUCCESSES] = value

    @property
    def failures(self) -> FloatArray:
        """Discounted first rejections F (n, K) of the acceptance estimate."""
        return self._counts[C_FAILURES]

    @failures.setter
    def failures(self, value: ArrayLike) -> None:
        self._counts[C_FAILURES] = value

    @property
    def last_draft_lengths(self) -> FloatArray:
        """L_k (n, K) of the last round (0 after a reset); assigning copies into the state."""
        return self._counts[C_LAST_DRAFT_LENGTHS]

    @last_draft_lengths.setter
    def last_draft_lengths(self, value: ArrayLike) -> None:
        self._counts[C_LAST_DRAFT_LENGTHS] = value

    @property
    def last_tokens(self) -> FloatArray:
        """n_k (n, K) of the last round (0 after a reset); assigning copies into the state."""
        return self._counts[C_LAST_TOKENS]

    @last_tokens.setter
    def last_tokens(self, value: ArrayLike) -> None:
        self._counts[C_LAST_TOKENS] = value

    @property
    def last_outcome(self) -> RoundOutcome | None:
        """The last round's :class:`RoundOutcome` (None after a reset)."""
        last = self._last_round
        if last is None or isinstance(last, RoundOutcome):
            return last
        rounds, per_env, truncated = last  # the single-env kernel step's buffers
        outcome = RoundOutcome(*rounds[:4], *per_env[:4], truncated)
        self._last_round = outcome
        return outcome

    @last_outcome.setter
    def last_outcome(self, value: RoundOutcome | None) -> None:
        self._last_round = value

    # ------------------------------------------------------------------ layout
    @property
    def observation_layout(self) -> dict[str, slice]:
        """Slices of each observation field (last axis); every per-user field has K entries, user order.

        - ``spectral_efficiency``: observed e_k = log2(1 + SNR_k |h_k|^2) / 10 (bit/s/Hz / 10) of the channel
          estimate at the round start (delayed/noisy when configured), clipped to [0, 10];
        - ``draft_time``: nominal t_k / 10 ms;
        - ``acceptance``: running estimate a_hat_k in (0, 1);
        - ``last_draft_lengths``: L_k / L_max of the last round (0 after reset);
        - ``last_tokens``: n_k / (L_max + 1) of the last round (0 after reset);
        - ``time_left``: max(0, 1 - clock / horizon), one entry.
        """
        k = self.num_users
        names = ("spectral_efficiency", "draft_time", "acceptance", "last_draft_lengths", "last_tokens")
        layout = {name: slice(i * k, (i + 1) * k) for i, name in enumerate(names)}
        layout["time_left"] = slice(5 * k, 5 * k + 1)
        return layout

    def observation_bounds(self) -> tuple[FloatArray, FloatArray]:
        """Low and high of one observation (the Box of the single observation space)."""
        layout = self.observation_layout
        low = np.zeros(self.observation_size)
        high = np.ones(self.observation_size)
        high[layout["spectral_efficiency"]] = CHANNEL_OBS_MAX
        classes = [name for name, weight in self.scenario.device_mix.items() if weight > 0]
        slowest = max([DEVICE_CLASSES[name] for name in classes] + [float(self.draft_time.max())])
        high[layout["draft_time"]] = slowest / DRAFT_TIME_SCALE
        return low, high

    # ------------------------------------------------------------- population
    def _set_populations(self, rows: NDArray[np.intp] | slice, populations: list[Population]) -> None:
        index = np.arange(self.num_envs)[rows]
        if not self.populations:
            self.populations = [populations[0]] * self.num_envs
        for i, population in zip(index, populations, strict=True):
            self.populations[i] = population
        self.snr_db[index] = [p.snr_db for p in populations]
        self._snr_linear[index] = np.power(10.0, self.snr_db[index] / 10.0)  # as channel.spectral_efficiency
        self.draft_time[index] = [p.draft_time for p in populations]
        self.base_acceptance[index] = [p.acceptance for p in populations]
        self.mean_upload_time[index] = self.scenario.upload_time(self.snr_db[index], 1.0)
        self._mean_nats[index] = np.maximum(np.log1p(self._snr_linear[index]), self._min_nats)

    # ------------------------------------------------------------------ reset
    def reset(self, rng: np.random.Generator) -> None:
        """Start new episodes in every env, drawing from ``rng``."""
        self._block_index = self._block_rounds
        self._gains[...] = 1.0
        self._newest = 0
        self._counts[...] = 0.0
        self._last_round = None
        self._process_ready = False
        self._reset_rows(slice(None), self.num_envs, rng)
        self._process_ready = True  # every row's process state is now its population's
        self._update_channel(rng)

    def restart(self, rows: BoolArray, rng: np.random.Generator) -> None:
        """New episodes now in the envs of the mask ``rows``, the others untouched (partial and same-step resets)."""
        index = np.flatnonzero(rows)
        self._reset_rows(index, index.size, rng)
        self._update_channel(rng)

    def _reset_rows(self, rows: NDArray[np.intp] | slice, count: int, rng: np.random.Generator) -> None:
        """New episodes in ``rows`` (``count`` envs): population (if resampled), clock, channel, acceptance."""
        if self.config.resample_population:
            self._set_populations(rows, [self.scenario.sample_population(rng) for _ in range(count)])
        if self._kernels is not None:
            index = self._all_rows[rows] if isinstance(rows, slice) else np.asarray(rows)
            if index.dtype == np.bool_:
                index = np.flatnonzero(index)
            normals = rng.standard_normal((2, count, self.num_users)) if self.config.fading else self._no_normals
            self._kernels.reset_rows(index.astype(np.int64, copy=False), normals, self.config.fading, self.clock,
                                     self._gains, self._counts)
            # A process that does not evolve, reset to the same (fixed) population's rates, would not change.
            if self.process.evolves or self.config.resample_population or not self._process_ready:
                self.process.reset(rows, self.base_acceptance, rng)
            return
        self.clock[rows] = 0.0
        fresh = rayleigh_gains(rng, (count, self.num_users)) if self.config.fading else 1.0
        self._gains[:, rows] = fresh  # the delayed estimates start from the fresh channel too
        self.process.reset(rows, self.base_acceptance, rng)
        self._counts[:, rows] = 0.0

    # ----------------------------------------------------------------- action
    def decode(self, action: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Draft lengths and shares of a batch of actions already clipped into [-1, 1], shape (n, action_size).

        - lengths: L = round((x + 1) / 2 * L_max) of the first ``length_entries`` entries (one common
          length when homogeneous);
        - share weights: w_k = (x + 1) / 2 in [0, 1] of the last K entries;
        - users with L_k = 0 get no bandwidth; a drafting user with w_k = 0 cannot upload, so its length
          becomes 0 too, unless *every* drafting user has w_k = 0: then they share the band equally;
        - shares b_k = w_k [L_k > 0] / sum_j w_j [L_j > 0] (linear normalisation: any ratio is reachable).

        The numba backend clips too, and raises ValueError for NaN or inf.
        """
        if self._kernels is not None:
            actions = np.ascontiguousarray(action, dtype=np.float64)
            out = np.empty((2, actions.shape[0], self.num_users))
            if not self._kernels.decode(actions, self._half_max_draft, self.length_entries, out):
                raise ValueError(f"action contains NaN or inf: {action}")
            return out[0], out[1]
        split = self.length_entries
        scale = self._decode_scale if action.shape[0] == self.num_envs else self._decode_scale[:1]
        scaled = action * scale
        scaled += scale  # (x + 1) * scale: lengths in [0, L_max], weights in [0, 1]
        lengths = np.rint(scaled[:, :split])
        weights = scaled[:, split:] * (lengths > 0.0)
        total = np.cumsum(weights, axis=1)[:, -1]  # a sequential sum (the kernels' order)
        if not total.all():
            empty = total == 0.0
            weights[empty] = np.broadcast_to(lengths > 0.0, weights.shape)[empty]
            total = np.cumsum(weights, axis=1)[:, -1]
            total[total == 0.0] = 1.0
        lengths = lengths * (weights > 0.0)
        return lengths, weights / total[:, None]

    def encode(self, draft_lengths: ArrayLike, bandwidth: ArrayLike) -> NDArray[np.float32]:
        """The float32 action(s) that :meth:`decode` maps to these lengths and shares (leading batch axes ok).

        Lengths decode exactly. Shares decode to b_k / sum over drafting users of b_j (the band always goes
        to the drafting users in full), to float32 precision (absolute error ~1e-7); shares of users with
        L_k = 0 are ignored. Raises ValueError for invalid lengths/shares, for a drafting user with share 0,
        and (homogeneous) for unequal non-zero lengths.
        """
        lengths = np.asarray(draft_lengths, dtype=np.float64)
        k = self.num_users
        if lengths.ndim == 0 or lengths.shape[-1] != k:
            raise ValueError(f"draft_lengths must have {k} entries (one per user) on the last axis, got "
                             f"shape {lengths.shape}")
        if not np.all(np.isfinite(lengths)) or np.any(lengths != np.round(lengths)) or np.any(
            (lengths < 0) | (lengths > self.max_draft)
        ):
            raise ValueError(f"draft_lengths must be integers in 0..{self.max_draft}, got {lengths}")
        shares = np.asarray(bandwidth, dtype=np.float64)
        if shares.shape != lengths.shape:
            raise ValueError(f"bandwidth must have the shape of draft_lengths {lengths.shape}, got {shares.shape}")
        if not np.all(np.isfinite(shares)) or np.any(shares < 0.0):
            raise ValueError(f"bandwidth shares must be finite and >= 0, got {shares}")
        drafting = lengths > 0
        if np.any(drafting & (shares <= 0.0)):
            raise ValueError("bandwidth: every drafting user (draft_lengths > 0) needs a share > 0")
        if np.any((shares * drafting).sum(axis=-1) > 1.0 + 1e-9):
            raise ValueError(f"bandwidth shares of the drafting users must sum to at most 1, got {shares}")
        largest = np.where(drafting, shares, 0.0).max(axis=-1, keepdims=True)
        weights = np.where(drafting, shares / np.where(largest > 0, largest, 1.0), 0.0)
        share_entries = np.where(drafting, 2.0 * weights - 1.0, -1.0).astype(np.float32)
        # A drafting user's entry must stay above -1 (weight 0 would drop its draft).
        above = np.nextafter(np.float32(-1.0), np.float32(0.0))
        share_entries = np.where(drafting, np.maximum(share_entries, above), share_entries)
        if self.homogeneous:
            common = lengths.max(axis=-1, keepdims=True)
            if np.any(drafting & (lengths != common)):
                raise ValueError(f"homogeneous env: all drafting users must have the same length, got {lengths}")
            length_entries = common
        else:
            length_entries = lengths
        length_entries = (length_entries / self._half_max_draft - 1.0).astype(np.float32)
        return np.concatenate([length_entries, share_entries], axis=-1).astype(np.float32)

    # ------------------------------------------------------------------- step
    def step(
        self,
        draft_lengths: FloatArray,
        bandwidth: FloatArray,
        rng: np.random.Generator,
        reset_rows: BoolArray | None = None,
    ) -> RoundOutcome:
        """Play one round with decoded lengths/shares (n, K); returns the outcome and advances the state.

        ``reset_rows`` (boolean mask over envs) start new episodes in those envs after the round (their
        outcome is still returned; the vector env discards it), sharing one channel update with the others.
        The outcome's arrays are not shared with the state.
        """
        if self._kernels is not None:
            return self._step_kernels(draft_lengths, bandwidth, rng, reset_rows)
        n, k = draft_lengths.shape
        exponential, normals, jitter = self._round_draws(rng)
        draft_time = self.draft_time
        if self._jitter > 0.0:  # model.md section 5.3: t_k times a mean-one log-normal factor
            draft_time = draft_time * jitter
        # eq. (1): finish time L t + L c / b of each drafting user (0 for L = 0), sync = the latest one
        finish = (draft_lengths * self.upload_time) / np.maximum(bandwidth, _TINY_SHARE)
        finish += draft_lengths * draft_time
        sync = self._max_over_users(finish)
        # eq. (2): T_ver = T0 + kappa sum_k (L_k + 1);  eq. (3): T = tau + T_ver + T_dl
        verify = (draft_lengths @ self._ones + self._batch_tokens) * self._verify_per_token + self._verify_base
        latency = sync + verify + self._downlink_time
        # eq. (4): sampled accepted prefixes and tokens n_k = A_k + 1
        accepted = self.process.sample(draft_lengths, exponential)
        tokens = accepted + 1.0
        reward = (tokens @ self._ones) * self._reward_scale  # an exact integer sum
        # Observed outcomes update the discounted counts (accepted tokens; a first rejection if A < L).
        successes, failures = self.successes, self.failures
        successes *= self._forgetting
        successes += accepted
        failures *= self._forgetting
        failures += accepted < draft_lengths
        self.process.advance(tokens, rng)
        self.clock += latency
        truncated = self.clock >= self._horizon
        self.last_draft_lengths = draft_lengths  # copied into the state
        self.last_tokens = tokens
        outcome = RoundOutcome(draft_lengths, bandwidth, accepted, tokens, sync, verify, latency, reward, truncated)
        self._last_round = outcome
        if self.config.fading:  # Gauss-Markov step over the round's duration (model.md section 4)
            self._evolve_gain(latency, normals)
        if reset_rows is not None:
            index = np.flatnonzero(reset_rows)
            self._reset_rows(index, index.size, rng)
        self._update_channel(rng)
        return outcome

    def _step_kernels(
        self, draft_lengths: FloatArray, bandwidth: FloatArray, rng: np.random.Generator, reset_rows: BoolArray | None
    ) -> RoundOutcome:
        """:meth:`step` by the numba kernel (same draws in the same order: blocks, advance, resets, CSI noise)."""
        n, k = draft_lengths.shape
        block = self._next_block(rng)
        draft_lengths = np.ascontiguousarray(draft_lengths, dtype=np.float64)
        bandwidth = np.ascontiguousarray(bandwidth, dtype=np.float64)
        rounds = np.empty((4, n, k))  # rows R_ACCEPTED and R_TOKENS are written
        per_env = np.empty((5, n))
        truncated = np.empty(n, dtype=bool)
        restarts, restart_normals = self._no_rows, self._no_normals
        if reset_rows is not None and self._restart_in_kernel and self._process_ready:  # no draw comes between
            restarts = reset_rows.nonzero()[0]  # (np.flatnonzero, faster)
            if self.config.fading:
                restart_normals = rng.standard_normal((2, restarts.size, k))  # as rayleigh_gains in _reset_rows
            reset_rows = None
        channel_update = reset_rows is None and self._finish_in_kernel
        self._kernels.play_round(
            draft_lengths, bandwidth, self._population, self._counts, self._channel, self._gains, self._newest,
            self.clock, self.process._hazard, self._cumulative_hazard, self._exponential_block, self._normal_block,
            self._jitter_block, block, restarts, restart_normals, self._constants, channel_update, rounds, per_env,
            truncated,
        )  # fmt: skip
        self._block_index = block + 1
        if self.config.fading:
            self._newest = (self._newest + 1) % self._gains.shape[0]
        outcome = RoundOutcome(draft_lengths, bandwidth, rounds[R_ACCEPTED], rounds[R_TOKENS], *per_env[:4], truncated)
        self._last_round = outcome
        if self.process.evolves:
            self.process.advance(outcome.tokens, rng)
        if reset_rows is not None:
            index = np.flatnonzero(reset_rows)
            self._reset_rows(index, index.size, rng)
        if not channel_update:
            self._update_channel(rng)
        return outcome

    def step_single(
        self, action: FloatArray, rng: np.random.Generator
    ) -> tuple[NDArray[np.float32], float, bool, dict[str, Any]]:
        """The single env's step (batch of one): one raw float64 action (action_size,), checked, clipped,
        decoded and played. Returns (observation (S,), reward, truncated, info) with the single env's info
        (int64 ``tokens``/``accepted``/``draft_lengths``, float ``latency``/``sync_time``/``verify_time``/
        ``clock``, new arrays). ValueError (state and generator untouched) if an entry is NaN or inf.
        """
        kernels = self._kernels
        if kernels is None:
            if not np.isfinite(action).all():
                raise ValueError(f"action contains NaN or inf: {action}")
            x = np.minimum(np.maximum(action, -1.0), 1.0).reshape(1, -1)
            lengths, shares = self.decode(x)
            outcome = self.step(lengths, shares, rng)
            info = {
                "tokens": outcome.tokens[0].astype(np.int64),
                "accepted": outcome.accepted[0].astype(np.int64),
                "draft_lengths": lengths[0].astype(np.int64),
                "bandwidth": shares[0],
                "latency": float(outcome.latency[0]),
                "sync_time": float(outcome.sync_time[0]),
                "verify_time": float(outcome.verify_time[0]),
                "clock": float(self.clock[0]),
                "acceptance": self.process.rate[0].copy(),
                "spectral_efficiency": self.true_spectral_efficiency()[0],
            }
            return self.observation()[0], float(outcome.reward[0]), bool(outcome.truncated[0]), info
        if self._block_index == self._block_rounds and not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf: {action}")  # before the block refill draws
        block = self._next_block(rng)
        k = self.num_users
        rounds = np.empty((5, 1, k))
        per_env = np.empty((5, 1))
        truncated = np.empty(1, dtype=bool)
        ints = np.empty((3, 1, k), dtype=np.int64)
        obs = np.empty((1, self.observation_size), dtype=np.float32)
        status = kernels.step_action(
            action, self._population, self._counts, self._channel, self._gains, self._newest, self.clock,
            self.process._hazard, self._cumulative_hazard, self._exponential_block, self._normal_block,
            self._jitter_block, block, self._constants, self._finish_in_kernel, self._observation_scale,
            rounds, per_env, truncated, ints, obs,
        )  # fmt: skip
        if status < 0:
            raise ValueError(f"action contains NaN or inf: {action}")
        self._block_index = block + 1
        if self.config.fading:
            self._newest = (self._newest + 1) % self._gains.shape[0]
        self._last_round = (rounds, per_env, truncated)
        if self.process.evolves:
            self.process.advance(rounds[R_TOKENS], rng)
        if not self._finish_in_kernel:  # the estimate's noise is drawn after the process's draws
            self._update_channel(rng)
            np.multiply(self._nats, 1.0 / _LN2, out=rounds[R_SPECTRAL_EFFICIENCY])
            obs = self.observation()
        sync, verify, latency, reward, clock = per_env[:, 0].tolist()
        tokens, accepted, lengths = ints[:, 0]
        info = {
            "tokens": tokens,
            "accepted": accepted,
            "draft_lengths": lengths,
            "bandwidth": rounds[R_BANDWIDTH, 0],
            "latency": latency,
            "sync_time": sync,
            "verify_time": verify,
            "clock": clock,
            "acceptance": self.process.rate[0].copy(),
            "spectral_efficiency": rounds[R_SPECTRAL_EFFICIENCY, 0],
        }
        return obs[0], reward, status > 0, info

    def _next_block(self, rng: np.random.Generator) -> int:
        """Index of this round's variates in the blocks, refilling them when used up (the caller stores
        index + 1 in ``_block_index`` once the round is played)."""
        if self._block_index < self._block_rounds:
            return self._block_index
        shape = (self._block_rounds, self.num_envs, self.num_users)
        self._exponential_block = rng.standard_exponential(shape)
        if self.config.fading:
            self._normal_block = self._standard_normal(rng, (self._block_rounds, 2, self.num_envs, self.num_users))
        if self._jitter > 0.0:  # log-normal factors exp(sigma z - sigma^2 / 2) of the draft times
            sigma = self._jitter
            self._jitter_block = np.exp(sigma * self._standard_normal(rng, shape) - 0.5 * sigma * sigma)
        self._block_index = 0
        return 0

    def _standard_normal(self, rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
        """``rng.standard_normal(shape)``; the numba backend draws the identical values twice as fast."""
        if self._kernels is None:
            return rng.standard_normal(shape)
        out = np.empty(shape)
        self._kernels.standard_normal(rng, out.reshape(-1))
        return out

    def _round_draws(self, rng: np.random.Generator) -> tuple[FloatArray, FloatArray, FloatArray]:
        """This round's variates: Exp(1) (n, K) of the acceptance samples, N(0, 1) (2, n, K) of the fading
        innovation and the drafting-time jitter factors (n, K) (the last two empty when unused)."""
        i = self._next_block(rng)
        self._block_index = i + 1
        return self._exponential_block[i], self._normal_block[i], self._jitter_block[i]

    def _max_over_users(self, values: FloatArray) -> FloatArray:
        """max over the user axis; column-wise for large batches (a short-axis reduction is slow in numpy)."""
        if self.num_envs < 16:
            return values.max(axis=1)
        result = np.maximum(values[:, 0], values[:, 1]) if self.num_users > 1 else values[:, 0].copy()
        for user in range(2, self.num_users):
            np.maximum(result, values[:, user], out=result)
        return result

    # ---------------------------------------------------------------- channel
    def _evolve_gain(self, dt: FloatArray, normals: FloatArray) -> None:
        """Gauss-Markov step h' = rho h + sqrt(1 - rho^2) w, rho = J0(2 pi f_D dt) (model.md section 4), with
        w = (z1 + i z2) / sqrt(2) from the pre-drawn normals (2, n, K), into the next slot of the ring."""
        rho = fading_correlation(self._doppler_hz, dt[:, None])
        following = (self._newest + 1) % self._gains.shape[0]
        self._gains[following] = gauss_markov_step(self.gain, rho, innovation=complex_normal(normals))
        self._newest = following

    def _update_channel(self, rng: np.random.Generator) -> None:
        """Spectral efficiency and upload time of the current channel, and the observed estimate (in place).

        The estimate is the channel of ``csi_delay`` rounds ago plus CN(0, csi_noise_std^2) noise drawn here.
        """
        shape = (self.num_envs, self.num_users)
        noise = self._csi_noise * rayleigh_gains(rng, shape) if self._csi_noise > 0.0 else None
        if self._kernels is not None:
            self._kernels.update_channel(self._population, self._channel, self._gains, self._newest, self._constants,
                                         self._no_noise if noise is None else noise)
            return
        if self.config.fading:
            gain = self.gain
            power = np.square(gain.real) + np.square(gain.imag)  # |h|^2
            nats = log1p(self._snr_linear * power)  # ln(1 + SNR |h|^2) = e ln 2
            np.maximum(nats, self._min_nats, out=self._nats)
            np.divide(self._upload_numerator, self._nats, out=self.upload_time)  # c_k = D / (W e_k)
        else:  # |h|^2 = 1: the population's mean channel, exactly as Scenario.upload_time
            self.upload_time[...] = self.mean_upload_time
            self._nats[...] = self._mean_nats
        if self._observed_is_true:
            self._observed_nats[...] = self._nats
            return
        oldest = (self._newest + 1) % self._gains.shape[0]
        estimate = self._gains[oldest] if self.config.fading else self.gain
        if noise is not None:
            estimate = estimate + noise
        power = np.square(estimate.real) + np.square(estimate.imag)
        np.maximum(log1p(self._snr_linear * power), self._min_nats, out=self._observed_nats)

    # ------------------------------------------------------------ observation
    def acceptance_estimate(self) -> FloatArray:
        """a_hat = (S + w0 a0) / (S + F + w0), S/F the discounted accepted tokens / first rejections."""
        numerator = self.successes + self._prior_tokens
        return numerator / (numerator + self.failures + (self._prior_weight - self._prior_tokens))

    def observation(self) -> NDArray[np.float32]:
        """The float32 observations (n, observation_size), a new array; see :attr:`observation_layout`."""
        if self._kernels is not None:
            out = np.empty((self.num_envs, self.observation_size), dtype=np.float32)
            self._kernels.observe(self._population, self._counts, self._channel, self.clock, self._constants,
                                  self._observation_scale, out)
            return out
        numerator = self.successes + self._prior_tokens
        denominator = numerator + self.failures
        denominator += self._prior_weight - self._prior_tokens
        raw = np.concatenate(
            (
                self._observed_nats,  # ln(1 + SNR |h_hat|^2) = e ln 2
                self.draft_time,
                numerator / denominator,  # a_hat = (S + w0 a0) / (S + F + w0)
                self.last_draft_lengths,
                self.last_tokens,
                (self._horizon - self.clock)[:, None],
            ),
            axis=1,
        )
        raw *= self._obs_scale
        np.maximum(raw, 0.0, out=raw)
        np.minimum(raw, self._obs_high, out=raw)
        return raw.astype(np.float32)

    # ----------------------------------------------------------------- oracle
    def true_spectral_efficiency(self) -> FloatArray:
        """e_k (bit/s/Hz) of the channel of the round about to be played, (n, K), a new array."""
        return self._nats * (1.0 / _LN2)

    def round_params(self, index: int = 0) -> RoundParams:
        """RoundParams of env ``index``'s round about to be played: true current acceptance rate (position-1
        rate for ``positional``), nominal draft times, and the upload times of the round's true channel."""
        return RoundParams(
            acceptance=self.process.rate[index].copy(),
            draft_time=self.draft_time[index].copy(),
            upload_time=np.array(self.upload_time[index]),
            verify_base=self._verify_base,
            verify_per_token=self._verify_per_token,
            max_draft=self.max_draft,
            downlink_time=self._downlink_time,
        )

    def mean_round_params(self, index: int = 0) -> RoundParams:
        """RoundParams at the mean channel (|h|^2 = 1) and the acceptance process's long-run mean rates of
        env ``index``'s population (for static policies). With ``fading=False`` and i.i.d. acceptance this
        is exactly the model the env simulates."""
        return RoundParams(
            acceptance=self.process.mean_rate(self.base_acceptance[index]),
            draft_time=self.draft_time[index].copy(),
            upload_time=self.mean_upload_time[index].copy(),
            verify_base=self._verify_base,
            verify_per_token=self._verify_per_token,
            max_draft=self.max_draft,
            downlink_time=self._downlink_time,
        )

    # ---------------------------------------------------------------- helpers
    def observation_field(self, observation: ArrayLike, name: str) -> FloatArray:
        """Field ``name`` of one or a batch of observations, as float64 (users on the last axis)."""
        obs = np.asarray(observation, dtype=np.float64)
        if obs.ndim == 0 or obs.shape[-1] != self.observation_size:
            raise ValueError(f"observation must have {self.observation_size} entries on the last axis, "
                             f"got shape {obs.shape}")
        return obs[..., self.observation_layout[name]]

    def info_arrays(self, outcome: RoundOutcome) -> dict[str, Any]:
        """Per-round info arrays (rows = envs); every array is new (not shared with the state)."""
        if self._kernels is not None:  # one kernel call for the conversions and copies
            shape = outcome.tokens.shape
            ints, floats, clock = np.empty((3, *shape), dtype=np.int64), np.empty((2, *shape)), np.empty(shape[0])
            self._kernels.round_info(outcome.tokens, outcome.accepted, outcome.draft_lengths, self._channel,
                                     self.clock, self.process.rate, self._constants, ints, floats, clock)
            tokens, accepted, draft_lengths = ints
            acceptance, efficiency = floats
        else:
            tokens = outcome.tokens.astype(np.int64)
            accepted = outcome.accepted.astype(np.int64)
            draft_lengths = outcome.draft_lengths.astype(np.int64)
            clock = self.clock.copy()
            acceptance = self.process.rate.copy()
            efficiency = self.true_spectral_efficiency()
        return {
            "tokens": tokens,
            "accepted": accepted,
            "draft_lengths": draft_lengths,
            "bandwidth": outcome.bandwidth,
            "latency": outcome.latency,
            "sync_time": outcome.sync_time,
            "verify_time": outcome.verify_time,
            "clock": clock,
            "acceptance": acceptance,
            "spectral_efficiency": efficiency,
        }

    def state_info(self) -> dict[str, Any]:
        """Info after a reset: the clock and the true state of the first round."""
        return {
            "clock": self.clock.copy(),
            "acceptance": self.process.rate.copy(),
            "spectral_efficiency": self.true_spectral_efficiency(),
        }

    def render_ansi(self, index: int = 0) -> str:
        """A per-user text table of env ``index``'s last round."""
        outcome = self.last_outcome
        lines = [f"clock {self.clock[index]:8.3f} s / horizon {self._horizon:g} s"]
        if outcome is None:
            lines.append("(no round played yet)")
        else:
            lines.append(
                f"round latency {outcome.latency[index] * 1e3:8.2f} ms = sync {outcome.sync_time[index] * 1e3:.2f}"
                f" + verify {outcome.verify_time[index] * 1e3:.2f} + downlink {self._downlink_time * 1e3:.2f} ms;"
                f" tokens {int(outcome.tokens[index].sum())}"
            )
        lines.append("      | next round: true state                        | last round")
        lines.append(" user | t_k ms | e_k b/s/Hz | c_k ms | a_k   | a_hat | L_k | b_k   | A_k | n_k")
        estimate = self.acceptance_estimate()[index]
        for user in range(self.num_users):
            row = (
                f" {user:4d} | {self.draft_time[index, user] * 1e3:6.1f} |"
                f" {self._nats[index, user] / _LN2:10.3f} | {self.upload_time[index, user] * 1e3:6.2f} |"
                f" {self.process.rate[index, user]:.3f} | {estimate[user]:.3f} |"
            )
            if outcome is None:
                row += "   - |     - |   - |   -"
            else:
                row += (
                    f" {int(outcome.draft_lengths[index, user]):3d} | {outcome.bandwidth[index, user]:.3f} |"
                    f" {int(outcome.accepted[index, user]):3d} | {int(outcome.tokens[index, user]):3d}"
                )
            lines.append(row)
        return "\n".join(lines)

    def render_rgb(self, index: int = 0) -> NDArray[np.uint8]:
        """An RGB image (H, W, 3) of env ``index``'s last round (needs matplotlib, the ``render`` extra)."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            from gymnasium.error import DependencyNotInstalled

            raise DependencyNotInstalled(
                'rgb_array rendering needs matplotlib: pip install "multispin-env[render]"'
            ) from exc
        users = np.arange(self.num_users)
        outcome = self.last_outcome
        figure = Figure(figsize=(6.4, 3.6), dpi=80)
        canvas = FigureCanvasAgg(figure)
        left, right = figure.subplots(1, 2)
        if outcome is not None:
            left.bar(users - 0.2, outcome.draft_lengths[index], width=0.4, label="draft length L_k")
            left.bar(users + 0.2, outcome.tokens[index], width=0.4, label="tokens n_k")
            right.bar(users, outcome.bandwidth[index], color="tab:green")
            left.legend(loc="upper right", fontsize="small")
        left.set_xlabel("user")
        left.set_ylim(0, self.max_draft + 1)
        right.set_xlabel("user")
        right.set_ylabel("bandwidth share b_k")
        right.set_ylim(0, 1)
        figure.suptitle(f"clock {self.clock[index]:.3f} s", fontsize="small")
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class MultiSpinEnvAPI:
    """Methods shared by :class:`~multispin_env.envs.MultiSpinEnv` and the vector env (both hold ``_core``).

    Observations and actions may carry leading batch axes everywhere here.
    """

    _core: MultiSpinCore

    @property
    def observation_layout(self) -> dict[str, slice]:
        """Slices of the observation fields; see :attr:`MultiSpinCore.observation_layout`."""
        return self._core.observation_layout

    @property
    def num_users(self) -> int:
        """K."""
        return self._core.num_users

    @property
    def max_draft(self) -> int:
        """L_max, tokens."""
        return self._core.max_draft

    def _checked_actions(self, action: Any) -> FloatArray:
        """Actions as a float64 (batch, action_size) array, clipped into [-1, 1]; ValueError if malformed."""
        size = self._core.action_size
        try:
            x = np.array(action, dtype=np.float64, order="C")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be an array of {size} numbers, got {action!r}") from exc
        if x.ndim == 0 or x.shape[-1] != size:
            raise ValueError(f"action must have {size} entries on the last axis, got shape {x.shape}")
        x = x.reshape(-1, size)
        kernels = self._core._kernels
        if kernels is not None:
            if not kernels.clip_actions(x):
                raise ValueError(f"action contains NaN or inf: {x}")
            return x
        if not np.isfinite(x).all():
            raise ValueError(f"action contains NaN or inf: {x}")
        np.maximum(x, -1.0, out=x)
        np.minimum(x, 1.0, out=x)
        return x

    def decode_action(self, action: ArrayLike) -> tuple[NDArray[np.int64], FloatArray]:
        """(draft_lengths, bandwidth) an action decodes to (see :meth:`MultiSpinCore.decode`); leading axes kept.

        Finite out-of-range entries are clipped into [-1, 1]; NaN/inf or a wrong last axis raise ValueError.
        """
        batch = np.shape(action)[:-1]
        lengths, shares = self._core.decode(self._checked_actions(action))
        k = self._core.num_users
        return lengths.astype(np.int64).reshape(*batch, k), shares.reshape(*batch, k)

    def encode_action(self, draft_lengths: ArrayLike, bandwidth: ArrayLike) -> NDArray[np.float32]:
        """The float32 action decoding to ``draft_lengths`` and ``bandwidth`` (see :meth:`MultiSpinCore.encode`)."""
        return self._core.encode(draft_lengths, bandwidth)

    def spectral_efficiency_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Observed e_k in bit/s/Hz."""
        return self._core.observation_field(observation, "spectral_efficiency") * CHANNEL_SCALE

    def upload_time_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Estimated c_k = D / (W e_k) in s/token from the observed channel entry."""
        efficiency = np.maximum(self.spectral_efficiency_from_observation(observation), MIN_SPECTRAL_EFFICIENCY)
        return self._core.payload_bits / (self._core.scenario.bandwidth_hz * efficiency)

    def draft_time_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Nominal t_k in s/token."""
        return self._core.observation_field(observation, "draft_time") * DRAFT_TIME_SCALE

    def acceptance_from_observation(self, observation: ArrayLike) -> FloatArray:
        """The running acceptance estimate a_hat_k, clipped into [1e-6, 1 - 1e-6] (valid for RoundParams)."""
        estimate = self._core.observation_field(observation, "acceptance")
        return np.clip(estimate, ACCEPTANCE_EPS, 1.0 - ACCEPTANCE_EPS)

    def time_left_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Fraction of the horizon left, shape = the batch shape."""
        return self._core.observation_field(observation, "time_left")[..., 0]

    def round_params_from_observation(self, observation: ArrayLike) -> RoundParams:
        """RoundParams an adaptive policy would plan with from one observation (estimated a_k and c_k)."""
        obs = np.asarray(observation, dtype=np.float64)
        if obs.shape != (self._core.observation_size,):
            raise ValueError(f"expected one observation of shape ({self._core.observation_size},), got {obs.shape}")
        return RoundParams(
            acceptance=self.acceptance_from_observation(obs),
            draft_time=self.draft_time_from_observation(obs),
            upload_time=self.upload_time_from_observation(obs),
            verify_base=self._core.scenario.verify_base,
            verify_per_token=self._core.scenario.verify_per_token,
            max_draft=self._core.max_draft,
            downlink_time=self._core.scenario.downlink_time,
        )

    def round_params(self, index: int = 0) -> RoundParams:
        """True RoundParams of the round about to be played (oracle); see :meth:`MultiSpinCore.round_params`."""
        return self._core.round_params(index)

    def mean_round_params(self, index: int = 0) -> RoundParams:
        """RoundParams at the mean channel and mean acceptance (static policies); see
        :meth:`MultiSpinCore.mean_round_params`."""
        return self._core.mean_round_params(index)
