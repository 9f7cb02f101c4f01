"""Where the compiled kernels are cached: the shared temporary fallback only when private, and no crash when
nothing is writable (multispin_env._numba)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import multispin_env._numba as jit
from multispin_env._numba import choose_cache_dir


def _choose(candidates: list[tuple[Path, bool]]) -> tuple[Path | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = choose_cache_dir(candidates, "abc")
    return chosen, [str(w.message) for w in caught]


def test_the_temp_fallback_is_created_private(tmp_path: Path) -> None:
    base = tmp_path / "multispin_env-x"
    chosen, messages = _choose([(base, True)])
    assert chosen == base / "numba-abc" and chosen.is_dir()
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    assert len(messages) == 1 and "cached in" in messages[0]


def test_a_temp_fallback_of_this_user_that_only_it_can_write_is_narrowed(tmp_path: Path) -> None:
    base = tmp_path / "multispin_env-x"
    base.mkdir()
    base.chmod(0o755)
    chosen, _ = _choose([(base, True)])
    assert chosen == base / "numba-abc"
    assert stat.S_IMODE(base.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_temp_fallback_others_can_write_is_not_used(tmp_path: Path, mode: int) -> None:
    base = tmp_path / "multispin_env-x"
    base.mkdir()
    base.chmod(mode)
    chosen, messages = _choose([(base, True)])
    assert chosen is None and not (base / "numba-abc").exists()
    assert len(messages) == 1 and "compiled in every process" in messages[0]
    assert f"mode {mode:04o}" in messages[0] and "\n" not in messages[0]
    assert stat.S_IMODE(base.stat().st_mode) == mode  # left as it was


def test_a_temp_fallback_of_another_user_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "multispin_env-x"
    base.mkdir(mode=0o700)
    if os.geteuid() == 0:  # root can hand the directory to someone else
        os.chown(base, 4242, 4242)
        other = 4242
    else:  # otherwise this process pretends to be someone else
        other = os.geteuid()
        monkeypatch.setattr(jit.os, "geteuid", lambda: other + 1)
    chosen, messages = _choose([(base, True)])
    assert chosen is None and not (base / "numba-abc").exists()
    assert len(messages) == 1 and f"owned by another user (uid {other})" in messages[0]


def test_a_link_as_temp_fallback_is_not_used(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    base = tmp_path / "multispin_env-x"
    base.symlink_to(target)
    chosen, messages = _choose([(base, True)])
    assert chosen is None and "is not a directory" in messages[0]


def test_a_private_fallback_is_used_after_unwritable_candidates(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    chosen, messages = _choose([(blocker / "cache", False), (tmp_path / "t", True)])
    assert chosen == tmp_path / "t" / "numba-abc" and len(messages) == 1


def test_import_with_nothing_writable_compiles_without_a_cache(tmp_path: Path) -> None:
    """Package folder, HOME and every temporary directory read-only: one warning, no cache, kernels still run.

    File modes do not bind root, so the subprocess makes every write probe fail the way a read-only file system
    does (tempfile's own search for a temporary directory and the probe's temporary file both raise), and points
    HOME, the cache variables and TMPDIR at paths under a file, which no one can create.
    """
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {
        **os.environ,
        "HOME": str(blocker),
        "XDG_CACHE_HOME": str(blocker / "c"),
        "NUMBA_CACHE_DIR": str(blocker / "n"),
        "TMPDIR": str(blocker / "t"),
        "TEMP": str(blocker / "t"),
        "TMP": str(blocker / "t"),
    }
    code = (
        "import errno, os, tempfile, warnings\n"
        "def read_only(*args, **kwargs):\n"
        "    raise OSError(errno.EROFS, os.strerror(errno.EROFS))\n"
        "def no_temp_dir():\n"
        "    raise FileNotFoundError(errno.ENOENT, 'No usable temporary directory found')\n"
        "tempfile.TemporaryFile = read_only\n"
        "tempfile._get_default_tempdir = no_temp_dir\n"
        "tempfile.tempdir = None\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import multispin_env, multispin_env._numba as m\n"
        "ours = [str(w.message) for w in caught if 'multispin_env' in str(w.message)]\n"
        "print(m.CACHE_DIR, m.JIT['cache'], len(ours))\n"
        "print(ours[0])\n"
        "from multispin_env.channel import spectral_efficiency\n"  # a compiled function, compiled here
        "print(float(spectral_efficiency(10.0, 1.0)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "None False 1"
    assert "compiled in every process" in lines[1]
    assert float(lines[2]) > 0


def _package_functions() -> dict[str, tuple[Any, bool]]:
    """Every numba function of the package's compiled modules and the solvers', by qualified name: its
    dispatcher and whether it is a vectorize ufunc (a DUFunc, whose dispatcher this is)."""
    import numba

    from baselines import _solver_kernels
    from multispin_env import _kernels, acceptance, channel, model

    found: dict[str, tuple[Any, bool]] = {}
    for module in (model, channel, acceptance, _kernels, _solver_kernels):
        for name, value in vars(module).items():
            if isinstance(value, numba.np.ufunc.dufunc.DUFunc):
                found[f"{module.__name__}.{name}"] = (value._dispatcher, True)
            elif isinstance(value, numba.core.dispatcher.Dispatcher):
                found[f"{module.__name__}.{name}"] = (value, False)
    return found


def test_every_compiled_function_is_cached_with_the_package_options() -> None:
    """A function decorated without ``_numba.JIT`` would be compiled in every process (no cache) or with other
    options; each is decorated inside ``jit_cache``, so its cache is in the package's directory."""
    import numba

    functions = _package_functions()
    expected = {
        "multispin_env._kernels.step",
        "multispin_env.model.finish_time",
        "baselines._solver_kernels._greedy_at",
    }
    assert expected <= set(functions)
    assert jit.JIT["cache"] and jit.CACHE_DIR is not None  # the test session has a writable cache
    for name, (function, ufunc) in functions.items():
        cache = function.cache if ufunc else function._cache  # numba's NullCache when it is not cached
        assert isinstance(cache, numba.core.caching.FunctionCache), f"{name} is not cached"
        assert Path(cache._cache_path).is_relative_to(jit.CACHE_DIR), f"{name} is cached in {cache._cache_path}"
        if not ufunc:  # vectorize takes only the cache option
            options = function.targetoptions
            assert options.get("error_model") == jit.JIT["error_model"], name


_RUN_ENVS = """
import gymnasium as gym
import multispin_env
for env_id in ("MultiSpin-Heterogeneous-v0", "MultiSpin-Homogeneous-v0"):
    for env in (gym.make(env_id), gym.make_vec(env_id, num_envs=3)):
        env.reset(seed=0)
        env.step(env.action_space.sample())
"""


def test_a_second_process_loads_every_kernel_from_the_cache() -> None:
    """After this process ran the envs (compiling into the cache what it lacked), a new process running them
    compiles nothing (a cache load does not call numba's compiler): no function is left uncached and no cache
    key changes between processes."""
    exec(_RUN_ENVS, {})  # this process: compiles (or loads) what the envs call
    code = (
        "import numba.core.compiler as compiler\n"
        "compiled = []\n"
        "compile_extra = compiler.compile_extra\n"
        "def counting(typingctx, targetctx, func, *args, **kwargs):\n"
        "    compiled.append(func.__qualname__)\n"
        "    return compile_extra(typingctx, targetctx, func, *args, **kwargs)\n"
        "compiler.compile_extra = counting\n" + _RUN_ENVS + "print(compiled)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]", out.stdout
