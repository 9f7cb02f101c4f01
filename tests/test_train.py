"""train.py on rl-zoo3's ExperimentManager: run layout, goodput evaluation, sb3-contrib algorithms, --optimize,
continued training and checkpoints, rl-zoo3's enjoy/plots on our logs, one-line CLI errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from cli_helpers import cli_error
from stable_baselines3.common.vec_env import VecNormalize

import multispin_env  # noqa: F401  (registers the ids)
from agents.runs import read_yaml, resolve_agent
from agents.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
ENV = "MultiSpin-Heterogeneous-v0"
NORM = "normalize:dict(norm_obs=True, norm_reward=True)"  # the tuned files turn obs normalisation off
TINY = {
    "ppo": ["n_envs:2", "n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:dict(net_arch=[16])", NORM],
    "ppo_lstm": [
        "n_envs:2",
        "n_steps:32",
        "batch_size:32",
        "n_epochs:1",
        "policy_kwargs:dict(lstm_hidden_size=8, net_arch=[8])",
    ],
    "a2c": ["n_envs:2", "n_steps:8", "policy_kwargs:dict(net_arch=[16])", NORM],
    "sac": [
        "learning_starts:50",
        "batch_size:32",
        "train_freq:4",
        "gradient_steps:1",
        "buffer_size:2000",
        "policy_kwargs:dict(net_arch=[16])",
    ],
    "td3": [
        "learning_starts:50",
        "batch_size:32",
        "train_freq:4",
        "gradient_steps:1",
        "buffer_size:2000",
        "policy_kwargs:dict(net_arch=[16])",
    ],
    "tqc": [
        "learning_starts:50",
        "batch_size:32",
        "train_freq:4",
        "gradient_steps:1",
        "buffer_size:2000",
        "policy_kwargs:dict(net_arch=[16], n_quantiles=5)",
        "top_quantiles_to_drop_per_net:1",
    ],
}
QUIET = ["--verbose", "0"]


def runs(log: Path, algo: str, env_id: str = ENV) -> list[Path]:
    return sorted((log / algo).glob(f"{env_id.replace('/', '-')}_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))


def train(log: Path, algo: str = "ppo", steps: int = 256, *extra: str, env_id: str = ENV, horizon: float = 1.0) -> Path:
    argv = [
        "--algo",
        algo,
        "--env",
        env_id,
        "-n",
        str(steps),
        "--seed",
        "1",
        "-f",
        str(log),
        "--eval-freq",
        "-1",
        "--env-kwargs",
        f"horizon:{horizon}",
        "-params",
        *TINY[algo],
        *QUIET,
        *extra,
    ]
    assert train_main(argv) == 0
    return runs(log, algo, env_id)[-1]


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO run (obs normalisation on) with two checkpoints."""
    return train(tmp_path_factory.mktemp("ppo") / "logs", "ppo", 256, "--save-freq", "128")


