"""How envelopes and stream heads are written into Kafka records.

Log and family records: key = the stream id (UTF-8), value = the envelope's JSON (every hashed field
plus ``hash``; never the position, which is the record's offset + 1 in the log topic). Head records
(compacted topic): key = the stream id, value = ``{"version", "last_hash", "first_ts"}`` where
``first_ts`` is the Kafka timestamp (ms) of the stream's first record, from which a reader finds
where the stream starts in the log without scanning it all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger.eventlog.base import SealedFields, StreamHead
from ledger.events import Envelope

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class UnreadableRecord(ValueError):
    """A record's value is not an envelope (or head) this code can read."""


def encode_envelope(fields: SealedFields) -> bytes:
    (
        event_id,
        stream_id,
        sequence,
        event_type,
        schema_version,
        occurred_at,
        payload,
        prev,
        digest,
    ) = fields
    return _dumps(
        {
            "event_id": event_id,
            "stream_id": stream_id,
            "sequence": sequence,
            "event_type": event_type,
            "schema_version": schema_version,
            "occurred_at": occurred_at,
            "payload": payload,
            "prev_hash": prev,
            "hash": digest,
        }
    ).encode("utf-8")


def decode_envelope(value: bytes | None, *, position: int | None) -> Envelope:
    """The envelope in a record's value; raises :class:`UnreadableRecord`."""
    try:
        data: dict[str, Any] = json.loads(value) if value is not None else None  # type: ignore[assignment]
        return Envelope(
            data["event_id"],
            data["stream_id"],
            int(data["sequence"]),
            data["event_type"],
            int(data["schema_version"]),
            data["occurred_at"],
            data["payload"],
            data["prev_hash"],
            data["hash"],
            position,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not an envelope: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Head:
    """A stream's head as recorded in the heads topic."""

    version: int
    last_hash: str
    first_ts: int

    def stream_head(self) -> StreamHead:
        return StreamHead(self.version, self.last_hash)


def encode_head(head: Head) -> bytes:
    return _dumps(
        {"version": head.version, "last_hash": head.last_hash, "first_ts": head.first_ts}
    ).encode("utf-8")


def decode_head(value: bytes | None) -> Head:
    """The head in a record's value; raises :class:`UnreadableRecord`."""
    try:
        data: dict[str, Any] = json.loads(value) if value is not None else None  # type: ignore[assignment]
        return Head(int(data["version"]), str(data["last_hash"]), int(data["first_ts"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a stream head: {exc!r}") from exc
