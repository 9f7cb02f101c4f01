"""Paper findings, reproduced: figures 1-6 and the CSV behind each (model.md section 6).

One command writes every figure (PNG), the CSV of the numbers it plots, and a
summary of the heterogeneity sweep::

    python -m experiments.findings                                 # full grid into results/findings, ~1 min on 2 cores
    python -m experiments.findings -o docs/findings                # regenerate the committed figures (make findings-docs)
    python -m experiments.findings -o /tmp/findings --quick        # tiny grid, a few seconds (used by the tests)

Figures (``figN_*.png`` + ``figN_*.csv``):

1. homogeneous optimum (P-hom): each user's bandwidth share against its draft time t_k and its upload time c_k;
2. heterogeneous optimum (P-het): each user's draft length and share against its acceptance rate a_k;
3. expected goodput against the number of users K for het-opt, hom-opt, equal-tuned, equal-fixed, server-only;
4. expected goodput against the uplink band W and against the payload model;
5. gain of het-opt over hom-opt, equal-tuned and equal-fixed as heterogeneity grows, with
   ``fig5_summary.md`` / ``fig5_summary.csv`` naming the settings where it reaches the paper's "up to 88%";
6. Monte-Carlo check: goodput simulated in ``MultiSpin-Heterogeneous-v0`` (iid acceptance, no fading) against
   the expected goodput of the same static allocation, on the axes of figure 3.

Every point that shows a trend is averaged over several random user populations drawn with seeded
generators (``numpy.random.default_rng([seed, figure, setting, instance])``), so a run is reproducible and
independent of ``--jobs``. matplotlib is imported only when plotting (Agg backend).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.cli import OneLineParser, UserError, check_output_folder, int_at_least, program_name
from baselines.solvers import SOLVERS
from multispin_env.acceptance import ACCEPTANCE_PROCESSES, make_acceptance_process
from multispin_env.config import resolve_config
from multispin_env.model import RoundParams, equal_finish_time, expected_goodput
from multispin_env.scenarios import (
    CHANNEL_SPREADS,
    HETEROGENEITY_LEVELS,
    Scenario,
    get_scenario,
    heterogeneous_scenario,
)
from multispin_env.spaces import MultiSpinEnvAPI

__all__ = [
    "POLICIES",
    "BASELINES",
    "PAPER_GAIN",
    "FindingsConfig",
    "FULL",
    "QUICK",
    "policy_allocations",
    "policy_goodputs",
    "figure1_rows",
    "figure2_rows",
    "figure3_rows",
    "figure4_rows",
    "figure5_rows",
    "figure6_rows",
    "summarise_gains",
    "run",
    "main",
]

#: Policies compared in figures 3, 4 and 6, best first: every solver of :data:`baselines.solvers.SOLVERS`
#: (the registry lists baselines first, so reversed it is best first) and server-only decoding.
POLICIES: tuple[str, ...] = (*reversed(tuple(SOLVERS)), "server-only")

#: Baselines het-opt is compared with in figure 5 (hom-opt knows every user's channel and device; the equal-share
#: baselines are heterogeneity-unaware).
BASELINES: tuple[str, ...] = ("hom-opt", "equal-tuned", "equal-fixed")

#: The paper's headline gain of the heterogeneous optimum over heterogeneity-unaware baselines ("up to 88%").
PAPER_GAIN = 0.88

#: A gain below this is called small in the summary.
SMALL_GAIN = 0.05

_COLOURS = {
    "het-opt": "#1b6ca8",
    "hom-opt": "#e07b00",
    "equal-tuned": "#2a9d3f",
    "equal-fixed": "#9b59b6",
    "server-only": "#555555",
}
_DEVICE_COLOURS = {"high": "#1b6ca8", "mid": "#e07b00", "low": "#c0392b"}


@dataclass(frozen=True)
class FindingsConfig:
    """Grid sizes of one run. :data:`FULL` is the documented run, :data:`QUICK` the tiny one of the tests."""

    name: str
    #: random populations per point of figures 3 and 4
    populations: int
    #: populations (of K = ``fig12_users`` users) in the scatter of figures 1 and 2
    scatter_populations: int
    fig12_users: int
    #: K values of figure 3
    users_grid: tuple[int, ...]
    #: W values of figure 4, Hz
    bandwidth_grid_hz: tuple[float, ...]
    #: random populations per setting of figure 5
    gain_populations: int
    #: acceptance spreads of figure 5a
    acceptance_spreads: tuple[float, ...]
    #: K values of figure 5d and of the figure 5 search grid
    gain_users: tuple[int, ...]
    #: factorial search grid of figure 5's summary: acceptance spreads x device mixes x channel spreads x gain_users
    search_spreads: tuple[float, ...]
    search_mixes: tuple[str, ...]
    search_channels: tuple[str, ...]
    #: figure 6: K values, populations per K, episodes per population and simulated seconds per episode
    mc_users: tuple[int, ...]
    mc_populations: int
    mc_episodes: int
    mc_horizon_s: float
    seed: int = 0
    #: acceptance process whose nominal survival curve (``mean_survival``) the goodputs of figures 3-5 use;
    #: "iid" is the paper's a^i (docs/model.md eq. (4)), e.g. "mixture" gives E[r^i] of Beta rates (section 5.1)
    acceptance_process: str = "iid"


FULL = FindingsConfig(
    name="full",
    populations=24,
    scatter_populations=12,
    fig12_users=8,
    users_grid=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
    bandwidth_grid_hz=(0.5e6, 1e6, 2e6, 5e6, 10e6, 20e6, 50e6, 100e6),
    gain_populations=24,
    acceptance_spreads=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    gain_users=(2, 4, 8, 16),
    search_spreads=(0.0, 0.25, 0.5),
    search_mixes=("mid-only", "all", "high-low"),
    search_channels=("none", "base", "wide"),
    mc_users=(1, 2, 4, 8, 16, 32),
    mc_populations=3,
    mc_episodes=2,
    mc_horizon_s=300.0,
)

QUICK = FindingsConfig(
    name="quick",
    populations=2,
    scatter_populations=2,
    fig12_users=4,
    users_grid=(1, 2, 4),
    bandwidth_grid_hz=(1e6, 10e6),
    gain_populations=2,
    acceptance_spreads=(0.0, 0.4),
    gain_users=(2, 4),
    search_spreads=(0.0, 0.5),
    search_mixes=("mid-only", "high-low"),
    search_channels=("none", "wide"),
    mc_users=(1, 3),
    mc_populations=1,
    mc_episodes=1,
    mc_horizon_s=5.0,
)


# --- Policies ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyResult:
    """One policy's static allocation on one system and its expected goodput (tokens/s, eq. 5)."""

    draft_lengths: np.ndarray
    bandwidth: np.ndarray
    goodput: float


