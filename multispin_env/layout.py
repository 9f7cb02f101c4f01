"""The packed state of a batch of systems: which row of which array holds what (read by the compiled round).

The simulator keeps its per-user state in a few C-contiguous float64 arrays of shape (rows, n, K) -- n systems,
K users -- so one kernel call can update all of them. The row numbers below are the only place that layout is
written down; :mod:`multispin_env.core` allocates the arrays and :mod:`multispin_env._kernels` indexes them.
Everything here is plain data (no imports from the package), so importing it creates no cycle.
"""

from __future__ import annotations

import numpy as np

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
    "REQUEST_ROWS",
    "CONSTANT_FIELDS",
    "CONSTANTS",
]

#: ``population``: nominal draft time t_k (s/token), linear mean SNR, upload time c_k (s/token) and spectral
#: efficiency e_k (bit/s/Hz) of the mean channel |h|^2 = 1, drafting power (W).
P_DRAFT_TIME, P_SNR, P_MEAN_UPLOAD_TIME, P_MEAN_EFFICIENCY, P_DRAFT_POWER = range(5)
POPULATION_ROWS = 5
#: ``counts``: discounted accepted draft tokens S and first rejections F (docs/model.md section 5.4); the last
#: round's L_k and n_k.
C_SUCCESSES, C_FAILURES, C_LAST_DRAFT_LENGTHS, C_LAST_TOKENS = range(4)
COUNT_ROWS = 4
#: ``channel``: c_k (s/token) and e_k (bit/s/Hz) of the true channel of the round about to be played, and e_k of
#: its observed estimate.
H_UPLOAD_TIME, H_EFFICIENCY, H_OBSERVED_EFFICIENCY = range(3)
CHANNEL_ROWS = 3
#: Per-user rows of a round's output: L_k, b_k, A_k, n_k, 1.0 if dropped at the deadline, energy (J).
R_DRAFT_LENGTHS, R_BANDWIDTH, R_ACCEPTED, R_TOKENS, R_DROPPED, R_ENERGY = range(6)
ROUND_ROWS = 6
#: Per-system rows of a round's output: tau, T_ver, T (s), reward, clock after the round (s).
E_SYNC_TIME, E_VERIFY_TIME, E_LATENCY, E_REWARD, E_CLOCK = range(5)
ENV_ROWS = 5
#: ``requests`` (docs/model.md section 5.8): 1.0 while the user has a request in progress, the tokens left in
#: it, its arrival time (s), the requests queued behind it and the ring-buffer slot of the oldest queued one.
Q_ACTIVE, Q_REMAINING, Q_ARRIVAL, Q_WAITING, Q_HEAD = range(5)
REQUEST_ROWS = 5

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
)

#: The record type of those constants (a record array of length 1 is passed to the kernels).
CONSTANTS = np.dtype([(name, kind) for name, kind, _ in CONSTANT_FIELDS])
