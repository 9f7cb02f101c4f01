"""The round-realism experiments (experiments/realism.py) on their quick grid: the command writes
its files, and the findings it documents hold (docs/model.md eq. (1'), (2'), section 5.7)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

from experiments import realism

RTOL = 1e-9


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("realism")
    assert realism.main(["--quick", "-o", str(out)]) == 0
    return out


def test_the_command_writes_every_table_and_figure(outputs: Path) -> None:
    for name in (
        "knee.csv",
        "knee.png",
        "deadline.csv",
        "deadline_mc.csv",
        "deadline.png",
        "energy.csv",
        "energy.md",
        "energy.png",
        "summary.md",
    ):
        path = outputs / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert (outputs / "knee.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _by(rows: list[dict[str, str]], key: str, value: str, solver: str) -> dict[str, dict[float, float]]:
    """population -> {key value: value} for one solver."""
    out: dict[str, dict[float, float]] = defaultdict(dict)
    for r in rows:
        if r["solver"] == solver:
            out[r["population"]][float(r[key])] = float(r[value])
    return out


def test_goodput_never_falls_as_the_knee_grows(outputs: Path) -> None:
    """A larger knee lowers T_ver(N) for every batch (eq. (2')), so every allocation, hence the optimum, gains."""
    rows = _read(outputs / "knee.csv")
    for solver in ("het-opt", "hom-opt"):
        for curve in _by(rows, "knee_tokens", "goodput", solver).values():
            knees = sorted(curve)
            assert len(knees) == len(realism.QUICK.knees)
            for lo, hi in pairwise(knees):
                assert curve[hi] >= curve[lo] * (1 - RTOL), (solver, lo, hi, curve)


def test_a_flat_verification_lengthens_the_optimal_draft(outputs: Path) -> None:
    """Once the knee exceeds every batch (K (L_max + 1) tokens) verification is free per token: the optimum drafts
    at least as long on average as with the affine eq. (2), and longer in at least one population."""
    rows = _read(outputs / "knee.csv")
    lengths = _by(rows, "knee_tokens", "mean_draft_length", "het-opt")
    flat, affine = max(realism.QUICK.knees), 0.0
    assert flat >= 6 * 11
    mean_flat = sum(c[flat] for c in lengths.values()) / len(lengths)
    mean_affine = sum(c[affine] for c in lengths.values()) / len(lengths)
    assert mean_flat >= mean_affine
    assert any(c[flat] > c[affine] for c in lengths.values())


def test_goodput_never_falls_as_the_deadline_loosens(outputs: Path) -> None:
    """The deadline is a constraint of the analytic optimum (eq. (1')): loosening it cannot lower the optimum, and
    the optimum's sync time always meets it."""
    rows = _read(outputs / "deadline.csv")
    for r in rows:
        assert float(r["sync_time_s"]) <= float(r["deadline_s"]) * (1 + 1e-12)
    for solver in ("het-opt", "hom-opt"):
        for curve in _by(rows, "deadline_s", "goodput", solver).values():
            deadlines = sorted(curve)  # inf (no deadline) last
            assert math.isinf(deadlines[-1])
            for lo, hi in pairwise(deadlines):
                assert curve[hi] >= curve[lo] * (1 - RTOL), (solver, lo, hi, curve)


def test_the_oracle_never_loses_an_upload_to_the_deadline(outputs: Path) -> None:
    """het-opt-oracle plans with the round's true channel and the deadline as a constraint, so (without draft-time
    jitter) no upload it schedules misses the deadline; without a deadline nothing is ever dropped."""
    rows = _read(outputs / "deadline_mc.csv")
    assert {r["policy"] for r in rows} == set(realism.MC_POLICIES)
    for r in rows:
        assert float(r["goodput"]) > 0
        if r["policy"] == "het-opt-oracle" or r["deadline"] == "none":
            assert float(r["dropped_fraction"]) == 0.0, r


def test_energy_trade_off_is_a_front(outputs: Path) -> None:
    rows = _read(outputs / "energy.csv")
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["num_users"])].append(r)
    assert ("price", str(realism.QUICK.energy_users)) in groups
    for (method, _), group in groups.items():
        goodput = [float(r["goodput"]) for r in group]
        power = [float(r["device_power_w"]) for r in group]
        # Pareto points are mutually non-dominated, and the flags agree with the definition.
        front = [i for i, r in enumerate(group) if r["pareto"] == "True"]
        assert front
        for i in front:
            for j in front:
                assert not (
                    goodput[j] >= goodput[i]
                    and power[j] <= power[i]
                    and (goodput[j] > goodput[i] or power[j] < power[i])
                ), (method, i, j)
        assert realism.pareto_flags(goodput, power) == [r["pareto"] == "True" for r in group]
        if method == "cap":
            # Server-only decoding costs the devices nothing; a larger cap never lowers the optimum's goodput.
            assert power[0] == 0.0
            assert all(b >= a * (1 - RTOL) for a, b in pairwise(goodput))
        else:
            # A higher energy price never raises the chosen power or goodput (argmax of G - w P, per population).
            assert all(b <= a * (1 + RTOL) for a, b in pairwise(power))
            assert all(b <= a * (1 + RTOL) for a, b in pairwise(goodput))
    # At price 0 the enumeration finds the unconstrained optimum: het-opt with the full L_max must match it.
    k = str(realism.QUICK.energy_users)
    full_cap = groups[("cap", k)][-1]
    free = groups[("price", k)][0]
    assert float(free["price_tokens_per_j"]) == 0.0
    assert float(full_cap["goodput"]) == pytest.approx(float(free["goodput"]), rel=1e-9)
