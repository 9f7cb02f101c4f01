"""RL agents for the MultiSpin envs: rl-zoo3-format hyperparameters, training, evaluation and the benchmark.

- :mod:`agents.hyperparams`: YAML files ``agents/hyperparams/{algo}.yml`` keyed by env id;
- :mod:`agents.factory`: envs, VecNormalize, models, the rl-zoo3 run layout;
- :mod:`agents.wrappers`: ``VecHorizonTermination`` (the return becomes goodput x horizon);
- :mod:`agents.vec_env`: SB3 adapter for numpy-batched Gymnasium vector envs (``--vec-env batched``);
- :mod:`agents.evaluation`: the one evaluation loop (goodput, draft length, bandwidth concentration);
- :mod:`agents.callbacks`: agent vs analytic-policy goodput during training;
- :mod:`agents.train` (``train.py``): the training command line;
- :mod:`agents.benchmark`: every policy on the same seeds, CSV/JSON/PNG;
- :mod:`agents.demo`: ``make demo``.
"""

from agents.hyperparams import ALGOS

__all__ = ["ALGOS"]
