"""Benchmark: every analytic policy and any saved agents on the same env config and the same seeds.

    python -m agents.benchmark --env MultiSpin-Heterogeneous-v0 --episodes 20 --seed 0 \\
        --agents logs/ppo/MultiSpin-Heterogeneous-v0_1 --env-kwargs acceptance_process:markov -o results/

Per policy it reports the goodput mean (tokens/s) with its 95% t-interval, the
ratio to the oracle policy (mean over episodes of the per-episode ratio, paired
on seeds, with its 95% interval), the mean draft length (tokens) and the
bandwidth concentration (mean Herfindahl index, 1/K = equal split); with request
arrivals (``--env-kwargs arrival_rate:0.5``) also the mean and 95th percentile
request completion time (s) and Jain's fairness of the users' token rates, and with
request deadlines (``request_deadline_per_token``) the requests that met and missed
their target and the share met (column "met"; docs/model.md eq. (9d)). It writes

- ``benchmark.csv`` and ``benchmark.json`` (the JSON adds per-episode values, the
  env config and, for every agent, paired goodput differences to every analytic policy);
- ``goodput.png``: bar chart of goodput per policy (error bars: 95% t-intervals; agents hatched);
- ``training_curve.png``: each agent's evaluation goodput during training
  (``evaluations.npz`` of its run folder) with the analytic policies' goodput on
  the same evaluation seeds as horizontal lines (only when a run folder has one);

and prints the table. Without ``--env``/``--env-kwargs`` the first agent's
training env and env kwargs are used. ``--training-log RUN_DIR`` only plots a
training curve from a run folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.cli import (
    EVAL_NOTE,
    HelpFormatter,
    OneLineParser,
    UserError,
    check_output_folder,
    int_at_least,
    store_dict_or_words,
)
from agents.evaluation import EvaluationResult, evaluate, evaluation_seeds, mean_ci, oracle_name
from agents.runs import TRUST_NOTE, load_run_file, resolve_agent, write_atomic
from baselines.protocol import Policy
from multispin_env.registration import DEFAULT_ENV_ID

CSV_COLUMNS: tuple[str, ...] = (
    "policy",
    "kind",
    "goodput_mean",
    "goodput_ci95",
    "ratio_to_oracle",
    "ratio_ci95",
    "mean_draft_length",
    "bandwidth_hhi",
    "episodes",
    "eval_seconds",
)
#: Columns added when the env has request arrivals (docs/model.md section 5.8): requests completed, mean and
#: 95th percentile of their completion time (s, pooled over episodes), mean Jain fairness of the users' token rates.
ARRIVAL_COLUMNS: tuple[str, ...] = ("requests_completed", "completion_mean", "completion_p95", "fairness")
#: Columns added when the requests have completion-time targets (docs/model.md eq. (9d)): requests that met and
#: missed their target, and the share met / (met + missed), pooled over episodes.
DEADLINE_COLUMNS: tuple[str, ...] = ("deadline_met", "deadline_missed", "deadline_share")


class BenchmarkError(UserError):
    """A one-line user error (bad agent path, env mismatch...)."""


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """One env of a MultiSpin id; unknown ids and bad settings become :class:`BenchmarkError`."""
    import gymnasium as gym

    from agents.cli import UserError, check_env_id

    try:
        check_env_id(env_id)
        return gym.make(env_id, **env_kwargs)
    except UserError as exc:
        raise BenchmarkError(str(exc)) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise BenchmarkError(f"env kwargs do not fit {env_id}: {' '.join(str(exc).split())}") from None


@dataclass(frozen=True)
class PolicySpec:
    """What to evaluate: an analytic policy by name or an agent by path."""

    name: str
    kind: str  # "analytic" | "agent"
    path: str | None = None


@dataclass
class BenchmarkRow:
    """One policy's summary (units: goodput in tokens/s, draft length in tokens)."""

    policy: str
    kind: str
    result: EvaluationResult
    eval_seconds: float
    ratio_to_oracle: float = math.nan
    ratio_ci95: float = math.nan
    paired: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        mean, half = self.result.goodput_ci()
        return {
            "policy": self.policy,
            "kind": self.kind,
            "goodput_mean": mean,
            "goodput_ci95": half,
            "ratio_to_oracle": self.ratio_to_oracle,
            "ratio_ci95": self.ratio_ci95,
            "mean_draft_length": self.result.mean_draft_length,
            "bandwidth_hhi": self.result.bandwidth_hhi,
            "episodes": len(self.result.episodes),
            "eval_seconds": self.eval_seconds,
            **(self.result.completion_summary() if self.result.arrivals else {}),
            **(self.result.deadline_summary() if self.result.deadlines else {}),
        }


