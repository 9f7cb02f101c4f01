"""Request deadlines (docs/model.md eq. (9d)): the met/missed accounting against a hand-computed case, the slack
observation, the urgency weights of the het-opt-urgency policies, the deadline task and bad settings."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate, suite_metric
from baselines.policies import URGENCY_MAX_WEIGHT, make_policy, policies_for, urgency_weights
from multispin_env import suite
from multispin_env.requests import Requests
from multispin_env.spaces import SLACK_OBS_MAX

HET = "MultiSpin-Heterogeneous-v0"
TASK = "MultiSpinSuite/Deadlines-v0"
#: A small deadline env: fixed 10-token requests, 0.05 s per token (0.5 s targets), static channel.
SMALL = dict(
    arrival_rate=1.0,
    mean_request_tokens=10.0,
    request_length="fixed",
    fading=False,
    horizon=20.0,
    request_deadline_per_token=0.05,
)


class _NoProcess:
    """An acceptance process that is told of new requests and draws nothing."""

    def start_requests(self, where: np.ndarray, rng: Any) -> None:
        pass


class _ScriptedRng:
    """The draws :class:`Requests` makes with arrivals and fixed lengths, scripted: Poisson counts, then
    uniforms (an arrival's offset within its round)."""

    def __init__(self, counts: list[int], uniforms: list[float]) -> None:
        self.counts, self.uniforms = list(counts), list(uniforms)

    def poisson(self, lam: Any, size: tuple[int, ...]) -> np.ndarray:
        return np.full(size, self.counts.pop(0), dtype=np.int64)

    def random(self, count: int) -> np.ndarray:
        drawn, self.uniforms = self.uniforms[:count], self.uniforms[count:]
        return np.array(drawn)


def _scripted(max_queued: int) -> Requests:
    """One user, 4-token requests, target D = 1 s + 0.5 s/token x 4 = 3 s (eq. (9d))."""
    return Requests(
        1,
        1,
        process=_NoProcess(),  # type: ignore[arg-type]
        mean_tokens=4.0,
        length="fixed",
        arrival_rate=1.0,
        max_queued=max_queued,
        deadline=(0.5, 1.0),
    )


def test_deadline_accounting_matches_a_hand_computed_case() -> None:
    """Rounds of 1 s: arrivals at 0.2 and 0.5 s (due 3.2 and 3.5 s) and at 2.9 s (due 5.9 s). The first completes
    at 3 s (met); the second's due time passes in [3, 4) (missed; it completes at 5 s, late, and is not counted
    again); the third's passes in [5, 6) while it is in service (missed)."""
    rng = _ScriptedRng(counts=[2, 0, 1, 0, 0, 0], uniforms=[0.2, 0.5, 0.9])
    requests = _scripted(max_queued=10)
    requests.reset(np.ones(1, dtype=bool), rng)  # type: ignore[arg-type]
    tokens_per_round = [0.0, 2.0, 2.0, 1.0, 3.0, 1.0]
    met, missed, slack = [], [], []
    for r, tokens in enumerate(tokens_per_round):
        clock = np.array([r + 1.0])
        requests.advance(np.array([[tokens]]), np.array([1.0]), clock, rng)  # type: ignore[arg-type]
        met.append(int(requests.met[0, 0]))
        missed.append(int(requests.missed[0, 0]))
        slack.append(float(requests.slack(clock)[0, 0]))
    assert met == [0, 0, 1, 0, 0, 0]
    assert missed == [0, 0, 0, 1, 0, 1]
    # the current request's due time minus the clock: 3.2 - 1, 3.2 - 2, 3.5 - 3, 3.5 - 4, 5.9 - 5, 5.9 - 6
    np.testing.assert_allclose(slack, [2.2, 1.2, 0.5, -0.5, 0.9, -0.1])


def test_blocked_requests_count_as_missed() -> None:
    """No waiting room (Q = 0): of three arrivals to an idle user the earliest is kept, two are blocked, and
    those two are missed in that round (eq. (9'), (9d))."""
    rng = _ScriptedRng(counts=[3], uniforms=[0.5])
    requests = _scripted(max_queued=0)
    requests.reset(np.ones(1, dtype=bool), rng)  # type: ignore[arg-type]
    requests.advance(np.array([[0.0]]), np.array([1.0]), np.array([1.0]), rng)  # type: ignore[arg-type]
    assert requests.blocked[0, 0] == 2 and requests.missed[0, 0] == 2 and requests.met[0, 0] == 0
    assert requests.active[0, 0]


def test_every_decided_request_is_counted_once() -> None:
    """Over an episode, met + missed + the undecided requests at its end (in the system with the due time ahead)
    = every request that arrived; met <= completed."""
    env = gym.make(HET, **SMALL)
    obs, info = env.reset(seed=3)
    policy = make_policy("het-opt-adaptive", env)
    core = env.unwrapped.core
    met = missed = completed = 0
    done = False
    arrived = 0
    while not done:
        before = core.requests.in_system().sum()
        action, _ = policy.predict(obs)
        obs, _, terminated, truncated, info = env.step(action)
        finished = int(info["completed"].sum())
        arrived += int(core.requests.in_system().sum() - before) + finished + int(info["blocked"].sum())
        met += int(info["deadline_met"].sum())
        missed += int(info["deadline_missed"].sum())
        completed += finished
        done = terminated or truncated
    requests = core.requests
    clock = core.clock[0]
    capacity = requests.queue.shape[2]
    position = (np.arange(capacity) - requests.state[4][0][:, None]) % capacity  # Q_HEAD
    queued = position < requests.waiting[0][:, None]
    undecided = int(np.sum(queued & (requests.queue_due[0] >= clock)))
    undecided += int(np.sum(requests.active[0] & (info["slack"] >= 0.0)))
    assert met + missed + undecided == arrived
    assert 0 < met <= completed and missed > 0


def test_slack_observation_is_the_info_slack_in_mean_targets() -> None:
    env = gym.make(HET, **SMALL)
    obs, info = env.reset(seed=0)
    layout = env.unwrapped.observation_layout
    assert list(layout)[-1] == "slack" and obs.shape == (8 * env.unwrapped.num_users + 1,)
    mean_target = env.unwrapped.core.mean_target
    assert mean_target == pytest.approx(0.05 * 10.0)
    rng = np.random.default_rng(0)
    seen_positive = False
    for _ in range(200):
        obs, _, _, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        expected = np.clip(info["slack"] / mean_target, 0.0, SLACK_OBS_MAX)
        np.testing.assert_allclose(obs[layout["slack"]], expected, rtol=1e-6, atol=1e-6)
        assert np.all(info["slack"][~info["active"]] == 0.0)
        seen_positive |= bool(np.any(info["slack"] > 0.0))
    assert seen_positive


def test_deadlines_off_by_default_and_the_arrival_observation_unchanged() -> None:
    env = gym.make(HET, **{k: v for k, v in SMALL.items() if k != "request_deadline_per_token"})
    obs, info = env.reset(seed=0)
    assert "slack" not in env.unwrapped.observation_layout and "slack" not in info
    assert obs.shape == (7 * env.unwrapped.num_users + 1,)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert "deadline_met" not in info


def test_urgency_weights_as_documented() -> None:
    """w_k = clip((r_k / s_k) / rho_ref, 1, 10); 1 for a zero slack (overdue or idle)."""
    remaining = np.array([50.0, 50.0, 10.0, 50.0, 30.0, 0.0])
    slack = np.array([3.0, 1.0, 3.0, 0.0, 0.05, 0.0])
    rho_ref = 50.0 / 3.0
    w = urgency_weights(remaining, slack, rho_ref)
    np.testing.assert_allclose(w, [1.0, 3.0, 1.0, 1.0, URGENCY_MAX_WEIGHT, 1.0])
    assert urgency_weights(np.array([40.0]), np.array([2.0]), 10.0)[0] == pytest.approx(2.0)


def test_urgency_policy_plans_with_the_weights_of_its_observation() -> None:
    env = gym.make(HET, **SMALL)
    obs, _ = env.reset(seed=1)
    policy = make_policy("het-opt-urgency-adaptive", env)
    policy.reset()
    unwrapped = env.unwrapped
    core = unwrapped.core
    for _ in range(40):
        action, _ = policy.predict(obs)
        remaining = unwrapped.observation_field(obs, "remaining") * 10.0
        slack = unwrapped.observation_field(obs, "slack") * core.mean_target
        np.testing.assert_allclose(policy.weights, urgency_weights(remaining, slack, 10.0 / core.mean_target))  # type: ignore[attr-defined]
        assert env.action_space.contains(action)
        obs, *_ = env.step(action)
    assert "het-opt-urgency-oracle" in policies_for(env)
    plain = gym.make(HET)
    assert "het-opt-urgency-oracle" not in policies_for(plain)
    with pytest.raises(ValueError, match="needs request deadlines"):
        make_policy("het-opt-urgency-oracle", plain)
    with pytest.raises(ValueError, match="takes none"):
        make_policy("het-opt-urgency-oracle", env, weights=np.ones(6))


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"request_deadline_per_token": 0.0}, "request_deadline_per_token"),
        ({"request_deadline_per_token": -1.0}, "request_deadline_per_token"),
        ({"request_deadline_per_token": math.nan}, "request_deadline_per_token"),
        ({"request_deadline_per_token": math.inf}, "request_deadline_per_token"),
        ({"request_deadline_per_token": 0.1, "request_deadline_base": -1.0}, "request_deadline_base"),
        ({"request_deadline_per_token": 0.1, "request_deadline_base": math.nan}, "request_deadline_base"),
        ({"request_deadline_per_token": 0.1, "request_deadline_base": math.inf}, "request_deadline_base"),
    ],
)
def test_bad_deadlines_raise_one_line_errors_naming_the_setting(settings: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named) as error:
        gym.make(HET, arrival_rate=0.5, **settings)
    assert "\n" not in str(error.value)


