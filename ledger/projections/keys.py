"""Read model of the API keys (identity, role, institution, hash of the secret), and its queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.events import ApiKeyIssued, ApiKeyRevoked, Envelope
from ledger.projections.base import Projection, on


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    key_id: str
    role: str
    institution_id: str | None
    label: str
    secret_hash: str
    issued_by: str
    created_at: str
    revoked_at: str | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_public(self) -> dict[str, Any]:
        """Everything but the hash of the secret."""
        return {
            "key_id": self.key_id,
            "role": self.role,
            "institution_id": self.institution_id,
            "label": self.label,
            "issued_by": self.issued_by,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "active": self.active,
        }


class ApiKeysProjection(Projection):
    name = "api_keys"
    schema = """
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        institution_id TEXT,
        label TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        issued_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT
    )
    """

    @on(ApiKeyIssued)
    def issued(self, event: ApiKeyIssued, envelope: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO api_keys (key_id, role, institution_id, label, secret_hash,"
            " issued_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.key_id,
                event.role,
                event.institution_id,
                event.label,
                event.secret_hash,
                event.issued_by,
                envelope.occurred_at,
            ),
        )

    @on(ApiKeyRevoked)
    def revoked(self, event: ApiKeyRevoked, envelope: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ?"
            " AND revoked_at IS NULL",
            (envelope.occurred_at, event.revoked_by, event.key_id),
        )


_COLUMNS = (
    "key_id, role, institution_id, label, secret_hash, issued_by, created_at, revoked_at,"
    " revoked_by"
)


def _view(row: Sequence[Any]) -> ApiKeyView:
    return ApiKeyView(*row)


def get_api_key(conn: sqlite3.Connection, key_id: str) -> ApiKeyView | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
    return _view(row) if row is not None else None


def list_api_keys(conn: sqlite3.Connection) -> list[ApiKeyView]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id").fetchall()
    return [_view(r) for r in rows]
