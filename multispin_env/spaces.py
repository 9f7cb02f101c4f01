"""Action codec and observation layout of the Multi-SPIN environments (docs/model.md sections 8.1-8.2).

The decoding of an action is the compiled round's (:func:`multispin_env._kernels.decode`); this module holds
its inverse (:func:`encode_action`), the observation's fields, scales and bounds, and
:class:`MultiSpinEnvAPI`, the methods the single and the vector env share to read observations in physical
units and to translate allocations into actions.
"""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from multispin_env._checks import first_nonfinite
from multispin_env.channel import DEVICE_CLASSES, upload_time_per_token
from multispin_env.layout import (
    ARRIVAL_OBSERVATION_FIELDS,
    DEADLINE_OBSERVATION_FIELDS,
    OBSERVATION_FIELDS,
    ObservationOffsets,
)
from multispin_env.scenarios import Scenario

if TYPE_CHECKING:
    from multispin_env.core import MultiSpinCore

FloatArray = NDArray[np.float64]

__all__ = [
    "ACCEPTANCE_EPS",
    "ARRIVAL_OBSERVATION_FIELDS",
    "REMAINING_OBS_MAX",
    "DEADLINE_OBSERVATION_FIELDS",
    "SLACK_OBS_MAX",
    "CHANNEL_OBS_MAX",
    "CHANNEL_SCALE",
    "DRAFT_TIME_SCALE",
    "OBSERVATION_FIELDS",
    "CoreAccess",
    "MultiSpinEnvAPI",
    "checked_actions",
    "encode_action",
    "real_array",
    "observation_bounds",
    "observation_layout",
    "observation_offsets",
    "observation_scale",
    "check_finite",
    "nonfinite_error",
]

#: Observation unit of the channel entry: spectral efficiency in units of 10 bit/s/Hz.
CHANNEL_SCALE = 10.0
#: Largest observable channel entry (spectral efficiency 100 bit/s/Hz, an SNR of ~300 dB: never reached).
CHANNEL_OBS_MAX = 10.0
#: Observation unit of the draft-time entry: 10 ms per token.
DRAFT_TIME_SCALE = 0.01
#: Acceptance estimates are clipped into [ACCEPTANCE_EPS, 1 - ACCEPTANCE_EPS] when recovered for a solver.
ACCEPTANCE_EPS = 1e-6

#: Largest observable remaining-tokens entry (requests 10 times longer than the mean read as 10).
REMAINING_OBS_MAX = 10.0
#: Largest observable slack entry (a target 10 mean targets away reads as 10).
SLACK_OBS_MAX = 10.0


def observation_layout(num_users: int, arrivals: bool = False, deadlines: bool = False) -> dict[str, slice]:
    """Slices of each field of :data:`OBSERVATION_FIELDS` (then :data:`ARRIVAL_OBSERVATION_FIELDS` if
    ``arrivals``, then :data:`DEADLINE_OBSERVATION_FIELDS` if ``deadlines``) on the observation's last axis (user
    order)."""
    layout, start = {}, 0
    fields = (
        OBSERVATION_FIELDS
        + (ARRIVAL_OBSERVATION_FIELDS if arrivals else ())
        + (DEADLINE_OBSERVATION_FIELDS if deadlines else ())
    )
    for name, entries, _ in fields:
        size = num_users if entries == "K" else int(entries)
        layout[name] = slice(start, start + size)
        start += size
    return layout


def observation_offsets(num_users: int, arrivals: bool = False, deadlines: bool = False) -> Any:
    """The :data:`~multispin_env.layout.ObservationOffsets` of :func:`observation_layout`: each field's first
    entry, -1 for the arrival fields without ``arrivals`` and the deadline fields without ``deadlines`` (the
    compiled observation writes each field there)."""
    layout = observation_layout(num_users, arrivals, deadlines)
    names: tuple[str, ...] = ObservationOffsets._fields
    return ObservationOffsets(*(layout[name].start if name in layout else -1 for name in names))


def observation_scale(
    num_users: int,
    max_draft: int,
    horizon: float,
    mean_request_tokens: float | None = None,
    mean_target: float | None = None,
) -> FloatArray:
    """Factor of each observation entry: raw value (bit/s/Hz, s/token, -, tokens, tokens, s; with arrivals
    (``mean_request_tokens`` given) then -, tokens; with deadlines (``mean_target``, the mean request's target in
    s, eq. (9d)) then s) times it."""
    per_field = {
        "spectral_efficiency": 1.0 / CHANNEL_SCALE,
        "draft_time": 1.0 / DRAFT_TIME_SCALE,
        "acceptance": 1.0,
        "last_draft_lengths": 1.0 / max_draft,
        "last_tokens": 1.0 / (max_draft + 1),
        "time_left": 1.0 / horizon,
        "active": 1.0,
        "remaining": 1.0 / (mean_request_tokens or 1.0),
        "slack": 1.0 / (mean_target or 1.0),
    }
    layout = observation_layout(num_users, mean_request_tokens is not None, mean_target is not None)
    scale = np.empty(max(where.stop for where in layout.values()))
    for name, where in layout.items():
        scale[where] = per_field[name]
    return scale


