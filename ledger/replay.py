"""Rebuild every projection from the log and compare the result with the live read models.

This is how an operator (``byr replay``) checks that the projections are exactly what the log
implies, and repairs them when they are not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ledger.eventlog.base import EventLog
from ledger.projections.base import ProjectionRunner, ProjectionStore, diff_states, dump_state
from ledger.projections.outbox import ATTEMPTS_TABLE
from ledger.views import ReplayReport


def replay_projections(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore, *, replace: bool = False
) -> ReplayReport:
    """Rebuild every projection from position 0 into a fresh database and compare it with the
    live one (bookkeeping and delivery-attempt tables excluded).

    With ``replace`` and equal states nothing changes; with ``replace`` and differences the
    live database's projection tables are overwritten by the rebuilt ones.
    """
    head = log.head_position()
    runner.catch_up(until_position=head)
    with tempfile.TemporaryDirectory(prefix="byr-replay-") as tmp:
        rebuilt = runner.rebuild_into(Path(tmp) / "state.db", until_position=head)
        try:
            with rebuilt.transaction() as conn:
                replayed = dump_state(conn, exclude=[ATTEMPTS_TABLE])
            with store.transaction() as conn:
                live = dump_state(conn, exclude=[ATTEMPTS_TABLE])
            diffs = diff_states(live, replayed)
            replaced = False
            if diffs and replace:
                _replace_tables(store, rebuilt, list(diffs))
                replaced = True
        finally:
            rebuilt.close()
    return ReplayReport(
        events_replayed=head,
        tables={t: len(rows) for t, rows in replayed.items()},
        differences={
            t: {"live_only": [list(r) for r in a], "replayed_only": [list(r) for r in b]}
            for t, (a, b) in diffs.items()
        },
        replaced=replaced,
    )


def _replace_tables(store: ProjectionStore, rebuilt: ProjectionStore, tables: list[str]) -> None:
    # SQLite refuses ATTACH inside a transaction, so attach first, then copy atomically.
    store.conn.execute("ATTACH DATABASE ? AS rebuilt", (str(rebuilt.path),))
    try:
        with store.transaction() as conn:
            for table in tables:
                conn.execute(f'DELETE FROM main."{table}"')
                conn.execute(f'INSERT INTO main."{table}" SELECT * FROM rebuilt."{table}"')
    finally:
        store.conn.execute("DETACH DATABASE rebuilt")