def test_run_layout_goodput_evaluation_and_honest_records(tmp_path: Path) -> None:
    log = tmp_path / "logs"
    # -n 200 is no multiple of the 128-step rollouts: 256 steps are done.
    argv = [
        "--algo",
        "ppo",
        "-n",
        "200",
        "--seed",
        "1",
        "-f",
        str(log),
        "--eval-freq",
        "128",
        "--eval-episodes",
        "2",
        "--vec-env",
        "dummy",
        "--env-kwargs",
        "horizon:1.0",
        "fading:False",
        "--baselines",
        "equal-fixed",
        "het-opt-static",
        "-params",
        *TINY["ppo"],
        *QUIET,
    ]
    assert train_main(argv) == 0
    (run,) = runs(log, "ppo")
    params = run / ENV
    for path in (
        run / f"{ENV}.zip",
        run / "best_model.zip",
        run / "evaluations.npz",
        run / "0.monitor.csv",
        params / "config.yml",
        params / "args.yml",
        params / "command.txt",
        params / "vecnormalize.pkl",
        params / "vecnormalize_best.pkl",
        params / "training.yml",
    ):
        assert path.is_file(), path
    config = read_yaml(params / "config.yml")
    assert config["n_envs"] == 2 and config["callback"] == "agents.callbacks.GoodputEvalCallback"
    assert config["n_timesteps"] == 200  # the run's budget, not the YAML's 1.2M
    args = read_yaml(params / "args.yml")
    assert (args["algo"], args["env"], args["seed"], args["env_kwargs"]) == (
        "ppo",
        ENV,
        1,
        {"horizon": 1.0, "fading": False},
    )
    summary = yaml.safe_load((params / "training.yml").read_text())
    assert (summary["num_timesteps"], summary["planned_timesteps"]) == (256, 200)
    assert summary["fps"] == pytest.approx(256 / summary["train_seconds"])  # from the steps done, not planned
    assert summary["final_goodput"] > 0

    data = np.load(run / "evaluations.npz")
    assert list(data["timesteps"]) == [0, 128, 256]  # at the start, every 128 steps
    assert data["goodput"].shape == (3, 2) and data["results"].shape == (3, 2) and np.all(data["goodput"] > 0)
    # On a goodput env the best model is picked by the mean goodput.
    assert str(data["selection_metric"]) == "goodput" and np.array_equal(data["selection"], data["goodput"].mean(1))
    assert list(data["baseline_names"]) == ["equal-fixed", "het-opt-static"]
    assert data["baseline_goodput"].shape == (2, 2) and list(data["seeds"]) == [11_000, 11_001]
    # Two runs in the same folder get consecutive numbers (rl-zoo3's rule).
    assert train_main([*argv, "--eval-freq", "-1"]) == 0
    assert [p.name for p in runs(log, "ppo")] == [f"{ENV}_1", f"{ENV}_2"]


def test_a_task_of_another_metric_picks_its_best_model_by_that_metric(tmp_path: Path) -> None:
    from agents.benchmark import load_agent_policy
    from agents.callbacks import selection_value
    from agents.evaluation import evaluate, suite_metric

    task = "MultiSpinSuite/Deadlines-v0"
    run = train(tmp_path, "ppo", 256, "--eval-freq", "128", "--eval-episodes", "2", env_id=task, horizon=8.0)
    data = np.load(run / "evaluations.npz")
    assert str(data["selection_metric"]) == "deadline_share" and data["selection"].shape == (3,)
    shares = data["selection"][~np.isnan(data["selection"])]
    assert shares.size and np.all((shares >= 0) & (shares <= 1))
    # The saved best model plays the validation episodes at the best deadline share, whatever its goodput.
    env = gym.make(task, horizon=8.0)
    result = evaluate(env, load_agent_policy(run / "best_model.zip", env), [int(s) for s in data["seeds"]])
    assert suite_metric(result, "deadline_share") == pytest.approx(shares.max())
    # Lower is better for the completion time: the selection value is its negative.
    assert selection_value(result, "completion_mean") == -suite_metric(result, "completion_mean")