def policy_allocations(params: RoundParams, policies: Sequence[str] = POLICIES) -> dict[str, PolicyResult]:
    """Allocation and expected goodput of each named policy on ``params``.

    ``server-only`` drafts nothing (all lengths 0): the server decodes one token per user per round.
    """
    k = params.num_users
    out: dict[str, PolicyResult] = {}
    for name in policies:
        if name == "server-only":
            zeros = np.zeros(k, dtype=np.int64)
            out[name] = PolicyResult(zeros, np.zeros(k), float(expected_goodput(params, zeros, np.zeros(k))))
            continue
        if name not in SOLVERS:
            raise ValueError(f"unknown policy {name!r}; known: {POLICIES}")
        alloc = SOLVERS[name].solve(params)
        out[name] = PolicyResult(
            np.asarray(alloc.draft_lengths, dtype=np.int64).copy(),
            np.asarray(alloc.bandwidth, dtype=np.float64).copy(),
            float(alloc.goodput),
        )
    return out


def policy_goodputs(params: RoundParams, policies: Sequence[str] = POLICIES) -> dict[str, float]:
    """Expected goodput (tokens/s) of each named policy on ``params``."""
    return {name: res.goodput for name, res in policy_allocations(params, policies).items()}


def _rng(cfg: FindingsConfig, *keys: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *keys])


def _nominal_survival(scenario: Scenario, process: str, rates: np.ndarray) -> np.ndarray:
    """The long-run curve P(A_k >= i) (K, L_max) of acceptance process ``process`` for users of mean rates
    ``rates`` on ``scenario`` (the process's own ``mean_survival``, with its default parameters)."""
    config = resolve_config(scenario=scenario, acceptance_process=process)
    return make_acceptance_process(config, 1).mean_survival(rates)


def _instance(task: tuple[Scenario, tuple[int, ...], Sequence[str], str]) -> tuple[dict[str, float], dict[str, Any]]:
    """Goodputs of ``policies`` on one population drawn from ``scenario`` under the acceptance process ``process``,
    plus a few features of it."""
    scenario, seed_key, policies, process = task
    population = scenario.sample_population(np.random.default_rng(list(seed_key)))
    params = scenario.round_params(population)
    if process != "iid":
        # The curves' own position-1 rates replace the i.i.d. ones (acceptance=None: RoundParams' constructor takes it,
        # dataclasses.replace is typed from the fields, which hold the checked arrays).
        params = replace(
            params,
            acceptance=None,  # type: ignore[arg-type]
            survival=_nominal_survival(scenario, process, params.acceptance),
        )
    allocations = policy_allocations(params, policies)
    features: dict[str, Any] = {
        "draft_time_ratio": float(params.draft_time.max() / params.draft_time.min()),
        "acceptance_range": float(np.ptp(params.acceptance)),
        "snr_range_db": float(np.ptp(population.snr_db)),
    }
    if "het-opt" in allocations:
        lengths = allocations["het-opt"].draft_lengths
        longest, shortest = int(np.argmax(lengths)), int(np.argmin(lengths))
        features.update(
            het_longest_draft=int(lengths[longest]),
            het_longest_acceptance=float(params.acceptance[longest]),
            het_longest_draft_time_ms=1e3 * float(params.draft_time[longest]),
            het_shortest_draft=int(lengths[shortest]),
            het_shortest_draft_time_ms=1e3 * float(params.draft_time[shortest]),
        )
    return {name: res.goodput for name, res in allocations.items()}, features


