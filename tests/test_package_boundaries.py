"""The env package stands alone: ``multispin_env`` imports nothing from its controllers or experiments.

Checked two ways: each module imported in a fresh interpreter (what actually gets
loaded, including through third-party code), and a static scan of every import
statement (which also sees imports deferred into function bodies).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import multispin_env

# transformers: only the trace recorder (experiments/record_trace.py) runs models; the env replays traces without it.
FORBIDDEN = ("baselines", "agents", "experiments", "transformers")
PACKAGE_DIR = Path(multispin_env.__file__).resolve().parent
MODULES = ["multispin_env", *sorted(f"multispin_env.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE_DIR)]))]


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN


@pytest.mark.parametrize("module", MODULES)
def test_importing_the_env_package_loads_no_controller_module(module: str) -> None:
    code = f"import importlib, json, sys\nimportlib.import_module({module!r})\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert module in loaded
    assert [name for name in loaded if _forbidden(name)] == []


def test_no_env_module_names_a_controller_package_in_an_import() -> None:
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} imports {name}" for name in names if _forbidden(name)]
    assert offenders == []


def test_the_boundary_check_sees_a_forbidden_import() -> None:
    # Guard against a vacuous pass: the same subprocess probe does report a controller module.
    code = "import json, sys, baselines.solvers\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert any(_forbidden(name) for name in json.loads(out.stdout.strip().splitlines()[-1]))


def test_making_and_playing_an_env_does_not_import_the_heavy_modules() -> None:
    """Every process that makes an env pays its imports: scipy.stats alone takes about a second, and only a rare
    quadrature branch of the acceptance model needs it (imported there); torch belongs to the agents."""
    code = (
        "import json, sys, gymnasium as gym, multispin_env\n"
        "env = gym.make('MultiSpin-Heterogeneous-v0')\n"
        "env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "multispin_env._kernels" in loaded  # the probe did make and play the env
    assert loaded.isdisjoint({"scipy.stats", "torch"}), sorted(loaded & {"scipy.stats", "torch"})
