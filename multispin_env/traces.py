"""Recorded acceptance traces: the file format, its reader/writer and checks (docs/traces.md).

A trace holds, for each request of a real draft/target pair, the rounds of greedy speculative decoding: per
round the accepted prefix A_max that a draft of the recording's maximal length L_max got. Under greedy
verification a draft of length L <= L_max drafted from the same context then gets min(A_max, L) exactly
(its first L tokens are the same greedy tokens). The ``trace`` acceptance process
(:class:`multispin_env.acceptance.TraceAcceptance`) replays it.

The file is JSON lines (UTF-8): a header line, then one line per request::

    {"format": "multispin-acceptance-trace", "version": 1, "max_draft": 16, "metadata": {...}}
    {"accepted": [3, 16, 0, 7]}
    {"accepted": [16, 16, 2]}

``accepted`` lists the request's rounds in order, integers in 0..max_draft; other keys of a request line
(the recorder writes ``prompt`` and ``new_tokens``) are kept out of the replay. ``metadata`` is free JSON
(the models, the prompts, a label). This module needs numpy only: the recorder that runs models lives in
``experiments/record_trace.py``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from multispin_env._checks import integer_setting, short_repr
from multispin_env.model import MAX_DRAFT

__all__ = [
    "EXAMPLE_TRACE",
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "AcceptanceTrace",
    "load_trace",
    "save_trace",
    "token_rate",
]

#: The ``format`` value of a trace file's header line.
TRACE_FORMAT = "multispin-acceptance-trace"
#: The format version this module reads and writes.
TRACE_VERSION = 1
#: The trace shipped with the package (recorded on tiny random models: for smoke tests only), used when
#: ``trace_path`` is None; ``python -m experiments.make_example_trace`` regenerates it.
EXAMPLE_TRACE = Path(__file__).resolve().parent / "data" / "example_trace.jsonl"

IntArray = NDArray[np.int64]


def token_rate(accepted: NDArray[Any], draft_length: int) -> float:
    """The per-token rate sum A / (sum A + #{A < L}) of rounds that accepted ``accepted`` (A_max clipped to
    ``draft_length`` = L, tokens): what the acceptance estimate of docs/model.md section 5.4 converges to
    (no prior, no forgetting) when every round drafts L tokens. Clipped into [1e-12, 1 - 1e-12] (a rate
    must lie in (0, 1)); 1 - 1e-12 when every draft was accepted whole."""
    clipped = np.minimum(accepted, draft_length)
    successes = float(clipped.sum())
    failures = float(np.count_nonzero(clipped < draft_length))
    rate = successes / (successes + failures) if successes + failures > 0 else 0.0
    return min(max(rate, 1e-12), 1.0 - 1e-12)


@dataclass(frozen=True)
class AcceptanceTrace:
    """A validated trace (read-only arrays).

    :param accepted: A_max of every round, requests one after the other, tokens (int64, rounds,)
    :param request_starts: offsets (requests + 1,): request r's rounds are ``accepted[starts[r]:starts[r+1]]``
    :param max_draft: L_max of the recording, tokens
    :param metadata: free JSON metadata of the file (models, prompts, label)
    """

    accepted: IntArray
    request_starts: IntArray
    max_draft: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_requests(
        cls, requests: Sequence[Sequence[int]], max_draft: int, metadata: Mapping[str, Any] | None = None
    ) -> AcceptanceTrace:
        """A trace from each request's list of A_max; ValueError naming the first bad entry."""
        limit = _max_draft("max_draft", max_draft)
        if len(requests) == 0:
            raise ValueError("a trace needs at least one request")
        for r, rounds in enumerate(requests):
            _check_rounds(f"request {r}", rounds, limit)
        lengths = np.array([len(rounds) for rounds in requests], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        accepted = np.concatenate([np.asarray(rounds, dtype=np.int64) for rounds in requests])
        accepted.flags.writeable = starts.flags.writeable = False
        return cls(accepted, starts, limit, dict(metadata or {}))

    @property
    def num_requests(self) -> int:
        return self.request_starts.size - 1

    @property
    def num_rounds(self) -> int:
        return self.accepted.size

    def request(self, index: int) -> IntArray:
        """A_max of the rounds of request ``index``."""
        return self.accepted[self.request_starts[index] : self.request_starts[index + 1]]

    def survival(self, max_draft: int | None = None) -> NDArray[np.float64]:
        """P(A_max >= i), i = 1..``max_draft`` (default: the recording's L_max), over all rounds pooled: the
        per-round distribution a user replaying the trace sees in the long run (docs/model.md section 5.1)."""
        length = self.max_draft if max_draft is None else max_draft
        positions = np.arange(1, length + 1)
        return (self.accepted[:, None] >= positions).mean(axis=0)

    def requests(self) -> list[list[int]]:
        """Each request's A_max as a list (what :func:`save_trace` writes)."""
        return [self.request(r).tolist() for r in range(self.num_requests)]


def _max_draft(where: str, value: Any) -> int:
    return integer_setting(where, value, 1, MAX_DRAFT)


def _check_rounds(where: str, rounds: Any, max_draft: int) -> None:
    if not isinstance(rounds, (list, tuple, np.ndarray)) or len(rounds) == 0:
        raise ValueError(f"{where}: accepted must be a non-empty list of integers, got {short_repr(rounds)}")
    for j, value in enumerate(rounds):
        integer_setting(f"{where}, round {j}: accepted", value, 0, max_draft)


def save_trace(
    path: str | os.PathLike[str], trace: AcceptanceTrace, request_fields: Sequence[Mapping[str, Any]] | None = None
) -> Path:
    """Write ``trace`` as JSON lines to ``path`` (parent folders created); returns the path.

    :param request_fields: optional extra keys for each request line (e.g. the recorder's ``prompt`` index and
        ``new_tokens``), one mapping per request; the replay ignores them
    """
    extras = list(request_fields) if request_fields is not None else [{}] * trace.num_requests
    if len(extras) != trace.num_requests:
        raise ValueError(f"request_fields has {len(extras)} entries for {trace.num_requests} requests")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "format": TRACE_FORMAT,
        "version": TRACE_VERSION,
        "max_draft": trace.max_draft,
        "metadata": dict(trace.metadata),
    }
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps({**extra, "accepted": rounds}) for extra, rounds in zip(extras, trace.requests(), strict=True)]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def load_trace(path: str | os.PathLike[str] | None = None) -> AcceptanceTrace:
    """Read and validate a trace file (None: the shipped :data:`EXAMPLE_TRACE`); a one-line ValueError naming
    the file, the line and the problem otherwise. Cached on the file's path, size and modification time."""
    source = EXAMPLE_TRACE if path is None else Path(path)
    try:
        stat = source.stat()
    except OSError as exc:
        raise ValueError(f"trace file {str(source)!r} cannot be read: {exc.strerror or exc}") from exc
    if not source.is_file():
        raise ValueError(f"trace file {str(source)!r} is not a file")
    return _load(str(source.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: str, size: int, mtime_ns: int) -> AcceptanceTrace:
    """Read and validate the file line by line. The rounds of all request lines are gathered in one list and checked
    at once (their types in one pass, their values as one int64 array): per-line checks cost more than parsing. Only
    when that fails are the lines checked one by one, for a message naming the line and the entry."""
    del size, mtime_ns  # cache keys only: a rewritten file is read again
    where = f"trace file {path!r}"
    header: dict[str, Any] | None = None
    max_draft = 0
    rounds: list[Any] = []  # every request's rounds, one after the other
    lengths: list[int] = []
    numbers: list[int] = []  # the line of each request
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                record = _record(where, number, line)
                if header is None:
                    header, max_draft = record, _check_header(where, number, record)
                    continue
                if "accepted" not in record:
                    raise ValueError(f"{where}, line {number}: a request line needs the key 'accepted'")
                accepted = record["accepted"]
                if type(accepted) is not list or not accepted:
                    _check_rounds(f"{where}, line {number}", accepted, max_draft)  # raises
                rounds.extend(accepted)
                lengths.append(len(accepted))
                numbers.append(number)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} cannot be read as UTF-8 text: {exc}") from exc
    if header is None:
        raise ValueError(f"{where} is empty")
    if not lengths:
        raise ValueError(f"{where} has a header but no request lines")
    accepted = _rounds_array(rounds, max_draft)
    if accepted is None:  # find the first bad line and entry
        start = 0
        for number, length in zip(numbers, lengths, strict=True):
            _check_rounds(f"{where}, line {number}", rounds[start : start + length], max_draft)
            start += length
        raise AssertionError(f"{where}: rounds rejected by the array check but by no line")
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    accepted.flags.writeable = starts.flags.writeable = False
    return AcceptanceTrace(accepted, starts, max_draft, header.get("metadata", {}))


