"""multispin-env: Multi-SPIN multiuser speculative LLM inference at the edge as Gymnasium environments.

The model (``model.md``) lives in :mod:`multispin_env.model`, the channel in
:mod:`multispin_env.channel`, presets in :mod:`multispin_env.scenarios`.
"""

from multispin_env.model import RoundParams, expected_goodput
from multispin_env.scenarios import SCENARIOS, Scenario, get_scenario

__version__ = "0.1.0"

__all__ = ["RoundParams", "expected_goodput", "Scenario", "SCENARIOS", "get_scenario", "__version__"]
