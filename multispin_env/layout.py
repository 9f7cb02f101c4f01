"""The packed state of a batch of systems: which row of which array holds what (read by the compiled round).

The simulator keeps its per-user state in a few C-contiguous float64 arrays of shape (rows, n, K) -- n systems,
K users -- so one kernel call can update all of them. The row numbers below are the only place that layout is
written down; :mod:`multispin_env.core` allocates the arrays and :mod:`multispin_env._kernels` indexes them.

The compiled functions take those arrays grouped in a few named records (numba namedtuples, section
"Records" below): the state of the batch, the blocks of random variates, the constants, the restarts and the
round's outputs. The observation's fields are listed here too: their order is the observation's layout
(:func:`multispin_env.spaces.observation_layout`), and the kernel writes each field at the offset that layout
gives it (:class:`ObservationOffsets`).

Everything here is plain data (no imports from the package), so importing it creates no cycle.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "P_DRAFT_TIME",
    "P_SNR",
    "P_MEAN_UPLOAD_TIME",
    "P_MEAN_EFFICIENCY",
    "P_DRAFT_POWER",
    "POPULATION_ROWS",
    "C_SUCCESSES",
    "C_FAILURES",
    "C_LAST_DRAFT_LENGTHS",
    "C_LAST_TOKENS",
    "C_ENERGY_SPENT",
    "C_EPISODE_TOKENS",
    "COUNT_ROWS",
    "H_UPLOAD_TIME",
    "H_EFFICIENCY",
    "H_OBSERVED_EFFICIENCY",
    "CHANNEL_ROWS",
    "R_DRAFT_LENGTHS",
    "R_BANDWIDTH",
    "R_ACCEPTED",
    "R_TOKENS",
    "R_DROPPED",
    "R_ENERGY",
    "ROUND_ROWS",
    "E_SYNC_TIME",
    "E_VERIFY_TIME",
    "E_LATENCY",
    "E_REWARD",
    "E_CLOCK",
    "ENV_ROWS",
    "Q_ACTIVE",
    "Q_REMAINING",
    "Q_ARRIVAL",
    "Q_WAITING",
    "Q_HEAD",
    "Q_DUE",
    "REQUEST_ROWS",
    "I_TOKENS",
    "I_ACCEPTED",
    "I_DRAFT_LENGTHS",
    "INT_ROWS",
    "CONSTANT_FIELDS",
    "CONSTANTS",
    "OBSERVATION_FIELDS",
    "ARRIVAL_OBSERVATION_FIELDS",
    "DEADLINE_OBSERVATION_FIELDS",
    "ENERGY_OBSERVATION_FIELDS",
    "THROUGHPUT_OBSERVATION_FIELDS",
    "OPTIONAL_OBSERVATION_FIELDS",
    "ObservationOffsets",
    "SystemState",
    "RandomBlocks",
    "Restarts",
    "RoundConstants",
    "RoundBuffers",
]

#: ``population``: nominal draft time t_k (s/token), linear mean SNR, upload time c_k (s/token) and spectral
#: efficiency e_k (bit/s/Hz) of the mean channel |h|^2 = 1, drafting power (W).
P_DRAFT_TIME, P_SNR, P_MEAN_UPLOAD_TIME, P_MEAN_EFFICIENCY, P_DRAFT_POWER = range(5)
POPULATION_ROWS = 5
#: ``counts``: discounted accepted draft tokens S and first rejections F (docs/model.md section 5.4); the last
#: round's L_k and n_k; the episode's device energy so far (J, section 5.7) and its counted tokens so far (the
#: numerator of the running throughput, section 5.9). A reset zeroes every row.
C_SUCCESSES, C_FAILURES, C_LAST_DRAFT_LENGTHS, C_LAST_TOKENS, C_ENERGY_SPENT, C_EPISODE_TOKENS = range(6)
COUNT_ROWS = 6
#: ``channel``: c_k (s/token) and e_k (bit/s/Hz) of the true channel of the round about to be played, and e_k of
#: its observed estimate.
H_UPLOAD_TIME, H_EFFICIENCY, H_OBSERVED_EFFICIENCY = range(3)
CHANNEL_ROWS = 3
#: Per-user rows of a round's output: L_k, b_k, A_k, n_k, 1.0 if dropped at the deadline, energy (J).
R_DRAFT_LENGTHS, R_BANDWIDTH, R_ACCEPTED, R_TOKENS, R_DROPPED, R_ENERGY = range(6)
ROUND_ROWS = 6
#: Per-user rows of a round's int64 output (the info's integers): n_k, A_k, L_k.
I_TOKENS, I_ACCEPTED, I_DRAFT_LENGTHS = range(3)
INT_ROWS = 3
#: Per-system rows of a round's output: tau, T_ver, T (s), reward, clock after the round (s).
E_SYNC_TIME, E_VERIFY_TIME, E_LATENCY, E_REWARD, E_CLOCK = range(5)
ENV_ROWS = 5
#: ``requests`` (docs/model.md section 5.8): 1.0 while the user has a request in progress, the tokens left in
#: it, its arrival time (s), the requests queued behind it and the ring-buffer slot of the oldest queued one; with
#: request deadlines (eq. (9d)) the time (s, on the clock) by which it should complete.
Q_ACTIVE, Q_REMAINING, Q_ARRIVAL, Q_WAITING, Q_HEAD, Q_DUE = range(6)
REQUEST_ROWS = 6

#: The constants of one batch that the compiled round reads: (name, numpy type, meaning). The core fills a
#: record of :data:`CONSTANTS` from these names in one loop (``MultiSpinCore.kernel_constants``). The
#: verification profile of eq. (2') is an array pair, passed to the kernels beside this record.
CONSTANT_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("downlink_time", "f8", "T_dl, s (eq. 3)"),
    ("upload_deadline", "f8", "s after the round start; later uploads are dropped (eq. 1'; inf: none)"),
    ("transmit_power_w", "f8", "P_tx, W (section 5.7)"),
    ("energy_weight", "f8", "tokens per joule taken off the reward (section 5.7)"),
    ("reward_scale", "f8", "reward per token"),
    ("acceptance_forgetting", "f8", "lambda of the acceptance estimate (section 5.4)"),
    ("acceptance_prior", "f8", "a0 of the acceptance estimate"),
    ("acceptance_prior_weight", "f8", "w0 of the acceptance estimate, pseudo-tokens"),
    ("horizon", "f8", "episode length, s"),
    ("payload_bits", "f8", "D, bits per draft token (section 4)"),
    ("bandwidth_hz", "f8", "W, Hz"),
    ("doppler_hz", "f8", "f_D of the Gauss-Markov fading, Hz (section 4)"),
    ("draft_time_jitter", "f8", "sigma of the log-normal drafting-time factor (section 5.3; 0: none)"),
    ("max_draft", "f8", "L_max, tokens"),
    ("length_entries", "i8", "action entries of the lengths: 1 (homogeneous) or K"),
    ("fading", "i8", "the fading model's kernel_code: 1 Gauss-Markov (Jakes); 0 none, |h|^2 = 1"),
    ("fading_line_of_sight", "f8", "mu of the Gauss-Markov fading, the constant part of h (section 5.2)"),
    ("fading_scatter", "f8", "sigma of the Gauss-Markov fading, the std of h - mu (section 5.2)"),
    ("observed_is_true", "i8", "1: the observed channel is the true one (no CSI delay or noise)"),
    ("arrivals", "i8", "1: requests arrive (section 5.8): idle users play no part, tokens count to the request end"),
    ("energy_budget", "f8", "B, J per device per episode (section 5.7, eq. (5.7a)); inf: unlimited"),
)

#: The record type of those constants (a record array of length 1 is passed to the kernels).
CONSTANTS = np.dtype([(name, kind) for name, kind, _ in CONSTANT_FIELDS])

#: The observation's fields in order (docs/model.md section 5.5): (name, entries per system: "K" or 1, meaning).
OBSERVATION_FIELDS: tuple[tuple[str, str | int, str], ...] = (
    ("spectral_efficiency", "K", "observed e_k = log2(1 + SNR_k |h_k|^2) / 10 bit/s/Hz of the channel estimate"),
    ("draft_time", "K", "nominal t_k / 10 ms"),
    ("acceptance", "K", "running acceptance estimate a_hat_k in (0, 1)"),
    ("last_draft_lengths", "K", "L_k / L_max of the last round (0 after reset)"),
    ("last_tokens", "K", "n_k / (L_max + 1) of the last round (0 after reset)"),
    ("time_left", 1, "max(0, 1 - clock / horizon)"),
)
#: Fields appended when requests arrive (``arrival_rate`` set, docs/model.md section 5.8).
ARRIVAL_OBSERVATION_FIELDS: tuple[tuple[str, str | int, str], ...] = (
    ("active", "K", "1 if the user has a request in progress, else 0"),
    ("remaining", "K", "tokens left in the user's request / mean_request_tokens, clipped at REMAINING_OBS_MAX"),
)
#: Field appended after those when requests have completion-time targets (``request_deadline_per_token`` set,
#: docs/model.md eq. (9d)).
DEADLINE_OBSERVATION_FIELDS: tuple[tuple[str, str | int, str], ...] = (
    (
        "slack",
        "K",
        "time left to the current request's target / the mean target, clipped into [0, SLACK_OBS_MAX] (0: idle or "
        "overdue)",
    ),
)
#: Field appended when devices have an energy budget (``energy_budget`` set, docs/model.md section 5.7).
ENERGY_OBSERVATION_FIELDS: tuple[tuple[str, str | int, str], ...] = (
    ("energy_left", "K", "the device's remaining energy budget / energy_budget, in [0, 1]"),
)
#: Field appended when the running throughput is observed (``observe_throughput``, docs/model.md section 5.9).
THROUGHPUT_OBSERVATION_FIELDS: tuple[tuple[str, str | int, str], ...] = (
    ("throughput", "K", "the user's running throughput x_k (tokens/s) times T_ver(K) + T_dl, clipped at L_max + 1"),
)
#: Every optional field group, in observation order after :data:`OBSERVATION_FIELDS`.
OPTIONAL_OBSERVATION_FIELDS = (
    ARRIVAL_OBSERVATION_FIELDS + DEADLINE_OBSERVATION_FIELDS + ENERGY_OBSERVATION_FIELDS + THROUGHPUT_OBSERVATION_FIELDS
)

# ------------------------------------------------------------------------------------------------ Records
# The arguments of the compiled functions, grouped (each at most 8 arguments). Every array is C-contiguous;
# n systems of K users. The numba types of the fields are in multispin_env/_kernels.py (the signatures).

#: Where each observation field starts on the observation's last axis (an entry index), one field per name of
#: :data:`OBSERVATION_FIELDS` then :data:`OPTIONAL_OBSERVATION_FIELDS`; -1 for a field the observation does not
#: have (no arrivals, no deadlines, no energy budget, the throughput not observed). Built by
#: :attr:`multispin_env.spaces.ObservationLayout.offsets`, never written by hand.
# mypy reads only literal field lists: the names come from the lists above, so the record is typed Any.
ObservationOffsets: Any = namedtuple(  # type: ignore[misc]
    "ObservationOffsets", [name for name, _, _ in OBSERVATION_FIELDS + OPTIONAL_OBSERVATION_FIELDS]
)


class SystemState(NamedTuple):
    """The state of the batch that the round reads and advances (the core owns the arrays)."""

    #: (POPULATION_ROWS, n, K): the P_* rows (t_k s/token, linear SNR, c_k s/token, e_k bit/s/Hz, W)
    population: NDArray[np.float64]
    #: (COUNT_ROWS, n, K): the C_* rows (S, F, last L_k and n_k, energy J and tokens of the episode so far)
    counts: NDArray[np.float64]
    #: (CHANNEL_ROWS, n, K): the H_* rows (c_k s/token, e_k and observed e_k bit/s/Hz)
    channel: NDArray[np.float64]
    #: (csi_delay + 1, n, K) complex128: the ring of the current and past gains h (docs/model.md section 4)
    gains: NDArray[np.complex128]
    #: (1,) int64: the ring's slot of the current gain (the round advances it with fading)
    newest: NDArray[np.int64]
    #: (n,): the clock, s
    clock: NDArray[np.float64]
    #: (REQUEST_ROWS, n, K), or (REQUEST_ROWS, 0, 0) without requests: the Q_* rows (section 5.8)
    requests: NDArray[np.float64]
    #: (n, K, L_max): the acceptance process's cumulative hazards (section 5.1)
    cumulative_hazard: NDArray[np.float64]


class RandomBlocks(NamedTuple):
    """Blocks of random variates for several rounds, drawn by the core (refilled in place when used up)."""

    #: (rounds, n, K): Exp(1) of the accepted prefixes (section 5.1)
    exponential: NDArray[np.float64]
    #: (rounds, 2, n, K), or (rounds, 2, 0, 0) without fading: N(0, 1) pairs of the fading innovations
    normals: NDArray[np.float64]
    #: (rounds, n, K), or (rounds, 0, 0) without jitter: log-normal drafting-time factors (section 5.3)
    jitter: NDArray[np.float64]
    #: (1,) int64: the index in the blocks of the next round's variates (the round advances it)
    next_round: NDArray[np.int64]


class Restarts(NamedTuple):
    """Systems that start a new episode: their rows and their start gains' N(0, 1) pairs."""

    #: (r,) int64: the systems' rows
    rows: NDArray[np.int64]
    #: (2, r, K), or (2, 0, 0) when the start gains are not random (no fading)
    normals: NDArray[np.float64]