def _evaluate_spec(
    spec: PolicySpec, env_id: str, env_kwargs: dict[str, Any], seeds: list[int]
) -> tuple[EvaluationResult, float]:
    """Evaluate one policy in a fresh env (top-level so worker processes can run it)."""
    import torch

    torch.set_num_threads(1)
    env = make_env(env_id, env_kwargs)
    start = time.perf_counter()
    if spec.kind == "analytic":
        from baselines.policies import make_policy

        policy: Any = make_policy(spec.name, env)
    else:
        policy = load_agent_policy(spec.path or "", env, spec.name)
    result = evaluate(env, policy, seeds, name=spec.name)
    env.close()
    return result, time.perf_counter() - start


def load_agent_policy(path: str | Path, env: Any, name: str = "agent") -> Policy:
    """A saved agent as a policy for single ``env``: an SB3 run folder or .zip (an
    :class:`~agents.evaluation.AgentPolicy`), or an RLlib run dir of ``agents.rllib`` (its ``run.json``; needs
    the ``rllib`` extra), so that both are benchmarked on the same seeds next to the analytic policies."""
    if (Path(path) / "run.json").is_file():
        from agents.rllib import RLlibError, load_policy

        try:
            return load_policy(path, name)
        except (ImportError, RLlibError) as exc:
            raise BenchmarkError(f"cannot load the RLlib run {path}: {exc}") from exc
    from rl_zoo3.utils import ALGOS
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.evaluation import AgentPolicy

    info = resolve_agent(path)
    if info.algo is None:
        raise BenchmarkError(f"cannot tell the algorithm of {info.model_path} (no args.yml, not under logs/ALGO/)")
    from agents.callbacks import check_agent_fits
    from agents.residual import ResidualPolicy, residual_settings

    algo = info.algo
    model = load_run_file(info.model_path, lambda: ALGOS[algo].load(str(info.model_path), device="cpu"))
    residual = residual_settings(info.vec_env_wrapper)
    vn = None
    if info.vecnormalize_path is not None:
        stats = info.vecnormalize_path
        # _StatsOnly is what VecNormalize.load reads of its VecEnv (spaces, num_envs, render_mode), no more.
        vn = load_run_file(stats, lambda: VecNormalize.load(str(stats), _StatsOnly(model)))  # type: ignore[arg-type]
        vn.training, vn.norm_reward = False, False
    try:
        # A residual agent also observes the controller's action (as many entries as the env's action).
        check_agent_fits(
            model,
            env,
            vn,
            f"agent {path}",
            extra_observation=0 if residual is None else int(env.action_space.shape[-1]),
        )
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None
    agent = AgentPolicy(model, vn, name=name)
    if residual is None:
        return agent
    try:
        return ResidualPolicy(agent, env, name=name, **residual)
    except (TypeError, ValueError) as exc:
        raise BenchmarkError(f"agent {path}: bad residual settings {residual}: {exc}") from None


class _StatsOnly:
    """The spaces VecNormalize.load checks (the model's), without a live env (only its statistics are used)."""

    num_envs = 1
    render_mode = None

    def __init__(self, model: Any) -> None:
        self.observation_space = model.observation_space
        self.action_space = model.action_space


def describe_agent(path: str | Path) -> str:
    """Which model file of ``path`` the benchmark loads, and why (a killed run has no final model)."""
    info = resolve_agent(path)
    what = {
        "final": "final model",
        "best": "best model (no final model)",
        "checkpoint": "last checkpoint (no final or best model)",
        "file": "model file",
    }[info.kind]
    stats = f", VecNormalize statistics {info.vecnormalize_path}" if info.vecnormalize_path else ""
    if info.training.get("interrupted") and info.kind in ("final", "best"):
        stats += f"; training interrupted at {info.training.get('num_timesteps')} of {info.training.get('planned_timesteps')} steps"
    return f"{info.model_path} ({what}{stats})"


