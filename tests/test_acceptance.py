"""Acceptance processes (docs/model.md section 5.1): sampled prefixes follow the stated laws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from multispin_env.acceptance import (
    ACCEPTANCE_PROCESSES,
    MarkovAcceptance,
    MixtureAcceptance,
    PositionalAcceptance,
    RequestRates,
    TaskAcceptance,
    make_acceptance_process,
)
from multispin_env.config import EnvConfig
from multispin_env.model import expected_tokens
from multispin_env.requests import Requests
from multispin_env.scenarios import ACCEPTANCE_PROFILES

PROFILE = ACCEPTANCE_PROFILES["generic"]
MAX_DRAFT = 10


def _prefix_histogram_pvalue(accepted: np.ndarray, survival: np.ndarray) -> float:
    """Chi-square p-value of accepted-prefix counts against P(A >= i) = survival[i], i = 0..L."""
    length = survival.size - 1
    probabilities = survival - np.append(survival[1:], 0.0)  # P(A = i)
    observed = np.bincount(accepted.astype(int), minlength=length + 1)
    assert observed.size == length + 1, "a sample exceeded the draft length"
    expected = probabilities * accepted.size
    return float(stats.chisquare(observed, expected).pvalue)


def _sample(process, rates: np.ndarray, lengths: np.ndarray, rounds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    process.reset(None, rates, rng)
    draws = rng.standard_exponential((rounds, *rates.shape))
    return np.stack([process.sample(lengths, draws[t]) for t in range(rounds)])


def _process(name: str, num_envs: int, num_users: int, **parameters):
    """The process ``name`` as an env with these settings builds it."""
    config = EnvConfig(acceptance_process=name, num_users=num_users, max_draft=MAX_DRAFT, **parameters)
    return make_acceptance_process(config, num_envs)


def _busy_requests(process, mean_tokens: float) -> Requests:
    """Back-to-back requests of geometric length (no arrivals) telling ``process`` when one starts, as the core
    keeps them."""
    return Requests(
        process.num_envs,
        process.num_users,
        process=process,
        mean_tokens=mean_tokens,
        length="geometric",
        arrival_rate=None,
    )


def _reset(process, requests, base, rng) -> None:
    process.reset(None, base, rng)
    if requests is not None:
        requests.reset(np.ones(process.num_envs, dtype=bool), rng)


def _advance(process, requests, tokens, rng) -> None:
    """After a round: the process evolves, then the requests (the core's order)."""
    process.advance(tokens, rng)
    if requests is not None:
        requests.advance(tokens, np.zeros(process.num_envs), np.zeros(process.num_envs), rng)


def test_registry_names_the_built_in_processes():
    assert set(ACCEPTANCE_PROCESSES) == {"iid", "positional", "markov", "tasks", "mixture", "trace"}


@pytest.mark.parametrize("rate, length", [(0.5, 4), (0.8, 4), (0.9, 10), (0.65, 1)])
def test_iid_prefix_is_truncated_geometric(rate, length):
    n = 20000
    process = _process("iid", n, 1)
    accepted = _sample(process, np.full((n, 1), rate), np.full((n, 1), float(length)), 1, seed=1).ravel()
    survival = rate ** np.arange(length + 1)
    assert _prefix_histogram_pvalue(accepted, survival) > 1e-3
    tokens = accepted + 1
    standard_error = tokens.std() / np.sqrt(n)
    assert abs(tokens.mean() - expected_tokens(rate, length)) < 5 * standard_error


def test_iid_zero_length_accepts_nothing():
    process = _process("iid", 100, 3)
    accepted = _sample(process, np.full((100, 3), 0.9), np.zeros((100, 3)), 3, seed=0)
    assert np.all(accepted == 0)


def test_positional_prefix_law():
    n, rate, decay, length = 20000, 0.85, 0.8, 6
    process = PositionalAcceptance(n, 1, MAX_DRAFT, positional_decay=decay)
    accepted = _sample(process, np.full((n, 1), rate), np.full((n, 1), float(length)), 1, seed=2).ravel()
    positions = np.arange(length + 1)
    survival = rate**positions * decay ** (positions * (positions - 1) / 2)  # prod_{j<=i} a d^(j-1)
    assert _prefix_histogram_pvalue(accepted, survival) > 1e-3
    assert np.all(process.rate == rate)  # position-1 rate


def test_positional_with_decay_one_is_iid():
    n = 4000
    lengths = np.full((n, 2), 5.0)
    rates = np.tile([0.6, 0.85], (n, 1))
    iid = _sample(_process("iid", n, 2), rates, lengths, 2, seed=3)
    positional = _sample(PositionalAcceptance(n, 2, MAX_DRAFT, positional_decay=1.0), rates, lengths, 2, seed=3)
    np.testing.assert_array_equal(iid, positional)


def test_markov_switching_and_regime_rates():
    n, k, switch, factor = 2000, 3, 0.1, 0.5
    process = MarkovAcceptance(n, k, MAX_DRAFT, markov_switch_prob=switch, markov_hard_factor=factor)
    rng = np.random.default_rng(4)
    base = np.tile([0.6, 0.75, 0.9], (n, 1))
    process.reset(None, base, rng)
    flips = 0
    hard_fraction = []
    for _ in range(50):
        before = process.hard.copy()
        process.advance(np.ones((n, k)), rng)
        flips += np.count_nonzero(before != process.hard)
        hard_fraction.append(process.hard.mean())
        np.testing.assert_allclose(process.rate, np.where(process.hard, base * factor, base))
    trials = 50 * n * k
    assert abs(flips / trials - switch) < 5 * np.sqrt(switch * (1 - switch) / trials)
    assert abs(np.mean(hard_fraction) - 0.5) < 0.02
    np.testing.assert_allclose(process.mean_rate(base[0]), base[0] * (1 + factor) / 2)


def test_markov_sample_uses_the_current_regime():
    n = 20000
    process = MarkovAcceptance(n, 1, MAX_DRAFT, markov_switch_prob=0.0, markov_hard_factor=0.5)
    accepted = _sample(process, np.full((n, 1), 0.8), np.full((n, 1), 3.0), 1, seed=5).ravel()
    hard = process.hard.ravel()
    for mask, rate in ((hard, 0.4), (~hard, 0.8)):
        assert _prefix_histogram_pvalue(accepted[mask], rate ** np.arange(4)) > 1e-3


def test_tasks_requests_and_task_mix():
    n, k, mean_tokens = 500, 4, 20.0
    process = TaskAcceptance(
        n, k, MAX_DRAFT, task_profile=PROFILE, mean_request_tokens=100.0, request_length="geometric"
    )
    requests = _busy_requests(process, mean_tokens)
    rng = np.random.default_rng(6)
    _reset(process, requests, np.full((n, k), 0.5), rng)
    assert np.all(np.isin(process.rate, PROFILE.rate_array()))
    np.testing.assert_array_equal(process.rate, PROFILE.rate_array()[process.task])
    tasks = [process.task.ravel().copy()]
    lengths = [requests.remaining.ravel().copy()]
    for _ in range(200):
        before = process.task.copy(), requests.remaining.copy()
        _advance(process, requests, np.ones((n, k)), rng)  # one token per round
        new = requests.remaining > before[1] - 1.0  # a fresh request started
        tasks.append(process.task[new])
        lengths.append(requests.remaining[new])
        np.testing.assert_array_equal(process.rate, PROFILE.rate_array()[process.task])
    tasks_all = np.concatenate(tasks)
    observed = np.bincount(tasks_all, minlength=len(PROFILE.tasks))
    assert stats.chisquare(observed, PROFILE.probabilities() * tasks_all.size).pvalue > 1e-3
    lengths_all = np.concatenate(lengths)
    assert abs(lengths_all.mean() - mean_tokens) < 5 * lengths_all.std() / np.sqrt(lengths_all.size)
    expected_mean = PROFILE.probabilities() @ PROFILE.rate_array()
    np.testing.assert_allclose(process.mean_rate(np.zeros(k)), np.full(k, expected_mean))


def test_partial_reset_only_touches_the_given_rows():
    n, k = 6, 2
    process = _process("markov", n, k)
    rng = np.random.default_rng(7)
    process.reset(None, np.full((n, k), 0.7), rng)
    before = process.rate.copy()
    rows = np.array([1, 4])
    process.reset(rows, np.full((n, k), 0.95), rng)
    untouched = np.setdiff1d(np.arange(n), rows)
    np.testing.assert_array_equal(process.rate[untouched], before[untouched])
    assert np.all(np.isin(process.rate[rows], [0.95, 0.95 * process.hard_factor]))


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("positional", "positional_decay", 0.0),
        ("positional", "positional_decay", 1.2),
        ("markov", "markov_switch_prob", -0.1),
        ("markov", "markov_hard_factor", 0.0),
        ("markov", "markov_hard_factor", "high"),
        ("tasks", "mean_request_tokens", 0.5),
    ],
)
def test_invalid_parameters_name_the_setting(name, key, value):
    with pytest.raises(ValueError, match=key):
        _process(name, 1, 2, **{key: value})


