"""The shape of the package (docs/model.md sections 9-10): no import cycles, formulas written once, and an
acceptance process added the way docs/model.md section 9 says, without touching the round."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import multispin_env  # registers the ids
from multispin_env import acceptance

PACKAGE = Path(multispin_env.__file__).resolve().parent
DOCS = PACKAGE.parent / "docs" / "model.md"


def _module_level_imports(path: Path) -> set[str]:
    """Package modules imported when ``path`` is imported (not under ``if TYPE_CHECKING:``, not in functions)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("multispin_env"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("multispin_env"))
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(node.body)
                visit(getattr(node, "orelse", []))

    visit(ast.parse(path.read_text()).body)
    return found


def test_the_package_has_no_import_cycles() -> None:
    graph = {f"multispin_env.{p.stem}": _module_level_imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {name: {d for d in deps if d in graph} for name, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*path, node, dep])}"
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_the_kernels_compute_no_formula_of_their_own() -> None:
    """The round calls the formula functions of docs/model.md section 10; it must not restate them."""
    source = (PACKAGE / "_kernels.py").read_text()
    for name in (
        "finish_time",
        "verification_time",
        "latency",
        "efficiency",
        "upload_time_per_token",
        "fading_correlation",
        "gauss_markov_step",
        "accepted_prefix",
        "acceptance_estimate",
        "upload_end",
        "device_energy",
    ):
        assert re.search(rf"\b{name}\(", source), f"the round does not call {name}"
    for restated in (r"math\.log1p", r"\bj0\b", r"np\.floor", r"expm1"):
        assert not re.search(restated, source), f"_kernels.py computes {restated} itself"


def test_every_formula_in_the_docs_table_exists() -> None:
    table = DOCS.read_text().split("## 10. Where each formula lives", 1)[1]
    rows = re.findall(r"\| `(\w+)` \| `(multispin_env\.\w+)` \|", table)
    assert len(rows) >= 12
    for function, module in rows:
        assert callable(getattr(__import__(module, fromlist=[function]), function)), f"{module}.{function}"


def _example_from_the_docs() -> str:
    """The code block of docs/model.md section 9."""
    section = DOCS.read_text().split("## 9. Adding an acceptance process", 1)[1].split("## 10.", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def drifting_env():
    namespace: dict[str, object] = {}
    exec(compile(_example_from_the_docs(), str(DOCS), "exec"), namespace)  # the docs' example, as a user runs it
    try:
        yield namespace["env"]
    finally:
        acceptance.ACCEPTANCE_PROCESSES.pop("drifting", None)


def test_an_acceptance_process_added_as_the_docs_say_drives_the_round(drifting_env) -> None:
    env = drifting_env.unwrapped
    env.reset(seed=0)
    process = env.core.process
    assert type(process).__name__ == "DriftingAcceptance"
    full = env.encode_action(np.full(env.num_users, env.max_draft), np.full(env.num_users, 1.0 / env.num_users))
    counts = np.zeros((env.num_users, env.max_draft + 1))
    expected = np.zeros_like(counts)
    rates = []
    for _ in range(4000):
        survival = np.concatenate([np.ones((env.num_users, 1)), process.survival()[0]], axis=1)  # P(A >= i)
        probabilities = survival - np.append(survival[:, 1:], np.zeros((env.num_users, 1)), axis=1)  # P(A = i)
        rates.append(process.rate[0].copy())
        _, _, _, truncated, info = env.step(full)
        verified = ~info["dropped"]  # a draft cut at the upload deadline is not verified (A = 0)
        expected[verified] += probabilities[verified]
        counts[np.flatnonzero(verified), info["accepted"][verified]] += 1
        np.testing.assert_array_equal(info["acceptance"], process.rate[0])
        if truncated:
            env.reset()
    assert np.ptp(np.array(rates), axis=0).min() > 0.05  # the rates really drift
    # The accepted prefixes follow the process's own (changing) survival curve: pooled over rounds,
    # the counts of A = 0..L_max match the sum of the per-round probabilities.
    keep = expected.sum(axis=0) > 20
    assert (
        stats.chisquare(
            counts.sum(axis=0)[keep], expected.sum(axis=0)[keep] * counts.sum() / expected.sum(axis=0)[keep].sum()
        ).pvalue
        > 1e-4
    )


def test_an_unregistered_process_name_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"acceptance_process must be one of \['iid', 'markov'"):
        gym.make("MultiSpin-Heterogeneous-v0", acceptance_process="drifting-unregistered")


def test_nothing_in_the_repository_points_outside_it() -> None:
    """A user who clones the repository has none of the workspace's shared folders beside it: docs/model.md is
    the model reference."""
    import subprocess

    outside = "../" + "shared"  # spelled in two parts so that this file does not match itself
    tracked = subprocess.run(["git", "ls-files"], cwd=PACKAGE.parent, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split():
        path = PACKAGE.parent / name
        if path.suffix in (".py", ".md", ".toml", ".cfg", ".yml", ".yaml", ".txt", "") and path.is_file():
            assert outside not in path.read_text(errors="ignore"), name
