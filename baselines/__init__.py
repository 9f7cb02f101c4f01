"""Analytic controllers and baselines for Multi-SPIN (docs/model.md sections 3 and 7).

:mod:`baselines.solvers` holds the per-round optimisers (P-hom, P-het) and the
equal-share baselines, listed once in :data:`baselines.solvers.SOLVERS`;
round-by-round policies that act through ``env.step`` build on them.
"""

from baselines import solvers
from baselines.solvers import (
    SOLVERS,
    Allocation,
    BatchResult,
    PackedSystems,
    SolverSpec,
    equal_bandwidth_fixed,
    equal_bandwidth_tuned,
    solve_batch,
    solve_heterogeneous,
    solve_homogeneous,
    solve_packed,
)

__all__ = list(solvers.__all__)
