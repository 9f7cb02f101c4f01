"""Text and image renderings of one system's last round (the envs' ``render_mode`` "ansi" and "rgb_array")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from multispin_env.core import MultiSpinCore

__all__ = ["render_ansi", "render_figure", "render_rgb"]


def render_ansi(core: MultiSpinCore, index: int = 0) -> str:
    """A per-user text table of system ``index``'s last round and of the true state of the next one."""
    outcome = core.last_outcome
    lines = [f"clock {core.clock[index]:8.3f} s / horizon {core.config.horizon:g} s"]
    if outcome is None:
        lines.append("(no round played yet)")
    else:
        lines.append(
            f"round latency {outcome.latency[index] * 1e3:8.2f} ms = sync {outcome.sync_time[index] * 1e3:.2f}"
            f" + verify {outcome.verify_time[index] * 1e3:.2f} + downlink {core.scenario.downlink_time * 1e3:.2f} ms;"
            f" tokens {int(outcome.tokens[index].sum())}"
        )
    lines.append("      | next round: true state                        | last round")
    lines.append(" user | t_k ms | e_k b/s/Hz | c_k ms | a_k   | a_hat | L_k | b_k   | A_k | n_k")
    estimate = core.acceptance_estimate()[index]
    for user in range(core.num_users):
        row = (
            f" {user:4d} | {core.draft_time[index, user] * 1e3:6.1f} |"
            f" {core.spectral_efficiency[index, user]:10.3f} | {core.upload_time[index, user] * 1e3:6.2f} |"
            f" {core.process.rate[index, user]:.3f} | {estimate[user]:.3f} |"
        )
        if outcome is None:
            row += "   - |     - |   - |   -"
        else:
            row += (
                f" {int(outcome.draft_lengths[index, user]):3d} | {outcome.bandwidth[index, user]:.3f} |"
                f" {int(outcome.accepted[index, user]):3d} | {int(outcome.tokens[index, user]):3d}"
            )
        lines.append(row)
    return "\n".join(lines)


def render_figure(core: MultiSpinCore, index: int = 0):  # -> matplotlib.figure.Figure
    """The matplotlib Figure of :func:`render_rgb` (needs matplotlib, the ``render`` extra): draft lengths and
    tokens per user (left), bandwidth shares (right); before the first round a note instead of empty axes."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        from gymnasium.error import DependencyNotInstalled

        raise DependencyNotInstalled(
            'rgb_array rendering needs matplotlib: pip install "multispin-env[render]"'
        ) from exc
    users = np.arange(core.num_users)
    outcome = core.last_outcome
    # constrained layout: each panel's labels get their own room (no y-label over the other panel)
    figure = Figure(figsize=(6.4, 3.6), dpi=80, layout="constrained")
    left, right = figure.subplots(1, 2)
    if outcome is None:  # before the first round: say so instead of drawing empty axes
        for axes in (left, right):
            axes.text(0.5, 0.5, "no round played yet", ha="center", va="center", transform=axes.transAxes)
    else:
        left.bar(users - 0.2, outcome.draft_lengths[index], width=0.4, label="draft length L_k")
        left.bar(users + 0.2, outcome.tokens[index], width=0.4, label="tokens n_k")
        right.bar(users, outcome.bandwidth[index], color="tab:green")
        left.legend(loc="upper right", fontsize="small")
    left.set_xlabel("user")
    left.set_ylabel("tokens")
    left.set_ylim(0, core.max_draft + 1)
    right.set_xlabel("user")
    right.set_ylabel("bandwidth share b_k")
    right.set_ylim(0, 1)
    figure.suptitle(f"clock {core.clock[index]:.3f} s", fontsize="small")
    return figure


def render_rgb(core: MultiSpinCore, index: int = 0) -> NDArray[np.uint8]:
    """An RGB image (H, W, 3) of system ``index``'s last round (needs matplotlib, the ``render`` extra)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(render_figure(core, index))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