def test_deadline_settings_need_their_companions() -> None:
    with pytest.raises(ValueError, match="request_deadline_per_token needs request arrivals"):
        gym.make(HET, request_deadline_per_token=0.1)
    with pytest.raises(ValueError, match="request_deadline_base needs request_deadline_per_token"):
        gym.make(HET, arrival_rate=0.5, request_deadline_base=1.0)


def test_the_deadline_task_passes_the_sb3_checker_and_scores_with_its_metric() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(TASK)
    check_env(env.unwrapped)
    spec = suite.task(TASK)
    assert spec.metric == "deadline_share" and env.observation_space.shape == (8 * 6 + 1,)
    result = evaluate(env, make_policy("het-opt-adaptive", env), list(spec.eval_seeds[:2]))
    summary = result.deadline_summary()
    met = sum(e.deadline_met or 0 for e in result.episodes)
    missed = sum(e.deadline_missed or 0 for e in result.episodes)
    assert summary["deadline_share"] == pytest.approx(met / (met + missed))
    assert suite_metric(result, "deadline_share") == summary["deadline_share"]
    assert 0.0 < summary["deadline_share"] < 1.0


def test_the_benchmark_reports_the_deadline_columns(tmp_path: Any) -> None:
    import csv

    from agents.benchmark import DEADLINE_COLUMNS, format_table, run_benchmark, write_outputs

    rows = run_benchmark(HET, dict(SMALL, horizon=5.0), 1, 0, policies=["het-opt-oracle", "het-opt-urgency-oracle"])
    table = format_table(rows)
    assert " met" in table.splitlines()[0]
    write_outputs(rows, tmp_path, {}, plots=False)
    with (tmp_path / "benchmark.csv").open() as f:
        written = list(csv.DictReader(f))
    for row, line in zip(rows, written, strict=True):
        summary = row.result.deadline_summary()
        assert set(DEADLINE_COLUMNS) <= set(line)
        assert float(line["deadline_share"]) == pytest.approx(summary["deadline_share"])
        assert summary["deadline_met"] + summary["deadline_missed"] > 0


@pytest.mark.slow
def test_shipped_deadline_references_reproduce() -> None:
    """The deadline task's references (shares of 30 episodes, a few minutes to recompute) reproduce."""
    from experiments.suite_references import references

    low, high = suite.reference_values(TASK)
    fresh = references(TASK)
    assert fresh == {"server-only": low, suite.task(TASK).reference: high}
