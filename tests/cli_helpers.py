"""The one check of a command-line error, shared by the CLI tests: exit status 2 and a single stderr line
``prog: error: ...``, no traceback (the project's rule for bad input on every console script)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script(path: Path) -> ModuleType:
    """A script of the repository that is no package module (benchmarks/*.py, docs/gen_pages.py) loaded as a
    module named after its file (registered in ``sys.modules``, so that dataclasses and pickles in it resolve)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: script name -> ``module:function``."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return dict(tomllib.load(f)["project"]["scripts"])


def assert_one_line_error(status: Any, err: str, prog: str | None = None, message: str = "") -> str:
    """Assert exit status 2 and one stderr line ``{prog}: error: ...`` containing ``message``; returns the line.

    :param prog: the program name the line must start with (None: any name)
    """
    lines = err.strip().splitlines()
    assert status == 2, (status, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1, lines
    if prog is not None:
        assert lines[0].startswith(f"{prog}: error: "), lines[0]
    else:
        assert ": error: " in lines[0], lines[0]
    assert message in lines[0], (message, lines[0])
    return lines[0]


def cli_error(
    main: Callable[[list[str]], Any],
    argv: Sequence[str],
    capsys: pytest.CaptureFixture[str],
    prog: str | None = None,
    message: str = "",
) -> str:
    """Call ``main(argv)`` in this process (argparse's errors are a SystemExit) and check the error."""
    try:
        status = main(list(argv))
    except SystemExit as exc:
        status = exc.code
    return assert_one_line_error(status, capsys.readouterr().err, prog, message)


def console_error(
    script: str,
    argv: Sequence[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    message: str = "",
) -> str:
    """Run console script ``script`` as its generated launcher does (``sys.argv[0]`` is the script's name), in
    this process, and check that it fails with one ``script: error: ...`` line."""
    module, _, function = console_scripts()[script].partition(":")
    entry = getattr(__import__(module, fromlist=[function]), function)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    try:
        status = entry()
    except SystemExit as exc:
        status = exc.code
    return assert_one_line_error(status, capsys.readouterr().err, script, message)


def launch(script: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
    """Start console script ``script`` in a new interpreter as its launcher starts it (pyproject's entry point,
    ``sys.argv[0]`` the script's name), with this checkout first on the path; stdout and stderr piped."""
    module, _, function = console_scripts()[script].partition(":")
    code = f"import sys; sys.argv[0] = {script!r}; from {module} import {function}; sys.exit({function}())"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