def test_the_best_model_is_the_best_by_the_metric_when_goodput_ranks_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callback's evaluations are replaced by made-up results whose goodput and geometric-mean throughput rank
    the three evaluations differently: on Fairness the saved best model is the one of the best geometric mean."""
    from stable_baselines3 import PPO

    import agents.callbacks
    from agents.evaluation import EpisodeMetrics, EvaluationResult

    made_up = iter([(100.0, 10.0), (50.0, 20.0), (120.0, 5.0)])  # (goodput, geometric-mean throughput)
    real = agents.callbacks.evaluate

    def evaluate(env: Any, policy: Any, seeds: Any, name: str = "") -> EvaluationResult:
        if name != "agent":  # the baselines' evaluations stay real
            return real(env, policy, seeds, name=name)
        goodput, geomean = next(made_up)
        episode = EpisodeMetrics(0, goodput, goodput, 1.0, 1, 1.0, 1.0, 0.0, throughput_geomean=geomean)
        return EvaluationResult(name, [episode])

    monkeypatch.setattr(agents.callbacks, "evaluate", evaluate)
    run = train(tmp_path, "ppo", 256, "--eval-freq", "128", "--eval-episodes", "1", env_id="MultiSpinSuite/Fairness-v0")
    data = np.load(run / "evaluations.npz")
    assert str(data["selection_metric"]) == "throughput_geomean" and data["selection"].tolist() == [10.0, 20.0, 5.0]
    assert PPO.load(run / "best_model.zip").num_timesteps == int(data["timesteps"][1])  # not [2], the best goodput


def test_a_selection_metric_the_env_cannot_report_is_refused(tmp_path: Path) -> None:
    from agents.callbacks import GoodputEvalCallback

    with pytest.raises(ValueError, match="GoodputEvalCallback metric must be 'auto' or one of"):
        GoodputEvalCallback(metric="tokens")
    callback = GoodputEvalCallback(metric="deadline_share")
    with pytest.raises(ValueError, match="GoodputEvalCallback metric 'deadline_share' needs request arrivals"):
        callback.configure(gym.make(ENV), 10, 2, 0, None, None)


def test_batched_vector_env_is_the_default_and_monitored(tmp_path: Path) -> None:
    run = train(tmp_path, "ppo", 256, horizon=0.5)
    assert read_yaml(run / ENV / "args.yml")["vec_env"] == "batched"
    lines = (run / "monitor.csv").read_text().splitlines()  # VecMonitor over the batched env
    assert lines[0].startswith("#") and lines[1] == "r,l,t" and len(lines) > 3


@pytest.mark.parametrize(
    ("algo", "env_id"),
    [
        ("ppo_lstm", ENV),
        ("tqc", ENV),
        ("a2c", "MultiSpin-Homogeneous-v0"),
        ("sac", ENV),
        ("td3", "MultiSpin-Homogeneous-v0"),
    ],
)
def test_algorithms_train_on_our_ids_and_the_benchmark_loads_them(tmp_path: Path, algo: str, env_id: str) -> None:
    import gymnasium as gym

    from agents.benchmark import load_agent_policy
    from agents.evaluation import run_episode

    run = train(tmp_path, algo, 160, env_id=env_id)
    assert (run / f"{env_id}.zip").is_file() and resolve_agent(run).algo == algo
    env = gym.make(env_id, horizon=1.0)
    first, again = (run_episode(env, load_agent_policy(run, env), seed=3) for _ in range(2))
    assert first == again and first.goodput > 0  # deterministic replay, recurrent state included


def test_a_suite_task_entry_changes_only_what_it_names() -> None:
    """ppo_fast.yml's EnergyBudget and Fairness entries merge the default entry (YAML ``<<``) and set only the GAE
    lambda; another suite task falls back to the entry of the id it is registered on."""
    from agents.converge import constant_learning_rate
    from agents.train import hyperparams_key

    path = str(REPO / "agents" / "hyperparams" / "ppo_fast.yml")
    table = read_yaml(path)
    assert hyperparams_key(path, "MultiSpinSuite/Deadlines-v0") == "MultiSpin-Heterogeneous-v0"
    for task in ("MultiSpinSuite/EnergyBudget-v0", "MultiSpinSuite/Fairness-v0"):
        assert hyperparams_key(path, task) == task
        changed = {key for key in table["default"] if table[task][key] != table["default"][key]}
        assert changed == {"gae_lambda"} and set(table[task]) == set(table["default"])
        assert table[task]["gae_lambda"] == 0.95 and table["default"]["gae_lambda"] == 0.5
        assert constant_learning_rate("ppo_fast", task) == 1e-3  # until flat: the merged entry's rate, held


def test_fast_variant_trains_with_its_own_file(tmp_path: Path) -> None:
    """``--agent fast`` reads ppo_fast.yml (its batched envs, rollout and annealed learning rate, none of ppo.yml's)."""
    log = tmp_path / "logs"
    fast = yaml.safe_load((REPO / "agents" / "hyperparams" / "ppo_fast.yml").read_text())[ENV]
    one_rollout = fast["n_envs"] * fast["n_steps"]
    argv = [
        "--algo",
        "ppo",
        "--agent",
        "fast",
        "-n",
        str(one_rollout),
        "--seed",
        "1",
        "-f",
        str(log),
        "--eval-freq",
        "-1",
        "--env-kwargs",
        "horizon:1.0",
        *QUIET,
    ]
    assert train_main(argv) == 0
    (run,) = runs(log, "ppo")
    config = read_yaml(run / ENV / "config.yml")
    for key in ("n_envs", "n_steps", "batch_size", "n_epochs", "learning_rate"):
        assert config[key] == fast[key], key
    summary = yaml.safe_load((run / ENV / "training.yml").read_text())
    assert summary["num_timesteps"] == one_rollout


def test_packaged_hyperparameters_cover_both_ids_with_our_extension_points() -> None:
    for path in sorted((REPO / "agents" / "hyperparams").glob("*.yml")):
        table = yaml.safe_load(path.read_text())
        for env_id in ("MultiSpin-Homogeneous-v0", "MultiSpin-Heterogeneous-v0"):
            entry = table[env_id]
            wrappers = (
                entry["vec_env_wrapper"] if isinstance(entry["vec_env_wrapper"], list) else [entry["vec_env_wrapper"]]
            )
            assert wrappers[0] == "agents.wrappers.VecHorizonTermination", path  # innermost: sees the env's truncation
            assert entry["callback"] == "agents.callbacks.GoodputEvalCallback", path
    assert {p.stem for p in (REPO / "agents" / "hyperparams").glob("*.yml")} >= {
        "ppo",
        "ppo_lstm",
        "ppo_residual",
        "tqc",
        "a2c",
        "sac",
        "td3",
    }


def test_optimize_ranks_trials_by_goodput_over_a_shared_storage(tmp_path: Path) -> None:
    import optuna

    storage = tmp_path / "study.log"
    argv = [
        "--algo",
        "ppo",
        "-n",
        "256",
        "--seed",
        "0",
        "-f",
        str(tmp_path / "opt"),
        "--optimize",
        "--n-trials",
        "2",
        "--n-startup-trials",
        "1",
        "--n-evaluations",
        "1",
        "--eval-episodes",
        "2",
        "--storage",
        str(storage),
        "--study-name",
        "s",
        "--no-optim-plots",
        "--env-kwargs",
        "horizon:1.0",
        "-params",
        "n_envs:2",
        *QUIET,
    ]
    assert train_main(argv) == 0
    assert train_main(argv) == 0  # a second worker joins the same study
    study = optuna.load_study(
        study_name="s", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 4 and done
    # The objective is the mean episode goodput (tokens/s): between a few and ~150 tokens/s on these envs.
    assert all(5 < t.value < 200 for t in done)
    assert {"learning_rate", "n_steps_pow", "gae_lambda", "net_width", "log_std_init"} <= set(done[0].params)
    assert "one_minus_gamma" not in done[0].params  # gamma stays the YAML's 0.999 (agents/search.py)
    assert list((tmp_path / "opt" / "ppo").glob("report_*.csv"))

    # --trial-id trains with that trial's hyperparameters.
    trial = done[-1]
    assert trial.number > 0  # rl-zoo3 ignores --trial-id 0
    run = train(
        tmp_path / "logs", "ppo", 128, "--storage", str(storage), "--study-name", "s", "--trial-id", str(trial.number)
    )
    assert read_yaml(run / ENV / "config.yml")["learning_rate"] == pytest.approx(trial.params["learning_rate"])


def obs_count(path: Path) -> float:
    """Observations behind saved VecNormalize statistics."""
    with path.open("rb") as f:
        stats = pickle.load(f)
    assert isinstance(stats, VecNormalize)
    return float(stats.obs_rms.count)


def test_continue_training_keeps_the_normalisation_statistics(tmp_path: Path, ppo_run: Path) -> None:
    first = obs_count(ppo_run / ENV / "vecnormalize.pkl")
    cont = train(tmp_path, "ppo", 128, "-i", str(ppo_run / f"{ENV}.zip"))
    assert obs_count(cont / ENV / "vecnormalize.pkl") > first + 100


def test_checkpoints_save_and_resume_their_normalisation_statistics(tmp_path: Path, ppo_run: Path) -> None:
    """A killed run leaves only checkpoints: resuming one must not restart VecNormalize from scratch."""
    checkpoint = ppo_run / "rl_model_128_steps.zip"
    stats = ppo_run / "rl_model_vecnormalize_128_steps.pkl"
    assert checkpoint.is_file() and stats.is_file()
    killed = tmp_path / "ppo" / f"{ENV}_1"
    killed.mkdir(parents=True)
    for name in ("rl_model_128_steps.zip", "rl_model_vecnormalize_128_steps.pkl"):
        (killed / name).write_bytes((ppo_run / name).read_bytes())
    (killed / ENV).mkdir()
    for name in ("args.yml", "config.yml"):
        (killed / ENV / name).write_text((ppo_run / ENV / name).read_text())
    saved = obs_count(stats)
    resumed = train(tmp_path / "resumed", "ppo", 128, "-i", str(killed / "rl_model_128_steps.zip"))
    assert obs_count(resumed / ENV / "vecnormalize.pkl") > saved + 100


def test_progress_bar_stops_at_its_total() -> None:
    from types import SimpleNamespace

    from agents.train import BoundedProgressBar

    bar = BoundedProgressBar()
    bar.pbar = SimpleNamespace(total=200, n=0)  # type: ignore[assignment]
    bar.pbar.update = lambda k: setattr(bar.pbar, "n", bar.pbar.n + k)  # type: ignore[attr-defined]
    bar.model = SimpleNamespace(get_env=lambda: SimpleNamespace(num_envs=64))  # type: ignore[assignment]
    for _ in range(4):  # 256 steps done on a 200-step budget
        bar._on_step()
    assert bar.pbar.n == 200


def zoo_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}


def test_rl_zoo3_enjoy_reads_our_logs(tmp_path: Path, ppo_run: Path) -> None:
    enjoy = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_zoo3.enjoy",
            "--algo",
            "ppo",
            "--env",
            ENV,
            "-f",
            str(ppo_run.parent.parent),
            "--gym-packages",
            "multispin_env",
            "-n",
            "30",
            "--no-render",
            "--deterministic",
        ],
        capture_output=True,
        text=True,
        env=zoo_env(),
        cwd=tmp_path,
        timeout=180,
    )
    assert enjoy.returncode == 0, enjoy.stderr[-2000:]
    assert "Loading" in enjoy.stdout