def _map(func: Callable[[Any], Any], items: Sequence[Any], jobs: int) -> list[Any]:
    if jobs <= 1 or len(items) < 8:
        return [func(item) for item in items]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(func, items, chunksize=max(1, len(items) // (4 * jobs))))


def _goodput_rows(
    cfg: FindingsConfig,
    figure: int,
    settings: Sequence[tuple[dict[str, Any], Scenario]],
    populations: int,
    jobs: int,
    policies: Sequence[str] = POLICIES,
    with_features: bool = False,
) -> list[dict[str, Any]]:
    """One row per (setting, population): the setting's labels plus every policy's goodput (and population features).

    Common random numbers: population i of every setting is drawn from the same seed
    ``[cfg.seed, figure, i]``, so a sweep that changes one knob (W, payload, a spread...) changes only that knob.
    """
    tasks = [
        (scenario, (cfg.seed, figure, instance), tuple(policies), cfg.acceptance_process)
        for _, scenario in settings
        for instance in range(populations)
    ]
    results = _map(_instance, tasks, jobs)
    rows = []
    for index, (goodputs, features) in enumerate(results):
        labels = settings[index // populations][0]
        rows.append(
            {
                **labels,
                "instance": index % populations,
                **{f"goodput_{p}": goodputs[p] for p in policies},
                **(features if with_features else {}),
            }
        )
    return rows


# --- Figure data ------------------------------------------------------------------------------------------------

#: The three populations of figure 1: only devices differ, only channels differ, both (the base scenario).
FIG1_CASES: Mapping[str, tuple[str, str]] = {
    "devices differ": ("all", "none"),
    "channels differ": ("mid-only", "base"),
    "both differ (base)": ("all", "base"),
}


def figure1_rows(cfg: FindingsConfig) -> list[dict[str, Any]]:
    """Homogeneous optimum per user: draft time, upload time, SNR, optimal common length and share."""
    rows = []
    for case_index, (case, (mix, channel)) in enumerate(FIG1_CASES.items()):
        scenario = heterogeneous_scenario(0.4, mix, channel, num_users=cfg.fig12_users)
        for instance in range(cfg.scatter_populations):
            population = scenario.sample_population(_rng(cfg, 1, case_index, instance))
            params = scenario.round_params(population)
            res = policy_allocations(params, ("hom-opt",))["hom-opt"]
            # The optimal shares do not depend on L (model.md section 3); they are shown even if L* = 0.
            shares = _homogeneous_shares(params)
            for k in range(params.num_users):
                rows.append(
                    {
                        "case": case,
                        "instance": instance,
                        "user": k,
                        "device_class": population.device_class[k],
                        "draft_time_ms": 1e3 * params.draft_time[k],
                        "upload_time_ms": 1e3 * params.upload_time[k],
                        "snr_db": float(population.snr_db[k]),
                        "acceptance": float(params.acceptance[k]),
                        "common_length": int(res.draft_lengths[k]),
                        "share": float(shares[k]),
                        "share_times_K": float(shares[k] * params.num_users),
                        "solver_share": float(res.bandwidth[k]),
                    }
                )
    return rows


def _homogeneous_shares(params: RoundParams) -> np.ndarray:
    """b_k = c_k / (s* - t_k), the P-hom optimal shares for any common L >= 1 (model.md section 3)."""
    s_star = float(equal_finish_time(params.upload_time, params.draft_time))
    shares = params.upload_time / (s_star - params.draft_time)
    return shares / shares.sum()


#: The populations of figure 2: only acceptance differs, upload-bound (the ``acceptance-only`` preset) and
#: drafting-bound (mid-range devices, W = 10 MHz); everything differs (base scenario).
FIG2_CASES: Mapping[str, Callable[[], Scenario]] = {
    "only a differs, upload-bound": lambda: get_scenario("acceptance-only"),
    "only a differs, drafting-bound": lambda: heterogeneous_scenario(0.6, "mid-only", "none", acceptance_centre=0.6),
    "base scenario": lambda: get_scenario("base"),
}


def figure2_rows(cfg: FindingsConfig) -> list[dict[str, Any]]:
    """Heterogeneous optimum per user: acceptance rate, draft length and share."""
    rows = []
    for case_index, (case, make) in enumerate(FIG2_CASES.items()):
        scenario = make().replace(num_users=cfg.fig12_users)
        for instance in range(cfg.scatter_populations):
            population = scenario.sample_population(_rng(cfg, 2, case_index, instance))
            params = scenario.round_params(population)
            res = policy_allocations(params, ("het-opt",))["het-opt"]
            for k in range(params.num_users):
                rows.append(
                    {
                        "case": case,
                        "instance": instance,
                        "user": k,
                        "acceptance": float(params.acceptance[k]),
                        "device_class": population.device_class[k],
                        "draft_time_ms": 1e3 * params.draft_time[k],
                        "upload_time_ms": 1e3 * params.upload_time[k],
                        "draft_length": int(res.draft_lengths[k]),
                        "share": float(res.bandwidth[k]),
                        "share_times_K": float(res.bandwidth[k] * params.num_users),
                    }
                )
    return rows


def figure3_rows(cfg: FindingsConfig, jobs: int = 1, scenario: str | Scenario = "base") -> list[dict[str, Any]]:
    """Goodput of every policy against K (``populations`` random populations per K)."""
    settings = [({"num_users": k}, get_scenario(scenario, num_users=k)) for k in cfg.users_grid]
    return _goodput_rows(cfg, 3, settings, cfg.populations, jobs)


def figure4_rows(cfg: FindingsConfig, jobs: int = 1, scenario: str | Scenario = "base") -> list[dict[str, Any]]:
    """Goodput of every policy against W and against the payload model (same populations across each sweep)."""
    base = get_scenario(scenario)
    settings: list[tuple[dict[str, Any], Scenario]] = []
    for w in cfg.bandwidth_grid_hz:
        settings.append(
            (
                {"sweep": "bandwidth", "bandwidth_mhz": w / 1e6, "payload": base.payload},
                base.replace(bandwidth_hz=float(w)),
            )
        )
    for payload in ("token-only", "top-k", "full"):
        settings.append(
            (
                {"sweep": "payload", "bandwidth_mhz": base.bandwidth_hz / 1e6, "payload": payload},
                base.replace(payload=payload),
            )
        )
    return _goodput_rows(cfg, 4, settings, cfg.populations, jobs)


#: Named scenario presets whose gains figure 5's summary lists (at their own K).
PRESETS_IN_SUMMARY: tuple[str, ...] = (
    "homogeneous-users",
    "weak-heterogeneity",
    "base",
    "strong-heterogeneity",
    "acceptance-only",
    "llama2",
    "qwen",
    "vllm-drafter",
)


def _gain_settings(cfg: FindingsConfig) -> list[tuple[dict[str, Any], Scenario]]:
    """Figure 5's settings: one-knob sweeps from the base scenario, the named levels x K, and the search grid."""
    settings: list[tuple[dict[str, Any], Scenario]] = []

    def add(panel: str, spread: float, mix: str, channel: str, users: int, level: str = "") -> None:
        labels = {
            "panel": panel,
            "level": level,
            "acceptance_spread": spread,
            "device_mix": mix,
            "channel_spread": channel,
            "num_users": users,
        }
        settings.append((labels, heterogeneous_scenario(spread, mix, channel, num_users=users)))

    k0 = get_scenario("base").num_users
    for spread in cfg.acceptance_spreads:
        add("a: acceptance spread", spread, "all", "base", k0)
    # Only a_k differs, in the upload-bound regime of the ``acceptance-only`` preset (high-end devices, W = 2 MHz).
    for spread in cfg.acceptance_spreads:
        settings.append(
            (
                {
                    "panel": "a: acceptance spread",
                    "level": "only a differs",
                    "acceptance_spread": spread,
                    "device_mix": "high-only",
                    "channel_spread": "none",
                    "num_users": k0,
                },
                heterogeneous_scenario(spread, "high-only", "none", num_users=k0, bandwidth_hz=2e6),
            )
        )
    for mix in ("mid-only", "all", "high-low"):
        add("b: device mix", 0.4, mix, "base", k0)
    for channel in CHANNEL_SPREADS:
        add("c: channel spread", 0.4, "all", channel, k0)
    for level, (spread, mix, channel) in HETEROGENEITY_LEVELS.items():
        for users in cfg.gain_users:
            add("d: level x K", spread, mix, channel, users, level)
    for preset in PRESETS_IN_SUMMARY:
        scenario = get_scenario(preset)
        settings.append(
            (
                {
                    "panel": "presets",
                    "level": preset,
                    "acceptance_spread": "",
                    "device_mix": "+".join(scenario.device_mix),
                    "channel_spread": "",
                    "num_users": scenario.num_users,
                },
                scenario,
            )
        )
    for spread in cfg.search_spreads:
        for mix in cfg.search_mixes:
            for channel in cfg.search_channels:
                for users in cfg.gain_users:
                    add("search", spread, mix, channel, users)
    return settings


def figure5_rows(cfg: FindingsConfig, jobs: int = 1) -> list[dict[str, Any]]:
    """Goodputs and gains of het-opt over each baseline, per setting and random population."""
    policies = ("het-opt", *BASELINES)
    rows = _goodput_rows(cfg, 5, _gain_settings(cfg), cfg.gain_populations, jobs, policies, with_features=True)
    for row in rows:
        for baseline in BASELINES:
            row[f"gain_over_{baseline}"] = row["goodput_het-opt"] / row[f"goodput_{baseline}"] - 1.0
    return rows


_SETTING_KEYS = ("panel", "level", "acceptance_spread", "device_mix", "channel_spread", "num_users")


def summarise_gains(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean, median, 90th percentile and max gain over the populations of each setting, per baseline."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in _SETTING_KEYS), []).append(row)
    out = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(_SETTING_KEYS, key, strict=True))
        entry["populations"] = len(members)
        for baseline in BASELINES:
            gains = np.array([m[f"gain_over_{baseline}"] for m in members], dtype=np.float64)
            entry[f"mean_gain_over_{baseline}"] = float(gains.mean())
            entry[f"median_gain_over_{baseline}"] = float(np.median(gains))
            entry[f"p90_gain_over_{baseline}"] = float(np.quantile(gains, 0.9))
            entry[f"max_gain_over_{baseline}"] = float(gains.max())
        out.append(entry)
    return out


def _describe(entry: Mapping[str, Any]) -> str:
    lo, hi = 0.7 - entry["acceptance_spread"] / 2, 0.7 + entry["acceptance_spread"] / 2
    acc = f"a={lo:.2f}" if entry["acceptance_spread"] == 0 else f"a~U({lo:.2f},{hi:.2f})"
    dist, shadow = CHANNEL_SPREADS[entry["channel_spread"]]
    chan = f"d={dist[0]:g}-{dist[1]:g} m, shadowing {shadow:g} dB"
    return f"K={entry['num_users']}, {acc}, devices {entry['device_mix']}, {chan}"


def gain_anatomy(rows: Sequence[Mapping[str, Any]], baseline: str, threshold: float = PAPER_GAIN) -> dict[str, Any]:
    """What the populations (of the search grid) where het-opt gains >= ``threshold`` over ``baseline`` look like."""
    search = [r for r in rows if r["panel"] == "search"] or list(rows)
    big = [r for r in search if r[f"gain_over_{baseline}"] >= threshold]
    out: dict[str, Any] = {"baseline": baseline, "populations": len(search), "reaching": len(big)}
    if big and "het_longest_acceptance" in big[0]:
        out.update(
            fraction_by_users={
                k: float(np.mean([r["num_users"] == k for r in big])) for k in sorted({r["num_users"] for r in big})
            },
            share_with_fast_and_slow=float(np.mean([r["draft_time_ratio"] >= 6.0 for r in big])),
            median_longest_draft=float(np.median([r["het_longest_draft"] for r in big])),
            median_longest_acceptance=float(np.median([r["het_longest_acceptance"] for r in big])),
            share_longest_is_fast=float(np.mean([r["het_longest_draft_time_ms"] <= 4.0 for r in big])),
            share_shortest_is_slow=float(np.mean([r["het_shortest_draft_time_ms"] >= 25.0 for r in big])),
            median_snr_range_db=float(np.median([r["snr_range_db"] for r in big])),
        )
    return out


def _anatomy_text(anatomy: Mapping[str, Any]) -> str:
    head = (
        f"- populations with gain >= {PAPER_GAIN:.0%}: {anatomy['reaching']} of {anatomy['populations']} "
        f"({anatomy['reaching'] / max(1, anatomy['populations']):.0%})"
    )
    if not anatomy["reaching"] or "median_longest_acceptance" not in anatomy:
        return head + "."
    by_k = ", ".join(f"K={k}: {v:.0%}" for k, v in anatomy["fraction_by_users"].items())
    return (
        head + f"; {by_k}. In {anatomy['share_with_fast_and_slow']:.0%} of them a 4 ms and a 25 ms device share the "
        f"round; het-opt's longest draft (median {anatomy['median_longest_draft']:g} tokens) goes to a user with "
        f"median a = {anatomy['median_longest_acceptance']:.2f}, on a fast device in "
        f"{anatomy['share_longest_is_fast']:.0%} of cases, and the shortest draft to a slow device in "
        f"{anatomy['share_shortest_is_slow']:.0%}; median SNR range {anatomy['median_snr_range_db']:.0f} dB."
    )


def gain_summary_markdown(
    summary: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]] = (), top: int = 5
) -> str:
    """The human-readable findings of figure 5: where het-opt's gain reaches the paper's 88% and where it is small.

    ``summary`` is :func:`summarise_gains` of ``rows``; with ``rows`` the text also describes the individual
    populations whose gain reaches 88% (:func:`gain_anatomy`).
    """
    search = [s for s in summary if s["panel"] == "search"] or list(summary)
    lines = [
        "# Figure 5: gain of het-opt over the baselines as heterogeneity grows",
        "",
        f"Gain = G(het-opt) / G(baseline) - 1 per random population; {search[0]['populations']} populations per "
        f"setting; search grid of {len(search)} settings (acceptance spread x device mix x channel spread x K).",
        "Device mixes: mid-only = every device 10 ms/token; all = 4/10/25 ms; high-low = 4 and 25 ms only. "
        "Channel spreads: none = all users at 175 m without shadowing; base = 50-300 m, 8 dB; wide = 20-500 m, 12 dB.",
        "",
    ]
    presets = [s for s in summary if s["panel"] == "presets"]
    if presets:
        lines += [
            "## Named presets",
            "",
            "| preset | K | " + " | ".join(f"mean (max) over {b}" for b in BASELINES) + " |",
            "|---|---|" + "---|" * len(BASELINES),
        ]
        for s in presets:
            cells = " | ".join(f"{s[f'mean_gain_over_{b}']:.0%} ({s[f'max_gain_over_{b}']:.0%})" for b in BASELINES)
            lines.append(f"| {s['level']} | {s['num_users']} | {cells} |")
        lines.append("")
    for baseline in BASELINES:
        mean_key, max_key, med_key = (f"{s}_gain_over_{baseline}" for s in ("mean", "max", "median"))
        ranked = sorted(search, key=lambda s: s[mean_key], reverse=True)
        reach_mean = [s for s in search if s[mean_key] >= PAPER_GAIN]
        reach_max = [s for s in search if s[max_key] >= PAPER_GAIN]
        small = [s for s in search if s[mean_key] < SMALL_GAIN]
        lines += [
            f"## Over {baseline}",
            "",
            f"- mean gain over all settings {np.mean([s[mean_key] for s in search]):.0%}; largest mean gain "
            f"{ranked[0][mean_key]:.0%} ({_describe(ranked[0])}); largest single-population gain "
            f"{max(s[max_key] for s in search):.0%}.",
            f"- mean gain >= {PAPER_GAIN:.0%} in {len(reach_mean)} of {len(search)} settings; some population "
            f">= {PAPER_GAIN:.0%} in {len(reach_max)} settings.",
            f"- mean gain < {SMALL_GAIN:.0%} in {len(small)} settings"
            + (f", e.g. {_describe(small[0])}." if small else "."),
        ]
        if rows:
            lines.append(_anatomy_text(gain_anatomy(rows, baseline)))
        if baseline == "equal-fixed":
            lines.append(
                "- equal-fixed drafts 4 tokens on 1/K of the band whatever the channel: one user in deep shadowing "
                "(SNR far below 0 dB) makes every round last seconds, hence ratios in the thousands of per cent; "
                "compare with equal-tuned and hom-opt."
            )
        lines += [
            "",
            "| setting | mean | median | max |",
            "|---|---|---|---|",
        ]
        for s in ranked[:top]:
            lines.append(f"| {_describe(s)} | {s[mean_key]:.0%} | {s[med_key]:.0%} | {s[max_key]:.0%} |")
        for s in ranked[-min(top, max(0, len(ranked) - top)) :] if len(ranked) > top else []:
            lines.append(f"| {_describe(s)} | {s[mean_key]:.0%} | {s[med_key]:.0%} | {s[max_key]:.0%} |")
        lines.append("")
    return "\n".join(lines)


def figure6_rows(cfg: FindingsConfig, scenario: str | Scenario = "base") -> list[dict[str, Any]]:
    """Simulated (environment, iid acceptance, no fading) vs expected goodput of each static policy, against K."""
    import gymnasium as gym

    import multispin_env  # noqa: F401  (registers the environments)
    from baselines.information import static_params

    rows = []
    for k in cfg.mc_users:
        for pop in range(cfg.mc_populations):
            population_seed = int(_rng(cfg, 6, k, pop).integers(2**31))
            env = gym.make(
                "MultiSpin-Heterogeneous-v0",
                scenario=scenario,
                num_users=k,
                acceptance_process="iid",
                fading=False,
                horizon=cfg.mc_horizon_s,
                population_seed=population_seed,
            )
            try:
                env.reset(seed=population_seed)
                unwrapped = env.unwrapped
                assert isinstance(unwrapped, MultiSpinEnvAPI)  # gym.make of a MultiSpin id
                params = static_params(env)
                allocations = policy_allocations(params)
                for policy, res in allocations.items():
                    shares = res.bandwidth if res.draft_lengths.any() else np.full(k, 1.0 / k)
                    action = unwrapped.encode_action(res.draft_lengths, shares)
                    for episode in range(cfg.mc_episodes):
                        simulated, rounds = _simulate(env, action, seed=population_seed + 1 + episode)
                        rows.append(
                            {
                                "num_users": k,
                                "population": pop,
                                "episode": episode,
                                "policy": policy,
                                "rounds": rounds,
                                "simulated_goodput": simulated,
                                "expected_goodput": res.goodput,
                                "relative_error": simulated / res.goodput - 1.0,
                            }
                        )
            finally:
                env.close()
    return rows


def _simulate(env: Any, action: Any, seed: int) -> tuple[float, int]:
    """Play one episode with a fixed action; goodput = total tokens / final clock."""
    env.reset(seed=seed)
    tokens, rounds, clock = 0.0, 0, 0.0
    while True:
        _, _, terminated, truncated, info = env.step(action)
        tokens += float(np.sum(info["tokens"]))
        clock = float(info["clock"])
        rounds += 1
        if terminated or truncated:
            break
    return tokens / clock, rounds


# --- Files --------------------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], digits: int = 10) -> Path:
    """Write ``rows`` (dicts) as CSV, the union of their keys as columns; floats with up to ``digits``
    significant digits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.{digits}g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write to ``path`` and close a figure of :func:`_pyplot`; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _pyplot(dpi: int = 130):
    """matplotlib's pyplot on the Agg backend with this package's figure style (``dpi`` of saved figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": min(110, dpi),
            "savefig.dpi": dpi,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 9,
            "axes.titlesize": 10,
            "legend.fontsize": 8,
        }
    )
    return plt


