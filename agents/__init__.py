"""RL agents for the MultiSpin envs, trained through rl-zoo3 (hyperparameters in ``agents/hyperparams/{algo}.yml``).

What is ours (rl-zoo3, SB3 and sb3-contrib provide the rest):

- :mod:`agents.train` (``train.py``, ``multispin-train``): rl-zoo3's ExperimentManager with our extension points;
- :mod:`agents.vec_env`: SB3 adapter for the compiled, batched Gymnasium vector envs (``--vec-env batched``);
- :mod:`agents.wrappers`: ``VecHorizonTermination`` (the return becomes goodput x horizon), ``VecStochasticRounding``
  (unbiased length rounding during training), ``EpisodeGoodputReward``;
- :mod:`agents.residual`: the residual agent (bounded corrections to an analytic controller's allocation);
- :mod:`agents.callbacks`: ``GoodputEvalCallback``, the agent against the analytic policies on paired seeds;
- :mod:`agents.search`: the ``--optimize`` search spaces;
- :mod:`agents.evaluation`: the one evaluation loop (goodput, draft length, bandwidth concentration);
- :mod:`agents.runs`: which saved model of a run folder to load;
- :mod:`agents.benchmark` (``multispin-benchmark``), :mod:`agents.leaderboard` (``multispin-leaderboard``), :mod:`agents.demo` (``multispin-demo``), :mod:`agents.cli` (``multispin-list``).
"""
