"""Trace replay (docs/traces.md, docs/model.md section 5.1): the file format, the ``trace`` process, and the
recorder (experiments/record_trace.py) end to end on tiny randomly initialised models (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from cli_helpers import console_error

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.acceptance import TraceAcceptance, make_acceptance_process
from multispin_env.config import EnvConfig
from multispin_env.traces import TRACE_FORMAT, AcceptanceTrace, load_trace, save_trace

HET = "MultiSpin-Heterogeneous-v0"


def _write(path: Path, requests: list[list[int]], max_draft: int = 6) -> Path:
    return save_trace(path, AcceptanceTrace.from_requests(requests, max_draft, {"label": "test"}))


def _play_fixed_lengths(trace_path: Path, lengths: list[int], rounds: int, seed: int = 0):
    """Play ``rounds`` rounds with fixed draft lengths (no deadline: no upload is dropped); yields, per round,
    the process's (request, round) before the round and the accepted prefixes."""
    env = gym.make(
        HET,
        acceptance_process="trace",
        trace_path=str(trace_path),
        num_users=len(lengths),
        max_draft=max(lengths),
        upload_deadline=None,
    ).unwrapped
    env.reset(seed=seed)
    process = env.core.process
    action = env.encode_action(lengths, [1.0 / len(lengths)] * len(lengths))
    for _ in range(rounds):
        where = (process.request[0].copy(), process.round[0].copy())
        _, _, _, _, info = env.step(action)
        assert not info["dropped"].any()
        yield where, info["accepted"]


# ------------------------------------------------------------------ format


def test_save_load_round_trip_keeps_requests_metadata_and_extra_fields(tmp_path):
    trace = AcceptanceTrace.from_requests([[3, 0, 6], [1]], 6, {"label": "x"})
    path = save_trace(tmp_path / "t.jsonl", trace, [{"prompt": 0}, {"prompt": 1}])
    loaded = load_trace(path)
    assert loaded.requests() == [[3, 0, 6], [1]] and loaded.max_draft == 6 and loaded.metadata == {"label": "x"}
    assert json.loads(path.read_text().splitlines()[2]) == {"prompt": 1, "accepted": [1]}
    np.testing.assert_array_equal(loaded.request_starts, [0, 3, 4])


def test_pooled_survival_counts_rounds(tmp_path):
    trace = AcceptanceTrace.from_requests([[3, 0, 6], [1]], 6)
    # rounds 3, 0, 6, 1: P(A >= i) for i = 1..6
    np.testing.assert_allclose(trace.survival(), [3 / 4, 2 / 4, 2 / 4, 1 / 4, 1 / 4, 1 / 4])
    np.testing.assert_allclose(trace.survival(2), [3 / 4, 2 / 4])


HEADER = {"format": TRACE_FORMAT, "version": 1, "max_draft": 4}


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "is empty"),
        (["not json"], "line 1: not JSON"),
        (["[1, 2]"], "expected a JSON object"),
        ([{"format": "other", "version": 1, "max_draft": 4}, {"accepted": [1]}], "format"),
        ([{**HEADER, "version": 2}, {"accepted": [1]}], "version 2 is not supported"),
        ([{**HEADER, "max_draft": 0}, {"accepted": [0]}], "max_draft must be an integer"),
        ([{**HEADER, "max_draft": 4.0}, {"accepted": [0]}], "max_draft must be an integer"),
        ([{**HEADER, "metadata": [1]}, {"accepted": [0]}], "metadata must be a JSON object"),
        ([HEADER], "no request lines"),
        ([HEADER, {"rounds": [1]}], "line 2: a request line needs the key 'accepted'"),
        ([HEADER, {"accepted": []}], "line 2: accepted must be a non-empty list"),
        ([HEADER, {"accepted": [1, 5]}], "line 2, round 1: accepted must be an integer in \\[0, 4\\]"),
        ([HEADER, {"accepted": [1]}, {"accepted": [-1]}], "line 3, round 0"),
        ([HEADER, {"accepted": [True]}], "round 0"),
        ([HEADER, {"accepted": [1.5]}], "round 0"),
    ],
)
def test_bad_trace_files_raise_one_line_errors_naming_the_problem(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    with pytest.raises(ValueError, match=message) as raised:
        load_trace(path)
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match="trace_path"):  # the setting names itself
        EnvConfig(acceptance_process="trace", trace_path=path)


def test_missing_file_and_bad_setting_types(tmp_path):
    with pytest.raises(ValueError, match=r"trace_path: trace file .* cannot be read"):
        EnvConfig(acceptance_process="trace", trace_path=tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=r"trace_path: trace file .* is not a file"):
        EnvConfig(acceptance_process="trace", trace_path=tmp_path)
    with pytest.raises(ValueError, match="trace_path must be a path"):
        EnvConfig(trace_path=3)


