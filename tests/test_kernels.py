"""The compiled round (multispin_env._kernels) against the independent numpy oracle tests/reference_round.py.

- Exact: the env is stepped with random actions; before each round the test snapshots the pre-round state and the
  random variates the core is about to use (on deep copies of the core and the generator), plays the round with
  the oracle and compares: integers exactly, float64 to rtol 1e-12, float32 observations to rtol 1e-6.
- Statistical: accepted prefixes against the processes' survival curves (chi-square), mean tokens against
  eq. (4), and the fading's lag-1 correlation against J0 (docs/model.md sections 2, 4, 5.1).
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import scipy.special
import scipy.stats
from gymnasium.vector import AutoresetMode
from numpy.typing import NDArray
from reference_round import (
    Round,
    Settings,
    decode_action,
    idle_users_out,
    observation,
    play_round,
    spectral_efficiency,
)

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.core import MultiSpinCore
from multispin_env.layout import Q_ARRIVAL
from multispin_env.model import expected_tokens
from multispin_env.scenarios import get_scenario

HET, HOM = "MultiSpin-Heterogeneous-v0", "MultiSpin-Homogeneous-v0"
RTOL = 1e-12  # float64 quantities: the kernels and the oracle differ only in summation order and log2 vs log1p
OBS_RTOL, OBS_ATOL = 1e-6, 1e-7  # float32 observations


# ------------------------------------------------------------------------------------------------ helpers
def settings_of(core: MultiSpinCore, draft_time_high: float) -> Settings:
    """The oracle's constants, read from the resolved scenario and config (not from the kernel record)."""
    scenario, config = core.scenario, core.config
    return Settings(
        verify_base=scenario.verify_base,
        verify_per_token=scenario.verify_per_token,
        downlink_time=scenario.downlink_time,
        horizon=config.horizon,
        reward_scale=config.reward_scale,
        forgetting=config.acceptance_forgetting,
        prior=config.acceptance_prior,
        prior_weight=config.acceptance_prior_weight,
        doppler_hz=scenario.doppler_hz,
        fading=config.fading == "jakes",  # the oracle knows Rayleigh fading (True) or none
        payload_bits=float(scenario.payload_bits),
        bandwidth_hz=scenario.bandwidth_hz,
        max_draft=scenario.max_draft,
        draft_time_high=draft_time_high,
        verify_knee_tokens=scenario.verify_knee_tokens,
        verify_table=scenario.verify_table,
        upload_deadline=np.inf if config.upload_deadline is None else config.upload_deadline,
        transmit_power_w=10.0 ** (scenario.tx_power_dbm / 10.0) / 1000.0,
        energy_weight=config.energy_weight,
        mean_request_tokens=config.mean_request_tokens if config.arrival_rate is not None else None,
    )


def pre_round_state(core: MultiSpinCore) -> dict[str, Any]:
    """Copies of everything the oracle's round reads from the state (public attributes only)."""
    state = {
        "draft_power": np.array([[p.draft_power for p in core.populations]]).reshape(core.draft_time.shape),
        "draft_time": core.draft_time.copy(),
        "upload_time": core.upload_time.copy(),
        "snr": 10.0 ** (core.snr_db / 10.0),  # section 4.2: linear SNR of the population's SNR in dB
        "gain": core.gain.copy(),
        "cumulative_hazard": core.process.cumulative_hazard.copy(),
        "successes": core.successes.copy(),
        "failures": core.failures.copy(),
        "clock": core.clock.copy(),
    }
    if core.arrivals:  # section 5.8: the request each user is serving in the round (read from the public state)
        state.update(
            active=core.requests.active.copy(),
            remaining=core.requests.remaining.copy(),
            arrival=core.requests.state[Q_ARRIVAL].copy(),
        )
    return state