@pytest.mark.slow
def test_rl_zoo3_plots_read_our_logs(tmp_path: Path, ppo_run: Path) -> None:
    folder = str(ppo_run.parent.parent)
    plots = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_zoo3.plots.plot_train",
            "-a",
            "ppo",
            "-e",
            "MultiSpin-Heterogeneous",
            "-f",
            folder,
            "-w",
            "2",
        ],
        capture_output=True,
        text=True,
        env=zoo_env(),
        cwd=tmp_path,
        timeout=180,
    )
    assert plots.returncode == 0, plots.stderr[-2000:]
    table = subprocess.run(  # evaluations.npz's goodput key, aggregated by rl-zoo3
        [
            sys.executable,
            "-m",
            "rl_zoo3.plots.all_plots",
            "-a",
            "ppo",
            "-e",
            ENV,
            "-f",
            folder,
            "-k",
            "goodput",
            "-o",
            str(tmp_path / "all"),
            "--no-display",
        ],
        capture_output=True,
        text=True,
        env=zoo_env(),
        cwd=tmp_path,
        timeout=180,
    )
    assert table.returncode == 0, table.stderr[-2000:]
    assert (tmp_path / "all.pkl").is_file() and ENV in table.stdout


# -- one-line errors ------------------------------------------------------------------------------


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], tmp_path: Path) -> str:
    line = cli_error(train_main, [*argv, "-f", str(tmp_path / "logs"), *QUIET], capsys, "train.py")
    assert not list((tmp_path / "logs").rglob("*.yml")), "a half-made run folder was left"
    return line


