"""The per-user PettingZoo env (multispin_env.multiagent): PettingZoo's own API and seed tests, and that it plays
the single env's round (same seed + joint action = same trajectory as MultiSpin-Heterogeneous-v0)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test, parallel_seed_test

import multispin_env  # noqa: F401
from multispin_env.multiagent import parallel_env

SMALL = {"num_users": 3, "horizon": 1.0}


@pytest.mark.parametrize("reward_mode", ["shared", "selfish"])
def test_pettingzoo_parallel_api(reward_mode: str) -> None:
    parallel_api_test(parallel_env(reward_mode=reward_mode, **SMALL), num_cycles=300)


def test_pettingzoo_parallel_api_fading_csi_noise_markov() -> None:
    parallel_api_test(
        parallel_env(
            num_users=4, horizon=0.5, csi_delay=2, csi_noise_std=0.3, acceptance_process="markov", draft_time_jitter=0.2
        ),
        num_cycles=200,
    )


def test_pettingzoo_seed_test() -> None:
    parallel_seed_test(lambda: parallel_env(**SMALL))


def test_agents_and_spaces() -> None:
    env = parallel_env(num_users=5)
    assert env.possible_agents == [f"user_{i}" for i in range(5)]
    assert env.agents == []
    obs, infos = env.reset(seed=1)
    assert env.agents == env.possible_agents
    for agent in env.agents:
        assert env.action_space(agent).shape == (2,)
        assert env.observation_space(agent).shape == (7,)
        assert obs[agent] in env.observation_space(agent)
        assert set(infos[agent]) == {"clock", "acceptance", "spectral_efficiency"}
    assert env.state().shape == env.state_space.shape == (26,)


def test_same_trajectory_as_single_heterogeneous_env() -> None:
    """Joint action [x_0..x_K-1, y_0..y_K-1] on the same seed: same tokens, clock and observations per user."""
    settings = {"num_users": 4, "horizon": 10.0, "acceptance_process": "markov", "draft_time_jitter": 0.1}
    single = gym.make("MultiSpin-Heterogeneous-v0", **settings)
    multi = parallel_env(**settings)
    obs_s, _ = single.reset(seed=7)
    obs_m, _ = multi.reset(seed=7)
    layout = single.unwrapped.observation_layout
    rng = np.random.default_rng(3)
    k = 4
    steps = 0
    while multi.agents:
        joint = rng.uniform(-1, 1, 2 * k).astype(np.float32)
        actions = {f"user_{i}": joint[[i, k + i]] for i in range(k)}
        obs_s, reward_s, _, trunc_s, info_s = single.step(joint)
        obs_m, rewards, _, truncs, infos = multi.step(actions)
        for i in range(k):
            agent = f"user_{i}"
            assert infos[agent]["tokens"] == info_s["tokens"][i]
            assert infos[agent]["draft_length"] == info_s["draft_lengths"][i]
            assert infos[agent]["bandwidth"] == pytest.approx(info_s["bandwidth"][i])
            assert rewards[agent] == pytest.approx(reward_s)  # shared reward = the single env's
            own = [
                obs_s[layout[name]][i]
                for name in ("spectral_efficiency", "draft_time", "acceptance", "last_draft_lengths", "last_tokens")
            ]
            np.testing.assert_array_equal(obs_m[agent][:5], np.float32(own))
            assert obs_m[agent][5] == obs_s[layout["time_left"]][0]
            assert obs_m[agent][6] == pytest.approx(np.count_nonzero(info_s["draft_lengths"]) / k)
            assert truncs[agent] == trunc_s
        np.testing.assert_array_equal(multi.state(), obs_s)
        steps += 1
    assert trunc_s and steps > 5
    assert multi.agents == []


def test_selfish_rewards_are_own_tokens() -> None:
    env = parallel_env(num_users=3, reward_mode="selfish", reward_scale=1.0)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step(env.encode_actions([0, 4, 8], [0.0, 0.3, 0.7]))
    for agent in env.agents:
        assert rewards[agent] == infos[agent]["tokens"]
        assert infos[agent]["goodput_tokens"] == sum(i["tokens"] for i in infos.values())
    assert infos["user_0"]["tokens"] == 1  # not drafting: the server's one token
    assert infos["user_0"]["bandwidth"] == 0.0


def test_bids_are_normalised_over_drafting_users() -> None:
    env = parallel_env(num_users=3)
    env.reset(seed=0)
    bids = {"user_0": [1.0, 1.0], "user_1": [1.0, 0.0], "user_2": [-1.0, 1.0]}  # w = 1, 0.5, 1 (user 2 idle)
    _, _, _, _, infos = env.step(bids)
    assert [infos[a]["draft_length"] for a in env.possible_agents] == [env.max_draft, env.max_draft, 0]
    assert infos["user_0"]["bandwidth"] == pytest.approx(2 / 3)
    assert infos["user_1"]["bandwidth"] == pytest.approx(1 / 3)
    assert infos["user_2"]["bandwidth"] == 0.0
    obs, *_ = env.step(bids)
    assert obs["user_0"][6] == pytest.approx(2 / 3)  # two of three users drafted last round


def test_encode_actions_roundtrip() -> None:
    env = parallel_env(num_users=3)
    env.reset(seed=0)
    _, _, _, _, infos = env.step(env.encode_actions([2, 0, 5], [0.25, 0.0, 0.75]))
    assert [infos[a]["draft_length"] for a in env.possible_agents] == [2, 0, 5]
    assert [infos[a]["bandwidth"] for a in env.possible_agents] == pytest.approx([0.25, 0.0, 0.75], abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"homogeneous": True}, "homogeneous is not a setting"),
        ({"config": {"homogeneous": False}}, "homogeneous is not a setting"),
        ({"reward_mode": "greedy"}, "reward_mode must be one of"),
        ({"render_mode": "human"}, "render_mode must be"),
        ({"num_users": 0}, "num_users"),
        ({"bogus": 1}, "got an unexpected keyword argument .bogus."),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parallel_env(**kwargs)


def test_bad_actions_raise_and_leave_state() -> None:
    env = parallel_env(num_users=2)
    env.reset(seed=0)
    clock = env.core.clock.copy()
    good = {"user_0": [0.0, 0.0], "user_1": [0.0, 0.0]}
    for bad, message in [
        ({"user_0": [0.0, 0.0]}, "missing action"),
        ({**good, "user_9": [0.0, 0.0]}, "unknown agent"),
        (
            {**good, 0: [0.0, 0.0], "user_99": [0.0, 0.0]},
            r"^unknown agent\(s\) 0, 'user_99'; agents are user_0 \.\. user_1$",
        ),
        ({**good, "user_1": [0.0, np.nan]}, "NaN or inf"),
        ({**good, "user_1": [0.0]}, "must be 2 real numbers"),
        ({**good, "user_1": "ab"}, "must be 2 real numbers"),
        ([0.0, 0.0], "must be a dict"),
    ]:
        with pytest.raises(ValueError, match=message):
            env.step(bad)
    np.testing.assert_array_equal(env.core.clock, clock)
    env.step({"user_0": [5.0, -7.0], "user_1": [0.0, 0.0]})  # out of range: clipped


def test_step_after_end_raises_and_render() -> None:
    env = parallel_env(num_users=2, horizon=0.05, render_mode="ansi")
    env.reset(seed=0)
    while env.agents:
        env.step({a: env.action_space(a).sample() for a in env.agents})
    assert isinstance(env.render(), str)
    with pytest.raises(ValueError, match="call reset"):
        env.step({})


def test_bandwidth_price_charges_drafting_selfish_users_their_bid_times_latency() -> None:
    price = 7.5
    free, priced = (parallel_env(reward_mode="selfish", bandwidth_price=p, **SMALL) for p in (0.0, price))
    free.reset(seed=3)
    priced.reset(seed=3)
    actions = free.encode_actions(np.array([3, 0, 5]), np.array([0.2, 0.3, 0.8]))
    actions["user_0"][1] = 0.5  # bid w = 0.75, any scale: the band is split in proportion to the bids
    _, free_rewards, _, _, free_infos = free.step(actions)
    _, rewards, _, _, infos = priced.step(actions)
    latency = infos["user_0"]["latency"]
    bids = {agent: (float(a[1]) + 1.0) / 2.0 for agent, a in actions.items()}
    scale = priced.config.reward_scale
    for agent in priced.possible_agents:
        drafting = infos[agent]["draft_length"] > 0
        expected = price * bids[agent] * latency if drafting else 0.0
        assert infos[agent]["payment"] == pytest.approx(expected)
        assert free_infos[agent]["payment"] == 0.0
        assert rewards[agent] == pytest.approx(free_rewards[agent] - scale * expected)
    assert infos["user_1"]["draft_length"] == 0 and infos["user_1"]["payment"] == 0.0
    assert infos["user_2"]["payment"] > 0.0


@pytest.mark.parametrize("price", [-1.0, float("nan"), float("inf"), "cheap"])
def test_bad_bandwidth_price(price: object) -> None:
    with pytest.raises(ValueError, match=r"^bandwidth_price must be a finite number in \[0.0, inf\]"):
        parallel_env(reward_mode="selfish", bandwidth_price=price)


def test_bandwidth_price_needs_selfish_users() -> None:
    with pytest.raises(ValueError, match="bandwidth_price is charged to selfish users"):
        parallel_env(bandwidth_price=1.0)