def agent_label(path: str) -> tuple[str, str]:
    """``label=path`` or ``path`` -> (label, path); the default label is ``{algo}/{run folder}``."""
    if "=" in path and not Path(path).exists():
        label, _, p = path.partition("=")
        return label, p
    info = resolve_agent(path)
    return f"{info.algo}/{info.model_path.parent.name}", path


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired (same seeds) goodput difference a - b (tokens/s) and ratio a / b, with 95% half-widths."""
    diff_mean, diff_half = mean_ci(a - b)
    ratio_mean, ratio_half = mean_ci(a / np.where(b > 0, b, np.nan)) if np.all(b > 0) else (math.nan, math.nan)
    return {"diff_mean": diff_mean, "diff_ci95": diff_half, "ratio_mean": ratio_mean, "ratio_ci95": ratio_half}


def run_benchmark(
    env_id: str,
    env_kwargs: dict[str, Any],
    episodes: int,
    seed: int,
    agents: Sequence[tuple[str, str]] = (),
    policies: Sequence[str] | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> list[BenchmarkRow]:
    """Evaluate the analytic ``policies`` (default: all valid for the env) and ``agents`` (label, path)."""
    probe = make_env(env_id, env_kwargs)
    from baselines.policies import policies_for

    valid = policies_for(probe)
    probe.close()
    chosen = list(valid) if policies is None else list(policies)
    bad = [p for p in chosen if p not in valid]
    if bad:
        raise BenchmarkError(f"policies {', '.join(bad)} are not valid on {env_id} (valid: {', '.join(valid)})")
    specs = [PolicySpec(name, "analytic") for name in chosen] + [
        PolicySpec(label, "agent", path) for label, path in agents
    ]
    seeds = evaluation_seeds(seed, episodes)
    outcomes: list[tuple[EvaluationResult, float]] = []
    bar = _progress(len(specs), progress)
    if jobs > 1 and len(specs) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_evaluate_spec, s, env_id, env_kwargs, seeds) for s in specs]
            for fut in futures:
                outcomes.append(fut.result())
                bar(1)
    else:
        for s in specs:
            outcomes.append(_evaluate_spec(s, env_id, env_kwargs, seeds))
            bar(1)
    bar(0, close=True)
    rows = [BenchmarkRow(s.name, s.kind, res, secs) for s, (res, secs) in zip(specs, outcomes, strict=True)]
    oracle = oracle_name([r.policy for r in rows if r.kind == "analytic"])
    by_name = {r.policy: r for r in rows}
    for row in rows:
        if oracle is not None:
            cmp = paired_comparison(row.result.goodputs, by_name[oracle].result.goodputs)
            row.ratio_to_oracle, row.ratio_ci95 = cmp["ratio_mean"], cmp["ratio_ci95"]
        if row.kind == "agent":
            row.paired = {
                other.policy: paired_comparison(row.result.goodputs, other.result.goodputs)
                for other in rows
                if other.kind == "analytic"
            }
    return rows


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return lambda n, close=False: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="benchmark", unit="policy")

    def update(n: int, close: bool = False) -> None:
        bar.update(n)
        if close:
            bar.close()

    return update


def format_table(rows: Sequence[BenchmarkRow]) -> str:
    """The summary as a fixed-width text table (goodput in tokens/s)."""
    arrivals = any(row.result.arrivals for row in rows)
    deadlines = any(row.result.deadlines for row in rows)
    header = f"{'policy':<34} {'goodput (tok/s)':>20} {'of oracle':>16} {'mean L':>7} {'HHI':>6}"
    if arrivals:
        header += f" {'mean C (s)':>10} {'p95 C (s)':>10} {'Jain':>6}"
    if deadlines:
        header += f" {'met':>6}"
    lines = [header, "-" * len(header)]
    for row in rows:
        d = row.as_row()
        ratio = (
            f"{100 * d['ratio_to_oracle']:.1f}% +- {100 * d['ratio_ci95']:.1f}"
            if not math.isnan(d["ratio_to_oracle"])
            else "-"
        )
        lines.append(
            f"{d['policy']:<34} {d['goodput_mean']:>11.2f} +- {d['goodput_ci95']:>5.2f} {ratio:>16} "
            f"{d['mean_draft_length']:>7.2f} {d['bandwidth_hhi']:>6.3f}"
            + (f" {d['completion_mean']:>10.3f} {d['completion_p95']:>10.3f} {d['fairness']:>6.3f}" if arrivals else "")
            + (f" {d['deadline_share']:>6.3f}" if deadlines else "")
        )
    return "\n".join(lines)


def write_outputs(
    rows: Sequence[BenchmarkRow],
    out_dir: Path,
    meta: dict[str, Any],
    training_logs: Sequence[tuple[str, Path]] = (),
    plots: bool = True,
) -> list[Path]:
    """Write CSV, JSON and the PNG plots into ``out_dir``; returns the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    csv_path = out_dir / "benchmark.csv"
    arrivals = any(row.result.arrivals for row in rows)
    deadlines = any(row.result.deadlines for row in rows)
    columns = CSV_COLUMNS + (ARRIVAL_COLUMNS if arrivals else ()) + (DEADLINE_COLUMNS if deadlines else ())
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns))
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_row())
    write_atomic(csv_path, text.getvalue())
    written.append(csv_path)
    json_path = out_dir / "benchmark.json"
    payload = {
        **meta,
        "oracle": oracle_name([r.policy for r in rows if r.kind == "analytic"]),
        "policies": [
            {
                **row.as_row(),
                **({"paired": row.paired} if row.paired else {}),
                "episodes_detail": row.result.as_dict()["episodes"],
            }
            for row in rows
        ],
    }
    write_atomic(json_path, json.dumps(_json_safe(payload), indent=2))
    written.append(json_path)
    if plots:
        written.append(plot_goodput(rows, out_dir / "goodput.png", title=meta.get("title", "")))
        curves = [(label, path) for label, path in training_logs if (path / "evaluations.npz").is_file()]
        if curves:
            written.append(plot_training_curves(curves, out_dir / "training_curve.png"))
    return written


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def goodput_figure(rows: Sequence[BenchmarkRow], title: str = "") -> Any:
    """Bar chart of mean goodput per policy; error bars are 95% t-intervals, learned agents hatched and in the legend."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    means = [r.result.goodput_ci()[0] for r in rows]
    halves = [float(np.nan_to_num(r.result.goodput_ci()[1])) for r in rows]
    agent = [r.kind == "agent" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(rows) + 2), 4.6))
    bars = ax.bar(
        range(len(rows)), means, yerr=halves, color=["tab:orange" if a else "tab:blue" for a in agent], capsize=3
    )
    for bar, is_agent in zip(bars, agent, strict=True):
        if is_agent:
            bar.set_hatch("//")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.policy for r in rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("goodput (tokens/s)")
    ax.set_ylim(
        0.0, 1.15 * max(m + h for m, h in zip(means, halves, strict=True))
    )  # from zero: heights compare as ratios
    for i, (m, h) in enumerate(zip(means, halves, strict=True)):
        ax.text(i, m + h, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
    n = len(rows[0].result.episodes) if rows else 0
    ax.set_title(
        (title + "\n" if title else "")
        + f"mean over {n} episodes (same seeds); error bars: 95% t-interval of the mean",
        fontsize=9,
    )
    handles = [Patch(color="tab:blue", label="analytic policy")]
    if any(agent):
        handles.append(Patch(facecolor="tab:orange", hatch="//", label="learned agent"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_goodput(rows: Sequence[BenchmarkRow], path: Path, title: str = "") -> Path:
    """Write :func:`goodput_figure` to ``path``."""
    fig = goodput_figure(rows, title)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def training_figure(runs: Sequence[tuple[str, Path]]) -> Any:
    """Evaluation goodput vs env steps per run; the analytic policies' goodput on the same seeds as labelled levels.

    The band is the 95% t-interval of the mean over the evaluation episodes, cut at zero (goodput cannot be
    negative); the legend sits outside the axes and gives every level's value, so levels that nearly
    coincide (adaptive and oracle often do) stay readable.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.5))
    styles = ["--", ":", "-.", (0, (3, 1, 1, 1)), (0, (5, 2)), (0, (1, 1)), (0, (4, 1, 2, 1)), (0, (2, 2))]
    levels: dict[str, float] = {}
    for label, run_dir in runs:
        data = np.load(run_dir / "evaluations.npz")
        steps, goodput = data["timesteps"], data["goodput"]
        mean = goodput.mean(axis=1)
        n = goodput.shape[1]
        half = np.nan_to_num(np.array([mean_ci(g)[1] for g in goodput])) if n > 1 else np.zeros_like(mean)
        line = ax.plot(steps, mean, marker="o", ms=3, lw=2, label=f"{label} (mean of {n} episodes)")[0]
        if n > 1:
            ax.fill_between(
                steps,
                np.maximum(mean - half, 0.0),
                mean + half,
                alpha=0.2,
                color=line.get_color(),
                label=f"{label}: 95% t-interval",
            )
        for j, name in enumerate(data["baseline_names"]):
            levels.setdefault(str(name), float(data["baseline_goodput"][j].mean()))
    for j, (name, level) in enumerate(sorted(levels.items(), key=lambda kv: -kv[1])):
        ax.axhline(level, color=f"C{(j + 2) % 10}", ls=styles[j % len(styles)], lw=1.2, label=f"{name}: {level:.1f}")
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("training env steps (rounds)")
    ax.set_ylabel("evaluation goodput (tokens/s)")
    ax.set_title("training curve vs analytic policies (same evaluation seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot_training_curves(runs: Sequence[tuple[str, Path]], path: Path) -> Path:
    """Write :func:`training_figure` to ``path``."""
    fig = training_figure(runs)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def build_parser(prog: str = "python -m agents.benchmark") -> OneLineParser:
    p = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--env", default=None, help=f"env id (default: the first agent's, else {DEFAULT_ENV_ID})")
    p.add_argument(
        "--env-kwargs",
        nargs="+",
        default=None,
        metavar="K:V",
        action=store_dict_or_words(),
        help=f"gym.make kwargs, e.g. acceptance_process:markov fading:False (default: the first agent's); {EVAL_NOTE}",
    )
    p.add_argument("--episodes", type=int_at_least(1), default=20, help="episodes per policy (one per seed)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="first seed; episode i uses seed + i")
    p.add_argument(
        "--agents",
        nargs="+",
        default=[],
        metavar="[LABEL=]PATH",
        help=f"saved agents: run folders or .zip files ({TRUST_NOTE})",
    )
    p.add_argument("--policies", nargs="+", default=None, help="analytic policies (default: all valid for the env)")
    p.add_argument(
        "--training-log",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        help="extra run folders (with an evaluations.npz) whose training curves to plot",
    )
    p.add_argument("-o", "--output", default="results", help="output folder")
    p.add_argument("--jobs", type=int_at_least(1), default=1, help="worker processes")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("-P", "--progress", action="store_true", help="progress bar")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the table")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m agents.benchmark") -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 user error)."""
    args = build_parser(prog).parse_args(argv)
    try:
        rows, _out_dir, written = _main(args)
    except (ValueError, FileNotFoundError) as exc:  # UserError (BenchmarkError, RunFileError) and env settings
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(format_table(rows))
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _main(args: argparse.Namespace) -> tuple[list[BenchmarkRow], Path, list[Path]]:
    check_output_folder(args.output, "-o/--output")
    for run in args.training_log:
        if not (Path(run) / "evaluations.npz").is_file():
            what = "has no evaluations.npz (trained with --eval-freq -1?)" if Path(run).is_dir() else "is not a folder"
            raise BenchmarkError(f"--training-log {run!r} {what}")
    agents = [agent_label(a) for a in args.agents]
    env_id = args.env
    env_kwargs = args.env_kwargs
    if agents:
        info = resolve_agent(agents[0][1])
        env_id = env_id or info.env_id
        if env_kwargs is None:
            env_kwargs = info.env_kwargs
    env_id = env_id or DEFAULT_ENV_ID
    env_kwargs = env_kwargs or {}
    loaded = {label: describe_agent(path) for label, path in agents}
    probe = make_env(env_id, env_kwargs)
    for label, path in agents:  # a corrupt file or another env's agent fails now, before any evaluation
        load_agent_policy(path, probe, label)
    probe.close()
    if not args.quiet:
        for label, what in loaded.items():
            print(f"agent {label}: loading {what}", flush=True)
    start = time.perf_counter()
    rows = run_benchmark(env_id, env_kwargs, args.episodes, args.seed, agents, args.policies, args.jobs, args.progress)
    meta = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "episodes": args.episodes,
        "seeds": evaluation_seeds(args.seed, args.episodes),
        "confidence": 0.95,
        "agents": loaded,
        "wall_seconds": time.perf_counter() - start,
        "title": f"{env_id} {' '.join(f'{k}={v}' for k, v in env_kwargs.items())}".strip(),
    }
    logs: list[tuple[str, Path]] = []
    for label, path in agents:
        run_dir = Path(path) if Path(path).is_dir() else Path(path).parent
        logs.append((label, run_dir))
    logs += [(Path(p).name, Path(p)) for p in args.training_log]
    out_dir = Path(args.output)
    written = write_outputs(rows, out_dir, meta, logs, plots=not args.no_plots)
    return rows, out_dir, written


def console_main() -> None:
    """``multispin-benchmark``."""
    sys.exit(main(prog="multispin-benchmark"))


if __name__ == "__main__":
    sys.exit(main())
