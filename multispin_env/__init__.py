"""multispin-env: Multi-SPIN multiuser speculative LLM inference at the edge as Gymnasium environments.

The model is docs/model.md. Its formulas live once in :mod:`multispin_env.model` (the round) and
:mod:`multispin_env.channel` (the uplink), acceptance processes in :mod:`multispin_env.acceptance`, presets in
:mod:`multispin_env.scenarios`, settings in :mod:`multispin_env.config`; :mod:`multispin_env.core` holds the state
of a batch of systems and :mod:`multispin_env._kernels` the compiled round that advances it;
:mod:`multispin_env.envs` and :mod:`multispin_env.vector_env` are the Gymnasium faces. Nothing here imports the
controllers (``baselines``) or the agents. Importing the package registers ``MultiSpin-Homogeneous-v0`` and
``MultiSpin-Heterogeneous-v0`` (:mod:`multispin_env.registration`).
"""

from multispin_env.config import EnvConfig, default_config
from multispin_env.envs import MultiSpinEnv
from multispin_env.model import RoundParams, expected_goodput
from multispin_env.registration import ENV_IDS, register_envs
from multispin_env.scenarios import SCENARIOS, Scenario, get_scenario
from multispin_env.vector_env import MultiSpinVectorEnv

__version__ = "0.2.0"

register_envs()

__all__ = [
    "ENV_IDS",
    "EnvConfig",
    "default_config",
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
