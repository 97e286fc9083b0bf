"""Read model of the institution registry, and its queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ledger.events import Envelope, InstitutionDeactivated, InstitutionRegistered
from ledger.projections.base import Projection, on
from ledger.views import InstitutionView


class InstitutionsProjection(Projection):
    name = "institutions"
    schema = """
    CREATE TABLE IF NOT EXISTS institutions (
        institution_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        account TEXT NOT NULL,
        active INTEGER NOT NULL,
        registered_at TEXT NOT NULL,
        academic_tx_hash TEXT
    )
    """

    @on(InstitutionRegistered)
    def registered(
        self, event: InstitutionRegistered, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "INSERT INTO institutions (institution_id, name, account, active, registered_at,"
            " academic_tx_hash) VALUES (?, ?, ?, 1, ?, ?)"
            " ON CONFLICT (institution_id) DO UPDATE SET name = excluded.name,"
            " account = excluded.account, active = 1, academic_tx_hash = excluded.academic_tx_hash",
            (
                event.institution_id,
                event.name,
                event.account,
                envelope.occurred_at,
                event.academic_tx_hash,
            ),
        )

    @on(InstitutionDeactivated)
    def deactivated(
        self, event: InstitutionDeactivated, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "UPDATE institutions SET active = 0 WHERE institution_id = ?", (event.institution_id,)
        )


# -- queries -------------------------------------------------------------------------------------

_COLUMNS = "institution_id, name, account, active, registered_at, academic_tx_hash"


def _view(row: Sequence[Any]) -> InstitutionView:
    return InstitutionView(row[0], row[1], row[2], bool(row[3]), row[4], row[5])


def get_institution(conn: sqlite3.Connection, institution_id: str) -> InstitutionView | None:
    """The institution ``institution_id``; ``None`` when it was never registered."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM institutions WHERE institution_id = ?", (institution_id,)
    ).fetchone()
    return _view(row) if row is not None else None


def list_institutions(conn: sqlite3.Connection) -> list[InstitutionView]:
    """Every registered institution (active or not), by id."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM institutions ORDER BY institution_id")
    return [_view(r) for r in rows.fetchall()]


def count_institutions(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM institutions").fetchone()[0])
