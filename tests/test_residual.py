"""Residual agent (agents/residual.py), unbiased stochastic rounding during training (agents/wrappers.py) and the
residual / recurrent agents trained and evaluated on a suite task through train.py and the benchmark loader."""

from __future__ import annotations

import copy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate
from agents.residual import ResidualMlpPolicy, ResidualPolicy, VecResidual, compose
from agents.runs import read_yaml
from agents.vec_env import make_batched_vec_env
from agents.wrappers import VecStochasticRounding, for_evaluation, stochastic_round
from baselines.policies import make_policy

TASK = "MultiSpinSuite/IIDStatic-v0"
SHORT = {"horizon": 1.0}


def test_stochastic_round_is_unbiased_and_lands_on_a_neighbour() -> None:
    rng = np.random.default_rng(0)
    x = np.array([0.0, 0.3, 2.5, 3.9, 7.0, 11.75])
    draws = np.stack([stochastic_round(x, rng) for _ in range(20_000)])
    assert np.all((draws == np.floor(x)) | (draws == np.ceil(x)))
    frac = x - np.floor(x)
    sigma = np.sqrt(frac * (1 - frac) / draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - x) <= 5 * sigma + 1e-12)  # E[round(x)] = x
    assert np.all(draws[:, frac == 0] == x[frac == 0])  # integers stay


def test_vec_stochastic_rounding_plays_a_neighbouring_length_without_bias_and_is_seeded() -> None:
    def lengths_played(seed: int, steps: int = 300) -> np.ndarray:
        venv = VecStochasticRounding(make_batched_vec_env(TASK, 4, SHORT))
        venv.seed(seed)
        venv.reset()
        k = venv.get_attr("num_users")[0]
        action = np.zeros((4, venv.action_space.shape[0]), dtype=np.float32)
        action[:, :k] = np.linspace(-0.95, 0.95, k)  # continuous lengths between integers
        out = []
        for _ in range(steps):
            _, _, _, infos = venv.step(action)
            out.append([info["draft_lengths"] for info in infos])
        venv.close()
        return np.array(out, dtype=float).reshape(-1, k), (action[0, :k] + 1) * venv.max_draft / 2

    played, x = lengths_played(1)
    assert np.all((played == np.floor(x)) | (played == np.ceil(x)))
    frac = x - np.floor(x)
    sigma = np.sqrt(frac * (1 - frac) / played.shape[0])
    assert np.all(np.abs(played.mean(axis=0) - x) <= 5 * sigma + 1e-12)
    again, _ = lengths_played(1)
    assert np.array_equal(played, again)  # seeded


def test_an_integer_length_entry_keeps_its_length_under_stochastic_rounding() -> None:
    """An action rounded already (VecResidual's draw, sent as float32 entries) is played as it is."""
    from agents.wrappers import round_length_entries

    for lmax in (4, 8, 10, 16):
        lengths = np.arange(lmax + 1)
        entries = np.tile((2.0 * lengths / lmax - 1.0).astype(np.float32), (200, 1))
        again = round_length_entries(entries, lmax + 1, lmax, np.random.default_rng(0))
        assert np.array_equal(np.rint((again + 1.0) * lmax / 2.0), np.tile(lengths, (200, 1)))
        assert np.allclose(again, entries, atol=1e-6)


def test_for_evaluation_turns_the_wrapper_off_for_evaluation() -> None:
    venv = for_evaluation(VecStochasticRounding(make_batched_vec_env(TASK, 2, SHORT)))
    venv.seed(0)
    venv.reset()
    # (0.13 + 1) L_max / 2 is 5.65 at L_max = 10: stochastic rounding would play 6 in 65 % of the users' rounds.
    action = np.full((2, venv.action_space.shape[0]), 0.13, dtype=np.float32)
    half = venv.max_draft / 2
    for _ in range(20):
        _, _, _, infos = venv.step(action)
        assert all(np.all(info["draft_lengths"] == np.rint((0.13 + 1) * half)) for info in infos)


def _base_actions(env: gym.Env, n: int, seed: int) -> np.ndarray:
    """Encoded random allocations (some users idle), as an analytic policy would send them."""
    rng = np.random.default_rng(seed)
    k, lmax = env.unwrapped.num_users, env.unwrapped.max_draft
    lengths = rng.integers(0, lmax + 1, size=(n, k))
    shares = rng.random((n, k)) + 0.01
    shares = shares / shares.sum(axis=1, keepdims=True)
    return env.unwrapped.encode_action(lengths, shares)


