"""No internal provenance in the repository: readers of the package cannot see this project's issue tracker, nor
the machines and jobs that produced a result, so the tracked files name neither (CHANGELOG.md, a history, may cite
what a change fixed); committed results hold no absolute paths of the machine that made them.

External sources are cited as other projects' pull requests (``vLLM PR #N``) or GitHub's cross-repository form
(``project#N``); those are allowed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXEMPT = {"CHANGELOG.md", "tests/test_provenance.py"}  # the history, and the examples below
RULES = {
    "a reference to an issue": re.compile(r"\bissues?[ -]?#?\d+\b", re.IGNORECASE),
    "a bare #N reference (cite another project as 'project#N' or 'PR #N')": re.compile(
        r"(?<![\w/&.#-])(?<!PR )#\d{1,5}\b"
    ),
    "an absolute path of a machine": re.compile(r"(?<![\w.~])/(?:work|home|root|Users|mnt|scratch)/\w"),
    "the machine or jobs a result came from": re.compile(
        r"\b(?:on this (?:\d-core )?machine|idle machine|idle \d-core|other (?:sessions'|jobs)|load average of the)\b",
        re.IGNORECASE,
    ),
    "a reference to a brief users cannot see": re.compile(r"\bthe brief(?:'s)?\b", re.IGNORECASE),
}


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    files = []
    for name in filter(None, out.decode().split("\0")):
        path = REPO / name
        if name in EXEMPT or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (figures, compiled data)
        files.append(path)
    return files


def findings(text: str) -> list[tuple[int, str, str]]:
    """(line number, rule, line) of every match in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for rule, pattern in RULES.items():
            if pattern.search(line):
                found.append((number, rule, line.strip()[:160]))
    return found


def test_the_tracked_files_hold_no_internal_provenance() -> None:
    files = tracked_text_files()
    assert len(files) > 50 and REPO / "README.md" in files
    problems = [
        f"{path.relative_to(REPO)}:{number}: {rule}: {line}"
        for path in files
        for number, rule, line in findings(path.read_text(errors="replace"))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        # Built here so that this file itself holds no such reference: the tracked-files test reads it too.
        ("fixed in " + "Issue" + " 12, section 3", True),
        ("see " + "issue" + " #7", True),
        ("the pre-" + "issue" + "-11 planner", True),
        ("(#42) reworded", True),
        ('"model": "/work/lb/runs/ppo/best_model.zip"', True),
        ("measured on this 2-core machine", True),
        ("taken with other jobs sharing the cores", True),
        ("vLLM PR #52992", False),
        ("llama.cpp#3649 on GitHub", False),
        ('color "#555555"', False),
        ("python -m experiments.findings -o /tmp/findings", False),
        ("measured at commit 536b3db on 2 CPU cores", False),
    ],
)
def test_the_rules_catch_provenance_and_spare_citations(text: str, bad: bool) -> None:
    assert bool(findings(text)) == bad
