"""The bundled control set and the glossary probes: what they hold, and that the control set is
general text (no 13-gram shared with the discipline benchmark)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from trainer.eval import BenchmarkError, find_contaminated, load_seed_benchmark
from trainer.eval.control import (
    ControlKind,
    load_control_set,
    load_default_control_set,
    score_control,
)
from trainer.eval.glossary import load_glossary_terms, probes


def test_the_control_set_is_bilingual_general_text() -> None:
    control = load_default_control_set()
    assert len(control) == 30
    assert Counter(i.language.value for i in control) == {"zh": 15, "en": 15}
    assert {i.kind for i in control} == set(ControlKind)
    # balanced from the start, so a --limit keeps both languages
    assert {i.language.value for i in control.items[:2]} == {"zh", "en"}
    seed_texts = [(i.id, f"{i.prompt}\n{i.reference}") for i in load_seed_benchmark()]
    assert find_contaminated(control, seed_texts) == []


def test_a_control_answer_is_scored_on_its_text() -> None:
    item = load_default_control_set().items[0]
    perfect = score_control(item, item.reference)
    assert perfect.overall == pytest.approx(1.0)
    assert score_control(item, "").overall == 0.0


def test_a_bad_control_file_is_refused_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"name": "c", "version": "1", "files": ["a.jsonl"]}), encoding="utf-8"
    )
    good = {"id": "c-1", "language": "en", "kind": "text", "prompt": "p", "reference": "r"}
    lines = [good, {**good, "id": "c-2", "kind": "poem"}, {**good, "id": "c-1"}, {"id": "c-3"}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    with pytest.raises(BenchmarkError) as raised:
        load_control_set(tmp_path)
    found = {(i.line, i.field) for i in raised.value.issues}
    assert {(2, "kind"), (3, "id"), (4, "prompt"), (4, "language")} <= found


def test_glossary_probes_come_from_every_discipline() -> None:
    terms = load_glossary_terms(per_discipline=3)
    assert len(terms) == 6 and all(len(t) == 3 for t in terms.values())
    found = probes(terms)
    assert len(found) == 6 * 3 * 2
    zh = next(p for p in found if p.language == "zh" and p.discipline == "information_theory")
    assert zh.prompt.startswith("信息论") and zh.reference == zh.term
    assert [p.language for p in probes(terms, ["en"])] == ["en"] * 18
    assert load_glossary_terms(per_discipline=0) == {}
