"""Text generation with a base model or a trained adapter, streamed piece by piece.

The model is the base alone, or the adapter loaded by plain peft on its base
(:func:`trainer.loading.load_trained`). The prompt is the base tokenizer's chat template when it
has one (the format the adapter was trained in), else the Alpaca prompt of :mod:`trainer.data`
with the conversation's system prompt and earlier exchanges, as multi-turn records train.
``model.generate`` runs in a thread and hands its text to transformers'
``TextIteratorStreamer``; the caller iterates the pieces as they come and reads the token counts
at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.data import alpaca_prompt
from trainer.errors import ConfigError, TrainerError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """How to sample: at most ``max_new_tokens`` tokens; ``temperature`` 0 is greedy."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


def load_generator(
    *,
    adapter_dir: Path | None,
    base: str | None = None,
    cache_dir: Path | None = None,
    device: str | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` in eval mode: the adapter in ``adapter_dir`` on its base (``base``
    overrides the base its manifest names), or the base ``base`` alone when ``adapter_dir`` is
    ``None``."""
    from trainer.loading import load_trained
    from trainer.models import load_pretrained, resolve_base

    if adapter_dir is not None:
        return load_trained(adapter_dir, base=base, cache_dir=cache_dir, device=device)
    ref = resolve_base(base or "tiny", cache_dir=cache_dir)
    model, tokenizer = load_pretrained(ref.path, device=device)
    model.eval()
    return model, tokenizer


def prompt_text(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The text the model continues: the chat template with a generation prompt, or, without a
    template, the Alpaca prompt (:func:`trainer.data.alpaca_prompt`) of the last user message
    after the system messages and the earlier exchanges (each user message answered by the
    assistant message right after it)."""
    if not messages:
        raise ConfigError("messages: at least one message is needed")
    for index, message in enumerate(messages):
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ConfigError(
                f"messages[{index}]: needs a role ({', '.join(ROLES)}) and a content string"
            )
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        return str(text)
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise ConfigError("messages: a model without a chat template needs a user message")
    last = users[-1]
    history = [
        (messages[i]["content"], messages[i + 1]["content"])
        for i in users[:-1]
        if messages[i + 1]["role"] == "assistant"
    ]
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    eos = getattr(tokenizer, "eos_token", None) or ""
    return alpaca_prompt(
        instruction=messages[last]["content"], system=system, history=history, eos=eos
    )


@dataclass
class GenerationStream:
    """The pieces of one generation, in order; counts are final once iteration ends."""

    prompt_tokens: int
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = "stop"
    """``stop`` (end of turn), ``length`` (max_new_tokens reached) or ``cancelled``."""
    _pieces: Iterator[str] = field(default_factory=lambda: iter(()))
    _cancel: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: list[BaseException] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        finished = False
        try:
            for piece in self._pieces:
                if piece:
                    yield piece
            finished = True
        finally:
            if not finished:
                self.cancel()
            if self._thread is not None:
                self._thread.join()
        if self._error:
            raise TrainerError(f"generation failed: {self._error[0]}") from self._error[0]

    def cancel(self) -> None:
        """Stop generating at the next token (a client went away)."""
        self._cancel.set()

    def wait(self) -> None:
        """Block until the generation thread has finished."""
        if self._thread is not None:
            self._thread.join()


def stream_generate(
    model: Any,
    tokenizer: Any,
    *,
    messages: Sequence[Mapping[str, str]],
    settings: GenerationSettings,
    on_done: Any = None,
) -> GenerationStream:
    """Start generating the answer to ``messages``; returns the stream of its text pieces.

    ``on_done`` (no arguments) runs in the generation thread once it ends, whatever the outcome.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    text = prompt_text(tokenizer, messages)
    encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in encoded.items()}
    prompt_len = int(inputs["input_ids"].shape[1])
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stream = GenerationStream(prompt_tokens=prompt_len, _pieces=iter(streamer))
    cancel = stream._cancel

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)

    sample = settings.temperature > 0
    kwargs: dict[str, Any] = {
        **inputs,
        "max_new_tokens": settings.max_new_tokens,
        "do_sample": sample,
        "streamer": streamer,
        "stopping_criteria": StoppingCriteriaList([Cancelled()]),
        "pad_token_id": tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    }
    if sample:
        kwargs["temperature"] = settings.temperature
        kwargs["top_p"] = settings.top_p
    else:
        # greedy: neutral values, so a generation config of the base does not warn or sample
        kwargs["temperature"] = None
        kwargs["top_p"] = None
        kwargs["top_k"] = None

    def run() -> None:
        started = time.perf_counter()
        try:
            torch.manual_seed(settings.seed)
            with torch.no_grad():
                output = model.generate(**kwargs)
            new = int(output.shape[1]) - prompt_len
            stream.completion_tokens = new
            if cancel.is_set():
                stream.finish_reason = "cancelled"
            elif new >= settings.max_new_tokens:
                stream.finish_reason = "length"
        except BaseException as exc:  # handed to the reader, which raises it
            stream._error.append(exc)
            streamer.end()
        finally:
            stream.seconds = time.perf_counter() - started
            if on_done is not None:
                on_done()

    thread = threading.Thread(target=run, name="byr-generate", daemon=True)
    stream._thread = thread
    thread.start()
    return stream


__all__ = [
    "GenerationSettings",
    "GenerationStream",
    "load_generator",
    "prompt_text",
    "stream_generate",
]
