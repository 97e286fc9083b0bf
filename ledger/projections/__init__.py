"""Read models built from the event log, stored in a SQLite state database."""

from ledger.projections.base import (
    CatchUpReport,
    Projection,
    ProjectionError,
    ProjectionFailed,
    ProjectionRunner,
    ProjectionStore,
    diff_states,
    dump_state,
    on,
)

__all__ = [
    "CatchUpReport",
    "Projection",
    "ProjectionError",
    "ProjectionFailed",
    "ProjectionRunner",
    "ProjectionStore",
    "diff_states",
    "dump_state",
    "on",
]