def round_draws(core: MultiSpinCore, rng: np.random.Generator) -> tuple[dict[str, Any], np.random.Generator]:
    """The variates the next round will use, read on copies (core.py: the blocks are the round's first draws),
    and the copied generator just after them (a restart's N(0, 1) pairs come next unless the process draws first)."""
    core, rng = copy.deepcopy(core), copy.deepcopy(rng)
    block = core._next_block(rng)
    draws = {
        "exponential": core._exponential_block[block].copy(),
        "normals": core._normal_block[block].copy() if core.fading.evolves else None,
        "jitter": core._jitter_block[block].copy() if core.config.draft_time_jitter > 0.0 else None,
    }
    return draws, rng


def start_gain(rng: np.random.Generator, rows: int, num_users: int, fading: bool) -> NDArray[np.complex128]:
    """h at an episode start (section 5.2): CN(0, 1) from an N(0, 1) pair (2, rows, K), or 1 without fading."""
    if not fading:
        return np.ones((rows, num_users), dtype=np.complex128)
    z = rng.standard_normal((2, rows, num_users))
    return (z[0] + 1j * z[1]) / np.sqrt(2.0)


def random_actions(rng: np.random.Generator, rows: int, size: int, num_users: int) -> NDArray[np.float32]:
    """Random float32 actions with the decoder's edge cases: out-of-range entries (clipped), exact -1 (L = 0 or
    weight 0), +-0.5 (a tie (x + 1) / 2 L_max = k + 1/2 when L_max = 2 mod 4: rounded half to even) and, now and
    then, every share weight 0 (the drafting users then share equally)."""
    x = rng.uniform(-1.3, 1.3, (rows, size))
    x[rng.random((rows, size)) < 0.1] = rng.choice([-0.5, 0.5])
    x[rng.random((rows, size)) < 0.15] = -1.0
    x[rng.random(rows) < 0.1, size - num_users :] = -1.0
    return x.astype(np.float32)


def assert_round(
    oracle: Round,
    info: dict[str, Any],
    reward: Any,
    truncated: Any,
    rows: NDArray[np.bool_],
    lengths: NDArray[np.float64],
    shares: NDArray[np.float64],
) -> None:
    """The step's round outputs against the oracle's, on the systems ``rows`` (arrays (n, ...))."""
    n = rows.size

    def row(key: str) -> NDArray[Any]:  # single env: (K,) or a float; vector env: (n, K) or (n,)
        value = np.asarray(info[key])
        return (
            value.reshape(n, -1)[rows]
            if key in ("tokens", "accepted", "draft_lengths", "bandwidth")
            else value.reshape(n)[rows]
        )

    np.testing.assert_array_equal(
        np.asarray(info["dropped"]).reshape(n, -1)[rows], oracle.dropped[rows], err_msg="dropped"
    )
    np.testing.assert_allclose(
        np.asarray(info["energy"]).reshape(n, -1)[rows], oracle.energy[rows], rtol=RTOL, atol=1e-15, err_msg="energy"
    )
    for key, expected in (("tokens", oracle.tokens), ("accepted", oracle.accepted), ("draft_lengths", lengths)):
        got = row(key)
        assert got.dtype.kind == "i", key
        np.testing.assert_array_equal(got, expected[rows].astype(np.int64), err_msg=key)
    np.testing.assert_allclose(row("bandwidth"), shares[rows], rtol=RTOL, atol=0, err_msg="bandwidth")
    for key, expected in (
        ("sync_time", oracle.sync_time),
        ("verify_time", oracle.verify_time),
        ("latency", oracle.latency),
        ("clock", oracle.clock),
    ):
        np.testing.assert_allclose(row(key), expected[rows], rtol=RTOL, atol=0, err_msg=key)
    np.testing.assert_allclose(np.reshape(reward, -1)[rows], oracle.reward[rows], rtol=RTOL, err_msg="reward")
    np.testing.assert_array_equal(np.reshape(truncated, -1)[rows], oracle.truncated[rows], err_msg="truncated")


