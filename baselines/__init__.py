"""Analytic controllers and baselines for Multi-SPIN (docs/model.md sections 3 and 7).

:mod:`baselines.solvers` holds the per-round optimisers (P-hom, P-het) and the
equal-share baselines, listed once in :data:`baselines.solvers.SOLVERS`;
round-by-round policies that act through ``env.step`` build on them.
"""

from baselines import solvers
from baselines.solvers import *  # noqa: F403 - the solvers' public names, listed once in solvers.__all__

__all__ = list(solvers.__all__)
