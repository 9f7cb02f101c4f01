"""Round-realism findings: the analytic optimum against the verification knee, the upload deadline
and device energy, on the base scenario (docs/model.md section 4).

One command writes every table (CSV, one markdown) and figure (PNG)::

    python -m experiments.realism -o docs/realism            # the documented run, 25-45 s on 2 busy cores
    python -m experiments.realism -o /tmp/realism --quick    # tiny grid, a few seconds (used by the tests)

Outputs (in ``-o DIR``):

1. ``knee.csv`` / ``knee.png``: expected goodput and the optimal mean draft length of P-het and P-hom against
   the verification knee k0 of eq. (2') (T_ver(N) = T0 + kappa max(0, N - k0)), one row per population and knee;
2. ``deadline.csv`` (analytic, fading off, one row per population and deadline U of eq. (1')),
   ``deadline_mc.csv`` (Monte-Carlo with fading on: het-opt-oracle and het-opt-static played in
   ``MultiSpin-Heterogeneous-v0``, one row per episode: goodput = tokens / clock, fraction of dropped uploads)
   and ``deadline.png``;
3. ``energy.csv`` / ``energy.md`` / ``energy.png``: goodput against device power (docs/model.md section 5.7) of
   the het-opt allocation when L_max is capped (K = 6), and, on K = 4 populations where {0..L_max}^K can be
   enumerated, the exact front of the energy price w: argmax over L of G(L) - w P(L) (the rate of the env's
   reward with ``energy_weight`` = w), with the Pareto-efficient points flagged.

Populations are drawn with ``numpy.random.default_rng([seed, 11, part, index])``, so a run is reproducible.
matplotlib is imported only when plotting (Agg backend).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from baselines.solvers import Allocation, solve_heterogeneous, solve_homogeneous
from experiments import findings
from multispin_env.model import (
    RoundParams,
    device_energy,
    expected_goodput,
    finish_time,
    optimal_bandwidth,
    round_latency,
    upload_end,
    verification_times,
)
from multispin_env.scenarios import Population, Scenario, get_scenario

__all__ = [
    "RealismConfig",
    "FULL",
    "QUICK",
    "allocation_energy",
    "knee_rows",
    "deadline_rows",
    "deadline_mc_rows",
    "energy_rows",
    "pareto_flags",
    "summarise",
    "run",
    "main",
]

#: Policies of the Monte-Carlo deadline column (het-opt at the two information levels that bracket a real one).
MC_POLICIES: tuple[str, ...] = ("het-opt-oracle", "het-opt-static")


@dataclass(frozen=True)
class RealismConfig:
    """Grid sizes of one run. :data:`FULL` is the documented run, :data:`QUICK` the tiny one of the tests.

    :param name: label of the run
    :param populations: random base-scenario populations per point of the knee, deadline and cap sweeps
    :param knees: verification knees k0 of eq. (2'), tokens
    :param deadlines: upload deadlines U of eq. (1'), s; None = no deadline
    :param mc_populations: populations (env ``population_seed``) of the Monte-Carlo deadline column
    :param mc_episodes: episodes per population, policy and deadline
    :param mc_horizon_s: simulated seconds per episode
    :param energy_users: K of the enumerated energy-price front (11^K length vectors per population)
    :param energy_populations: populations of the energy-price front
    :param energy_prices: energy prices w, tokens per joule
    :param seed: root seed of every population and episode
    """

    name: str
    populations: int
    knees: tuple[float, ...]
    deadlines: tuple[float | None, ...]
    mc_populations: int
    mc_episodes: int
    mc_horizon_s: float
    energy_users: int
    energy_populations: int
    energy_prices: tuple[float, ...]
    seed: int = 0


FULL = RealismConfig(
    name="full",
    populations=20,
    knees=(0.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0, 128.0, 256.0),
    deadlines=(None, 0.5, 0.2, 0.1, 0.075, 0.05, 0.035, 0.02),
    mc_populations=4,
    mc_episodes=3,
    mc_horizon_s=10.0,
    energy_users=4,
    energy_populations=20,
    energy_prices=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
)

QUICK = RealismConfig(
    name="quick",
    populations=3,
    knees=(0.0, 16.0, 64.0, 256.0),
    deadlines=(None, 0.1, 0.035),
    mc_populations=1,
    mc_episodes=1,
    mc_horizon_s=2.0,
    energy_users=3,
    energy_populations=2,
    energy_prices=(0.0, 2.0, 8.0, 64.0),
)


# --- Populations and energy ---------------------------------------------------------------------------------------


def _populations(cfg: RealismConfig, part: int, scenario: Scenario, count: int) -> list[Population]:
    """``count`` populations of ``scenario`` from fixed seeds (the same for every point of a sweep, so the points
    differ only by the swept setting)."""
    return [scenario.sample_population(np.random.default_rng([cfg.seed, 11, part, i])) for i in range(count)]


def allocation_energy(
    params: RoundParams, population: Population, draft_lengths: np.ndarray, bandwidth: np.ndarray, tx_power_w: float
) -> np.ndarray:
    """Device energy of one round per user, J (docs/model.md section 5.7, mean channel):
    E_k = P_draft,k L_k t_k + P_tx (min(u_k, U) - L_k t_k), u_k the upload end of eq. (1').

    :param params: the system (t_k, c_k in s/token, the deadline U in s)
    :param population: gives each user's drafting power P_draft,k (W) by device class
    :param draft_lengths: L_k, tokens; leading batch axes allowed
    :param bandwidth: b_k, fractions of the band, same shape
    :param tx_power_w: P_tx, W
    """
    lengths = np.asarray(draft_lengths, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        finish = finish_time(lengths, params.draft_time, params.upload_time, bandwidth)
    stop = upload_end(finish, params.deadline)
    return device_energy(lengths, params.draft_time, stop, population.draft_power, tx_power_w)


# --- 1a: the verification knee -------------------------------------------------------------------------------------


def _solved_row(params: RoundParams, solver: str, allocation: Allocation) -> dict[str, Any]:
    lengths = np.asarray(allocation.draft_lengths)
    return {
        "solver": solver,
        "goodput": float(allocation.goodput),
        "mean_draft_length": float(lengths.mean()),
        "batch_tokens": int((lengths + 1).sum()),
        "sync_time_s": float(allocation.sync_time),
        "verify_time_s": float(allocation.latency - allocation.sync_time - params.downlink_time),
        "latency_s": float(allocation.latency),
    }


def knee_rows(cfg: RealismConfig) -> list[dict[str, Any]]:
    """P-het and P-hom optima of the base scenario's populations (static RoundParams, mean channel, no deadline)
    for each knee k0 of eq. (2'): one row per (knee, population, solver)."""
    base = get_scenario("base")
    pops = _populations(cfg, 1, base, cfg.populations)
    rows = []
    for knee in cfg.knees:
        scenario = base.replace(verify_knee_tokens=float(knee))
        for index, pop in enumerate(pops):
            params = scenario.round_params(pop)
            for solver, solve in (("het-opt", solve_heterogeneous), ("hom-opt", solve_homogeneous)):
                rows.append(
                    {"knee_tokens": float(knee), "population": index, **_solved_row(params, solver, solve(params))}
                )
    return rows


# --- 1b: the upload deadline ---------------------------------------------------------------------------------------


def _deadline_label(deadline: float | None) -> str:
    return "none" if deadline is None else f"{deadline:g}"


def deadline_rows(cfg: RealismConfig) -> list[dict[str, Any]]:
    """P-het and P-hom optima with the upload deadline U of eq. (1') as a constraint, fading off (mean channel):
    one row per (deadline, population, solver). The deadline binds only when it is below the unconstrained
    optimum's sync time (tens of ms in the base scenario)."""
    base = get_scenario("base")
    pops = _populations(cfg, 1, base, cfg.populations)  # the knee sweep's: knee 0 = no deadline
    rows = []
    for deadline in cfg.deadlines:
        for index, pop in enumerate(pops):
            params = dataclasses.replace(base.round_params(pop), upload_deadline=deadline)
            for solver, solve in (("het-opt", solve_heterogeneous), ("hom-opt", solve_homogeneous)):
                rows.append(
                    {
                        "deadline": _deadline_label(deadline),
                        "deadline_s": math.inf if deadline is None else float(deadline),
                        "population": index,
                        **_solved_row(params, solver, solve(params)),
                    }
                )
    return rows


def deadline_mc_rows(cfg: RealismConfig) -> list[dict[str, Any]]:
    """Monte-Carlo goodput of het-opt-oracle and het-opt-static in ``MultiSpin-Heterogeneous-v0`` with Rayleigh
    fading on and ``upload_deadline`` = U (iid acceptance, the env's fixed population of ``population_seed``):
    one row per episode, goodput = tokens / clock, ``dropped_fraction`` = dropped uploads / drafting user-rounds
    (info["dropped"] over L_k > 0), ``planned_goodput`` = the expected goodput (eq. (5)) of the policy's first
    plan (for het-opt-static: the analytic optimum of the population on the mean channel)."""
    import gymnasium as gym

    import multispin_env  # noqa: F401  (registers the environments)
    from baselines.policies import AnalyticPolicy, make_policy

    rows = []
    for pop in range(cfg.mc_populations):
        population_seed = int(np.random.default_rng([cfg.seed, 11, 3, pop]).integers(2**31))
        for deadline in cfg.deadlines:
            env = gym.make(
                "MultiSpin-Heterogeneous-v0",
                upload_deadline=deadline,
                fading=True,
                horizon=cfg.mc_horizon_s,
                population_seed=population_seed,
            )
            try:
                for name in MC_POLICIES:
                    policy = make_policy(name, env)
                    assert isinstance(policy, AnalyticPolicy)  # a solver's policy: it reports its plan
                    for episode in range(cfg.mc_episodes):
                        # The same episode seeds for every policy and deadline: common random numbers.
                        obs, _ = env.reset(seed=population_seed + 1 + episode)
                        policy.reset()
                        tokens = drafting = dropped = rounds = 0
                        longest = 0.0
                        planned = math.nan
                        while True:
                            action, _ = policy.predict(obs)
                            if math.isnan(planned) and policy.last_allocation is not None:
                                # Expected goodput of the first round's plan: for het-opt-static that is the
                                # analytic optimum of this population on the mean channel (fading off).
                                planned = float(policy.last_allocation.goodput)
                            obs, _, terminated, truncated, info = env.step(action)
                            tokens += int(np.sum(info["tokens"]))
                            drafting += int(np.count_nonzero(info["draft_lengths"]))
                            dropped += int(np.count_nonzero(info["dropped"]))
                            longest = max(longest, float(info["latency"]))
                            rounds += 1
                            if terminated or truncated:
                                break
                        rows.append(
                            {
                                "deadline": _deadline_label(deadline),
                                "deadline_s": math.inf if deadline is None else float(deadline),
                                "population": pop,
                                "episode": episode,
                                "policy": name,
                                "rounds": rounds,
                                "goodput": tokens / float(info["clock"]),
                                "planned_goodput": planned,
                                "dropped_fraction": dropped / drafting if drafting else 0.0,
                                "longest_round_s": longest,
                            }
                        )
            finally:
                env.close()
    return rows


# --- 1c: goodput against device energy -----------------------------------------------------------------------------


def _server_only(params: RoundParams) -> tuple[float, float]:
    """(goodput tokens/s, device power W) of server-only decoding: K tokens per T_ver(K) + T_dl, no device energy."""
    k = params.num_users
    latency = float(verification_times(float(k), params.verify_profile_points)) + params.downlink_time
    return k / latency, 0.0


def pareto_flags(goodput: Sequence[float], power: Sequence[float]) -> list[bool]:
    """True for each point (goodput up, power down) that no other point dominates (>= in both, > in one)."""
    g, p = np.asarray(goodput, dtype=np.float64), np.asarray(power, dtype=np.float64)
    flags = []
    for i in range(g.size):
        dominated = (g >= g[i]) & (p <= p[i]) & ((g > g[i]) | (p < p[i]))
        flags.append(not bool(dominated.any()))
    return flags


def _energy_point(
    params: RoundParams, pop: Population, lengths: np.ndarray, shares: np.ndarray, tx_power_w: float
) -> tuple[float, float, float]:
    """(goodput tokens/s, device power W, expected tokens per round) of one allocation on the mean channel."""
    energy = float(allocation_energy(params, pop, lengths, shares, tx_power_w).sum())
    goodput = float(expected_goodput(params, lengths, shares))
    latency = float(round_latency(params, lengths, shares))
    return goodput, energy / latency, goodput * latency


def _aggregate(points: list[tuple[float, float, float]]) -> dict[str, float]:
    """Means over populations: goodput (tokens/s), power (W), energy per round (J) and tokens per joule
    (summed tokens over summed energy, so a population that spends little does not dominate the ratio)."""
    g = np.array([p[0] for p in points])
    w = np.array([p[1] for p in points])
    tokens = np.array([p[2] for p in points])
    latency = tokens / g
    energy = w * latency
    return {
        "goodput": float(g.mean()),
        "device_power_w": float(w.mean()),
        "energy_per_round_j": float(energy.mean()),
        "tokens_per_joule": float(tokens.sum() / energy.sum()) if energy.sum() > 0 else math.inf,
    }


def energy_rows(cfg: RealismConfig) -> list[dict[str, Any]]:
    """Goodput-energy trade-off of the analytic optimum (docs/model.md section 5.7), means over populations:

    - ``method = cap`` (K = 6, base scenario): the het-opt allocation with L_max capped at 0..10 (0 =
      server-only decoding);
    - ``method = cap`` and ``method = price`` (K = ``energy_users``): the same caps, and the exact maximiser of
      G(L) - w P(L) over all of {0..L_max}^K (equal-finish shares) for each price w in tokens/J;

    ``pareto`` flags the points of each (method, K) group that no other point of the group dominates (goodput up,
    power down), ``pareto_all_methods`` those that no point of either method with the same K dominates."""
    rows: list[dict[str, Any]] = []
    base = get_scenario("base")
    tx_power_w = base.transmit_power_w
    for k, count in ((base.num_users, cfg.populations), (cfg.energy_users, cfg.energy_populations)):
        scenario = base.replace(num_users=k)
        pops = _populations(cfg, 1, scenario, count)  # K = 6: the knee sweep's populations
        group: list[dict[str, Any]] = []
        for cap in range(scenario.max_draft + 1):
            points = []
            for pop in pops:
                if cap == 0:
                    goodput, power = _server_only(scenario.round_params(pop))
                    points.append(
                        (
                            goodput,
                            power,
                            goodput
                            * (
                                float(verification_times(float(k), scenario.verify_profile_points))
                                + scenario.downlink_time
                            ),
                        )
                    )
                    continue
                params = scenario.replace(max_draft=cap).round_params(pop)
                alloc = solve_heterogeneous(params)
                points.append(
                    _energy_point(params, pop, np.asarray(alloc.draft_lengths), np.asarray(alloc.bandwidth), tx_power_w)
                )
            group.append(
                {"method": "cap", "num_users": k, "max_draft": cap, "price_tokens_per_j": "", **_aggregate(points)}
            )
        group = _flagged(group)
        if k == cfg.energy_users:
            group += _flagged(_price_front(cfg, scenario, pops, tx_power_w))
        # Across methods too: does capping L_max reach the price front?
        flags = pareto_flags([r["goodput"] for r in group], [r["device_power_w"] for r in group])
        rows += [{**row, "pareto_all_methods": flag} for row, flag in zip(group, flags, strict=True)]
    return rows


def _price_front(
    cfg: RealismConfig, scenario: Scenario, pops: list[Population], tx_power_w: float
) -> list[dict[str, Any]]:
    """For each energy price w (tokens/J), the mean over ``pops`` of the exact argmax of G(L) - w P(L) over
    {0..L_max}^K with the equal-finish shares (eq. (1)-(5), section 5.7), by enumeration."""
    k, lm = scenario.num_users, scenario.max_draft
    grid = np.array(list(itertools.product(range(lm + 1), repeat=k)), dtype=np.float64)
    per_price: dict[float, list[tuple[float, float, float]]] = {w: [] for w in cfg.energy_prices}
    for pop in pops:
        params = scenario.round_params(pop)
        shares, _ = optimal_bandwidth(params.draft_time, params.upload_time, grid)
        goodput = expected_goodput(params, grid, shares)
        latency = round_latency(params, grid, shares)
        power = allocation_energy(params, pop, grid, shares, tx_power_w).sum(axis=-1) / latency
        for w in cfg.energy_prices:
            best = int(np.argmax(goodput - w * power))  # first maximiser; L = 0 (power 0) is in the grid
            per_price[w].append((float(goodput[best]), float(power[best]), float(goodput[best] * latency[best])))
    return [
        {"method": "price", "num_users": k, "max_draft": lm, "price_tokens_per_j": float(w), **_aggregate(points)}
        for w, points in per_price.items()
    ]


def _flagged(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flags = pareto_flags([r["goodput"] for r in group], [r["device_power_w"] for r in group])
    return [{**row, "pareto": flag} for row, flag in zip(group, flags, strict=True)]


# --- Summaries -----------------------------------------------------------------------------------------------------


def _means(rows: Sequence[Mapping[str, Any]], key: str, value: str, **match: Any) -> dict[Any, float]:
    """Mean of ``value`` per ``key`` over the rows matching ``match``, in first-seen key order."""
    out: dict[Any, list[float]] = {}
    for row in rows:
        if all(row[k] == v for k, v in match.items()):
            out.setdefault(row[key], []).append(float(row[value]))
    return {k: float(np.mean(v)) for k, v in out.items()}


def summarise(
    knee: Sequence[Mapping[str, Any]],
    deadline: Sequence[Mapping[str, Any]],
    mc: Sequence[Mapping[str, Any]],
    energy: Sequence[Mapping[str, Any]],
) -> str:
    """The key numbers of every table, as markdown (printed by the command and written to ``summary.md``)."""
    lines = [
        "| knee (tokens) | het-opt goodput (tok/s) | het-opt mean L | hom-opt goodput | hom-opt L |",
        "|---:|---:|---:|---:|---:|",
    ]
    het_g, het_l = (
        _means(knee, "knee_tokens", "goodput", solver="het-opt"),
        _means(knee, "knee_tokens", "mean_draft_length", solver="het-opt"),
    )
    hom_g, hom_l = (
        _means(knee, "knee_tokens", "goodput", solver="hom-opt"),
        _means(knee, "knee_tokens", "mean_draft_length", solver="hom-opt"),
    )
    for x in het_g:
        lines.append(f"| {x:g} | {het_g[x]:.1f} | {het_l[x]:.2f} | {hom_g[x]:.1f} | {hom_l[x]:.2f} |")
    lines += [
        "",
        "| deadline (s) | het-opt goodput, fading off | het-opt mean L | hom-opt goodput | "
        + " | ".join(f"{p} MC goodput, fading on | {p} dropped" for p in MC_POLICIES)
        + " | het-opt-static plan, expected (MC populations, mean channel) |",
        "|---|---:|---:|---:|" + "---:|---:|" * len(MC_POLICIES) + "---:|",
    ]
    het_g = _means(deadline, "deadline", "goodput", solver="het-opt")
    het_l = _means(deadline, "deadline", "mean_draft_length", solver="het-opt")
    hom_g = _means(deadline, "deadline", "goodput", solver="hom-opt")
    mc_g = {p: _means(mc, "deadline", "goodput", policy=p) for p in MC_POLICIES}
    mc_d = {p: _means(mc, "deadline", "dropped_fraction", policy=p) for p in MC_POLICIES}
    planned = _means(mc, "deadline", "planned_goodput", policy="het-opt-static")
    for x in het_g:
        cells = " | ".join(f"{mc_g[p].get(x, math.nan):.1f} | {mc_d[p].get(x, math.nan):.1%}" for p in MC_POLICIES)
        lines.append(
            f"| {x} | {het_g[x]:.1f} | {het_l[x]:.2f} | {hom_g[x]:.1f} | {cells} | {planned.get(x, math.nan):.1f} |"
        )
    lines += [
        "",
        "| method | K | L_max | price w (tok/J) | goodput (tok/s) | device power (W) | energy/round (J) | "
        "tokens/J | Pareto (method) | Pareto (both) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in energy:
        price = "" if r["price_tokens_per_j"] == "" else f"{r['price_tokens_per_j']:g}"
        lines.append(
            f"| {r['method']} | {r['num_users']} | {r['max_draft']} | {price} | {r['goodput']:.1f} | "
            f"{r['device_power_w']:.2f} | {r['energy_per_round_j']:.3f} | {r['tokens_per_joule']:.1f} | "
            f"{'yes' if r['pareto'] else 'no'} | {'yes' if r['pareto_all_methods'] else 'no'} |"
        )
    return "\n".join(lines)


# --- Files and figures ---------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """:func:`experiments.findings.write_csv` with 8 significant digits (the outputs stay small)."""
    return findings.write_csv(path, rows, digits=8)


def _pyplot() -> Any:
    """The findings' figure style, saved at 100 dpi (small committed PNGs)."""
    return findings._pyplot(dpi=100)


_COLOURS = {"het-opt": "#1b6ca8", "hom-opt": "#e07b00", "het-opt-oracle": "#2a9d3f", "het-opt-static": "#9b59b6"}


def plot_knee(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for solver in ("het-opt", "hom-opt"):
        for ax, value in zip(axes, ("goodput", "mean_draft_length"), strict=True):
            means = _means(rows, "knee_tokens", value, solver=solver)
            ax.plot(list(means), list(means.values()), "o-", color=_COLOURS[solver], label=solver)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=8)
        ax.set_xticks([0, 8, 16, 32, 64, 128, 256])
        ax.set_xticklabels(["0", "8", "16", "32", "64", "128", "256"])
        ax.set_xlabel("verification knee k0 (tokens)")
        ax.legend()
    axes[0].set_ylabel("expected goodput (tokens/s)")
    axes[1].set_ylabel("optimal mean draft length (tokens)")
    fig.suptitle(
        "Goodput and optimal draft length vs the knee: T_ver = 60 ms + 0.5 ms x max(0, N - k0), "
        "base scenario (K = 6, L_max = 10, N <= 66)",
        fontsize=9,
    )
    return findings.save_figure(fig, path)


def plot_deadline(rows: Sequence[Mapping[str, Any]], mc: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    labels = list(dict.fromkeys(r["deadline"] for r in rows))
    order = sorted(labels, key=lambda s: math.inf if s == "none" else float(s))
    x = np.arange(len(order))
    for solver in ("het-opt", "hom-opt"):
        for ax, value in ((axes[0], "goodput"), (axes[1], "mean_draft_length")):
            means = _means(rows, "deadline", value, solver=solver)
            ax.plot(x, [means[d] for d in order], "o-", color=_COLOURS[solver], label=f"{solver} (analytic, no fading)")
    for policy in MC_POLICIES:
        g = _means(mc, "deadline", "goodput", policy=policy)
        d = _means(mc, "deadline", "dropped_fraction", policy=policy)
        if g:
            axes[0].plot(
                x, [g.get(s, math.nan) for s in order], "s--", color=_COLOURS[policy], label=f"{policy} (env, fading)"
            )
            axes[2].plot(x, [100 * d.get(s, math.nan) for s in order], "s--", color=_COLOURS[policy], label=policy)
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(order)
        ax.set_xlabel("upload deadline U (s)")
        ax.legend()
    axes[0].set_ylabel("goodput (tokens/s)")
    axes[1].set_ylabel("optimal mean draft length (tokens)")
    axes[2].set_ylabel("dropped uploads (% of drafting user-rounds)")
    fig.suptitle(
        "Goodput vs the upload deadline, base scenario: analytic optimum (mean channel) and the env "
        "with Rayleigh fading",
        fontsize=9,
    )
    return findings.save_figure(fig, path)


def plot_energy(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    ks = sorted({r["num_users"] for r in rows}, reverse=True)
    fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        for method, style, colour in (("cap", "o-", "#1b6ca8"), ("price", "s--", "#c0392b")):
            sub = [r for r in rows if r["num_users"] == k and r["method"] == method]
            if not sub:
                continue
            label = "het-opt, L_max capped" if method == "cap" else "exact argmax G - w P (price w)"
            ax.plot([r["device_power_w"] for r in sub], [r["goodput"] for r in sub], style, color=colour, label=label)
            last: tuple[float, float] | None = None
            for r in sub:
                here = (r["device_power_w"], r["goodput"])
                if last is not None and abs(here[0] - last[0]) < 0.05 and abs(here[1] - last[1]) < 0.5:
                    continue  # a cap beyond the optimum's lengths (or a price too low to bind) repeats the point
                last = here
                text = f"{r['max_draft']}" if method == "cap" else f"w={r['price_tokens_per_j']:g}"
                ax.annotate(
                    text,
                    (r["device_power_w"], r["goodput"]),
                    fontsize=6,
                    xytext=(3, -8 if method == "cap" else 3),
                    textcoords="offset points",
                    color=colour,
                )
        ax.set_xlabel("device power, all users (W)")
        ax.set_ylabel("expected goodput (tokens/s)")
        ax.set_title(f"K = {k}, mean over populations")
        ax.legend(loc="lower right")
    fig.suptitle(
        "Goodput vs device energy of the analytic optimum (P_draft 8/4/2 W, P_tx 0.2 W; cap labels = L_max)", fontsize=9
    )
    return findings.save_figure(fig, path)


# --- Driver --------------------------------------------------------------------------------------------------------


def run(out_dir: str | Path, cfg: RealismConfig = FULL, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Compute and write every table and figure into ``out_dir``; returns name -> path of every file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def timed(label: str, func: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = func()
        log(f"[realism] {label}: {time.perf_counter() - start:.1f} s")
        return value

    knee = timed("knee sweep", lambda: knee_rows(cfg))
    deadline = timed("deadline sweep (analytic)", lambda: deadline_rows(cfg))
    mc = timed("deadline sweep (Monte-Carlo)", lambda: deadline_mc_rows(cfg))
    energy = timed("energy trade-off", lambda: energy_rows(cfg))
    summary = summarise(knee, deadline, mc, energy)
    written = {
        "knee_csv": write_csv(out / "knee.csv", knee),
        "knee_png": plot_knee(knee, out / "knee.png"),
        "deadline_csv": write_csv(out / "deadline.csv", deadline),
        "deadline_mc_csv": write_csv(out / "deadline_mc.csv", mc),
        "deadline_png": plot_deadline(deadline, mc, out / "deadline.png"),
        "energy_csv": write_csv(out / "energy.csv", energy),
        "energy_png": plot_energy(energy, out / "energy.png"),
    }
    energy_md = summary[summary.index("| method |") :]
    written["energy_md"] = out / "energy.md"
    written["energy_md"].write_text(energy_md + "\n")
    written["summary_md"] = out / "summary.md"
    written["summary_md"].write_text(summary + "\n")
    log(summary)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (``python -m experiments.realism``).

    :param argv: arguments without the program name; ``None`` reads ``sys.argv``
    :returns: the exit status, 0 on success
    """
    parser = argparse.ArgumentParser(
        prog="python -m experiments.realism",
        description="Round-realism findings: knee, deadline and energy (CSV + PNG).",
    )
    parser.add_argument("-o", "--out", default="results/realism", help="output directory (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="tiny grid (seconds), for smoke tests")
    parser.add_argument("--seed", type=int, default=0, help="root seed of every population (default: 0)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.seed != cfg.seed:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    start = time.perf_counter()
    written = run(args.out, cfg)
    print(f"[realism] wrote {len(written)} files to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
