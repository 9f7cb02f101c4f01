"""Shared test configuration: derandomised hypothesis so seeded runs are reproducible; SB3's logger folders in
pytest's temporary directory."""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "multispin",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("multispin")


@pytest.fixture(autouse=True, scope="session")
def _sb3_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every SB3 model trained without ``tensorboard_log`` makes an empty ``SB3-<date>`` folder in the system's
    temporary directory (``SB3_LOGDIR`` unset); a test session made ~100 of them in /tmp. Point SB3 (and the CLI
    runs the tests start, which inherit the environment) at one folder that pytest cleans up."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3")))
    yield
    patch.undo()
