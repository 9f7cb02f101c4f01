"""numba settings shared by every compiled function of the package: one on-disk cache that follows the sources.

numba keys a cached function on its own source file only: a kernel that calls a formula of ``model.py``, or
reads a row number of ``layout.py``, would keep running stale machine code after that file changed. So every
compiled function of the package is cached in one directory named after a hash of all the compiled modules'
sources (:data:`JIT_SOURCES`) and the numba version: any change to any of them starts a new, empty cache.

The directory is the first writable one of: ``$NUMBA_CACHE_DIR/multispin_env`` when that variable is set, the
package's ``__pycache__`` (numba's own default), ``$XDG_CACHE_HOME/multispin_env`` (``~/.cache``), and
``<system temporary directory>/multispin_env-<uid>`` (with one warning, e.g. for a read-only install without a
writable home). The temporary directory is shared with other users and numba's cache index is a pickle, which
runs code when loaded: that fallback is used only if it is a directory (not a link) owned by the current user
that no one else can write (it is created with mode 0700, and a directory of this user that only it could write
is narrowed to 0700). When none is usable, functions are compiled in every process without caching (with one
warning saying why).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import numba

__all__ = [
    "JIT",
    "JitOptions",
    "JIT_SOURCES",
    "CACHE_DIR",
    "cache_candidates",
    "choose_cache_dir",
    "compiled",
    "jit_cache",
]

#: The modules whose source the compiled code depends on (their hash names the cache directory).
JIT_SOURCES = ("_numba.py", "layout.py", "model.py", "channel.py", "acceptance.py", "_kernels.py")

_PACKAGE = Path(__file__).resolve().parent
_PREFIX = "numba-"


def _fingerprint() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    for name in JIT_SOURCES:
        try:
            digest.update((_PACKAGE / name).read_bytes())
        except OSError:  # a source-less install: numba cannot cache it anyway
            digest.update(name.encode())
    return digest.hexdigest()[:16]


def _writable(directory: Path) -> bool:
    """Whether files can be created in ``directory`` (created if missing)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError:
        return False
    return True


def _private(directory: Path) -> str | None:
    """Why ``directory`` may not hold the cache of this user (None: it may), creating it with mode 0700.

    Anyone who can write the cache can plant a pickle that runs in this process, so the directory must be owned by
    this user and writable by no one else; a directory of this user that only it can write (e.g. made 0755 under a
    default umask) is narrowed to 0700.
    """
    if not hasattr(os, "geteuid"):  # no POSIX owners (Windows): the per-user temp dir is private already
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(directory)
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            return f"{directory} is not a directory"
        if info.st_uid != os.geteuid():
            return f"{directory} is owned by another user (uid {info.st_uid})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{directory} can be written by other users (mode {stat.S_IMODE(info.st_mode):04o})"
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(directory, 0o700)
    except OSError as exc:
        return f"{directory} cannot be used ({exc.strerror or exc})"
    return None


def _temp_base() -> Path | None:
    """``<system temporary directory>/multispin_env-<uid>``, or None when there is no usable temporary directory."""
    try:
        temp = tempfile.gettempdir()
    except OSError:  # FileNotFoundError: every candidate of tempfile is unwritable
        return None
    return Path(temp) / f"multispin_env-{os.geteuid() if hasattr(os, 'geteuid') else 0}"


def cache_candidates() -> list[tuple[Path, bool]]:
    """The base directories tried in order, each with whether it is the shared temporary fallback (used only if
    :func:`_private`, with a warning)."""
    candidates: list[tuple[Path, bool]] = []
    user_dir = os.environ.get("NUMBA_CACHE_DIR")
    if user_dir:
        candidates.append((Path(user_dir) / "multispin_env", False))
    candidates.append((_PACKAGE / "__pycache__", False))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates.append((Path(xdg) / "multispin_env", False))
    temp = _temp_base()
    if temp is not None:
        candidates.append((temp, True))
    return candidates


