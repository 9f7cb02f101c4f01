"""Experiments on top of the env package and its controllers.

Figure and study scripts live here, outside :mod:`multispin_env`, so the
environment never depends on its controllers (:mod:`baselines`, :mod:`agents`).

- :mod:`experiments.findings` -- the paper's findings, figures 1-6 (``python -m experiments.findings``).
"""