def test_the_trace_file_is_read_only_when_replayed(tmp_path):
    """Another acceptance process never reads the file (a large trace costs seconds to validate)."""
    missing = tmp_path / "missing.jsonl"
    assert EnvConfig(acceptance_process="iid", trace_path=missing).trace_path == str(missing)
    with pytest.raises(ValueError, match=r"trace_path: trace file .* cannot be read"):
        EnvConfig(acceptance_process="trace", trace_path=missing)


def test_a_trace_shorter_than_the_env_draft_is_refused_and_a_longer_one_clipped(tmp_path):
    path = _write(tmp_path / "t.jsonl", [[6, 2]], max_draft=6)
    with pytest.raises(ValueError, match="recorded with drafts of up to 6 tokens, fewer than the env's max_draft 7"):
        gym.make(HET, acceptance_process="trace", trace_path=str(path), max_draft=7)
    process = make_acceptance_process(EnvConfig(acceptance_process="trace", trace_path=path, max_draft=4), 1)
    np.testing.assert_array_equal(process.accepted_max, 4.0)  # A_max = 6 clipped to L_max = 4
    np.testing.assert_array_equal(process.survival(), 1.0)


# ------------------------------------------------------------------ replay


def test_replay_gives_min_of_the_recorded_prefix_and_the_draft_length(tmp_path):
    """One request: every user replays its rounds in order, again and again, each accepting min(A_max, L)."""
    recorded = [5, 0, 2, 6, 1, 3, 6]
    path = _write(tmp_path / "one.jsonl", [recorded])
    lengths = [1, 2, 3, 4, 5, 6]
    outcomes = np.array([accepted for _, accepted in _play_fixed_lengths(path, lengths, 3 * len(recorded))])
    expected = np.minimum(np.resize(recorded, 3 * len(recorded))[:, None], lengths)
    np.testing.assert_array_equal(outcomes, expected)


def test_requests_are_used_up_in_order_then_users_draw_new_ones_independently(tmp_path):
    requests = [[6, 0, 1], [2], [4, 4, 5, 3, 0], [1, 6]]
    path = _write(tmp_path / "four.jsonl", requests)
    lengths = [3, 6, 6, 6]
    seen, previous = [], None
    for (request, index), accepted in _play_fixed_lengths(path, lengths, 400, seed=5):
        rounds = [requests[r][j] for r, j in zip(request, index, strict=True)]
        np.testing.assert_array_equal(accepted, np.minimum(rounds, lengths))
        if previous is not None:  # the next round of the same request, or round 0 of a new one after the last
            last = np.array([len(requests[r]) - 1 for r in previous[0]])
            np.testing.assert_array_equal(index, np.where(previous[1] == last, 0, previous[1] + 1))
            same = previous[1] < last
            np.testing.assert_array_equal(request[same], previous[0][same])
        seen.append(request)
        previous = (request, index)
    requests_seen = np.array(seen)
    assert set(np.unique(requests_seen)) == {0, 1, 2, 3}
    assert not all(np.array_equal(requests_seen[:, 0], requests_seen[:, k]) for k in range(1, 4))


def test_with_arrivals_each_request_starts_a_recorded_one_and_idle_users_play_no_round(tmp_path):
    """Request arrivals (docs/model.md 5.8): an arriving request replays a fresh recorded request from its
    round 0; an idle user's recorded round does not move; the accepted prefix is still min(A_max, L)."""
    # Recordings of 60 rounds outlast the env's requests (mean 8 tokens, a few rounds): a user's replay position
    # is back at 0 after an idle spell only because the arriving request started a fresh recording.
    requests = np.random.default_rng(0).integers(0, 7, (3, 60)).tolist()
    path = _write(tmp_path / "three.jsonl", requests)
    env = gym.make(
        HET,
        acceptance_process="trace",
        trace_path=str(path),
        num_users=3,
        max_draft=6,
        upload_deadline=None,
        arrival_rate=0.5,
        mean_request_tokens=8.0,
    ).unwrapped
    env.reset(seed=3)
    process = env.core.process
    action = env.encode_action([4, 4, 4], [1 / 3] * 3)
    idle_rounds = arrivals = 0
    was_idle = np.zeros(3, dtype=bool)
    for _ in range(400):
        before = (process.request[0].copy(), process.round[0].copy())
        _, _, _, _, info = env.step(action)
        played = info["tokens"] > 0
        recorded = np.array([requests[r][j] for r, j in zip(*before, strict=True)])
        np.testing.assert_array_equal(info["accepted"][played], np.minimum(recorded, 4)[played])
        # A request that arrived during an idle spell plays its first round from a fresh recording's round 0.
        arrived = was_idle & played
        assert np.all(before[1][arrived] == 0)
        arrivals += int(arrived.sum())
        # An idle user's replay position stays (unless a request arrived and started a fresh recorded one).
        idle = ~played
        after_round = process.round[0]
        assert np.all((after_round[idle] == before[1][idle]) | (after_round[idle] == 0))
        idle_rounds += int(idle.sum())
        was_idle = idle
    assert idle_rounds > 50 and arrivals > 10


