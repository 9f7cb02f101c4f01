"""Command-line helpers: env id checks, one-line argparse errors, checks of paths and values before any work,
``k:v`` pairs, and ``multispin-list``."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, NoReturn


class UserError(ValueError):
    """A mistake in the command line or settings; printed as one line."""


def one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def multispin_ids() -> list[str]:
    """The registered ids whose entry point is in :mod:`multispin_env`."""
    import gymnasium as gym

    import multispin_env  # noqa: F401  (registers the ids)

    return sorted(i for i, spec in gym.registry.items() if str(spec.entry_point).startswith("multispin_env"))


def check_env_id(env_id: str) -> None:
    """Raise :class:`UserError` naming the MultiSpin ids unless ``env_id`` is one of them."""
    import gymnasium as gym

    ids = multispin_ids()
    if env_id not in ids:
        what = "is not a MultiSpin env" if env_id in gym.registry else "is not a registered env id"
        raise UserError(f"{env_id!r} {what}; MultiSpin ids: {', '.join(ids)} (other envs: python -m rl_zoo3.train)")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``prog: error: message``), without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def program_name(fallback: str) -> str:
    """The name to give errors: the console script as invoked (``multispin-findings``), else ``fallback``
    (``python -m experiments.findings``; also when called from Python, where ``sys.argv[0]`` is the caller's)."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name.startswith("multispin-") else fallback


def check_output_folder(path: str | os.PathLike[str], flag: str) -> None:
    """Raise :class:`UserError` unless ``path`` is a folder that can be written, or can be created.

    Checked before any work: not an existing file, and its nearest existing ancestor a folder where a folder can
    be made (probed with a temporary folder, removed at once: permission bits say nothing to root or on a
    read-only mount).

    :param path: the output folder
    :param flag: the option that named it, for the message (e.g. ``-o/--output``)
    """
    folder = os.path.abspath(os.fspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"{flag} {os.fspath(path)!r} is a file, not a folder")
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {os.fspath(path)!r}: {existing!r} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".multispin-probe-", dir=existing))
    except OSError as exc:
        raise UserError(
            f"{flag} {os.fspath(path)!r} cannot be written ({exc.strerror or exc} in {existing!r})"
        ) from None


def check_readable_file(path: str | os.PathLike[str], flag: str) -> None:
    """Raise :class:`UserError` unless ``path`` is a file that can be opened for reading."""
    if not os.path.isfile(path):
        raise UserError(f"{flag} {os.fspath(path)!r} is not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {os.fspath(path)!r} cannot be read: {exc.strerror or exc}") from None


#: What to say wherever a flag takes ``key:value`` pairs that rl-zoo3's StoreDict evaluates.
EVAL_NOTE = "values are Python expressions run with eval (rl-zoo3's convention): pass only text you trust"

_PLAIN_VALUE = re.compile(r"[\w.+\-/]+")


def plain_value(text: str, what: str) -> str:
    """``text`` if it is a plain value: a number (``0.5``, ``-1``, ``1e-3``), ``True``/``False``/``None`` or a word
    (``urban``, ``a/b``): letters, digits and ``_ . + - /`` only, else :class:`UserError`. With no quote, bracket,
    parenthesis, space, comma or colon, such text cannot call anything or leave a quoted string wherever it is
    substituted, also in a value that an ``eval`` reads further on (``--env-kwargs``, :data:`EVAL_NOTE`)."""
    if not _PLAIN_VALUE.fullmatch(text):
        raise UserError(
            f"{what} {text!r} is not a plain value (a number, True/False/None or a word of letters, digits, _ . + - /)"
        )
    return text


def check_no_repeats(values: Sequence[Any], flag: str, why: str) -> None:
    """Raise :class:`UserError` if a value of ``flag`` is given twice.

    :param values: the flag's values (after resolving aliases, e.g. a task's name and its id)
    :param why: what a repeat would do, for the message
    """
    repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
    if repeated:
        raise UserError(f"{flag} repeats {', '.join(repeated)}: {why}")


