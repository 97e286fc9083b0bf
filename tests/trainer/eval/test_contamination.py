"""Benchmark items sharing a 13-gram with training texts are listed; others are not."""

from __future__ import annotations

from trainer.eval import find_contaminated, item_from_dict, load_seed_benchmark, record_texts
from trainer.eval.text import ngram_tokens

EN_REFERENCE = (
    "Slow start doubles the congestion window every round trip until it reaches the slow "
    "start threshold, then congestion avoidance grows it linearly."
)
ZH_PROMPT = "请解释为什么抽样频率必须大于信号最高频率的两倍才能避免混叠现象。"


def _item(item_id: str, *, language: str, prompt: str, reference: str) -> object:
    return item_from_dict(
        {
            "id": item_id,
            "discipline": "computer_networks",
            "task_type": "knowledge_qa",
            "language": language,
            "prompt": prompt,
            "reference": reference,
            "key_terms": ["x"],
        }
    )


def test_ngram_tokens_are_words_and_chinese_characters() -> None:
    assert ngram_tokens("ＴＣＰ uses 三次握手, RFC 9293.") == [
        "tcp", "uses", "三", "次", "握", "手", "rfc", "9293",
    ]  # fmt: skip


def test_contaminated_items_are_detected() -> None:
    items = [
        _item("en-copied", language="en", prompt="Explain slow start.", reference=EN_REFERENCE),
        _item("zh-copied", language="zh", prompt=ZH_PROMPT, reference="因为奈奎斯特定理。"),
        _item("clean", language="en", prompt="What is ARP?", reference="ARP maps IP to MAC."),
    ]
    records = [
        {
            "record_id": "rec-1",
            "instruction": "Describe TCP.",
            "input": "",
            # the reference reworded in case and punctuation only: still 13 shared words
            "output": "In short: SLOW START doubles the congestion window, every round trip, "
            "until it reaches the slow-start threshold; afterwards things change.",
        },
        {"record_id": "rec-2", "instruction": "抽样", "input": "", "output": "无关内容。"},
        {
            "record_id": "rec-3",
            "instruction": "课堂练习：" + ZH_PROMPT[3:20],
            "input": "",
            "output": "略",
        },
    ]
    found = find_contaminated(items, record_texts(records))
    assert [(c.item_id, c.fields, c.record_ids) for c in found] == [
        ("en-copied", ("reference",), ("rec-1",)),
        ("zh-copied", ("prompt",), ("rec-3",)),
    ]
    assert found[0].shared_ngrams >= 1


def test_twelve_shared_tokens_are_not_contamination() -> None:
    item = _item("short", language="en", prompt="Explain slow start.", reference=EN_REFERENCE)
    twelve = " ".join(EN_REFERENCE.split()[:12])
    assert find_contaminated([item], [("r", twelve)]) == []
    thirteen = " ".join(EN_REFERENCE.split()[:13])
    assert [c.item_id for c in find_contaminated([item], [("r", thirteen)])] == ["short"]


def test_seed_benchmark_is_not_contaminated_by_unrelated_records(
    records: list[dict[str, str]],
) -> None:
    assert find_contaminated(load_seed_benchmark(), record_texts(records)) == []
