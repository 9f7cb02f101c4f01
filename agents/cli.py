"""Command-line helpers: env id checks, one-line argparse errors, ``k:v`` pairs, and ``multispin-list``."""

from __future__ import annotations

import argparse
import re
import sys
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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default once: appended unless the help already speaks of it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        none = action.default is None or action.default is False or action.default == [] or action.default == argparse.SUPPRESS
        if "default" in text or none:
            return text
        return f"{text} (default: %(default)s)"


_BARE_WORD = re.compile(r"[A-Za-z_][\w.\-]*")


def store_dict_or_words() -> type[argparse.Action]:
    """rl-zoo3's ``k:v`` action (values are Python expressions, e.g. ``policy_kwargs:"dict(net_arch=[64])"``),
    also taking bare words as strings (``acceptance_process:markov``) and failing with one line."""
    from rl_zoo3.utils import StoreDict

    class StoreDictOrWords(StoreDict):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
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
        text = spec.tests if len(spec.tests) <= 90 else spec.tests[:87] + "..."
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
    parser = OneLineParser(prog="multispin-list",
                           description="List the MultiSpin env ids, tasks, analytic policies and scenario presets.")
    parser.parse_args(argv)
    try:
        print("\n".join(listing()), flush=True)
    except BrokenPipeError:  # `multispin-list | head`
        sys.stderr.close()
    return 0


def console_list() -> None:
    sys.exit(list_main())
