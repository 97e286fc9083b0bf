"""Training data: accepted records -> prompt/response token ids -> deterministic micro-batches.

Records are mappings with ``record_id``, ``instruction``, ``input`` (may be empty) and ``output``;
``discipline``, ``language`` and ``leaf`` are optional and only summarized (a method may route
examples by ``discipline``). A multi-turn record
also has ``system`` (a system prompt) and/or ``history`` (the earlier ``[user, assistant]`` turns)
and trains as one conversation. The loss covers the assistant's tokens only: the response, and in a
multi-turn record every earlier assistant turn too; everything else (system prompt, user turns,
template markup) has label -100.

Determinism, which exact resume relies on:
- the train/validation split depends only on each record id (:func:`is_validation`);
- examples are ordered by record id, so the order records arrive in does not matter;
- epoch ``e`` visits the training examples in a permutation drawn from ``Random(f"{seed}:{e}")`` and
  cuts it into micro-batches; a run's *data position* is the number of micro-batches consumed so
  far, which determines everything that follows (:class:`BatchStream`).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ledger.canonical import jcs
from trainer.errors import DatasetError

if TYPE_CHECKING:
    import torch

REQUIRED_FIELDS = ("record_id", "instruction", "input", "output")
IGNORE_INDEX = -100

ALPACA_PREAMBLE_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
)
ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n"
)
ALPACA_TURN = "### Instruction:\n{instruction}\n\n### Response:\n"
ALPACA_TURN_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
ALPACA_WITH_INPUT = ALPACA_PREAMBLE_WITH_INPUT + ALPACA_TURN_WITH_INPUT
ALPACA_NO_INPUT = ALPACA_PREAMBLE + ALPACA_TURN
ALPACA_TURN_SEPARATOR = "\n\n"
"""Between an assistant turn (ended by the EOS token) and the next instruction."""


class DatasetSnapshotLike(Protocol):
    """What the trainer needs from a dataset snapshot (the corpus feed builds real ones)."""

    @property
    def records(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def dataset_root(self) -> str: ...

    @property
    def manifest(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class RecordsSnapshot:
    """A snapshot made from plain records, for callers without a corpus feed (tests, benchmarks)."""

    records: Sequence[Mapping[str, Any]]
    dataset_root: str
    manifest: Mapping[str, Any] = field(default_factory=dict)


def records_root(record_ids: Sequence[str]) -> str:
    """``0x`` + sha256 of the RFC 8785 JSON of the sorted record ids.

    The identity used for a :class:`RecordsSnapshot`; it is not the Merkle dataset root of a feed
    snapshot.
    """
    return "0x" + hashlib.sha256(jcs(sorted(record_ids))).hexdigest()


def as_snapshot(dataset: DatasetSnapshotLike | Sequence[Mapping[str, Any]]) -> DatasetSnapshotLike:
    """``dataset`` itself when it is snapshot-like, else a :class:`RecordsSnapshot` of the
    records."""
    if hasattr(dataset, "records") and hasattr(dataset, "dataset_root"):
        return dataset  # type: ignore[return-value]
    records = list(dataset)  # type: ignore[arg-type]
    check_records(records)
    return RecordsSnapshot(
        records=records, dataset_root=records_root([r["record_id"] for r in records])
    )


def check_records(records: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`DatasetError` naming the record and field when a record is unusable."""
    seen: set[str] = set()
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise DatasetError(f"record #{index} is not a mapping")
        for name in REQUIRED_FIELDS:
            if not isinstance(record.get(name), str):
                ident = record.get("record_id", f"#{index}")
                raise DatasetError(f"record {ident}: field {name!r} must be a string")
        if not record["output"].strip():
            raise DatasetError(f"record {record['record_id']}: empty output, nothing to learn")
        if not isinstance(record.get("system") or "", str):
            raise DatasetError(f"record {record['record_id']}: field 'system' must be a string")
        history = record.get("history") or []
        if not isinstance(history, list | tuple) or not all(
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(text, str) for text in pair)
            for pair in history
        ):
            raise DatasetError(
                f"record {record['record_id']}: field 'history' must be a list of "
                "[user, assistant] string pairs"
            )
        if record["record_id"] in seen:
            raise DatasetError(f"record {record['record_id']} appears twice")
        seen.add(record["record_id"])


def is_validation(record_id: str, fraction: float) -> bool:
    """Whether ``record_id`` is held out: the first 8 bytes of sha256(record id), read as a
    big-endian integer over 2**64, fall below ``fraction``."""
    value = int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "big")
    return value / 2**64 < fraction


def _split_value(record_id: str) -> int:
    return int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "big")


