"""Submissions answered ``202 Accepted``: the batch is read and recorded after the answer.

``POST /v1/batches`` with ``Prefer: respond-async`` (RFC 7240) answers at once with a status URL,
``/v1/submissions/{id}``; intake and recording then run in the server, in the same two steps as a
synchronous submission (intake outside the writer's turn, recording inside it). The received bytes
are held in memory until intake has desensitized them and are never written to disk, so a server
that stops before recording loses the submission (its status URL then answers 404): resubmit.
The server keeps the last :data:`KEEP` submissions' outcomes.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

KEEP = 1000


class SubmissionStatus(StrEnum):
    QUEUED = "queued"
    READING = "reading"
    RECORDING = "recording"
    DONE = "done"
    FAILED = "failed"


@dataclass(slots=True)
class TrackedSubmission:
    submission_id: str
    institution_id: str
    key_id: str
    source_name: str
    status: SubmissionStatus = SubmissionStatus.QUEUED
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    http_status: int | None = None
    """What the synchronous request would have answered (201, or the error's status)."""
    result: dict[str, Any] | None = None
    """The submission document (201), or the error body."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "institution_id": self.institution_id,
            "source_name": self.source_name,
            "status": self.status.value,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "http_status": self.http_status,
            "result": self.result,
            "status_url": f"/v1/submissions/{self.submission_id}",
        }


class SubmissionTracker:
    """The submissions of one server process, newest last, at most :data:`KEEP`."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, TrackedSubmission] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, *, institution_id: str, key_id: str, source_name: str) -> TrackedSubmission:
        item = TrackedSubmission(
            submission_id="sub_" + secrets.token_hex(10),
            institution_id=institution_id,
            key_id=key_id,
            source_name=source_name,
        )
        with self._lock:
            self._items[item.submission_id] = item
            while len(self._items) > KEEP:
                self._items.popitem(last=False)
        return item

    def get(self, submission_id: str) -> TrackedSubmission | None:
        with self._lock:
            return self._items.get(submission_id)

    def finish(self, item: TrackedSubmission, *, http_status: int, result: dict[str, Any]) -> None:
        with self._lock:
            item.status = SubmissionStatus.DONE if http_status < 400 else SubmissionStatus.FAILED
            item.http_status = http_status
            item.result = result
            item.finished_at = datetime.now(UTC).isoformat()