def test_unknown_process_name():
    with pytest.raises(ValueError, match="acceptance_process"):
        _process("no-such-process", 1, 2)


@pytest.mark.parametrize(
    "name, params",
    [
        ("iid", {}),
        ("positional", {"positional_decay": 0.7}),
        ("markov", {"markov_switch_prob": 0.2}),
        ("tasks", {"mean_request_tokens": 5.0}),
        ("mixture", {}),
        ("mixture", {"mixture_scope": "request", "mean_request_tokens": 5.0}),
        ("trace", {}),
    ],
)
def test_nominal_curve_is_the_long_run_average_of_the_current_curve(name, params):
    """round_survival is the time average of survival() (the oracle's curve) over rounds whose tokens are the
    sampled prefixes' (a request at a low rate lasts more rounds); mean_survival (static policies) is it whatever
    the length for processes whose rates do not follow requests; survival_from_rate (adaptive policies) reproduces
    the current curve from the current position-1 rate for i.i.d.-shaped and positional processes."""
    n, k = 400, 3
    mean_tokens = params.pop("mean_request_tokens", None)
    process = _process(name, n, k, **params, **({} if mean_tokens is None else {"mean_request_tokens": mean_tokens}))
    requests = _busy_requests(process, mean_tokens) if process.per_request else None
    rng = np.random.default_rng(11)
    base = rng.uniform(0.5, 0.9, (n, k))
    _reset(process, requests, base, rng)
    total = np.zeros((n, k, MAX_DRAFT))
    rounds = 300
    lengths = np.full((n, k), float(MAX_DRAFT))
    for _ in range(rounds):
        total += process.survival()
        if name in ("iid", "positional"):
            np.testing.assert_allclose(process.survival_from_rate(process.rate), process.survival(), rtol=1e-12)
        tokens = process.sample(lengths, rng.standard_exponential((n, k))) + 1.0
        _advance(process, requests, tokens, rng)
    average = total.mean(axis=0) / rounds  # over systems and rounds, per user
    long_run = process.round_survival(base, MAX_DRAFT).mean(axis=0)
    np.testing.assert_allclose(average, long_run, atol=0.02)
    if not process.per_request:
        np.testing.assert_allclose(process.mean_survival(base), process.round_survival(base, 3), rtol=1e-12)


