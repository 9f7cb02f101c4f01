"""Every analytic controller and every agent wrapper is a :class:`baselines.protocol.Policy`."""

from __future__ import annotations

import inspect

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # registers the ids
from baselines.policies import ANALYTIC_POLICIES, make_policy, policies_for
from baselines.protocol import Policy


def _protocol_parameters(method: object) -> list[tuple[str, object]]:
    """(name, default) of ``method``'s parameters after ``self``."""
    params = list(inspect.signature(method).parameters.values())[1:]  # type: ignore[arg-type]
    return [(p.name, p.default) for p in params]


PREDICT = _protocol_parameters(Policy.predict)


def _check_policy(policy: object, env: gym.Env) -> None:
    """``policy`` is a Policy, with SB3's predict signature, and acts through it as the evaluation loop calls it."""
    assert isinstance(policy, Policy)
    assert _protocol_parameters(type(policy).predict) == PREDICT
    assert _protocol_parameters(type(policy).reset) == []
    obs, _ = env.reset(seed=3)
    policy.reset()
    action, state = policy.predict(obs, state=None, episode_start=np.ones((1,), dtype=bool), deterministic=True)
    assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
    assert state is None


def test_protocol_rejects_an_object_without_reset_or_predict() -> None:
    class PredictOnly:
        def predict(self, observation, state=None, episode_start=None, deterministic=True):
            return observation, state

    class ResetOnly:
        def reset(self) -> None:
            pass

    assert not isinstance(PredictOnly(), Policy)
    assert not isinstance(ResetOnly(), Policy)


@pytest.mark.parametrize("env_id", [*sorted(multispin_env.ENV_IDS), "MultiSpinSuite/Deadlines-v0"])
def test_every_analytic_policy_is_a_policy(env_id: str) -> None:
    env = gym.make(env_id, horizon=2.0)
    names = policies_for(env)
    assert names
    for name in names:
        _check_policy(make_policy(name, env), env)


def test_the_ids_cover_every_analytic_policy() -> None:
    """The base ids and the deadline task (the urgency-weighted policies need request deadlines) cover them."""
    ids = (*multispin_env.ENV_IDS, "MultiSpinSuite/Deadlines-v0")
    covered = {name for env_id in ids for name in policies_for(gym.make(env_id))}
    assert covered == set(ANALYTIC_POLICIES)


def test_agent_wrappers_are_policies() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from agents.evaluation import AgentPolicy
    from agents.residual import ResidualPolicy, augment
    from agents.rllib import RLlibPolicy

    env = gym.make("MultiSpin-Heterogeneous-v0", horizon=2.0)
    agent = AgentPolicy(PPO("MlpPolicy", env, n_steps=8, batch_size=8, device="cpu", seed=0))
    _check_policy(agent, env)

    # The residual agent observes the env's observation and the controller's action (agents.residual.augment).
    obs, _ = env.reset(seed=0)
    augmented = augment(obs, env.action_space.sample())
    residual_space = gym.spaces.Box(-np.inf, np.inf, augmented.shape, np.float32)

    class _Augmented(gym.Env):
        observation_space, action_space = residual_space, env.action_space

    inner = AgentPolicy(PPO("MlpPolicy", _Augmented(), n_steps=8, batch_size=8, device="cpu", seed=0))
    _check_policy(ResidualPolicy(inner, env), env)

    # An RLlib module is only needed to act; the wrapper's interface is checked without Ray.
    rllib = RLlibPolicy(module=None, per_user=True, num_users=env.unwrapped.num_users)
    assert isinstance(rllib, Policy)
    assert _protocol_parameters(RLlibPolicy.predict) == PREDICT


def test_episode_start_is_one_flag_or_one_per_observation() -> None:
    """Every analytic controller on a vector env reads ``episode_start`` alike (baselines.protocol.episode_starts):
    one flag per sub-env, or one flag for all; another count is a one-line ValueError (it would mark the wrong
    episodes)."""
    envs = gym.make_vec("MultiSpin-Heterogeneous-v0", num_envs=3, horizon=2.0)
    obs, _ = envs.reset(seed=0)
    for name in policies_for(envs):
        for flags in (None, np.ones(3, bool), np.array([True]), True):
            policy = make_policy(name, envs)
            actions, _ = policy.predict(obs, episode_start=flags)
            assert np.shape(actions) == envs.action_space.shape
        with pytest.raises(
            ValueError, match=rf"^{name}: episode_start must have one flag per observation \(3\), got 2$"
        ):
            make_policy(name, envs).predict(obs, episode_start=np.ones(2, bool))


def test_episode_starts_counts_flags_per_row() -> None:
    from baselines.protocol import episode_starts

    np.testing.assert_array_equal(episode_starts(None, 2, "p"), [False, False])
    np.testing.assert_array_equal(episode_starts([True], 3, "p"), [True, True, True])
    np.testing.assert_array_equal(episode_starts(np.array([[1], [0]]), 2, "p"), [True, False])
    with pytest.raises(ValueError, match="p: episode_start must have one flag per observation"):
        episode_starts(np.zeros(3), 2, "p")
