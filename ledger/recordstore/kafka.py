"""The record store of a Kafka deployment: bodies on a compacted topic, a local copy per process.

The processes of a deployment (API, governance workers, trainers) do not share a folder, so
bodies travel on ``<prefix>.records`` (the prefix and brokers of the event log's ``kafka://``
URL), keyed by record id, value :meth:`RecordBody.to_json`. Each process keeps what it has read in
its own owner-only SQLite file (a :class:`~ledger.recordstore.SqliteRecordStore`), together with
the topic offset it has read up to in every partition, in the same transaction. Reads use the
local copy only; :meth:`KafkaRecordStore.refresh` catches up with the topic.

Erasure writes a tombstone (a null value) under the record id. A compacted topic keeps old values
until the broker's log cleaner rewrites their segment, and that is what bounds how long an erased
body survives in the broker's files. The cleaner never touches the *active* (last) segment of a
partition, it only drops a value when the tombstone that replaces it lies in a segment it cleans,
and Kafka rolls the active segment only when something is appended. So :meth:`~KafkaRecordStore.
erase` writes the tombstones, waits ``segment.ms``, then appends a *roll marker* (a tombstone for
the reserved key ``\\x00roll``, which no record id can be) to every partition it wrote to: the
marker's append finds the active segment older than ``segment.ms`` and rolls it, so when ``erase``
returns the tombstones (and any erased value written shortly before) lie in closed, cleanable
segments. The topic's timestamps are the broker's (``LogAppendTime``), so the roll check compares
times of one clock; ``erase`` verifies from the marker's timestamp that the roll happened and
sends it again otherwise.

Topic settings (created on open when missing; see :data:`RECORDS_TOPIC_CONFIGS`):

- ``cleanup.policy=compact``, ``message.timestamp.type=LogAppendTime``;
- ``segment.ms=1000``: the wait inside ``erase`` (about one second). Partitions that receive
  writes more than a second apart get small segments, which the cleaner merges again;
- ``min.compaction.lag.ms=0``: a closed segment may be cleaned at once;
- ``max.compaction.lag.ms=900000`` (15 min; the URL option ``erase_within_s`` sets it when the
  topic is created): a closed segment holding uncleaned records is
  compacted within this time whatever the dirty ratio. This is the bound's main term. Its cost:
  a partition that keeps receiving new bodies is rewritten at most every 15 minutes;
- ``min.cleanable.dirty.ratio=0.5`` (Kafka's default): bodies are written once and never
  replaced, so cleaning for the ratio's sake reclaims almost nothing; it stays at the default so
  that growth alone does not rewrite a partition more than once per doubling;
- ``file.delete.delay.ms=1000``: a segment replaced by the cleaner is renamed ``*.deleted`` and
  unlinked one second later (Kafka's default keeps it a minute);
- ``delete.retention.ms=604800000`` (7 days): how long a cleaned tombstone stays readable, so a
  process that was offline for up to a week still drops its copy on :meth:`refresh`. Tombstones
  hold record ids only. A process offline for longer learns of an erasure from the event log
  (``RecordErased``), whose handler calls :meth:`~KafkaRecordStore.forget_local`.

The bound: once ``erase`` has returned, the erased bodies are gone from every file of every
broker holding a replica within ``max.compaction.lag.ms`` (15 min) + the broker's
``log.cleaner.backoff.ms`` (15 s by default; the development broker uses 1 s) + the time the
cleaner takes to rewrite the partition and any dirtier logs it picks first + ``file.delete.delay.
ms`` (1 s); sooner when the partition's dirty ratio passes 0.5. An ``erase`` that failed after its
tombstones were written (the broker went away before the marker) leaves them in the active
segment until the next append to that partition: erasing again (it is idempotent) completes it.
Outside this bound: blocks of deleted files that the file system has not reused (use encrypted
disks), tiered storage (not enabled on this topic), and the local copies of processes that have
not refreshed yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata

from ledger.eventlog.base import EventLogError
from ledger.eventlog.kafka.clients import close_quietly, ensure_topics, new_admin, new_reader
from ledger.eventlog.kafka.config import MAX_MESSAGE_BYTES, KafkaLogConfig, parse_url
from ledger.recordstore import RecordBody, RecordStore, RecordStoreError
from ledger.recordstore.copies import LocalCopy

__all__ = ["RECORDS_TOPIC_CONFIGS", "ROLL_KEY", "KafkaRecordStore", "records_topic"]

log = logging.getLogger(__name__)

RECORDS_TOPIC_CONFIGS: dict[str, str] = {
    "cleanup.policy": "compact",
    "message.timestamp.type": "LogAppendTime",
    "segment.ms": "1000",
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "900000",
    "min.cleanable.dirty.ratio": "0.5",
    "file.delete.delay.ms": "1000",
    "delete.retention.ms": "604800000",
    "max.message.bytes": str(MAX_MESSAGE_BYTES),
}
"""Topic-level settings of ``<prefix>.records`` (the reasons are in the module docstring)."""

ROLL_KEY = b"\x00roll"
"""Key of the roll markers ``erase`` appends; never a record id, skipped when reading."""

_MAX_ROLL_WAIT_MS = 60_000
"""An existing topic whose segments roll later than this is refused: ``erase`` waits that long."""
_ROLL_MARGIN_MS = 50
_APPLY_BYTES = 32 * 1024 * 1024
"""A catch-up applies what it read in transactions of about this many bytes of bodies."""
_POLL_MS = 10


def records_topic(config: KafkaLogConfig) -> str:
    """``<prefix>.records``: the bodies of the log opened by ``config``."""
    return f"{config.prefix}.records"


class KafkaRecordStore(RecordStore):
    """Bodies on a compacted Kafka topic, read through a local SQLite copy; safe for threads.

    :meth:`put_many` and :meth:`erase` return once the brokers acknowledged every write
    (``acks=all``); :meth:`get_many` reads the local copy only, :meth:`refresh` brings it up to
    the topic's end. Raises :class:`~ledger.recordstore.RecordStoreError` when the brokers cannot
    be reached within the URL's ``timeout_s``.
    """

    def __init__(self, config: KafkaLogConfig, *, local_path: str | Path) -> None:
        self.config = config
        self.topic = records_topic(config)
        self._local = LocalCopy(local_path)
        self._producer_lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._read_lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        try:
            self._roll_ms = self._prepare_topic()
        except BaseException:
            self._local.close()
            raise

    @classmethod
    def open(cls, event_log_url: str, *, local_path: str | Path) -> KafkaRecordStore:
        """The record store next to the Kafka event log at ``event_log_url`` (``kafka://...``)."""
        try:
            config = parse_url(event_log_url)
        except EventLogError as exc:
            raise RecordStoreError(f"cannot open the Kafka record store: {exc}") from None
        return cls(config, local_path=local_path)

    def __repr__(self) -> str:
        return f"KafkaRecordStore({self.config.url()!r}, local_path={str(self.local_path)!r})"

    @property
    def local_path(self) -> Path:
        """This process's copy: an owner-only SQLite file (with its ``-wal`` and ``-shm``)."""
        return self._local.path

    # -- the topic -----------------------------------------------------------------------------

    def _prepare_topic(self) -> int:
        """Create the topic when missing; the time after which its active segments roll (ms)."""
        spec = {"num_partitions": self.config.family_partitions, "replication_factor": -1}
        with self._kafka("creating the records topic"):
            admin = new_admin(self.config)
            try:
                # ensure_topics tolerates another process creating the topic at the same time.
                configs = RECORDS_TOPIC_CONFIGS | {
                    "max.compaction.lag.ms": str(int(self.config.erase_within_s * 1000))
                }
                ensure_topics(self.config, admin, {self.topic: spec | {"configs": configs}})
                described = admin.describe_configs(
                    [ConfigResource("TOPIC", self.topic)], config_filter="all"
                )
            finally:
                close_quietly(admin)
        settings = _topic_settings(described, self.topic)
        if "compact" not in str(settings.get("cleanup.policy", "")).split(","):
            raise RecordStoreError(
                f"topic {self.topic} exists without cleanup.policy=compact: erased bodies would "
                "stay on the brokers; set the topic's settings to RECORDS_TOPIC_CONFIGS"
            )
        roll_ms = int(settings.get("segment.ms") or 604_800_000)
        lag_ms = int(settings.get("max.compaction.lag.ms") or 0)
        if lag_ms > 0:
            roll_ms = min(roll_ms, lag_ms)
        if roll_ms > _MAX_ROLL_WAIT_MS:
            raise RecordStoreError(
                f"topic {self.topic} rolls its segments after {roll_ms} ms (segment.ms); erasure "
                f"waits for a roll, so it must be at most {_MAX_ROLL_WAIT_MS} ms "
                f"(created topics use {RECORDS_TOPIC_CONFIGS['segment.ms']} ms)"
            )
        return roll_ms

    @contextmanager
    def _kafka(self, what: str) -> Iterator[None]:
        """Kafka failures in the block as :class:`RecordStoreError` naming ``what`` and the brokers.

        The chain is cut (``from None``): what matters is in the message, and no frame of the
        client library (which held the values being written) ends up in a logged traceback.
        """
        try:
            yield
        except (KafkaError, EventLogError) as exc:
            raise RecordStoreError(
                f"{what} failed on Kafka at {self.config.bootstrap}: {type(exc).__name__}: {exc}"
            ) from None

    # -- writing -------------------------------------------------------------------------------

    def _writer(self) -> KafkaProducer:
        with self._producer_lock:
            if self._producer is None:
                timeout_ms = int(self.config.timeout_s * 1000)
                with self._kafka("starting the records producer"):
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.config.bootstrap,
                        client_id=f"{self.config.prefix}-records",
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=100,
                        batch_size=1024 * 1024,
                        max_request_size=MAX_MESSAGE_BYTES,
                        max_block_ms=timeout_ms,
                        request_timeout_ms=30_000,
                        delivery_timeout_ms=max(timeout_ms, 30_100),
                        bootstrap_timeout_ms=timeout_ms,
                        reconnect_backoff_max_ms=1000,
                    )
            return self._producer

    def _send(
        self, messages: Sequence[tuple[bytes, bytes | None, int | None]], *, what: str
    ) -> list[RecordMetadata]:
        """Send ``(key, value, partition)`` messages and wait until every one is acknowledged."""
        producer = self._writer()
        with self._kafka(what):
            futures = [
                producer.send(self.topic, key=key, value=value, partition=part)
                for key, value, part in messages
            ]
            producer.flush(timeout=max(self.config.timeout_s, 30.1) + 5)
            return [future.get(timeout=0) for future in futures]

    def put_many(self, bodies: Sequence[RecordBody]) -> None:
        if not bodies:
            return
        messages = [(b.record_id.encode(), b.to_json().encode(), None) for b in bodies]
        try:
            self._send(messages, what=f"storing {len(bodies)} record bodies")
        except RecordStoreError as exc:
            # Some bodies may have been stored: without the event that names them nobody would
            # ever erase them, so they are withdrawn (best effort; the error says if it failed).
            try:
                self.erase([b.record_id for b in bodies])
            except RecordStoreError as withdrawal:
                raise RecordStoreError(
                    f"{exc}; withdrawing the bodies that may have been stored failed too "
                    f"({withdrawal}): erase record ids {[b.record_id for b in bodies][:3]}... "
                    "again when the brokers are back"
                ) from None
            raise
        self._local.put_many(bodies)

    def erase(self, record_ids: Sequence[str]) -> list[str]:
        """Tombstone every id (present here or not), delete the local copies, then roll the
        segments holding the tombstones (about ``segment.ms``, see the module docstring).
        Returns the ids whose body was present in the local copy."""
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return []
        acked = self._send(
            [(i.encode(), None, None) for i in ids], what=f"erasing {len(ids)} record bodies"
        )
        present = self._local.erase(ids)
        landed: dict[int, int] = {}
        for meta in acked:
            landed[meta.partition] = max(landed.get(meta.partition, 0), meta.timestamp)
        self._roll(landed)
        return present

    def _roll(self, landed: dict[int, int]) -> None:
        """Append a roll marker to each partition of ``landed`` (partition -> broker timestamp
        of its last tombstone) once its active segment is older than the roll time."""
        pending = dict(landed)
        deadline = time.monotonic() + self.config.timeout_s + self._roll_ms / 1000
        wait_ms = self._roll_ms + _ROLL_MARGIN_MS
        while True:
            threading.Event().wait(wait_ms / 1000)
            order = sorted(pending)
            metas = self._send(
                [(ROLL_KEY, None, p) for p in order], what="rolling the erased bodies' segments"
            )
            shortfall = 0
            for part, meta in zip(order, metas, strict=True):
                waited = meta.timestamp - pending[part]
                if waited > self._roll_ms:
                    del pending[part]
                else:
                    shortfall = max(shortfall, self._roll_ms - waited)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RecordStoreError(
                    f"the tombstones are written to {self.topic}, but the segments holding them "
                    f"in partitions {sorted(pending)} did not roll (the broker's clock moved "
                    "less than segment.ms): erase the records again"
                )
            wait_ms = shortfall + _ROLL_MARGIN_MS

    # -- reading -------------------------------------------------------------------------------

    def get_many(self, record_ids: Sequence[str]) -> dict[str, RecordBody]:
        return self._local.get_many(record_ids)

    def forget_local(self, record_ids: Sequence[str]) -> list[str]:
        return self._local.erase(record_ids)

    def refresh(self) -> None:
        """Apply what the topic holds beyond the stored offsets: new bodies are added, tombstoned
        ones deleted. One round trip to the brokers when nothing is new."""
        with self._read_lock:
            consumer = self._reader()
            try:
                with self._kafka("reading the end of the records topic"):
                    ends = consumer.end_offsets(self._partitions)
                stored = self._local.positions(self.topic)
                starts: dict[TopicPartition, int] = {}
                for tp in self._partitions:
                    at = stored.get(tp.partition, 0)
                    # Past the end: the topic was deleted and created again; read it all.
                    starts[tp] = 0 if at > ends[tp] else at
                if all(starts[tp] >= ends[tp] for tp in self._partitions):
                    return
                self._catch_up(consumer, starts=starts, ends=ends)
            except BaseException:
                # Its positions are unknown now; the next refresh starts from the stored offsets.
                close_quietly(consumer)
                self._consumer = None
                raise

    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            with self._kafka("connecting to the records topic"):
                consumer = new_reader(self.config)
                try:
                    numbers = consumer.partitions_for_topic(self.topic) or set()
                    if not numbers:
                        raise RecordStoreError(f"the brokers report no partitions of {self.topic}")
                    self._partitions = [TopicPartition(self.topic, p) for p in sorted(numbers)]
                    consumer.assign(self._partitions)
                except BaseException:
                    close_quietly(consumer)
                    raise
            self._consumer = consumer
        return self._consumer

    def _catch_up(
        self,
        consumer: KafkaConsumer,
        *,
        starts: dict[TopicPartition, int],
        ends: dict[TopicPartition, int],
    ) -> None:
        """Read every partition from ``starts`` to at least ``ends``, applying the last value of
        each key per transaction: a body tombstoned later in the same batch is never written."""
        what = "reading the records topic"
        latest: dict[bytes, tuple[bytes | None, int, int]] = {}
        size = 0
        with self._kafka(what):
            for tp, at in starts.items():
                consumer.seek(tp, at)
            positions = dict(starts)
            stalled_since = time.monotonic()
            while True:
                polled = consumer.poll(timeout_ms=_POLL_MS, max_records=5000)
                for records in polled.values():
                    for record in records:
                        latest[record.key] = (record.value, record.partition, record.offset)
                        size += len(record.value or b"")
                moved = {tp: consumer.position(tp) for tp in self._partitions}
                done = all(moved[tp] >= ends[tp] for tp in self._partitions)
                if moved != positions:
                    positions, stalled_since = moved, time.monotonic()
                elif not done and time.monotonic() - stalled_since > self.config.timeout_s:
                    raise RecordStoreError(
                        f"{what} made no progress for {self.config.timeout_s:.0f} s at offsets "
                        f"{ {tp.partition: positions[tp] for tp in positions} } of "
                        f"{ {tp.partition: ends[tp] for tp in ends} }"
                    )
                if done or size >= _APPLY_BYTES:
                    self._apply(latest, positions)
                    latest, size = {}, 0
                if done:
                    return

    def _apply(
        self,
        latest: dict[bytes, tuple[bytes | None, int, int]],
        positions: dict[TopicPartition, int],
    ) -> None:
        bodies: list[RecordBody] = []
        erased: list[str] = []
        for key, (value, part, offset) in latest.items():
            if key == ROLL_KEY:
                continue
            try:
                record_id = key.decode("utf-8")
                if value is None:
                    erased.append(record_id)
                    continue
                body = RecordBody.from_json(value)
            except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
                # Only a foreign writer puts such a record here; the text is never logged.
                log.warning(
                    "skipping an unreadable record in %s-%d at offset %d", self.topic, part, offset
                )
                continue
            if body.record_id != record_id:
                log.warning(
                    "skipping a body stored under another id in %s-%d at offset %d",
                    self.topic,
                    part,
                    offset,
                )
                continue
            bodies.append(body)
        self._local.apply(
            topic=self.topic,
            bodies=bodies,
            erased=erased,
            positions={tp.partition: at for tp, at in positions.items()},
        )

    def close(self) -> None:
        with self._producer_lock:
            close_quietly(self._producer)
            self._producer = None
        with self._read_lock:
            close_quietly(self._consumer)
            self._consumer = None
        self._local.close()


def _topic_settings(described: dict[str, Any], topic: str) -> dict[str, str]:
    """``{name: value}`` from kafka-python's ``describe_configs`` answer for one topic."""
    return {k: str(v.get("value") or "") for k, v in described["topic"][topic].items()}