def test_compose_is_exact_at_zero_and_bounded_otherwise() -> None:
    env = gym.make(TASK, **SHORT)
    core = env.unwrapped
    k, lmax = core.num_users, core.max_draft
    base = _base_actions(env, 200, 0)
    zero = compose(base, np.zeros_like(base), k, lmax, 2.0, 2.0)
    base_l, base_b = core.decode_action(base)
    zero_l, zero_b = core.decode_action(zero)
    assert (
        np.array_equal(zero[:, :k], base[:, :k]) and np.array_equal(zero_l, base_l) and np.array_equal(zero_b, base_b)
    )
    correction = np.random.default_rng(1).uniform(-1.5, 1.5, base.shape)  # out of range: clipped to [-1, 1]
    new_l, new_b = core.decode_action(compose(base, correction, k, lmax, 2.0, 2.0))
    assert np.all(np.abs(new_l - base_l) <= 2)
    both = (new_l > 0) & (base_l > 0)
    for row in range(base.shape[0]):
        users = np.flatnonzero(both[row])
        if users.size < 2:
            continue
        ratio = new_b[row, users] / base_b[row, users]
        assert ratio.max() / ratio.min() <= 4.0 * (
            1 + 1e-6
        )  # each weight moves by a factor in [1/2, 2] (float32 actions)
    assert np.any(new_l[base_l == 0] > 0)  # idle users can be switched on (they then get a share)
    assert np.all(new_b[(new_l > 0)] > 0)


def test_compose_per_token_is_exact_at_zero_and_moves_a_users_weight_with_its_length() -> None:
    env = gym.make(TASK, **SHORT)
    core = env.unwrapped
    k, lmax = core.num_users, core.max_draft
    base = _base_actions(env, 300, 2)
    base_l, base_b = core.decode_action(base)
    zero = compose(base, np.zeros_like(base), k, lmax, 2.0, 2.0, share_per_token=True)
    zero_l, zero_b = core.decode_action(zero)
    assert (
        np.array_equal(zero[:, :k], base[:, :k]) and np.array_equal(zero_l, base_l) and np.array_equal(zero_b, base_b)
    )
    # One length entry moved by exactly one token (offset 2 tokens: entry 0.5), no share correction.
    checked = switched = 0
    for row in range(base.shape[0]):
        user = row % k
        step = 1 if base_l[row, user] < lmax else -1
        correction = np.zeros(base.shape[1], np.float32)
        correction[user] = 0.5 * step
        new_l, new_b = core.decode_action(compose(base[row], correction, k, lmax, 2.0, 2.0, share_per_token=True))
        assert new_l[user] == base_l[row, user] + step and np.array_equal(
            np.delete(new_l, user), np.delete(base_l[row], user)
        )
        others = np.flatnonzero((base_l[row] > 0) & (np.arange(k) != user))
        if others.size == 0 or new_l[user] == 0:
            continue
        if base_l[row, user] > 0:  # per token: the weight follows the length, the others keep their ratios
            expected = base_b[row, user] / base_b[row, others] * new_l[user] / base_l[row, user]
            checked += 1
        else:  # switched on: the smallest weight per token of the drafting users, times its length
            expected = (base_b[row, others] / base_l[row, others]).min() * new_l[user] / base_b[row, others]
            switched += 1
        np.testing.assert_allclose(new_b[user] / new_b[others], expected, rtol=1e-5)
    assert checked > 100 and switched > 5


