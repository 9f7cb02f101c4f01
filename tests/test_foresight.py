"""The energy budget (docs/model.md section 5.7, eq. (5.7a)), the running throughput (section 5.9) and their
analytic controllers het-opt-energy and het-opt-pf (baselines/foresight.py, docs/model.md section 7.4)."""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from reference_round import decode_action, device_energy, drained_users_out
from test_kernels import settings_of

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate, geometric_mean_throughput, suite_metric
from baselines.foresight import (
    ENERGY_PRICE_SEEDS,
    ENERGY_PRICES,
    EnergyPricePolicy,
    ProportionalFairPolicy,
    _validation_goodput,
    energy_price_survival,
    pf_weights,
    tune_energy_price,
)
from baselines.policies import make_policy
from baselines.solvers import solve_heterogeneous
from multispin_env.model import RoundParams, remaining_energy, round_latency, token_table

HET = "MultiSpin-Heterogeneous-v0"


def _random_actions(rng: np.random.Generator, size: int, num_users: int) -> np.ndarray:
    """Mostly long drafts (budgets run dry), some users at L = 0, shares spread."""
    action = rng.uniform(-1.0, 1.0, (1, size))
    action[:, : size - num_users] = rng.choice([-1.0, 0.2, 1.0], (1, size - num_users), p=[0.2, 0.3, 0.5])
    return action.astype(np.float32).astype(np.float64)  # what the env decodes from the float32 action


