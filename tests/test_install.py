"""The installation split: the environments, solvers and analytic controllers install and run without the
training stack (PyTorch, Stable-Baselines3, rl-zoo3: the ``train`` extra)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: Top-level modules of the training stack (the ``train`` extra); none may be needed by ``multispin_env``,
#: ``baselines`` or ``multispin-list``.
TRAINING_STACK = ("torch", "stable_baselines3", "sb3_contrib", "rl_zoo3", "yaml")
#: Their distribution names, as pip installs them.
TRAINING_DISTRIBUTIONS = ("torch", "stable-baselines3", "sb3-contrib", "rl-zoo3")

#: What a user of the base install does: import both packages, make each id, play a round with an analytic
#: controller. Printed "ok" at the end; any import of a blocked module fails on the spot.
BASE_USE = textwrap.dedent(
    """
    import gymnasium as gym
    import multispin_env, baselines
    from baselines.policies import make_policy
    from multispin_env.registration import ENV_IDS

    for env_id in ENV_IDS:
        env = gym.make(env_id)
        env.reset(seed=0)
        env.step(env.action_space.sample())
    env = gym.make("MultiSpin-Heterogeneous-v0")
    policy = make_policy("het-opt-adaptive", env)
    obs, _ = env.reset(seed=0)
    policy.reset()
    action, _ = policy.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, info = env.step(action)
    assert reward > 0 and info["tokens"].sum() > 0, reward
    from agents.cli import list_main  # multispin-list

    assert list_main([]) == 0
    print("ok")
    """
)

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    BLOCKED = {TRAINING_STACK!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{{name}} is blocked: the base install has no training stack", name=name)
            return None

    sys.meta_path.insert(0, Block())
    """
)


def test_core_dependencies_leave_the_training_stack_to_the_train_extra() -> None:
    def names(requirements: list[str]) -> set[str]:
        return {
            r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
            for r in requirements
        }

    core = names(PYPROJECT["project"]["dependencies"])
    train = names(PYPROJECT["project"]["optional-dependencies"]["train"])
    assert not core & set(TRAINING_DISTRIBUTIONS), core
    assert {"torch", "stable-baselines3", "pyyaml"} <= train


def test_envs_solvers_and_controllers_work_with_the_training_stack_blocked() -> None:
    """With torch, SB3, sb3-contrib, rl-zoo3 and PyYAML unimportable (a meta-path hook in a fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + BASE_USE], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
    # The hook does block: importing one of those modules under it fails.
    probe = subprocess.run([sys.executable, "-c", BLOCKER + "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr


@pytest.mark.slow
def test_pip_install_in_a_fresh_venv_brings_no_training_stack(tmp_path: Path) -> None:
    """``pip install .`` (with the constraints) into a plain venv: neither torch nor SB3 is installed, and the base
    use above runs there."""
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # plain: no system site-packages
    python = venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(source / "constraints.txt"), str(source)],
        check=True,
        env=env,
        timeout=1800,
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True, env=env
    ).stdout.lower()
    names = {line.split("==")[0].replace("_", "-") for line in installed.splitlines()}
    assert "multispin-env" in names and "gymnasium" in names
    assert not names & set(TRAINING_DISTRIBUTIONS), sorted(names & set(TRAINING_DISTRIBUTIONS))
    result = subprocess.run(
        [str(python), "-c", BASE_USE], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
