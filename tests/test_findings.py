"""The paper's findings (model.md section 6) as assertions on fresh random instances, and the figure command.

Instances are drawn from seeded generators (hypothesis is derandomised in conftest.py), so every run
checks the same instances.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.solvers import equal_bandwidth_fixed, equal_bandwidth_tuned, solve_heterogeneous, solve_homogeneous
from experiments import findings
from multispin_env.model import RoundParams, equal_finish_time, expected_goodput
from multispin_env.scenarios import get_scenario, heterogeneity_scenario

SCENARIO_NAMES = ("base", "llama2", "qwen", "weak-heterogeneity", "strong-heterogeneity", "acceptance-only")
RTOL = 1e-9


def _instance(name: str, num_users: int, seed: int, **overrides: object) -> RoundParams:
    scenario = get_scenario(name, num_users=num_users, **overrides)
    return scenario.round_params(scenario.sample_population(np.random.default_rng(seed)))


# --- Finding 1: the homogeneous optimum compensates slow devices and weak channels ---------------------------------


def _assert_dominance_monotone(shares: np.ndarray, *keys: np.ndarray) -> None:
    """For every pair of users: if i is at least as slow/weak as j in every key, b_i >= b_j."""
    for i in range(shares.size):
        for j in range(shares.size):
            if all(key[i] >= key[j] for key in keys):
                assert shares[i] >= shares[j] * (1 - RTOL) - 1e-12, (i, j, shares, keys)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 10), name=st.sampled_from(SCENARIO_NAMES))
@settings(max_examples=40)
def test_homogeneous_shares_increase_with_draft_time_and_upload_time(seed: int, k: int, name: str) -> None:
    params = _instance(name, k, seed)
    alloc = solve_homogeneous(params)
    lengths = np.asarray(alloc.draft_lengths)
    assert np.ptp(lengths) == 0  # one common length
    if lengths[0] == 0:  # server-only decoding is optimal: no shares to compare
        return
    shares = np.asarray(alloc.bandwidth)
    assert shares.sum() == pytest.approx(1.0)
    _assert_dominance_monotone(shares, params.draft_time, params.upload_time)
    # The closed form of model.md section 3: b_k = c_k / (s* - t_k), independent of L.
    s_star = equal_finish_time(params.upload_time, params.draft_time)
    np.testing.assert_allclose(shares, params.upload_time / (s_star - params.draft_time), rtol=1e-6)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 8))
@settings(max_examples=30)
def test_homogeneous_shares_grow_with_each_of_t_and_c_alone(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.choice([0.004, 0.010, 0.025], size=k)
    c = rng.uniform(2e-4, 5e-3, size=k)
    for draft_time, upload_time, key in ((t, np.full(k, c[0]), t), (np.full(k, t[0]), c, c)):
        params = RoundParams(acceptance=np.full(k, 0.8), draft_time=draft_time, upload_time=upload_time)
        alloc = solve_homogeneous(params)
        if alloc.draft_lengths[0] == 0:
            continue
        order = np.argsort(key, kind="stable")
        shares = np.asarray(alloc.bandwidth)[order]
        assert np.all(np.diff(shares) >= -1e-12)
        strictly = np.diff(key[order]) > 0
        assert np.all(np.diff(shares)[strictly] > 0)


# --- Finding 2: the heterogeneous optimum rewards users with better drafts -----------------------------------------


@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(2, 7),
    draft_time=st.sampled_from([0.004, 0.010, 0.025]),
    upload_time=st.floats(2e-4, 8e-3),
)
@settings(max_examples=40)
def test_heterogeneous_lengths_and_shares_increase_with_acceptance(
    seed: int, k: int, draft_time: float, upload_time: float
) -> None:
    """Users that differ only in a_k: L_k and b_k are non-decreasing in a_k (an exchange argument makes this exact)."""
    acceptance = np.random.default_rng(seed).uniform(0.2, 0.95, size=k)
    params = RoundParams(acceptance=acceptance, draft_time=np.full(k, draft_time), upload_time=np.full(k, upload_time))
    alloc = solve_heterogeneous(params)
    order = np.argsort(acceptance)
    lengths = np.asarray(alloc.draft_lengths)[order]
    shares = np.asarray(alloc.bandwidth)[order]
    assert np.all(np.diff(lengths) >= 0), (acceptance[order], lengths)
    assert np.all(np.diff(shares) >= -1e-9), (acceptance[order], shares)


def test_better_drafts_get_strictly_more_in_the_acceptance_only_preset() -> None:
    """Across fresh populations of the ``acceptance-only`` preset the best draft gets more than the worst."""
    longer = richer = 0
    for seed in range(12):
        params = _instance("acceptance-only", 6, 1000 + seed)
        alloc = solve_heterogeneous(params)
        best, worst = np.argmax(params.acceptance), np.argmin(params.acceptance)
        assert alloc.draft_lengths[best] >= alloc.draft_lengths[worst]
        assert alloc.bandwidth[best] >= alloc.bandwidth[worst] - 1e-9
        longer += int(alloc.draft_lengths[best] > alloc.draft_lengths[worst])
        richer += int(alloc.bandwidth[best] > alloc.bandwidth[worst] + 1e-9)
    assert longer >= 9 and richer >= 9


# --- Finding 3: het-opt >= hom-opt >= equal-tuned (and the other baselines) -----------------------------------------


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 12), name=st.sampled_from(SCENARIO_NAMES))
@settings(max_examples=40)
def test_het_opt_beats_hom_opt_beats_equal_tuned(seed: int, k: int, name: str) -> None:
    params = _instance(name, k, seed)
    het = solve_heterogeneous(params).goodput
    hom = solve_homogeneous(params).goodput
    tuned = equal_bandwidth_tuned(params).goodput
    fixed = equal_bandwidth_fixed(params).goodput
    server = float(expected_goodput(params, np.zeros(k, int), np.zeros(k)))
    assert het >= hom * (1 - RTOL)
    assert hom >= tuned * (1 - RTOL)
    assert hom >= fixed * (1 - RTOL)
    assert hom >= server * (1 - RTOL)
    goodputs = findings.policy_goodputs(params)
    assert goodputs["het-opt"] == pytest.approx(het) and goodputs["server-only"] == pytest.approx(server)


# --- Finding 4: the gain grows with heterogeneity --------------------------------------------------------------------


def _mean_gain(level: str, baseline: str, populations: int = 12) -> float:
    scenario = heterogeneity_scenario(level)
    gains = []
    for i in range(populations):
        goodputs = findings.policy_goodputs(
            scenario.round_params(scenario.sample_population(np.random.default_rng([42, i]))),
            ("het-opt", baseline),
        )
        gains.append(goodputs["het-opt"] / goodputs[baseline] - 1)
    return float(np.mean(gains))


def test_gain_is_zero_for_identical_users_and_tens_of_percent_under_strong_heterogeneity() -> None:
    for baseline in ("hom-opt", "equal-tuned"):
        assert _mean_gain("none", baseline) == pytest.approx(0.0, abs=1e-9)
        assert _mean_gain("strong", baseline) >= 0.10
    assert _mean_gain("strong", "equal-tuned") > _mean_gain("weak", "equal-tuned")


def test_mixture_findings_plan_with_the_beta_moments_of_each_users_rate() -> None:
    """--acceptance-process mixture: every policy is scored on E[r^i] of Beta rates (docs/model.md 5.1), checked
    against the moments computed by scipy, and het-opt still dominates the heterogeneity-unaware baselines."""
    from scipy import stats

    scenario = get_scenario("vllm-drafter")
    key = (3, 5, 0)
    policies = ("het-opt", "hom-opt", "equal-tuned")
    goodputs, _ = findings._instance((scenario, key, policies, "mixture"))
    iid, _ = findings._instance((scenario, key, policies, "iid"))
    params = scenario.round_params(scenario.sample_population(np.random.default_rng(list(key))))
    kappa = findings.resolve_config().mixture_concentration
    survival = np.array(
        [
            [stats.beta(kappa * a, kappa * (1 - a)).moment(i) for i in range(1, params.max_draft + 1)]
            for a in params.acceptance
        ]
    )
    expected = RoundParams(
        acceptance=None,
        survival=survival,
        draft_time=params.draft_time,
        upload_time=params.upload_time,
        verify_base=params.verify_base,
        verify_per_token=params.verify_per_token,
        max_draft=params.max_draft,
        downlink_time=params.downlink_time,
    )
    assert goodputs["het-opt"] == pytest.approx(solve_heterogeneous(expected).goodput, rel=1e-9)
    assert goodputs["het-opt"] >= goodputs["hom-opt"] * (1 - 1e-12) >= goodputs["equal-tuned"] * (1 - 1e-9)
    # Rounds of varying difficulty (Jensen: E[r^i] >= a^i) make long drafts pay more than i.i.d. acceptance says.
    assert goodputs["het-opt"] > iid["het-opt"]


# --- The figure command -------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_quick_figure_command_writes_every_file(tmp_path: Path) -> None:
    assert findings.main(["-o", str(tmp_path), "--quick", "--jobs", "1"]) == 0
    for n in range(1, 7):
        pngs = list(tmp_path.glob(f"fig{n}_*.png"))
        csvs = list(tmp_path.glob(f"fig{n}_*.csv"))
        assert pngs and csvs, n
        assert all(p.stat().st_size > 10_000 for p in pngs)
        assert all(len(_read_csv(c)) > 0 for c in csvs)
    cfg = findings.QUICK
    fig3 = _read_csv(next(tmp_path.glob("fig3_*.csv")))
    assert len(fig3) == len(cfg.users_grid) * cfg.populations
    assert {f"goodput_{p}" for p in findings.POLICIES} <= set(fig3[0])
    for row in fig3:
        assert float(row["goodput_het-opt"]) >= float(row["goodput_hom-opt"]) * (1 - 1e-9)
    # Figure 5's summary is the gains of its populations: per setting, and counted in the text.
    populations = _read_csv(tmp_path / "fig5_gain_vs_heterogeneity.csv")
    settings = _read_csv(tmp_path / "fig5_summary.csv")
    for setting in settings:
        members = [r for r in populations if all(r[k] == setting[k] for k in findings._SETTING_KEYS)]
        assert len(members) == int(setting["populations"]) > 0
        for baseline in findings.BASELINES:
            gains = [float(m[f"gain_over_{baseline}"]) for m in members]
            assert float(setting[f"mean_gain_over_{baseline}"]) == pytest.approx(np.mean(gains))
            assert float(setting[f"max_gain_over_{baseline}"]) == pytest.approx(max(gains))
    summary = (tmp_path / "fig5_summary.md").read_text()
    search = [s for s in settings if s["panel"] == "search"] or settings
    for baseline in findings.BASELINES:
        reaching = sum(float(s[f"mean_gain_over_{baseline}"]) >= findings.PAPER_GAIN for s in search)
        assert f"mean gain >= {findings.PAPER_GAIN:.0%} in {reaching} of {len(search)} settings" in summary
    fig6 = _read_csv(tmp_path / "fig6_monte_carlo.csv")
    assert {r["policy"] for r in fig6} == set(findings.POLICIES)
    assert all(float(r["simulated_goodput"]) > 0 for r in fig6)


def test_figure_data_is_reproducible_and_independent_of_jobs() -> None:
    cfg = dataclasses.replace(findings.QUICK, users_grid=(2, 3), populations=5)
    rows = findings.figure3_rows(cfg)
    assert rows == findings.figure3_rows(cfg, jobs=2)
    assert findings.figure3_rows(dataclasses.replace(cfg, seed=1)) != rows


def test_summary_names_the_settings_that_reach_the_paper_gain() -> None:
    rows = []
    for level, gain in (("a", 0.9), ("b", 0.02)):
        for instance in range(2):
            row = {
                "panel": "search",
                "level": "",
                "acceptance_spread": 0.5 if level == "a" else 0.0,
                "device_mix": "high-low" if level == "a" else "mid-only",
                "channel_spread": "wide" if level == "a" else "none",
                "num_users": 6,
                "instance": instance,
            }
            for baseline in findings.BASELINES:
                row[f"gain_over_{baseline}"] = gain + 0.01 * instance
            rows.append(row)
    summary = findings.summarise_gains(rows)
    assert len(summary) == 2
    big = next(s for s in summary if s["device_mix"] == "high-low")
    assert big["mean_gain_over_hom-opt"] == pytest.approx(0.905) and big["max_gain_over_hom-opt"] == pytest.approx(0.91)
    text = findings.gain_summary_markdown(summary)
    assert "mean gain >= 88% in 1 of 2 settings" in text
    assert "mean gain < 5% in 1 settings" in text


def test_make_findings_does_not_write_over_the_committed_figures() -> None:
    """`make findings` must not write into the committed docs/findings/: it writes results/findings (gitignored)
    and only `make findings-docs` regenerates the committed figures."""
    import re
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = re.search(r"^findings:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "docs/findings" not in recipe and "results/findings" in recipe
    assert "-o docs/findings" in re.search(r"^findings-docs:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