def split_records(
    records: Sequence[Mapping[str, Any]], *, val_fraction: float, val_size: int | None = None
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """``(train, validation)``, each sorted by record id. Raises :class:`DatasetError` when no
    record is left for training.

    With ``val_size`` the validation split is the ``val_size`` records whose sha256(record id)
    (first 8 bytes, big-endian) is lowest, ties broken by record id, instead of the
    ``val_fraction`` rule.
    """
    check_records(records)
    ordered = sorted(records, key=lambda r: r["record_id"])
    if val_size is not None:
        by_hash = sorted(ordered, key=lambda r: (_split_value(r["record_id"]), r["record_id"]))
        held = {r["record_id"] for r in by_hash[:val_size]}
        val = [r for r in ordered if r["record_id"] in held]
        train = [r for r in ordered if r["record_id"] not in held]
    else:
        val = [r for r in ordered if is_validation(r["record_id"], val_fraction)]
        train = [r for r in ordered if not is_validation(r["record_id"], val_fraction)]
    if not train:
        raise DatasetError(f"no training records left after a {val_fraction} validation split")
    return train, val


def discipline_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Records per discipline (``unknown`` when absent), sorted by discipline."""
    counts = Counter(str(r.get("discipline") or "unknown") for r in records)
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Example:
    """One tokenized record: ``labels`` is -100 on prompt tokens, the token id on response
    tokens."""

    record_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    discipline: str | None = None
    """The record's ``discipline`` as given (``None`` when absent); a method may route on it."""

    @property
    def trained_tokens(self) -> int:
        """Tokens the causal-LM loss covers: labels other than -100 after the first position."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


def uses_chat_template(tokenizer: Any, prompt_format: str) -> bool:
    """Whether records are formatted with the tokenizer's chat template (else Alpaca)."""
    if prompt_format == "alpaca":
        return False
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if prompt_format == "chat" and not has_template:
        raise DatasetError("prompt_format=chat but the tokenizer has no chat template")
    return has_template


@dataclass(frozen=True)
class Segment:
    """A piece of an example's text, and whether the loss covers its tokens (assistant turns)."""

    text: str
    trained: bool


def _turns(record: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """``(system, exchanges)``: the system prompt ("" when none) and every ``(user, assistant)``
    exchange, the record's own last; the last user turn is the instruction (and input)."""
    history = [(str(user), str(answer)) for user, answer in record.get("history") or ()]
    instruction, extra = record["instruction"], record["input"]
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return str(record.get("system") or ""), [*history, (user, record["output"])]


def _chat_segments(record: Mapping[str, Any], tokenizer: Any) -> list[Segment] | None:
    """The record as the chat template renders it, cut at each assistant turn; ``None`` when the
    template rewrites earlier turns (a rendered conversation does not extend the one before)."""
    system, exchanges = _turns(record)
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    segments: list[Segment] = []
    done = ""
    for user, answer in exchanges:
        messages.append({"role": "user", "content": user})
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        messages.append({"role": "assistant", "content": answer})
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not (
            isinstance(prompt, str)
            and isinstance(full, str)
            and prompt.startswith(done)
            and full.startswith(prompt)
        ):
            return None
        segments += [Segment(prompt[len(done) :], False), Segment(full[len(prompt) :], True)]
        done = full
    return segments


def alpaca_prompt(
    *,
    instruction: str,
    input: str = "",
    system: str = "",
    history: Sequence[tuple[str, str]] = (),
    eos: str = "",
) -> str:
    """The Alpaca prompt a model without a chat template continues: the system prompt (or the
    Alpaca preamble) and each earlier exchange, its answer ended by ``eos``, then the last
    instruction (and input). Without system and history, exactly :data:`ALPACA_NO_INPUT` or
    :data:`ALPACA_WITH_INPUT`."""
    return "".join(
        s.text for s in _alpaca_segments(system, [*history, (instruction, "")], input, eos)[:-1]
    )


def _alpaca_segments(
    system: str, exchanges: Sequence[tuple[str, str]], extra: str, eos: str
) -> list[Segment]:
    """The Alpaca text of a conversation; ``extra`` is the last turn's input."""
    if system:
        head = system + ALPACA_TURN_SEPARATOR
    else:
        head = ALPACA_PREAMBLE_WITH_INPUT if extra.strip() else ALPACA_PREAMBLE
    segments: list[Segment] = []
    for turn, (user, answer) in enumerate(exchanges):
        last = turn == len(exchanges) - 1
        if last and extra.strip():
            prompt = ALPACA_TURN_WITH_INPUT.format(instruction=user, input=extra)
        else:
            prompt = ALPACA_TURN.format(instruction=user)
        lead = head if turn == 0 else ALPACA_TURN_SEPARATOR
        segments += [Segment(lead + prompt, False), Segment(answer + eos, True)]
    return segments


def format_segments(record: Mapping[str, Any], tokenizer: Any, *, chat: bool) -> list[Segment]:
    """The text of a record's example as segments, the last being the response.

    With ``chat``, the conversation as the tokenizer's chat template renders it: a system turn
    when the record has one, then each exchange, the user turn of the last being the instruction
    (plus a blank line and the input when there is one); an assistant segment is what the
    template adds for that turn, end-of-turn marker included. Otherwise, or when the template
    cannot be cut into turns, the Alpaca prompt (:func:`alpaca_prompt`), each answer followed by
    the EOS token. A single-turn record gives exactly two segments: prompt and response.
    """
    if chat:
        segments = _chat_segments(record, tokenizer)
        if segments is not None:
            return segments
        # A template that rewrites earlier turns cannot be split into prompt and response.
    system, exchanges = _turns(record)
    # The last user turn keeps instruction and input apart: Alpaca gives the input its section.
    exchanges[-1] = (record["instruction"], record["output"])
    eos = getattr(tokenizer, "eos_token", None) or ""
    return _alpaca_segments(system, exchanges, record["input"], eos)


def format_record(record: Mapping[str, Any], tokenizer: Any, *, chat: bool) -> tuple[str, str]:
    """``(prompt_text, response_text)`` of a record (see :func:`format_segments`): the response
    is the last assistant turn, the prompt everything before it (earlier turns included)."""
    *context, response = format_segments(record, tokenizer, chat=chat)
    return "".join(s.text for s in context), response.text


def tokenize_record(
    record: Mapping[str, Any], tokenizer: Any, *, max_seq_length: int, chat: bool
) -> Example:
    """The :class:`Example` of ``record``, at most ``max_seq_length`` tokens.

    Each segment is tokenized on its own; labels are -100 except on assistant segments. When too
    long, the response keeps ``max(max_seq_length - len(prompt), max_seq_length // 2)`` tokens
    from its start and the prompt (everything before the response, earlier turns included) keeps
    what remains of the budget from its end (the part next to the response).
    """
    *context, last = format_segments(record, tokenizer, chat=chat)
    prompt: list[int] = []
    prompt_labels: list[int] = []
    for segment in context:
        ids = list(tokenizer(segment.text, add_special_tokens=False)["input_ids"])
        prompt += ids
        prompt_labels += ids if segment.trained else [IGNORE_INDEX] * len(ids)
    response = list(tokenizer(last.text, add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if not chat and bos is not None and (not prompt or prompt[0] != bos):
        prompt.insert(0, bos)
        prompt_labels.insert(0, IGNORE_INDEX)
    if len(prompt) + len(response) > max_seq_length:
        keep_response = min(len(response), max(max_seq_length - len(prompt), max_seq_length // 2))
        keep_prompt = max_seq_length - keep_response
        cut = len(prompt) - keep_prompt if keep_prompt else len(prompt)
        prompt, prompt_labels = prompt[cut:], prompt_labels[cut:]
        response = response[:keep_response]
    if not response:
        raise DatasetError(f"record {record['record_id']}: the response has no tokens")
    return Example(
        record_id=str(record["record_id"]),
        input_ids=tuple(prompt + response),
        labels=tuple(prompt_labels + response),
        discipline=str(record["discipline"]) if record.get("discipline") else None,
    )


def tokenize_records(
    records: Sequence[Mapping[str, Any]], tokenizer: Any, *, max_seq_length: int, prompt_format: str
) -> list[Example]:
    """:func:`tokenize_record` over ``records``, in order."""
    chat = uses_chat_template(tokenizer, prompt_format)
    return [
        tokenize_record(r, tokenizer, max_seq_length=max_seq_length, chat=chat) for r in records
    ]


def collate(examples: Sequence[Example], *, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors of one micro-batch."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids, dtype=torch.long)
        labels[row, :n] = torch.tensor(example.labels, dtype=torch.long)
        mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class BatchStream:
    """Endless, deterministic micro-batches over ``examples`` (see the module docstring).

    ``position`` counts the micro-batches handed out; a stream created with ``position=p`` continues
    exactly where one that handed out ``p`` batches stopped.
    """

    def __init__(
        self, examples: Sequence[Example], *, batch_size: int, seed: int, position: int = 0
    ):
        if not examples:
            raise DatasetError("no training examples")
        self._examples = list(examples)
        self._batch_size = batch_size
        self._seed = seed
        self.position = position
        self._epoch_cache: tuple[int, list[list[Example]]] | None = None

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self._examples) // self._batch_size)

    def _epoch(self, epoch: int) -> list[list[Example]]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            order = list(range(len(self._examples)))
            random.Random(f"{self._seed}:{epoch}").shuffle(order)
            batches = [
                [self._examples[i] for i in order[start : start + self._batch_size]]
                for start in range(0, len(order), self._batch_size)
            ]
            self._epoch_cache = (epoch, batches)
        return self._epoch_cache[1]

    @property
    def epoch(self) -> int:
        """The epoch of the next micro-batch (0-based)."""
        return self.position // self.batches_per_epoch

    def next_batch(self) -> list[Example]:
        epoch, index = divmod(self.position, self.batches_per_epoch)
        self.position += 1
        return self._epoch(epoch)[index]


def batch_to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    """``batch`` (from :func:`collate`) on ``device``."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