# ------------------------------------------------------------------------------------------ exact check
# (id, num_envs (None: gym.make), settings): every acceptance process, fading on/off, CSI delay 0/2, jitter 0/0.3,
# both ids, single and vector env (NEXT_STEP and SAME_STEP autoreset). A short horizon makes episodes end every few
# rounds, so resets are covered. Not covered: csi_noise_std > 0 (its CN(0, std^2) noise is drawn after the
# process's own draws, which this oracle does not replay) and resample_population (populations are not its job).
CONFIGS = [
    (HET, None, dict(acceptance_process="iid")),
    (HOM, None, dict(acceptance_process="positional", csi_delay=2, draft_time_jitter=0.3)),
    (HET, None, dict(acceptance_process="markov", fading=False, draft_time_jitter=0.3, markov_switch_prob=0.3)),
    (HET, None, dict(acceptance_process="tasks", csi_delay=2, mean_request_tokens=5.0, num_users=3)),
    (HOM, None, dict(acceptance_process="iid", fading=False, max_draft=4, downlink_time=0.01)),
    (HET, 5, dict(acceptance_process="iid", csi_delay=2, draft_time_jitter=0.3)),
    (HOM, 5, dict(acceptance_process="markov", markov_switch_prob=0.3, num_users=4)),
    (HET, 5, dict(acceptance_process="tasks", fading=False, csi_delay=2, mean_request_tokens=5.0)),
    (HET, 5, dict(acceptance_process="positional", max_draft=6, doppler_hz=40.0)),
    (HOM, 5, dict(acceptance_process="iid", fading=False, reward_scale=0.5, acceptance_forgetting=0.5)),
    (HET, 5, dict(acceptance_process="iid", csi_delay=1, autoreset_mode="SAME_STEP")),
    (HOM, 5, dict(acceptance_process="markov", autoreset_mode="SAME_STEP", draft_time_jitter=0.3)),
    # Round realism (eq. 1', 2', section 5.7): a binding deadline, a knee, a measured profile, energy in the reward.
    (HET, 5, dict(acceptance_process="iid", upload_deadline=0.04, energy_weight=0.5, draft_time_jitter=0.3)),
    (HET, None, dict(acceptance_process="positional", upload_deadline=0.06, verify_knee_tokens=32.0)),
    (HOM, 5, dict(acceptance_process="iid", fading=False, verify_profile="llama2-7b-prefill", upload_deadline=None)),
    (
        HET,
        None,
        dict(acceptance_process="markov", verify_profile=((1, 0.03), (4, 0.031), (8, 0.05)), energy_weight=2.0),
    ),
    # Arrivals (section 5.8): idle users, shares rescaled over the active ones, tokens capped at the request's end.
    (HET, None, dict(acceptance_process="tasks", arrival_rate=3.0, mean_request_tokens=6.0, horizon=2.0)),
    (
        HET,
        5,
        dict(
            acceptance_process="iid",
            arrival_rate=1.0,
            mean_request_tokens=4.0,
            request_length="fixed",
            upload_deadline=0.06,
            horizon=2.0,
        ),
    ),
    (
        HOM,
        5,
        dict(
            acceptance_process="mixture",
            mixture_scope="request",
            arrival_rate=5.0,
            mean_request_tokens=8.0,
            autoreset_mode="SAME_STEP",
            horizon=2.0,
        ),
    ),
]
ROUNDS = 100  # > one block of 64 rounds: the vector envs cross a block refill (the single envs refill at resets)


def _make(env_id: str, num_envs: int | None, settings: dict[str, Any]) -> tuple[Any, Any]:
    """The env (gym.make or gym.make_vec) and its unwrapped object (holds ``core`` and ``np_random``)."""
    settings = {"horizon": 0.6, **settings}
    if "downlink_time" in settings:  # a scenario field: passed through a Scenario override
        settings["scenario"] = get_scenario("base", downlink_time=settings.pop("downlink_time"))
    if num_envs is None:
        env = gym.make(env_id, **settings)
        return env, env.unwrapped
    env = gym.make_vec(env_id, num_envs=num_envs, **settings)
    return env, env