def test_the_pooled_curve_is_the_long_run_distribution_of_the_replayed_prefixes(tmp_path):
    """mean_survival (what static policies plan with) is the file's pooled P(A_max >= i), and the prefixes the
    env samples at L = L_max match it in the long run (users draw requests uniformly: rounds pooled)."""
    requests = [[6, 0, 1], [2], [4, 4, 5, 3, 0], [1, 6]]
    path = _write(tmp_path / "four.jsonl", requests)
    process = make_acceptance_process(EnvConfig(acceptance_process="trace", trace_path=path, max_draft=6), 1)
    pooled = np.concatenate(requests)
    expected = (pooled[:, None] >= np.arange(1, 7)).mean(axis=0)
    np.testing.assert_allclose(process.mean_survival(np.full((2, 3), 0.5)), np.broadcast_to(expected, (2, 3, 6)))
    accepted = np.concatenate([a for _, a in _play_fixed_lengths(path, [6] * 8, 2000, seed=1)])
    empirical = (accepted[:, None] >= np.arange(1, 7)).mean(axis=0)
    assert np.abs(empirical - expected).max() < 0.03  # 16,000 rounds: standard error <= 0.004 per point


def test_shipped_example_runs_out_of_the_box_with_every_analytic_policy():
    from baselines.policies import make_policy, policies_for

    env = gym.make(HET, acceptance_process="trace", horizon=1.0)
    assert isinstance(env.unwrapped.core.process, TraceAcceptance)
    for name in policies_for(env):
        policy = make_policy(name, env)
        obs, _ = env.reset(seed=0)
        done, tokens = False, 0
        while not done:
            action, _ = policy.predict(obs)
            obs, _, terminated, truncated, info = env.step(action)
            tokens += info["tokens"].sum()
            done = terminated or truncated
        assert tokens > 0, name


# ------------------------------------------------------------------ recorder (tiny random models)


@pytest.fixture(scope="module")
def recorder():
    pytest.importorskip("transformers")
    import torch

    from experiments import record_trace

    torch.set_num_threads(1)  # pytest-xdist already runs one worker per core
    return record_trace


@pytest.fixture(scope="module")
def target(recorder):
    return recorder.tiny_causal_lm(0)


PROMPTS = [[5, 9, 2, 33], [60, 1, 1, 7, 8], [12]]


def test_a_draft_that_copies_the_target_is_accepted_whole_every_round(recorder, target):
    draft = recorder.tiny_causal_lm(0)
    trace, fields = recorder.record_trace(target, draft, PROMPTS, max_draft=5, max_new_tokens=24)
    assert np.all(trace.accepted == 5)
    assert [f["new_tokens"] for f in fields] == [24] * 3  # 4 rounds of 6 tokens


def test_an_unrelated_random_draft_gets_low_acceptance(recorder, target):
    draft = recorder.tiny_causal_lm(7)
    trace, _ = recorder.record_trace(target, draft, PROMPTS, max_draft=5, max_new_tokens=20)
    assert trace.num_rounds >= 40  # ~1 token per round
    assert trace.accepted.mean() < 0.25  # chance agreement of a 64-token vocabulary is ~1/64


def test_speculative_decoding_reproduces_the_targets_greedy_text_and_the_drafts_agreement(recorder, target):
    """Brute force with transformers' own generate(): the recorded tokens are the target's greedy continuation,
    and each round's A_max is how far the draft's greedy continuation of that round's context agrees with it."""
    import torch

    draft = recorder.tiny_causal_lm(1, noise_of=target, noise_std=0.01)
    prompt, max_draft = PROMPTS[0], 6
    recorded = recorder.record_request(target, draft, prompt, max_draft=max_draft, max_new_tokens=30)

    def greedy(model, ids, count):
        out = model.generate(torch.tensor([ids]), max_new_tokens=count, min_new_tokens=count, do_sample=False)
        return out[0, len(ids) :].tolist()

    text = greedy(target, prompt, len(recorded.tokens) + max_draft)
    assert recorded.tokens == text[: len(recorded.tokens)]
    position = 0
    for accepted in recorded.rounds:
        proposal = greedy(draft, prompt + text[:position], max_draft)
        agree = np.cumprod(np.equal(proposal, text[position : position + max_draft]))
        assert accepted == int(agree.sum())
        position += accepted + 1
    assert 0 < np.mean(recorded.rounds) < max_draft  # this draft agrees for a while, then not