ONE_LINE_ERRORS = [
    (["--env", "Nope-v0"], "MultiSpin ids: MultiSpin-Heterogeneous-v0, MultiSpin-Homogeneous-v0"),
    (["--env", "CartPole-v1"], "'CartPole-v1' is not a MultiSpin env"),
    (["-n", "-5"], "-n/--n-timesteps must be a positive number of steps"),
    (["-n", "0"], "-n/--n-timesteps must be a positive number of steps"),
    (["--eval-episodes", "0"], "--eval-episodes must be >= 1"),
    (["-i", "missing.zip"], "-i/--trained-agent must be an existing .zip file"),
    (["--baselines", "het-opt-magic"], "unknown or invalid baseline(s) het-opt-magic"),
    (["-params", "learning_rate"], "malformed -params pair 'learning_rate'"),
    (["-params", "x:dict("], "cannot parse -params pair"),
    (["--env-kwargs", "nonsense:1"], "cannot set up ppo on MultiSpin-Heterogeneous-v0"),
    (["-params", "n_epochs:3", "--algo", "sac"], "n_epochs"),
    (["--algo", "dqn"], "no hyperparameters for dqn"),
    (["--agent", "magic"], "no hyperparameters for ppo --agent magic"),
    (["--agent", "residual", "-conf", "agents/hyperparams/ppo.yml"], "do not combine it with -conf"),
    (["--vec-env", "threads"], "invalid choice"),
    (["--no-such-flag"], "unrecognized arguments"),
]