def int_at_least(low: int) -> Any:
    """An argparse ``type``: an integer >= ``low``, else a one-line error naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0, else a one-line error naming the value."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default once: appended unless the help already speaks of it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        none = (
            action.default is None
            or action.default is False
            or action.default == []
            or action.default == argparse.SUPPRESS
        )
        if "default" in text or none:
            return text
        return f"{text} (default: %(default)s)"


_BARE_WORD = re.compile(r"[A-Za-z_][\w.\-]*")


def store_dict_or_words() -> type[argparse.Action]:
    """rl-zoo3's ``k:v`` action (values are Python expressions, run with ``eval``, e.g.
    ``policy_kwargs:"dict(net_arch=[64])"``: see :data:`EVAL_NOTE`), also taking bare words as strings
    (``acceptance_process:markov``) and failing with one line."""
    from rl_zoo3.utils import StoreDict

    class StoreDictOrWords(StoreDict):
        def __call__(
            self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
        ) -> None:
            out: dict[str, Any] = {}
            for item in values:
                key, sep, value = item.partition(":")
                if not sep or not key.isidentifier():
                    parser.error(f"malformed {option_string} pair {item!r}: expected key:value, e.g. fading:False")
                try:
                    super().__call__(parser, namespace, [item], option_string)
                    out.update(getattr(namespace, self.dest))
                except NameError:
                    if not _BARE_WORD.fullmatch(value):
                        parser.error(f"cannot parse {option_string} value {value!r}")
                    out[key] = value
                except Exception as exc:  # eval of the user's expression: any error is theirs
                    parser.error(f"cannot parse {option_string} pair {item!r}: {exc}")
            setattr(namespace, self.dest, out)

    return StoreDictOrWords


def listing() -> list[str]:
    """One line per registered MultiSpin id, per benchmark task, per analytic policy and per scenario preset."""
    import multispin_env  # noqa: F401  (registers the ids)
    from multispin_env.registration import ENV_IDS
    from multispin_env.scenarios import SCENARIOS
    from multispin_env.suite import TASK_SPECS

    lines = ["env ids (gym.make(id, **settings); settings: MultiSpinEnv.default_config()):"]
    for env_id, fixed in ENV_IDS.items():
        kind = "one common draft length (P-hom)" if fixed["homogeneous"] else "one draft length per user (P-het)"
        lines.append(f"  {env_id:<30} {kind}")
    lines.append("benchmark tasks (docs/suite.md; multispin_env.suite.normalized_score):")
    for env_id, spec in TASK_SPECS.items():
        text = f"retired: {spec.retired}" if spec.retired else spec.tests
        text = text if len(text) <= 90 else text[:87] + "..."
        lines.append(f"  {env_id:<38} {text}")
    from baselines.policies import ANALYTIC_POLICIES

    lines.append("analytic policies (multispin-benchmark --policies NAME; docs/model.md section 7):")
    lines.extend(f"  {name}" for name in ANALYTIC_POLICIES)
    lines.append("scenario presets (scenario=NAME):")
    for name, scenario in SCENARIOS.items():
        text = " ".join(scenario.description.split())
        text = text if len(text) <= 100 else text[:97] + "..."  # one line each; the full text is in scenarios.py
        lines.append(f"  {name:<30} K = {scenario.num_users}: {text}")
    return lines


def list_main(argv: Sequence[str] | None = None) -> int:
    """``multispin-list``: print the registered env ids, tasks, analytic policies and scenario presets, one line each."""
    parser = OneLineParser(
        prog="multispin-list", description="List the MultiSpin env ids, tasks, analytic policies and scenario presets."
    )
    parser.parse_args(argv)
    try:
        print("\n".join(listing()), flush=True)
    except BrokenPipeError:  # `multispin-list | head`
        sys.stderr.close()
    return 0


def console_list() -> None:
    sys.exit(list_main())
