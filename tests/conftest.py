"""Shared test configuration: derandomised hypothesis so seeded runs are reproducible."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "multispin",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("multispin")
