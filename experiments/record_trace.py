"""Record an acceptance trace from a real draft/target pair with Hugging Face ``transformers`` (docs/traces.md).

Greedy speculative decoding, one request per prompt: each round the draft model greedily proposes L_max
tokens, the target computes its greedy token at every draft position (and one more) in a single forward pass
over prompt + generated + draft, and A_max is the length of the prefix on which they agree. The accepted
tokens and the target's next token are appended and the next round starts, until ``max_new_tokens`` tokens
are generated or the target emits EOS. The trace keeps A_max of every round (:mod:`multispin_env.traces`);
the env's ``trace`` process replays it. Greedy verification makes a draft of length L <= L_max get exactly
min(A_max, L) in the same context.

One command (needs the ``traces`` extra, ``pip install 'multispin-env[traces]'``)::

    multispin-record-trace --target MODEL --draft MODEL --prompts prompts.txt -o trace.jsonl

MODEL is anything ``AutoModelForCausalLM.from_pretrained`` loads (a local folder or a hub name); the
prompts file has one prompt per line, tokenised with the target's tokenizer (draft and target must share
it). Nothing here is imported by ``multispin_env``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from agents.cli import OneLineParser, one_line
from multispin_env.model import MAX_DRAFT
from multispin_env.traces import AcceptanceTrace, save_trace

__all__ = ["RecordedRequest", "record_request", "record_trace", "tiny_causal_lm", "main", "console_main"]


def _torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401  (the extra must be installed for the models to load)
    except ImportError as exc:
        raise SystemExit("recording a trace needs the traces extra: pip install 'multispin-env[traces]'") from exc
    return torch


def _greedy_draft(model: Any, context: Any, count: int) -> Any:
    """``count`` greedy tokens of ``model`` after ``context`` (1, T), one per forward step with the KV cache."""
    torch = _torch()
    # transformers 5 renamed the cache argument and output from past_key_values to cache.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=context, use_cache=True)
    tokens = [out.logits[:, -1].argmax(dim=-1, keepdim=True)]
    for _ in range(count - 1):
        out = model(input_ids=tokens[-1], use_cache=True, **{name: out[name]})
        tokens.append(out.logits[:, -1].argmax(dim=-1, keepdim=True))
    return torch.cat(tokens, dim=1)


class RecordedRequest(NamedTuple):
    """One request of greedy speculative decoding."""

    rounds: list[int]  # A_max of each round, tokens
    tokens: list[int]  # the generated token ids (the target's greedy continuation of the prompt)


def record_request(
    target: Any,
    draft: Any,
    prompt_ids: Sequence[int],
    *,
    max_draft: int,
    max_new_tokens: int,
    eos_token_id: int | None = None,
) -> RecordedRequest:
    """Greedy speculative decoding of one prompt: the rounds' A_max and the generated tokens.

    :param target: the verifying causal LM (a ``transformers`` model, eval mode, on its device)
    :param draft: the drafting causal LM (same vocabulary)
    :param prompt_ids: the prompt's token ids (at least one)
    :param max_draft: L_max, tokens drafted every round
    :param max_new_tokens: the request ends once this many tokens are generated (the last round may overshoot)
    :param eos_token_id: the request also ends when the target emits this token (None: never)
    """
    torch = _torch()
    if len(prompt_ids) == 0:
        raise ValueError("a prompt needs at least one token")
    device = next(target.parameters()).device
    context = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    rounds: list[int] = []
    with torch.no_grad():
        while context.shape[1] - len(prompt_ids) < max_new_tokens:
            proposal = _greedy_draft(draft, context.to(next(draft.parameters()).device), max_draft).to(device)
            logits = target(input_ids=torch.cat([context, proposal], dim=1)).logits
            # The target's greedy token after the context and after each of the first L_max - 1 draft tokens,
            # plus the one after the whole draft (the bonus token when every draft token is accepted).
            verified = logits[0, context.shape[1] - 1 :].argmax(dim=-1)
            agree = (verified[:max_draft] == proposal[0]).long()
            accepted = int(agree.cumprod(dim=0).sum())
            rounds.append(accepted)
            new = verified[: accepted + 1]  # accepted draft tokens equal the target's; then its own token
            if eos_token_id is not None and bool((new == eos_token_id).any()):
                # The target ended the request: keep the tokens up to its EOS (the round's A_max stays as
                # measured: the draft's agreement does not depend on where the text ends).
                end = int((new == eos_token_id).nonzero()[0, 0]) + 1
                context = torch.cat([context, new[None, :end]], dim=1)
                break
            context = torch.cat([context, new[None]], dim=1)
    return RecordedRequest(rounds, context[0, len(prompt_ids) :].tolist())


def record_trace(
    target: Any,
    draft: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_draft: int,
    max_new_tokens: int,
    eos_token_id: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[AcceptanceTrace, list[dict[str, int]]]:
    """Record one request per prompt (token ids); returns the trace and per-request fields for the file
    (``prompt`` index, ``new_tokens``)."""
    requests, fields = [], []
    for index, prompt in enumerate(prompts):
        recorded = record_request(
            target, draft, prompt, max_draft=max_draft, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id
        )
        requests.append(recorded.rounds)
        fields.append({"prompt": index, "new_tokens": len(recorded.tokens)})
    meta = {"max_new_tokens": max_new_tokens, "verification": "greedy", **(metadata or {})}
    return AcceptanceTrace.from_requests(requests, max_draft, meta), fields


def tiny_causal_lm(
    seed: int,
    *,
    vocab_size: int = 64,
    hidden_size: int = 32,
    layers: int = 2,
    noise_of: Any = None,
    noise_std: float = 0.0,
) -> Any:
    """A tiny randomly initialised Llama-architecture causal LM (no download), in eval mode.

    :param seed: torch seed of the initialisation
    :param noise_of: another tiny model to copy instead, with N(0, ``noise_std``^2) added to every weight (a
        draft that agrees with it part of the time)
    """
    torch = _torch()
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        initializer_range=0.5,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )  # no EOS: requests run to length
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if noise_of is not None:
        model.load_state_dict(noise_of.state_dict())
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(noise_std * torch.randn_like(parameter))
    return model.eval()


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="multispin-record-trace", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="target model: a local folder or a hub name")
    parser.add_argument("--draft", required=True, help="draft model (the same tokenizer as the target)")
    parser.add_argument("--prompts", required=True, type=Path, help="text file, one prompt per line")
    parser.add_argument("-o", "--output", required=True, type=Path, help="trace file to write (JSON lines)")
    parser.add_argument("--max-draft", type=int, default=16, help="L_max drafted every round (default 16)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="tokens generated per request")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--label", default="", help="free text stored in the trace's metadata")
    return parser


def _load(auto: Any, option: str, name: str) -> Any:
    """``auto.from_pretrained(name)``; a ValueError naming the option when it cannot be loaded."""
    if (Path(name).is_absolute() or name.startswith((".", "~"))) and not Path(name).expanduser().is_dir():
        raise ValueError(f"{option} {name!r} is not a folder")
    try:
        return auto.from_pretrained(name)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ValueError(f"{option} {name!r} cannot be loaded: {first}") from exc


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the command; returns the written trace file."""
    args = _parser().parse_args(argv)
    if not 1 <= args.max_draft <= MAX_DRAFT:
        raise ValueError(f"--max-draft must be in [1, {MAX_DRAFT}], got {args.max_draft}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    try:
        lines = [line.strip() for line in args.prompts.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--prompts {str(args.prompts)!r} cannot be read: {exc}") from exc
    prompts = [line for line in lines if line]
    if not prompts:
        raise ValueError(f"--prompts {str(args.prompts)!r} has no non-empty line")
    _torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = _load(AutoTokenizer, "--target", args.target)
    target = _load(AutoModelForCausalLM, "--target", args.target).to(args.device).eval()
    draft = _load(AutoModelForCausalLM, "--draft", args.draft).to(args.device).eval()
    ids = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    metadata = {"target": args.target, "draft": args.draft, "prompts": str(args.prompts), "label": args.label}
    trace, fields = record_trace(
        target,
        draft,
        ids,
        max_draft=args.max_draft,
        max_new_tokens=args.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        metadata=metadata,
    )
    path = save_trace(args.output, trace, fields)
    print(
        f"{trace.num_requests} requests, {trace.num_rounds} rounds, mean A_max "
        f"{trace.accepted.mean():.2f} of {trace.max_draft}: {path}"
    )
    return path


def console_main() -> None:
    """Entry point of ``multispin-record-trace``: bad input (also a model that cannot be loaded) prints one
    line, no traceback, and exits 2 (as argparse's errors do)."""
    try:
        main()
    except ValueError as exc:
        print(f"multispin-record-trace: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    console_main()