def test_eos_ends_the_request(recorder, target):
    draft = recorder.tiny_causal_lm(1, noise_of=target, noise_std=0.01)
    full = recorder.record_request(target, draft, PROMPTS[1], max_draft=4, max_new_tokens=30)
    eos = full.tokens[9]
    first = full.tokens.index(eos)
    stopped = recorder.record_request(target, draft, PROMPTS[1], max_draft=4, max_new_tokens=30, eos_token_id=eos)
    assert stopped.tokens == full.tokens[: first + 1]
    assert stopped.rounds == full.rounds[: len(stopped.rounds)]


def test_the_recorded_file_replays_exactly_in_the_env(recorder, target, tmp_path):
    draft = recorder.tiny_causal_lm(1, noise_of=target, noise_std=0.01)
    trace, fields = recorder.record_trace(target, draft, PROMPTS, max_draft=6, max_new_tokens=30)
    path = save_trace(tmp_path / "recorded.jsonl", trace, fields)
    requests = load_trace(path).requests()
    assert requests == trace.requests() and 0 < trace.accepted.mean() < 6
    lengths = [1, 3, 6]
    for (request, index), accepted in _play_fixed_lengths(path, lengths, 60, seed=2):
        recorded = [requests[r][j] for r, j in zip(request, index, strict=True)]
        np.testing.assert_array_equal(accepted, np.minimum(recorded, lengths))


def test_the_command_records_from_saved_models_and_a_prompts_file(recorder, target, tmp_path, capsys):
    """multispin-record-trace end to end: models and a character-level tokenizer saved to disk (no download)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    alphabet = "abcdefghijklmnopqrstuvwxyz .,?"
    vocab = {"<unk>": 0, "</s>": 1, **{c: i + 2 for i, c in enumerate(alphabet)}}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE(vocab, [], unk_token="<unk>")), unk_token="<unk>", eos_token="</s>"
    )
    assert tokenizer("ab c")["input_ids"] == [2, 3, 28, 4]
    tokenizer.save_pretrained(tmp_path / "target")
    target.save_pretrained(tmp_path / "target")
    recorder.tiny_causal_lm(1, noise_of=target, noise_std=0.01).save_pretrained(tmp_path / "draft")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello world\n\nhow are you?\n")
    out = recorder.main(
        [
            "--target",
            str(tmp_path / "target"),
            "--draft",
            str(tmp_path / "draft"),
            "--prompts",
            str(prompts),
            "--max-draft",
            "4",
            "--max-new-tokens",
            "12",
            "-o",
            str(tmp_path / "out.jsonl"),
            "--label",
            "tiny test",
        ]
    )
    trace = load_trace(out)
    assert trace.num_requests == 2 and trace.max_draft == 4 and trace.metadata["label"] == "tiny test"
    assert "2 requests" in capsys.readouterr().out


def test_the_command_rejects_bad_input_in_one_line(recorder, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    base = ["--target", "t", "--draft", "d", "-o", str(tmp_path / "o.jsonl")]
    with pytest.raises(ValueError, match="no non-empty line"):
        recorder.main([*base, "--prompts", str(empty)])
    with pytest.raises(ValueError, match="cannot be read"):
        recorder.main([*base, "--prompts", str(tmp_path / "missing.txt")])
    with pytest.raises(ValueError, match="--max-draft must be in"):
        recorder.main([*base, "--prompts", str(empty), "--max-draft", "0"])


def test_the_console_script_reports_bad_input_without_a_traceback(recorder, tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = str(tmp_path / "no-model")
    argv = ["--target", missing, "--draft", missing, "--prompts", str(prompts), "-o", str(tmp_path / "o.jsonl")]
    line = console_error("multispin-record-trace", argv, capsys, monkeypatch, "--target")
    assert "is not a folder" in line


@pytest.mark.slow
def test_the_example_trace_regenerates_byte_for_byte(recorder, tmp_path):
    from experiments.make_example_trace import make_example_trace
    from multispin_env.traces import EXAMPLE_TRACE

    assert make_example_trace(tmp_path / "example.jsonl").read_bytes() == EXAMPLE_TRACE.read_bytes()