def test_the_vllm_drafter_preset_matches_the_measured_acceptance_by_position():
    """The mixture curve E[r^i] of the preset within 0.02 of vLLM's 71.2, 51.7, 39.0, 30.5, 24.4, 20.0%."""
    import gymnasium as gym

    import multispin_env  # noqa: F401
    from multispin_env.scenarios import VLLM_DRAFTER_ACCEPTANCE

    env = gym.make("MultiSpin-Heterogeneous-v0", scenario="vllm-drafter", acceptance_process="mixture").unwrapped
    env.reset(seed=0)
    curve = env.core.process.mean_survival(env.core.base_acceptance[0])[:, :6]
    assert np.abs(curve - np.array(VLLM_DRAFTER_ACCEPTANCE)).max() < 0.02


def test_mixture_prefixes_follow_the_beta_mixture_curve_and_its_conditional_rate_rises():
    n, k = 4000, 2
    process = _process("mixture", n, k, mixture_concentration=4.0)
    rng = np.random.default_rng(12)
    process.reset(None, np.full((n, k), 0.7), rng)
    accepted = []
    for _ in range(5):  # a fresh Beta rate per round
        draws = rng.standard_exponential((n, k))
        accepted.append(process.sample(np.full((n, k), float(MAX_DRAFT)), draws))
        process.advance(np.ones((n, k)), rng)
    accepted = np.concatenate(accepted).ravel()
    survival = np.concatenate([[1.0], process.mean_survival(np.full(1, 0.7))[0]])
    assert _prefix_histogram_pvalue(accepted, survival) > 1e-3
    conditional = survival[1:] / survival[:-1]
    assert np.all(np.diff(conditional) > 0)  # rounds of varying difficulty: later positions survive more often


