"""multispin-env: Multi-SPIN multiuser speculative LLM inference at the edge as Gymnasium environments.

The model (``model.md``) lives in :mod:`multispin_env.model`, the channel in
:mod:`multispin_env.channel`, presets in :mod:`multispin_env.scenarios`.
Importing the package registers ``MultiSpin-Homogeneous-v0`` and
``MultiSpin-Heterogeneous-v0`` (:mod:`multispin_env.registration`).
"""

from multispin_env.envs import MultiSpinEnv
from multispin_env.model import RoundParams, expected_goodput
from multispin_env.registration import ENV_IDS, register_envs
from multispin_env.scenarios import SCENARIOS, Scenario, get_scenario
from multispin_env.vector_env import MultiSpinVectorEnv

__version__ = "0.1.0"

register_envs()

__all__ = [
    "ENV_IDS",
    "MultiSpinEnv",
    "MultiSpinVectorEnv",
    "RoundParams",
    "expected_goodput",
    "register_envs",
    "Scenario",
    "SCENARIOS",
    "get_scenario",
    "__version__",
]
