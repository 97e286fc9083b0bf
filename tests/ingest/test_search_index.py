"""The search index on a real ledger (SQLite log and state) with the packaged embedding models:
it follows the ``corpus-index`` stream and the erasures, routes a query to the model of its
language, filters, and resumes from its file after a restart."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ingest.governance.embeddings import Embedder
from ingest.search import InvalidQuery, SearchFilters, SearchIndex, SearchMode
from ingest.search.follow import sync_index
from ingest.search.store import SearchStore
from ingest.search.tokenize import matching_spans, term_list
from ledger.application import CorpusLedger
from ledger.batching import RecordInput
from ledger.eventlog import open_event_log
from ledger.eventlog.base import StreamAppend
from ledger.eventlog.sqlite import sqlite_url
from ledger.events import BatchGoverned, CorpusIndexExtended
from ledger.ids import CORPUS_INDEX_STREAM, batch_stream
from ledger.projections.base import ProjectionStore


def record(
    instruction: str,
    output: str,
    *,
    language: str,
    discipline: str,
    task_type: str = "knowledge_qa",
    institution_id: str = "bupt",
) -> dict[str, str]:
    return {
        "instruction": instruction,
        "input": "",
        "output": output,
        "discipline": discipline,
        "task_type": task_type,
        "language": language,
        "license": "CC-BY-4.0",
        "institution_id": institution_id,
    }


ZH_CAPACITY = record(
    "什么是香农信道容量？",
    "信道容量是信道在任意小的错误概率下能够传输信息的最大速率，由香农公式给出。",
    language="zh",
    discipline="information_theory",
)
ZH_FIREWALL = record(
    "防火墙的包过滤是如何工作的？",
    "包过滤防火墙根据源地址、目的地址和端口号等规则决定数据包是否放行。",
    language="zh",
    discipline="network_security",
    task_type="concept_explanation",
)
EN_HANDSHAKE = record(
    "Explain the TCP three-way handshake.",
    "The client sends SYN, the server answers SYN-ACK, and the client replies with ACK, so both "
    "sides agree on initial sequence numbers before data flows.",
    language="en",
    discipline="computer_networks",
    task_type="concept_explanation",
)
EN_FOURIER = record(
    "What does the Fourier transform of a signal tell us?",
    "It decomposes the signal into sinusoids and shows how much of each frequency it contains.",
    language="en",
    discipline="signal_processing",
)
XIDIAN_EN = record(
    "Why does TCP need a handshake before sending data?",
    "A handshake lets both ends synchronize sequence numbers and confirm the peer is reachable.",
    language="en",
    discipline="computer_networks",
    institution_id="xidian",
)


def submit_governed(
    ledger: CorpusLedger,
    records: Sequence[dict[str, str]],
    *,
    institution_id: str = "bupt",
    qualities: Sequence[float] | None = None,
) -> list[str]:
    """Submit ``records`` as one batch and record governance accepting all of them (as the
    governance service appends it: ``BatchGoverned`` and ``CorpusIndexExtended`` at once)."""
    submitted = ledger.submit_batch(
        institution_id=institution_id,
        source_name="uploads/search.jsonl",
        records=[RecordInput(canonical=r, source_line=i + 1) for i, r in enumerate(records)],
        policy_version="test-1",
    )
    ids = submitted.record_ids
    qualities = qualities or [0.8] * len(ids)
    decisions: list[dict[str, Any]] = [
        {
            "record_id": rid,
            "accepted": True,
            "reasons": [],
            "scores": {"quality": q},
            "flags": [
                {
                    "code": "low_term_coverage",
                    "field": "output",
                    "start": 0,
                    "end": 1,
                    "message": "term coverage 0.10",
                    "severity": "warning",
                }
            ],
            "duplicate_of": None,
            "redactions": {},
        }
        for rid, q in zip(ids, qualities, strict=True)
    ]
    governed = BatchGoverned(
        batch_id=submitted.batch_id,
        institution_id=institution_id,
        policy_version="test-1",
        accepted_record_ids=list(ids),
        rejected={},
        decisions=decisions,
        contribution_score=1.0,
        reward_wei="0",
    )
    extended = CorpusIndexExtended(batch_id=submitted.batch_id, record_ids=list(ids))
    stream = batch_stream(submitted.batch_id)
    ledger.append_many(
        [
            StreamAppend(stream, [governed], ledger.log.stream_version(stream)),
            StreamAppend(
                CORPUS_INDEX_STREAM, [extended], ledger.log.stream_version(CORPUS_INDEX_STREAM)
            ),
        ]
    )
    return list(ids)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
    folder = tmp_path_factory.mktemp("governance")
    with Embedder(cache_path=folder / "embeddings.sqlite") as embedder:
        yield embedder


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[CorpusLedger]:
    ledger = CorpusLedger(
        log=open_event_log(sqlite_url(tmp_path / "events.db")),
        store=ProjectionStore(tmp_path / "state.db"),
    )
    for institution, account in (("bupt", "11"), ("xidian", "22")):
        ledger.register_institution(
            institution_id=institution,
            name=institution.upper(),
            account="0x" + account * 20,
            academic_tx_hash="0x" + "ab" * 32,
        )
    yield ledger
    ledger.log.close()
    ledger.store.close()


@pytest.fixture
def corpus(ledger: CorpusLedger) -> dict[str, str]:
    """Record ids by name: four bupt records and one of xidian."""
    bupt = submit_governed(
        ledger, [ZH_CAPACITY, ZH_FIREWALL, EN_HANDSHAKE, EN_FOURIER], qualities=[0.9, 0.5, 0.7, 0.3]
    )
    (xidian,) = submit_governed(ledger, [XIDIAN_EN], institution_id="xidian")
    names = ["zh_capacity", "zh_firewall", "en_handshake", "en_fourier"]
    return dict(zip(names, bupt, strict=True)) | {"xidian_en": xidian}


def store_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "search"
    folder.mkdir(exist_ok=True)
    return folder


def ids(hits: Sequence[Any]) -> list[str]:
    return [h.record_id for h in hits]


def test_zh_query_finds_zh_record_and_en_query_en_record(
    ledger: CorpusLedger, corpus: dict[str, str], embedder: Embedder
) -> None:
    index = SearchIndex(encoder=embedder)
    report = sync_index(index, ledger)
    assert report.added == 5 and len(index) == 5
    zh = index.search("香农信道容量是什么")
    assert zh[0].record_id == corpus["zh_capacity"]
    assert zh[0].lexical_rank == 1 and zh[0].embedding_rank == 1
    en = index.search("how does the tcp handshake work", limit=3)
    assert en[0].record_id in {corpus["en_handshake"], corpus["xidian_en"]}
    # The English model ranks English records only; the Chinese model Chinese ones.
    en_only = index.search("frequency content of a signal", mode=SearchMode.EMBEDDING)
    assert en_only[0].record_id == corpus["en_fourier"]
    assert {h.language for h in en_only} == {"en"}
    zh_only = index.search("数据包过滤规则", mode=SearchMode.EMBEDDING)
    assert zh_only[0].record_id == corpus["zh_firewall"]
    assert {h.language for h in zh_only} == {"zh"}


def test_filters(ledger: CorpusLedger, corpus: dict[str, str], embedder: Embedder) -> None:
    index = SearchIndex(encoder=embedder)
    sync_index(index, ledger)
    query = "tcp handshake signal 信道"
    every = set(ids(index.search(query, limit=100)))
    assert every == set(corpus.values())
    xidian = index.search(query, filters=SearchFilters(institution_id="xidian"))
    assert ids(xidian) == [corpus["xidian_en"]]
    networks = index.search(query, filters=SearchFilters(discipline="computer_networks"))
    assert set(ids(networks)) == {corpus["en_handshake"], corpus["xidian_en"]}
    zh = index.search(query, filters=SearchFilters(language="zh"))
    assert set(ids(zh)) == {corpus["zh_capacity"], corpus["zh_firewall"]}
    explain = index.search(query, filters=SearchFilters(task_type="concept_explanation"))
    assert set(ids(explain)) == {corpus["zh_firewall"], corpus["en_handshake"]}
    quality = index.search(query, filters=SearchFilters(min_quality=0.6, max_quality=0.85))
    assert set(ids(quality)) == {corpus["en_handshake"], corpus["xidian_en"]}
    lexical = index.search("handshake", mode=SearchMode.LEXICAL)
    assert set(ids(lexical)) == {corpus["en_handshake"], corpus["xidian_en"]}
    assert all(h.embedding_rank is None for h in lexical)
    assert len(index.search(query, limit=2)) == 2


def test_every_turn_of_a_dialogue_is_searchable(ledger: CorpusLedger, embedder: Embedder) -> None:
    dialogue = {
        **EN_FOURIER,
        "system": "You tutor a signals course.",
        "history": [
            ["What is a periodogram?", "A spectrum estimate from the squared magnitude of a DFT."]
        ],
    }
    (rid,) = submit_governed(ledger, [dialogue])
    index = SearchIndex(encoder=embedder)
    sync_index(index, ledger)
    hits = index.search("periodogram", mode=SearchMode.LEXICAL)
    assert ids(hits) == [rid]
    # The system prompt says how to answer, not what the record holds: it is not indexed.
    assert index.search("tutor", mode=SearchMode.LEXICAL) == []


def test_bad_queries_name_the_field(embedder: Embedder) -> None:
    index = SearchIndex(encoder=embedder)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"query": "   "}, "q"),
        ({"query": "x" * 501}, "q"),
        ({"query": "tcp", "limit": 0}, "limit"),
        ({"query": "tcp", "limit": 101}, "limit"),
        ({"query": "？！", "mode": SearchMode.LEXICAL}, "q"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidQuery) as caught:
            index.search(**kwargs)
        assert caught.value.field == field
    with pytest.raises(InvalidQuery, match="min_quality"):
        SearchFilters(min_quality=0.9, max_quality=0.1)
    with pytest.raises(InvalidQuery, match="max_quality"):
        SearchFilters(max_quality=1.5)


def test_spans_point_at_the_query_terms() -> None:
    text = "The TCP three-way handshake opens a TCP connection."
    spans = matching_spans(text, frozenset(term_list("tcp handshake")))
    assert [text[a:b] for a, b in spans] == ["TCP", "handshake", "TCP"]
    zh = "信道容量由香农公式给出，香农是信息论之父。"
    spans = matching_spans(zh, frozenset(term_list("香农的信道容量")))
    assert [zh[a:b] for a, b in spans] == ["信道", "容量", "香农", "香农"]


def test_erased_record_disappears_and_its_terms_leave_the_file(
    tmp_path: Path, ledger: CorpusLedger, corpus: dict[str, str], embedder: Embedder
) -> None:
    folder = store_dir(tmp_path)
    index = SearchIndex(encoder=embedder, store=SearchStore(folder))
    sync_index(index, ledger)
    assert corpus["zh_capacity"] in ids(index.search("香农信道容量"))
    ledger.erase(corpus["zh_capacity"], reason="withdrawn", requested_by="bupt")
    report = sync_index(index, ledger)
    assert report.removed == 1 and corpus["zh_capacity"] not in index
    assert corpus["zh_capacity"] not in ids(index.search("香农信道容量", limit=100))
    # Nothing of a text is stored in the clear, erased or not.
    data = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
    for word in ("香农", "handshake", "防火墙"):
        assert word.encode("utf-8") not in data


def test_restart_resumes_from_the_file_without_embedding_again(
    tmp_path: Path, ledger: CorpusLedger, corpus: dict[str, str], embedder: Embedder
) -> None:
    folder = store_dir(tmp_path)
    first = SearchIndex(encoder=embedder, store=SearchStore(folder))
    sync_index(first, ledger)
    expected = ids(first.search("tcp handshake 信道"))
    encoded = embedder.stats.texts_encoded
    second = SearchIndex(encoder=embedder, store=SearchStore(folder))
    assert second.position == first.position and len(second) == len(first)
    assert sync_index(second, ledger).added == 0
    assert embedder.stats.texts_encoded == encoded
    assert ids(second.search("tcp handshake 信道")) == expected
    # A later batch is added incrementally: only its records are embedded.
    new = record(
        "What is quantization noise?",
        "The error between a sampled value and its quantized level, often modeled as noise.",
        language="en",
        discipline="signal_processing",
    )
    (added,) = submit_governed(ledger, [new])
    encoded = embedder.stats.texts_encoded
    assert sync_index(second, ledger).added == 1
    assert embedder.stats.texts_encoded == encoded + 1  # the new record's question only
    assert second.search("quantization noise")[0].record_id == added
