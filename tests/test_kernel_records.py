"""The compiled functions' calling convention (multispin_env/_kernels.py, the records of multispin_env/layout.py).

The core calls the kernels' machine code without numba's dispatch (multispin_env._numba.compiled), so nothing
checks the argument types at run time: these tests check that every call the core makes, in every mode that
changes what it passes (restarts in and after the kernel, CSI noise, arrivals, jitter, no fading, decoded
actions), has exactly the types of the function's one signature. They also check that the kernel writes each
observation field where the observation layout puts it, and that the single and the vector env report the same
round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numba
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env import _kernels
from multispin_env.core import MultiSpinCore
from multispin_env.layout import ObservationOffsets
from multispin_env.multiagent import parallel_env
from multispin_env.spaces import ObservationLayout, observation_field_orders, observation_layout

HET, HOM = "MultiSpin-Heterogeneous-v0", "MultiSpin-Homogeneous-v0"


def _dispatchers() -> dict[str, Any]:
    return {
        name: value for name, value in vars(_kernels).items() if isinstance(value, numba.core.dispatcher.Dispatcher)
    }


def test_every_compiled_function_has_one_signature_of_at_most_eight_arguments() -> None:
    dispatchers = _dispatchers()
    assert {"step", "play_round", "decode", "observe", "update_channel", "reset_rows"} <= set(dispatchers)
    for name, function in dispatchers.items():
        if function.targetoptions.get("inline") == "always":  # helpers inlined into the kernels: no signature
            continue
        assert len(function.signatures) == 1, name
        assert len(function.signatures[0]) <= 8, f"{name} takes {len(function.signatures[0])} arguments"


def _checking(core: MultiSpinCore, calls: dict[str, int]) -> None:
    """Replace the core's entry points by ones that first check the arguments against the signature."""

    def check(name: str) -> Callable[..., Any]:
        function = getattr(_kernels, name)
        (signature,) = function.signatures
        entry = getattr(core._compiled, name)

        def call(*args: Any) -> Any:
            types = tuple(numba.typeof(arg) for arg in args)
            assert types == signature, f"{name}: {types} != {signature}"
            calls[name] = calls.get(name, 0) + 1
            if name == "step":  # restarts within the round's call
                calls["restarted_in_step"] = calls.get("restarted_in_step", 0) + args[4].rows.size
            return entry(*args)

        return call

    core._compiled = type(core._compiled)(*(check(name) for name in type(core._compiled)._fields))


SETTINGS = [
    dict(),
    dict(csi_noise_std=0.3, csi_delay=2),
    dict(arrival_rate=40.0, max_queued_requests=3),
    dict(fading=False, draft_time_jitter=0.2, acceptance_process="markov"),
    dict(resample_population=True),
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("vector", [False, True])
def test_the_core_passes_exactly_the_signatures_types(settings: dict[str, Any], vector: bool) -> None:
    calls: dict[str, int] = {}
    if vector:
        env: Any = gym.make_vec(HET, num_envs=3, vectorization_mode="vector_entry_point", horizon=0.6, **settings)
    else:
        env = gym.make(HOM, horizon=0.6, **settings)
    core = env.unwrapped.core
    _checking(core, calls)
    env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(80):  # several episodes: restarts (in the kernel or after it) and block refills
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if not vector and (terminated or truncated):
            env.reset()
    env.unwrapped.decode_action(env.action_space.sample())
    assert calls.get("step", 0) == 80 and calls.get("decode", 0) == 1
    assert calls["reset_rows"] + calls["restarted_in_step"] >= 3  # the first reset, then episode ends
    assert calls["update_channel"] >= 1 and calls["observe"] >= 1 and calls["standard_exponential"] >= 2


def test_decoded_steps_pass_the_signatures_types() -> None:
    """The multi-agent env plays decoded lengths and shares (core.step: empty actions)."""
    calls: dict[str, int] = {}
    env = parallel_env(num_users=3)
    _checking(env._core, calls)
    env.reset(seed=0)
    for _ in range(5):
        env.step({agent: np.array([0.5, 0.2], dtype=np.float32) for agent in env.agents})
    assert calls["step"] == 5


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"arrival_rate": 40.0},
        {"arrival_rate": 40.0, "request_deadline_per_token": 0.05},
        {"energy_budget": 50.0, "observe_throughput": True},
        {"arrival_rate": 40.0, "request_deadline_per_token": 0.05, "energy_budget": 50.0, "observe_throughput": True},
    ],
)
def test_one_layout_object_gives_the_fields_the_bounds_the_offsets_and_the_info(settings: dict[str, Any]) -> None:
    """The env's layout is the settings' (ObservationLayout.of_config): contiguous fields filling the observation
    space, its offsets the kernel's, recovered from its field names, and the info keys of its optional groups."""
    env = gym.make(HET, **settings)
    core = env.unwrapped.core
    layout = core.observation_layout
    assert layout == ObservationLayout.of_config(core.config, core.num_users)
    assert layout.arrivals == ("arrival_rate" in settings) and layout.throughput == ("observe_throughput" in settings)
    assert layout.deadlines == ("request_deadline_per_token" in settings)
    assert layout.energy_budget == ("energy_budget" in settings)
    stops = [0] + [where.stop for where in layout.values()]
    assert [where.start for where in layout.values()] == stops[:-1] and layout.size == stops[-1]
    assert env.observation_space.shape == (layout.size,) == (core.observation_size,)
    assert core._fixed.observation_offsets == layout.offsets
    assert all((offset == -1) == (name not in layout) for name, offset in layout.offsets._asdict().items())
    assert ObservationLayout.of_fields(layout.names, core.num_users) == layout
    assert layout.names in observation_field_orders()
    _, info = env.reset(seed=0)
    for key in ("energy_left", "throughput", "slack"):
        assert (key in info) == (key in layout)


