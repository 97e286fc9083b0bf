"""Erasure from a governance folder: after :func:`purge_records`, no byte of an erased record's
texts (nor their plain hash) is left in any file, other records keep their entries and still
match, open indexes stop matching the erased record, and the purge loads no model."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.governance.coherence import SentenceSplitter
from ingest.governance.dedup import DedupIndex, DedupItem, DuplicateMethod
from ingest.governance.embeddings import Embedder, EmbeddingCache
from ingest.governance.engine import GovernanceEngine, GovernanceInput
from ingest.governance.erasure import PurgeReport, purge_records
from ingest.governance.minhash import normalize_text
from ingest.governance.policy import load_policy
from ingest.governance.storage import DEDUP_FILE, EMBEDDINGS_FILE, load_cache_key

REPO_ROOT = Path(__file__).resolve().parents[3]

ERASED = GovernanceInput(
    record_id="rec-erased",
    instruction="Explain the TCP three-way handshake.",
    input="",
    output=(
        "The client sends a SYN segment carrying its initial sequence number. The server answers "
        "with a SYN-ACK segment that acknowledges the client's number and announces its own "
        "initial sequence number. Finally the client sends an ACK, and the connection is "
        "established on both sides."
    ),
    discipline="computer_networks",
    language="en",
)
KEPT_EN = GovernanceInput(
    record_id="rec-kept-en",
    instruction="How does TCP flow control work?",
    input="",
    output=(
        "TCP flow control keeps a fast sender from overrunning a slow receiver. Every segment the "
        "receiver sends advertises a receive window, the free space left in its buffer, and the "
        "sender keeps the bytes in flight below that window. When the window reaches zero the "
        "sender stops and probes periodically until the receiver advertises space again."
    ),
    discipline="computer_networks",
    language="en",
)
KEPT_ZH = GovernanceInput(
    record_id="rec-kept-zh",
    instruction="什么是奈奎斯特采样定理？",
    input="",
    output=(
        "奈奎斯特采样定理指出，对带宽有限、最高频率为 fmax 的信号，只要采样频率大于 2fmax，"
        "就能由采样值无失真地重建原信号。采样频率不足时，高频分量会折叠到低频，产生混叠。"
        "因此实际系统在采样前要先用抗混叠滤波器限制信号带宽。"
    ),
    discipline="signal_processing",
    language="zh",
)
REWORDED = GovernanceInput(
    record_id="rec-reworded",
    instruction="Describe how the three-way handshake of TCP works.",
    input="",
    output=(
        "First, the client transmits a SYN segment that carries its initial sequence number. The "
        "server replies with a SYN-ACK segment, acknowledging the client's number and announcing "
        "its own initial sequence number. Lastly the client sends an ACK, and the connection is "
        "then established on both sides."
    ),
    discipline="computer_networks",
    language="en",
)
KEPT = (KEPT_EN, KEPT_ZH)


def _item(record: GovernanceInput, record_id: str | None = None) -> DedupItem:
    fields = {
        "instruction": record.instruction,
        "output": record.output,
        "language": record.language,
    }
    return DedupItem.from_record(record_id or record.record_id, fields)


def _traces(record: GovernanceInput) -> list[bytes]:
    """Every text of ``record`` that governance saw or derived (whole record, normalized form,
    question, output, output sentences), in UTF-8 and as plain sha256 (raw and hex)."""
    whole = _item(record).text
    texts = [whole, normalize_text(whole), record.instruction, record.output]
    texts += SentenceSplitter().split([record.output], language=record.language)[0]
    traces: list[bytes] = []
    for text in texts:
        raw = text.encode("utf-8")
        digest = hashlib.sha256(raw)
        traces += [raw, digest.digest(), digest.hexdigest().encode("ascii")]
    return traces


def _files_holding(directory: Path, needles: list[bytes]) -> list[str]:
    """Files of ``directory`` (SQLite logs and shared memory included) holding any needle."""
    return [
        path.name
        for path in sorted(directory.iterdir())
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


def _owned(directory: Path, record_ids: list[str]) -> dict[str, int]:
    cache = EmbeddingCache(directory / EMBEDDINGS_FILE, key=load_cache_key(directory))
    try:
        return {r: cache.owned_count([r]) for r in record_ids}
    finally:
        cache.close()


def _cached_blobs(directory: Path, record_id: str) -> list[bytes]:
    """The keys and vectors of the cache entries ``record_id`` owns, as stored."""
    with sqlite3.connect(directory / EMBEDDINGS_FILE) as conn:
        rows = conn.execute(
            "SELECT e.text_key, e.vector FROM owners o JOIN embeddings e"
            " ON e.model = o.model AND e.text_key = o.text_key WHERE o.record_id = ?",
            (record_id,),
        ).fetchall()
    conn.close()
    return [bytes(blob) for row in rows for blob in row]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A governance folder after two batches: three records accepted, then a reworded copy of
    ``ERASED`` rejected by the embedding stage (which embedded ``ERASED``'s whole text too)."""
    directory = tmp_path_factory.mktemp("template") / "governance"
    engine = GovernanceEngine.open(directory=directory)
    try:
        first = engine.govern([KEPT_EN, ERASED, KEPT_ZH])
        assert sorted(first.accepted_record_ids) == sorted(
            r.record_id for r in (KEPT_EN, ERASED, KEPT_ZH)
        )
        [decision] = engine.govern([REWORDED]).decisions
        assert decision.duplicate_of == ERASED.record_id
        assert decision.scores["duplicate_similarity"] < 1.0
    finally:
        engine.dedup_index.close()
        engine.embedder.close()
    return directory