@pytest.mark.parametrize(
    ("env_id", "num_envs", "settings"),
    CONFIGS,
    ids=[f"{i}-{n or 1}-{'-'.join(f'{k}={v}' for k, v in s.items())}" for i, n, s in CONFIGS],
)
def test_round_matches_reference(env_id: str, num_envs: int | None, settings: dict[str, Any]) -> None:
    """Every round of a seeded trajectory equals the oracle's on the same state and draws.

    Catches any change of eq. (1)-(4), the decoding, the counts, the clock/truncation, the Gauss-Markov step
    (rho, the innovation's scaling, which gain it starts from), the CSI-delay ring, the observation's scaling and
    clipping, which block entry a round uses, and resets (clock, counts, ring and start gain).
    """
    env, unwrapped = _make(env_id, num_envs, settings)
    core: MultiSpinCore = unwrapped.core
    vector = num_envs is not None
    n, num_users = core.num_envs, core.num_users
    space = unwrapped.single_observation_space if vector else unwrapped.observation_space
    s = settings_of(core, float(space.high[num_users]))
    delay = core.config.csi_delay
    test_rng = np.random.default_rng(1234)

    def reference_observation(
        rows: NDArray[np.bool_],
        efficiency_seen: NDArray[np.float64],
        last_lengths: Any,
        last_tokens: Any,
        successes: Any,
        failures: Any,
        clock: Any,
        ended: NDArray[np.bool_] | None = None,
        final_info: Any = None,
    ) -> NDArray[np.float32]:
        """The oracle's observation of the systems ``rows`` (the other arguments hold those rows only); with
        arrivals, the requests of the state after the round (they arrive and start between rounds), for the
        systems ``ended`` (restarted within the step) those of their final info."""
        requests = {}
        if core.arrivals:
            active, remaining = core.requests.active.copy(), core.requests.remaining.copy()
            if ended is not None and ended.any():
                active[ended] = final_info["active"][ended]
                remaining[ended] = final_info["remaining"][ended]
            requests = dict(active=active[rows], remaining=remaining[rows])
        return observation(
            s, efficiency_seen, core.draft_time[rows], successes, failures, last_lengths, last_tokens, clock, **requests
        )

    def check_start(rows: NDArray[np.bool_], gain0: NDArray[np.complex128], obs: NDArray[np.float32]) -> None:
        """A fresh episode in ``rows``: start gain, clock and counts 0, every ring slot the start gain."""
        np.testing.assert_allclose(core.gain[rows], gain0, rtol=RTOL, err_msg="start gain")
        zeros = np.zeros((int(rows.sum()), num_users))
        e0 = spectral_efficiency(pre["snr"][rows], gain0)  # the delayed estimate is the start channel too
        np.testing.assert_allclose(core.spectral_efficiency[rows], e0, rtol=RTOL)
        np.testing.assert_allclose(core.upload_time[rows], s.payload_bits / (s.bandwidth_hz * e0), rtol=RTOL)
        expected = reference_observation(rows, e0, zeros, zeros, zeros, zeros, np.zeros(int(rows.sum())))
        np.testing.assert_allclose(np.reshape(obs, (n, -1))[rows], expected, rtol=OBS_RTOL, atol=OBS_ATOL)
        history[:, rows] = gain0
        if core.arrivals:  # an episode starts with every user idle and no request queued (section 5.8)
            assert not core.requests.in_system()[rows].any()

    # A first seeded reset, then a checked one from a generator state the test can copy.
    env.reset(seed=7)
    pre = pre_round_state(core)
    history = np.ones((delay + 1, n, num_users), dtype=np.complex128)  # the gains of the last delay + 1 rounds
    rng_copy = copy.deepcopy(unwrapped.np_random)
    obs, info = env.reset()
    everyone = np.ones(n, dtype=bool)
    check_start(everyone, start_gain(rng_copy, n, num_users, s.fading), obs)

    same_step = vector and unwrapped.autoreset_mode is AutoresetMode.SAME_STEP
    resetting = np.zeros(n, dtype=bool)  # NEXT_STEP autoreset: sub-envs truncated in the last step
    resets = 0
    idle = capped = completed = 0  # arrivals: rounds of idle users, of tokens past a request's end, completions
    for _ in range(ROUNDS):
        pre = pre_round_state(core)
        draws, rng_after_block = round_draws(core, unwrapped.np_random)
        action = random_actions(test_rng, n, core.action_size, num_users)
        lengths, shares = decode_action(action, num_users, s.max_draft)
        oracle = play_round(s, lengths=lengths, shares=shares, **pre, **draws)
        if core.arrivals:
            lengths, shares = idle_users_out(lengths, shares, pre["active"])

        obs, reward, terminated, truncated, info = env.step(action if vector else action[0])
        assert not np.any(terminated)
        played = ~resetting
        # SAME_STEP: the sub-envs that ended in this step restarted within it; their round is in final_info.
        ended = np.asarray(truncated) & same_step
        kept = played & ~ended
        assert_round(oracle, info, reward, truncated, kept, lengths, shares)
        if ended.any():
            assert_round(oracle, info["final_info"], reward, truncated, ended, lengths, shares)
            assert not np.any(info["_tokens"][ended]) and np.all(info["_final_obs"] == ended)
        if core.arrivals:
            idle += int((~pre["active"][kept]).sum())
            capped += int((pre["active"] & (oracle.tokens < oracle.accepted + 1.0))[kept].sum())
            completed += int(oracle.completed[kept].sum())
            for key in ("completed", "completion_time"):
                np.testing.assert_allclose(
                    np.reshape(info[key], (n, -1))[kept], getattr(oracle, key)[kept], rtol=RTOL, err_msg=key
                )
        np.testing.assert_allclose(core.successes[kept], oracle.successes[kept], rtol=RTOL)
        np.testing.assert_allclose(core.failures[kept], oracle.failures[kept], rtol=RTOL)
        # Next round's state: the true channel (info, eq. of section 4.2) and the process's position-1 rate.
        np.testing.assert_allclose(core.gain[kept], oracle.gain[kept], rtol=RTOL, atol=1e-15)
        np.testing.assert_allclose(
            np.reshape(info["spectral_efficiency"], (n, -1))[kept], oracle.efficiency[kept], rtol=RTOL
        )
        np.testing.assert_allclose(core.upload_time[kept], oracle.upload_time[kept], rtol=RTOL)
        np.testing.assert_allclose(
            np.reshape(info["acceptance"], (n, -1)), np.exp(-core.process.cumulative_hazard[:, :, 0]), rtol=1e-12
        )
        # Observation of the played systems: the channel estimate is the gain of `delay` rounds ago (section 5.2).
        history = np.concatenate([history[1:], oracle.gain[None]])
        expected = reference_observation(
            everyone,
            spectral_efficiency(pre["snr"], history[0]),
            lengths,
            oracle.tokens,
            oracle.successes,
            oracle.failures,
            oracle.clock,
            ended,
            info.get("final_info"),
        )
        last_obs = np.where(ended[:, None], info["final_obs"], np.reshape(obs, (n, -1))) if ended.any() else obs
        np.testing.assert_allclose(
            np.reshape(last_obs, (n, -1))[played], expected[played], rtol=OBS_RTOL, atol=OBS_ATOL
        )
        if ended.any():
            # Restarted after the round's draws: with a process that does not evolve, the start gains are the
            # next N(0, 1) pairs (core.py: _reset_rows draws them first); else the process's draws come first.
            gain0 = (
                start_gain(rng_after_block, int(ended.sum()), num_users, s.fading)
                if not core.process.evolves and core.requests is None
                else core.gain[ended].copy()
            )
            check_start(ended, gain0, obs)
            resets += int(ended.sum())

        if vector and resetting.any():
            # NEXT_STEP: these sub-envs ignored the action and started a new episode (section 8.3). Their start
            # gains are the N(0, 1) pairs drawn right after the blocks when the restart runs in the kernel (no
            # process draw comes between); otherwise the evolving process draws first, and the test takes the
            # start gain from the state and checks the rest of the reset.
            assert np.all(np.asarray(reward)[resetting] == 0.0) and not np.any(np.asarray(truncated)[resetting])
            assert not np.any(info["_tokens"][resetting]) and np.all(info["_clock"])
            if core._restart_in_kernel:
                gain0 = start_gain(rng_after_block, int(resetting.sum()), num_users, s.fading)
            else:
                gain0 = core.gain[resetting].copy()
            check_start(resetting, gain0, obs)
            resets += int(resetting.sum())
        if vector:
            resetting = np.asarray(truncated) & (unwrapped.autoreset_mode is AutoresetMode.NEXT_STEP)
        elif truncated:
            rng_copy = copy.deepcopy(unwrapped.np_random)
            obs, info = env.reset()  # the reset's first draw is the start channel (core.py, _reset_rows)
            check_start(everyone, start_gain(rng_copy, 1, num_users, s.fading), obs)
            assert info["clock"] == 0.0
            resets += 1
    assert resets >= 3, "the horizon should end several episodes"
    assert not core.arrivals or min(idle, capped, completed) > 0, "idle users, capped tokens and completions"
    env.close()


