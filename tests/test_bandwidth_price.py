"""experiments.bandwidth_price: the band split is the env's, and best-response dynamics end at an equilibrium
(no user can raise its own payoff on the grid, checked by brute force), on a small system."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from baselines.information import oracle_params
from baselines.solvers import score_allocation
from experiments.bandwidth_price import equilibrium, main, shares_of

pytest.importorskip("pettingzoo")

SMALL = {"num_users": 3, "fading": False, "max_draft": 4}


def test_shares_are_the_multiagent_env_s_split() -> None:
    from multispin_env.multiagent import parallel_env

    env = parallel_env(reward_mode="selfish", **SMALL)
    env.reset(seed=0)
    lengths, bids = np.array([2, 0, 3]), np.array([0.3, 0.9, 0.6])
    actions = {f"user_{k}": np.array([2 * lengths[k] / 4 - 1, 2 * bids[k] - 1]) for k in range(3)}
    *_, infos = env.step(actions)
    played = np.array([infos[f"user_{k}"]["bandwidth"] for k in range(3)])
    np.testing.assert_allclose(shares_of(env.core, lengths, bids), played)
    np.testing.assert_allclose(played, [1 / 3, 0.0, 2 / 3])


@pytest.mark.parametrize("price", [0.0, 5.0])
def test_best_responses_end_at_an_equilibrium(price: float) -> None:
    env = gym.make("MultiSpin-Heterogeneous-v0", **SMALL)
    env.reset(seed=1)
    core = env.get_wrapper_attr("core")
    systems = [oracle_params(env, weights=np.eye(3)[k]) for k in range(3)]
    bids = np.array([0.25, 0.5, 0.75, 1.0])
    eq = equilibrium(core, systems, price, bids, max_draft=4)
    assert eq["converged"]
    lengths, own = eq["lengths"], eq["bids"]

    def payoff(user: int, length: int, bid: float) -> float:
        trial_l, trial_w = lengths.copy(), own.copy()
        trial_l[user], trial_w[user] = length, bid
        allocation = score_allocation(systems[user], trial_l, shares_of(core, trial_l, trial_w))
        return float(allocation.objective) - price * bid * (length > 0)

    for user in range(3):
        now = payoff(user, int(lengths[user]), float(own[user]))
        assert all(payoff(user, length, b) <= now + 1e-9 for length in range(5) for b in bids)


def test_bad_price_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--prices", "-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bandwidth_price: error: --prices must be finite") and "\n" not in err