def choose_cache_dir(candidates: list[tuple[Path, bool]], fingerprint: str) -> Path | None:
    """The cache directory ``<first writable base>/numba-<fingerprint>``, or None (one warning) if none is.

    A base flagged as shared (the temporary fallback) must also be :func:`_private`. Stale ``numba-*`` siblings in
    the package's own ``__pycache__`` are removed (they can never be used again).
    """
    refused = ""
    for base, shared in candidates:
        directory = base / f"{_PREFIX}{fingerprint}"
        if shared:
            reason = _private(base)
            if reason is not None:
                refused = f" ({reason})"
                continue
        if not _writable(directory):
            continue
        if shared:
            warnings.warn(
                f"multispin_env: no writable numba cache in the package or the home directory; "
                f"compiled kernels are cached in {directory}",
                RuntimeWarning,
                stacklevel=2,
            )
        if base == _PACKAGE / "__pycache__":
            for stale in base.glob(f"{_PREFIX}*"):
                if stale != directory:
                    shutil.rmtree(stale, ignore_errors=True)
        return directory
    warnings.warn(
        f"multispin_env: no writable directory for numba's cache{refused}; kernels are compiled in "
        "every process (about 10 s)",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


#: Where the package's compiled functions are cached (None: not cached).
CACHE_DIR = choose_cache_dir(cache_candidates(), _fingerprint())


class JitOptions(TypedDict):
    """Keyword arguments of ``numba.njit`` that the package sets (typed as numba's own signature types them)."""

    cache: bool
    error_model: Literal["python", "numpy"]


#: Options of every ``njit``/``vectorize`` of the package. numpy's floating-point error model: x / 0 = inf,
#: as numpy, without ZeroDivisionError checks in the hot loops.
JIT: JitOptions = {"cache": CACHE_DIR is not None, "error_model": "numpy"}


def _module_cache_dir(source: Path) -> Path | None:
    """``CACHE_DIR/<stem>-<hash of source>`` for a compiled module outside :data:`JIT_SOURCES` (None: no cache).

    Such a module (e.g. the batched solvers of ``baselines``) calls the formulas of ``model.py``: its cache must
    follow both its own source and the package's (:data:`CACHE_DIR` already follows the latter). Older
    ``<stem>-*`` directories are removed (they can never be used again).
    """
    if CACHE_DIR is None:
        return None
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    except OSError:  # a source-less install: numba cannot cache it anyway
        return None
    directory = CACHE_DIR / f"{source.stem}-{digest}"
    if not _writable(directory):
        return None
    for stale in CACHE_DIR.glob(f"{source.stem}-*"):
        if stale != directory:
            shutil.rmtree(stale, ignore_errors=True)
    return directory


@contextlib.contextmanager
def jit_cache(source: str | os.PathLike[str] | None = None) -> Iterator[bool]:
    """Decorate the package's compiled functions inside this block: they are cached in :data:`CACHE_DIR`.

    numba picks a function's cache directory when it is decorated, from ``numba.config.CACHE_DIR``; it is set
    for the block only, so other libraries' numba caches are unaffected.

    :param source: the file of a compiled module outside this package (``__file__``): its functions are
        cached in a sub-directory named after a hash of that file (see :func:`_module_cache_dir`)
    :returns: (as the ``with`` target) whether the block's functions may be cached (``cache=`` of njit)
    """
    directory = CACHE_DIR if source is None else _module_cache_dir(Path(source).resolve())
    config: Any = numba.config  # numba's stubs do not declare its settings, set from the environment at import
    previous = config.CACHE_DIR
    if directory is not None:
        config.CACHE_DIR = str(directory)
    try:
        yield directory is not None
    finally:
        config.CACHE_DIR = previous


def compiled(function: Any) -> Callable[..., Any]:
    """The machine code of a function compiled for one explicit signature (``Dispatcher.get_overload``): a call
    skips numba's dispatch, which types every argument to pick a signature. That typing is cheap for an array
    but runs in Python for a namedtuple (about 1 us per record and call, see the records of
    :mod:`multispin_env.layout`). Without it nothing checks the arguments: the caller must pass exactly the
    signature's types (a wrong dtype or layout would be read as the signature's).

    :param function: a ``numba.njit`` dispatcher with exactly one signature
    """
    signatures = function.signatures
    if len(signatures) != 1:
        raise ValueError(f"{function.__name__} must have one compiled signature, has {len(signatures)}")
    entry: Callable[..., Any] = function.get_overload(signatures[0])
    return entry