def observation_bounds(
    num_users: int, scenario: Scenario, draft_time: FloatArray, arrivals: bool = False, deadlines: bool = False
) -> tuple[FloatArray, FloatArray]:
    """Low and high of one observation (the Box of the single observation space); ``draft_time`` (n, K) the
    populations' t_k in s/token, so that a slowest device outside the scenario's classes is covered."""
    layout = observation_layout(num_users, arrivals, deadlines)
    size = max(where.stop for where in layout.values())
    low, high = np.zeros(size), np.ones(size)
    if arrivals:
        high[layout["remaining"]] = REMAINING_OBS_MAX
    if deadlines:
        high[layout["slack"]] = SLACK_OBS_MAX
    high[layout["spectral_efficiency"]] = CHANNEL_OBS_MAX
    classes = [name for name, weight in scenario.device_mix.items() if weight > 0]
    slowest = max([DEVICE_CLASSES[name] for name in classes] + [float(np.max(draft_time))])
    high[layout["draft_time"]] = slowest / DRAFT_TIME_SCALE
    return low, high


def encode_action(
    draft_lengths: ArrayLike, bandwidth: ArrayLike, *, max_draft: int, homogeneous: bool
) -> NDArray[np.float32]:
    """The float32 action(s) that the env decodes to these lengths and shares (leading batch axes kept).

    Lengths decode exactly. Shares decode to b_k / sum over drafting users of b_j (the band always goes to the
    drafting users in full), to float32 precision (absolute error ~1e-7); shares of users with L_k = 0 are
    ignored. Raises ValueError for invalid lengths/shares, for a drafting user with share 0, and (homogeneous)
    for unequal non-zero lengths.
    """
    lengths = np.asarray(draft_lengths, dtype=np.float64)
    if lengths.ndim == 0:
        raise ValueError(f"draft_lengths must have one entry per user on the last axis, got {draft_lengths!r}")
    if (
        not np.all(np.isfinite(lengths))
        or np.any(lengths != np.round(lengths))
        or np.any((lengths < 0) | (lengths > max_draft))
    ):
        raise ValueError(f"draft_lengths must be integers in 0..{max_draft}, got {lengths}")
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
    if homogeneous:
        common = lengths.max(axis=-1, keepdims=True)
        if np.any(drafting & (lengths != common)):
            raise ValueError(f"homogeneous env: all drafting users must have the same length, got {lengths}")
        length_entries = common
    else:
        length_entries = lengths
    length_entries = (length_entries / (max_draft / 2.0) - 1.0).astype(np.float32)
    return np.concatenate([length_entries, share_entries], axis=-1).astype(np.float32)


def real_array(action: Any, shape: object) -> NDArray[Any]:
    """``action`` as a numpy array of real numbers (not copied); ValueError otherwise, ``shape`` (the expected
    shape, formatted only for the message) naming what was expected."""
    try:
        raw = np.asarray(action)
    except (TypeError, ValueError) as exc:  # e.g. ragged nested lists; reprlib keeps the message one short line
        raise ValueError(f"action must be an array of shape {shape}, got {reprlib.repr(action)}") from exc
    if raw.dtype.kind not in "iuf":  # complex, strings, dates, objects, bools
        raise ValueError(f"action must hold real numbers, got an array of dtype {raw.dtype}")
    return raw


def nonfinite_error(values: NDArray[Any], name: str = "action") -> ValueError:
    """The one-line ValueError naming the first NaN or inf entry of ``values`` by its index (e.g. ``action[3, 7]
    is nan``), never the whole array; ``values`` must hold one."""
    return ValueError(f"{first_nonfinite(values, name)}: actions must not contain NaN or inf")


def check_finite(values: NDArray[Any], name: str = "action") -> None:
    """:func:`nonfinite_error` if an entry of ``values`` is NaN or inf."""
    if not np.isfinite(values).all():
        raise nonfinite_error(values, name)


