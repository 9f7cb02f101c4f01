"""Regenerate the example trace shipped with the package (``multispin_env/data/example_trace.jsonl``).

Recorded by :mod:`experiments.record_trace` on tiny randomly initialised models, NOT a real draft/target pair:
a Llama-architecture target (vocabulary 64, 2 layers, seed 0) and a draft that is the same model with
N(0, 0.01^2) noise on every weight, so that drafts agree with the target for a few tokens, then diverge.
Prompts are random token ids (seed 0). It exists so that ``acceptance_process="trace"`` runs out of the box;
for smoke tests only. Needs the ``traces`` extra::

    python -m experiments.make_example_trace [-o PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments.record_trace import _torch, record_trace, tiny_causal_lm
from multispin_env.traces import EXAMPLE_TRACE, save_trace

#: L_max of the example (>= every preset's 10, so every preset replays it).
MAX_DRAFT = 16
REQUESTS = 32
MAX_NEW_TOKENS = 96
PROMPT_TOKENS = 8
DRAFT_NOISE_STD = 0.01
LABEL = "tiny random models, for smoke tests only"


def make_example_trace(path: Path = EXAMPLE_TRACE) -> Path:
    """Record the example trace (deterministic: fixed seeds, one CPU thread) into ``path``."""
    torch = _torch()
    torch.set_num_threads(1)  # one thread: the same sums in the same order on every machine
    target = tiny_causal_lm(0)
    draft = tiny_causal_lm(1, noise_of=target, noise_std=DRAFT_NOISE_STD)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, target.config.vocab_size, PROMPT_TOKENS).tolist() for _ in range(REQUESTS)]
    metadata = {
        "label": LABEL,
        "target": "tiny random Llama (vocab 64, hidden 32, 2 layers), torch seed 0",
        "draft": f"the target with N(0, {DRAFT_NOISE_STD}^2) noise on every weight, torch seed 1",
        "prompts": f"{REQUESTS} random prompts of {PROMPT_TOKENS} token ids, numpy seed 0",
        "made_by": "python -m experiments.make_example_trace",
    }
    trace, fields = record_trace(
        target, draft, prompts, max_draft=MAX_DRAFT, max_new_tokens=MAX_NEW_TOKENS, metadata=metadata
    )
    return save_trace(path, trace, fields)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=EXAMPLE_TRACE, help="where to write the trace")
    path = make_example_trace(parser.parse_args(argv).output)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
