"""Erasing a record for good (``byr erase``, ``DELETE /v1/records/{id}``).

:meth:`CorpusLedger.erase` appends ``RecordErased`` and deletes the body from the record store;
this service checks who may ask and why, then purges the copies this home's governance keeps (the
near-duplicate index entry and every cached embedding of the record), and reports what went.
Governance workers with homes of their own purge their copies at their next step (see
:meth:`ingest.governance.service.GovernanceService.purge_erased`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.services.keys import NotAuthorized
from ledger.application import CorpusLedger
from ledger.errors import InvalidRequest

MAX_REASON_CHARS = 500

OPERATOR = "operator"
"""Who erases when no institution is named: whoever runs the home (until identities exist,
the same rule as every other write)."""


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    record_id: str
    reason: str
    institution_id: str | None = None
    """The institution asking; when given, it must own the record."""
    key_id: str | None = None
    """The API key of the request, recorded with the erasure."""


def check_reason(reason: str) -> str:
    """The reason, trimmed; raises :class:`InvalidRequest` naming the rule (never the text)."""
    trimmed = reason.strip()
    if not trimmed:
        raise InvalidRequest("reason: give a reason for the erasure (it is recorded in the log)")
    if len(trimmed) > MAX_REASON_CHARS:
        raise InvalidRequest(f"reason: at most {MAX_REASON_CHARS} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf") and c not in "\t\n" for c in trimmed):
        raise InvalidRequest("reason: control and format characters are not allowed")
    return trimmed


class ErasureService:
    """Erase records of one ledger home."""

    def __init__(self, *, ledger: CorpusLedger, governance_dir: Path) -> None:
        self.ledger = ledger
        self.governance_dir = governance_dir

    def erase(self, request: ErasureRequest) -> dict[str, Any]:
        """Erase one record and purge its copies; returns what was removed. Raises
        :class:`~ledger.errors.NotFound` for an unknown record and :class:`InvalidRequest` for a
        bad reason or an institution that does not own the record."""
        from ingest.governance.erasure import purge_records

        reason = check_reason(request.reason)
        self.ledger.sync()
        view = self.ledger.record(request.record_id)
        requested_by = OPERATOR
        if request.institution_id is not None:
            batch = self.ledger.batch(view.batch_id)
            if batch.institution_id != request.institution_id:
                raise NotAuthorized(
                    "institution_id: only the institution that submitted a record may erase it"
                )
            requested_by = request.institution_id
        erasure = self.ledger.erase(
            request.record_id, reason=reason, requested_by=requested_by, key_id=request.key_id
        )
        purged = purge_records(self.governance_dir, [request.record_id])
        return {
            **erasure.to_dict(),
            "removed": {
                "body": erasure.body_removed,
                "near_duplicate_index_entries": purged.index_entries,
                "cached_embeddings": purged.embeddings,
            },
            "kept": {
                "leaf": view.leaf,
                "note": "the salted leaf stays in the batch tree, the log and on chain; without "
                "the salt it cannot be linked to any text",
            },
        }
