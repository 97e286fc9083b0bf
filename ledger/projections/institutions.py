"""Read model of the institution registry."""

from __future__ import annotations

import sqlite3

from ledger.events import Envelope, InstitutionDeactivated, InstitutionRegistered
from ledger.projections.base import Projection, on


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