# ------------------------------------------------------------------------------------------ statistics
def _run_fixed(
    settings: dict[str, Any], lengths: list[int], rounds: int, num_envs: int = 64, seed: int = 0
) -> tuple[Any, list[dict[str, NDArray[Any]]]]:
    """A vector env without resets stepped ``rounds`` times with fixed lengths and equal shares; per round the
    survival curve before it (section 5.1), the accepted prefixes, the gain before it and the latency."""
    env = gym.make_vec(HET, num_envs=num_envs, autoreset_mode="DISABLED", horizon=1e9, **settings)
    env.reset(seed=seed)
    core: MultiSpinCore = env.core
    action = env.encode_action(np.array(lengths), np.full(len(lengths), 1.0 / len(lengths)))
    action = np.broadcast_to(action, (num_envs, action.size))
    records = []
    for _ in range(rounds):
        survival, gain = core.process.survival(), core.gain.copy()
        _, _, _, _, info = env.step(action)
        records.append({"survival": survival, "accepted": info["accepted"], "gain": gain, "latency": info["latency"]})
    records.append({"gain": core.gain.copy()})
    env.close()
    return core, records


@pytest.mark.parametrize("process", ["iid", "positional", "markov"])
def test_accepted_prefix_follows_survival(process: str) -> None:
    """P(A = j) from the round's survival curve S(i) = exp(-H(i)) (section 5.1): S(j) - S(j + 1) for j < L and
    S(L) for j = L. Pearson chi-square of the counts pooled over users and rounds; with per-sample probabilities
    that differ (users, markov regimes) the pooled statistic is conservative, never anti-conservative.

    Catches an off-by-one between positions and H's columns, a strict < in place of <=, a missing cap at L, a
    stale table (markov: the regime after the switch), Exp(1) variates reused across users or of a wrong scale.
    """
    max_draft = 8
    _, records = _run_fixed(
        {"acceptance_process": process, "fading": False, "max_draft": max_draft}, [max_draft] * 6, rounds=120, seed=11
    )
    expected = np.zeros(max_draft + 1)
    observed = np.zeros(max_draft + 1)
    for record in records[:-1]:
        survival = np.concatenate(
            [
                np.ones((*record["survival"].shape[:2], 1)),
                record["survival"],
                np.zeros((*record["survival"].shape[:2], 1)),
            ],
            axis=2,
        )
        expected += (survival[:, :, :-1] - survival[:, :, 1:]).sum(axis=(0, 1))
        observed += np.bincount(record["accepted"].ravel(), minlength=max_draft + 1)
    # Merge the tail cells until every expected count is >= 5 (chi-square approximation).
    while expected[-1] < 5.0:
        expected[-2] += expected[-1]
        observed[-2] += observed[-1]
        expected, observed = expected[:-1], observed[:-1]
    statistic = float(((observed - expected) ** 2 / expected).sum())
    p_value = scipy.stats.chi2.sf(statistic, df=expected.size - 1)
    assert p_value > 1e-4, (process, observed, expected.round(1), p_value)


