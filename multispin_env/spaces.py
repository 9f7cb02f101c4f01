"""Action codec and observation layout of the Multi-SPIN environments (docs/model.md sections 8.1-8.2).

The decoding of an action is the compiled round's (:func:`multispin_env._kernels.decode`); this module holds
its inverse (:func:`encode_action`), the observation's fields, scales and bounds, and
:class:`MultiSpinEnvAPI`, the methods the single and the vector env share to read observations in physical
units and to translate allocations into actions.
"""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from multispin_env._checks import first_nonfinite
from multispin_env.channel import DEVICE_CLASSES, upload_time_per_token
from multispin_env.layout import (
    ARRIVAL_OBSERVATION_FIELDS,
    DEADLINE_OBSERVATION_FIELDS,
    ENERGY_OBSERVATION_FIELDS,
    OBSERVATION_FIELDS,
    THROUGHPUT_OBSERVATION_FIELDS,
    ObservationOffsets,
)
from multispin_env.scenarios import Scenario

if TYPE_CHECKING:
    from multispin_env.config import EnvConfig
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
    "ObservationLayout",
    "observation_field_orders",
    "observation_layout",
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


@dataclass(frozen=True)
class ObservationLayout(Mapping[str, slice]):
    """The observation's fields (docs/model.md section 5.5) as settings turn them on: a read-only mapping of each
    field's name to its slice on the observation's last axis (user order), in observation order.

    The fields are :data:`OBSERVATION_FIELDS`, then :data:`ARRIVAL_OBSERVATION_FIELDS` if ``arrivals``,
    :data:`DEADLINE_OBSERVATION_FIELDS` if ``deadlines`` (which need arrivals), :data:`ENERGY_OBSERVATION_FIELDS` if
    ``energy_budget`` and :data:`THROUGHPUT_OBSERVATION_FIELDS` if ``throughput``. This is the one place that
    order, and which switches an env's settings turn on (:meth:`of_config`), are derived.

    :param num_users: K, users (>= 1)
    :param arrivals: requests arrive (``arrival_rate`` set, section 5.8)
    :param deadlines: requests have completion-time targets (``request_deadline_per_token`` set, eq. (9d))
    :param energy_budget: devices have an energy budget (``energy_budget`` set, section 5.7)
    :param throughput: the running throughput is observed (``observe_throughput``, section 5.9)
    """

    num_users: int
    arrivals: bool = False
    deadlines: bool = False
    energy_budget: bool = False
    throughput: bool = False
    _slices: dict[str, slice] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.num_users, (int, np.integer)) and self.num_users >= 1):
            raise ValueError(f"an observation layout needs num_users >= 1, got {self.num_users!r}")
        if self.deadlines and not self.arrivals:
            raise ValueError("an observation with deadlines (slack) needs the arrival fields (arrivals=True)")
        start = 0
        for name, entries, _ in self.fields:
            size = self.num_users if entries == "K" else int(entries)
            self._slices[name] = slice(start, start + size)
            start += size

    @classmethod
    def of_config(cls, config: EnvConfig, num_users: int) -> ObservationLayout:
        """The layout an env's settings give (``num_users`` users)."""
        return cls(
            num_users,
            arrivals=config.arrival_rate is not None,
            deadlines=config.request_deadline_per_token is not None,
            energy_budget=config.energy_budget is not None,
            throughput=config.observe_throughput,
        )

    @classmethod
    def of_fields(cls, names: Sequence[str], num_users: int) -> ObservationLayout:
        """The layout of ``num_users`` users whose fields are ``names`` in order; ValueError when no settings give
        those fields (:func:`observation_field_orders` lists the orders that exist)."""
        for layout in _every_layout(num_users):
            if layout.names == tuple(names):
                return layout
        raise ValueError(f"no observation has the fields {list(names)}")

    @property
    def fields(self) -> tuple[tuple[str, str | int, str], ...]:
        """(name, entries per system: "K" or 1, meaning) of each field, in order."""
        return (
            OBSERVATION_FIELDS
            + (ARRIVAL_OBSERVATION_FIELDS if self.arrivals else ())
            + (DEADLINE_OBSERVATION_FIELDS if self.deadlines else ())
            + (ENERGY_OBSERVATION_FIELDS if self.energy_budget else ())
            + (THROUGHPUT_OBSERVATION_FIELDS if self.throughput else ())
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(self._slices)

    @property
    def size(self) -> int:
        """Entries of one observation."""
        return max(where.stop for where in self._slices.values())

    @property
    def offsets(self) -> Any:
        """The :data:`~multispin_env.layout.ObservationOffsets` of this layout: each field's first entry, -1 for an
        optional field the observation does not have (the compiled observation writes each field there)."""
        names: tuple[str, ...] = ObservationOffsets._fields
        return ObservationOffsets(*(self._slices[name].start if name in self._slices else -1 for name in names))

    def __getitem__(self, name: str) -> slice:
        return self._slices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._slices)

    def __len__(self) -> int:
        return len(self._slices)


