"""The near-duplicate index: exact, reordered and reworded duplicates; no false alarms on records of
the same topic; persistence across instances and processes; erasure."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.governance.dedup import (
    DedupConfig,
    DedupIndex,
    DedupItem,
    DuplicateMethod,
    InvalidDedupConfig,
)
from ingest.governance.embeddings import Embedder
from ingest.governance.errors import GovernanceError
from ingest.governance.minhash import BandIndex, MinHasher, estimated_jaccard, normalize_text

REPO_ROOT = Path(__file__).resolve().parents[3]

EN = {
    "original": (
        "Explain the TCP three-way handshake.\n"
        "The client sends a SYN segment carrying its initial sequence number. The server answers "
        "with a SYN-ACK segment that acknowledges the client's number and announces its own "
        "initial sequence number. Finally the client sends an ACK, and the connection is "
        "established on both sides."
    ),
    "case_and_punctuation": (
        "EXPLAIN the TCP three way handshake!!\n"
        "The client sends a SYN segment, carrying its initial sequence number; the server answers "
        "with a SYN ACK segment that acknowledges the client's number and announces its own "
        "initial sequence number... Finally the client sends an ACK and the connection is "
        "established on both sides"
    ),
    "reordered": (
        "Explain the TCP three-way handshake.\n"
        "Finally the client sends an ACK, and the connection is established on both sides. The "
        "client sends a SYN segment carrying its initial sequence number. The server answers with "
        "a SYN-ACK segment that acknowledges the client's number and announces its own initial "
        "sequence number."
    ),
    "reworded": (
        "Describe how the three-way handshake of TCP works.\n"
        "First, the client transmits a SYN segment that carries its initial sequence number. The "
        "server replies with a SYN-ACK segment, acknowledging the client's number and announcing "
        "its own initial sequence number. Lastly the client sends an ACK, and the connection is "
        "then established on both sides."
    ),
}
EN_SAME_TOPIC = [
    "What happens when a TCP connection is closed?\n"
    "Each side closes its half of the connection independently. One end sends a FIN segment, the "
    "other acknowledges it with an ACK and later sends its own FIN, which is acknowledged in turn. "
    "The side that closed first waits in the TIME_WAIT state for twice the maximum segment "
    "lifetime.",
    "Why does TCP need three messages to open a connection instead of two?\n"
    "With only two messages the server could not know whether the client received its initial "
    "sequence number, so old duplicate SYN segments could open stale connections. The third "
    "message confirms that both sides agree on both sequence numbers.",
    "How does TCP flow control work?\n"
    "The receiver advertises a window: the number of bytes it can still buffer. The sender never "
    "has more unacknowledged bytes in flight than this window, so a slow receiver is not "
    "overwhelmed.",
    "What is TCP slow start?\n"
    "At the start of a connection the congestion window is small and grows by one segment for "
    "every acknowledgment, doubling each round trip, until it reaches the slow-start threshold or "
    "a loss is detected.",
]
ZH = {
    "original": (
        "解释TCP的三次握手过程。\n"
        "首先，客户端发送一个携带初始序列号的SYN报文段。服务器收到后回复SYN-ACK报文段，"
        "确认客户端的序列号并给出自己的初始序列号。最后客户端发送ACK报文段，双方的连接建立完成。"
    ),
    "case_and_punctuation": (
        "解释 tcp 的三次握手过程\n"
        "首先 客户端发送一个携带初始序列号的 syn 报文段；服务器收到后回复 syn ack 报文段，"
        "确认客户端的序列号并给出自己的初始序列号！最后客户端发送 ack 报文段 双方的连接建立完成"
    ),
    "reordered": (
        "解释TCP的三次握手过程。\n"
        "最后客户端发送ACK报文段，双方的连接建立完成。首先，客户端发送一个携带初始序列号的SYN报文段。"
        "服务器收到后回复SYN-ACK报文段，确认客户端的序列号并给出自己的初始序列号。"
    ),
    "reworded": (
        "请说明TCP三次握手是怎样进行的。\n"
        "第一步，客户端发出一个带有初始序列号的SYN报文段。服务器接着回复SYN-ACK报文段，"
        "对客户端的序列号进行确认，同时给出自己的初始序列号。最后由客户端发送ACK报文段，"
        "连接就在双方建立起来了。"
    ),
}
ZH_SAME_TOPIC = [
    "TCP连接是如何释放的？\n"
    "TCP连接的释放需要四次挥手。主动关闭的一方发送FIN报文段，对方回复ACK确认；随后对方也发送FIN"
    "报文段，主动关闭方再回复ACK。主动关闭方随后进入TIME_WAIT状态，等待两倍的最大报文段寿命。",
    "为什么TCP建立连接需要三次握手而不是两次？\n"
    "如果只有两次握手，服务器无法确认客户端是否收到了自己的初始序列号，网络中滞留的旧SYN报文段"
    "可能导致建立失效的连接。第三次握手让双方都确认了彼此的序列号。",
    "TCP的流量控制是怎样实现的？\n"
    "接收方在确认报文中通告接收窗口，即自己还能缓存的字节数。发送方在途未确认的数据量不超过这个窗口，"
    "因此接收方不会被过快的发送方淹没。",
    "什么是TCP慢启动？\n"
    "连接刚建立时拥塞窗口很小，每收到一个确认就增加一个报文段，每个往返时间大约翻倍，"
    "直到达到慢启动门限或检测到丢包为止。",
]
CORPUS = {"en": EN, "zh": ZH}
SAME_TOPIC = {"en": EN_SAME_TOPIC, "zh": ZH_SAME_TOPIC}


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    with Embedder() as shared:
        # Loading here keeps the one-off library import out of the first test's own timing.
        shared.warm_up(language="en")
        yield shared


def _index_with_original(path: Path, language: str, embedder: Embedder | None) -> DedupIndex:
    index = DedupIndex(path, embedder=embedder)
    index.add([DedupItem(f"{language}-original", CORPUS[language]["original"], language)])
    return index


# -- pure parts ------------------------------------------------------------------------------------


def test_normalization_folds_case_width_punctuation_and_spacing_but_keeps_symbols() -> None:
    assert normalize_text("  Hello,\tWORLD!!  ") == "hello world"
    assert normalize_text("ＴＣＰ，三次握手。") == "tcp三次握手"
    assert normalize_text("先发送 SYN 报文段， 再 ACK") == "先发送syn报文段再ack"
    assert normalize_text("x+y=1") != normalize_text("x-y=1")


def test_minhash_estimate_tracks_the_true_jaccard_similarity() -> None:
    hasher = MinHasher(num_perm=192, shingle_size=1, seed=7)
    words = [f"w{i}" for i in range(600)]
    for overlap in (50, 150, 300):
        left = words[:300]
        right = words[300 - overlap : 600 - overlap]
        truth = len(set(left) & set(right)) / len(set(left) | set(right))
        sigs = hasher.signatures([" ".join(left), " ".join(right)])
        assert estimated_jaccard(sigs[:1], sigs[1:])[0] == pytest.approx(truth, abs=0.08)


def test_band_index_finds_shared_keys_before_and_after_merging() -> None:
    bands = BandIndex()
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 2**63, size=(3000, 64), dtype=np.uint64)
    bands.add(stored[:10], np.arange(10))
    bands.add(stored[10:], np.arange(10, 3000))  # large enough to be merged into the main array
    query = rng.integers(0, 2**63, size=(3, 64), dtype=np.uint64)
    query[0, 5] = stored[7, 5]
    query[2, 60] = stored[2500, 60]
    rows, owners = bands.lookup(query)
    assert list(zip(rows.tolist(), owners.tolist(), strict=True)) == [(0, 7), (2, 2500)]


def test_invalid_configs_are_rejected() -> None:
    with pytest.raises(InvalidDedupConfig):
        DedupConfig(lsh_bands=100, lsh_rows=3, num_perm=128)
    with pytest.raises(InvalidDedupConfig):
        DedupConfig(minhash_threshold=1.5)
    with pytest.raises(InvalidDedupConfig) as caught:
        DedupConfig(embedding_min_jaccard=0.8, minhash_threshold=0.7)
    assert isinstance(caught.value, GovernanceError)


# -- exact and MinHash stages (no model) -----------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
def test_case_and_punctuation_changes_are_exact_duplicates(tmp_path: Path, language: str) -> None:
    with _index_with_original(tmp_path / "dedup.db", language, None) as index:
        text = CORPUS[language]["case_and_punctuation"]
        [match] = index.find_duplicates([DedupItem("copy", text, language)])
    assert match is not None
    assert (match.record_id, match.method, match.similarity) == (
        f"{language}-original",
        DuplicateMethod.EXACT,
        1.0,
    )


@pytest.mark.parametrize("language", ["en", "zh"])
def test_reordered_sentences_are_minhash_duplicates(tmp_path: Path, language: str) -> None:
    with _index_with_original(tmp_path / "dedup.db", language, None) as index:
        text = CORPUS[language]["reordered"]
        [match] = index.find_duplicates([DedupItem("reordered", text, language)])
    assert match is not None
    assert (match.record_id, match.method) == (f"{language}-original", "minhash")
    assert match.similarity >= 0.8


def test_earlier_items_of_the_same_call_count_and_a_record_never_matches_itself(
    tmp_path: Path,
) -> None:
    with DedupIndex(tmp_path / "dedup.db", embedder=None) as index:
        items = [
            DedupItem("a", EN["original"], "en"),
            DedupItem("b", EN_SAME_TOPIC[0], "en"),
            DedupItem("c", EN["reordered"], "en"),
            DedupItem("d", EN["case_and_punctuation"], "en"),
        ]
        matches = index.find_duplicates(items)
        assert [None if m is None else (m.record_id, m.method) for m in matches] == [
            None,
            None,
            ("a", "minhash"),
            ("a", "exact"),
        ]
        index.add(items[:2])
        # Stored records re-checked under their own id are not duplicates of themselves.
        assert index.find_duplicates(items[:2]) == [None, None]


def test_add_is_idempotent_by_record_id(tmp_path: Path) -> None:
    with DedupIndex(tmp_path / "dedup.db", embedder=None) as index:
        first = DedupItem("a", EN["original"], "en")
        assert index.add([first, first]) == 1
        assert index.add([first, DedupItem("b", EN_SAME_TOPIC[0], "en")]) == 1
        assert len(index) == 2
        assert "a" in index


def test_index_survives_a_restart_and_is_read_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "dedup.db"
    with DedupIndex(path, embedder=None) as index:
        index.add([DedupItem("en-original", EN["original"], "en")])
        index.add([DedupItem("zh-original", ZH["original"], "zh")])

    with DedupIndex(path, embedder=None) as reopened:
        assert len(reopened) == 2
        [match] = reopened.find_duplicates([DedupItem("x", ZH["reordered"], "zh")])
        assert match is not None and match.record_id == "zh-original"

    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from ingest.governance.dedup import DedupIndex, DedupItem\n"
        "index = DedupIndex(Path(sys.argv[1]), embedder=None)\n"
        "[m] = index.find_duplicates([DedupItem('y', sys.argv[2], 'en')])\n"
        "print(json.dumps([len(index), m.record_id, m.method]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), EN["reordered"]],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
    )
    assert json.loads(done.stdout) == [2, "en-original", "minhash"]


def test_a_second_instance_sees_records_added_by_the_first(tmp_path: Path) -> None:
    path = tmp_path / "dedup.db"
    with DedupIndex(path, embedder=None) as writer, DedupIndex(path, embedder=None) as reader:
        assert reader.find_duplicates([DedupItem("x", EN["reordered"], "en")]) == [None]
        writer.add([DedupItem("en-original", EN["original"], "en")])
        [match] = reader.find_duplicates([DedupItem("x", EN["reordered"], "en")])
        assert match is not None and match.record_id == "en-original"
        writer.remove("en-original")
        assert reader.find_duplicates([DedupItem("x", EN["reordered"], "en")]) == [None]


def test_remove_erases_the_record_and_its_text(tmp_path: Path) -> None:
    path = tmp_path / "dedup.db"
    with _index_with_original(path, "en", None) as index:
        marker = b"TIME_WAIT state for twice"
        index.add([DedupItem("to-erase", EN_SAME_TOPIC[0], "en")])
        assert index.remove("to-erase") is True
        on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert marker not in on_disk

        assert index.remove("en-original") is True
        assert index.remove("en-original") is False
        assert len(index) == 0
        assert index.find_duplicates([DedupItem("x", EN["original"], "en")]) == [None]
        # The same text can be accepted again under a new id.
        assert index.add([DedupItem("again", EN["original"], "en")]) == 1
    with sqlite3.connect(path) as conn:
        texts = [row[0] for row in conn.execute("SELECT record_id FROM records")]
    assert texts == ["again"]


def test_a_changed_signature_scheme_rebuilds_stored_signatures(tmp_path: Path) -> None:
    path = tmp_path / "dedup.db"
    with _index_with_original(path, "en", None):
        pass
    changed = DedupConfig(shingle_size=3, seed=99)
    with DedupIndex(path, embedder=None, config=changed) as index:
        [match] = index.find_duplicates([DedupItem("x", EN["reordered"], "en")])
    assert match is not None and (match.record_id, match.method) == ("en-original", "minhash")


# -- embedding stage -------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
def test_reworded_duplicates_are_caught_by_embeddings(
    tmp_path: Path, language: str, embedder: Embedder
) -> None:
    with _index_with_original(tmp_path / "dedup.db", language, embedder) as index:
        text = CORPUS[language]["reworded"]
        [match] = index.find_duplicates([DedupItem("reworded", text, language)])
    assert match is not None
    assert (match.record_id, match.method) == (f"{language}-original", "embedding")
    assert match.similarity >= index.config.embedding_threshold


@pytest.mark.parametrize("language", ["en", "zh"])
def test_distinct_records_on_the_same_topic_are_not_flagged(
    tmp_path: Path, language: str, embedder: Embedder
) -> None:
    with _index_with_original(tmp_path / "dedup.db", language, embedder) as index:
        items = [
            DedupItem(f"{language}-topic-{k}", text, language)
            for k, text in enumerate(SAME_TOPIC[language])
        ]
        assert index.find_duplicates(items) == [None] * len(items)
        index.add(items)
        assert len(index) == 1 + len(items)


def test_translations_are_not_compared_across_models(tmp_path: Path, embedder: Embedder) -> None:
    with _index_with_original(tmp_path / "dedup.db", "en", embedder) as index:
        assert index.find_duplicates([DedupItem("zh", ZH["original"], "zh")]) == [None]


def test_remove_forgets_the_cached_embedding(tmp_path: Path) -> None:
    with Embedder() as fresh, _index_with_original(tmp_path / "dedup.db", "en", fresh) as index:
        [match] = index.find_duplicates([DedupItem("reworded", EN["reworded"], "en")])
        assert match is not None and match.method == "embedding"
        cached_before = fresh.cached_count()
        index.remove("en-original")
        assert fresh.cached_count() == cached_before - 1
