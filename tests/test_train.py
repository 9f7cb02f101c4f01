"""train.py: output layout, evaluation against the analytic policies, continued training, one-line CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import multispin_env  # noqa: F401  (registers the ids)
from agents.factory import load_model, load_vecnormalize_stats, resolve_agent
from agents.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
TINY_PPO = ["n_envs:2", "n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:dict(net_arch=[16])",
            "normalize:dict(norm_obs=True, norm_reward=True)"]
ENV = "MultiSpin-Heterogeneous-v0"


def _run_dirs(log: Path, algo: str, env_id: str = ENV) -> list[Path]:
    return sorted((log / algo).glob(f"{env_id}_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))


def test_run_folder_layout_and_goodput_evaluation(tmp_path: Path) -> None:
    log = tmp_path / "logs"
    argv = [
        "--algo", "ppo", "-n", "256", "--seed", "1", "-f", str(log), "--eval-freq", "128", "--eval-episodes", "2",
        "--vec-env", "dummy",
        "--env-kwargs", "horizon:1.0", "fading:False", "--baselines", "equal-fixed", "het-opt-static",
        "-params", *TINY_PPO, "--verbose", "0",
    ]
    assert train_main(argv) == 0
    (run_dir,) = _run_dirs(log, "ppo")
    assert run_dir.name == f"{ENV}_1"
    params = run_dir / ENV
    for path in (
        run_dir / f"{ENV}.zip",
        run_dir / "best_model.zip",
        run_dir / "evaluations.npz",
        run_dir / "0.monitor.csv",
        params / "config.yml",
        params / "args.yml",
        params / "command.txt",
        params / "vecnormalize.pkl",
        params / "training.yml",
    ):
        assert path.is_file(), path
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard events"

    config = yaml.safe_load((params / "config.yml").read_text())
    assert config["n_envs"] == 2 and config["env_kwargs"] == {"horizon": 1.0, "fading": False}
    args = yaml.safe_load((params / "args.yml").read_text())
    assert (args["algo"], args["env"], args["seed"], args["n_timesteps"]) == ("ppo", ENV, 1, 256)

    data = np.load(run_dir / "evaluations.npz")
    # Evaluated at 0, 128 and 256 steps, 2 episodes each, on the same seeds as the baselines.
    assert list(data["timesteps"]) == [0, 128, 256]
    assert data["goodput"].shape == (3, 2) and data["results"].shape == (3, 2)
    assert np.all(data["goodput"] > 0)
    assert list(data["baseline_names"]) == ["equal-fixed", "het-opt-static"]
    assert data["baseline_goodput"].shape == (2, 2) and np.all(data["baseline_goodput"] > 0)
    assert len(data["seeds"]) == 2
    # Two runs in the same folder get consecutive numbers.
    assert train_main([*argv, "--no-eval", "--no-tensorboard"]) == 0
    assert [p.name for p in _run_dirs(log, "ppo")] == [f"{ENV}_1", f"{ENV}_2"]


def test_training_on_the_batched_vector_env(tmp_path: Path) -> None:
    log = tmp_path / "logs"
    argv = ["--algo", "ppo", "-n", "256", "--seed", "0", "-f", str(log), "--vec-env", "batched", "--no-tensorboard",
            "--eval-freq", "256", "--eval-episodes", "1", "--baselines", "equal-fixed", "--verbose", "0",
            "--env-kwargs", "horizon:0.5", "-params", *TINY_PPO]
    assert train_main(argv) == 0
    (run_dir,) = _run_dirs(log, "ppo")
    assert (run_dir / f"{ENV}.zip").is_file()
    # VecMonitor over the batched env records the finished episodes
    lines = (run_dir / "monitor.csv").read_text().splitlines()
    assert lines[0].startswith("#") and lines[1] == "r,l,t" and len(lines) > 3


def test_continue_training_from_a_saved_agent(tmp_path: Path) -> None:
    log = tmp_path / "logs"
    common = ["--algo", "ppo", "--seed", "2", "-f", str(log), "--no-eval", "--no-tensorboard", "--verbose", "0",
              "--env-kwargs", "horizon:2.0", "-params", *TINY_PPO]
    assert train_main([*common, "-n", "256"]) == 0
    (first,) = _run_dirs(log, "ppo")
    first_model = load_model(resolve_agent(first))
    first_stats = load_vecnormalize_stats(first / ENV / "vecnormalize.pkl")
    assert first_model.num_timesteps == 256

    assert train_main([*common, "-n", "128", "-i", str(first / f"{ENV}.zip")]) == 0
    second = _run_dirs(log, "ppo")[-1]
    assert second != first
    cont = load_model(resolve_agent(second))
    # The timestep counter continues and the VecNormalize statistics carried over (not restarted).
    assert cont.num_timesteps == 256 + 128
    cont_stats = load_vecnormalize_stats(second / ENV / "vecnormalize.pkl")
    assert cont_stats.obs_rms.count > first_stats.obs_rms.count + 100
    # Training went on from the saved weights: closer to them than a fresh network is.
    w0 = first_model.policy.parameters_to_vector()
    w1 = cont.policy.parameters_to_vector()
    fresh_args = [*common, "-n", "128", "--seed", "5"]
    assert train_main(fresh_args) == 0
    fresh = load_model(resolve_agent(_run_dirs(log, "ppo")[-1]))
    assert np.linalg.norm(w1 - w0) < np.linalg.norm(fresh.policy.parameters_to_vector() - w0)
    assert yaml.safe_load((second / ENV / "args.yml").read_text())["trained_agent"].endswith(f"{ENV}.zip")


ONE_LINE_ERRORS = [
    (["--env", "MultiSpin-Heterogenous-v0"], "unknown env id 'MultiSpin-Heterogenous-v0'; did you mean MultiSpin-Heterogeneous-v0?"),
    (["--env", "NoSuchEnv-v9"], "unknown env id 'NoSuchEnv-v9'"),
    (["--algo", "dqn"], "unknown algorithm 'dqn'"),
    (["-params", "learning_rate"], "malformed -params pair 'learning_rate'"),
    (["-params", "learning_rate=0.1"], "malformed -params pair"),
    (["--env-kwargs", "fading"], "malformed --env-kwargs pair 'fading'"),
    (["--env-kwargs", "nonsense:1"], "env kwargs do not fit MultiSpin-Heterogeneous-v0"),
    (["--env-kwargs", "acceptance_process:sometimes"], "env kwargs do not fit"),
    (["-params", "n_epochs:3", "--algo", "sac"], "n_epochs do not fit sac"),
    (["-params", "buffer_size:100"], "buffer_size do not fit ppo"),
    (["-params", "batch_size:-1"], "hyperparameters do not fit ppo"),
    (["-params", "learning_rate:fast"], "learning_rate"),
    (["-i", "missing.zip"], "--trained-agent must be an existing .zip file"),
    (["--baselines", "het-opt-magic"], "unknown or invalid baseline(s) het-opt-magic"),
    (["--vec-env", "threads"], "invalid choice"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["-n", "ten"], "invalid int value"),
]


@pytest.mark.parametrize(("argv", "message"), ONE_LINE_ERRORS)
def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) if _is_argparse_error(argv) else _no_raise():
        status = train_main([*argv, "-f", str(tmp_path), "--verbose", "0"])
        assert status == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("train.py: error: ") and message in lines[0], lines[0]
    assert not list(tmp_path.rglob("*.zip"))
    assert not [p for p in tmp_path.rglob("*") if p.is_dir() and p.name.startswith("MultiSpin")]


def _is_argparse_error(argv: list[str]) -> bool:
    return argv[0] in ("--vec-env", "--no-such-flag", "-n")


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_cli_error_from_the_command_line_has_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--algo", "td3", "-params", "n_steps_per_update:4", "-f", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "train.py: error: hyperparameter(s) n_steps_per_update do not fit td3"
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_rl_zoo3_trains_our_ids_unmodified(tmp_path: Path) -> None:
    """``python -m rl_zoo3.train --algo ppo --env MultiSpin-Heterogeneous-v0 --gym-packages multispin_env`` works."""
    pytest.importorskip("rl_zoo3")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for extra in ([], ["-conf", str(REPO / "agents" / "hyperparams" / "ppo.yml")]):
        proc = subprocess.run(
            [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", ENV, "--gym-packages", "multispin_env",
             "-n", "2048", "--eval-freq", "1024", "--eval-episodes", "2", "--seed", "0", "-f", str(tmp_path / "zoo"), *extra],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((tmp_path / "zoo" / "ppo").glob(f"{ENV}_*"))
    assert len(runs) == 2
    for run in runs:
        assert (run / f"{ENV}.zip").is_file() and (run / "evaluations.npz").is_file()
    # Our tuned file was used by the second run (normalize -> vecnormalize.pkl), and our loader reads rl-zoo3's layout.
    assert (runs[1] / ENV / "vecnormalize.pkl").is_file()
    info = resolve_agent(runs[1])
    assert info.algo == "ppo" and info.env_id == ENV and info.vecnormalize_path is not None
