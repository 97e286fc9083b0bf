"""Erasure at the ledger level on real SQLite files: the text, salt and unsalted hash leave every
file, the other records still prove, replay stays equal; and an old (schema 1) log is re-sealed so
that its text becomes erasable, with every root, leaf and earlier bundle unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.application import CorpusLedger, ErasedRecord, NotFound
from ledger.audit import verify_offline
from ledger.batching import RecordInput, build_batch
from ledger.eventlog.sqlite import SQLiteEventLog
from ledger.events import ZERO_HASH, CorpusBatchSubmitted, Envelope, envelope_hash
from ledger.ids import batch_stream
from ledger.projections.batches import RecordStatus
from ledger.projections.feed import FeedCursor, FeedFilter
from ledger.recordstore import RecordBody, SqliteRecordStore
from ledger.reseal import ResealError, reseal_sqlite_log
from tests.ledger.test_application import (
    anchor,
    canonical,
    close,
    govern,
    open_ledger,
    register_bupt,
    submit,
)


def secrets_of(ledger: CorpusLedger, record_id: str) -> list[bytes]:
    """What must not survive an erasure, as bytes: the text fields, the salt and the unsalted
    hash (hex with and without 0x, and raw)."""
    view = ledger.record(record_id)
    assert view.record is not None and view.salt is not None and view.record_hash is not None
    out = [view.record[name].encode("utf-8") for name in ("instruction", "output")]
    for value in (view.salt, view.record_hash):
        out += [value.encode(), value[2:].encode(), bytes.fromhex(value[2:])]
    return out


def hits(folder: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``folder`` that holds any of ``needles``."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.name}: {n[:24]!r}" for n in needles if n in data]
    return found


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def open_home(home: Path) -> CorpusLedger:
    ledger = open_ledger(home / "events.db", home / "state.db")
    ledger.sync()
    return ledger


def test_erasure_removes_text_salt_and_hash_from_every_file(home: Path) -> None:
    ledger = open_home(home)
    register_bupt(ledger)
    batch_id = submit(ledger, n=4)
    govern(ledger, batch_id)
    anchor(ledger, batch_id)
    records = ledger.records(batch_id)
    victim, others = records[1].record_id, [r.record_id for r in records if r.index != 1]
    needles = secrets_of(ledger, victim)
    assert hits(home, needles), "the scan must see the body before the erasure"
    bundles_before = {i: ledger.proof(i) for i in others}

    erasure = ledger.erase(victim, reason="withdrawn by the author", requested_by="bupt")

    assert not erasure.already_erased and erasure.body_removed
    assert erasure.requested_by == "bupt" and erasure.reason == "withdrawn by the author"
    assert hits(home, needles) == []
    view = ledger.record(victim)
    assert view.status == RecordStatus.ERASED and view.erased_at == erasure.erased_at
    assert view.record is None and view.salt is None and view.record_hash is None
    with pytest.raises(ErasedRecord, match="was erased at"):
        ledger.proof(victim)
    for record_id in others:
        bundle = ledger.proof(record_id)
        assert bundle == bundles_before[record_id]
        assert verify_offline(bundle).ok
    assert victim not in [r.record_id for r, _ in ledger.accepted_feed()]
    assert ledger.replay().equal

    again = ledger.erase(victim, reason="second request", requested_by="bupt")
    assert again.already_erased and not again.body_removed
    assert again.reason == "withdrawn by the author"  # the first erasure stands
    assert len([e for e in ledger.log.read_stream(batch_stream(batch_id))]) == 4
    with pytest.raises(NotFound):
        ledger.erase("rec_" + "0" * 20, reason="x", requested_by="bupt")
    close(ledger)

    reopened = open_home(home)
    assert reopened.record(victim).status == RecordStatus.ERASED
    assert reopened.replay().equal
    close(reopened)


def test_a_dialogue_is_stored_fed_proved_and_erased_turn_by_turn(home: Path) -> None:
    ledger = open_home(home)
    register_bupt(ledger)
    dialogue = {
        **canonical(7),
        "system": "You tutor a channel coding course.",
        "history": [
            ["What does a parity bit detect?", "Any single flipped bit in the protected word."],
            ["Can it correct the error too?", "No: it says that a bit flipped, not which one."],
        ],
    }
    submitted = ledger.submit_batch(
        institution_id="bupt",
        source_name="dialogue.jsonl",
        records=[RecordInput(canonical=dialogue), RecordInput(canonical=canonical(8))],
        policy_version="test-1",
    )
    govern(ledger, submitted.batch_id)  # accepts the dialogue, rejects the last record
    anchor(ledger, submitted.batch_id)
    victim = submitted.record_ids[0]
    assert ledger.record(victim).record == dialogue
    (fed,) = [view for view, _ in ledger.accepted_feed()]
    assert fed.record == dialogue
    page = ledger.feed_page(after=FeedCursor(), limit=10, where=FeedFilter())
    assert [item.record for item in page.items] == [dialogue]
    bundle = ledger.proof(victim)
    assert bundle.record["history"] == dialogue["history"] and verify_offline(bundle).ok
    close(ledger)

    ledger = open_home(home)  # the body read back from records.db
    assert ledger.record(victim).record == dialogue
    # The JSON form every store keeps (and the Kafka records topic carries) keeps the turns.
    body = SqliteRecordStore(home / "records.db")
    stored = body.get(victim)
    body.close()
    assert stored is not None and RecordBody.from_json(stored.to_json()) == stored
    assert stored.record == dialogue
    turns = [text for pair in dialogue["history"] for text in pair] + [dialogue["system"]]
    needles = [text.encode("utf-8") for text in turns] + secrets_of(ledger, victim)
    assert hits(home, needles), "the scan must see the turns before the erasure"
    ledger.erase(victim, reason="withdrawn by the author", requested_by="bupt")
    assert hits(home, needles) == []
    assert ledger.replay().equal
    close(ledger)


def test_a_failed_append_leaves_no_body_behind(home: Path) -> None:
    ledger = open_home(home)
    register_bupt(ledger)
    batch_id = submit(ledger, n=2)
    bodies = SqliteRecordStore(home / "records.db")
    stored = len(bodies)
    with pytest.raises(Exception, match="version"):
        ledger.submit_batch(
            institution_id="bupt",
            source_name="again.jsonl",
            records=[RecordInput(canonical=canonical(9))],
            policy_version="test-1",
            batch_id=batch_id,  # the stream exists: the conditional append fails
        )
    assert len(bodies) == stored
    bodies.close()
    close(ledger)


# -- old logs -----------------------------------------------------------------------------------


def write_schema_1_log(path: Path, ledger_clock_batch: int = 3) -> dict[str, object]:
    """A log as written before the record store: the institution and one batch whose
    ``CorpusBatchSubmitted`` (schema 1) carries every record's text, salt and hash."""
    from datetime import UTC, datetime

    from ledger.events import InstitutionRegistered

    built = build_batch(
        batch_id="b" * 32,
        institution_id="bupt",
        source_name="old.jsonl",
        records=[RecordInput(canonical=canonical(i)) for i in range(ledger_clock_batch)],
        rejected_at_intake=[],
        policy_version="test-1",
        submitted_at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    bodies = {b.record_id: b for b in built.bodies}
    payload = built.event.model_dump(mode="json")
    payload["records"] = [
        {
            "record_id": r["record_id"],
            "index": r["index"],
            "source_line": r["source_line"],
            "record": bodies[r["record_id"]].record,
            "salt": bodies[r["record_id"]].salt,
            "record_hash": bodies[r["record_id"]].record_hash,
            "leaf": r["leaf"],
            "redactions": r["redactions"],
        }
        for r in payload["records"]
    ]
    registered = InstitutionRegistered(
        institution_id="bupt", name="BUPT", account="0x" + "11" * 20
    ).model_dump(mode="json")
    rows, heads = [], {}
    for i, (stream, event_type, payload_i) in enumerate(
        [
            ("institution-bupt", "InstitutionRegistered", registered),
            (batch_stream(built.event.batch_id), CorpusBatchSubmitted.event_type, payload),
        ]
    ):
        env = Envelope(
            f"evt{i}",
            stream,
            1,
            event_type,
            1,
            "2026-01-05T00:00:00+00:00",
            payload_i,
            ZERO_HASH,
            "",
        )
        digest = envelope_hash(env.hashed_fields())
        rows.append((*env.hashed_fields().values(), digest))
        heads[stream] = (1, digest)
    log = SQLiteEventLog(path)
    log.import_sealed(rows, heads)
    log.close()
    return {"batch_id": built.event.batch_id, "root": built.event.merkle_root, "bodies": bodies}


def test_an_old_log_is_read_through_the_upcaster_and_resealed_erasable(home: Path) -> None:
    old = write_schema_1_log(home / "events.db")
    ledger = open_home(home)
    batch_id = str(old["batch_id"])
    records = ledger.records(batch_id)
    assert len(records) == 3
    assert [r.record for r in records] == [
        old["bodies"][r.record_id].record  # type: ignore[index]
        for r in records
    ]
    assert ledger.batch_tree(batch_id).root_hex == old["root"]
    bundles = {r.record_id: ledger.proof(r.record_id) for r in records}
    assert all(verify_offline(b).ok for b in bundles.values())
    victim = records[0].record_id
    needles = secrets_of(ledger, victim)
    erasure = ledger.erase(victim, reason="withdrawn", requested_by="operator")
    assert erasure.legacy_text_in_log  # the old log still holds it: re-sealing is needed
    assert any(h.startswith("events.db") for h in hits(home, needles))
    close(ledger)

    bodies = SqliteRecordStore(home / "records.db")
    report = reseal_sqlite_log(home / "events.db", records=bodies)
    assert not report.already_sealed
    assert (report.batches_rewritten, report.bodies_moved, report.erased_dropped) == (1, 2, 1)
    assert reseal_sqlite_log(home / "events.db", records=bodies).already_sealed
    bodies.close()
    for suffix in ("", "-wal", "-shm"):
        (home / f"state.db{suffix}").unlink(missing_ok=True)

    resealed = open_home(home)
    assert resealed.log.verify_integrity().ok
    assert hits(home, needles) == []
    assert resealed.record(victim).status == RecordStatus.ERASED
    for record_id, bundle in bundles.items():
        if record_id != victim:
            assert resealed.proof(record_id) == bundle
    assert resealed.replay().equal
    assert not resealed.erase(victim, reason="again", requested_by="operator").legacy_text_in_log
    close(resealed)


def test_reseal_refuses_a_body_that_does_not_match_its_leaf(home: Path) -> None:
    write_schema_1_log(home / "events.db")
    log = SQLiteEventLog(home / "events.db")
    with log._connection() as conn:  # tamper with the stored text, as a careless edit would
        (payload,) = conn.execute(
            "SELECT payload FROM events WHERE event_type = 'CorpusBatchSubmitted'"
        ).fetchone()
        conn.execute(
            "UPDATE events SET payload = ? WHERE event_type = 'CorpusBatchSubmitted'",
            (payload.replace("channel coding", "channel decoding", 1),),
        )
        conn.commit()
    log.close()
    before = [e.hashed_fields() for e in SQLiteEventLog(home / "events.db").read_all()]
    bodies = SqliteRecordStore(home / "records.db")
    with pytest.raises(ResealError, match="does not hash to its record_hash"):
        reseal_sqlite_log(home / "events.db", records=bodies)
    assert len(bodies) == 0
    bodies.close()
    assert [e.hashed_fields() for e in SQLiteEventLog(home / "events.db").read_all()] == before
    assert not (home / "events.db.reseal").exists()