class _Recorder(VecEnvWrapper):
    """Keeps the actions the env is sent."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.actions: list[np.ndarray] = []

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.actions.append(np.array(actions))
        self.venv.step_async(actions)

    def step_wait(self):  # type: ignore[no-untyped-def]
        return self.venv.step_wait()


def test_in_training_the_shares_are_sized_for_the_length_played() -> None:
    """Under the training's stochastic rounding a fractional length correction plays floor or ceil. VecResidual
    draws that rounding before it sizes the shares per token, so whichever length is played, every drafting user's
    weight per token keeps the controller's ratios (a length correction alone moves no user's upload time per
    token); sized for the nearest integer instead, a user playing the other neighbour had the share of a length it
    did not draft. The played lengths stay unbiased."""
    recorder = _Recorder(make_batched_vec_env(TASK, 4, SHORT))
    venv = VecResidual(VecStochasticRounding(recorder), share_per_token=True)
    venv.seed(3)
    venv.reset()
    core = gym.make(TASK, **SHORT).unwrapped
    k = core.num_users
    correction = np.zeros((4, venv.action_space.shape[0]), np.float32)
    correction[:, :k] = 0.15  # +0.3 token for every user (max_length_offset 2)
    checked = moved = 0
    offsets = []
    for _ in range(150):
        base_l, base_b = core.decode_action(venv._base_actions)
        venv.step(correction)
        new_l, new_b = core.decode_action(recorder.actions[-1])
        for row in range(4):
            users = np.flatnonzero((base_l[row] > 0) & (base_l[row] < core.max_draft) & (new_l[row] > 0))
            offsets += list(new_l[row, users] - base_l[row, users])
            if users.size < 2:
                continue
            moved += int(np.any(new_l[row, users] != base_l[row, users]))
            per_token = new_b[row, users] / new_l[row, users]
            controllers = base_b[row, users] / base_l[row, users]
            np.testing.assert_allclose(per_token / per_token.max(), controllers / controllers.max(), rtol=1e-5)
            checked += 1
    assert checked > 300 and moved > 100
    assert set(offsets) <= {0, 1}
    assert abs(np.mean(offsets) - 0.3) < 0.05


def test_residual_policy_network_starts_at_the_controller_and_loads_trained_weights(tmp_path: Path) -> None:
    """The untrained agent's deterministic correction is exactly 0 (it plays the controller's allocation); a
    saved agent keeps its weights when loaded (the zeroing is at construction only)."""
    import torch
    from stable_baselines3 import PPO

    venv = VecResidual(make_batched_vec_env(TASK, 4, SHORT), share_per_token=True)
    model = PPO(ResidualMlpPolicy, venv, n_steps=16, batch_size=16, seed=0, device="cpu")
    obs = venv.reset()
    for _ in range(20):
        correction, _ = model.predict(obs, deterministic=True)
        assert np.array_equal(correction, np.zeros_like(correction))
        obs, *_ = venv.step(correction)
    sampled, _ = model.predict(obs, deterministic=False)
    assert np.abs(sampled).max() > 0.01  # training explores around the controller
    with torch.no_grad():
        model.policy.action_net.bias.fill_(0.25)
    model.save(tmp_path / "agent")
    loaded = PPO.load(tmp_path / "agent", device="cpu")
    assert isinstance(loaded.policy, ResidualMlpPolicy)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], 0.25)


# A controller that keeps per-env state across rounds (the rate posterior) on a task whose hidden acceptance regime
# it filters: the wrapper must feed it every round and every episode start as the controller alone sees them.
BASES = [("het-opt-adaptive", TASK), ("het-opt-predictive-posterior", "MultiSpinSuite/Markov-v0")]


@pytest.mark.parametrize(("base", "task"), BASES)
@pytest.mark.parametrize("batched", [True, False])
def test_zero_correction_replays_the_controller(batched: bool, base: str, task: str) -> None:
    n, steps = 3, 60

    def make() -> gym.Env:
        return gym.make(task, **SHORT)

    # Reference: the controller on the same kind of vector env with the same seed (bound to the batch, or one
    # controller per sub-env of a DummyVecEnv).
    ref = make_batched_vec_env(task, n, SHORT) if batched else DummyVecEnv([make] * n)
    ref.seed(7)
    controllers = [make_policy(base, ref.venv)] if batched else [make_policy(base, e) for e in ref.envs]
    obs = ref.reset()
    residual = VecResidual(make_batched_vec_env(task, n, SHORT) if batched else DummyVecEnv([make] * n), base=base)
    residual.seed(7)
    aug = residual.reset()
    size = obs.shape[1]
    assert residual.observation_space.shape == (size + ref.action_space.shape[0],)
    for _ in range(steps):
        assert all(residual.observation_space.contains(row) for row in aug)
        if batched:
            action = controllers[0].predict(obs)[0]
        else:
            action = np.stack([c.predict(o)[0] for c, o in zip(controllers, obs, strict=True)])
        np.testing.assert_array_equal(aug[:, :size], obs)
        np.testing.assert_array_equal(aug[:, size:], action)
        obs, reward, done, infos = ref.step(action)
        aug, r2, d2, infos2 = residual.step(np.zeros((n, *residual.action_space.shape), np.float32))
        np.testing.assert_array_equal(reward, r2)
        np.testing.assert_array_equal(done, d2)
        assert all(np.array_equal(a["draft_lengths"], b["draft_lengths"]) for a, b in zip(infos, infos2, strict=True))


class _ZeroAgent:
    def reset(self) -> None:
        pass  # stateless

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.zeros((*observation.shape[:-1], self.size), np.float32), state

    def __init__(self, size: int) -> None:
        self.size = size


@pytest.mark.parametrize(("base", "task"), BASES)
def test_residual_policy_with_zero_correction_has_the_controllers_goodput(base: str, task: str) -> None:
    env = gym.make(task, **SHORT)
    seeds = [1000, 1001, 1002]
    controller = evaluate(env, make_policy(base, env), seeds)
    residual = evaluate(env, ResidualPolicy(_ZeroAgent(env.action_space.shape[0]), env, base=base), seeds)
    assert controller.episodes == residual.episodes  # same trajectory: same tokens, clock, rounds, lengths


def test_bad_residual_settings_are_one_line_errors() -> None:
    venv = make_batched_vec_env(TASK, 2, SHORT)
    with pytest.raises(ValueError, match="max_length_offset must be a positive"):
        VecResidual(venv, max_length_offset=0.0)
    with pytest.raises(ValueError, match="max_share_factor must be a number > 1"):
        VecResidual(venv, max_share_factor=1.0)
    with pytest.raises(ValueError, match="share_per_token must be true or false"):
        VecResidual(venv, share_per_token="yes")
    with pytest.raises(ValueError, match="unknown analytic policy"):
        VecResidual(venv, base="het-opt-magic")


@pytest.mark.parametrize(
    ("algo", "agent"),
    [("ppo", "residual"), ("ppo_lstm", None), ("ppo", "residual_predictive"), ("ppo", "residual_posterior")],
)
def test_residual_and_recurrent_agents_train_and_evaluate_on_a_suite_task(
    tmp_path: Path, algo: str, agent: str | None
) -> None:
    from agents.benchmark import load_agent_policy
    from agents.train import main as train_main

    tiny = ["n_envs:2", "n_steps:32", "batch_size:32", "n_epochs:1"]
    tiny += [
        "policy_kwargs:dict(lstm_hidden_size=8, net_arch=[8])"
        if algo == "ppo_lstm"
        else "policy_kwargs:dict(net_arch=[8])"
    ]
    argv = [
        "--algo",
        algo,
        "--env",
        TASK,
        "-n",
        "64",
        "--seed",
        "1",
        "-f",
        str(tmp_path),
        "--eval-freq",
        "64",
        "--eval-episodes",
        "1",
        "--baselines",
        "--env-kwargs",
        "horizon:1.0",
        "-params",
        *tiny,
        "--verbose",
        "0",
    ]
    assert train_main(argv + (["--agent", agent] if agent else [])) == 0
    (run,) = (tmp_path / algo).glob("MultiSpinSuite-IIDStatic-v0_*")
    config = read_yaml(run / "MultiSpinSuite-IIDStatic-v0" / "config.yml")
    # The suite task trains with the tuned entry of the id it is registered on, not rl-zoo3's "default".
    assert config["callback"] == "agents.callbacks.GoodputEvalCallback"
    assert "agents.wrappers.VecStochasticRounding" in config["vec_env_wrapper"]
    env = gym.make(TASK, horizon=1.0)
    policy = load_agent_policy(run, env)
    assert isinstance(policy, ResidualPolicy) == (agent is not None)
    bases = {"residual": "het-opt-adaptive", "residual_predictive": "het-opt-predictive"}
    bases["residual_posterior"] = "het-opt-predictive-posterior"
    if agent is not None:
        assert policy.controller.name == bases[agent]
    if agent == "residual_posterior":  # the leaderboard records the controller the run corrected
        from agents.leaderboard import Job, run_job

        result = run_job(Job("agent", TASK, f"ppo_{agent}", 1, run=str(run)), tmp_path / "board")
        assert result["controller"] == bases[agent] and result["kind"] == "agent"
    first, again = (evaluate(env, load_agent_policy(run, env), [3, 4]) for _ in range(2))
    assert first.episodes == again.episodes and first.goodputs.min() > 0  # deterministic evaluation


@pytest.mark.parametrize(
    ("agent", "base", "like"),
    [
        ("residual_predictive", "het-opt-predictive", "residual"),
        ("residual_posterior", "het-opt-predictive-posterior", "residual_predictive"),
    ],
)
def test_residual_yamls_are_one_yaml_with_another_base(agent: str, base: str, like: str) -> None:
    """The residual agents' files repeat one another's entries (YAML cannot include another file):
    ppo_residual_predictive.yml is ppo_residual.yml with the base het-opt-predictive (and entries of its own for the
    stale-CSI tasks); ppo_residual_posterior.yml is ppo_residual_predictive.yml, every entry, with the base
    het-opt-predictive-posterior."""
    import yaml

    from agents.train import HYPERPARAMS_DIR

    reference = yaml.safe_load((HYPERPARAMS_DIR / f"ppo_{like}.yml").read_text())
    variant = yaml.safe_load((HYPERPARAMS_DIR / f"ppo_{agent}.yml").read_text())

    def residual_kwargs(entry: dict) -> dict:
        (kwargs,) = [w["agents.residual.VecResidual"] for w in entry["vec_env_wrapper"] if isinstance(w, dict)]
        return kwargs

    assert like == "residual" or set(variant) == set(reference)
    for env_id, entry in reference.items():
        entry = copy.deepcopy(entry)  # the YAML aliases (*residual) are one object
        assert residual_kwargs(variant[env_id])["base"] == base
        residual_kwargs(entry)["base"] = base
        assert variant[env_id] == entry, env_id
