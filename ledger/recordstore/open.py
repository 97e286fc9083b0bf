"""Opening the record store a home's settings call for.

With the embedded SQLite (or in-memory) event log every process of a home shares
``BYR_HOME/records.db``. With a Kafka event log the processes of a deployment do not share a
folder, so bodies travel on a compacted topic next to the log's topics and each process keeps a
local copy in its own ``BYR_HOME/records.db`` (:mod:`ledger.recordstore.kafka`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ledger.recordstore import RecordStore, SqliteRecordStore
from ledger.settings import LedgerSettings


def open_record_store(settings: LedgerSettings) -> RecordStore:
    local = settings.home / "records.db"
    if urlsplit(settings.event_log_url).scheme == "kafka":
        from ledger.recordstore.kafka import KafkaRecordStore

        return KafkaRecordStore.open(settings.event_log_url, local_path=local)
    return SqliteRecordStore(local)