def test_mean_tokens_match_eq4() -> None:
    """Mean tokens per round of each user against N(a_k, L_k) of eq. (4) (iid, no fading), within 5 standard
    errors; the variance of A is exact from the survival curve: Var A = sum_i (2i - 1) a^i - (sum_i a^i)^2.

    Catches a biased sampler (e.g. A counted from H(i) < E with i from 0, tokens = A instead of A + 1), lengths
    decoded wrongly, or a rate other than the population's used in the round.
    """
    lengths = [0, 1, 3, 5, 8, 10]
    num_envs, rounds = 64, 150
    core, records = _run_fixed({"acceptance_process": "iid", "fading": False}, lengths, rounds, num_envs, seed=3)
    rate = core.process.rate[0]
    assert np.all(core.process.rate == rate)  # the same fixed population in every sub-env
    tokens = np.stack([r["accepted"] for r in records[:-1]]) + 1  # (rounds, n, K)
    mean = tokens.mean(axis=(0, 1))
    length = np.array(lengths, dtype=np.float64)
    powers = np.where(np.arange(1, 11) <= length[:, None], rate[:, None] ** np.arange(1, 11), 0.0)
    variance = (powers * (2 * np.arange(1, 11) - 1)).sum(axis=1) - powers.sum(axis=1) ** 2
    standard_error = np.sqrt(variance / (num_envs * rounds))
    np.testing.assert_array_equal(mean[length == 0], 1.0)
    assert np.all(np.abs(mean - expected_tokens(rate, length)) <= 5.0 * standard_error + 1e-12), (
        mean,
        expected_tokens(rate, length),
        standard_error,
    )


