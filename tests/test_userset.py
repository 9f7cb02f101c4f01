"""The user-set policies (agents/userset.py): permutation equivariance, a parameter count independent of K, SB3's
checks, a short training run that improves, the same weights at other K (benchmark and evaluation callback), and
one-line errors for a model on an env it cannot play; the same for the recurrent policy (RecurrentPPO), with its
LSTM state carried over rounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from hypothesis import given, settings
from hypothesis import strategies as st
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env

import multispin_env  # noqa: F401  (registers the ids)
from agents.runs import read_yaml
from agents.userset import (
    RecurrentUserSetPolicy,
    UserSetPolicy,
    check_layout,
    is_userset,
    names_userset,
    with_env_layout,
)
from multispin_env.spaces import observation_layout

HET, HOM = "MultiSpin-Heterogeneous-v0", "MultiSpin-Homogeneous-v0"


def _policy(
    env_id: str = HET, seed: int = 0, reference_users: int | None = 0, **env_kwargs: object
) -> tuple[UserSetPolicy, gym.Env]:
    """A user-set policy for ``env`` with random O(1) weights (not SB3's near-zero action layer); K_train
    ``reference_users`` (0: the env's K, as train.py sets it)."""
    env = gym.make(env_id, **env_kwargs)
    th.manual_seed(seed)
    kwargs: dict = (
        {"log_std_init": -1.0} if reference_users == 0 else {"log_std_init": -1.0, "reference_users": reference_users}
    )
    policy = UserSetPolicy(env.observation_space, env.action_space, lambda _: 1e-3, **with_env_layout(kwargs, env))
    with th.no_grad():
        for p in policy.parameters():
            p.normal_(0.0, 0.3)
    return policy, env


def _permute(obs: np.ndarray, perm: np.ndarray, layout: dict[str, slice], num_users: int) -> np.ndarray:
    out = obs.copy()
    for where in layout.values():
        if where.stop - where.start == num_users:
            out[..., where] = obs[..., where][..., perm]
    return out


def _observations(env: gym.Env, seed: int, rounds: int = 4) -> np.ndarray:
    """Observations of a few rounds of random play (real, not sampled from the Box)."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    seen = [obs]
    for _ in range(rounds - 1):
        obs = env.step(env.action_space.sample())[0]
        seen.append(obs)
    return np.stack(seen).astype(np.float32)


@pytest.mark.parametrize(
    ("env_id", "env_kwargs"),
    [
        (HET, {}),
        (HOM, {}),
        (HET, {"arrival_rate": 0.5}),
        (HET, {"arrival_rate": 0.5, "request_deadline_per_token": 0.05}),
        (HET, {"num_users": 1}),
    ],
)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_permuting_the_users_permutes_the_actions_and_keeps_the_value(env_id: str, env_kwargs: dict, seed: int) -> None:
    policy, env = _policy(env_id, seed % 7, **env_kwargs)
    k = env.unwrapped.num_users
    layout = env.unwrapped.observation_layout
    obs = _observations(env, seed)
    perm = np.random.default_rng(seed).permutation(k)
    permuted = _permute(obs, perm, layout, k)
    actions, _ = policy.predict(obs, deterministic=True)
    moved, _ = policy.predict(permuted, deterministic=True)
    lengths = 1 if env_id == HOM else k
    assert np.abs(actions).max() > 0.05  # the outputs are not all (near) zero
    expected = np.concatenate(
        [actions[:, :lengths][:, perm] if lengths == k else actions[:, :lengths], actions[:, lengths:][:, perm]], axis=1
    )
    np.testing.assert_allclose(moved, expected, rtol=0, atol=1e-5)  # float32 roundoff of the pooled sums
    with th.no_grad():
        values = policy.predict_values(th.as_tensor(obs)).numpy()
        again = policy.predict_values(th.as_tensor(permuted)).numpy()
    np.testing.assert_allclose(again, values, rtol=0, atol=1e-5)  # float32 roundoff of the pooled sums
    with th.no_grad():  # the Gaussian's means (before clipping) are equivariant too, and differ between users
        mean = policy.get_distribution(th.as_tensor(obs)).distribution.mean.numpy()
        mean_moved = policy.get_distribution(th.as_tensor(permuted)).distribution.mean.numpy()
    np.testing.assert_allclose(mean_moved[:, lengths:], mean[:, lengths:][:, perm], rtol=0, atol=1e-5)
    if k > 1:
        assert np.ptp(mean[:, lengths:], axis=1).min() > 1e-3


def test_the_parameter_count_does_not_depend_on_k_and_weights_move_between_k() -> None:
    policies = {k: _policy(HET, 0, reference_users=6, num_users=k)[0] for k in (2, 6, 32)}
    counts = {k: sum(p.numel() for p in pol.parameters()) for k, pol in policies.items()}
    assert len(set(counts.values())) == 1, counts
    assert policies[6].log_std.shape == (2,)  # one log-std per action kind (length, share)
    policies[32].load_state_dict(policies[6].state_dict())  # same shapes: the K = 6 weights run at K = 32
    env = gym.make(HET, num_users=32)
    obs = _observations(env, 3)
    np.testing.assert_array_equal(
        policies[32].predict(obs, deterministic=True)[0], policies[6].predict(obs, deterministic=True)[0]
    )


def test_the_spectral_efficiency_input_is_scaled_by_k_train_over_k() -> None:
    """At K users a model trained at K_train sees each user's spectral efficiency times K_train / K (the equal share's
    rate in units of the training system's): the same as an unscaled model on an observation so scaled; at K_train
    nothing changes."""
    trained, _ = _policy(HET, 1, num_users=6)
    assert trained.reference_users == 6  # with_env_layout: the training env's K
    raw = {k: _policy(HET, 1, reference_users=None, num_users=k)[0] for k in (6, 24)}
    for k, policy in raw.items():
        policy.load_state_dict(trained.state_dict())
        obs = _observations(gym.make(HET, num_users=k), k)
        scaled = obs.copy()
        where = observation_layout(k)["spectral_efficiency"]
        scaled[:, where] *= 6 / k
        if k == 6:
            np.testing.assert_array_equal(
                trained.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0]
            )
        else:
            played = trained.predict(obs, deterministic=True)[0]
            np.testing.assert_allclose(played, policy.predict(scaled, deterministic=True)[0], rtol=0, atol=1e-6)
            assert np.abs(played - policy.predict(obs, deterministic=True)[0]).max() > 1e-3  # the scaling acts
    with pytest.raises(ValueError, match=r"reference_users \(or None\) must be an integer >= 1"):
        _policy(HET, 0, reference_users=-2)


def test_the_log_std_is_per_action_kind() -> None:
    policy, env = _policy(HET, 0, num_users=4)
    with th.no_grad():
        policy.log_std.copy_(th.tensor([-2.0, 0.5]))
        dist = policy.get_distribution(th.as_tensor(_observations(env, 0)))
    std = dist.distribution.stddev.numpy()
    np.testing.assert_allclose(std[:, :4], np.exp(-2.0), rtol=1e-6)
    np.testing.assert_allclose(std[:, 4:], np.exp(0.5), rtol=1e-6)


def test_sb3_checks_pass_and_ppo_trains_saves_and_loads(tmp_path: Path) -> None:
    env = gym.make(HET, horizon=1.0)
    check_env(env)  # SB3's env checker on the env the policy plays
    model = PPO(
        UserSetPolicy,
        env,
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs=with_env_layout({"hidden": 16}, env),
    )
    model.learn(128)
    obs = _observations(env, 5)
    action, _ = model.predict(obs[0], deterministic=True)
    assert action.shape == env.action_space.shape and env.action_space.contains(action)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert isinstance(loaded.policy, UserSetPolicy) and loaded.policy.hidden == 16
    assert loaded.policy.reference_users == env.unwrapped.num_users
    assert tuple(loaded.policy_kwargs["observation_fields"]) == tuple(env.unwrapped.observation_layout)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    # SB3's own space check at load does not refuse another K for this policy's predict path.
    other = gym.make(HET, num_users=11)
    assert loaded.predict(other.reset(seed=0)[0], deterministic=True)[0].shape == other.action_space.shape


def test_layout_errors_are_one_line_value_errors() -> None:
    env = gym.make(HET)
    box = gym.spaces.Box(0, 1, (36,))  # 5 fields x 7 users + 1 = 7 fields x 5 users + 1
    with pytest.raises(ValueError, match="cannot tell the observation fields from 36"):
        UserSetPolicy(box, gym.spaces.Box(-1, 1, (12,)), lambda _: 1e-3)  # an action of neither K
    # The action's size tells them apart: 14 entries are 7 heterogeneous users, so the 6 base fields.
    assert len(UserSetPolicy(box, gym.spaces.Box(-1, 1, (14,)), lambda _: 1e-3).observation_fields) == 6
    with pytest.raises(ValueError, match="observation_fields must be"):
        UserSetPolicy(env.observation_space, env.action_space, lambda _: 1e-3, observation_fields=("time_left",))
    fields = tuple(env.unwrapped.observation_layout)
    with pytest.raises(ValueError, match="action of 9 entries does not fit 6 users"):
        UserSetPolicy(env.observation_space, gym.spaces.Box(-1, 1, (9,)), lambda _: 1e-3, observation_fields=fields)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1"):
        UserSetPolicy(env.observation_space, env.action_space, lambda _: 1e-3, hidden=0)
    policy, _ = _policy(HET)
    with pytest.raises(ValueError, match="an observation of 33 entries does not fit"):
        policy.predict(np.zeros(33, np.float32))
    arrivals = gym.make(HET, arrival_rate=0.5)
    with pytest.raises(ValueError, match="policy_kwargs observation_fields"):
        with_env_layout({"observation_fields": tuple(env.unwrapped.observation_layout)}, arrivals)
    with pytest.raises(
        ValueError, match=r"trained on the observation fields per-user \[.*last_tokens\].*active, remaining"
    ):
        check_layout(policy.observation_fields, policy.homogeneous, arrivals)
    with pytest.raises(ValueError, match=r"heterogeneous .* the env is homogeneous"):
        check_layout(policy.observation_fields, policy.homogeneous, gym.make(HOM))
    assert list(observation_layout(6)) == list(policy.observation_fields)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1, got True"):
        UserSetPolicy(env.observation_space, env.action_space, lambda _: 1e-3, hidden=True)
    # Normalisation statistics of K = 6 serve K = 10 only when they do not normalise observations.
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from agents.userset import check_normalisation

    k10 = gym.make(HET, num_users=10).observation_space.shape
    for norm_obs in (True, False):
        stats = VecNormalize(DummyVecEnv([lambda: gym.make(HET)]), norm_obs=norm_obs)
        check_normalisation(stats, env.observation_space.shape)  # its own K: fine either way
        if norm_obs:
            with pytest.raises(ValueError, match=r"normalises observations of shape \(31,\), the env gives \(51,\)"):
                check_normalisation(stats, k10, "the model")
        else:
            check_normalisation(stats, k10)
    check_normalisation(None, k10)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_short_run_improves_and_runs_at_other_k(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """train.py --agent userset: the evaluation callback plays another K (10) than training (6); the benchmark
    plays the saved model at K = 3 and 16 and refuses another layout in one line."""
    from agents.benchmark import main as bench_main
    from agents.train import main as train_main

    argv = [
        "--algo",
        "ppo",
        "--agent",
        "userset",
        "--env",
        HET,
        "-n",
        "12288",
        "--seed",
        "0",
        "-f",
        str(tmp_path),
        "--eval-freq",
        "6144",
        "--eval-episodes",
        "3",
        "--baselines",
        "het-opt-oracle",
        "--verbose",
        "0",
        "--env-kwargs",
        "fading:False",
        "--eval-env-kwargs",
        "num_users:10",
        "fading:False",
        # Few envs and small rollouts, so that 12,288 rounds make several updates (the YAML's 256 envs would make three).
        "-params",
        "n_envs:8",
        "n_steps:64",
        "batch_size:256",
        "n_epochs:10",
        "learning_rate:0.001",
    ]
    assert train_main(argv) == 0
    (run,) = (tmp_path / "ppo").glob(f"{HET}_*")
    data = np.load(run / "evaluations.npz")
    share = data["goodput"].mean(axis=1) / data["baseline_goodput"][0].mean()
    # Learnt, measured at K = 10 after training at K = 6 (seeded: 60.0% -> 62.0% of het-opt-oracle over these
    # 12,288 rounds; ~90% takes ~100k rounds, too long for the suite).
    assert share[-1] > share[0] + 0.01, share
    capsys.readouterr()
    for k in (3, 16):
        assert (
            bench_main(
                [
                    "--agents",
                    str(run),
                    "--env-kwargs",
                    f"num_users:{k}",
                    "--episodes",
                    "2",
                    "--policies",
                    "het-opt-oracle",
                    "--no-plots",
                    "-q",
                    "-o",
                    str(tmp_path / f"b{k}"),
                ]
            )
            == 0
        )
    assert (
        bench_main(
            [
                "--agents",
                str(run),
                "--env-kwargs",
                "arrival_rate:0.5",
                "--episodes",
                "1",
                "--no-plots",
                "-o",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    line = _one_error_line(capsys)
    assert "trained on the observation fields" in line and "active, remaining" in line
    # Another model (MlpPolicy) with an evaluation env at another K: refused before training, in one line.
    argv = [
        "--algo",
        "ppo",
        "--env",
        HET,
        "-n",
        "64",
        "-f",
        str(tmp_path / "mlp"),
        "--eval-episodes",
        "1",
        "--baselines",
        "--eval-env-kwargs",
        "num_users:10",
        "--verbose",
        "0",
    ]
    assert train_main(argv) == 2
    line = _one_error_line(capsys)
    assert "has observation shape (31,), the env gives (51,)" in line
    assert not list((tmp_path / "mlp").rglob("*.zip"))
    # The user-set model continues training at another K (its weights do not depend on K) ...
    from stable_baselines3 import PPO

    more = ["-n", "512", "--seed", "1", "--eval-freq", "-1", "--verbose", "0", "-params", "n_envs:8", "n_steps:64"]
    more += ["batch_size:256", "n_epochs:1", "learning_rate:0.001"]  # constant: one annealed rollout ends at rate 0
    model = str(run / f"{HET}.zip")
    ten = ["--env-kwargs", "num_users:10", "fading:False"]
    assert (
        train_main(
            ["--algo", "ppo", "--agent", "userset", "--env", HET, "-f", str(tmp_path / "k10"), "-i", model, *ten, *more]
        )
        == 0
    )
    (continued,) = (tmp_path / "k10" / "ppo").glob(f"{HET}_*")
    before, after = PPO.load(model, device="cpu"), PPO.load(continued / f"{HET}.zip", device="cpu")
    assert after.observation_space.shape == (51,) and after.action_space.shape == (20,)
    assert after.policy.reference_users == 6  # still scaled to the K it learnt at
    assert before.policy.state_dict().keys() == after.policy.state_dict().keys()
    assert any(
        not th.equal(a, b)
        for a, b in zip(before.policy.state_dict().values(), after.policy.state_dict().values(), strict=True)
    )
    # ... but not on an env with other per-user fields: one line naming both layouts, nothing trained.
    arrivals = ["--env-kwargs", "arrival_rate:0.5", "fading:False"]
    assert (
        train_main(
            [
                "--algo",
                "ppo",
                "--agent",
                "userset",
                "--env",
                HET,
                "-f",
                str(tmp_path / "arr"),
                "-i",
                model,
                *arrivals,
                *more,
            ]
        )
        == 2
    )
    line = _one_error_line(capsys)
    assert "trained on the observation fields" in line and "active, remaining" in line
    assert not list((tmp_path / "arr").rglob("*.zip"))


def test_bench_userset_zero_shot_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli_helpers import cli_error, load_script

    bench = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_userset.py")
    missing = tmp_path / "nothing"
    cli_error(bench.main, ["--zero-shot", str(missing), "--users", "3"], capsys, None, "neither a model .zip")
    cli_error(bench.main, ["--zero-shot", str(missing), "--reference-users", "-1"], capsys, None, "integer >= 0")


# -- the recurrent user-set policy (RecurrentPPO) -------------------------------------------------------------------


def _recurrent(
    env_id: str = HET, seed: int = 0, policy_kwargs: dict | None = None, **env_kwargs: object
) -> tuple[RecurrentUserSetPolicy, gym.Env]:
    """A recurrent user-set policy for ``env`` with random O(1) weights (LSTMs included), K_train the env's K."""
    env = gym.make(env_id, **env_kwargs)
    th.manual_seed(seed)
    kwargs = {"hidden": 16, "lstm_hidden_size": 8, "log_std_init": -1.0, **(policy_kwargs or {})}
    policy = RecurrentUserSetPolicy(
        env.observation_space, env.action_space, lambda _: 1e-3, **with_env_layout(kwargs, env)
    )
    with th.no_grad():
        for p in policy.parameters():
            p.normal_(0.0, 0.3)
    return policy, env


def _play(policy: RecurrentUserSetPolicy, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Action means and values of one episode's observations (T, N), the LSTM states carried from round to round
    (forward, one env); the states after each round."""
    shape = (policy.n_lstm_layers, 1, policy.lstm_output_dim)
    states = RNNStates((th.zeros(shape), th.zeros(shape)), (th.zeros(shape), th.zeros(shape)))
    means, values, seen = [], [], []
    with th.no_grad():
        for t, row in enumerate(obs):
            start = th.tensor([1.0 if t == 0 else 0.0])
            action, value, _, states = policy(th.as_tensor(row[None]), states, start, deterministic=True)
            means.append(action[0].numpy())
            values.append(value[0].numpy())
            seen.append(states)
    return np.stack(means), np.stack(values), seen


@pytest.mark.parametrize(
    ("env_id", "env_kwargs", "policy_kwargs"),
    [
        (HET, {}, {}),
        (HOM, {}, {}),
        (HET, {"arrival_rate": 0.5}, {}),
        (HET, {}, {"shared_lstm": True, "enable_critic_lstm": False}),
        (HET, {}, {"enable_critic_lstm": False}),
    ],
)
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_recurrent_permuting_the_users_permutes_the_actions_and_keeps_the_value_and_state(
    env_id: str, env_kwargs: dict, policy_kwargs: dict, seed: int
) -> None:
    """Over an episode of 6 rounds, the LSTM state carried along: the permuted observations give the permuted
    actions, the same values and the same LSTM states; and the state acts (the same observation, another state:
    other actions)."""
    policy, env = _recurrent(env_id, seed % 5, policy_kwargs, **env_kwargs)
    k = env.unwrapped.num_users
    obs = _observations(env, seed, rounds=6)
    perm = np.random.default_rng(seed).permutation(k)
    means, values, states = _play(policy, obs)
    moved, moved_values, moved_states = _play(policy, _permute(obs, perm, env.unwrapped.observation_layout, k))
    lengths = 1 if env_id == HOM else k
    expected = np.concatenate(
        [means[:, :lengths][:, perm] if lengths == k else means[:, :lengths], means[:, lengths:][:, perm]], axis=1
    )
    np.testing.assert_allclose(moved, expected, rtol=0, atol=1e-5)  # float32 roundoff of the pooled sums
    np.testing.assert_allclose(moved_values, values, rtol=0, atol=1e-5)
    for mine, theirs in zip(states, moved_states, strict=True):
        for a, b in zip((*mine.pi, *mine.vf), (*theirs.pi, *theirs.vf), strict=True):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-5)
    assert np.abs(states[-1].pi[0].numpy()).max() > 0.05  # a non-trivial state was carried
    fresh, _, _ = _play(policy, obs[-1:])  # the last observation from a zero state
    assert np.abs(fresh[0] - means[-1]).max() > 1e-3  # the carried state changes the actions


def test_recurrent_runs_at_other_k_with_a_state_of_one_shape() -> None:
    """Built at K = 6, the same policy predicts at K = 3 and 10 (and 6) with an LSTM state whose shape does not depend on
    K; predict's state carries across rounds and episode_start resets it; its actions are forward's means, clipped."""
    policy, _ = _recurrent(HET, 2, num_users=6)
    shape = (1, 1, 8)
    for k in (3, 10, 6):
        env = gym.make(HET, num_users=k)
        obs = _observations(env, k, rounds=4)
        state, start = None, np.ones(1, bool)
        for row in obs:
            action, state = policy.predict(row, state=state, episode_start=start, deterministic=True)
            start = np.zeros(1, bool)
            assert action.shape == env.action_space.shape and env.action_space.contains(action)
            assert all(s.shape == shape for s in state)
        means, _, _ = _play(policy, obs)
        np.testing.assert_allclose(action, np.clip(means[-1], -1, 1), rtol=0, atol=1e-6)
        # A new episode forgets the state: episode_start=True gives the zero-state action.
        again, _ = policy.predict(obs[0], state=state, episode_start=np.ones(1, bool), deterministic=True)
        first, _ = policy.predict(obs[0], deterministic=True)
        np.testing.assert_array_equal(again, first)
        # A batch of two envs: one state column each.
        batch, states = policy.predict(obs[:2], deterministic=True)
        assert batch.shape == (2, 2 * k) and states[0].shape == (1, 2, 8)
    assert sum(p.numel() for p in policy.parameters()) == sum(
        p.numel() for p in _recurrent(HET, 2, num_users=32)[0].parameters()
    )


def test_recurrent_ppo_trains_saves_and_loads(tmp_path: Path) -> None:
    from sb3_contrib import RecurrentPPO

    env = gym.make(HET, horizon=1.0)
    model = RecurrentPPO(
        RecurrentUserSetPolicy,
        env,
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs=with_env_layout({"hidden": 16, "lstm_hidden_size": 8, "log_std_init": -1.0}, env),
    )
    before = [p.detach().clone() for p in model.policy.lstm_actor.parameters()]
    model.learn(64)
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.lstm_actor.parameters(), strict=True))
    assert is_userset(model) and names_userset("agents.userset.RecurrentUserSetPolicy")
    assert not names_userset("MlpLstmPolicy") and not names_userset(f"agents.userset.{names_userset.__name__}")
    model.save(tmp_path / "m.zip")
    loaded = RecurrentPPO.load(tmp_path / "m.zip", device="cpu")
    assert isinstance(loaded.policy, RecurrentUserSetPolicy) and loaded.policy.lstm_output_dim == 8
    assert loaded.policy.reference_users == 6 and loaded.policy.hidden == 16
    for k in (6, 10):
        obs = _observations(gym.make(HET, num_users=k), 5)
        state, other = None, None
        for row in obs:
            mine, state = model.predict(row, state=state, deterministic=True)
            theirs, other = loaded.predict(row, state=other, deterministic=True)
            np.testing.assert_array_equal(theirs, mine)
            np.testing.assert_array_equal(other[0], state[0])


def test_recurrent_errors_are_one_line_value_errors() -> None:
    env = gym.make(HET)
    make = lambda **kw: RecurrentUserSetPolicy(  # noqa: E731
        env.observation_space, env.action_space, lambda _: 1e-3, **with_env_layout(kw, env)
    )
    with pytest.raises(ValueError, match="lstm_hidden_size must be an integer >= 1, got 0"):
        make(lstm_hidden_size=0)
    with pytest.raises(ValueError, match="n_lstm_layers must be an integer >= 1"):
        make(n_lstm_layers=1.5)
    with pytest.raises(ValueError, match="shared_lstm must be True or False, got 'yes'"):
        make(shared_lstm="yes")
    with pytest.raises(ValueError, match="shared_lstm and enable_critic_lstm exclude each other"):
        make(shared_lstm=True)
    with pytest.raises(ValueError, match="RecurrentUserSetPolicy hidden must be an integer >= 1"):
        make(hidden=0)
    policy, _ = _recurrent(HET)
    with pytest.raises(ValueError, match=r"state must be \(hidden, cell\), each of shape \(1, 1, 8\)"):
        policy.predict(env.reset(seed=0)[0], state=(np.zeros((1, 1, 4)), np.zeros((1, 1, 4))))
    with pytest.raises(ValueError, match="episode_start must have 1 entries, got 2"):
        policy.predict(env.reset(seed=0)[0], episode_start=np.zeros(2))
    with pytest.raises(ValueError, match="RecurrentUserSetPolicy: an observation of 33 entries does not fit"):
        policy.predict(np.zeros(33, np.float32))
    for bad in (gym.make(HET, arrival_rate=0.5), gym.make(HOM)):
        with pytest.raises(ValueError) as info:
            check_layout(policy.observation_fields, policy.homogeneous, bad)
        assert "\n" not in str(info.value) and "trained on" in str(info.value)


def test_train_ppo_lstm_userset_end_to_end_and_benchmark_at_another_k(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train.py --algo ppo_lstm --agent userset reads ppo_lstm_userset.yml, evaluates at K = 10 while training at 6;
    agents.benchmark plays the saved model at K = 10 and refuses another layout in one line; the leaderboard names
    the agent ppo_lstm_userset."""
    from agents.benchmark import main as bench_main
    from agents.leaderboard import agent_command
    from agents.train import main as train_main

    assert agent_command("ppo_lstm_userset") == ["--algo", "ppo_lstm", "--agent", "userset"]
    argv = [
        "--algo",
        "ppo_lstm",
        "--agent",
        "userset",
        "--env",
        HET,
        "-n",
        "4096",
        "--seed",
        "0",
        "-f",
        str(tmp_path),
        "--eval-freq",
        "4096",
        "--eval-episodes",
        "1",
        "--baselines",
        "het-opt-oracle",
        "--verbose",
        "0",
        # Episodes of 1 s (simulated) instead of 10: the evaluations and the benchmark play round by round.
        "--env-kwargs",
        "horizon:1.0",
        "--eval-env-kwargs",
        "num_users:10",
        "horizon:1.0",
    ]
    assert train_main(argv) == 0
    (run,) = (tmp_path / "ppo_lstm").glob(f"{HET}_*")
    assert read_yaml(run / HET / "config.yml")["policy"] == "agents.userset.RecurrentUserSetPolicy"
    data = np.load(run / "evaluations.npz")
    assert data["goodput"].shape == (2, 1) and np.all(data["goodput"] > 0)  # at K = 10, before and after training
    capsys.readouterr()
    out = tmp_path / "b10"
    argv = ["--agents", str(run), "--env-kwargs", "num_users:10", "horizon:1.0", "--episodes", "2"]
    assert bench_main([*argv, "--policies", "het-opt-oracle", "--no-plots", "-q", "-o", str(out)]) == 0
    report = json.loads((out / "benchmark.json").read_text())
    assert report["env_kwargs"] == {"horizon": 1.0, "num_users": 10}
    oracle, agent = report["policies"]
    assert oracle["policy"] == "het-opt-oracle" and agent["kind"] != "analytic"
    assert float(agent["goodput_mean"]) > 0 and len(agent["episodes_detail"]) == 2
    argv = ["--agents", str(run), "--env-kwargs", "arrival_rate:0.5", "--episodes", "1", "--no-plots"]
    assert bench_main([*argv, "-o", str(tmp_path / "bad")]) == 2
    line = _one_error_line(capsys)
    assert "trained on the observation fields" in line and "active, remaining" in line


def test_a_hyperparameter_search_keeps_the_layout_and_searches_the_shared_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--optimize replaces the policy kwargs by the trial's: a user-set policy still gets the env layout and K_train,
    and the sampled width as its ``hidden``; so does a training from a trial (--trial-id)."""
    import optuna

    from agents.train import main as train_main
    from agents.userset import UserSetPolicy, search_policy_kwargs

    assert search_policy_kwargs(
        {"net_arch": {"pi": [32, 32], "vf": [32, 32]}, "log_std_init": -1.0, "lstm_hidden_size": 16},
        {"hidden": 64, "observation_fields": ("a",), "homogeneous": False, "reference_users": 6},
    ) == {
        "hidden": 32,
        "log_std_init": -1.0,
        "lstm_hidden_size": 16,
        "observation_fields": ("a",),
        "homogeneous": False,
        "reference_users": 6,
    }
    built: list[tuple[int, tuple[str, ...], int | None]] = []
    init = UserSetPolicy.__init__

    def record(self: UserSetPolicy, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append((self.hidden, self.observation_fields, self.reference_users))

    monkeypatch.setattr(UserSetPolicy, "__init__", record)
    storage = tmp_path / "study.log"
    study = ["--storage", str(storage), "--study-name", "s"]
    common = ["--algo", "ppo", "--agent", "userset", "--env", HET, "--seed", "0", "--verbose", "0"]
    common += ["--env-kwargs", "horizon:1.0", "fading:False"]
    argv = [*common, "-n", "256", "-f", str(tmp_path / "opt"), "--optimize", "--n-trials", "2"]
    argv += ["--n-startup-trials", "2", "--n-evaluations", "1", "--eval-episodes", "1", "--no-optim-plots"]
    assert train_main([*argv, *study, "-params", "n_envs:2"]) == 0
    trials = optuna.load_study(
        study_name="s", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    ).trials
    fields = tuple(observation_layout(6))
    assert [b[0] for b in built] == [t.params["net_width"] for t in trials]
    assert all(b[1] == fields and b[2] == 6 for b in built)
    built.clear()
    run = ["-n", "64", "-f", str(tmp_path / "run"), "--eval-freq", "-1", "--trial-id", "1", "-params", "n_envs:2"]
    assert train_main([*common, *study, *run]) == 0
    assert built == [(trials[1].params["net_width"], fields, 6)]