def checked_actions(action: Any, size: int) -> FloatArray:
    """``action`` as a new, writable float64 (batch, size) array; ValueError unless it holds real numbers with
    ``size`` entries on the last axis (NaN/inf are found by the compiled decoder)."""
    raw = real_array(action, ("...", size))
    if raw.ndim == 0 or raw.shape[-1] != size:
        raise ValueError(f"action must have {size} entries on the last axis, got shape {raw.shape}")
    return np.array(raw, dtype=np.float64, order="C").reshape(-1, size)


class CoreAccess:
    """Read access to the simulator state of an env that holds a :class:`~multispin_env.core.MultiSpinCore` as
    ``_core`` (the single, vector and per-user multi-agent envs)."""

    _core: MultiSpinCore

    @property
    def core(self) -> MultiSpinCore:
        """The simulator state (for analysis and oracle controllers: read it, do not change it)."""
        return self._core

    @property
    def num_users(self) -> int:
        """K."""
        return self._core.num_users

    @property
    def max_draft(self) -> int:
        """L_max, tokens."""
        return self._core.max_draft

    @property
    def scenario(self) -> Scenario:
        """The resolved scenario (population model, channel and verification parameters)."""
        return self._core.scenario


class MultiSpinEnvAPI(CoreAccess):
    """Methods shared by :class:`~multispin_env.envs.MultiSpinEnv` and the vector env (both hold ``_core``).

    Observations and actions may carry leading batch axes everywhere here.
    """

    @property
    def observation_layout(self) -> dict[str, slice]:
        """Slices of the observation fields (:data:`OBSERVATION_FIELDS`, then with arrivals
        :data:`ARRIVAL_OBSERVATION_FIELDS`, then with deadlines :data:`DEADLINE_OBSERVATION_FIELDS`) on the last axis."""
        return observation_layout(self._core.num_users, self._core.arrivals, self._core.deadlines)

    def decode_action(self, action: ArrayLike) -> tuple[NDArray[np.int64], FloatArray]:
        """(draft_lengths, bandwidth) an action decodes to (docs/model.md section 8.1); leading axes kept.

        Finite out-of-range entries are clipped into [-1, 1]; NaN/inf or a wrong last axis raise ValueError.
        """
        size = self._core.action_size
        raw = checked_actions(action, size)
        batch = np.shape(action)[:-1]
        check_finite(raw.reshape(*batch, size))  # names the entry by its index in the action as given
        lengths, shares = self._core.decode(raw)
        k = self._core.num_users
        return lengths.astype(np.int64).reshape(*batch, k), shares.reshape(*batch, k)

    def encode_action(self, draft_lengths: ArrayLike, bandwidth: ArrayLike) -> NDArray[np.float32]:
        """The float32 action decoding to ``draft_lengths`` and ``bandwidth`` (see :func:`encode_action`)."""
        lengths = np.asarray(draft_lengths)
        k = self._core.num_users
        if lengths.ndim == 0 or lengths.shape[-1] != k:
            raise ValueError(
                f"draft_lengths must have {k} entries (one per user) on the last axis, got shape {lengths.shape}"
            )
        return encode_action(
            draft_lengths, bandwidth, max_draft=self._core.max_draft, homogeneous=self._core.homogeneous
        )

    def observation_field(self, observation: ArrayLike, name: str) -> FloatArray:
        """Field ``name`` of one or a batch of observations, as float64 (users on the last axis)."""
        obs = np.asarray(observation, dtype=np.float64)
        size = self._core.observation_size
        if obs.ndim == 0 or obs.shape[-1] != size:
            raise ValueError(f"observation must have {size} entries on the last axis, got shape {obs.shape}")
        return obs[..., self.observation_layout[name]]

    def spectral_efficiency_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Observed e_k in bit/s/Hz."""
        return self.observation_field(observation, "spectral_efficiency") * CHANNEL_SCALE

    def upload_time_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Estimated c_k = D / (W e_k) in s/token from the observed channel entry."""
        scenario = self._core.scenario
        return upload_time_per_token(
            scenario.payload_bits, scenario.bandwidth_hz, self.spectral_efficiency_from_observation(observation)
        )

    def draft_time_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Nominal t_k in s/token."""
        return self.observation_field(observation, "draft_time") * DRAFT_TIME_SCALE

    def acceptance_from_observation(self, observation: ArrayLike) -> FloatArray:
        """The running acceptance estimate a_hat_k, clipped into [1e-6, 1 - 1e-6] (valid for RoundParams)."""
        estimate = self.observation_field(observation, "acceptance")
        return np.clip(estimate, ACCEPTANCE_EPS, 1.0 - ACCEPTANCE_EPS)

    def time_left_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Fraction of the horizon left, shape = the batch shape."""
        return self.observation_field(observation, "time_left")[..., 0]
