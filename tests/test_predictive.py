"""het-opt-predictive (baselines/predictive.py, docs/model.md section 7.2)."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import multispin_env  # noqa: F401  (registers the ids)
from baselines.information import active_users, adaptive_params, observation_starts_episode, solve_for_active
from baselines.policies import ANALYTIC_POLICIES, make_policy
from baselines.predictive import PredictivePolicy, sample_fading_power
from baselines.solvers import solve_heterogeneous
from multispin_env.channel import JakesFading, rayleigh_gains, snr_linear
from multispin_env.model import allocation_outcome, expected_goodput, round_latency

HET = "MultiSpin-Heterogeneous-v0"


def test_prediction_is_the_conditional_law_of_the_gauss_markov_channel() -> None:
    """eq. (5.2b) as the policy uses it (the fading model's predict on |h_hat|) against simulation: h_lag ~
    CN(0, 1), h = r h_lag + sqrt(1 - r^2) w, h_hat = h_lag + CN(0, s^2); the draws of |h|^2 given |h_hat| follow
    the simulated conditional law (KS test in a thin bin of |h_hat|)."""
    rng = np.random.default_rng(0)
    model, intervals = JakesFading(10.0), np.array([0.004, 0.006])
    r, s, n = float(np.prod(model.correlation(intervals))), 0.4, 2_000_000
    lagged = rayleigh_gains(rng, n)
    true = r * lagged + np.sqrt(1 - r * r) * rayleigh_gains(rng, n)
    estimate = lagged + s * rayleigh_gains(rng, n)
    mean, variance = model.predict(np.abs(estimate), intervals, s)
    # Linear MMSE: E[h | h_hat] = r h_hat / (1 + s^2), error variance 1 - r^2 / (1 + s^2).
    assert variance[0] == pytest.approx(1 - r * r / (1 + s * s))
    error = true - r * estimate / (1 + s * s)
    assert np.mean(np.abs(error) ** 2) == pytest.approx(variance[0], rel=0.01)
    np.testing.assert_allclose(np.abs(mean), r * np.abs(estimate) / (1 + s * s))
    chosen = np.abs(np.abs(estimate) - 1.2) < 0.01
    simulated = np.abs(true[chosen]) ** 2
    mu, var = model.predict(np.array([1.2]), intervals, s)
    drawn = sample_fading_power(np.abs(mu), var[0], rng.standard_normal((2, 20_000, 1)))[:, 0]
    assert stats.ks_2samp(simulated, drawn).pvalue > 0.01
    wrong = sample_fading_power(np.abs(mu) * 0.8, var[0], rng.standard_normal((2, 20_000, 1)))[:, 0]
    assert stats.ks_2samp(simulated, wrong).pvalue < 1e-6  # the test can tell a wrong mean


def test_allocation_outcome_is_expected_goodputs_terms_per_channel_draw() -> None:
    env = gym.make(HET, csi_delay=1, upload_deadline=0.05)
    obs, _ = env.reset(seed=1)
    params = adaptive_params(env, obs)
    plan = solve_heterogeneous(params)
    draws = params.upload_time * np.array([[0.5], [1.0], [30.0]])  # the last one misses the deadline
    tokens, latency = allocation_outcome(params, plan.draft_lengths[None], plan.bandwidth[None], draws[:, None, :])
    for m, upload in enumerate(draws):
        one = dataclasses.replace(params, upload_time=upload)
        assert latency[m, 0] == pytest.approx(round_latency(one, plan.draft_lengths, plan.bandwidth))
        assert tokens[m, 0] / latency[m, 0] == pytest.approx(expected_goodput(one, plan.draft_lengths, plan.bandwidth))
    assert latency[2, 0] >= 0.05
    with pytest.raises(ValueError, match="upload_time"):
        allocation_outcome(params, plan.draft_lengths, plan.bandwidth, -draws)


def _actions(env: gym.Env, policy, seed: int, rounds: int) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    policy.reset()
    out, start = [], True
    for _ in range(rounds):
        action, _ = policy.predict(obs, episode_start=np.array([start]))
        start = False
        out.append(action)
        obs, *_ = env.step(action)
    return out


def test_perfect_csi_plays_het_opt_adaptive() -> None:
    env = gym.make(HET)  # fading, no CSI delay, no noise: the observed channel is the round's
    predictive = _actions(env, make_policy("het-opt-predictive", env), 3, 30)
    adaptive = _actions(env, make_policy("het-opt-adaptive", env), 3, 30)
    np.testing.assert_array_equal(np.array(predictive), np.array(adaptive))


def test_without_fading_it_plans_with_the_true_channel_not_the_noisy_estimate() -> None:
    env = gym.make(HET, fading=False, csi_noise_std=0.5)
    obs, _ = env.reset(seed=2)
    policy = make_policy("het-opt-predictive", env)
    policy.predict(obs)
    exact = dataclasses.replace(adaptive_params(env, obs), upload_time=env.unwrapped.core.mean_upload_time[0])
    np.testing.assert_array_equal(policy.last_allocation.draft_lengths, solve_heterogeneous(exact).draft_lengths)
    assert not np.allclose(adaptive_params(env, obs).upload_time, exact.upload_time)  # the estimate is off


def test_latency_history_is_read_from_the_observation() -> None:
    env = gym.make(HET, csi_delay=2)
    policy = PredictivePolicy(env)
    obs, _ = env.reset(seed=4)
    latencies = []
    for _ in range(6):
        action, _ = policy.predict(obs)
        obs, _, _, _, info = env.step(action)
        latencies.append(info["latency"])
    policy.predict(obs)
    np.testing.assert_allclose(policy.latency_history(0), latencies[-2:], atol=1e-5)


def test_seeded_and_independent_of_the_episodes_before() -> None:
    env = gym.make(HET, csi_delay=1, csi_noise_std=0.2)
    first = _actions(env, PredictivePolicy(env, seed=7), 11, 12)
    policy = PredictivePolicy(env, seed=7)
    _actions(env, policy, 5, 12)
    np.testing.assert_array_equal(np.array(_actions(env, policy, 11, 12)), np.array(first))
    other = _actions(env, PredictivePolicy(env, seed=8), 11, 12)
    assert not np.array_equal(np.array(other), np.array(first))  # the draws depend on the seed


def test_acts_on_a_vector_env_with_a_history_per_sub_env() -> None:
    envs = gym.make_vec(HET, num_envs=2, csi_delay=1, horizon=0.5)
    policy = make_policy("het-opt-predictive", envs)
    obs, _ = envs.reset(seed=0)
    starts, checked, resets = np.ones(2, bool), 0, 0
    latency, played = np.zeros(2), np.zeros(2, bool)
    for _ in range(14):  # past the first episode ends: NEXT_STEP autoreset restarts the history
        actions, _ = policy.predict(obs, episode_start=starts)
        assert actions.shape == envs.action_space.shape
        for i in range(2):  # the history of sub-env i holds its own last round's latency
            if played[i] and not starts[i]:
                assert policy.latency_history(i)[-1] == pytest.approx(latency[i], abs=1e-5)
                checked += 1
        resets += sum(policy.latency_history(i).size == 0 for i in range(2))
        obs, _, terminated, truncated, info = envs.step(actions)
        starts = terminated | truncated
        latency, played = info["latency"], info["_latency"]
    assert checked > 10 and resets > 2
    with pytest.raises(ValueError, match="shape"):
        policy.predict(obs[0])


class _Reference:
    """het-opt-predictive written out per sub-env from the public pieces (docs/model.md section 7.2): P-het of
    each candidate channel by solve_heterogeneous (for the active users, as het-opt-adaptive), eq. (10) on the
    draws by allocation_outcome; the draws from a generator seeded as the policy's (seed and the episode's first
    observation, one (2, M, K) call per round with uncertain CSI). The test oracle of the compiled planner."""

    def __init__(self, env, n: int, policy: PredictivePolicy) -> None:
        """For ``n`` sub-envs of ``env``, with ``policy``'s seed, draws and candidate set (not its code)."""
        self.env, self.unwrapped = env, env.unwrapped
        self.core = self.unwrapped.core
        self.seed, self.draws, self.quantiles = policy.seed, policy.draws, policy.quantiles
        self.draw_candidates, self.observed, self.mmse = policy.draw_candidates, policy.observed, policy.mmse
        self.delay = self.unwrapped.config.csi_delay
        self.noise = self.unwrapped.config.csi_noise_std
        self.horizon = self.unwrapped.config.horizon
        self.latencies = [[] for _ in range(n)]
        self.clock = np.zeros(n)
        self.rngs = [None] * n

    def observe(self, i: int, obs: np.ndarray, start: bool) -> None:
        clock = self.horizon * (1.0 - float(self.unwrapped.time_left_from_observation(obs)))
        if start or self.rngs[i] is None or observation_starts_episode(self.unwrapped, obs):
            words = np.frombuffer(np.asarray(obs, dtype=np.float32).tobytes(), dtype=np.uint32)
            self.rngs[i] = np.random.default_rng([self.seed, *words.tolist()])
            self.latencies[i] = []
        else:
            self.latencies[i] = (self.latencies[i] + [max(clock - self.clock[i], 0.0)])[-max(self.delay, 1) :]
        self.clock[i] = clock

    def plan(self, i: int, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        core = self.core
        adaptive = adaptive_params(self.env, obs)
        active = active_users(self.env, obs)
        active = np.ones(adaptive.num_users, bool) if active is None else active

        def solve(upload):
            return solve_for_active(solve_heterogeneous, dataclasses.replace(adaptive, upload_time=upload), active)

        if not core.fading.evolves:
            plan = solve(core.mean_upload_time[i])
            return plan.draft_lengths, plan.bandwidth
        lag = min(len(self.latencies[i]), self.delay)
        intervals = np.array(self.latencies[i][-lag:] if lag else [])
        snr = snr_linear(core.snr_db[i])
        observed = np.expm1(self.unwrapped.spectral_efficiency_from_observation(obs) * np.log(2.0)) / snr
        mu, error = core.fading.predict(np.sqrt(np.maximum(observed, 0.0)), intervals, self.noise)
        mean, variance = np.abs(mu), float(max(error.max(initial=0.0), 0.0))
        adaptive_plan = solve(adaptive.upload_time)
        if variance <= 0.0:
            return adaptive_plan.draft_lengths, adaptive_plan.bandwidth
        power = sample_fading_power(mean, variance, self.rngs[i].standard_normal((2, self.draws, snr.size)))
        if not active.any():
            return adaptive_plan.draft_lengths, adaptive_plan.bandwidth
        upload = core.scenario.upload_time(core.snr_db[i], power)
        planning = [mean * mean + variance] if self.mmse else []
        planning += [*np.quantile(power, self.quantiles, axis=0), *power[: self.draw_candidates]]
        plans = [adaptive_plan] if self.observed else []
        plans += [solve(core.scenario.upload_time(core.snr_db[i], p)) for p in planning]
        if len(plans) == 1:  # one candidate: played, not scored
            return plans[0].draft_lengths, plans[0].bandwidth
        sub = dataclasses.replace(
            adaptive,
            acceptance=adaptive.acceptance[active],
            draft_time=adaptive.draft_time[active],
            upload_time=adaptive.upload_time[active],
            survival=adaptive.survival[active],
        )
        lengths = np.stack([p.draft_lengths[active] for p in plans])
        shares = np.stack([p.bandwidth[active] for p in plans])
        tokens, latency = allocation_outcome(sub, lengths, shares, upload[:, None, active])
        best = plans[int(np.argmax(tokens.sum(axis=0) / latency.sum(axis=0)))]
        return best.draft_lengths, best.bandwidth


@pytest.mark.parametrize(
    "settings",
    [
        dict(csi_delay=1),
        dict(csi_delay=3, csi_noise_std=0.2, upload_deadline=0.02),
        dict(csi_noise_std=0.3, acceptance_process="positional"),
        dict(csi_delay=2, arrival_rate=0.3, mean_request_tokens=20.0, horizon=3.0),
        dict(fading=False, csi_noise_std=0.3),
        dict(),
    ],
    ids=["stale", "stale-noisy-deadline", "noisy-positional", "arrivals", "static-noisy", "perfect"],
)
def test_batched_planner_plays_the_per_system_plan_on_every_sub_env(settings) -> None:
    """One compiled call for the vector env = the algorithm written out per sub-env (_Reference), on many rounds
    of 12 sub-envs (random actions in between, so that the states differ, and episode ends past the horizon)."""
    n = 12
    envs = gym.make_vec(HET, num_envs=n, horizon=settings.pop("horizon", 1.0), **settings)
    policy = PredictivePolicy(envs, seed=3)
    reference = _Reference(envs, n, policy)
    obs, _ = envs.reset(seed=5)
    starts = np.ones(n, bool)
    idle = 0
    for step in range(30):
        actions, _ = policy.predict(obs, episode_start=starts)
        expected = []
        for i in range(n):
            reference.observe(i, obs[i], bool(starts[i]))
            expected.append(envs.unwrapped.encode_action(*reference.plan(i, obs[i])))
        np.testing.assert_array_equal(actions, np.stack(expected), err_msg=f"step {step}")
        active = active_users(envs, obs)
        idle += 0 if active is None else int((~active).sum())
        played = actions if step % 3 else envs.action_space.sample()  # off-plan rounds: other latencies
        obs, _, terminated, truncated, _ = envs.step(played)
        starts = terminated | truncated
    assert idle > 50 if "arrival_rate" in settings else idle == 0  # idle users were planned around


#: Candidate sets other than the default (docs/model.md section 7.2): constructor arguments, all four given.
NINE = dict(quantiles=(0.1, 0.25, 0.5), draw_candidates=4, observed=True, mmse=True)
CANDIDATE_SETS = {
    "nine": NINE,
    "observed-q10": dict(quantiles=(0.1,), draw_candidates=0, observed=True, mmse=False),
    "mmse": dict(quantiles=(), draw_candidates=0, observed=False, mmse=True),
    "two-draws": dict(quantiles=(), draw_candidates=2, observed=False, mmse=False),
    "mixed": dict(quantiles=(0.5, 0.05), draw_candidates=1, observed=False, mmse=True, draws=16),
}


@pytest.mark.parametrize("candidates", CANDIDATE_SETS.values(), ids=CANDIDATE_SETS.keys())
@pytest.mark.parametrize(
    "settings",
    [dict(csi_delay=3, csi_noise_std=0.2, upload_deadline=0.02), dict(csi_delay=2, arrival_rate=0.3, horizon=3.0)],
    ids=["stale-noisy-deadline", "arrivals"],
)
def test_every_candidate_set_plays_the_per_system_plan(settings, candidates) -> None:
    """Each candidate set the constructor offers, against the per-sub-env algorithm with the same set; rounds with
    perfect CSI (the first of an episode with csi_delay and no noise) play het-opt-adaptive's plan whatever the set."""
    n = 8
    envs = gym.make_vec(HET, num_envs=n, horizon=settings.pop("horizon", 1.0), **settings)
    policy = PredictivePolicy(envs, seed=4, **candidates)
    reference = _Reference(envs, n, policy)
    assert (
        policy.candidates == reference.observed + reference.mmse + len(reference.quantiles) + reference.draw_candidates
    )
    obs, _ = envs.reset(seed=6)
    starts = np.ones(n, bool)
    for step in range(20):
        actions, _ = policy.predict(obs, episode_start=starts)
        expected = []
        for i in range(n):
            reference.observe(i, obs[i], bool(starts[i]))
            expected.append(envs.unwrapped.encode_action(*reference.plan(i, obs[i])))
        np.testing.assert_array_equal(actions, np.stack(expected), err_msg=f"step {step}")
        obs, _, terminated, truncated, _ = envs.step(actions if step % 3 else envs.action_space.sample())
        starts = terminated | truncated


def test_the_candidate_sets_plan_differently() -> None:
    """The arguments change the plan: on stale CSI the observed candidate alone is het-opt-adaptive's plan, and the
    default (the 10% quantile alone) and the nine candidates each play other allocations than it and than each
    other."""
    env = gym.make(HET, csi_delay=1)
    plays = {
        name: np.array(_actions(env, PredictivePolicy(env, **arguments), 3, 30))
        for name, arguments in {
            "nine": NINE,
            "default": {},
            "observed": dict(quantiles=(), draw_candidates=0, observed=True, mmse=False),
        }.items()
    }
    np.testing.assert_array_equal(
        plays["observed"], np.array(_actions(env, make_policy("het-opt-adaptive", env), 3, 30))
    )
    assert not np.array_equal(plays["default"], plays["observed"])
    assert not np.array_equal(plays["nine"], plays["observed"])
    assert not np.array_equal(plays["default"], plays["nine"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(draws=0), r"^draws must be an integer >= 1, got 0$"),
        (dict(draws=True), r"^draws must be an integer >= 1, got True$"),
        (dict(draw_candidates=65), r"^draw_candidates must be an integer in \[0, 64\], got 65$"),
        (dict(draw_candidates=1.0), r"^draw_candidates must be an integer in \[0, 64\], got 1.0$"),
        (dict(quantiles=0.1), r"^quantiles must be a tuple of distinct numbers in \(0, 1\), got 0.1$"),
        (dict(quantiles="0.1"), r"^quantiles must be a tuple .*, got '0.1'$"),
        (dict(quantiles=(0.1, 1.0)), r"^quantiles must be a tuple .*, got \(0.1, 1.0\)$"),
        (dict(quantiles=(0.1, 0.1)), r"^quantiles must be a tuple of distinct .*, got \(0.1, 0.1\)$"),
        (dict(quantiles=(float("nan"),)), r"^quantiles must be a tuple .*, got \(nan,\)$"),
        (dict(quantiles=(True,)), r"^quantiles must be a tuple .*, got \(True,\)$"),
        (dict(observed="yes"), r"^observed must be True or False, got 'yes'$"),
        (dict(mmse=None), r"^mmse must be True or False, got None$"),
        (
            dict(observed=False, mmse=False, quantiles=(), draw_candidates=0),
            r"^no candidates: keep observed or mmse, or give quantiles or draw_candidates > 0",
        ),
    ],
)
def test_bad_candidate_settings_are_one_line_errors(arguments, message) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        PredictivePolicy(gym.make(HET, csi_delay=1), **arguments)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("candidates", [{}, NINE], ids=["default", "nine"])
def test_single_env_plays_the_per_system_plan(candidates) -> None:
    """On a single env (the compiled planner with N = 1) the same check as on the vector env."""
    env = gym.make(HET, csi_delay=2, csi_noise_std=0.1, horizon=1.0)
    policy = PredictivePolicy(env, seed=2, **candidates)
    reference = _Reference(env, 1, policy)
    obs, _ = env.reset(seed=9)
    start, rounds = True, 0
    while rounds < 25:
        action, _ = policy.predict(obs, episode_start=np.array([start]))
        reference.observe(0, obs, start)
        np.testing.assert_array_equal(action, env.unwrapped.encode_action(*reference.plan(0, obs)))
        obs, _, terminated, truncated, _ = env.step(action)
        rounds += 1
        start = terminated or truncated
        if start:
            obs, _ = env.reset()
    assert policy.last_allocation is not None


def test_registered_and_refused_on_the_homogeneous_id() -> None:
    assert "het-opt-predictive" in ANALYTIC_POLICIES
    with pytest.raises(ValueError, match="per-user draft lengths"):
        make_policy("het-opt-predictive", gym.make("MultiSpin-Homogeneous-v0"))


@pytest.mark.slow
def test_beats_het_opt_adaptive_with_stale_csi() -> None:
    """The point of the policy: paired on seeds, it beats planning with the stale estimate as if it were current."""
    from agents.evaluation import evaluate

    env = gym.make("MultiSpinSuite/StaleCSI1-v0")
    seeds = [1000, 1001, 1002, 1003]
    predictive = evaluate(env, make_policy("het-opt-predictive", env), seeds).goodputs
    adaptive = evaluate(env, make_policy("het-opt-adaptive", env), seeds).goodputs
    assert np.mean(predictive - adaptive) > 3.0, (predictive, adaptive)
