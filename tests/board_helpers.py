"""Fake per-job leaderboard results, shared by the leaderboard and verdict tests."""

from __future__ import annotations

from typing import Any

from multispin_env.suite import normalized_score, reference_goodputs


def fake_result(task: str, entry: str, score: float, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """One job's result as the leaderboard writes it: ``entry`` on ``task`` at normalized ``score`` (an analytic
    controller without ``seed``, a learned run with one); ``extra`` keys added (e.g. a run's convergence record)."""
    low, high = reference_goodputs(task)
    goodput = low + score / 100 * (high - low)
    return {
        "task": task,
        "entry": entry,
        "kind": "analytic" if seed is None else "agent",
        "seed": seed,
        "goodput": goodput,
        "score": normalized_score(task, goodput),
        **extra,
    }