@pytest.mark.parametrize(("argv", "message"), ONE_LINE_ERRORS)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    line = one_line_error(capsys, argv, tmp_path)
    assert message in line, line
    assert "Hopper" not in line


def test_log_folder_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    assert train_main(["-f", str(tmp_path / "afile"), *QUIET]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["sac", "a2c"])
def test_continuing_with_another_algorithm_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ppo_run: Path, algo: str
) -> None:
    line = one_line_error(capsys, ["--algo", algo, "-i", str(ppo_run / f"{ENV}.zip")], tmp_path)
    assert f"was trained with ppo, not {algo}: use --algo ppo" in line


def test_continuing_with_other_env_shapes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ppo_run: Path
) -> None:
    line = one_line_error(capsys, ["-i", str(ppo_run / f"{ENV}.zip"), "--env-kwargs", "num_users:3"], tmp_path)
    assert "has observation shape (31,)" in line and "(16,)" in line


def test_help_shows_each_default_once_and_our_extension_flags() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--baselines" in text and "batched" in text and "--optimize-hyperparameters" in text and "--storage" in text
    assert "(default: None)" not in text and ") (default" not in text


def test_cli_error_from_the_command_line_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--algo",
            "td3",
            "-params",
            "n_steps_per_update:4",
            "-f",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("train.py: error: cannot set up td3")
    assert "n_steps_per_update" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_plain_rl_zoo3_trains_our_ids_with_the_goodput_callback(tmp_path: Path) -> None:
    """``python -m rl_zoo3.train --gym-packages multispin_env -conf agents/hyperparams/ppo.yml``: the callback
    named in the YAML builds its eval env from the training env's spec."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_zoo3.train",
            "--algo",
            "ppo",
            "--env",
            ENV,
            "--gym-packages",
            "multispin_env",
            "-conf",
            str(REPO / "agents" / "hyperparams" / "ppo.yml"),
            "-n",
            "1024",
            "--eval-freq",
            "512",
            "--eval-episodes",
            "2",
            "--seed",
            "0",
            "-f",
            str(tmp_path / "zoo"),
            "--env-kwargs",
            "horizon:1.0",
            "-params",
            "n_envs:2",
            "n_steps:256",
        ],
        capture_output=True,
        text=True,
        env=zoo_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "baseline het-opt-oracle" in proc.stdout and "eval at 0 steps: goodput" in proc.stdout
    (run,) = (tmp_path / "zoo" / "ppo").glob(f"{ENV}_*")
    assert (run / f"{ENV}.zip").is_file() and (run / "evaluations.npz").is_file()
