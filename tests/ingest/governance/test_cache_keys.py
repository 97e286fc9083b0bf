"""Cache keys of a governance folder: keyed hashes under the folder's own secret, never a plain
hash of a text, and files of earlier versions (plain sha256 keys) rekeyed or dropped on open."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.governance.coherence import SentenceSplitter
from ingest.governance.dedup import DedupConfig, DedupIndex, DedupItem, DuplicateMethod
from ingest.governance.embeddings import Embedder, EmbeddingCache
from ingest.governance.engine import GovernanceEngine, GovernanceInput
from ingest.governance.minhash import MinHasher, exact_key, normalize_text
from ingest.governance.storage import (
    CACHE_KEY_FILE,
    DEDUP_FILE,
    EMBEDDINGS_FILE,
    CacheKeyError,
    load_cache_key,
)

HANDSHAKE = GovernanceInput(
    record_id="rec-handshake",
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
NYQUIST = GovernanceInput(
    record_id="rec-nyquist",
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
MODEL = "all-MiniLM-L6-v2|test|256"


def _dedup_text(record: GovernanceInput) -> str:
    return DedupItem.from_record(
        record.record_id,
        {"instruction": record.instruction, "output": record.output, "language": record.language},
    ).text


def _plain_hashes(texts: list[str]) -> list[bytes]:
    """sha256 of each text, raw and as hex: what an unkeyed cache would have stored."""
    found: list[bytes] = []
    for text in texts:
        digest = hashlib.sha256(text.encode("utf-8"))
        found += [digest.digest(), digest.hexdigest().encode("ascii")]
    return found


def _files_holding(directory: Path, needles: list[bytes]) -> list[str]:
    return [
        path.name
        for path in sorted(directory.iterdir())
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A governance folder after a batch was governed and a reworded copy was checked: records
    embedded by coherence, novelty and the index's embedding stage, and indexed."""
    directory = tmp_path_factory.mktemp("governed")
    engine = GovernanceEngine.open(directory=directory)
    try:
        first = engine.govern([HANDSHAKE, NYQUIST])
        assert first.accepted_record_ids == [HANDSHAKE.record_id, NYQUIST.record_id]
        second = engine.govern([REWORDED])
        assert second.decisions[0].duplicate_of == HANDSHAKE.record_id
        assert second.decisions[0].scores["duplicate_similarity"] < 1.0
    finally:
        engine.dedup_index.close()
        engine.embedder.close()
    yield directory


def test_each_governance_folder_has_its_own_owner_only_key(tmp_path: Path) -> None:
    engine = GovernanceEngine.open(directory=tmp_path / "a")
    engine.dedup_index.close()
    engine.embedder.close()
    path = tmp_path / "a" / CACHE_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    assert len(key) == 32
    assert load_cache_key(tmp_path / "a") == key
    assert load_cache_key(tmp_path / "b") not in (key, b"")


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / CACHE_KEY_FILE).write_bytes(b"short")
    with pytest.raises(CacheKeyError):
        load_cache_key(tmp_path)


def test_the_same_text_has_different_keys_in_two_folders(tmp_path: Path) -> None:
    text = HANDSHAKE.output
    keys: dict[str, tuple[bytes, bytes]] = {}
    for name in ("a", "b"):
        folder = tmp_path / name
        cache = EmbeddingCache(folder / EMBEDDINGS_FILE)
        with DedupIndex(folder / DEDUP_FILE, embedder=None) as index:
            index.add([DedupItem("r", text, "en")])
        with sqlite3.connect(folder / DEDUP_FILE) as conn:
            (stored,) = conn.execute("SELECT exact_key FROM records").fetchone()
        keys[name] = (cache.digest(MODEL, text), bytes(stored))
        cache.close()
    assert keys["a"][0] != keys["b"][0]
    assert keys["a"][1] != keys["b"][1]
    # Stable within a folder: a reopened cache finds what it stored.
    reopened = EmbeddingCache(tmp_path / "a" / EMBEDDINGS_FILE)
    assert reopened.digest(MODEL, text) == keys["a"][0]
    reopened.close()
    plain = _plain_hashes([text, normalize_text(text)])
    assert not set(plain) & {k for pair in keys.values() for k in pair}


def test_no_file_of_the_folder_holds_a_plain_hash_of_a_text(governed: Path) -> None:
    splitter = SentenceSplitter()
    texts: list[str] = []
    for record in (HANDSHAKE, REWORDED, NYQUIST):
        whole = _dedup_text(record)
        texts += [whole, normalize_text(whole), record.instruction, record.output]
        texts += splitter.split([record.output], language=record.language)[0]
    assert _files_holding(governed, _plain_hashes(texts)) == []

    # Not vacuous: the texts were embedded and indexed, under keyed hashes.
    key = load_cache_key(governed)
    cache = EmbeddingCache(governed / EMBEDDINGS_FILE, key=key)
    try:
        assert cache.owned_count([REWORDED.record_id]) == 5  # question, 3 sentences, whole text
        assert cache.owned_count([HANDSHAKE.record_id]) == 5
        assert cache.owned_count([NYQUIST.record_id]) == 4  # question, 3 sentences
    finally:
        cache.close()
    keyed = exact_key(normalize_text(_dedup_text(HANDSHAKE)), key=key)
    assert _files_holding(governed, [keyed]) == [DEDUP_FILE]