def _record(where: str, number: int, line: str) -> dict[str, Any]:
    """One line as a JSON object; a one-line ValueError naming the line for anything else (malformed JSON, nesting
    too deep for the parser, integers too long to convert)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}, line {number}: not JSON ({exc.msg})") from exc
    except RecursionError as exc:
        raise ValueError(f"{where}, line {number}: JSON nested too deeply") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise ValueError(f"{where}, line {number}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{where}, line {number}: expected a JSON object, got {line.strip()[:60]!r}")
    return record


def _check_header(where: str, number: int, header: dict[str, Any]) -> int:
    """The header's max_draft, after checking its format, version (the integer 1, not 1.0 or true) and metadata."""
    if header.get("format") != TRACE_FORMAT:
        raise ValueError(
            f"{where}, line {number}: the header must have format {TRACE_FORMAT!r}, "
            f"got {short_repr(header.get('format'))}"
        )
    version = header.get("version")
    if type(version) is not int or version != TRACE_VERSION:
        raise ValueError(
            f"{where}, line {number}: version {short_repr(version)} is not supported (this reader reads "
            f"version {TRACE_VERSION})"
        )
    max_draft = _max_draft(f"{where}, line {number}: header max_draft", header.get("max_draft"))
    if not isinstance(header.get("metadata", {}), dict):
        raise ValueError(
            f"{where}, line {number}: header metadata must be a JSON object, got {short_repr(header['metadata'])}"
        )
    return max_draft


def _rounds_array(rounds: list[Any], max_draft: int) -> IntArray | None:
    """``rounds`` as an int64 array if every entry is an int (not a bool) in 0..max_draft, else None."""
    if set(map(type, rounds)) != {int}:
        return None
    try:
        array = np.array(rounds, dtype=np.int64)
    except OverflowError:
        return None
    return array if array.min() >= 0 and array.max() <= max_draft else None