def test_fading_lag_one_correlation_is_jakes() -> None:
    """With every L_k = 0 the round latency is the constant T = T0 + kappa K, so the gains follow one AR(1)
    chain: E[h' conj(h) | h] = rho |h|^2 with rho = J0(2 pi f_D T). The regression estimate
    sum Re(h' conj h) / sum |h|^2 has standard error sqrt((1 - rho^2) / (2 sum |h|^2)); accept within 5 of them.

    Catches a wrong rho (J0 of f_D T without 2 pi, of the clock instead of the round's latency, of a stale
    latency), a wrong innovation scale (sqrt(1 - rho) in place of sqrt(1 - rho^2) makes the mean |h|^2 drift).
    """
    doppler_hz, num_users = 5.0, 6
    core, records = _run_fixed({"doppler_hz": doppler_hz, "num_users": num_users}, [0] * num_users, rounds=200, seed=5)
    period = core.scenario.verify_base + core.scenario.verify_per_token * num_users
    latencies = np.concatenate([r["latency"] for r in records[:-1]])
    np.testing.assert_allclose(latencies, period, rtol=1e-12)
    rho = float(scipy.special.j0(2.0 * np.pi * doppler_hz * period))
    gains = np.stack([r["gain"] for r in records])  # (rounds + 1, n, K)
    before, after = gains[:-1], gains[1:]
    power = float((np.abs(before) ** 2).sum())
    estimate = float((after * before.conj()).real.sum()) / power
    standard_error = np.sqrt((1.0 - rho**2) / (2.0 * power))
    assert abs(estimate - rho) <= 5.0 * standard_error, (estimate, rho, standard_error)
    # Stationarity: E|h|^2 = 1; the mean over 64 x 6 independent chains and 200 rounds is within 5%.
    assert abs(float(np.mean(np.abs(gains) ** 2)) - 1.0) < 0.05


@pytest.mark.parametrize("name", ["standard_normal", "standard_exponential"])
def test_kernel_draws_are_numpys_values_and_leave_the_generator_in_numpys_state(name: str) -> None:
    """The core draws its blocks of variates through these kernels; seeded runs must be numpy's streams."""
    from multispin_env.core import _kernels

    expected_rng, kernel_rng = np.random.default_rng(11), np.random.default_rng(11)
    expected = getattr(expected_rng, name)(1000)
    out = np.empty(1000)
    getattr(_kernels(), name)(kernel_rng, out)
    np.testing.assert_array_equal(out, expected)
    assert kernel_rng.bit_generator.state == expected_rng.bit_generator.state
