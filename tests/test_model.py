"""Property tests for the round model (docs/model.md section 2, eq. (1)-(5)) and RoundParams validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from multispin_env.model import (
    RoundParams,
    equal_finish_time,
    expected_goodput,
    expected_tokens,
    optimal_bandwidth,
    round_latency,
    sync_time,
)

# --------------------------------------------------------------------------- strategies

ACCEPTANCE = st.floats(1e-6, 0.999999)
DRAFT_TIME = st.floats(1e-4, 0.1)
UPLOAD_TIME = st.floats(1e-7, 10.0)


@st.composite
def systems(draw: st.DrawFn, max_users: int = 6) -> tuple[RoundParams, np.ndarray]:
    """A valid RoundParams spanning the extremes and a random length vector for it."""
    k = draw(st.integers(1, max_users))
    vec = lambda elem: np.array(draw(st.lists(elem, min_size=k, max_size=k)))  # noqa: E731
    params = RoundParams(
        acceptance=vec(ACCEPTANCE),
        draft_time=vec(DRAFT_TIME),
        upload_time=vec(UPLOAD_TIME),
        verify_base=draw(st.floats(1e-3, 0.3)),
        verify_per_token=draw(st.floats(0.0, 0.01)),
        max_draft=draw(st.integers(1, 12)),
        downlink_time=draw(st.floats(0.0, 0.05)),
    )
    lengths = vec(st.integers(0, params.max_draft))
    return params, lengths


def _base_kwargs(k: int = 3) -> dict[str, object]:
    return {
        "acceptance": np.full(k, 0.7),
        "draft_time": np.full(k, 0.01),
        "upload_time": np.full(k, 1e-3),
    }


def _raises_naming(field: str, **overrides: object) -> None:
    kwargs = _base_kwargs()
    kwargs.update(overrides)
    with pytest.raises(ValueError, match=field):
        RoundParams(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- RoundParams validation

BAD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf])


@given(st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), BAD_NUMBERS), st.integers(0, 2))
def test_acceptance_outside_open_unit_interval_is_rejected(bad: float, position: int) -> None:
    acceptance = np.full(3, 0.7)
    acceptance[position] = bad
    _raises_naming("acceptance", acceptance=acceptance)


@pytest.mark.parametrize("field", ["draft_time", "upload_time"])
@given(bad=st.one_of(st.floats(max_value=0.0), BAD_NUMBERS), position=st.integers(0, 2))
def test_non_positive_or_non_finite_times_are_rejected(field: str, bad: float, position: int) -> None:
    values = np.array(_base_kwargs()[field], dtype=float)
    values[position] = bad
    _raises_naming(field, **{field: values})


@pytest.mark.parametrize("field", ["acceptance", "draft_time", "upload_time"])
def test_zero_users_is_rejected(field: str) -> None:
    _raises_naming(field, **{field: np.array([])})


@pytest.mark.parametrize("field", ["acceptance", "draft_time", "upload_time"])
@given(size=st.integers(1, 6).filter(lambda n: n != 3))
def test_mismatched_lengths_are_rejected(field: str, size: int) -> None:
    kwargs = _base_kwargs()
    value = np.full(size, 0.5 if field == "acceptance" else 0.01)
    with pytest.raises(ValueError, match=field):
        RoundParams(**{**kwargs, field: value})  # type: ignore[arg-type]


@given(
    st.one_of(
        st.integers(max_value=0),
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (x >= 1 and float(x).is_integer())),
        st.sampled_from([None, "three", True, [3]]),
    )
)
def test_max_draft_must_be_integer_at_least_one(bad: object) -> None:
    _raises_naming("max_draft", max_draft=bad)


@given(st.one_of(st.floats(max_value=-1e-300), BAD_NUMBERS))
def test_negative_or_non_finite_verify_per_token_is_rejected(bad: float) -> None:
    _raises_naming("verify_per_token", verify_per_token=bad)


@given(st.one_of(st.floats(max_value=0.0), BAD_NUMBERS))
def test_non_positive_verify_base_is_rejected(bad: float) -> None:
    _raises_naming("verify_base", verify_base=bad)


@given(st.one_of(st.floats(max_value=-1e-300), BAD_NUMBERS))
def test_negative_downlink_time_is_rejected(bad: float) -> None:
    _raises_naming("downlink_time", downlink_time=bad)


def test_valid_params_are_stored_read_only() -> None:
    params = RoundParams(**_base_kwargs(), max_draft=7.0)  # type: ignore[arg-type]
    assert params.num_users == 3 and params.max_draft == 7 and isinstance(params.max_draft, int)
    with pytest.raises(ValueError):
        params.acceptance[0] = 0.1


# --------------------------------------------------------------------------- allocation validation


@given(systems(), st.integers(0, 5), st.sampled_from(["negative", "oversum", "nan", "shape"]))
def test_bad_bandwidth_is_rejected_naming_it(system: tuple[RoundParams, np.ndarray], pos: int, kind: str) -> None:
    params, lengths = system
    k = params.num_users
    shares = np.full(k, 1.0 / k)
    i = pos % k
    if kind == "negative":
        shares[i] = -0.1
    elif kind == "oversum":
        shares = shares * 1.01
    elif kind == "nan":
        shares[i] = math.nan
    else:
        shares = np.full(k + 1, 1.0 / (k + 1))
    with pytest.raises(ValueError, match="bandwidth"):
        expected_goodput(params, lengths, shares)


@given(systems(), st.sampled_from(["shape", "fraction", "negative", "too_long", "nan"]))
def test_bad_draft_lengths_are_rejected_naming_them(system: tuple[RoundParams, np.ndarray], kind: str) -> None:
    params, lengths = system
    bad = lengths.astype(float)
    if kind == "shape":
        bad = np.append(bad, 1.0)
    elif kind == "fraction":
        bad[0] = 0.5
    elif kind == "negative":
        bad[0] = -1.0
    elif kind == "too_long":
        bad[0] = params.max_draft + 1
    else:
        bad[0] = math.nan
    with pytest.raises(ValueError, match="draft_lengths"):
        expected_goodput(params, bad)


# --------------------------------------------------------------------------- formulas


@given(ACCEPTANCE, st.integers(0, 60))
def test_expected_tokens_equals_direct_sum(acceptance: float, length: int) -> None:
    direct = math.fsum(acceptance**i for i in range(length + 1))
    assert expected_tokens(acceptance, length) == pytest.approx(direct, rel=1e-12)


def test_expected_tokens_limits() -> None:
    # a -> 0: only the target's token; a -> 1: every drafted token plus one.
    lengths = np.arange(11)
    assert np.allclose(expected_tokens(1e-12, lengths), 1.0, rtol=1e-11)
    assert np.allclose(expected_tokens(1 - 1e-12, lengths), lengths + 1.0, rtol=1e-9)


@given(systems(max_users=8))
def test_equal_finish_time_root_and_shares(system: tuple[RoundParams, np.ndarray]) -> None:
    params, lengths = system
    work = lengths * params.upload_time
    offset = lengths * params.draft_time
    tau = float(equal_finish_time(work, offset))
    shares, tau2 = optimal_bandwidth(params.draft_time, params.upload_time, lengths)
    assert tau == pytest.approx(float(tau2), rel=1e-15)
    drafting = lengths > 0
    if not drafting.any():
        assert tau == 0.0 and np.all(shares == 0.0)
        return
    assert tau > offset[drafting].max()
    # The root satisfies sum_k L_k c_k / (tau - L_k t_k) = 1.
    assert np.sum(work[drafting] / (tau - offset[drafting])) == pytest.approx(1.0, rel=1e-10)
    assert shares.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.all(shares[~drafting] == 0.0) and np.all(shares[drafting] > 0.0)
    finish = lengths * params.draft_time + lengths * params.upload_time / np.where(drafting, shares, 1.0)
    assert np.allclose(finish[drafting], tau, rtol=1e-9)


@given(systems(max_users=8), st.lists(st.floats(1e-3, 1.0), min_size=8, max_size=8))
def test_optimal_shares_minimise_sync_time(system: tuple[RoundParams, np.ndarray], raw: list[float]) -> None:
    params, lengths = system
    k = params.num_users
    shares, tau = optimal_bandwidth(params.draft_time, params.upload_time, lengths)
    other = np.array(raw[:k])
    other = other / other.sum()
    assert sync_time(params.draft_time, params.upload_time, lengths, shares) == pytest.approx(float(tau), rel=1e-9)
    assert sync_time(params.draft_time, params.upload_time, lengths, other) >= float(tau) * (1 - 1e-12)


@given(systems(max_users=8))
def test_goodput_matches_eq_5(system: tuple[RoundParams, np.ndarray]) -> None:
    params, lengths = system
    shares, tau = optimal_bandwidth(params.draft_time, params.upload_time, lengths)
    latency = float(tau) + params.verify_base + params.verify_per_token * (lengths + 1).sum() + params.downlink_time
    tokens = sum(math.fsum(a**i for i in range(n + 1)) for a, n in zip(params.acceptance, lengths, strict=True))
    assert float(round_latency(params, lengths)) == pytest.approx(latency, rel=1e-12)
    assert float(expected_goodput(params, lengths)) == pytest.approx(tokens / latency, rel=1e-11)
    assert float(expected_goodput(params, lengths, shares)) == pytest.approx(tokens / latency, rel=1e-9)


def test_drafting_without_share_yields_zero_goodput() -> None:
    params = RoundParams(**_base_kwargs())  # type: ignore[arg-type]
    assert float(expected_goodput(params, [2, 1, 0], [1.0, 0.0, 0.0])) == 0.0


@pytest.mark.parametrize("k", [1, 256])
@pytest.mark.parametrize("acceptance", [1e-6, 0.999999])
def test_extremes_stay_finite(k: int, acceptance: float) -> None:
    rng = np.random.default_rng(k)
    params = RoundParams(
        acceptance=np.full(k, acceptance),
        draft_time=10 ** rng.uniform(-4, -1, k),
        upload_time=10 ** rng.uniform(-7, 1, k),
        max_draft=10,
    )
    lengths = rng.integers(0, 11, size=(16, k))
    lengths[0] = 10
    lengths[1] = 0
    values = expected_goodput(params, lengths)
    assert values.shape == (16,)
    assert np.all(np.isfinite(values)) and np.all(values > 0.0)
    shares, tau = optimal_bandwidth(params.draft_time, params.upload_time, lengths)
    assert np.all(np.isfinite(tau)) and np.all(np.isfinite(shares))
    drafting = lengths.any(axis=1)
    assert np.allclose(shares.sum(axis=1)[drafting], 1.0, rtol=1e-12)
    s_star = float(equal_finish_time(params.upload_time, params.draft_time))
    assert math.isfinite(s_star) and s_star > params.draft_time.max()
    # Homogeneous identity (docs/model.md section 3): tau(L, ..., L) = L s*.
    assert float(tau[0]) == pytest.approx(10 * s_star, rel=1e-12)


def test_running_throughput_and_slack_are_their_formulas() -> None:
    """eq. (5.9a) x = tokens / t (0 at t = 0, without numpy's invalid-value flag) and eq. (9d)'s slack
    (D_due - t for an active user, 0 idle): the functions the observation kernel and the info both call."""
    from multispin_env.model import request_slack, running_throughput

    with np.errstate(all="raise"):  # 32 entries: the vectorised loop's lanes, not only its scalar tail
        rate = running_throughput(np.tile([0.0, 6.0, 0.0, 3.0], 8), np.tile([0.0, 0.0, 1.5, 1.5], 8))
    np.testing.assert_array_equal(rate, np.tile([0.0, 0.0, 0.0, 2.0], 8))
    assert running_throughput(7.0, 2.0) == 3.5
    slack = request_slack(np.array([4.0, 4.0, 1.0]), 2.5, np.array([1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(slack, [1.5, 0.0, -1.5])