@pytest.fixture
def folder(template: Path, tmp_path: Path) -> Path:
    """A copy of the template folder for one test to erase from."""
    return Path(shutil.copytree(template, tmp_path / "governance"))


@pytest.fixture
def live_index(folder: Path) -> Iterator[DedupIndex]:
    """An index opened on the folder before the purge, as a governing process holds it, with
    the embedding cache open beside it (so closing the purge's own connections does not
    checkpoint the logs for it)."""
    cache = EmbeddingCache(folder / EMBEDDINGS_FILE)
    assert len(cache) > 0
    try:
        with DedupIndex(
            folder / DEDUP_FILE, embedder=None, config=load_policy().dedup_config()
        ) as index:
            [match] = index.find_duplicates([_item(ERASED, "copy")])
            assert match is not None and match.record_id == ERASED.record_id
            yield index
    finally:
        cache.close()


def _assert_erased_everywhere(folder: Path, index: DedupIndex) -> None:
    assert _files_holding(folder, _traces(ERASED)) == []

    # One call per copy: within one call, a copy would match the copy before it.
    def match(item: DedupItem) -> tuple[str, str] | None:
        [found] = index.find_duplicates([item])
        return None if found is None else (found.record_id, found.method)

    assert match(_item(ERASED, "copy")) is None
    assert match(DedupItem("upper", _item(ERASED).text.upper(), "en")) is None
    assert match(_item(KEPT_EN, "copy-en")) == (KEPT_EN.record_id, DuplicateMethod.EXACT)
    assert match(_item(KEPT_ZH, "copy-zh")) == (KEPT_ZH.record_id, DuplicateMethod.EXACT)
    assert len(index) == 2 and ERASED.record_id not in index


def test_purge_leaves_no_trace_of_the_record_and_keeps_the_others(
    folder: Path, live_index: DedupIndex
) -> None:
    assert _files_holding(folder, _traces(ERASED)) == [DEDUP_FILE]  # the stored text
    ids = [ERASED.record_id, KEPT_EN.record_id, KEPT_ZH.record_id]
    before = _owned(folder, ids)
    assert before[ERASED.record_id] == 5  # question, 3 sentences, whole text
    derived = _cached_blobs(folder, ERASED.record_id)
    assert _files_holding(folder, derived) == [EMBEDDINGS_FILE]

    report = purge_records(folder, [ERASED.record_id])

    assert report == PurgeReport(index_entries=1, embeddings=before[ERASED.record_id])
    assert report.to_dict() == {"index_entries": 1, "embeddings": 5}
    _assert_erased_everywhere(folder, live_index)
    # Its vectors and their keys are derivatives too: zeroed, not left in free pages.
    assert _files_holding(folder, derived) == []
    assert _owned(folder, ids) == {**before, ERASED.record_id: 0}
    assert purge_records(folder, [ERASED.record_id]) == PurgeReport(0, 0)


def test_purge_in_another_process_loads_no_model_and_reaches_open_indexes(
    folder: Path, live_index: DedupIndex
) -> None:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from ingest.governance.erasure import purge_records\n"
        "report = purge_records(Path(sys.argv[1]), [sys.argv[2]])\n"
        "heavy = {'spacy', 'torch', 'sentence_transformers', 'transformers', 'jieba'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(json.dumps([report.to_dict(), loaded]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), ERASED.record_id],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
    )
    assert json.loads(done.stdout) == [{"index_entries": 1, "embeddings": 5}, []]
    _assert_erased_everywhere(folder, live_index)


def test_remove_erases_the_owned_embeddings_too(folder: Path) -> None:
    ids = [ERASED.record_id, REWORDED.record_id, KEPT_EN.record_id, KEPT_ZH.record_id]
    before = _owned(folder, ids)
    # No model is loaded: forgetting needs none.
    with (
        Embedder(cache_path=folder / EMBEDDINGS_FILE) as embedder,
        DedupIndex(
            folder / DEDUP_FILE, embedder=embedder, config=load_policy().dedup_config()
        ) as index,
    ):
        assert index.remove(ERASED.record_id) is True
        # A rejected record was never indexed, but coherence and the index embedded its texts.
        assert index.remove(REWORDED.record_id) is False
        assert embedder.owned_count([ERASED.record_id, REWORDED.record_id]) == 0
        assert _files_holding(folder, _traces(ERASED) + _traces(REWORDED)) == []
    after = _owned(folder, ids)
    assert after == {**before, ERASED.record_id: 0, REWORDED.record_id: 0}


def test_purging_nothing_changes_nothing(folder: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert purge_records(missing, [ERASED.record_id]) == PurgeReport(0, 0)
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert purge_records(empty, [ERASED.record_id]).to_dict() == {
        "index_entries": 0,
        "embeddings": 0,
    }
    assert list(empty.iterdir()) == []
    before = _owned(folder, [ERASED.record_id])
    assert purge_records(folder, ["rec-unknown"]) == PurgeReport(0, 0)
    assert purge_records(folder, []) == PurgeReport(0, 0)
    assert _owned(folder, [ERASED.record_id]) == before
