"""Ray RLlib PPO on the MultiSpin envs: the single-agent ids, and the per-user multi-agent env with one shared policy.

    python -m agents.rllib --env MultiSpin-Heterogeneous-v0 --iterations 50 --env-kwargs fading:False -o logs/rllib/het
    python -m agents.rllib --env multiagent --reward-mode selfish --num-env-runners 2 --envs-per-runner 4
    python -m agents.rllib --address ray://head:10001 ...        # join a running Ray cluster (local Ray otherwise)

Needs the optional extra ``multispin-env[rllib]`` (``ray[rllib]``, which pins gymnasium==1.2.2: ``make test-slow``
installs it into its own venv ``.venv-rllib``). On a cluster every node needs multispin-env installed.

``--env`` is a registered id (``MultiSpin-Heterogeneous-v0``, ``MultiSpin-Homogeneous-v0``) or ``multiagent``
(:func:`multispin_env.multiagent.parallel_env`, every user an agent, all agents mapped to one shared module
``shared``: parameter sharing). The envs are registered for Ray's workers with ``ray.tune.registry.register_env``
(Gymnasium's registry is per process; the creators import multispin_env in the worker).

Training is set up as SB3's PPO with ``agents/hyperparams/ppo.yml`` for the heterogeneous id (docs/multiagent.md
has the side-by-side table): 1024 env steps per iteration, minibatches of 256, 10 epochs, lr 1e-3, gamma 0.999,
GAE lambda 0.5, clip 0.2, value-loss weight 0.5, gradient norm clipped at 0.5, SB3's ``MlpPolicy`` as
:class:`agents.rllib_module.SB3PPOModule` (64x64 tanh actor and critic, free log-std from -1, orthogonal init),
and ``ppo.yml``'s env-side transformations (:data:`TRAINING_TRANSFORMS`): the end of the horizon as a termination
with the last round pro-rated (so the return is goodput x horizon), unbiased stochastic rounding of the draft
lengths, the task reward (the rate reward; on a suite task of another metric that metric's reward, as
``VecTaskReward``) and reward normalisation, each reusing the SB3 wrappers' formulas. With ``--env
multiagent`` the critic is centralised by default (``--critic central``: MAPPO, :class:`ParallelTraining`).

Output dir (``-o``, default ``logs/rllib/<env>_<n>``): ``run.json`` (arguments, env settings, per-iteration
summaries), ``checkpoint/`` (the latest, ``Algorithm.save_to_path``), ``checkpoints/iter_NNNNNN`` every
``--save-freq`` iterations, and TensorBoard event files in ``tb/`` (``tensorboard --logdir DIR/tb``). Ctrl-C
(SIGINT) saves ``checkpoint/`` of the last finished iteration (``run.json``: ``"interrupted": true``) before exiting.

:class:`RLlibPolicy` (``load_policy(run_dir)``) wraps a trained module in SB3's ``predict`` so it can be evaluated
with :func:`agents.evaluation.evaluate` next to SB3 agents and the analytic baselines on the same seeds; a shared
per-user module acts on the single heterogeneous env (each user's observation is cut out of the full one), so
centralised and decentralised policies are compared on identical episodes.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.cli import OneLineParser, UserError, check_output_folder, int_at_least, multispin_ids
from agents.ray_jobs import check_address
from agents.runs import write_atomic
from agents.wrappers import RunningRate, TaskRewards, pro_rata, round_length_entries, task_metric
from multispin_env.registration import DEFAULT_ENV_ID

__all__ = [
    "MULTIAGENT",
    "RLlibPolicy",
    "build_config",
    "load_policy",
    "main",
    "per_user_observations",
    "register_ray_envs",
]

#: ``--env`` value of the per-user multi-agent env.
MULTIAGENT = "multiagent"
RAY_SINGLE_ENV = "multispin-single"
RAY_MULTI_ENV = "multispin-multiagent"
SHARED_MODULE = "shared"
SINGLE_MODULE = "default_policy"


class RLlibError(ValueError):
    """A one-line user error of the command."""


# ----------------------------------------------------------------------------- envs
#: The training-side env transformations of ``agents/hyperparams/ppo.yml`` (env_config keys, all on by default):
#: the horizon end as a termination, stochastic rounding of the draft lengths, the rate reward (``rate_reward``: on
#: the single env :class:`TaskReward`, which on a suite task of another metric pays that metric's reward; on the
#: per-user env each agent's rate reward), and SB3's VecNormalize reward normalisation (gymnasium's
#: NormalizeReward: the same running-variance estimate of the discounted return, per env). Evaluation plays the
#: bare env (:func:`load_policy`).
TRAINING_TRANSFORMS = ("horizon_termination", "stochastic_rounding", "rate_reward", "normalize_reward")


class HorizonTermination(gym.Wrapper):
    """The end of the simulated horizon as a termination, the last round's reward pro-rated to the part of its
    latency before the horizon (the Gymnasium twin of :class:`agents.wrappers.VecHorizonTermination`)."""

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if truncated:
            reward = float(reward) * pro_rata(info, self.env.get_wrapper_attr("config").horizon)
            terminated, truncated = True, False
        return obs, reward, terminated, truncated, info


class StochasticRounding(gym.ActionWrapper):
    """Unbiased stochastic rounding of the draft-length entries (the Gymnasium twin of
    :class:`agents.wrappers.VecStochasticRounding`, the same :func:`agents.wrappers.round_length_entries`).

    :param env: a MultiSpin single env (its action is K length entries, or 1 if homogeneous, then K shares)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        assert env.action_space.shape is not None
        self.length_entries = int(env.action_space.shape[-1]) - int(env.get_wrapper_attr("num_users"))
        self.max_draft = int(env.get_wrapper_attr("max_draft"))
        self.rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:
            self.rng = np.random.default_rng([int(seed), 0x5EED])
        return self.env.reset(seed=seed, options=options)

    def action(self, action: Any) -> Any:
        return round_length_entries(action, self.length_entries, self.max_draft, self.rng).astype(np.float32)