class RoundConstants(NamedTuple):
    """What the round reads and never changes."""

    #: (1,) record of :data:`CONSTANTS`
    constants: NDArray[np.void]
    #: the verification profile of eq. (2'): batch sizes (tokens) and their times (s)
    verify_tokens: NDArray[np.float64]
    verify_seconds: NDArray[np.float64]
    #: (2, S): each observation entry's scale (its raw value's factor) and its high bound (section 5.5)
    observation_scale: NDArray[np.float64]
    #: the observation fields' offsets (:data:`ObservationOffsets`)
    observation_offsets: Any


class RoundBuffers(NamedTuple):
    """The outputs of one round (new arrays each round: they are handed to the caller)."""

    #: (ROUND_ROWS, n, K): the R_* rows (L_k, b_k, A_k, n_k, dropped, energy J)
    rounds: NDArray[np.float64]
    #: (ENV_ROWS, n): the E_* rows (tau, T_ver, T s, reward, clock s)
    per_env: NDArray[np.float64]
    #: (n,) bool: clock >= horizon
    truncated: NDArray[np.bool_]
    #: (INT_ROWS, n, K) int64: the I_* rows (n_k, A_k, L_k)
    counts: NDArray[np.int64]
    #: (n, S) float32 observations after the round, or (0, S) when the kernel does not observe
    observation: NDArray[np.float32]