def _every_layout(num_users: int) -> list[ObservationLayout]:
    """Every layout of ``num_users`` users that some settings give (the switches' combinations that are valid)."""
    layouts = []
    for switches in itertools.product((False, True), repeat=4):
        try:
            layouts.append(ObservationLayout(num_users, *switches))
        except ValueError:  # a combination no settings give (deadlines without arrivals)
            continue
    return layouts


def observation_field_orders() -> tuple[tuple[str, ...], ...]:
    """The field names of every observation layout the settings can give, in order (for any number of users)."""
    return tuple(layout.names for layout in _every_layout(1))


def observation_layout(
    num_users: int,
    arrivals: bool = False,
    deadlines: bool = False,
    energy_budget: bool = False,
    throughput: bool = False,
) -> ObservationLayout:
    """The :class:`ObservationLayout` of these switches (a mapping of each field's name to its slice)."""
    return ObservationLayout(num_users, arrivals, deadlines, energy_budget, throughput)


def observation_scale(
    layout: ObservationLayout,
    max_draft: int,
    horizon: float,
    mean_request_tokens: float | None = None,
    mean_target: float | None = None,
    energy_budget: float | None = None,
    server_round: float | None = None,
) -> FloatArray:
    """Factor of each observation entry of ``layout``: raw value (bit/s/Hz, s/token, -, tokens, tokens, s; with
    arrivals then -, tokens (per ``mean_request_tokens``); with deadlines the slack, s (per ``mean_target``, the mean
    request's target in s, eq. (9d)); with an energy budget the remaining budget, J (per ``energy_budget``, J); with
    the throughput the running throughput, tokens/s (times ``server_round`` = T_ver(K) + T_dl, s)) times it. The
    unit of each optional field the layout has must be given."""
    units = {
        "remaining": mean_request_tokens,
        "slack": mean_target,
        "energy_left": energy_budget,
        "throughput": server_round,
    }
    for name, unit in units.items():
        if name in layout and unit is None:
            raise ValueError(f"observation_scale: the layout has {name!r} but its unit is not given")
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
        "energy_left": 1.0 / (energy_budget or 1.0),
        "throughput": server_round or 1.0,
    }
    scale = np.empty(layout.size)
    for name, where in layout.items():
        scale[where] = per_field[name]
    return scale


def observation_bounds(
    layout: ObservationLayout, scenario: Scenario, draft_time: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Low and high of one observation of ``layout`` (the Box of the single observation space); ``draft_time``
    (n, K) the populations' t_k in s/token, so that a slowest device outside the scenario's classes is covered."""
    low, high = np.zeros(layout.size), np.ones(layout.size)
    if layout.arrivals:
        high[layout["remaining"]] = REMAINING_OBS_MAX
    if layout.deadlines:
        high[layout["slack"]] = SLACK_OBS_MAX
    if layout.throughput:  # at most L_max + 1 tokens per round of at least T_ver(K) + T_dl, about (section 5.9)
        high[layout["throughput"]] = scenario.max_draft + 1
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
        """Slices of the observation fields (:data:`OBSERVATION_FIELDS`, then the optional fields the env's
        settings turn on: :func:`observation_layout`) on the last axis."""
        return dict(self._core.observation_layout)

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
        return obs[..., self._field_slice(name)]

    def _field_slice(self, name: str) -> slice:
        """Where field ``name`` is on the last axis; an unknown name is a ValueError listing the env's fields."""
        layout = self._core.observation_layout
        if name not in layout:
            raise ValueError(f"no observation field {name!r}; this env's fields: {', '.join(layout)}")
        return layout[name]

    def observation_value(self, observation: ArrayLike, name: str) -> FloatArray:
        """Field ``name`` of one or a batch of observations in its unit (the inverse of :func:`observation_scale`:
        bit/s/Hz, s/token, tokens, s, J or tokens/s; for ``time_left`` the seconds left, not the fraction)."""
        return self.observation_field(observation, name) / self._core.observation_scale[self._field_slice(name)]

    def spectral_efficiency_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Observed e_k in bit/s/Hz."""
        return self.observation_value(observation, "spectral_efficiency")

    def upload_time_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Estimated c_k = D / (W e_k) in s/token from the observed channel entry."""
        scenario = self._core.scenario
        return upload_time_per_token(
            scenario.payload_bits, scenario.bandwidth_hz, self.spectral_efficiency_from_observation(observation)
        )

    def draft_time_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Nominal t_k in s/token."""
        return self.observation_value(observation, "draft_time")

    def acceptance_from_observation(self, observation: ArrayLike) -> FloatArray:
        """The running acceptance estimate a_hat_k, clipped into [1e-6, 1 - 1e-6] (valid for RoundParams)."""
        estimate = self.observation_field(observation, "acceptance")
        return np.clip(estimate, ACCEPTANCE_EPS, 1.0 - ACCEPTANCE_EPS)

    def time_left_from_observation(self, observation: ArrayLike) -> FloatArray:
        """Fraction of the horizon left, shape = the batch shape."""
        return self.observation_field(observation, "time_left")[..., 0]