def test_mixture_per_request_keeps_a_rate_for_the_whole_request():
    n, k = 200, 3
    process = _process("mixture", n, k, mixture_scope="request")
    requests = _busy_requests(process, 20.0)
    rng = np.random.default_rng(13)
    _reset(process, requests, np.full((n, k), 0.6), rng)
    before = process.rate.copy()
    remaining = requests.remaining.copy()
    _advance(process, requests, np.ones((n, k)), rng)
    same = remaining > 1.0  # requests that did not end this round keep their rate
    np.testing.assert_array_equal(process.rate[same], before[same])
    assert np.any(~same)  # some requests ended: each fresh one draws a new rate (a continuous law: never the old one)
    assert np.all(process.rate[~same] != before[~same])


@pytest.mark.parametrize("scope", ["round", "request"])
def test_the_mixture_is_the_process_of_its_scope_and_survives_a_pickle(scope):
    """The mixture of scope "round" plans with E[r^i] at every L (no length bias); scope "request" is a
    RequestRates (length-biased rounds, a_hat^i for the adaptive plan); either round-trips through pickle."""
    import pickle

    process = _process("mixture", 2, 3, mixture_scope=scope, mixture_concentration=4.0)
    assert isinstance(process, MixtureAcceptance) and process.scope == scope
    assert isinstance(process, RequestRates) == process.per_request == (scope == "request")
    base = np.array([0.3, 0.6, 0.9])
    steps = np.arange(MAX_DRAFT)
    moments = np.cumprod((4.0 * base[:, None] + steps) / (4.0 + steps), axis=-1)
    np.testing.assert_array_equal(process.mean_rate(base), base)
    if scope == "round":
        np.testing.assert_allclose(process.mean_survival(base), moments, rtol=1e-12)
        np.testing.assert_allclose(process.round_survival(base, np.array([1, 4, 8])), moments, rtol=1e-12)
    else:
        np.testing.assert_allclose(process.request_survival(base), moments, rtol=1e-9)
        np.testing.assert_array_equal(process.survival_from_rate(base), base[:, None] ** (steps + 1))
    copy = pickle.loads(pickle.dumps(process))
    assert type(copy) is type(process) and copy.concentration == 4.0
    np.testing.assert_array_equal(copy.survival_from_rate(base), process.survival_from_rate(base))


@pytest.mark.parametrize("key, value", [("mixture_concentration", 0.0), ("mixture_scope", "token")])
def test_invalid_mixture_settings_name_the_setting(key, value):
    with pytest.raises(ValueError, match=key):
        _process("mixture", 1, 2, **{key: value})
