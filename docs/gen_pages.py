"""Pages generated when the documentation site is built (mkdocs-gen-files runs this script; `make docs`).

- ``envs/<id>.md``: one page per environment id registered by ``import multispin_env`` (the ids come from
  Gymnasium's registry, not from a list kept here), written from the env class docstrings as Gymnasium writes its
  env pages: the id's class gives the description, action space and version history, :class:`MultiSpinEnv` the
  sections every id shares, :data:`multispin_env.config.SETTINGS` the arguments table; a suite task's page adds
  its settings, metric and evaluation seeds (``multispin_env.suite``). ``envs/index.md`` lists them and
  ``envs/SUMMARY.md`` is their navigation (mkdocs-literate-nav).
- ``changelog.md``: CHANGELOG.md, with its links made relative to the docs folder.

``python docs/gen_pages.py OUT`` writes the same pages into the folder OUT (to read them without mkdocs).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

import multispin_env  # noqa: F401  (registers the ids)
from multispin_env.config import SETTINGS, default_config
from multispin_env.envs import MultiSpinEnv

REPO = Path(__file__).resolve().parents[1]
#: Section order of an env page (Gymnasium's, plus Info); "Arguments" is generated.
SECTIONS = (
    "Description",
    "Action space",
    "Observation space",
    "Reward",
    "Info",
    "Starting state",
    "Episode end",
    "Arguments",
    "Version history",
)


def env_ids() -> list[str]:
    """Every id in Gymnasium's registry served by this package's env classes: base ids first, then suite tasks."""
    ids = [
        env_id
        for env_id, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and spec.entry_point.startswith("multispin_env.")
    ]
    return sorted(ids, key=lambda env_id: (env_id.count("/"), env_id))


def env_class(env_id: str) -> type[MultiSpinEnv]:
    module, _, name = gym.spec(env_id).entry_point.partition(":")
    return getattr(sys.modules.get(module) or __import__(module, fromlist=[name]), name)


def doc_sections(cls: type) -> tuple[str, dict[str, str]]:
    """(summary, {heading: body}) of a class docstring written with ``## Heading`` sections (own docstring only)."""
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    doc = re.sub(r"^:param .*?(?=^\S|\Z)", "", doc, flags=re.M | re.S)  # the constructor's :param: lines
    parts = re.split(r"^## (.+)$", doc, flags=re.M)
    summary, sections = parts[0].strip(), {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        sections[heading.strip()] = body.strip()
    return summary, sections


def base_id(env_id: str) -> str:
    """The base id whose class serves ``env_id`` (a suite task's is the heterogeneous id)."""
    cls = env_class(env_id)
    return next(i for i in env_ids() if "/" not in i and env_class(i) is cls)


def page_path(env_id: str) -> str:
    return f"envs/{env_id}.md"


def link(env_id: str, from_id: str) -> str:
    """A relative link from ``from_id``'s page to ``env_id``'s."""
    up = "../" * from_id.count("/")
    return f"{up}{env_id}.md"


def _docs_links(text: str, depth: int) -> str:
    """Plain ``docs/model.md``-style mentions in docstrings made into links from a page ``depth`` folders down."""
    up = "../" * depth
    return re.sub(r"(?<![\w/`])(?<!\]\()docs/([a-z_]+)\.md", lambda m: f"[{m.group(1)}.md]({up}{m.group(1)}.md)", text)


def arguments(env_id: str) -> str:
    cls, spec = env_class(env_id), gym.spec(env_id)
    fixed = {**cls.fixed_settings, **spec.kwargs}
    defaults = default_config()
    rows = [
        "| `{}` | `{!r}` | {} |".format(name, defaults[name], doc.replace("|", "\\|"))
        for name, doc in SETTINGS.items()
        if name not in fixed
    ]
    example = (
        f'env = gym.make("{env_id}", acceptance_process="markov", csi_delay=1)'
        if "/" not in env_id
        else f'env = gym.make("{env_id}")'
    )
    fixed_text = ", ".join(f"`{k}={v!r}`" for k, v in fixed.items())
    return "\n".join(
        [
            "```python",
            "import gymnasium as gym",
            "import multispin_env  # registers the ids",
            "",
            example,
            f'envs = gym.make_vec("{env_id}", num_envs=256)   # one compiled batch',
            "```",
            "",
            "Settings (keyword arguments, or `config={...}`; unknown or invalid ones raise a one-line `ValueError`; "
            "`multispin_env.default_config()` lists them; [model.md](" + "../" * (env_id.count("/") + 1) + "model.md) "
            "section 4.1 gives every unit and valid range):",
            "",
            "| setting | default | meaning (units, range) |",
            "|---|---|---|",
            *rows,
            "",
            f"Fixed by this id (passing one raises `ValueError`): {fixed_text}.",
        ]
    )


def env_page(env_id: str) -> str:
    """The Markdown page of ``env_id``."""
    cls = env_class(env_id)
    env = gym.make(env_id)
    (n_actions,), (n_obs,) = env.action_space.shape, env.observation_space.shape
    k = env.unwrapped.config.scenario.num_users
    env.close()
    summary, own = doc_sections(cls)
    _, shared = doc_sections(MultiSpinEnv)
    sections = {**shared, **own}
    depth = env_id.count("/") + 1
    if "/" in env_id:  # a suite task: its own one-line summary; the sections are its base id's
        from multispin_env.suite import task

        summary = f"Benchmark task: {task(env_id).tests}."
    head = [
        f"# {env_id}",
        "",
        summary.replace("``", "`"),
        "",
        "| | |",
        "|---|---|",
        f"| Action space | `Box(-1, 1, ({n_actions},))` for K = {k} |",
        f"| Observation space | `Box(float32, ({n_obs},))` for K = {k} |",
        f'| Import | `gym.make("{env_id}")`, `gym.make_vec("{env_id}", num_envs=N)` |',
        "",
    ]
    if "/" in env_id:
        from multispin_env.suite import METRICS, TASKS, task

        t = task(env_id)
        base = base_id(env_id)
        settings = ", ".join(f"`{k}={v!r}`" for k, v in t.settings.items()) or "none (the defaults)"
        head += [
            "## Task",
            "",
            f"A benchmark task ([suite]({'../' * depth}suite.md)): [{base}]({link(base, env_id)}) with "
            f"fixed settings. Tests: {t.tests}.",
            "",
        ]
        if t.retired:
            current = next(i for i in TASKS if task(i).name == t.name)
            head += [
                f"**Retired**: not in the suite, kept registered so that results measured on it reproduce; "
                f"replaced by [{current}]({link(current, env_id)}) because {t.retired}.",
                "",
            ]
        head += [
            f"- settings: {settings}",
            f"- metric: `{t.metric}`, {METRICS[t.metric]}",
            f"- evaluation seeds: {t.eval_seeds[0]}-{t.eval_seeds[-1]} (one episode each), scored by "
            f"`multispin_env.suite.normalized_score` (0 = server-only decoding, 100 = {t.reference})",
            "",
        ]
    for name in SECTIONS:
        body = arguments(env_id) if name == "Arguments" else sections.get(name)
        if body is None:
            raise ValueError(f"{cls.__name__}'s docstrings have no '## {name}' section")
        head += [f"## {name}", "", _docs_links(body, depth), ""]
    return "\n".join(head)


def env_index() -> str:
    lines = [
        "# Environments",
        "",
        "Every id registered by `import multispin_env` (`multispin-list` prints them). Each page is generated "
        "from the env class docstrings when the site is built.",
        "",
        "| id | class | action | observation |",
        "|---|---|---|---|",
    ]
    for env_id in env_ids():
        env = gym.make(env_id)
        lines.append(
            f"| [{env_id}]({env_id}.md) | `{env_class(env_id).__name__}` | "
            f"`Box(-1, 1, {env.action_space.shape})` | `Box(float32, {env.observation_space.shape})` |"
        )
        env.close()
    return "\n".join(lines) + "\n"


def env_summary() -> str:
    """literate-nav's navigation of the envs folder: the index, the base ids, then the suite tasks."""
    lines = ["* [Overview](index.md)"]
    tasks = [i for i in env_ids() if "/" in i]
    lines += [f"* [{i}]({i}.md)" for i in env_ids() if "/" not in i]
    if tasks:
        lines.append("* Suite tasks")
        lines += [f"    * [{i.split('/', 1)[1]}]({i}.md)" for i in tasks]
    return "\n".join(lines) + "\n"


def changelog() -> str:
    text = (REPO / "CHANGELOG.md").read_text()
    return re.sub(r"\]\(docs/", "](", text)


def pages() -> dict[str, Callable[[], str]]:
    """Every generated page, by its path in the docs."""
    out: dict[str, Callable[[], str]] = {
        "envs/index.md": env_index,
        "envs/SUMMARY.md": env_summary,
        "changelog.md": changelog,
    }
    for env_id in env_ids():
        out[page_path(env_id)] = lambda env_id=env_id: env_page(env_id)
    return out


def write(opener: Any) -> None:
    for path, make in pages().items():
        with opener(path, "w") as f:
            f.write(make())


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) == 2 else sys.exit("usage: python docs/gen_pages.py OUT")

    def _open(path: str, mode: str) -> Any:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        return (target / path).open(mode)

    write(_open)
elif "mkdocs_gen_files" in sys.modules:  # run by the mkdocs-gen-files plugin during `mkdocs build`
    import mkdocs_gen_files

    write(mkdocs_gen_files.open)