class TaskReward(gym.Wrapper):
    """The training reward of :class:`agents.wrappers.VecTaskReward` on one env (its formulas,
    :class:`~agents.wrappers.TaskRewards`, with this env's running estimates): the rate reward r - rho T on goodput
    tasks and any id outside the suite, on a suite task of another metric that metric's reward (request-seconds,
    deadline share, proportional fairness; docs/training.md).

    :param env: a MultiSpin single env
    :param rate_decay: weight of the newest round in the running sums, in (0, 1]
    :param metric: ``"auto"`` (the env's suite task's metric) or a key of :data:`agents.wrappers.TASK_REWARDS`
    """

    def __init__(self, env: gym.Env, rate_decay: float = 0.01, metric: str = "auto") -> None:
        super().__init__(env)
        estimate = RunningRate(rate_decay, float(env.get_wrapper_attr("config").horizon))
        self.rewards = TaskRewards(task_metric(env, metric, "TaskReward metric"), 1, estimate)

    @property
    def metric(self) -> str:
        """The metric the rewards are for (a key of :data:`agents.wrappers.TASK_REWARDS`)."""
        return self.rewards.metric

    @property
    def estimate(self) -> RunningRate:
        """The running goodput (or deadline share) the reward prices with."""
        return self.rewards.estimate

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.rewards.new_episodes()
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        shaped = self.rewards([reward], [info], np.array([terminated or truncated]))
        return obs, float(shaped[0]), terminated, truncated, info


def make_single_env(env_config: Mapping[str, Any]) -> gym.Env:
    """RLlib env creator of a registered id: ``{"env_id", "settings", "gamma"}`` and the :data:`TRAINING_TRANSFORMS`
    flags (each on unless set to False)."""
    import multispin_env  # noqa: F401  (registers the ids in this worker's Gymnasium registry)

    env = gym.make(env_config["env_id"], **dict(env_config.get("settings", {})))
    if env_config.get("horizon_termination", True):
        env = HorizonTermination(env)
    if env_config.get("stochastic_rounding", True):
        env = StochasticRounding(env)
    if env_config.get("rate_reward", True):
        env = TaskReward(env)
    if env_config.get("normalize_reward", True):
        env = gym.wrappers.NormalizeReward(env, gamma=float(env_config.get("gamma", 0.99)))
    return env


