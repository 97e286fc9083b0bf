"""Re-sealing an embedded event log written before the record store (``byr reseal``).

Schema 1 of ``CorpusBatchSubmitted`` kept each record's text, salt and unsalted hash inside the
immutable log, where erasure cannot reach them. Re-sealing copies the log into a new file, event by
event, in the same order, with the same event ids, streams, sequences and timestamps; every schema-1
submission is rewritten as schema 2 (record id, leaf, index and non-text metadata only) and its
bodies move to the record store. Records erased before the re-seal are not moved: their text goes
with the old file. The per-stream hash chain is sealed again over the new payloads.

It is *verified* before anything is replaced: every moved body must hash to its ``record_hash``
(RFC 8785 + sha256) and, with its salt, to the leaf the log holds; every batch's leaves must
rebuild the Merkle root the log (and the chain) holds; the new log must pass its own integrity
check. Only then is the old file overwritten with zeros and replaced. Roots, leaves, record ids and
anchors do not change, so every proof bundle issued before still verifies, and the on-chain anchors
stay valid. The state database is derived and is rebuilt from the new log afterwards.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger.canonical import CanonicalError, record_hash
from ledger.errors import LedgerError
from ledger.eventlog.sqlite import SQLiteEventLog
from ledger.events import (
    ZERO_HASH,
    CorpusBatchSubmitted,
    Envelope,
    RecordErased,
    decode,
    envelope_hash,
)
from ledger.merkle import MerkleError, StandardMerkleTree, leaf_hash, parse_bytes32, to_hex
from ledger.recordstore import RecordBody, RecordStore

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


class ResealError(LedgerError):
    """The log cannot be re-sealed as it is; nothing was replaced."""


@dataclass(frozen=True, slots=True)
class ResealReport:
    events: int
    """Events copied."""
    batches_rewritten: int
    """Schema-1 submissions rewritten without text."""
    bodies_moved: int
    """Record bodies moved into the record store."""
    erased_dropped: int
    """Bodies of records erased before the re-seal, left behind with the old file."""
    already_sealed: bool
    """The log had no schema-1 submission; nothing was changed."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reseal_sqlite_log(path: Path, *, records: RecordStore) -> ResealReport:
    """Re-seal the SQLite event log at ``path``, moving schema-1 bodies into ``records``.

    No other process may write to the log meanwhile (stop the workers and the server first).
    Raises :class:`ResealError` when a body or a root does not verify; the old log is then kept.
    """
    if not path.exists():
        raise ResealError(f"no event log at {path}")
    old = SQLiteEventLog(path)
    try:
        envelopes = list(old.read_all())
    finally:
        old.close()
    if not any(
        e.event_type == CorpusBatchSubmitted.event_type
        and e.schema_version < CorpusBatchSubmitted.schema_version
        for e in envelopes
    ):
        return ResealReport(len(envelopes), 0, 0, 0, already_sealed=True)

    erased = {
        event.record_id
        for e in envelopes
        if e.event_type == RecordErased.event_type and isinstance(event := decode(e), RecordErased)
    }
    staging = path.with_name(path.name + ".reseal")
    _remove_database(staging, wipe=False)
    rows: list[tuple[Any, ...]] = []
    heads: dict[str, tuple[int, str]] = {}
    bodies: list[RecordBody] = []
    rewritten = dropped = 0
    for envelope in envelopes:
        schema_version, payload = envelope.schema_version, dict(envelope.payload)
        if (
            envelope.event_type == CorpusBatchSubmitted.event_type
            and schema_version < CorpusBatchSubmitted.schema_version
        ):
            batch_bodies, payload, batch_dropped = _rewrite_submission(envelope, erased)
            bodies += batch_bodies
            dropped += batch_dropped
            schema_version = CorpusBatchSubmitted.schema_version
            rewritten += 1
        prev_hash = heads.get(envelope.stream_id, (0, ZERO_HASH))[1]
        sealed = Envelope(
            envelope.event_id,
            envelope.stream_id,
            envelope.sequence,
            envelope.event_type,
            schema_version,
            envelope.occurred_at,
            payload,
            prev_hash,
            "",
        )
        digest = envelope_hash(sealed.hashed_fields())
        heads[envelope.stream_id] = (envelope.sequence, digest)
        rows.append((*sealed.hashed_fields().values(), digest))

    new = SQLiteEventLog(staging)
    try:
        new.import_sealed(rows, heads)
        report = new.verify_integrity()
        if not report.ok:
            raise ResealError(f"the re-sealed log does not pass its integrity check: {report}")
        if new.head_position() != len(envelopes):
            raise ResealError("the re-sealed log does not hold every event")
    except BaseException:
        new.close()
        _remove_database(staging, wipe=True)
        raise
    new.close()
    # Bodies first: if anything stops here, the old log still holds them and can be re-sealed.
    records.put_many(bodies)
    _remove_database(path, wipe=True)
    os.replace(staging, path)
    return ResealReport(len(envelopes), rewritten, len(bodies), dropped, already_sealed=False)