def test_an_unkeyed_embedding_cache_is_emptied_on_open(tmp_path: Path) -> None:
    path = tmp_path / EMBEDDINGS_FILE
    texts = [f"sentence {i} of a record about TCP congestion control" for i in range(200)]
    vector = np.ones(384, dtype=np.float32).tobytes()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        # The schema of earlier versions: vectors keyed by the plain sha256 of their text.
        conn.execute(
            "CREATE TABLE embeddings (model TEXT NOT NULL, text_sha256 BLOB NOT NULL,"
            " vector BLOB NOT NULL, PRIMARY KEY (model, text_sha256)) WITHOUT ROWID"
        )
        conn.executemany(
            "INSERT INTO embeddings VALUES (?, ?, ?)",
            [(MODEL, hashlib.sha256(t.encode()).digest(), vector) for t in texts],
        )
    conn.close()
    assert _files_holding(tmp_path, _plain_hashes(texts[:1])) == [EMBEDDINGS_FILE]

    cache = EmbeddingCache(path)
    try:
        assert len(cache) == 0
        assert _files_holding(tmp_path, _plain_hashes(texts)) == []
        digest = cache.digest(MODEL, texts[0])
        cache.put_many(MODEL, [(digest, vector)], owners=[("r", digest)])
        assert cache.get_many(MODEL, [digest]) == {digest: vector}
    finally:
        cache.close()
    # Reopened under the same key, the keyed entries stay.
    again = EmbeddingCache(path)
    assert len(again) == 1
    again.close()


def _write_plain_index(path: Path, records: dict[str, str]) -> None:
    """An index file as earlier versions wrote it: exact keys are the plain sha256 of the
    normalized text, no ``exact_scheme``."""
    config = DedupConfig()
    hasher = MinHasher(num_perm=config.num_perm, shingle_size=config.shingle_size, seed=config.seed)
    normalized = [normalize_text(text) for text in records.values()]
    sigs = hasher.signatures(normalized)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "CREATE TABLE records (seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL UNIQUE,"
            " language TEXT NOT NULL, exact_key BLOB NOT NULL, signature BLOB NOT NULL,"
            " text TEXT NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?)", [("generation", "3"), ("scheme", config.scheme())]
        )
        conn.executemany(
            "INSERT INTO records (record_id, language, exact_key, signature, text)"
            " VALUES (?, 'en', ?, ?, ?)",
            [
                (record_id, hashlib.sha256(norm.encode()).digest(), sig.tobytes(), text)
                for (record_id, text), norm, sig in zip(
                    records.items(), normalized, sigs, strict=True
                )
            ],
        )
    conn.close()


def test_an_index_with_plain_exact_keys_is_rekeyed_on_open(tmp_path: Path) -> None:
    path = tmp_path / DEDUP_FILE
    records = {HANDSHAKE.record_id: _dedup_text(HANDSHAKE), "rec-other": NYQUIST.output}
    _write_plain_index(path, records)
    plain = _plain_hashes([normalize_text(text) for text in records.values()])
    assert _files_holding(tmp_path, plain) == [DEDUP_FILE]

    with DedupIndex(path, embedder=None) as index:
        assert _files_holding(tmp_path, plain) == []
        copy = _dedup_text(HANDSHAKE).upper()
        [match] = index.find_duplicates([DedupItem("copy", copy, "en")])
        assert match is not None
        assert (match.record_id, match.method) == (HANDSHAKE.record_id, DuplicateMethod.EXACT)
    with sqlite3.connect(path) as conn:
        stored = dict(conn.execute("SELECT record_id, exact_key FROM records"))
        (generation,) = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    conn.close()
    key = load_cache_key(tmp_path)
    assert stored == {r: exact_key(normalize_text(t), key=key) for r, t in records.items()}
    assert int(generation) > 3  # open instances elsewhere reload the new keys


def test_a_replaced_key_rekeys_the_index_and_empties_the_embedding_cache(tmp_path: Path) -> None:
    text = _dedup_text(HANDSHAKE)
    with DedupIndex(tmp_path / DEDUP_FILE, embedder=None) as index:
        index.add([DedupItem("rec", text, "en")])
    cache = EmbeddingCache(tmp_path / EMBEDDINGS_FILE)
    digest = cache.digest(MODEL, text)
    cache.put_many(MODEL, [(digest, b"\x00" * 16)])
    cache.close()

    (tmp_path / CACHE_KEY_FILE).unlink()
    cache = EmbeddingCache(tmp_path / EMBEDDINGS_FILE)
    assert len(cache) == 0
    assert cache.digest(MODEL, text) != digest
    cache.close()
    with DedupIndex(tmp_path / DEDUP_FILE, embedder=None) as index:
        [match] = index.find_duplicates([DedupItem("copy", text, "en")])
    assert match is not None and (match.record_id, match.method) == ("rec", "exact")


def test_owners_must_name_one_record_per_text() -> None:
    with Embedder() as embedder, pytest.raises(ValueError, match="owners"):
        embedder.encode(["one", "two"], language="en", owners=["rec"])
