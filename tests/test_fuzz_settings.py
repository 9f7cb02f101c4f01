"""Property tests of the settings and of trace files: every accepted value gives finite output, every rejected one
a one-line ValueError naming what is wrong.

The values are drawn from the checks where the settings are declared (the fields of ``EnvConfig`` and
``Scenario``, docs/model.md section 4.1), with the smallest and largest representable values of each range drawn
often: a range that admits a value the simulator cannot handle fails here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multispin_env import scenarios
from multispin_env._checks import IntegerRange, RealRange, flag_setting
from multispin_env.channel import DEVICE_CLASSES, PAYLOAD_MODELS
from multispin_env.config import Choice, EnvConfig, OptionalSetting
from multispin_env.envs import MultiSpinHeterogeneousEnv, MultiSpinHomogeneousEnv
from multispin_env.traces import TRACE_FORMAT, TRACE_VERSION, load_trace

ROUNDS = 50


def _ends(check: RealRange) -> tuple[float, float]:
    """The smallest and largest floats the range accepts."""
    low = math.nextafter(check.low, math.inf) if check.low_open else check.low
    high = math.nextafter(check.high, -math.inf) if check.high_open else check.high
    return low, high


def _real(check: RealRange) -> st.SearchStrategy[float]:
    low, high = _ends(check)
    return st.one_of(st.sampled_from([low, high]), st.floats(low, high))


def _integer(check: IntegerRange) -> st.SearchStrategy[int]:
    high = check.high if check.high is not None else 2**63 - 1
    return st.one_of(st.sampled_from([check.low, high]), st.integers(check.low, high))


def _profile() -> st.SearchStrategy[Any]:
    """Verification profiles: presets and tables whose points span the declared token and second ranges."""
    point = st.tuples(_real(scenarios.VERIFY_PROFILE_TOKENS), _real(scenarios.VERIFY_PROFILE_SECONDS))
    tables = st.lists(point, min_size=2, max_size=5).map(
        lambda points: [(t, s) for t, s in sorted(points)]
    )  # often valid, sometimes too close or decreasing
    return st.one_of(st.none(), st.sampled_from(sorted(scenarios.VERIFY_PROFILES)), tables)


def _device_mix() -> st.SearchStrategy[dict[str, float]]:
    return st.dictionaries(st.sampled_from(sorted(DEVICE_CLASSES)), _real(scenarios.DEVICE_WEIGHT), min_size=1)


def _from_check(check: Any) -> st.SearchStrategy[Any] | None:
    """Values of a setting, from its declared check (None: a setting drawn elsewhere or not at all)."""
    if isinstance(check, OptionalSetting):
        inner = _from_check(check.check)
        return None if inner is None else st.one_of(st.none(), inner)
    if isinstance(check, RealRange):
        return _real(check)
    if isinstance(check, IntegerRange):
        return _integer(check)
    if isinstance(check, Choice):
        return st.sampled_from(sorted(check.choices()))
    if check is flag_setting:
        return st.booleans()
    return {
        scenarios.verify_profile_setting: _profile(),
        scenarios.device_mix_setting: _device_mix(),
        scenarios.payload_setting: st.sampled_from(PAYLOAD_MODELS),
    }.get(check)


def _strategies(cls: type) -> dict[str, st.SearchStrategy[Any]]:
    out = {}
    for spec in dataclasses.fields(cls):
        strategy = _from_check(spec.metadata.get("check"))
        if strategy is not None:
            out[spec.name] = strategy
    return out


CONFIG_VALUES = _strategies(EnvConfig)
SCENARIO_VALUES = _strategies(Scenario := scenarios.Scenario)
# Settings drawn specially: the trace file (the trace fuzz below) and the id-fixed flag (the env class is drawn).
for _name in ("trace_path", "homogeneous"):
    CONFIG_VALUES.pop(_name, None)


def test_every_declared_setting_is_drawn() -> None:
    """A new setting whose check the strategies do not know fails here instead of going untested."""
    config = {spec.name for spec in dataclasses.fields(EnvConfig) if spec.init}
    assert config - set(CONFIG_VALUES) == {"trace_path", "homogeneous", "scenario"}
    checked = {spec.name for spec in dataclasses.fields(Scenario) if "check" in spec.metadata}
    assert checked == set(SCENARIO_VALUES)


@st.composite
def _settings(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.sets(st.sampled_from(sorted(CONFIG_VALUES)), max_size=6))
    values = {name: draw(CONFIG_VALUES[name]) for name in sorted(chosen)}
    if draw(st.booleans()):
        fields = draw(st.sets(st.sampled_from(sorted(SCENARIO_VALUES)), min_size=1, max_size=4))
        values["scenario"] = {name: draw(SCENARIO_VALUES[name]) for name in sorted(fields)}
    return values


def _finite(value: Any) -> bool:
    array = np.asarray(value)
    return array.dtype.kind not in "fc" or bool(np.all(np.isfinite(array)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_settings(), homogeneous=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_accepted_settings_give_finite_rounds(values: dict[str, Any], homogeneous: bool, seed: int) -> None:
    cls = MultiSpinHomogeneousEnv if homogeneous else MultiSpinHeterogeneousEnv
    kwargs = dict(values)
    try:
        if isinstance(kwargs.get("scenario"), dict):
            kwargs["scenario"] = Scenario(**kwargs["scenario"])
        env = cls(**kwargs)
    except ValueError as exc:
        message = str(exc)
        named = set(values) | set(values.get("scenario") or {})
        assert "\n" not in message and len(message) < 400, message
        assert any(name in message for name in named), message
        return
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    env.action_space.seed(seed)
    for _ in range(ROUNDS):
        obs, reward, _, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs), (values, obs)
        assert math.isfinite(reward), values
        assert all(_finite(v) for v in info.values()), {k: v for k, v in info.items() if not _finite(v)}
        if truncated:
            obs, info = env.reset()


# --- trace files ---------------------------------------------------------------------------------------------------

_HEADER = {"format": TRACE_FORMAT, "version": TRACE_VERSION, "max_draft": 8, "metadata": {}}


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False), st.text(max_size=5)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=8,
    )


def _bad_lines() -> st.SearchStrategy[tuple[str, str]]:
    """A bad line and what kind of bad it is: malformed JSON, deep nesting, huge integers, wrong types."""
    depth = st.integers(2_000, 100_000)
    return st.one_of(
        st.text(min_size=1, max_size=20)
        .filter(lambda t: t.strip() and not _is_json_object(t))
        .map(lambda t: (t, "malformed")),
        depth.map(lambda n: ("[" * n + "]" * n, "nesting")),
        depth.map(lambda n: ('{"accepted": ' + "[" * n + "]" * n + "}", "nesting")),
        st.integers(4_400, 20_000).map(lambda n: ('{"accepted": [' + "9" * n + "]}", "huge")),
        st.integers(20, 4_000).map(lambda n: ('{"accepted": [' + "9" * n + "]}", "huge")),
        _json_values()
        .filter(lambda v: not _valid_rounds(v))
        .map(lambda v: (json.dumps({"accepted": v}), "wrong type")),
        st.sampled_from([True, 1.0, "1", None, 2, [1]]).map(
            lambda v: (json.dumps({**_HEADER, "version": v}), "header")
        ),
        st.sampled_from([True, 8.0, "8", None, 0, 10**400]).map(
            lambda v: (
                json.dumps({**_HEADER, "max_draft": v})
                if v != 10**400
                else json.dumps(_HEADER).replace('"max_draft": 8', '"max_draft": ' + "9" * 401),
                "header",
            )
        ),
    )


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _valid_rounds(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(type(v) is int and 0 <= v <= _HEADER["max_draft"] for v in value)
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(bad=_bad_lines(), before=st.integers(0, 3), after=st.integers(0, 2), data=st.data())
def test_bad_trace_lines_give_one_line_errors_naming_file_and_line(
    tmp_path: Path, bad: tuple[str, str], before: int, after: int, data: st.DataObject
) -> None:
    line, kind = bad
    good = json.dumps({"accepted": [1, 8, 0]})
    if kind == "header":
        lines, number = [line, good], 1
    else:
        lines = [json.dumps(_HEADER), *[good] * before, line, *[good] * after]
        number = before + 2
    path = tmp_path / f"trace-{data.draw(st.integers(0, 10**9))}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_trace(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message[:400]
    assert str(path.resolve()) in message and f"line {number}" in message, message


def test_valid_traces_still_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    requests = [rng.integers(0, 9, size=rng.integers(1, 20)).tolist() for _ in range(50)]
    path = tmp_path / "ok.jsonl"
    path.write_text(
        "\n".join([json.dumps(_HEADER), *(json.dumps({"accepted": r, "prompt": 3}) for r in requests)]),
        encoding="utf-8",
    )
    trace = load_trace(path)
    assert trace.requests() == requests and trace.max_draft == 8