def test_layouts_that_no_settings_give_are_refused() -> None:
    with pytest.raises(ValueError, match="needs the arrival fields"):
        ObservationLayout(3, deadlines=True)
    with pytest.raises(ValueError, match="num_users >= 1"):
        ObservationLayout(0)
    with pytest.raises(ValueError, match="no observation has the fields"):
        ObservationLayout.of_fields(["draft_time", "spectral_efficiency"], 3)
    # Arrivals and deadlines: 3 valid combinations; energy budget and throughput: 4.
    orders = observation_field_orders()
    assert len(set(orders)) == len(orders) == 12
    assert all("slack" not in names or "active" in names for names in orders)


@pytest.mark.parametrize("arrivals", [False, True])
def test_the_kernel_writes_each_field_where_the_layout_puts_it(arrivals: bool) -> None:
    """Observe with the fields in reversed order: every field moves with its offset (nothing is hand-placed)."""
    settings = dict(arrival_rate=40.0) if arrivals else {}
    envs = gym.make_vec(HET, num_envs=4, vectorization_mode="vector_entry_point", **settings)
    envs.reset(seed=3)
    for _ in range(5):
        envs.step(envs.action_space.sample())
    core = envs.unwrapped.core
    layout = observation_layout(core.num_users, arrivals)
    assert layout == core.observation_layout and core._fixed.observation_offsets == ObservationOffsets(
        *(layout[name].start if name in layout else -1 for name in ObservationOffsets._fields)
    )
    reversed_layout, start = {}, 0
    for name in reversed(list(layout)):
        size = layout[name].stop - layout[name].start
        reversed_layout[name] = slice(start, start + size)
        start += size
    scale = np.empty_like(core._fixed.observation_scale)
    for name, where in reversed_layout.items():
        scale[:, where] = core._fixed.observation_scale[:, layout[name]]
    fixed = core._fixed._replace(
        observation_scale=scale,
        observation_offsets=ObservationOffsets(
            *(reversed_layout[name].start if name in layout else -1 for name in ObservationOffsets._fields)
        ),
    )
    expected = core.observation()
    moved = np.full_like(expected, np.nan)
    _kernels.observe(core._state, fixed, moved)  # numba's dispatch: the records' types are checked
    for name, where in reversed_layout.items():
        np.testing.assert_array_equal(moved[:, where], expected[:, layout[name]], err_msg=name)
    assert not np.isnan(moved).any()


def test_the_single_env_reports_the_row_of_a_batch_of_one() -> None:
    """One report for both envs: the single env's info is the vector env's row (floats for its scalars)."""
    single = gym.make(HET, arrival_rate=40.0)
    vector = gym.make_vec(HET, num_envs=1, vectorization_mode="vector_entry_point", arrival_rate=40.0)
    single.reset(seed=5)
    vector.reset(seed=5)
    single.action_space.seed(5)
    for _ in range(30):
        action = single.action_space.sample()
        obs_s, reward_s, _, truncated_s, info_s = single.step(action)
        obs_v, reward_v, _, truncated_v, info_v = vector.step(action[None])
        assert truncated_s == truncated_v[0]
        if truncated_s:
            break
        np.testing.assert_array_equal(obs_s, obs_v[0])
        assert isinstance(reward_s, float) and reward_s == reward_v[0]
        assert set(info_s) == {key for key in info_v if not key.startswith("_")}
        for key, value in info_s.items():
            np.testing.assert_array_equal(value, info_v[key][0], err_msg=key)
            if np.ndim(info_v[key][0]) == 0:
                assert isinstance(value, (float, bool, np.bool_)), key