def _fmt(pattern: str) -> Any:
    from matplotlib.ticker import FormatStrFormatter

    return FormatStrFormatter(pattern)


def _plain_log_ticks(axes: Iterable[Any]) -> None:
    """Tick labels like 0.1, 1, 10 instead of 10^-1 on log axes."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    for ax in np.ravel(list(axes)):
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                if axis is ax.yaxis:
                    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FormatStrFormatter("%g"))
                axis.set_minor_formatter(NullFormatter())


def _group_mean(rows: Sequence[Mapping[str, Any]], key: str, value: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = sorted({r[key] for r in rows})
    means, stderr = [], []
    for x in xs:
        vals = np.array([r[value] for r in rows if r[key] == x], dtype=np.float64)
        means.append(vals.mean())
        stderr.append(vals.std(ddof=1) / math.sqrt(vals.size) if vals.size > 1 else 0.0)
    return np.array(xs, dtype=np.float64), np.array(means), np.array(stderr)


def plot_figure1(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    jitter = np.random.default_rng(0)
    ax = axes[0]
    sub = [r for r in rows if r["case"] == "devices differ"]
    for cls in ("high", "mid", "low"):
        pts = [r for r in sub if r["device_class"] == cls]
        if pts:
            x = np.array([r["draft_time_ms"] for r in pts]) * np.exp(jitter.normal(0, 0.03, len(pts)))
            ax.scatter(x, [r["share_times_K"] for r in pts], s=14, alpha=0.7, color=_DEVICE_COLOURS[cls], label=cls)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([4, 10, 25])
    ax.set_xlabel("draft time t_k (ms/token)")
    ax.set_ylabel("bandwidth share b_k x K (1 = equal share)")
    ax.set_title("(a) only devices differ")
    ax.legend(title="device")
    for ax, case, title in (
        (axes[1], "channels differ", "(b) only channels differ"),
        (axes[2], "both differ (base)", "(c) base scenario"),
    ):
        sub = [r for r in rows if r["case"] == case]
        for cls in ("high", "mid", "low"):
            pts = [r for r in sub if r["device_class"] == cls]
            if pts:
                ax.scatter(
                    [r["upload_time_ms"] for r in pts],
                    [r["share_times_K"] for r in pts],
                    s=14,
                    alpha=0.7,
                    color=_DEVICE_COLOURS[cls],
                    label=f"{cls} ({pts[0]['draft_time_ms']:g} ms)",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("upload time c_k with the whole band (ms/token)")
        ax.set_title(title)
        ax.legend(title="device")
    axes[1].set_ylabel("b_k x K")
    _plain_log_ticks(axes)
    fig.suptitle("Fig. 1  Homogeneous optimum: slow devices and weak channels get more bandwidth", fontsize=11)
    return save_figure(fig, path)


def plot_figure2(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    jitter = np.random.default_rng(0)
    styles = {
        "only a differs, upload-bound": dict(color="#1b6ca8", marker="o", s=20, alpha=0.75),
        "only a differs, drafting-bound": dict(color="#e07b00", marker="s", s=16, alpha=0.6),
        "base scenario": dict(facecolors="none", edgecolors="#999999", marker="o", s=16, alpha=0.8),
    }
    labels = {
        "only a differs, upload-bound": "only a_k differs; high-end devices, W = 2 MHz",
        "only a differs, drafting-bound": "only a_k differs; mid-range devices, W = 10 MHz",
        "base scenario": "base scenario (t_k, c_k differ too)",
    }
    for case, style in styles.items():
        pts = [r for r in rows if r["case"] == case]
        if not pts:
            continue
        a = np.array([r["acceptance"] for r in pts])
        axes[0].scatter(
            a,
            np.array([r["draft_length"] for r in pts]) + jitter.uniform(-0.12, 0.12, a.size),
            label=labels[case],
            **style,
        )
        axes[1].scatter(a, [r["share_times_K"] for r in pts], label=labels[case], **style)
    axes[0].set_ylabel("optimal draft length L_k (tokens)")
    axes[1].set_ylabel("bandwidth share b_k x K")
    for ax, title in zip(axes, ("(a) draft length", "(b) bandwidth share"), strict=True):
        ax.set_xlabel("acceptance rate a_k")
        ax.set_title(title)
        ax.legend()
    fig.suptitle("Fig. 2  Heterogeneous optimum: better drafts get longer drafts and more bandwidth", fontsize=11)
    return save_figure(fig, path)


def _plot_policies_vs(ax: Any, rows: Sequence[Mapping[str, Any]], key: str, policies: Sequence[str] = POLICIES) -> None:
    for policy in policies:
        x, mean, err = _group_mean(rows, key, f"goodput_{policy}")
        ax.plot(x, mean, marker="o", ms=3.5, color=_COLOURS[policy], label=policy)
        ax.fill_between(x, mean - err, mean + err, color=_COLOURS[policy], alpha=0.15, lw=0)


def plot_figure3(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    _plot_policies_vs(axes[0], rows, "num_users")
    axes[0].set_xlabel("number of users K")
    axes[0].set_ylabel("expected goodput (tokens/s)")
    axes[0].set_title("(a) sum goodput, mean +- s.e. over populations")
    axes[0].legend()
    for policy in POLICIES[1:]:
        ratio = [dict(num_users=r["num_users"], v=r["goodput_het-opt"] / r[f"goodput_{policy}"]) for r in rows]
        x, mean, _ = _group_mean(ratio, "num_users", "v")
        axes[1].plot(x, 100 * (mean - 1), marker="o", ms=3.5, color=_COLOURS[policy], label=f"over {policy}")
    axes[1].set_xlabel("number of users K")
    axes[1].set_ylabel("mean gain of het-opt (%)")
    axes[1].set_title("(b) gain of het-opt")
    axes[1].legend()
    fig.suptitle("Fig. 3  Goodput against the number of users (base scenario)", fontsize=11)
    return save_figure(fig, path)


def plot_figure4(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    bw = [r for r in rows if r["sweep"] == "bandwidth"]
    _plot_policies_vs(axes[0], bw, "bandwidth_mhz")
    axes[0].set_xscale("log")
    axes[0].set_xticks([0.5, 1, 2, 5, 10, 20, 50, 100])
    _plain_log_ticks([axes[0]])
    axes[0].xaxis.set_major_formatter(_fmt("%g"))
    axes[0].set_xlabel("uplink band W (MHz)")
    axes[0].set_ylabel("expected goodput (tokens/s)")
    axes[0].set_title(f"(a) against W (payload {bw[0]['payload'] if bw else ''})")
    axes[0].legend()
    pay = [r for r in rows if r["sweep"] == "payload"]
    models = ["token-only", "top-k", "full"]
    width = 0.8 / len(POLICIES)
    for i, policy in enumerate(POLICIES):
        means = [np.mean([r[f"goodput_{policy}"] for r in pay if r["payload"] == m] or [np.nan]) for m in models]
        axes[1].bar(np.arange(len(models)) + (i - 2) * width, means, width, color=_COLOURS[policy], label=policy)
    axes[1].set_xticks(np.arange(len(models)))
    axes[1].set_xticklabels(["token-only\n(15 bit)", "top-k, k=1024\n(~32 kbit)", "full distribution\n(~512 kbit)"])
    axes[1].set_ylabel("expected goodput (tokens/s)")
    axes[1].legend(fontsize=7)
    axes[1].set_title(f"(b) against the payload model (W = {pay[0]['bandwidth_mhz']:g} MHz)" if pay else "(b)")
    fig.suptitle("Fig. 4  Goodput against uplink bandwidth and payload (base scenario, K = 6)", fontsize=11)
    return save_figure(fig, path)


def plot_figure5(summary: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    shown = ("hom-opt", "equal-tuned")

    def panel(ax: Any, name: str, key: str, order: Sequence[Any] | None = None, level: str = "") -> None:
        entries = [s for s in summary if s["panel"] == name and s["level"] == level]
        xs = order or sorted({s[key] for s in entries})
        pos = np.arange(len(xs)) if order else np.array(xs, dtype=np.float64)
        for baseline in shown:
            mean = [100 * next(s for s in entries if s[key] == x)[f"mean_gain_over_{baseline}"] for x in xs]
            mx = [100 * next(s for s in entries if s[key] == x)[f"max_gain_over_{baseline}"] for x in xs]
            ax.plot(pos, mean, marker="o", color=_COLOURS[baseline], label=f"mean, over {baseline}")
            ax.plot(pos, mx, marker="^", ls=":", color=_COLOURS[baseline], label=f"max, over {baseline}")
        if order:
            ax.set_xticks(pos)
            ax.set_xticklabels([str(x) for x in xs])
        ax.axhline(100 * PAPER_GAIN, color="k", ls="--", lw=1)
        ax.text(pos[-1], 100 * PAPER_GAIN, "paper: up to 88% ", va="bottom", ha="right", fontsize=8)
        ax.set_ylabel("gain of het-opt (%)")
        ax.set_ylim(-3, max(140.0, ax.get_ylim()[1] * 1.3))

    panel(axes[0, 0], "a: acceptance spread", "acceptance_spread")
    only_a = sorted(
        (s for s in summary if s["panel"] == "a: acceptance spread" and s["level"] == "only a differs"),
        key=lambda s: s["acceptance_spread"],
    )
    for baseline in shown:
        axes[0, 0].plot(
            [s["acceptance_spread"] for s in only_a],
            [100 * s[f"mean_gain_over_{baseline}"] for s in only_a],
            marker="s",
            ms=4,
            ls="-.",
            lw=1,
            color=_COLOURS[baseline],
            alpha=0.7,
            label=f"mean, over {baseline}; only a_k differs*",
        )
    axes[0, 0].set_xlabel("acceptance spread s (a_k ~ U(0.7 - s/2, 0.7 + s/2))")
    axes[0, 0].set_title(
        "(a) spread of a_k (devices: all, channels: base;\n*: identical high-end devices and channels, W = 2 MHz)"
    )
    axes[0, 0].legend(ncol=2, fontsize=6.5, loc="upper left")
    panel(axes[0, 1], "b: device mix", "device_mix", ["mid-only", "all", "high-low"])
    axes[0, 1].legend(ncol=2, fontsize=7, loc="upper left")
    axes[0, 1].set_xlabel("device mix (t_k: mid 10 ms; all 4/10/25 ms; high-low 4/25 ms)")
    axes[0, 1].set_title("(b) spread of t_k (a spread 0.4, channels: base)")
    panel(axes[1, 0], "c: channel spread", "channel_spread", list(CHANNEL_SPREADS))
    axes[1, 0].set_xlabel(
        "channel spread (none: 175 m, 0 dB; narrow: 100-250 m, 4 dB;\nbase: 50-300 m, 8 dB; wide: 20-500 m, 12 dB)"
    )
    axes[1, 0].set_title("(c) spread of SNR (a spread 0.4, devices: all)")
    ax = axes[1, 1]
    entries = [s for s in summary if s["panel"] == "d: level x K"]
    levels = list(HETEROGENEITY_LEVELS)
    users = sorted({s["num_users"] for s in entries})
    width = 0.8 / max(1, 2 * len(users))
    for j, k in enumerate(users):
        for b, baseline in enumerate(shown):
            vals = [
                100 * next(s for s in entries if s["level"] == lv and s["num_users"] == k)[f"mean_gain_over_{baseline}"]
                for lv in levels
            ]
            offset = (2 * j + b - (2 * len(users) - 1) / 2) * width
            ax.bar(
                np.arange(len(levels)) + offset,
                vals,
                width,
                color=_COLOURS[baseline],
                alpha=0.45 + 0.55 * (j + 1) / len(users),
                label=f"K={k}, over {baseline}",
            )
    ax.axhline(100 * PAPER_GAIN, color="k", ls="--", lw=1)
    ax.text(len(levels) - 0.6, 100 * PAPER_GAIN, "paper: up to 88% ", va="bottom", ha="right", fontsize=8)
    ax.set_ylim(0, max(150.0, ax.get_ylim()[1] * 1.3))
    ax.set_xticks(np.arange(len(levels)))
    ax.set_xticklabels(levels)
    ax.set_xlabel("heterogeneity level (all three knobs together)")
    ax.set_ylabel("mean gain of het-opt (%)")
    ax.set_title("(d) named levels and K (equal-fixed: see CSV, off scale)")
    ax.legend(ncol=2, fontsize=6.5, loc="upper left")
    fig.suptitle("Fig. 5  Gain of the heterogeneous optimum as users become more different", fontsize=11)
    return save_figure(fig, path)


def plot_figure6(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for policy in POLICIES:
        pts = [r for r in rows if r["policy"] == policy]
        if not pts:
            continue
        x, expected, _ = _group_mean(pts, "num_users", "expected_goodput")
        _, simulated, err = _group_mean(pts, "num_users", "simulated_goodput")
        axes[0].plot(x, expected, color=_COLOURS[policy], label=f"{policy} expected")
        axes[0].errorbar(x, simulated, yerr=err, fmt="o", ms=4, mfc="none", color=_COLOURS[policy])
        _, rel, rel_err = _group_mean(pts, "num_users", "relative_error")
        axes[1].errorbar(x, 100 * rel, yerr=100 * rel_err, fmt="o-", ms=3.5, color=_COLOURS[policy], label=policy)
    axes[0].set_xlabel("number of users K")
    axes[0].set_ylabel("goodput (tokens/s)")
    axes[0].set_title("(a) lines: expected (eq. 5); circles: simulated")
    axes[0].legend(fontsize=7)
    axes[1].axhline(0, color="k", lw=1)
    axes[1].set_xlabel("number of users K")
    axes[1].set_ylabel("simulated / expected - 1 (%)")
    axes[1].set_title("(b) relative difference")
    axes[1].legend(fontsize=7)
    fig.suptitle("Fig. 6  Monte-Carlo check in MultiSpin-Heterogeneous-v0 (iid acceptance, no fading)", fontsize=11)
    return save_figure(fig, path)


# --- Driver -------------------------------------------------------------------------------------------------------

FIGURES: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")


def run(
    out_dir: str | os.PathLike[str],
    cfg: FindingsConfig = FULL,
    *,
    figures: Sequence[str] = FIGURES,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Compute and write the chosen figures (PNG + CSV) into ``out_dir``; returns name -> path of every file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    unknown = sorted(set(figures) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {FIGURES}")

    def timed(label: str, func: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = func()
        log(f"[findings] {label}: {time.perf_counter() - start:.1f} s")
        return value

    if "1" in figures:
        rows = timed("fig1 data", lambda: figure1_rows(cfg))
        written["fig1_csv"] = write_csv(out / "fig1_homogeneous_shares.csv", rows)
        written["fig1_png"] = plot_figure1(rows, out / "fig1_homogeneous_shares.png")
        log(_fig1_text(rows))
    if "2" in figures:
        rows = timed("fig2 data", lambda: figure2_rows(cfg))
        written["fig2_csv"] = write_csv(out / "fig2_heterogeneous_allocation.csv", rows)
        written["fig2_png"] = plot_figure2(rows, out / "fig2_heterogeneous_allocation.png")
        log(_fig2_text(rows))
    if "3" in figures:
        rows = timed("fig3 data", lambda: figure3_rows(cfg, jobs))
        written["fig3_csv"] = write_csv(out / "fig3_goodput_vs_users.csv", rows)
        written["fig3_png"] = plot_figure3(rows, out / "fig3_goodput_vs_users.png")
        log(_fig3_text(rows))
    if "4" in figures:
        rows = timed("fig4 data", lambda: figure4_rows(cfg, jobs))
        written["fig4_csv"] = write_csv(out / "fig4_goodput_vs_bandwidth_payload.csv", rows)
        written["fig4_png"] = plot_figure4(rows, out / "fig4_goodput_vs_bandwidth_payload.png")
        log(_fig4_text(rows))
    if "5" in figures:
        rows = timed("fig5 data", lambda: figure5_rows(cfg, jobs))
        summary = summarise_gains(rows)
        written["fig5_csv"] = write_csv(out / "fig5_gain_vs_heterogeneity.csv", rows)
        written["fig5_summary_csv"] = write_csv(out / "fig5_summary.csv", summary)
        text = gain_summary_markdown(summary, rows)
        written["fig5_summary_md"] = out / "fig5_summary.md"
        written["fig5_summary_md"].write_text(text + "\n")
        written["fig5_png"] = plot_figure5(summary, out / "fig5_gain_vs_heterogeneity.png")
        log(text)
    if "6" in figures:
        rows = timed("fig6 data", lambda: figure6_rows(cfg))
        written["fig6_csv"] = write_csv(out / "fig6_monte_carlo.csv", rows)
        written["fig6_png"] = plot_figure6(rows, out / "fig6_monte_carlo.png")
        log(_fig6_text(rows))
    return written


def _fig1_text(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["Fig. 1 (homogeneous optimum), mean share x K by device class (devices differ):"]
    sub = [r for r in rows if r["case"] == "devices differ"]
    for cls in ("high", "mid", "low"):
        vals = [r["share_times_K"] for r in sub if r["device_class"] == cls]
        if vals:
            lines.append(f"  {cls:4s} t={DEVICE_CLASS_MS[cls]:g} ms: {np.mean(vals):.2f}")
    sub = [r for r in rows if r["case"] == "channels differ"]
    if len(sub) > 2:
        rho = np.corrcoef(np.log([r["upload_time_ms"] for r in sub]), np.log([r["share"] for r in sub]))[0, 1]
        lines.append(f"  channels differ: correlation of log share with log c_k = {rho:.2f}")
    return "\n".join(lines)


DEVICE_CLASS_MS = {"high": 4.0, "mid": 10.0, "low": 25.0}


def _fig2_text(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["Fig. 2 (heterogeneous optimum): mean length / share x K by acceptance band:"]
    for case in FIG2_CASES:
        sub = [r for r in rows if r["case"] == case]
        lines.append(f"  {case}:")
        for lo, hi in ((0.0, 0.45), (0.45, 0.6), (0.6, 0.75), (0.75, 1.0)):
            pts = [r for r in sub if lo <= r["acceptance"] < hi]
            if pts:
                lines.append(
                    f"    a in [{lo:.2f},{hi:.2f}): L = {np.mean([r['draft_length'] for r in pts]):.2f}, "
                    f"b x K = {np.mean([r['share_times_K'] for r in pts]):.2f}  ({len(pts)} users)"
                )
    return "\n".join(lines)


def _fig3_text(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "Fig. 3 (goodput vs K, tokens/s, mean over populations):",
        "  K   " + " ".join(f"{p:>11s}" for p in POLICIES),
    ]
    for k in sorted({r["num_users"] for r in rows}):
        sub = [r for r in rows if r["num_users"] == k]
        lines.append(f"  {k:<3d} " + " ".join(f"{np.mean([r[f'goodput_{p}'] for r in sub]):11.1f}" for p in POLICIES))
    return "\n".join(lines)


def _fig4_text(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["Fig. 4 (goodput vs W and payload, tokens/s, mean over populations):"]
    for sweep, key in (("bandwidth", "bandwidth_mhz"), ("payload", "payload")):
        sub = [r for r in rows if r["sweep"] == sweep]
        for x in dict.fromkeys(r[key] for r in sub):
            pts = [r for r in sub if r[key] == x]
            lines.append(
                f"  {key}={x}: " + ", ".join(f"{p} {np.mean([r[f'goodput_{p}'] for r in pts]):.1f}" for p in POLICIES)
            )
    return "\n".join(lines)


def _fig6_text(rows: Sequence[Mapping[str, Any]]) -> str:
    rel = np.array([r["relative_error"] for r in rows])
    return (
        f"Fig. 6 (Monte-Carlo): simulated / expected - 1 over {len(rows)} episodes: mean {rel.mean():+.2%}, "
        f"max |.| {np.abs(rel).max():.2%}"
    )


def _figure_list(text: str) -> list[str]:
    """An argparse ``type`` for ``--figures``: a comma-separated, non-empty subset of :data:`FIGURES`."""
    figures = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in figures if f not in FIGURES]
    if unknown or not figures:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(FIGURES)}, got {text!r}")
    return figures


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Command line (``python -m experiments.findings``; also the ``multispin-findings`` console entry point).

    :param argv: arguments without the program name; ``None`` reads ``sys.argv``
    :param prog: the name for errors (default: the console script as invoked, else ``python -m experiments.findings``)
    :returns: the exit status, 0 on success, 2 on a bad command line (one ``prog: error: ...`` line)
    """
    parser = OneLineParser(
        prog=prog or program_name("python -m experiments.findings"),
        description="Reproduce the Multi-SPIN paper's findings: figures 1-6 (PNG + CSV) and a gain summary.",
    )
    parser.add_argument("-o", "--out", default="results/findings", help="output directory (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="tiny grid (seconds), for smoke tests")
    parser.add_argument(
        "--figures", type=_figure_list, default=list(FIGURES), help="comma-separated subset of 1-6 (default: all)"
    )
    parser.add_argument(
        "--seed", type=int_at_least(0), default=0, help="root seed of every random population (default: 0)"
    )
    parser.add_argument(
        "--jobs",
        type=int_at_least(1),
        default=min(2, os.cpu_count() or 1),
        help="worker processes for figures 3-5 (default: %(default)s)",
    )
    parser.add_argument(
        "--acceptance-process",
        default="iid",
        choices=sorted(ACCEPTANCE_PROCESSES),
        help="process whose nominal acceptance curve figures 3-5 use (default: %(default)s, the "
        "paper's a^i); e.g. mixture for the rising conditional acceptance of docs/model.md 5.1",
    )
    args = parser.parse_args(argv)
    try:
        check_output_folder(args.out, "-o/--out")
    except UserError as exc:
        parser.error(str(exc))
    cfg = QUICK if args.quick else FULL
    cfg = replace(cfg, seed=args.seed, acceptance_process=args.acceptance_process)
    start = time.perf_counter()
    written = run(args.out, cfg, figures=args.figures, jobs=args.jobs)
    print(f"[findings] wrote {len(written)} files to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
