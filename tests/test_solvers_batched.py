"""The batched solvers (baselines.solvers.solve_batch / solve_packed): one call solves N systems of mixed K,
L_max, acceptance curves, verification knees/profiles and deadlines, each exactly as the single-system solver
does and as good as exhaustive search; bad input is a ValueError (TypeError for objects that are no systems)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_solvers_realism import MAX_GAP, _exhaustive, _instance

from baselines.information import oracle_batch, oracle_params
from baselines.solvers import (
    SOLVERS,
    Allocation,
    PackedSystems,
    solve_batch,
    solve_heterogeneous,
    solve_homogeneous,
    solve_packed,
)
from multispin_env.model import RoundParams

SEEDS = range(50_000, 50_048)  # seeds the realism test and the stress script do not use


def _mixed() -> list[RoundParams]:
    """Realism instances (K 1..4, L_max 3..7, three curve shapes, knees, profiles, deadlines) and base-like
    systems with more users, shuffled together."""
    systems = [_instance(seed) for seed in SEEDS]
    rng = np.random.default_rng(7)
    for k in (6, 16, 40):
        systems.append(
            RoundParams(
                acceptance=rng.uniform(0.5, 0.9, k),
                draft_time=rng.choice([0.004, 0.01, 0.025], k),
                upload_time=10 ** rng.uniform(-4.0, -2.3, k),
                max_draft=int(rng.integers(4, 12)),
            )
        )
    order = rng.permutation(len(systems))
    return [systems[i] for i in order]


def _assert_same(allocation: Allocation, single: Allocation) -> None:
    np.testing.assert_array_equal(allocation.draft_lengths, single.draft_lengths)
    np.testing.assert_array_equal(allocation.bandwidth, single.bandwidth)
    assert (allocation.goodput, allocation.sync_time, allocation.latency) == (
        single.goodput,
        single.sync_time,
        single.latency,
    )


@pytest.mark.parametrize("solver", ["hom-opt", "het-opt"])  # the compiled ones (equal-* solve_batch loops .solve)
def test_one_batched_call_equals_the_single_system_solves(solver: str) -> None:
    systems = _mixed()
    assert not solve_packed(solver[:3], PackedSystems.of(systems)).status.any()
    batch = solve_batch(solver, systems)
    assert len(batch) == len(systems)
    for params, allocation in zip(systems, batch, strict=True):
        _assert_same(allocation, SOLVERS[solver].solve(params))


def test_batched_solutions_match_exhaustive_search() -> None:
    systems = [_instance(seed) for seed in SEEDS]
    het, hom = solve_batch("het-opt", systems), solve_batch("hom-opt", systems)
    for params, het_alloc, hom_alloc in zip(systems, het, hom, strict=True):
        best_het, best_hom = _exhaustive(params)
        assert het_alloc.goodput >= best_het * (1 - MAX_GAP)
        assert het_alloc.goodput <= best_het * (1 + 1e-12)
        assert hom_alloc.goodput >= best_hom * (1 - MAX_GAP)
        assert het_alloc.goodput >= hom_alloc.goodput


def test_uniform_packing_of_a_vector_env_equals_its_oracle_systems() -> None:
    envs = gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=4, resample_population=True)
    envs.reset(seed=1)
    result = solve_packed("het", PackedSystems.uniform(*oracle_batch(envs)))
    k = envs.unwrapped.core.num_users
    for i in range(4):
        single = solve_heterogeneous(oracle_params(envs, i))
        np.testing.assert_array_equal(result.draft_lengths.reshape(-1, k)[i], single.draft_lengths)
        assert result.goodput[i] == single.goodput
    envs.close()


def test_a_system_beyond_float_range_is_named_in_a_batch() -> None:
    fine = RoundParams(acceptance=[0.6, 0.8], draft_time=[0.004, 0.01], upload_time=[1e-3, 1e-3])
    slow = RoundParams(acceptance=[0.6, 0.9], draft_time=[0.004, 0.004], upload_time=[1e-3, 1e308])
    for solver, single in (("het-opt", solve_heterogeneous), ("hom-opt", solve_homogeneous)):
        for got, params in zip(solve_batch(solver, [fine, slow]), (fine, slow), strict=True):
            _assert_same(got, single(params))  # the slow user does not draft: no overflow
    with pytest.raises(ValueError, match=r"overflows float64.*upload_time"):  # the fixed baseline drafts with it
        solve_batch("equal-fixed", [fine, slow])


def test_bad_input_is_refused_with_a_clear_error() -> None:
    params = RoundParams(acceptance=[0.6], draft_time=[0.004], upload_time=[1e-3])
    with pytest.raises(ValueError, match="unknown solver 'fast-opt'"):
        solve_batch("fast-opt", [params])
    with pytest.raises(ValueError, match="at least one RoundParams"):
        solve_batch("het-opt", [])
    with pytest.raises(TypeError, match="sequence of RoundParams"):
        solve_batch("het-opt", params)
    with pytest.raises(TypeError, match=r"systems\[1\] must be a multispin_env.model.RoundParams"):
        solve_batch("het-opt", [params, {"acceptance": [0.5]}])
    with pytest.raises(ValueError, match="problem must be 'hom' or 'het'"):
        solve_packed("P-het", PackedSystems.of([params]))
    template = params
    good = {"draft_time": [[0.004]], "upload_time": [[1e-3]], "survival": np.full((1, 1, 10), 0.5)}
    assert solve_packed("het", PackedSystems.uniform(template, **good)).status.tolist() == [0]
    for field, value, message in (
        ("draft_time", [[0.004, 0.01]], "shape"),
        ("upload_time", [[-1e-3]], "> 0 s"),
        ("draft_time", [[np.nan]], "finite"),
        ("survival", np.full((1, 1, 10), 1.5), "probabilities"),
        ("survival", np.linspace(0.1, 0.9, 10).reshape(1, 1, 10), "non-increasing"),
        ("draft_time", np.zeros((0, 1)), "shape"),
    ):
        with pytest.raises(ValueError, match=message):
            PackedSystems.uniform(template, **{**good, field: value})


def test_the_compiled_solvers_cache_follows_their_source(tmp_path, monkeypatch) -> None:
    """A compiled module outside the package is cached under the package's cache (which follows model.py and
    the other compiled sources) in a directory named after its own source: editing either gives a new one."""
    import multispin_env._numba as jit

    monkeypatch.setattr(jit, "CACHE_DIR", tmp_path)
    source = tmp_path / "kernels.py"
    source.write_text("x = 1\n")
    first = jit._module_cache_dir(source)
    assert first is not None and first.parent == tmp_path and first.is_dir()
    assert jit._module_cache_dir(source) == first
    source.write_text("x = 2\n")
    second = jit._module_cache_dir(source)
    assert second != first and second.is_dir() and not first.exists()  # the stale one is removed
    monkeypatch.setattr(jit, "CACHE_DIR", None)
    assert jit._module_cache_dir(source) is None


def test_importing_baselines_compiles_nothing() -> None:
    """The solvers compile on their first call, not at ``import baselines`` (cold compiles take tens of s)."""
    import subprocess
    import sys

    code = "import sys, baselines, baselines.policies; print('baselines._solver_kernels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_malformed_pack_is_refused_before_the_compiled_code_reads_it() -> None:
    """The compiled solvers do not bound-check: PackedSystems checks its layout (ValueError, no crash)."""
    import dataclasses

    packed = PackedSystems.of(
        [
            RoundParams(acceptance=[0.6, 0.8], draft_time=[0.004, 0.01], upload_time=[1e-3] * 2),
            RoundParams(acceptance=[0.7], draft_time=[0.01], upload_time=[2e-3], max_draft=4),
        ]
    )
    fields = {f.name: getattr(packed, f.name) for f in dataclasses.fields(packed)}
    for change, message in (
        ({"user_start": np.array([0, 2, 5])}, "user_start"),
        ({"user_start": np.array([0.0, 2.0, 3.0])}, "integer"),
        ({"max_draft": np.array([10, 11])}, "token_table"),
        ({"profile_start": np.array([0, 1, 4])}, "profile"),
        ({"deadline": np.array([np.inf])}, "one entry per system"),
        ({"upload_time": np.array([1e-3, np.inf, 2e-3])}, "finite"),
        ({"draft_time": np.array([0.004, 0.0, 0.01])}, "> 0 s"),
        ({"token_table": fields["token_table"].astype(str)}, "real numbers"),
    ):
        with pytest.raises(ValueError, match=message):
            PackedSystems(**{**fields, **change})
    assert not solve_packed("het", PackedSystems(**fields)).status.any()
