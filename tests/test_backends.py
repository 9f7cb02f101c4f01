"""The numba backend against the numpy reference: same seed and actions, same trajectories; the backend setting."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from multispin_env.acceptance import ACCEPTANCE_PROCESSES
from multispin_env.config import numba_available, resolve_config

HET = "MultiSpin-Heterogeneous-v0"
HOM = "MultiSpin-Homogeneous-v0"

requires_numba = pytest.mark.skipif(not numba_available(), reason="numba is not installed")

# The backends do the same floating-point operations in the same order (bit-identical where tested); a last-bit
# difference would be carried on by the latency -> J0 -> fading -> upload time loop, which can amplify it
# strongly in long episodes (the short ones here keep any such difference small).
RTOL = 1e-12
# float32 observations: float64 values a rounding apart may round to neighbouring float32 numbers.
OBS_RTOL = 1e-6

CONFIGS = [
    *({"acceptance_process": process} for process in sorted(ACCEPTANCE_PROCESSES)),
    *({"acceptance_process": process, "fading": False, "csi_delay": 2} for process in sorted(ACCEPTANCE_PROCESSES)),
    *(
        {"acceptance_process": process, "csi_delay": 2, "csi_noise_std": 0.2, "draft_time_jitter": 0.3,
         "resample_population": True}
        for process in sorted(ACCEPTANCE_PROCESSES)
    ),
    {"csi_noise_std": 0.1, "doppler_hz": 50.0},  # CSI noise without delay
]


def config_id(config: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in config.items())


def assert_same(numpy_value: Any, numba_value: Any, where: str) -> None:
    """Recursive comparison: discrete values equal, float64 to RTOL, float32 observations to OBS_RTOL."""
    if isinstance(numpy_value, dict):
        assert numpy_value.keys() == numba_value.keys(), where
        for key in numpy_value:
            assert_same(numpy_value[key], numba_value[key], f"{where}[{key!r}]")
    elif isinstance(numpy_value, (tuple, list)):
        assert len(numpy_value) == len(numba_value), where
        for i, (a, b) in enumerate(zip(numpy_value, numba_value, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        a, b = np.asarray(numpy_value), np.asarray(numba_value)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert type(numpy_value) is type(numba_value), where
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            rtol = OBS_RTOL if a.dtype == np.float32 else RTOL
            np.testing.assert_allclose(a, b, rtol=rtol, atol=0.0, err_msg=where)


def single_trajectory(env_id: str, backend: str, config: dict[str, Any], steps: int = 120) -> list[Any]:
    """reset, then steps with out-of-range actions, resets at episode ends and one rejected NaN action."""
    env = gym.make(env_id, backend=backend, horizon=2.0, **config)
    size = env.action_space.shape[0]
    actions = np.random.default_rng(1).uniform(-1.3, 1.3, (steps, size)).astype(np.float32)
    out: list[Any] = [env.reset(seed=3)]
    for t, action in enumerate(actions):
        if t == 50:  # a rejected action changes nothing (and draws nothing)
            with pytest.raises(ValueError, match="NaN or inf"):
                env.step(np.full(size, np.nan, dtype=np.float32))
        out.append(env.step(action))
        if out[-1][3]:
            out.append(env.reset())
    out.append(env.unwrapped.channel_gain)
    return out


@requires_numba
@pytest.mark.parametrize("env_id", [HET, HOM])
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_single_env_backends_agree(env_id, config):
    reference = single_trajectory(env_id, "numpy", config)
    compiled = single_trajectory(env_id, "numba", config)
    assert sum(len(item) == 2 for item in reference) > 5  # several episodes ended and restarted
    assert_same(reference, compiled, "trajectory")


def vector_trajectory(env_id: str, backend: str, config: dict[str, Any], mode: str, num_envs: int = 3,
                      steps: int = 100) -> list[Any]:
    envs = gym.make_vec(env_id, num_envs=num_envs, backend=backend, autoreset_mode=mode, horizon=2.0, **config)
    size = envs.single_action_space.shape[0]
    actions = np.random.default_rng(2).uniform(-1.3, 1.3, (steps, num_envs, size)).astype(np.float32)
    out: list[Any] = [envs.reset(seed=5)]
    for t, action in enumerate(actions):
        out.append(envs.step(action))
        if mode == "DISABLED" and t % 7 == 6:  # restart some sub-envs by hand
            mask = np.arange(num_envs) % 2 == t % 2
            out.append(envs.reset(options={"reset_mask": mask}))
    out.append(envs.unwrapped.channel_gain)
    return out


@requires_numba
@pytest.mark.parametrize("env_id", [HET, HOM])
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_vector_env_backends_agree(env_id, config):
    reference = vector_trajectory(env_id, "numpy", config, "NEXT_STEP")
    compiled = vector_trajectory(env_id, "numba", config, "NEXT_STEP")
    assert sum(int(item[3].sum()) for item in reference if len(item) == 5) > 5  # episodes ended
    assert_same(reference, compiled, "trajectory")


@requires_numba
@pytest.mark.parametrize("mode", ["SAME_STEP", "DISABLED"])
@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[-2]], ids=config_id)
def test_vector_env_backends_agree_in_other_autoreset_modes(mode, config):
    assert_same(vector_trajectory(HET, "numpy", config, mode), vector_trajectory(HET, "numba", config, mode),
                "trajectory")


@requires_numba
@pytest.mark.parametrize("config", [{}, CONFIGS[-2]], ids=config_id)
def test_large_vector_batch_backends_agree(config):
    """Large batches (the numba backend's channel update then uses numpy's log1p)."""
    reference = vector_trajectory(HET, "numpy", config, "NEXT_STEP", num_envs=150, steps=30)
    compiled = vector_trajectory(HET, "numba", config, "NEXT_STEP", num_envs=150, steps=30)
    assert_same(reference, compiled, "trajectory")


@requires_numba
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_outputs_do_not_alias_the_state(backend):
    env = gym.make(HET, backend=backend, horizon=1e9)
    obs, _ = env.reset(seed=0)
    action = env.action_space.sample()
    obs, _, _, _, info = env.step(action)
    kept_obs, kept_info = obs.copy(), {key: np.array(value) for key, value in info.items()}
    for _ in range(5):
        env.step(action)
    np.testing.assert_array_equal(obs, kept_obs)
    for key, value in info.items():
        np.testing.assert_array_equal(value, kept_info[key], err_msg=key)
    obs[:] = -1.0  # writing into returned arrays does not reach the env
    info["acceptance"][:] = 0.0
    np.testing.assert_array_equal(env.unwrapped.round_params().acceptance, kept_info["acceptance"])
    assert info["tokens"].dtype == info["accepted"].dtype == info["draft_lengths"].dtype == np.int64
    assert all(isinstance(info[key], float) for key in ("latency", "sync_time", "verify_time", "clock"))


@requires_numba
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda env: pickle.loads(pickle.dumps(env))],
                         ids=["deepcopy", "pickle"])
def test_copies_continue_the_same_trajectory(backend, duplicate):
    env = gym.make(HET, backend=backend, csi_delay=1).unwrapped
    env.reset(seed=4)
    actions = np.random.default_rng(0).uniform(-1, 1, (40, 12)).astype(np.float32)
    env.step(actions[0])
    twin = duplicate(env)
    assert_same([env.step(a) for a in actions], [twin.step(a) for a in actions], "trajectory")


@requires_numba
def test_numba_normals_are_numpys():
    """The numba backend fills its N(0, 1) blocks with numba's port of numpy's ziggurat: same values, same state."""
    from multispin_env import _kernels

    ours, theirs = np.random.default_rng(9), np.random.default_rng(9)
    out = np.empty(1000)
    _kernels.standard_normal(ours, out)
    np.testing.assert_array_equal(out, theirs.standard_normal(1000))
    assert ours.bit_generator.state == theirs.bit_generator.state


# ---------------------------------------------------------------- the setting


@pytest.mark.parametrize("value", ["fortran", "NUMBA", 1, None])
def test_invalid_backend_raises_naming_it(value):
    with pytest.raises(ValueError, match="backend"):
        gym.make(HET, backend=value)


@requires_numba
def test_auto_prefers_numba():
    assert resolve_config().backend == "numba"
    assert resolve_config(backend="numpy").backend == "numpy"
    assert gym.make(HET).unwrapped._core.backend == "numba"


def test_without_numba_auto_falls_back_and_numba_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    assert resolve_config(backend="auto").backend == "numpy"
    env = gym.make(HET, backend="auto")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(ValueError, match="backend"):
        gym.make(HET, backend="numba")


def test_numpy_backend_does_not_import_numba():
    code = (
        "import sys, gymnasium as gym, multispin_env\n"
        f"env = gym.make({HET!r}, backend='numpy')\n"
        "env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
        "assert 'numba' not in sys.modules, 'numba was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
