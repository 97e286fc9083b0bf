"""Prompt formatting, response-only loss, the deterministic split and resumable batch order."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from tests.trainer.conftest import sample_records
from trainer.data import (
    ALPACA_WITH_INPUT,
    IGNORE_INDEX,
    BatchStream,
    alpaca_prompt,
    as_snapshot,
    collate,
    format_record,
    format_segments,
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


# ---------------------------------------------------------------------------------------------
# Multi-turn records
# ---------------------------------------------------------------------------------------------

DIALOGUE: dict[str, Any] = {
    "record_id": "rec_dialogue",
    "system": "You tutor a signals course.",
    "history": [
        ["What is a sampling rate?", "Samples taken per second."],
        ["And the Nyquist rate?", "Twice the highest frequency."],
    ],
    "instruction": "Why sample faster than that?",
    "input": "",
    "output": "To avoid aliasing.",
    "discipline": "signal_processing",
    "language": "en",
}


def trained_text(tokenizer: Any, labels: tuple[int, ...]) -> list[str]:
    """The decoded runs of trained (not -100) labels, in order."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return [tokenizer.decode(run) for run in runs]


def legacy_example(record: dict[str, Any], tokenizer: Any, *, chat: bool) -> tuple[str, str]:
    """How single-turn records were formatted before records had turns."""
    instruction, extra, output = record["instruction"], record["input"], record["output"]
    if chat:
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        turns = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        prompt = tokenizer.apply_chat_template(
            turns[:1], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(turns, tokenize=False)
        return prompt, full[len(prompt) :]
    template = (
        ALPACA_WITH_INPUT
        if extra.strip()
        else (
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
        )
    )
    return template.format(instruction=instruction, input=extra), output + tokenizer.eos_token


@pytest.mark.parametrize("chat", [True, False])
def test_single_turn_records_format_exactly_as_before(tokenizer: Any, chat: bool) -> None:
    for record in sample_records(6):
        prompt, response = legacy_example(record, tokenizer, chat=chat)
        assert format_record(record, tokenizer, chat=chat) == (prompt, response)
        example = tokenize_record(record, tokenizer, max_seq_length=256, chat=chat)
        prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if (
            not chat
            and tokenizer.bos_token_id is not None
            and prompt_ids[:1] != [tokenizer.bos_token_id]
        ):
            prompt_ids.insert(0, tokenizer.bos_token_id)
        response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
        assert example.input_ids == tuple(prompt_ids + response_ids)
        assert example.labels == tuple([IGNORE_INDEX] * len(prompt_ids) + response_ids)
        assert format_record({**record, "system": "", "history": []}, tokenizer, chat=chat) == (
            prompt,
            response,
        )


def test_a_dialogue_trains_on_every_assistant_turn_in_the_chat_template(tokenizer: Any) -> None:
    example = tokenize_record(DIALOGUE, tokenizer, max_seq_length=512, chat=True)
    answers = [pair[1] for pair in DIALOGUE["history"]] + [DIALOGUE["output"]]
    assert trained_text(tokenizer, example.labels) == [a + "<|im_end|>\n" for a in answers]
    text = tokenizer.decode(example.input_ids)
    messages = [{"role": "system", "content": DIALOGUE["system"]}]
    for user, answer in DIALOGUE["history"]:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    messages += [
        {"role": "user", "content": DIALOGUE["instruction"]},
        {"role": "assistant", "content": DIALOGUE["output"]},
    ]
    assert text == tokenizer.apply_chat_template(messages, tokenize=False)
    prompt, response = format_record(DIALOGUE, tokenizer, chat=True)
    assert response == DIALOGUE["output"] + "<|im_end|>\n"
    assert prompt.startswith("<|im_start|>system\n" + DIALOGUE["system"])
    assert prompt.endswith(
        "<|im_start|>user\n" + DIALOGUE["instruction"] + "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_dialogue_without_a_chat_template_extends_the_alpaca_prompt(tokenizer: Any) -> None:
    record = {**DIALOGUE, "input": "Think of a 10 kHz tone."}
    segments = format_segments(record, tokenizer, chat=False)
    eos = tokenizer.eos_token
    assert [s.trained for s in segments] == [False, True] * 3
    assert segments[0].text == (
        "You tutor a signals course.\n\n"
        "### Instruction:\nWhat is a sampling rate?\n\n### Response:\n"
    )
    assert segments[1].text == "Samples taken per second." + eos
    assert segments[4].text == (
        "\n\n### Instruction:\nWhy sample faster than that?\n\n### Input:\n"
        "Think of a 10 kHz tone.\n\n### Response:\n"
    )
    prompt, response = format_record(record, tokenizer, chat=False)
    assert (
        prompt == "".join(s.text for s in segments[:-1]) and response == "To avoid aliasing." + eos
    )
    assert prompt == alpaca_prompt(
        instruction=record["instruction"],
        input=record["input"],
        system=record["system"],
        history=[tuple(pair) for pair in record["history"]],
        eos=eos,
    )
    (example,) = tokenize_records([record], tokenizer, max_seq_length=512, prompt_format="alpaca")
    assert trained_text(tokenizer, example.labels) == [
        a + eos
        for a in ("Samples taken per second.", "Twice the highest frequency.", "To avoid aliasing.")
    ]


def test_a_template_that_rewrites_earlier_turns_falls_back_to_alpaca(tokenizer: Any) -> None:
    rewriting = copy.deepcopy(tokenizer)
    rewriting.chat_template = (
        "{{ messages | length }}:{% for m in messages %}{{ m['content'] }}|{% endfor %}"
        "{% if add_generation_prompt %}>{% endif %}"
    )
    assert format_record(DIALOGUE, rewriting, chat=True) == format_record(
        DIALOGUE, rewriting, chat=False
    )


def test_a_long_dialogue_keeps_its_last_answer_and_the_turns_next_to_it(tokenizer: Any) -> None:
    history = [[f"Question {i} about filters?", f"Answer {i}: " + "taps " * 20] for i in range(8)]
    record = {**DIALOGUE, "history": history}
    example = tokenize_record(record, tokenizer, max_seq_length=96, chat=True)
    assert len(example.input_ids) == 96
    runs = trained_text(tokenizer, example.labels)
    assert runs[-1] == DIALOGUE["output"] + "<|im_end|>\n"
    # The prompt keeps its end: the tail of the last earlier answer (still trained) and the
    # last question; the oldest turns are cut.
    assert len(runs) == 2 and runs[0].endswith("taps <|im_end|>\n")
    text = tokenizer.decode(example.input_ids)
    assert DIALOGUE["instruction"] in text and "Question 0" not in text


def test_the_loss_of_a_tiny_model_covers_only_assistant_tokens(tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_base("tiny", cache_dir=Path(tokenizer.name_or_path).parent).path
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    (example,) = tokenize_records([DIALOGUE], tokenizer, max_seq_length=512, prompt_format="auto")
    batch = collate([example], pad_token_id=tokenizer.pad_token_id or 0)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = model(**batch).loss
    labels = batch["labels"][0, 1:]
    trained = labels != IGNORE_INDEX
    manual = torch.nn.functional.cross_entropy(logits[0, :-1][trained], labels[trained])
    assert torch.isfinite(loss) and torch.allclose(loss, manual, atol=1e-5)
    answers = [pair[1] for pair in DIALOGUE["history"]] + [DIALOGUE["output"]]
    expected = sum(
        len(tokenizer(a + "<|im_end|>\n", add_special_tokens=False)["input_ids"]) for a in answers
    )
    assert int(trained.sum()) == expected
