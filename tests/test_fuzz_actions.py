"""Actions of every kind on the single and the vector env, in every autoreset mode (hypothesis).

A rejected action (NaN/inf anywhere, a wrong shape, a non-real dtype) raises a one-line ValueError and leaves the
state and the generator untouched: the env's next steps equal those of a twin (a deep copy taken before the bad
action) that never saw it, including when sub-envs are being restarted or a block of random variates is due.
Accepted actions (in range or clipped) step both alike. And every info key keeps its dtype and shape on every
step, in every autoreset mode, with and without request arrivals.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import multispin_env  # noqa: F401  (registers the ids)

HET = "MultiSpin-Heterogeneous-v0"
HOM = "MultiSpin-Homogeneous-v0"
FINAL_KEYS = ("final_obs", "_final_obs", "final_info", "_final_info")

#: Settings under which the bad action arrives: short episodes (restarts every few steps), small blocks of variates
#: (K = 128: a refill every 16 rounds of 8 sub-envs), and the paths that restart or draw outside the kernel.
SETTINGS = (
    dict(horizon=0.5),
    dict(horizon=0.3, num_users=128),
    dict(horizon=0.5, arrival_rate=3.0, mean_request_tokens=5.0),
    dict(horizon=0.5, resample_population=True, csi_noise_std=0.2, acceptance_process="markov"),
    dict(horizon=0.5, csi_delay=2, draft_time_jitter=0.3),
)


def _make(env_id: str, vector: bool, mode: AutoresetMode, config: dict[str, Any]) -> Any:
    if vector:
        return gym.make_vec(env_id, num_envs=8, autoreset_mode=mode, **config)
    return gym.make(env_id, **config)


def _valid(env: Any, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)


def _step(env: Any, vector: bool, action: np.ndarray) -> tuple[Any, ...]:
    """A step; the single env is reset when its episode ends (the vector env resets itself, or never)."""
    out = env.step(action)
    if not vector and (out[2] or out[3]):
        return out, env.reset()
    return out


@st.composite
def bad_actions(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, str]:
    """A rejected action of the given good shape and a regular expression its error message must match."""
    kind = draw(st.sampled_from(["nonfinite", "nonfinite", "shape", "dtype"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    good = rng.uniform(-3.0, 3.0, shape).astype(draw(st.sampled_from([np.float32, np.float64])))
    if kind == "nonfinite":
        count = draw(st.integers(1, 4))
        flat = good.reshape(-1)
        where = draw(st.lists(st.integers(0, flat.size - 1), min_size=count, max_size=count))
        flat[where] = [draw(st.sampled_from([np.nan, np.inf, -np.inf])) for _ in where]
        first = np.unravel_index(min(where), shape)
        index = ", ".join(str(int(i)) for i in first)
        return good, rf"^action\[{index}\] is (nan|inf|-inf): "
    if kind == "shape":
        change = draw(st.sampled_from(["short", "long", "extra axis", "missing axis", "scalar"]))
        bad = {
            "short": good[..., :-1],
            "long": np.concatenate([good, good[..., :1]], axis=-1),
            "extra axis": good[None],
            "missing axis": good.reshape(-1) if good.ndim > 1 else good[:1].reshape(()),
            "scalar": np.float32(0.5),
        }[change]
        return bad, "shape|entries"
    make = draw(
        st.sampled_from(
            [
                lambda a: a.astype(np.complex128),
                lambda a: a.astype(str),
                lambda a: a > 0,
                lambda a: np.full(a.shape, datetime.datetime(2026, 1, 1)),
                lambda a: a.astype(object),
            ]
        )
    )
    return make(good), "action"


def _due(env: Any, moment: str, last: tuple[Any, ...] | None) -> bool:
    """Whether the env is at ``moment``: "episode end" (the last step ended an episode: NEXT_STEP restarts
    sub-envs in this step), "block refill" (this step draws a new block of variates) or "any"."""
    if moment == "episode end":
        return last is not None and bool(np.any(last[0][3] if isinstance(last[0], tuple) else last[3]))
    if moment == "block refill":
        core = env.unwrapped.core
        return core._block_index == core._block_rounds
    return True


#: The single env, and the vector env in each of Gymnasium's autoreset modes.
KINDS = [(False, AutoresetMode.NEXT_STEP)] + [(True, mode) for mode in AutoresetMode]


@pytest.mark.parametrize("vector, mode", KINDS)
@settings(max_examples=20)
@given(
    env_id=st.sampled_from([HET, HOM]),
    config=st.sampled_from(SETTINGS),
    seed=st.integers(0, 2**16),
    before=st.integers(0, 20),
    moment=st.sampled_from(["any", "episode end", "block refill"]),
    data=st.data(),
)
def test_a_rejected_action_changes_nothing(vector, mode, env_id, config, seed, before, moment, data):
    env = _make(env_id, vector, mode, config)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    last = None
    for step in range(before + 100):
        if step >= before and _due(env, moment, last):
            break
        last = _step(env, vector, _valid(env, rng))
    twin = copy.deepcopy(env)
    action, message = data.draw(bad_actions(env.action_space.shape))
    with pytest.raises(ValueError, match=message) as caught:
        env.step(action)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 200, text
    generator = env.unwrapped.np_random.bit_generator.state
    assert generator == twin.unwrapped.np_random.bit_generator.state
    for _ in range(3):
        action = _valid(env, rng)
        assert data_equivalence(_step(env, vector, action), _step(twin, vector, action), exact=True)


@pytest.mark.parametrize("vector, mode", KINDS)
@settings(max_examples=5)
@given(
    config=st.sampled_from(SETTINGS),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1.0, 5.0, 1e30]),
)
def test_accepted_actions_step_alike(vector, mode, config, seed, scale):
    """In-range and finite out-of-range actions (clipped) are played, the same way by env and twin."""
    env = _make(HET, vector, mode, config)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    twin = copy.deepcopy(env)
    for _ in range(8):
        action = scale * _valid(env, rng)
        assert data_equivalence(_step(env, vector, action), _step(twin, vector, action), exact=True)


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_a_nan_while_sub_envs_restart_changes_nothing(mode):
    """The fuzzed case spelled out: a NaN in the step that restarts the sub-envs whose episodes just ended."""
    envs = gym.make_vec(HET, num_envs=8, horizon=0.5, autoreset_mode=mode)
    envs.reset(seed=7)
    rng = np.random.default_rng(0)
    ended = False
    while not ended:
        ended = envs.step(_valid(envs, rng))[3].any()
    twin = copy.deepcopy(envs)
    bad = _valid(envs, rng)
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"^action\[3, 7\] is nan: "):
        envs.step(bad)
    action = _valid(envs, rng)
    assert data_equivalence(envs.step(action), twin.step(action), exact=True)


def _dtypes(info: dict[str, Any]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    return {key: (np.asarray(value).dtype, np.shape(value)) for key, value in info.items() if key not in FINAL_KEYS}


@pytest.mark.parametrize("arrivals", [False, True])
@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_info_keys_keep_their_dtype(mode, arrivals):
    """Over episodes with resets every key of the step info keeps its dtype and shape, and the ended episodes'
    ``final_info`` (SAME_STEP) has the same ones; the reset info's keys have the step info's dtypes."""
    extra = dict(arrival_rate=2.0, mean_request_tokens=5.0) if arrivals else {}
    envs = gym.make_vec(HET, num_envs=6, horizon=0.4, autoreset_mode=mode, **extra)
    _, reset_info = envs.reset(seed=1)
    rng = np.random.default_rng(1)
    reset_infos, expected, resets = [reset_info], None, 0
    for step in range(60):
        *_, truncated, info = envs.step(_valid(envs, rng))
        expected = expected or _dtypes(info)
        assert _dtypes(info) == expected, f"step {step}"
        if "final_info" in info:
            assert _dtypes(info["final_info"]) == {key: expected[key] for key in info["final_info"]}
        if mode is AutoresetMode.DISABLED and truncated.any():  # the partial reset of the ended sub-envs
            reset_infos.append(envs.reset(options={"reset_mask": truncated})[1])
        resets += int(truncated.any())
    assert resets >= 3
    for reset_info in reset_infos:
        assert _dtypes(reset_info) == {key: expected[key] for key in reset_info}
    assert expected["dropped"][0] == np.bool_ and expected["tokens"][0] == np.int64
    if arrivals:
        assert expected["completed"][0] == np.bool_ and expected["queued"][0] == np.int64


@pytest.mark.parametrize("arrivals", [False, True])
def test_single_env_info_keys_keep_their_dtype(arrivals):
    extra = dict(arrival_rate=2.0, mean_request_tokens=5.0) if arrivals else {}
    env = gym.make(HET, horizon=0.4, **extra)
    _, reset_info = env.reset(seed=2)
    rng = np.random.default_rng(2)
    expected, resets = None, 0
    for step in range(60):
        _, _, _, truncated, info = env.step(_valid(env, rng))
        expected = expected or _dtypes(info)
        assert _dtypes(info) == expected, f"step {step}"
        assert {key: expected[key] for key in reset_info} == _dtypes(reset_info)
        if truncated:
            _, reset_info = env.reset()
            resets += 1
    assert resets >= 3
