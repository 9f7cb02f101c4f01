"""Where the compiled kernels are cached: the shared temporary fallback only when private, and no crash when
nothing is writable (multispin_env._numba)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

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
