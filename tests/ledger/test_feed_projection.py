"""The feed projection on a real SQLite log and state database: entries at their anchor's
position, tombstones at their erasure's, cursors that split a batch, filters, and replay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.application import CorpusLedger
from ledger.errors import InvalidRequest
from ledger.events import BatchAnchored
from ledger.ids import batch_stream
from ledger.projections.feed import FeedCursor, FeedFilter
from tests.ledger.test_application import anchor, close, govern, open_ledger, register_bupt, submit


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[CorpusLedger]:
    ledger = open_ledger(tmp_path / "events.db", tmp_path / "state.db")
    register_bupt(ledger)
    yield ledger
    close(ledger)


def read_all(ledger: CorpusLedger, *, limit: int, where: FeedFilter | None = None) -> list[dict]:
    cursor, out = FeedCursor(), []
    while True:
        page = ledger.feed_page(after=cursor, limit=limit, where=where or FeedFilter())
        out += [item.to_dict() for item in page.items]
        cursor = page.next_cursor
        if page.at_head:
            return out


def test_records_enter_at_their_anchor_and_leave_as_tombstones(ledger: CorpusLedger) -> None:
    first = submit(ledger, n=4)
    accepted = govern(ledger, first)
    assert ledger.feed_page(after=FeedCursor(), limit=10, where=FeedFilter()).items == []
    anchor(ledger, first)
    anchored_at = ledger.log.head_position()

    page = ledger.feed_page(after=FeedCursor(), limit=10, where=FeedFilter())
    assert [i.entry.record_id for i in page.items] == accepted  # the rejected one never enters
    assert {i.entry.position for i in page.items} == {anchored_at}
    entry = page.items[0].to_dict()
    assert entry["type"] == "record" and entry["batch_id"] == first
    assert entry["record"] == ledger.record(accepted[0]).record
    assert "salt" not in entry and "salt" not in entry["record"]
    assert page.at_head and str(page.next_cursor) == str(ledger.log.head_position())

    ledger.erase(accepted[1], reason="withdrawn", requested_by="bupt")
    erased_at = ledger.log.head_position()
    entries = read_all(ledger, limit=2)
    assert [(e["type"], e["record_id"]) for e in entries] == [
        ("record", accepted[0]),
        ("record", accepted[2]),
        ("erased", accepted[1]),
    ]
    assert entries[-1]["position"] == erased_at and entries[-1]["erased_at"]
    assert set(entries[-1]) == {"type", "record_id", "position", "erased_at"}


def test_a_cursor_inside_a_batch_neither_skips_nor_repeats(ledger: CorpusLedger) -> None:
    batch = submit(ledger, n=6)
    accepted = govern(ledger, batch)
    anchor(ledger, batch)

    first = ledger.feed_page(after=FeedCursor(), limit=2, where=FeedFilter())
    assert not first.at_head and "." in str(first.next_cursor)  # the batch goes on at this position
    resumed = FeedCursor.parse(str(first.next_cursor))
    rest = ledger.feed_page(after=resumed, limit=10, where=FeedFilter())
    seen = [i.entry.record_id for i in first.items + rest.items]
    assert seen == accepted
    # The last entry of a position gives a plain log position as its cursor.
    assert str(rest.items[-1].cursor) == str(rest.items[-1].entry.position)


def test_a_record_erased_before_its_anchor_never_enters(ledger: CorpusLedger) -> None:
    batch = submit(ledger, n=3)
    accepted = govern(ledger, batch)
    ledger.erase(accepted[0], reason="withdrawn", requested_by="bupt")
    anchor(ledger, batch)
    assert [e["record_id"] for e in read_all(ledger, limit=10)] == accepted[1:]


def test_a_second_anchor_of_a_batch_adds_nothing(ledger: CorpusLedger) -> None:
    batch = submit(ledger, n=3)
    govern(ledger, batch)
    anchor(ledger, batch)
    before = read_all(ledger, limit=10)
    view = ledger.batch(batch)
    ledger.append(
        batch_stream(batch),
        [
            BatchAnchored(
                batch_id=batch,
                merkle_root=view.merkle_root,
                metadata_hash=view.metadata_hash,
                chain_id=31337,
                contract_address="0x" + "22" * 20,
                tx_hash="0x" + "ce" * 32,
                block_number=8,
            )
        ],
    )
    assert read_all(ledger, limit=10) == before


def test_filters_select_records_and_their_tombstones(ledger: CorpusLedger) -> None:
    batch = submit(ledger, n=5)  # even indexes are information_theory
    accepted = govern(ledger, batch)
    anchor(ledger, batch)
    theory = FeedFilter(discipline="information_theory")
    ids = [e["record_id"] for e in read_all(ledger, limit=10, where=theory)]
    assert ids == [accepted[0], accepted[2]]
    ledger.erase(accepted[2], reason="withdrawn", requested_by="bupt")
    ledger.erase(accepted[1], reason="withdrawn", requested_by="bupt")
    tail = read_all(ledger, limit=10, where=theory)
    assert [(e["type"], e["record_id"]) for e in tail] == [
        ("record", accepted[0]),
        ("erased", accepted[2]),
    ]
    assert read_all(ledger, limit=10, where=FeedFilter(institution_id="xidian")) == []
    assert read_all(ledger, limit=10, where=FeedFilter(task_type="concept_explanation"))
    assert read_all(ledger, limit=10, where=FeedFilter(language="zh")) == []
    assert (
        read_all(ledger, limit=10, where=FeedFilter(accepted_since="2999-01-01T00:00:00+00:00"))
        == []
    )


def test_replay_rebuilds_the_feed_exactly(ledger: CorpusLedger) -> None:
    batch = submit(ledger, n=4)
    accepted = govern(ledger, batch)
    anchor(ledger, batch)
    ledger.erase(accepted[0], reason="withdrawn", requested_by="bupt")
    report = ledger.replay()
    assert report.differences == {}
    assert report.tables["feed_entries"] == len(accepted) + 1
    assert "feed_members" in report.tables


@pytest.mark.parametrize("text", ["-1", "abc", "1.2.3", "01", " ", "9" * 30, "1."])
def test_a_malformed_cursor_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor") as refused:
        FeedCursor.parse(text)
    assert text.strip() == "" or text not in str(refused.value).replace("42", "")
