"""Every console script of pyproject.toml against a table of bad arguments: one ``prog: error: ...`` line, exit
status 2, no traceback, and no work started (nothing written in the working directory, where every default output
folder is). The scripts are read from pyproject.toml, so a new script without cases here fails the table test."""

from __future__ import annotations

import ast
import sys
import warnings
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, console_error, console_scripts, launch
from hypothesis import example, given
from hypothesis import strategies as st

from agents.cli import UserError, plain_value

ENV = "MultiSpin-Heterogeneous-v0"

#: script -> (argv, text the error line must contain). Placeholders: {file} an existing file, {notdir} a path
#: under that file (no folder can be made there), {missing} a path that does not exist, {badyaml} a file of
#: malformed YAML, {unwritable} a folder that cannot be made although its parent is a folder (in /proc where
#: there is one: permissions do not stop root), {corrupt_zip} a truncated model zip in a run folder ({corrupt_run}), {badargs_run} a run
#: folder whose args.yml is malformed ({badargs_runs}: the folder holding it), {prompts} a one-line text file.
CASES: dict[str, list[tuple[list[str], str]]] = {
    "multispin-train": [
        (["-f", "{notdir}"], "-f/--log-folder"),
        (["-f", "{unwritable}"], "-f/--log-folder"),
        (["--device", "bogus"], "--device 'bogus' is not a PyTorch device"),
        (["-conf", "{missing}.yml"], "-conf/--conf-file"),
        (["-conf", "{badyaml}"], "is not valid YAML"),
        (["-conf", "no_such_module_xyz"], "neither a .yml/.py file nor an importable module"),
        (["--n-eval-envs", "0"], "--n-eval-envs must be >= 1"),
        (["--optimize", "--n-evaluations", "0"], "--n-evaluations must be >= 1"),
        (["-i", "{corrupt_zip}"], "cannot load"),
        (["-n", "0"], "-n/--n-timesteps"),
        (["--env", "Nope-v0"], "is not a registered env id"),
        (["--algo", "nope"], "invalid choice"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
    "multispin-benchmark": [
        (["-o", "{file}"], "is a file, not a folder"),
        (["-o", "{notdir}"], "-o/--output"),
        (["--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
        (["--jobs", "0"], "argument --jobs: expected an integer >= 1, got 0"),
        (["--jobs", "-1"], "argument --jobs: expected an integer >= 1, got -1"),
        (["--episodes", "0"], "argument --episodes: expected an integer >= 1, got 0"),
        (["--training-log", "{missing}"], "--training-log"),
        (["--agents", "{corrupt_run}"], "cannot load {corrupt_zip}"),
        (["--agents", "{badargs_run}"], "cannot read"),
        (["--agents", "{missing}"], "neither a model .zip nor a run folder"),
        (["--env-kwargs", "fading"], "malformed --env-kwargs pair"),
        (["--env", "CartPole-v1"], "is not a MultiSpin env"),
    ],
    "multispin-demo": [
        (["-o", "{file}"], "is a file, not a folder"),
        (["-f", "{notdir}"], "-f/--log-folder"),
        (["-o", "{unwritable}"], "-o/--output"),
        (["--seed", "-1"], "expected an integer >= 0"),
        (["--episodes", "0"], "expected an integer >= 1"),
        (["-n", "0"], "expected an integer >= 1"),
    ],
    "multispin-list": [
        (["--bogus"], "unrecognized arguments"),
        (["extra"], "unrecognized arguments"),
    ],
    "multispin-findings": [
        (["--figures", "9"], "argument --figures"),
        (["--figures", "abc"], "argument --figures"),
        (["--figures", ","], "argument --figures"),
        (["-o", "{notdir}"], "-o/--out"),
        (["-o", "{unwritable}"], "-o/--out"),
        (["-o", "{file}"], "is a file, not a folder"),
        (["--seed", "-1"], "expected an integer >= 0"),
        (["--jobs", "0"], "expected an integer >= 1"),
        (["--acceptance-process", "nope"], "invalid choice"),
    ],
    "multispin-rllib": [
        (["--iterations", "0"], "expected an integer >= 1"),
        (["--seed", "-1"], "expected an integer >= 0"),
        (["--env", "CartPole-v1"], "--env must be multiagent or a MultiSpin id"),
        (["--env-kwargs", "fading"], "key:value"),
        (["-o", "{file}"], "is a file, not a folder"),
    ],
    "multispin-sweep": [
        (["--seeds", "0", "echo", "{seed}"], "give the command after --"),
        (["--seeds", "0", "--log-dir", "{notdir}", "--", "echo", "{seed}"], "--log-dir"),
        (["--seeds", "0", "--log-dir", "{unwritable}", "--", "echo", "{seed}"], "--log-dir"),
        (["--values", "__import__('os')", "--", "echo", "{value}"], "is not a plain value"),
        (["--values", "'a'", "--", "echo", "{value}"], "is not a plain value"),
        (["--values", "a", "a", "--", "echo", "{value}"], "values repeat"),
        (["--seeds", "-1", "--", "echo", "{seed}"], "expected an integer >= 0"),
        (["--seeds", "0", "-j", "0", "--", "echo", "{seed}"], "expected an integer >= 1"),
        (["--seeds", "0", "--cpus-per-run", "0", "--", "echo", "{seed}"], "expected a number > 0"),
        (["--seeds", "0", "--", "echo", "same"], "has no {seed} or {value}"),
        (["--", "echo", "{seed}"], "one of the arguments --seeds --values is required"),
    ],
    "multispin-record-trace": [
        ([], "the following arguments are required"),
        (
            ["--target", "t", "--draft", "d", "--prompts", "{prompts}", "-o", "{missing}", "--max-draft", "0"],
            "--max-draft",
        ),
        (["--target", "t", "--draft", "d", "--prompts", "{missing}", "-o", "{missing}"], "cannot be read"),
    ],
    "multispin-leaderboard": [
        (["--jobs", "0"], "expected an integer >= 1"),
        (["--seeds", "-1"], "expected an integer >= 0"),
        (["-o", "{file}"], "is a file, not a folder"),
        (["--train", "--runs", "{notdir}"], "--runs"),
        (["--runs", "{badargs_runs}"], "cannot read"),
        (["--tasks", "Nope"], "unknown task(s) Nope"),
    ],
}


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "file").write_text("x")
    (root / "bad.yml").write_text("a: [1,\n")
    (root / "prompts.txt").write_text("hello\n")
    corrupt = root / "runs" / "ppo" / f"{ENV}_1"
    corrupt.mkdir(parents=True)
    (corrupt / f"{ENV}.zip").write_bytes(b"PK\x03\x04 truncated")
    badargs = root / "badargs" / "ppo" / f"{ENV}_1"
    (badargs / ENV).mkdir(parents=True)
    (badargs / f"{ENV}.zip").write_bytes(b"PK\x03\x04 truncated")
    (badargs / ENV / "args.yml").write_text("env: [MultiSpin\nseed: 0\n")
    unwritable = Path("/proc/x") if Path("/proc/self").is_dir() else root / "file" / "sub"
    return {
        "file": str(root / "file"),
        "notdir": str(root / "file" / "sub"),
        "unwritable": str(unwritable),
        "missing": str(root / "missing"),
        "badyaml": str(root / "bad.yml"),
        "corrupt_zip": str(corrupt / f"{ENV}.zip"),
        "corrupt_run": str(corrupt),
        "badargs_run": str(badargs),
        "badargs_runs": str(root / "badargs"),
        "prompts": str(root / "prompts.txt"),
    }


def test_every_console_script_has_cases() -> None:
    assert set(CASES) == set(console_scripts())


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [(script, argv, message) for script, cases in CASES.items() for argv, message in cases],
)
def test_bad_arguments_give_one_line_before_any_work(
    script: str,
    argv: list[str],
    message: str,
    places: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if script == "multispin-record-trace":
        pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)  # every default output folder (logs, results, runs) is relative: none may appear

    def fill(text: str) -> str:  # str.format would also read the sweep's {seed} / {value}
        for key, value in places.items():
            text = text.replace(f"{{{key}}}", value)
        return text

    console_error(script, [fill(a) for a in argv], capsys, monkeypatch, fill(message))
    assert not list(tmp_path.iterdir()), "work started before the arguments were checked"


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_help_exits_0(script: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    module, _, function = console_scripts()[script].partition(":")
    if script == "multispin-record-trace":
        pytest.importorskip("transformers")
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as raised:
        getattr(__import__(module, fromlist=[function]), function)()
    out = capsys.readouterr().out
    assert raised.value.code == 0 and out.startswith(f"usage: {script}"), out[:200]


def test_the_real_entry_points_in_new_interpreters(tmp_path: Path) -> None:
    """A few cases through pyproject's entry points in fresh interpreters, started together (the imports dominate;
    tests/test_train_interrupt.py starts multispin-train this way too)."""
    (tmp_path / "f").write_text("a file")
    cases = [
        ("multispin-findings", ["--figures", "9"], "argument --figures"),
        (
            "multispin-sweep",
            ["--seeds", "0", "--log-dir", str(tmp_path / "f" / "x"), "--", "echo", "{seed}"],
            "--log-dir",
        ),
    ]
    procs = [launch(script, argv, cwd=tmp_path) for script, argv, _ in cases]
    try:
        for proc, (script, _, message) in zip(procs, cases, strict=True):
            _, err = proc.communicate(timeout=180)
            assert_one_line_error(proc.returncode, err, script, message)
    finally:
        for proc in procs:
            proc.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


#: Places a command may put a substituted value, also inside an expression that --env-kwargs evaluates.
TEMPLATES = ("{v}", "'{v}'", '"{v}"', "[{v}]", "dict(a={v})", "f'{v}'", "'''{v}'''", "x.{v}", "{v}.y")


#: Pieces of Python text: joined at random they often form expressions, calls among them.
PIECES = (
    "a",
    "1",
    "1e-3",
    "-",
    "+",
    "/",
    ".",
    "_",
    "x.y",
    "()",
    "(",
    ")",
    "'",
    '"',
    "[",
    "]",
    ",",
    ":",
    " ",
    "=",
    "\\",
)


@given(st.lists(st.sampled_from(PIECES), max_size=6).map("".join))
@example("__import__('os').system('true')")
@example("');__import__('os').system('true');('")
@example("a()")
def test_a_value_that_could_add_a_call_is_not_a_plain_value(text: str) -> None:
    """What multispin-sweep --values accepts: substituted into any template, the expression calls nothing the
    template did not call already (a quote, bracket or parenthesis would let a value do that)."""
    for template in TEMPLATES:
        try:
            with warnings.catch_warnings():  # "invalid escape sequence" of a backslash piece
                warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
                tree = ast.parse(template.replace("{v}", text), mode="eval")
        except SyntaxError:
            continue
        if sum(isinstance(node, ast.Call) for node in ast.walk(tree)) > template.count("dict("):
            with pytest.raises(UserError, match="is not a plain value"):
                plain_value(text, "value")
            return


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("0.5", True),
        ("-1", True),
        ("1e-3", True),
        ("urban", True),
        ("a/b", True),
        ("True", True),
        ("'a'", False),
        ("a b", False),
        ("f(1)", False),
        ("", False),
        ("x:1", False),
        ("[1]", False),
    ],
)
def test_plain_values(text: str, ok: bool) -> None:
    if ok:
        assert plain_value(text, "value") == text
    else:
        with pytest.raises(UserError, match="is not a plain value"):
            plain_value(text, "value")
