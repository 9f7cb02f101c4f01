"""Goodput evaluation against the analytic policies, as an SB3 ``EvalCallback`` named in the YAML ``callback:`` key.

At the start of training every analytic policy valid for the env is evaluated
once on the evaluation seeds (they do not learn, so once is enough); then every
``eval_freq`` calls the agent is evaluated on the same seeds and the same env
config (paired seeds, :mod:`agents.evaluation`). The model with the best mean
goodput is saved as ``best_model.zip`` (with ``{env}/vecnormalize_best.pkl``); on a suite task of another
metric (``multispin_env.suite.Task.metric``: completion time, deadline share, fairness) the best on that metric,
so that the model a task is scored with is the one its own metric picks.
``evaluations.npz`` holds SB3's keys and ours:

==================== ============== ====================================================
key                  shape          meaning
==================== ============== ====================================================
timesteps            (E,)           env steps at each evaluation (SB3's)
results              (E, N)         episode returns (scaled tokens; SB3's)
ep_lengths           (E, N)         rounds per episode (SB3's)
goodput              (E, N)         agent's per-episode goodput, tokens/s
selection            (E,)           the value that picks the best model (higher is better)
mean_draft_length    (E,)           agent's mean L_k, tokens
bandwidth_hhi        (E,)           agent's mean Herfindahl index of the shares
wall_time            (E,)           s since training started
seeds                (N,)           evaluation seeds
baseline_names       (B,)           analytic policy names
baseline_goodput     (B, N)         their per-episode goodput, tokens/s
==================== ============== ====================================================

TensorBoard gets ``eval/goodput`` (tokens/s), ``eval/goodput_share_of_oracle``,
``eval/mean_draft_length``, ``eval/bandwidth_hhi`` and ``baselines/{name}`` (tokens/s).
``train.py`` configures the env, seeds and paths (:meth:`GoodputEvalCallback.configure`);
under plain ``python -m rl_zoo3.train`` the callback builds its env from the training env's spec.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import flatdim
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.vec_env import DummyVecEnv, unwrap_vec_wrapper

from agents.evaluation import (
    AgentPolicy,
    EvaluationResult,
    evaluate,
    evaluate_analytic,
    oracle_name,
    suite_metric,
)
from agents.residual import ResidualPolicy, VecResidual
from agents.runs import write_atomic
from agents.wrappers import check_metric_name, task_metric
from baselines.protocol import Policy

#: First evaluation seed (+ 1000 * the training seed), away from the training envs' seeds.
EVAL_SEED_OFFSET = 10_000


def check_agent_fits(
    model: Any, env: gym.Env, vec_normalize: Any = None, what: str = "the agent", extra_observation: int = 0
) -> None:
    """ValueError (one line) unless ``model`` can play ``env``: a user-set model (agents/userset.py) any number of
    users with its training layout, any other model only its training observation and action shapes.

    :param extra_observation: entries the agent observes beyond the env's observation (a residual agent's
        controller action, agents/residual.py)
    """
    from agents.userset import check_layout, check_normalisation, is_userset

    if is_userset(model) and not extra_observation:
        policy = getattr(model, "policy", model)
        check_layout(policy.observation_fields, policy.homogeneous, env, what)
        check_normalisation(vec_normalize, env.observation_space.shape, what)
        return
    expected = {
        "observation": (flatdim(env.observation_space) + extra_observation,),  # 1-D Box: its size
        "action": env.action_space.shape,
    }
    for kind in ("observation", "action"):
        mine, theirs = getattr(model, f"{kind}_space").shape, expected[kind]
        if mine != theirs:
            raise ValueError(
                f"{what} has {kind} shape {mine}, the env gives {theirs} (another id or num_users? "
                "only user-set agents run at another K)"
            )


def selection_value(result: EvaluationResult, metric: str) -> float:
    """An evaluation's value on ``metric`` (:func:`agents.evaluation.suite_metric`), negated where lower is better
    (``multispin_env.suite.LOWER_IS_BETTER``), so that the best model has the largest; NaN when the metric is
    undefined (no request completed or decided yet)."""
    from multispin_env import suite

    value = suite_metric(result, metric)
    return -value if metric in suite.LOWER_IS_BETTER else value


class _NoEnvYet(DummyVecEnv):
    """Placeholder: EvalCallback wants a VecEnv at construction, rl-zoo3 builds YAML callbacks without one."""

    def __init__(self) -> None:  # deliberately does not build any env
        self.envs = []


class GoodputEvalCallback(EvalCallback):
    """Periodic goodput evaluation of the agent against the analytic policies (same env config, same seeds).

    "Reward" in SB3's sense (``last_mean_reward``, ``best_mean_reward``) is the selection value here: the mean
    goodput (tokens/s), or the selection metric's value, negated where lower is better (:func:`selection_value`).

    :param baselines: analytic policies evaluated once (None: all valid for the env; ``[]``: none)
    :param n_eval_episodes: episodes per evaluation, one per seed
    :param eval_freq: evaluate every ``eval_freq`` callback calls (= env steps / n_envs)
    :param first_seed: seed of the first evaluation episode (None: 10000 + 1000 * training seed)
    :param verbose: 1 prints each evaluation
    :param metric: what picks ``best_model.zip``: ``"auto"`` (the env's suite task's metric, goodput for any other
        id) or a key of ``multispin_env.suite.METRICS`` (:func:`agents.wrappers.task_metric`)
    """

    def __init__(
        self,
        baselines: Sequence[str] | None = None,
        n_eval_episodes: int = 5,
        eval_freq: int = 10_000,
        first_seed: int | None = None,
        verbose: int = 1,
        metric: str = "auto",
    ) -> None:
        super().__init__(_NoEnvYet(), n_eval_episodes=n_eval_episodes, eval_freq=eval_freq, verbose=verbose)
        self.requested_metric = check_metric_name(metric, "GoodputEvalCallback metric")
        #: The metric that picks the best model: as requested until the evaluation env is known, then resolved
        #: from its id ("auto": the suite task's metric) by ``configure`` or, in plain rl-zoo3, ``_init_callback``.
        self.metric = self.requested_metric
        self.selection: list[float] = []
        self.baseline_names = None if baselines is None else tuple(baselines)
        self.first_seed = first_seed
        self.single_env: gym.Env | None = None
        self.params_path: Path | None = None
        self.baseline_results: dict[str, EvaluationResult] = {}
        self.history: list[EvaluationResult] = []
        self.wall_time: list[float] = []
        self._t0 = 0.0
        self._last_eval_step = -1

    def configure(
        self,
        env: gym.Env,
        eval_freq: int,
        n_eval_episodes: int,
        seed: int,
        log_path: str | Path | None,
        params_path: str | Path | None,
    ) -> None:
        """Set what train.py knows: the single eval env, frequency (calls), episodes, training seed and paths."""
        self.single_env = env
        self.eval_env = DummyVecEnv([lambda: env])
        self.eval_freq = max(int(eval_freq), 1)
        self.n_eval_episodes = int(n_eval_episodes)
        if self.first_seed is None:
            self.first_seed = EVAL_SEED_OFFSET + 1000 * int(seed)
        self.log_path = str(Path(log_path) / "evaluations") if log_path is not None else None
        self.best_model_save_path = str(log_path) if log_path is not None else None
        self.params_path = Path(params_path) if params_path is not None else None
        self._resolve_metric()

    def _resolve_metric(self) -> None:
        self.metric = task_metric(self.eval_env, self.requested_metric, "GoodputEvalCallback metric")

    def check_agent(self, model: Any) -> None:
        """ValueError (one line) unless ``model`` can play the evaluation env (:func:`check_agent_fits`)."""
        assert self.single_env is not None
        residual = unwrap_vec_wrapper(model.get_env(), VecResidual) is not None  # also observes the controller's action
        check_agent_fits(
            model,
            self.single_env,
            model.get_vec_normalize_env(),
            "the agent",
            flatdim(self.single_env.action_space) if residual else 0,
        )

    @property
    def seeds(self) -> list[int]:
        first = self.first_seed if self.first_seed is not None else EVAL_SEED_OFFSET
        return [first + i for i in range(self.n_eval_episodes)]

    # -- SB3 hooks -------------------------------------------------------------------------------
    def _init_callback(self) -> None:
        if self.single_env is None:
            # Plain rl-zoo3: rebuild the training env (id and kwargs) from its spec.
            spec = self.training_env.get_attr("spec", [0])[0]
            single_env = gym.make(spec.id, **{k: v for k, v in spec.kwargs.items() if k != "autoreset_mode"})
            self.single_env = single_env
            self.eval_env = DummyVecEnv([lambda: single_env])
            self.eval_freq = max(self.eval_freq // self.training_env.num_envs, 1)
        self._resolve_metric()
        self.check_agent(self.model)
        # Not EvalCallback's: it warns that the (placeholder) eval VecEnv differs from the training env.
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.init_callback(self.model)

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        assert self.single_env is not None
        if not self.baseline_results:
            self.baseline_results = evaluate_analytic(self.single_env, self.seeds, self.baseline_names)
            if self.verbose:
                for name, res in self.baseline_results.items():
                    mean, half = res.goodput_ci()
                    print(f"baseline {name:<22} goodput {mean:8.2f} +- {half:.2f} tokens/s")
        if self.num_timesteps == 0:
            self._evaluate()

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            return self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if self._last_eval_step != self.num_timesteps:
            self._evaluate()

    # -- evaluation ------------------------------------------------------------------------------
    @property
    def oracle(self) -> str | None:
        return oracle_name(list(self.baseline_results))

    def share_of_oracle(self, result: EvaluationResult) -> float | None:
        """Mean agent goodput / mean oracle goodput on the same seeds (None without an oracle)."""
        if self.oracle is None:
            return None
        ref = float(self.baseline_results[self.oracle].goodputs.mean())
        return float(result.goodputs.mean()) / ref if ref > 0 else None

    def _evaluate(self) -> bool:
        assert self.single_env is not None
        # VecNormalize.normalize_obs reads the live training statistics: no sync needed.
        policy: Policy = AgentPolicy(self.model, self.model.get_vec_normalize_env(), name="agent")
        training_env = self.model.get_env()
        residual = None if training_env is None else unwrap_vec_wrapper(training_env, VecResidual)
        if residual is not None:  # the agent corrects an analytic controller (agents/residual.py)
            policy = ResidualPolicy(policy, self.single_env, name="agent", **residual.settings())
        result = evaluate(self.single_env, policy, self.seeds, name="agent")
        self._last_eval_step = self.num_timesteps
        self.history.append(result)
        self.evaluations_timesteps.append(int(self.num_timesteps))
        self.evaluations_results.append([e.episode_return for e in result.episodes])
        self.evaluations_length.append([e.rounds for e in result.episodes])
        self.wall_time.append(time.perf_counter() - self._t0)
        mean, half = result.goodput_ci()
        value = selection_value(result, self.metric)
        self.selection.append(value)
        self.last_mean_reward = value
        self.logger.record("eval/goodput", mean)
        if self.metric != "goodput":
            self.logger.record(f"eval/{self.metric}", suite_metric(result, self.metric))
        self.logger.record("eval/mean_reward", float(np.mean(self.evaluations_results[-1])))
        self.logger.record("eval/mean_ep_length", float(np.mean(self.evaluations_length[-1])))
        self.logger.record("eval/mean_draft_length", result.mean_draft_length)
        self.logger.record("eval/bandwidth_hhi", result.bandwidth_hhi)
        for name, res in self.baseline_results.items():
            self.logger.record(f"baselines/{name}", float(res.goodputs.mean()))
        share = self.share_of_oracle(result)
        if share is not None:
            self.logger.record("eval/goodput_share_of_oracle", share)
        if self.verbose:
            extra = f" ({100 * share:.1f}% of {self.oracle})" if share is not None else ""
            if self.metric != "goodput":
                extra += f", {self.metric} {suite_metric(result, self.metric):.4g}"
            print(f"eval at {self.num_timesteps} steps: goodput {mean:.2f} +- {half:.2f} tokens/s{extra}")
        self.logger.dump(self.num_timesteps)
        self._save()
        continue_training = True
        if value > self.best_mean_reward:  # NaN (no request decided yet) is never a new best
            self.best_mean_reward = value
            self._save_best()
            if self.callback_on_new_best is not None:
                continue_training = self.callback_on_new_best.on_step()
        if self.callback is not None:
            continue_training = continue_training and self._on_event()
        return continue_training

    def _save(self) -> None:
        if self.log_path is None:
            return
        Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
        names = list(self.baseline_results)
        data: dict[str, Any] = {
            "timesteps": np.array(self.evaluations_timesteps, dtype=np.int64),
            "results": np.array(self.evaluations_results),
            "ep_lengths": np.array(self.evaluations_length, dtype=np.int64),
            "goodput": np.array([r.goodputs for r in self.history]),
            "selection": np.array(self.selection),
            "selection_metric": np.array(self.metric),
            "mean_draft_length": np.array([r.mean_draft_length for r in self.history]),
            "bandwidth_hhi": np.array([r.bandwidth_hhi for r in self.history]),
            "wall_time": np.array(self.wall_time),
            "seeds": np.array(self.seeds, dtype=np.int64),
            "baseline_names": np.array(names, dtype=str),
            "baseline_goodput": np.array([self.baseline_results[n].goodputs for n in names]).reshape(
                len(names), len(self.seeds)
            ),
            "baseline_draft_length": np.array([self.baseline_results[n].mean_draft_length for n in names]),
            "baseline_hhi": np.array([self.baseline_results[n].bandwidth_hhi for n in names]),
        }
        buffer = io.BytesIO()
        np.savez(buffer, **data)
        write_atomic(f"{self.log_path}.npz", buffer.getvalue())  # read back by until-flat: never half written

    def _save_best(self) -> None:
        if self.best_model_save_path is None:
            return
        Path(self.best_model_save_path).mkdir(parents=True, exist_ok=True)
        self.model.save(str(Path(self.best_model_save_path) / "best_model.zip"))
        vec_normalize = self.model.get_vec_normalize_env()
        if vec_normalize is not None and self.params_path is not None:
            self.params_path.mkdir(parents=True, exist_ok=True)
            vec_normalize.save(str(self.params_path / "vecnormalize_best.pkl"))