@pytest.mark.parametrize(
    "settings",
    [
        dict(energy_budget=1.5, observe_throughput=True),
        dict(energy_budget=0.8, fading=False, upload_deadline=0.03, acceptance_process="markov"),
        dict(energy_budget=2.0, observe_throughput=True, arrival_rate=4.0, mean_request_tokens=8.0),
    ],
)
def test_budget_and_throughput_match_a_numpy_reference(settings: dict[str, Any]) -> None:
    """Every round: the drained users (eq. (5.7a), the numpy reference of tests/reference_round.py on the state
    before the round), the lengths, shares and energy the env applied, the remaining budget, the running throughput
    (eq. (5.9a)) and their observation entries and info."""
    env = gym.make(HET, horizon=3.0, **settings)
    core = env.unwrapped.core
    k = core.num_users
    s = settings_of(core, float(env.observation_space.high[k]))
    budget = settings["energy_budget"]
    layout = env.unwrapped.observation_layout
    rng = np.random.default_rng(5)
    obs, info = env.reset(seed=3)
    np.testing.assert_array_equal(info["energy_left"], np.full(k, budget))
    drained_rounds = drafted_rounds = 0
    tokens = np.zeros(k)
    for _ in range(150):
        left, t, c = core.energy_left[0].copy(), core.draft_time[0].copy(), core.upload_time[0].copy()
        power = core.draft_power[0].copy()
        action = _random_actions(rng, core.action_size, k)
        lengths, shares = decode_action(action, k, s.max_draft)
        if core.arrivals:
            active = core.requests.active[0][None]
            kept = np.where(active, shares, 0.0)
            shares = np.where(active, kept * shares.sum() / max(kept.sum(), 1e-300), 0.0) if kept.sum() > 0 else kept
            lengths = np.where(active, lengths, 0.0)
        want = lengths.copy()
        lengths, shares = drained_users_out(s, lengths, shares, t[None], c[None], power[None], left[None])
        energy = device_energy(s, lengths, t[None], c[None], shares, power[None])[0]
        obs, _, _, truncated, info = env.step(action[0].astype(np.float32))
        np.testing.assert_array_equal(info["draft_lengths"], lengths[0])
        np.testing.assert_allclose(info["bandwidth"], shares[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(info["energy"], energy, rtol=1e-12, atol=1e-15)
        assert np.all(energy <= left)  # every user pays its round
        np.testing.assert_allclose(info["energy_left"], left - energy, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(obs[layout["energy_left"]], (left - energy) / budget, rtol=1e-6, atol=1e-7)
        drained_rounds += int(np.any((want[0] > 0) & (lengths[0] == 0)))
        drafted_rounds += int(np.any(lengths[0] > 0))
        tokens += info["tokens"]
        if settings.get("observe_throughput"):
            np.testing.assert_allclose(info["throughput"], tokens / info["clock"], rtol=1e-12)
            expected = np.minimum(tokens / info["clock"] * core.server_round_time(), s.max_draft + 1)
            np.testing.assert_allclose(obs[layout["throughput"]], expected, rtol=1e-6)
        if truncated:
            obs, info = env.reset()
            tokens[:] = 0.0
            np.testing.assert_array_equal(info["energy_left"], np.full(k, budget))
            assert np.all(obs[layout["energy_left"]] == 1.0)
    assert drained_rounds >= 10 and drafted_rounds >= 10, (drained_rounds, drafted_rounds)


def test_a_drained_device_drafts_nothing_and_gets_the_servers_token() -> None:
    """A budget below any draft's energy: every round is server-only decoding, whatever the action."""
    env = gym.make(HET, energy_budget=1e-6, fading=False, horizon=1.0)
    env.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = env.step(np.ones(env.action_space.shape, dtype=np.float32))
        assert not info["draft_lengths"].any() and not info["bandwidth"].any() and not info["energy"].any()
        np.testing.assert_array_equal(info["tokens"], 1)
        np.testing.assert_array_equal(info["energy_left"], 1e-6)


def test_without_the_settings_nothing_changes_in_the_interface() -> None:
    env = gym.make(HET)
    k = env.unwrapped.num_users
    _, info = env.reset(seed=0)
    assert env.observation_space.shape == (5 * k + 1,)
    assert "energy_left" not in info and "throughput" not in info
    assert np.all(np.isinf(env.unwrapped.core.energy_left))
    both = gym.make(HET, energy_budget=3.0, observe_throughput=True)
    assert both.observation_space.shape == (7 * k + 1,)
    assert list(both.unwrapped.observation_layout)[-2:] == ["energy_left", "throughput"]


@pytest.mark.parametrize("mode", ["NEXT_STEP", "SAME_STEP"])
def test_the_vector_env_reports_and_masks_the_new_keys_every_step(mode: str) -> None:
    envs = gym.make_vec(HET, num_envs=3, energy_budget=1.0, observe_throughput=True, horizon=0.4, autoreset_mode=mode)
    _, info = envs.reset(seed=0)
    for _ in range(10):
        *_, info = envs.step(envs.action_space.sample())
        for key in ("energy_left", "throughput"):
            assert info[key].shape == (3, envs.num_users) and info[f"_{key}"].all(), key
            if "final_info" in info:
                assert key in info["final_info"]
    np.testing.assert_allclose(info["energy_left"], envs.core.energy_left)
    np.testing.assert_allclose(info["throughput"], envs.core.throughput)


def test_the_remaining_budget_is_the_budget_less_the_energy_spent_and_never_negative() -> None:
    """B_k of eq. (5.7a): the budget less the energy spent, never negative, inf without a budget (the kernel's drain
    check and observation use it; the numpy reference test above checks both against B - spent)."""
    budget = np.array([5.0, 5.0, 5.0, np.inf])
    spent = np.array([0.0, 2.0, 7.0, 3.0])
    np.testing.assert_array_equal(remaining_energy(budget, spent), [5.0, 3.0, 0.0, np.inf])


@pytest.mark.parametrize("value", [0, 0.0, -1.0, float("nan"), float("inf"), "5", True, 1e13])
def test_bad_energy_budget_is_a_one_line_error_naming_it(value: Any) -> None:
    with pytest.raises(ValueError, match="energy_budget") as error:
        gym.make(HET, energy_budget=value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_bad_observe_throughput_is_an_error_naming_it(value: Any) -> None:
    with pytest.raises(ValueError, match="observe_throughput"):
        gym.make(HET, observe_throughput=value)


def test_the_suite_tasks_pass_the_sb3_checker() -> None:
    from stable_baselines3.common.env_checker import check_env

    for env_id in ("MultiSpinSuite/EnergyBudget-v0", "MultiSpinSuite/Fairness-v0"):
        check_env(gym.make(env_id).unwrapped, warn=False)


# ------------------------------------------------------------------------------------------- baselines
def test_pf_weights_are_one_over_the_running_throughput_and_drive_the_weighted_solver() -> None:
    """w_k = 1 / max(tokens_k, 1) (eq. (7.4b)); het-opt-pf plays het-opt-oracle with exactly those weights."""
    np.testing.assert_allclose(pf_weights(np.array([0.0, 1.0, 4.0, 0.5])), [1.0, 1.0, 0.25, 1.0])
    env = gym.make(HET, scenario="strong-heterogeneity", population_seed=1, fading=False, horizon=2.0)
    core = env.unwrapped.core
    pf = ProportionalFairPolicy(env)
    obs, _ = env.reset(seed=4)
    pf.reset()
    unequal = 0
    for _ in range(15):
        weights = pf_weights(core.episode_tokens[0])
        np.testing.assert_allclose(weights * np.maximum(core.episode_tokens[0], 1.0), 1.0)
        action, _ = pf.predict(obs)
        np.testing.assert_allclose(pf.weights, weights)
        expected, _ = make_policy("het-opt-oracle", env, weights=weights).predict(obs)
        np.testing.assert_array_equal(action, expected)
        unequal += int(np.ptp(weights) > 0)
        obs, *_ = env.step(action)
    assert unequal >= 10  # the weights moved the solver off the max-sum allocation's weights


def test_the_priced_token_table_is_the_lagrangian_objective_exactly() -> None:
    """het-opt on the priced curve of eq. (7.4a) attains the maximum over every length vector of
    (sum_k E[n_k](L_k) - sum_k lambda_k e_k L_k) / T(L) (equal-finish shares), by exhaustive search."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        k, max_draft = 3, 4
        params = RoundParams(
            acceptance=rng.uniform(0.4, 0.95, k),
            draft_time=rng.choice([0.004, 0.01, 0.025], k),
            upload_time=rng.uniform(2e-4, 3e-3, k),
            max_draft=max_draft,
            verify_base=0.06,
            verify_per_token=5e-4,
        )
        survival = params.acceptance[:, None] ** np.arange(1, max_draft + 1)
        cost = rng.uniform(0.01, 0.06, k)  # J per drafted token
        price = rng.uniform(0.0, 20.0, k)
        priced = RoundParams(**{**_fields(params), "survival": energy_price_survival(survival, cost, price)})
        tokens = token_table(survival)  # (K, L_max + 1)

        every = itertools.product(range(max_draft + 1), repeat=k)
        best = max(_priced_objective(params, tokens, price * cost, np.array(lengths)) for lengths in every)
        chosen = solve_heterogeneous(priced).draft_lengths
        assert _priced_objective(params, tokens, price * cost, chosen) == pytest.approx(best, rel=1e-9)


def _priced_objective(params: RoundParams, tokens: np.ndarray, charge: np.ndarray, lengths: np.ndarray) -> float:
    """(sum_k E[n_k](L_k) - sum_k lambda_k e_k L_k) / T(L), eq. (7.4a); ``charge`` = lambda_k e_k (tokens per drafted
    token), T with the equal-finish shares."""
    gain = tokens[np.arange(lengths.size), lengths].sum() - float(np.sum(charge * lengths))
    return gain / float(round_latency(params, lengths))


def _fields(params: RoundParams) -> dict[str, Any]:
    return {
        "acceptance": params.acceptance,
        "draft_time": params.draft_time,
        "upload_time": params.upload_time,
        "max_draft": params.max_draft,
        "verify_base": params.verify_base,
        "verify_per_token": params.verify_per_token,
    }


def test_the_tuned_energy_price_is_the_best_on_the_validation_seeds_and_never_gets_drained() -> None:
    """The tuned price: the best validation goodput of the price grid (checked against its neighbours and 0);
    with it the plan never asks for a draft the budget cannot pay (the env drains nobody), every device spends
    at most the budget, while het-opt-oracle's plan (greedy) does get drained: the budget binds."""
    budget = 2.4
    env = gym.make(HET, fading=False, energy_budget=budget, horizon=3.0)
    core = env.unwrapped.core
    policy = EnergyPricePolicy(env)
    price = float(policy.price[0])
    assert np.all(policy.price == price) and price == tune_energy_price(core.config) and price > 0.0
    best = _validation_goodput(core.config, price, ENERGY_PRICE_SEEDS)
    grid = (0.0, *ENERGY_PRICES)
    at = grid.index(price)
    for other in {grid[0], grid[max(at - 1, 0)], grid[min(at + 1, len(grid) - 1)]} - {price}:
        assert _validation_goodput(core.config, other, ENERGY_PRICE_SEEDS) <= best
    for seed in ENERGY_PRICE_SEEDS:
        obs, _ = env.reset(seed=seed)
        policy.reset()
        done = False
        while not done:
            action, _ = policy.predict(obs)
            obs, _, terminated, truncated, info = env.step(action)
            np.testing.assert_array_equal(info["draft_lengths"], policy.last_allocation.draft_lengths)
            done = terminated or truncated
        assert np.all(core.energy_spent[0] <= budget)
    greedy = make_policy("het-opt-oracle", env)
    obs, _ = env.reset(seed=ENERGY_PRICE_SEEDS[0])
    drained, done = 0, False
    while not done:
        action, _ = greedy.predict(obs)
        obs, _, terminated, truncated, info = env.step(action)
        drained += int(np.any(info["draft_lengths"] < greedy.last_allocation.draft_lengths))
        done = terminated or truncated
    assert drained > 0
    for bad in (-1.0, float("nan"), "1", np.ones(core.num_users + 1)):
        with pytest.raises(ValueError, match="price"):
            EnergyPricePolicy(env, price=bad)
    assert np.all(EnergyPricePolicy(gym.make(HET)).price == 0.0)  # no budget: het-opt-oracle
    with pytest.raises(ValueError, match="energy_budget"):
        tune_energy_price(gym.make(HET).unwrapped.config)


def test_geometric_mean_throughput_counts_a_user_without_tokens_as_one() -> None:
    assert geometric_mean_throughput(np.array([4.0, 1.0]), 2.0) == pytest.approx(1.0)
    assert geometric_mean_throughput(np.array([4.0, 0.0]), 2.0) == pytest.approx(1.0)
    env = gym.make(HET, horizon=1.0, fading=False)
    result = evaluate(env, make_policy("het-opt-static", env), [0, 1])
    values = [e.throughput_geomean for e in result.episodes]
    assert suite_metric(result, "throughput_geomean") == pytest.approx(np.mean(values))
    assert all(
        0.0 < v <= e.goodput / env.unwrapped.num_users + 1e-9 for v, e in zip(values, result.episodes, strict=True)
    )


def test_the_user_set_policy_reads_the_new_per_user_fields_at_any_k() -> None:
    """The budget and throughput fields are per-user rows of the user-set policy: it acts at another K, and
    permuting the users permutes its action (lengths and shares alike)."""
    import torch as th

    from agents.userset import UserSetPolicy, with_env_layout

    settings = dict(energy_budget=3.0, observe_throughput=True)
    env = gym.make(HET, **settings)
    th.manual_seed(0)
    policy = UserSetPolicy(env.observation_space, env.action_space, lambda _: 1e-3, **with_env_layout({}, env))
    with th.no_grad():
        for p in policy.parameters():
            p.normal_(0.0, 0.3)
    other = gym.make(HET, num_users=4, **settings)
    obs, _ = other.reset(seed=0)
    other.step(other.action_space.sample())
    obs, *_ = other.step(other.action_space.sample())
    action, _ = policy.predict(obs, deterministic=True)
    assert action.shape == (8,)
    layout = other.unwrapped.observation_layout
    perm = np.array([2, 0, 3, 1])
    permuted = obs.copy()
    for where in layout.values():
        if where.stop - where.start == 4:
            permuted[where] = obs[where][perm]
    moved, _ = policy.predict(permuted, deterministic=True)
    np.testing.assert_allclose(moved[:4], action[:4][perm], atol=1e-6)
    np.testing.assert_allclose(moved[4:], action[4:][perm], atol=1e-6)
    assert {"energy_left", "throughput"} <= set(policy.observation_fields)


@pytest.mark.parametrize("base", ["het-opt-energy", "het-opt-pf"])
def test_the_static_level_foresight_controllers_plan_with_the_mean_system(base: str) -> None:
    """``*-static``: the same rule planned with the population's mean system. On a static channel with i.i.d.
    acceptance that is the simulated system, so they play their oracle twins' actions; with fading they plan with
    the mean channel (|h|^2 = 1), as het-opt-static does, and differ from the oracle's."""
    for settings, same in ((dict(fading=False), True), (dict(fading=True), False)):
        env = gym.make(HET, energy_budget=3.0, horizon=2.0, **settings)
        static, oracle = make_policy(f"{base}-static", env), make_policy(base, env)
        assert static.name == f"{base}-static" and static.information == "static" and oracle.information == "oracle"
        if base == "het-opt-energy" and same:  # tuned at its own level: the same plans, so the same price
            np.testing.assert_array_equal(static.price, oracle.price)
        obs, _ = env.reset(seed=5)
        for policy in (static, oracle):
            policy.reset()
        differ = 0
        for _ in range(12):
            action, _ = static.predict(obs)
            other, _ = oracle.predict(obs)
            differ += int(not np.array_equal(action, other))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        assert (differ == 0) if same else (differ > 0), differ
    with pytest.raises(ValueError, match="information must be one of"):
        ProportionalFairPolicy(gym.make(HET), "adaptive")
    with pytest.raises(ValueError, match="information must be one of"):
        EnergyPricePolicy(gym.make(HET), information="psychic")