def _rewrite_submission(
    envelope: Envelope, erased: set[str]
) -> tuple[list[RecordBody], dict[str, Any], int]:
    event = decode(envelope)
    assert isinstance(event, CorpusBatchSubmitted)
    bodies: list[RecordBody] = []
    dropped = 0
    leaves: list[str] = []
    for entry in sorted(event.records, key=lambda e: e.index):
        leaves.append(entry.leaf)
        legacy = entry.legacy
        if legacy is None:
            continue
        where = f"batch {event.batch_id}, record {entry.record_id}"
        try:
            computed = to_hex(record_hash(legacy.record))
            leaf = leaf_hash(parse_bytes32(legacy.record_hash), parse_bytes32(legacy.salt))
        except (CanonicalError, MerkleError) as exc:
            raise ResealError(f"{where}: the stored body is malformed ({exc})") from exc
        if computed != legacy.record_hash.lower():
            raise ResealError(f"{where}: the record does not hash to its record_hash")
        if to_hex(leaf) != entry.leaf.lower():
            raise ResealError(f"{where}: record_hash and salt do not give the stored leaf")
        if entry.record_id in erased:
            dropped += 1
            continue
        bodies.append(
            RecordBody(
                record_id=entry.record_id,
                batch_id=event.batch_id,
                record=dict(legacy.record),
                salt=legacy.salt,
                record_hash=legacy.record_hash,
            )
        )
    try:
        root = StandardMerkleTree.from_leaves(leaves).root_hex
    except MerkleError as exc:
        raise ResealError(f"batch {event.batch_id}: its leaves are malformed ({exc})") from exc
    if root != event.merkle_root.lower():
        raise ResealError(f"batch {event.batch_id}: the leaves do not rebuild the batch root")
    payload = event.model_dump(mode="json")
    for record in payload["records"]:
        record.pop("legacy", None)
    return bodies, payload, dropped


def wipe_database(path: Path) -> None:
    """Overwrite a SQLite database and its companion files with zeros, then delete them."""
    _remove_database(path, wipe=True)


def _remove_database(path: Path, *, wipe: bool) -> None:
    """Delete a SQLite database and its companion files, first overwriting them with zeros when
    ``wipe`` (so the text does not linger in the freed blocks of a plain file system; copy-on-write
    file systems and SSD remapping are beyond what a program can reach)."""
    for candidate in (path, *(path.with_name(path.name + s) for s in _SQLITE_COMPANIONS)):
        if not candidate.exists():
            continue
        if wipe:
            size = candidate.stat().st_size
            with candidate.open("r+b") as handle:
                remaining = size
                while remaining > 0:
                    chunk = min(remaining, 1 << 20)
                    handle.write(b"\0" * chunk)
                    remaining -= chunk
                handle.flush()
                os.fsync(handle.fileno())
        candidate.unlink()


__all__ = ["ResealError", "ResealReport", "reseal_sqlite_log", "wipe_database"]
