"""Training callback: evaluate the agent's goodput next to the analytic policies' goodput on the same seeds.

At the start of training every analytic policy valid for the env is evaluated
once on the evaluation seeds (they do not learn, so once is enough); then every
``eval_freq`` env steps the agent is evaluated on the same seeds with the same
env config, through :func:`agents.evaluation.evaluate`. Everything is written
to ``{log_path}/evaluations.npz``:

==================== ============== ====================================================
key                  shape          meaning
==================== ============== ====================================================
timesteps            (E,)           env steps at each evaluation (SB3 EvalCallback's)
results              (E, N)         episode returns (scaled tokens; SB3's)
ep_lengths           (E, N)         rounds per episode (SB3's)
goodput              (E, N)         agent's per-episode goodput, tokens/s
mean_draft_length    (E,)           agent's mean L_k, tokens
bandwidth_hhi        (E,)           agent's mean Herfindahl index of the shares
wall_time            (E,)           s since training started
seeds                (N,)           evaluation seeds
baseline_names       (B,)           analytic policy names
baseline_goodput     (B, N)         their per-episode goodput, tokens/s
==================== ============== ====================================================

TensorBoard gets ``eval/goodput`` (tokens/s), ``eval/goodput_share_of_oracle``,
``eval/mean_draft_length``, ``eval/bandwidth_hhi`` and one flat line per
analytic policy, ``baselines/{name}`` (tokens/s).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.evaluation import AgentPolicy, EvaluationResult, evaluate, evaluate_analytic, oracle_name


class GoodputEvalCallback(BaseCallback):
    """Periodic goodput evaluation of the agent against the analytic policies (same env config, same seeds).

    :param eval_env: a single (``gym.make``'d) env with the training env config
    :param seeds: evaluation seeds, one episode each
    :param eval_freq: evaluate every ``eval_freq`` callback calls (= env steps / n_envs)
    :param log_path: folder of ``evaluations.npz`` (None: not written)
    :param best_model_save_path: folder of ``best_model.zip`` (best mean goodput; None: not saved)
    :param env_name: rl-zoo3 env folder name, for the best model's VecNormalize statistics
    :param baselines: analytic policies to evaluate once (None: all valid for the env; ``()``: none)
    :param eval_at_start: also evaluate before the first step (timestep 0 of a fresh model)
    """

    def __init__(
        self,
        eval_env: gym.Env,
        seeds: Sequence[int],
        eval_freq: int,
        log_path: str | Path | None = None,
        best_model_save_path: str | Path | None = None,
        env_name: str | None = None,
        baselines: Sequence[str] | None = None,
        eval_at_start: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose=verbose)
        self.eval_env = eval_env
        self.seeds = [int(s) for s in seeds]
        self.eval_freq = max(int(eval_freq), 1)
        self.log_path = Path(log_path) if log_path is not None else None
        self.best_model_save_path = Path(best_model_save_path) if best_model_save_path is not None else None
        self.env_name = env_name
        self.baseline_names = tuple(baselines) if baselines is not None else None
        self.eval_at_start = eval_at_start
        self.baseline_results: dict[str, EvaluationResult] = {}
        self.history: list[EvaluationResult] = []
        self.timesteps: list[int] = []
        self.wall_time: list[float] = []
        self.best_goodput = -np.inf
        self._t0 = 0.0
        self._last_eval_step = -1

    # -- SB3 hooks -------------------------------------------------------------------------------
    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        if not self.baseline_results:
            self.baseline_results = evaluate_analytic(self.eval_env, self.seeds, self.baseline_names)
            if self.verbose:
                for name, res in self.baseline_results.items():
                    mean, half = res.goodput_ci()
                    print(f"baseline {name:<18} goodput {mean:8.2f} +- {half:.2f} tokens/s")
        if self.eval_at_start and self.num_timesteps == 0:
            self._evaluate()

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq == 0:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if self._last_eval_step != self.num_timesteps:
            self._evaluate()

    # -- evaluation ------------------------------------------------------------------------------
    @property
    def oracle(self) -> str | None:
        return oracle_name(list(self.baseline_results))

    def _evaluate(self) -> None:
        policy = AgentPolicy(self.model, self.model.get_vec_normalize_env(), name="agent")
        result = evaluate(self.eval_env, policy, self.seeds, name="agent")
        self._last_eval_step = self.num_timesteps
        self.history.append(result)
        self.timesteps.append(int(self.num_timesteps))
        self.wall_time.append(time.perf_counter() - self._t0)
        mean, half = result.goodput_ci()
        self.logger.record("eval/goodput", mean)
        self.logger.record("eval/mean_reward", float(np.mean([e.episode_return for e in result.episodes])))
        self.logger.record("eval/mean_ep_length", float(np.mean([e.rounds for e in result.episodes])))
        self.logger.record("eval/mean_draft_length", result.mean_draft_length)
        self.logger.record("eval/bandwidth_hhi", result.bandwidth_hhi)
        for name, res in self.baseline_results.items():
            self.logger.record(f"baselines/{name}", float(res.goodputs.mean()))
        share = self.share_of_oracle(result)
        if share is not None:
            self.logger.record("eval/goodput_share_of_oracle", share)
        if self.verbose:
            extra = f" ({100 * share:.1f}% of {self.oracle})" if share is not None else ""
            print(f"eval at {self.num_timesteps} steps: goodput {mean:.2f} +- {half:.2f} tokens/s{extra}")
        self.logger.dump(self.num_timesteps)
        self._save()
        if mean > self.best_goodput:
            self.best_goodput = mean
            self._save_best()

    def share_of_oracle(self, result: EvaluationResult) -> float | None:
        """Mean agent goodput / mean oracle goodput on the same seeds (None without an oracle)."""
        oracle = self.oracle
        if oracle is None:
            return None
        ref = float(self.baseline_results[oracle].goodputs.mean())
        return float(result.goodputs.mean()) / ref if ref > 0 else None

    def _save(self) -> None:
        if self.log_path is None:
            return
        self.log_path.mkdir(parents=True, exist_ok=True)
        names = list(self.baseline_results)
        data: dict[str, Any] = {
            "timesteps": np.array(self.timesteps, dtype=np.int64),
            "results": np.array([[e.episode_return for e in r.episodes] for r in self.history]),
            "ep_lengths": np.array([[e.rounds for e in r.episodes] for r in self.history], dtype=np.int64),
            "goodput": np.array([r.goodputs for r in self.history]),
            "mean_draft_length": np.array([r.mean_draft_length for r in self.history]),
            "bandwidth_hhi": np.array([r.bandwidth_hhi for r in self.history]),
            "wall_time": np.array(self.wall_time),
            "seeds": np.array(self.seeds, dtype=np.int64),
            "baseline_names": np.array(names, dtype=str),
            "baseline_goodput": np.array([self.baseline_results[n].goodputs for n in names]).reshape(len(names), len(self.seeds)),
            "baseline_draft_length": np.array([self.baseline_results[n].mean_draft_length for n in names]),
            "baseline_hhi": np.array([self.baseline_results[n].bandwidth_hhi for n in names]),
        }
        np.savez(self.log_path / "evaluations.npz", **data)

    def _save_best(self) -> None:
        if self.best_model_save_path is None:
            return
        self.best_model_save_path.mkdir(parents=True, exist_ok=True)
        self.model.save(str(self.best_model_save_path / "best_model.zip"))
        vec_normalize = self.model.get_vec_normalize_env()
        if vec_normalize is not None and self.env_name is not None:
            params = self.best_model_save_path / self.env_name
            params.mkdir(parents=True, exist_ok=True)
            vec_normalize.save(str(params / "vecnormalize_best.pkl"))
