"""Prompt formatting, response-only loss, the deterministic split and resumable batch order."""

from __future__ import annotations

from typing import Any

import pytest
from transformers import AutoTokenizer

from tests.trainer.conftest import sample_records
from trainer.data import (
    IGNORE_INDEX,
    BatchStream,
    as_snapshot,
    collate,
    format_record,
    is_validation,
    records_root,
    split_records,
    tokenize_record,
    tokenize_records,
)
from trainer.errors import DatasetError
from trainer.models import resolve_base


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cache = tmp_path_factory.mktemp("data-models")
    return AutoTokenizer.from_pretrained(str(resolve_base("tiny", cache_dir=cache).path))


def test_split_depends_only_on_record_ids() -> None:
    records = sample_records(200)
    train, val = split_records(records, val_fraction=0.2)
    train2, val2 = split_records(list(reversed(records)), val_fraction=0.2)
    assert [r["record_id"] for r in train] == [r["record_id"] for r in train2]
    assert [r["record_id"] for r in val] == [r["record_id"] for r in val2]
    assert 20 <= len(val) <= 60
    assert all(is_validation(r["record_id"], 0.2) for r in val)
    assert split_records(records, val_fraction=0.0)[1] == []


def test_chat_format_masks_the_prompt_and_keeps_the_response(tokenizer: Any) -> None:
    record = sample_records(1)[0]
    example = tokenize_record(record, tokenizer, max_seq_length=256, chat=True)
    response = [t for t in example.labels if t != IGNORE_INDEX]
    prompt_len = example.labels.index(response[0])
    assert all(t == IGNORE_INDEX for t in example.labels[:prompt_len])
    assert list(example.input_ids[prompt_len:]) == response
    assert tokenizer.decode(response) == record["output"] + "<|im_end|>\n"
    prompt = tokenizer.decode(example.input_ids[:prompt_len])
    assert prompt.startswith("<|im_start|>user\n" + record["instruction"])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert record["input"] in prompt


def test_alpaca_format_is_used_without_a_chat_template(tokenizer: Any) -> None:
    record = sample_records(2)[1]
    prompt, response = format_record(record, tokenizer, chat=False)
    assert prompt.startswith("Below is an instruction")
    assert "### Input:" not in prompt  # this record has no input
    assert prompt.endswith("### Response:\n")
    assert response == record["output"] + tokenizer.eos_token
    examples = tokenize_records([record], tokenizer, max_seq_length=256, prompt_format="alpaca")
    kept = [t for t in examples[0].labels if t != IGNORE_INDEX]
    assert tokenizer.decode(kept) == response


def test_long_examples_are_truncated_keeping_response_tokens(tokenizer: Any) -> None:
    record = {**sample_records(1)[0], "input": "上下文 " * 200, "output": "答案 " * 200}
    example = tokenize_record(record, tokenizer, max_seq_length=64, chat=True)
    assert len(example.input_ids) == 64
    assert sum(t != IGNORE_INDEX for t in example.labels) == 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"output": "  "}, "empty output"),
        ({"instruction": None}, "field 'instruction' must be a string"),
    ],
)
def test_unusable_records_are_rejected(change: dict[str, Any], message: str) -> None:
    records: list[dict[str, Any]] = list(sample_records(3))
    records[1] = {**records[1], **change}
    with pytest.raises(DatasetError, match=message):
        split_records(records, val_fraction=0.1)


def test_duplicate_record_ids_are_rejected() -> None:
    records = sample_records(2)
    records[1] = {**records[1], "record_id": records[0]["record_id"]}
    with pytest.raises(DatasetError, match="appears twice"):
        as_snapshot(records)


def test_plain_records_become_a_snapshot_with_an_order_free_root() -> None:
    records = sample_records(5)
    snapshot = as_snapshot(records)
    assert snapshot.dataset_root == records_root([r["record_id"] for r in reversed(records)])
    assert snapshot.dataset_root.startswith("0x") and len(snapshot.dataset_root) == 66
    assert as_snapshot(snapshot) is snapshot


def test_batch_stream_resumes_exactly_from_a_position(tokenizer: Any) -> None:
    examples = tokenize_records(
        sample_records(10), tokenizer, max_seq_length=64, prompt_format="auto"
    )
    stream = BatchStream(examples, batch_size=3, seed=5)
    seen = [[e.record_id for e in stream.next_batch()] for _ in range(9)]
    assert stream.batches_per_epoch == 4
    first_epoch = [rid for batch in seen[:4] for rid in batch]
    assert sorted(first_epoch) == sorted(e.record_id for e in examples)
    assert seen[4:8] != seen[:4]  # every epoch reshuffles

    resumed = BatchStream(examples, batch_size=3, seed=5, position=6)
    assert [[e.record_id for e in resumed.next_batch()] for _ in range(3)] == seen[6:9]


def test_collate_pads_right_and_ignores_padding(tokenizer: Any) -> None:
    examples = tokenize_records(
        sample_records(3), tokenizer, max_seq_length=64, prompt_format="auto"
    )
    batch = collate(examples, pad_token_id=0)
    width = max(len(e.input_ids) for e in examples)
    assert batch["input_ids"].shape == (3, width)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        assert batch["attention_mask"][row, :n].all() and not batch["attention_mask"][row, n:].any()
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
