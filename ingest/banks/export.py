"""Converted items written as the files trainers take: an Alpaca JSON array or ShareGPT JSONL.

``byr convert`` writes these from :func:`ingest.banks.convert_bank`'s valid items, before any
desensitization: the file shows an institution its own rows, mapped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from ingest.language import detect_language
from ingest.validation import ValidItem


class ExportFormat(StrEnum):
    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"


def alpaca_item(item: ValidItem) -> dict[str, Any]:
    """``{instruction, input, output, discipline, task_type, language, license}``, with
    ``system`` and ``history`` when the item has them."""
    row: dict[str, Any] = {
        "instruction": item.instruction,
        "input": item.input,
        "output": item.output,
        "discipline": item.discipline.value,
        "task_type": item.task_type.value,
        "language": detect_language(*item.texts()).value,
        "license": item.license,
    }
    if item.system:
        row["system"] = item.system
    if item.history:
        row["history"] = [list(pair) for pair in item.history]
    return row


def sharegpt_item(item: ValidItem) -> dict[str, Any]:
    """One ShareGPT conversation (an optional system turn, earlier exchanges, then the human's
    question and the gpt answer) with the record's metadata."""
    question = item.instruction if not item.input else f"{item.instruction}\n\n{item.input}"
    metadata = alpaca_item(item)
    turns = [{"from": "system", "value": item.system}] if item.system else []
    for user, assistant in item.history:
        turns += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    return {
        "conversations": [
            *turns,
            {"from": "human", "value": question},
            {"from": "gpt", "value": item.output},
        ],
        **{k: metadata[k] for k in ("discipline", "task_type", "language", "license")},
    }


def export(items: Iterable[ValidItem], fmt: ExportFormat) -> bytes:
    """The bytes of the converted file: Alpaca as a JSON array (one item per line), ShareGPT as
    JSONL. UTF-8, Chinese kept as it is."""
    if fmt is ExportFormat.ALPACA:
        body = ",\n".join(json.dumps(alpaca_item(i), ensure_ascii=False) for i in items)
        return (f"[\n{body}\n]\n" if body else "[]\n").encode("utf-8")
    return "".join(json.dumps(sharegpt_item(i), ensure_ascii=False) + "\n" for i in items).encode(
        "utf-8"
    )
