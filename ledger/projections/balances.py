"""Read model of BYR balances, from ContributionRewarded events, and its queries."""

from __future__ import annotations

import sqlite3

from ledger.events import ContributionRewarded, Envelope
from ledger.projections.base import Projection, on
from ledger.views import BalanceView


class BalancesProjection(Projection):
    """BYR balance per institution account; amounts are exact decimal strings of wei."""

    name = "balances"
    schema = """
    CREATE TABLE IF NOT EXISTS balances (
        account TEXT PRIMARY KEY,
        institution_id TEXT NOT NULL,
        amount_wei TEXT NOT NULL,
        rewards INTEGER NOT NULL
    )
    """

    @on(ContributionRewarded)
    def rewarded(
        self, event: ContributionRewarded, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        row = conn.execute(
            "SELECT amount_wei, rewards FROM balances WHERE account = ?", (event.account,)
        ).fetchone()
        total = int(event.amount_wei) + (int(row[0]) if row else 0)
        count = 1 + (int(row[1]) if row else 0)
        conn.execute(
            "INSERT OR REPLACE INTO balances (account, institution_id, amount_wei, rewards)"
            " VALUES (?, ?, ?, ?)",
            (event.account, event.institution_id, str(total), count),
        )


# -- queries -------------------------------------------------------------------------------------


def list_balances(conn: sqlite3.Connection) -> list[BalanceView]:
    """Every rewarded account with its total, by institution then account."""
    rows = conn.execute(
        "SELECT account, institution_id, amount_wei, rewards FROM balances"
        " ORDER BY institution_id, account"
    ).fetchall()
    return [BalanceView(r[0], r[1], r[2], r[3]) for r in rows]


def total_rewarded_wei(conn: sqlite3.Connection) -> int:
    """Every reward ever recorded, summed exactly (amounts are stored as decimal text)."""
    return sum(int(r[0]) for r in conn.execute("SELECT amount_wei FROM balances"))
