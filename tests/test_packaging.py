"""The installed package: console scripts, package data, the listing command, the per-id docs pages."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import multispin_env  # registers the ids
from multispin_env.registration import ENV_IDS
from multispin_env.scenarios import SCENARIOS

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize(
    "name",
    [
        "multispin-train",
        "multispin-benchmark",
        "multispin-demo",
        "multispin-list",
        "multispin-record-trace",
        "multispin-leaderboard",
    ],
)
def test_console_scripts_point_at_callables(name: str) -> None:
    module, _, attr = PYPROJECT["project"]["scripts"][name].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_package_data_ships_hyperparameters_and_type_markers() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "hyperparams/*.yml" in data["agents"]
    for package in ("agents", "multispin_env", "baselines"):
        assert "py.typed" in data[package] and (REPO / package / "py.typed").is_file()


def test_package_data_ships_the_labelled_example_trace() -> None:
    from multispin_env.traces import EXAMPLE_TRACE, load_trace

    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["multispin_env"]
    relative = EXAMPLE_TRACE.relative_to(REPO / "multispin_env")
    assert any(relative.match(pattern) for pattern in patterns)
    assert load_trace().metadata["label"] == "tiny random models, for smoke tests only"


def test_project_files() -> None:
    assert "MIT License" in (REPO / "LICENSE").read_text()
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["license"] == "MIT" and "2606.04581" in str(citation["preferred-citation"])
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert "## Unreleased" in changelog
    # The version is declared once (multispin_env.__version__, read by pyproject.toml); the citation and the
    # changelog name it.
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "multispin_env.__version__"}
    assert str(citation["version"]) == multispin_env.__version__
    assert re.search(rf"^## \[{re.escape(multispin_env.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)
    assert "build/" in (REPO / ".gitignore").read_text().split()
    assert PYPROJECT["project"]["urls"]


def test_listing_has_one_line_per_id_and_preset(capsys: pytest.CaptureFixture[str]) -> None:
    from agents.cli import list_main

    assert list_main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    from baselines.policies import ANALYTIC_POLICIES
    from multispin_env.suite import RETIRED, TASK_SPECS

    assert len(lines) == 4 + len(ENV_IDS) + len(TASK_SPECS) + len(ANALYTIC_POLICIES) + len(SCENARIOS)
    assert "het-opt-predictive" in ANALYTIC_POLICIES and "bandit-ucb" in ANALYTIC_POLICIES
    for name in [*ENV_IDS, *TASK_SPECS, *ANALYTIC_POLICIES, *SCENARIOS]:
        assert sum(line.split()[0] == name for line in lines if line.startswith("  ")) == 1, name
    retired = [line for line in lines if line.split()[1:2] == ["retired:"]]
    assert sorted(line.split()[0] for line in retired) == sorted(RETIRED)  # the suite's tasks are not flagged
    kinds = {line.split()[0]: line for line in lines if line.startswith("  MultiSpin-")}
    assert "P-hom" in kinds["MultiSpin-Homogeneous-v0"] and "P-het" in kinds["MultiSpin-Heterogeneous-v0"]


def _gen_pages():
    """docs/gen_pages.py, the generator of the site's env pages (loaded as a module: docs/ is no package)."""
    from cli_helpers import load_script

    return load_script(REPO / "docs" / "gen_pages.py")


def test_the_site_has_a_page_for_every_registered_id_and_no_other() -> None:
    gen = _gen_pages()
    registered = {i for i, s in gym.registry.items() if str(s.entry_point).startswith("multispin_env.")}
    assert set(gen.env_ids()) == registered and set(ENV_IDS) < registered
    pages = gen.pages()
    assert {p for p in pages if p.startswith("envs/") and p.count("/") >= 1} == {
        "envs/index.md",
        "envs/SUMMARY.md",
        *(f"envs/{i}.md" for i in registered),
    }
    readme = (REPO / "README.md").read_text()
    for env_id in ENV_IDS:
        assert env_id in readme and env_id in pages["envs/index.md"]()


@pytest.mark.parametrize(
    "env_id",
    [*ENV_IDS, "MultiSpinSuite/StaleCSI1-v1", "MultiSpinSuite/StaleCSI1-v0", "MultiSpinSuite/ArrivalsHeavy-v1"],
)
def test_every_id_page_is_generated_from_the_docstrings_with_every_section(env_id: str) -> None:
    page = _gen_pages().env_page(env_id)
    for section in (
        "## Description",
        "## Action space",
        "## Observation space",
        "## Reward",
        "## Info",
        "## Starting state",
        "## Episode end",
        "## Arguments",
        "## Version history",
    ):
        assert page.count(section + "\n") == 1, section
    env = gym.make(env_id)
    (n_actions,) = env.action_space.shape
    (n_obs,) = env.observation_space.shape
    assert f"Box(-1, 1, ({n_actions},))" in page and f"Box(float32, ({n_obs},))" in page
    # Every setting of the env is documented on its page: in the table, or as fixed by the id.
    for key in env.unwrapped.default_config():
        assert re.search(rf"`{key}", page), key
    if "/" in env_id:  # a suite task's page gives its settings and links its base id
        from multispin_env.suite import task

        assert "## Task" in page and "(../MultiSpin-Heterogeneous-v0.md)" in page
        for key in task(env_id).settings:
            assert f"`{key}=" in page, key
        # a retired version says so and links the suite's version
        assert ("**Retired**" in page) == bool(task(env_id).retired)
        if task(env_id).retired:
            assert "(../MultiSpinSuite/StaleCSI1-v1.md)" in page
    assert env.spec.max_episode_steps is None and env.spec.reward_threshold is None  # episodes end on simulated time