def make_multi_env(env_config: Mapping[str, Any]) -> Any:
    """RLlib env creator of the per-user env: ``{"settings", "reward_mode", "bandwidth_price", "gamma",
    "centralised_critic"}`` and the :data:`TRAINING_TRANSFORMS` flags (see :class:`ParallelTraining`)."""
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from multispin_env.multiagent import parallel_env

    env = parallel_env(
        reward_mode=env_config.get("reward_mode", "shared"),
        bandwidth_price=env_config.get("bandwidth_price", 0.0),
        **dict(env_config.get("settings", {})),
    )
    return ParallelPettingZooEnv(ParallelTraining(env, env_config))


class ParallelTraining:
    """The :data:`TRAINING_TRANSFORMS` on the per-user ParallelEnv, each agent's reward treated as a single env's
    (its own rate estimate and reward normaliser), plus the centralised critic's input: with
    ``centralised_critic`` every agent's observation is its own 7 entries followed by ``state()`` (5K + 1), which
    only the critic of :class:`agents.rllib_module.SB3PPOModule` reads. Attribute access falls through to the env.

    :param env: a :class:`multispin_env.multiagent.MultiSpinParallelEnv`
    :param env_config: the flags (:func:`make_multi_env`)
    """

    def __init__(self, env: Any, env_config: Mapping[str, Any]) -> None:
        from gymnasium.wrappers.utils import RunningMeanStd

        self.env = env
        self.flags = {name: bool(env_config.get(name, True)) for name in TRAINING_TRANSFORMS}
        self.centralised = bool(env_config.get("centralised_critic", False))
        self.gamma = float(env_config.get("gamma", 0.99))
        horizon = env.config.horizon
        self.rates = {agent: RunningRate(0.01, horizon) for agent in env.possible_agents}
        self.return_rms = {agent: RunningMeanStd(shape=()) for agent in env.possible_agents}
        self.returns = dict.fromkeys(env.possible_agents, 0.0)
        self.rng = np.random.default_rng()
        self.max_draft = int(env.max_draft)
        if self.centralised:
            state = env.state_space
            self.observation_spaces = {
                agent: gym.spaces.Box(
                    np.concatenate([space.low, state.low]), np.concatenate([space.high, state.high]), dtype=np.float32
                )
                for agent, space in env.observation_spaces.items()
            }
        else:
            self.observation_spaces = env.observation_spaces

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return self.observation_spaces[agent]

    def _observe(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.centralised:
            return observations
        state = self.env.state()
        return {agent: np.concatenate([obs, state]) for agent, obs in observations.items()}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:
            self.rng = np.random.default_rng([int(seed), 0x5EED])
        self.returns = dict.fromkeys(self.returns, 0.0)
        observations, infos = self.env.reset(seed=seed, options=options)
        return self._observe(observations), infos

    def step(self, actions: Mapping[str, Any]) -> Any:
        if self.flags["stochastic_rounding"]:
            actions = {
                agent: round_length_entries(action, 1, self.max_draft, self.rng) for agent, action in actions.items()
            }
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        ended = any(truncations.values())
        if ended and self.flags["horizon_termination"]:
            horizon = self.env.config.horizon
            rewards = {agent: r * pro_rata(infos[agent], horizon) for agent, r in rewards.items()}
            terminations = dict.fromkeys(terminations, True)
            truncations = dict.fromkeys(truncations, False)
        if self.flags["rate_reward"]:
            rewards = {agent: float(self.rates[agent].price([r], [infos[agent]])[0]) for agent, r in rewards.items()}
        if self.flags["normalize_reward"]:  # gymnasium's NormalizeReward, per agent
            for agent, r in rewards.items():
                self.returns[agent] = self.returns[agent] * self.gamma + r
                self.return_rms[agent].update(np.array([self.returns[agent]]))
                rewards[agent] = r / float(np.sqrt(self.return_rms[agent].var + 1e-8))
                if ended:
                    self.returns[agent] = 0.0
        return self._observe(observations), rewards, terminations, truncations, infos


def register_ray_envs() -> None:
    """Register both env creators under :data:`RAY_SINGLE_ENV` / :data:`RAY_MULTI_ENV` for Ray's workers."""
    from ray.tune.registry import register_env

    register_env(RAY_SINGLE_ENV, make_single_env)
    register_env(RAY_MULTI_ENV, make_multi_env)


# --------------------------------------------------------------------------- config
def parse_env_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """``key:value`` pairs, values as Python literals (``fading:False``, ``num_users:8``, ``scenario:'base'``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition(":")
        if not sep or not key:
            raise RLlibError(f"--env-kwargs entries are key:value, got {item!r}")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text  # a bare word: a string
    return out


def env_spec(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The Ray env name and its env_config; validates the settings here (one-line error) by building one env."""
    settings = parse_env_kwargs(args.env_kwargs)
    config: dict[str, Any] = {"settings": settings, "gamma": args.gamma}
    config.update({name: getattr(args, name) for name in TRAINING_TRANSFORMS})
    try:
        if args.env == MULTIAGENT:
            config.update(
                reward_mode=args.reward_mode,
                bandwidth_price=args.bandwidth_price,
                centralised_critic=args.critic == "central",
            )
            if args.critic == "central" and args.module != "sb3":
                raise RLlibError("--critic central needs --module sb3")
            from multispin_env.multiagent import parallel_env

            parallel_env(reward_mode=args.reward_mode, bandwidth_price=args.bandwidth_price, **settings).close()
            return RAY_MULTI_ENV, config
        if args.env not in multispin_ids():
            raise RLlibError(
                f"--env must be {MULTIAGENT} or a MultiSpin id ({', '.join(multispin_ids())}), got {args.env!r}"
            )
        config["env_id"] = args.env
        make_single_env(config).close()
    except RLlibError:
        raise
    except ValueError as exc:
        raise RLlibError(f"bad env setting: {exc}") from exc
    return RAY_SINGLE_ENV, config


def build_config(args: argparse.Namespace) -> Any:
    """The PPOConfig of the command's arguments (new API stack: RLModule, EnvRunners, Learner)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    env_name, env_config = env_spec(args)
    config = (
        PPOConfig()
        .environment(env_name, env_config=env_config)
        .framework("torch")
        .env_runners(
            num_env_runners=args.num_env_runners,
            num_envs_per_env_runner=args.envs_per_runner,
            rollout_fragment_length="auto",
            num_cpus_per_env_runner=args.cpus_per_runner,
        )
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=args.train_batch,
            minibatch_size=args.minibatch,
            num_epochs=args.epochs,
            lr=args.lr,
            gamma=args.gamma,
            lambda_=args.gae_lambda,
            clip_param=0.2,
            vf_clip_param=1e6,  # no value clipping, as SB3
            vf_loss_coeff=0.5,  # SB3's vf_coef
            grad_clip=0.5,  # SB3's max_grad_norm
            grad_clip_by="global_norm",
            entropy_coeff=0.0,
            kl_coeff=0.0,  # SB3's PPO has no KL penalty
        )
        .debugging(seed=args.seed, log_level="ERROR")
    )
    model: dict[str, Any]
    if args.module == "sb3":  # SB3's MlpPolicy (agents/rllib_module.py)
        from agents.rllib_module import SB3PPOModule

        model = {"fcnet_hiddens": [64, 64], "log_std_init": args.log_std_init}
        if env_config.get("centralised_critic"):  # the actor reads its own entries, the critic state()
            from multispin_env.multiagent import AGENT_OBSERVATION_FIELDS

            model["actor_inputs"] = len(AGENT_OBSERVATION_FIELDS)
        module_spec = RLModuleSpec(module_class=SB3PPOModule)
    else:  # RLlib's default module: the log-std is an output of the policy network
        model = dataclasses.asdict(
            DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh", vf_share_layers=False)
        )
        module_spec = RLModuleSpec()
    if env_name == RAY_MULTI_ENV:
        config = config.multi_agent(
            policies={SHARED_MODULE},
            policy_mapping_fn=lambda agent_id, *_, **__: SHARED_MODULE,
        ).rl_module(model_config=model, rl_module_spec=MultiRLModuleSpec(rl_module_specs={SHARED_MODULE: module_spec}))
    else:
        config = config.rl_module(model_config=model, rl_module_spec=module_spec)
    return config


# ---------------------------------------------------------------------------- train
def _summary(result: Mapping[str, Any]) -> dict[str, float]:
    """Scalars of one ``algo.train()`` result worth logging (missing ones are nan)."""
    runners = result.get("env_runners", {})
    learners = result.get("learners", {})
    learner = learners.get(SHARED_MODULE) or learners.get(SINGLE_MODULE) or {}
    return {
        "env_steps": float(
            result.get("num_env_steps_sampled_lifetime", runners.get("num_env_steps_sampled_lifetime", math.nan))
        ),
        "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
        "episode_len_mean": float(runners.get("episode_len_mean", math.nan)),
        "policy_loss": float(learner.get("policy_loss", math.nan)),
        "vf_loss": float(learner.get("vf_loss", math.nan)),
        "entropy": float(learner.get("entropy", math.nan)),
        "time_this_iter_s": float(result.get("time_this_iter_s", math.nan)),
    }


def next_run_dir(root: Path, env: str) -> Path:
    name = "multiagent" if env == MULTIAGENT else env.rpartition("/")[2].split("-")[-2].lower()
    n = 1
    while (root / f"{name}_{n}").exists():
        n += 1
    return root / f"{name}_{n}"


def train(args: argparse.Namespace) -> Path:
    """Train as the arguments say; returns the output dir (see the module docstring for its layout)."""
    import ray
    from tensorboardX import SummaryWriter

    out = Path(args.output) if args.output else next_run_dir(Path("logs/rllib"), args.env)
    config = build_config(args)  # validates the env settings before Ray starts
    out.mkdir(parents=True, exist_ok=True)
    if args.address:
        try:
            ray.init(address=args.address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RLlibError(f"could not connect to Ray at {args.address!r}: {first}") from exc
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    register_ray_envs()
    record: dict[str, Any] = {
        "env": args.env,
        "env_config": config.env_config,
        "module_id": SHARED_MODULE if args.env == MULTIAGENT else SINGLE_MODULE,
        "args": {k: v for k, v in vars(args).items() if k != "func"},
        "iterations": [],
    }
    writer = SummaryWriter(str(out / "tb"))
    start = time.perf_counter()
    try:
        algo = config.build_algo()
        for iteration in range(1, args.iterations + 1):
            try:
                result = algo.train()
            except KeyboardInterrupt:  # keep what was trained: the last finished iteration's module
                if record["iterations"]:
                    algo.save_to_path(str((out / "checkpoint").resolve()))
                    record["wall_s"] = time.perf_counter() - start
                    record["interrupted"] = True
                raise
            summary = _summary(result)
            summary["wall_s"] = time.perf_counter() - start
            record["iterations"].append(summary)
            step = int(summary["env_steps"]) if math.isfinite(summary["env_steps"]) else iteration
            for key, value in summary.items():
                if math.isfinite(value):
                    writer.add_scalar(f"rllib/{key}", value, step)
            print(
                f"iter {iteration:4d}  env steps {summary['env_steps']:>9.0f}  "
                f"return {summary['episode_return_mean']:8.3f}  {summary['wall_s']:7.1f} s",
                flush=True,
            )
            if args.save_freq and iteration % args.save_freq == 0:
                algo.save_to_path(str((out / "checkpoints" / f"iter_{iteration:06d}").resolve()))
                write_atomic(out / "run.json", json.dumps(record, indent=1, default=str))  # a killed run keeps it
        algo.save_to_path(str((out / "checkpoint").resolve()))
        record["wall_s"] = time.perf_counter() - start
        algo.stop()
    finally:
        writer.close()
        write_atomic(out / "run.json", json.dumps(record, indent=1, default=str))
        ray.shutdown()
    print(f"saved {out / 'checkpoint'} ({record.get('wall_s', math.nan):.1f} s)")
    return out


# ---------------------------------------------------------------------------- policy
def per_user_observations(observation: Any, num_users: int) -> np.ndarray:
    """The per-user observations (K, 7) of :mod:`multispin_env.multiagent` cut out of a single env's (5K + 1,)
    observation: own channel, draft time, acceptance, last length, last tokens, time left, drafting users / K."""
    obs = np.asarray(observation, dtype=np.float32)
    k = num_users
    if obs.shape != (5 * k + 1,):
        raise ValueError(f"observation must have {5 * k + 1} entries, got shape {obs.shape}")
    own = obs[: 5 * k].reshape(5, k).T  # fields in OBSERVATION_FIELDS order, users within each
    out = np.empty((k, 7), dtype=np.float32)
    out[:, :5] = own
    out[:, 5] = obs[5 * k]
    out[:, 6] = np.count_nonzero(own[:, 3] > 0) / k
    return out


class RLlibPolicy:
    """A trained RLlib module with SB3's ``predict(obs, state=None, episode_start=None, deterministic=True)``.

    :param module: a torch RLModule (``RLModule.from_checkpoint``)
    :param per_user: the module is the shared per-user policy of the multi-agent env; ``predict`` then takes a
        single heterogeneous env's observation (5K + 1,) and returns its joint action (2K,), or takes a dict
        ``{agent: obs}`` of :mod:`multispin_env.multiagent` and returns ``{agent: action}``
    :param num_users: K (needed with ``per_user``)
    :param name: the policy's name in reports

    Deterministic actions are the Gaussian's mean, stochastic ones a sample; both clipped into [-1, 1]. A
    centralised-critic (MAPPO) module gets each user's observation padded with zeros where its critic reads the
    env's state: its actor does not read them.
    """

    def __init__(self, module: Any, per_user: bool = False, num_users: int | None = None, name: str = "rllib"):
        if per_user and not num_users:
            raise ValueError("num_users is needed for a per-user module")
        self.module = module
        self.per_user = per_user
        self.num_users = num_users
        self.name = name

    def reset(self) -> None:
        """Nothing to forget (MLP modules are stateless)."""

    def _act(self, batch: np.ndarray, deterministic: bool) -> np.ndarray:
        import torch

        inputs = int(self.module.observation_space.shape[0])
        if batch.shape[-1] < inputs:  # a centralised-critic module: its actor reads only the leading entries
            batch = np.pad(batch, [(0, 0)] * (batch.ndim - 1) + [(0, inputs - batch.shape[-1])])
        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.as_tensor(batch, dtype=torch.float32)})
            dist = self.module.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
            if deterministic:
                dist = dist.to_deterministic()
            action = dist.sample().cpu().numpy()
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[Any, Any]:
        if isinstance(observation, Mapping):
            agents = list(observation)
            actions = self._act(np.stack([observation[a] for a in agents]), deterministic)
            return dict(zip(agents, actions, strict=True)), state
        obs = np.asarray(observation, dtype=np.float32)
        if self.per_user:
            assert self.num_users is not None
            if obs.ndim == 2:  # a batch of single-env observations
                return np.stack([self.predict(o, deterministic=deterministic)[0] for o in obs]), state
            actions = self._act(per_user_observations(obs, self.num_users), deterministic)  # (K, 2)
            return np.concatenate([actions[:, 0], actions[:, 1]]), state
        batch = obs[None] if obs.ndim == 1 else obs
        actions = self._act(batch, deterministic)
        return (actions[0] if obs.ndim == 1 else actions), state


def load_policy(run_dir: str | Path, name: str | None = None) -> RLlibPolicy:
    """The policy of a run dir written by :func:`train` (its ``checkpoint/``), without starting Ray."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    run = Path(run_dir)
    meta_path = run / "run.json"
    if not meta_path.is_file():
        raise RLlibError(f"{run} is not an agents.rllib run dir (no run.json)")
    meta = json.loads(meta_path.read_text())
    module_dir = run / "checkpoint" / "learner_group" / "learner" / "rl_module" / meta["module_id"]
    if not module_dir.is_dir():
        raise RLlibError(f"no trained module at {module_dir}")
    module = RLModule.from_checkpoint(str(module_dir.resolve()))
    per_user = meta["env"] == MULTIAGENT
    num_users = None
    if per_user:
        from multispin_env.multiagent import parallel_env

        num_users = parallel_env(**meta["env_config"]["settings"]).num_users
    return RLlibPolicy(module, per_user=per_user, num_users=num_users, name=name or f"rllib-{run.name}")


def eval_env_id(run_dir: str | Path) -> tuple[str, dict[str, Any]]:
    """The single env id and settings a run's policy is evaluated on (the heterogeneous id for per-user runs)."""
    meta = json.loads((Path(run_dir) / "run.json").read_text())
    env_id = meta["env_config"].get("env_id", DEFAULT_ENV_ID)
    return env_id, dict(meta["env_config"]["settings"])


# ------------------------------------------------------------------------------ CLI
_positive, _non_negative = int_at_least(1), int_at_least(0)


def make_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="multispin-rllib", description="Train RLlib PPO on a MultiSpin env (single or per-user).")
    p.add_argument("--env", default=DEFAULT_ENV_ID, help=f"a MultiSpin id (multispin-list) or {MULTIAGENT}")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY:VALUE", help="env settings, e.g. fading:False")
    p.add_argument("--reward-mode", choices=("shared", "selfish"), default="shared", help="multiagent only")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")
    p.add_argument("--num-cpus", type=_positive, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--num-env-runners", type=_non_negative, default=2, help="remote sampling workers (0: driver)")
    p.add_argument("--envs-per-runner", type=_positive, default=4, help="vectorised envs per env runner")
    p.add_argument("--cpus-per-runner", type=float, default=1.0, help="Ray CPUs reserved per env runner")
    p.add_argument("--iterations", type=_positive, default=100, help="training iterations (algo.train() calls)")
    p.add_argument("--train-batch", type=_positive, default=1024, help="env steps per iteration")
    p.add_argument("--minibatch", type=_positive, default=256)
    p.add_argument("--epochs", type=_positive, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=0.999)
    p.add_argument("--gae-lambda", type=float, default=0.5)
    p.add_argument("--seed", type=_non_negative, default=0)
    p.add_argument(
        "--module",
        choices=("sb3", "rllib"),
        default="sb3",
        help="sb3: SB3's MlpPolicy (free log-std, orthogonal init; agents/rllib_module.py); rllib: RLlib's default "
        "PPO module (state-dependent log-std)",
    )
    p.add_argument("--log-std-init", type=float, default=-1.0, help="start of the sb3 module's free log-std")
    p.add_argument(
        "--critic",
        choices=("central", "local"),
        default="central",
        help="multiagent: central: the critic values the env's state() (MAPPO); local: the agent's own observation",
    )
    p.add_argument(
        "--bandwidth-price",
        type=float,
        default=0.0,
        help="multiagent, selfish: tokens per unit of bid per second charged to each drafting user",
    )
    p.add_argument(
        "--no-horizon-termination",
        dest="horizon_termination",
        action="store_false",
        help="keep the truncation at the horizon (RLlib bootstraps the value there)",
    )
    p.add_argument(
        "--no-stochastic-rounding",
        dest="stochastic_rounding",
        action="store_false",
        help="play the env's deterministic rounding of the draft lengths in training",
    )
    p.add_argument(
        "--no-rate-reward",
        dest="rate_reward",
        action="store_false",
        help="train on the env's reward (default: the rate reward, or on a suite task of another metric that "
        "metric's training reward, as VecTaskReward)",
    )
    p.add_argument(
        "--no-normalize-reward", dest="normalize_reward", action="store_false", help="no reward normalisation"
    )
    p.add_argument(
        "--save-freq", type=_non_negative, default=0, help="also checkpoint every N iterations (0: only at the end)"
    )
    p.add_argument("-o", "--output", default=None, help="output dir (default logs/rllib/<env>_<n>)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.minibatch > args.train_batch:
        print(
            f"multispin-rllib: error: --minibatch {args.minibatch} exceeds --train-batch {args.train_batch}",
            file=sys.stderr,
        )
        return 2
    try:
        env_spec(args)  # bad settings fail here, in one line, before Ray starts
        if args.output is not None:
            check_output_folder(args.output, "-o/--output")
        if args.address:
            check_address(args.address)
    except (RLlibError, UserError) as exc:
        print(f"multispin-rllib: error: {exc}", file=sys.stderr)
        return 2
    try:
        import ray  # noqa: F401
    except ImportError:
        print(
            "multispin-rllib: error: ray[rllib] is not installed: pip install 'multispin-env[rllib]'", file=sys.stderr
        )
        return 2
    try:
        train(args)
    except RLlibError as exc:
        print(f"multispin-rllib: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("multispin-rllib: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
