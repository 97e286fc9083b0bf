"""The Kafka event log: the :class:`EventLog` contract on Apache Kafka topics.

Layout (see :class:`~ledger.eventlog.kafka.config.KafkaLogConfig`): ``<prefix>.log`` has one
partition and is the source of truth; an envelope's position is its offset there plus one.
``<prefix>.heads`` (compacted) records each stream's head; ``<prefix>.<family>`` topics carry the
same envelopes keyed by stream id, for consumer groups (:meth:`KafkaEventLog.consume`).

Guarantees, and how:

- Atomic appends across streams and topics: one Kafka transaction per append (or per group of
  appends combined in one process, each still all-or-nothing); readers use ``read_committed``.
- Optimistic concurrency: :mod:`ledger.eventlog.kafka.writer` (a transactional id per writer
  name; transactions serialized by their turn on the heads topic).
- Positions strictly increase along the log and a reader never sees position ``n + 1`` before
  ``n``: ``read_committed`` stops at the last stable offset, below which every transaction is
  decided. Positions are sparse (each commit marker takes an offset), so integrity checks do not
  treat a gap as a deletion.
- Durability: ``acks=all`` with the idempotent producer, so a retried send is never duplicated.
  A single-node broker keeps data in the page cache until it flushes: it survives a crash of the
  broker process, not of the machine; a replicated cluster (replication factor 3,
  ``min.insync.replicas=2``) survives a machine.
- An append returns once its envelopes are readable by every reader.
- Brokers that go away: appends retry inside the writer, and reads (``read_all``, ``read_stream``,
  ``stream_version``, ``head_position``) are tried again for up to ``config.timeout_s`` after the
  first failure; ``read_all`` resumes after the last envelope it yielded. Only then does
  :class:`~ledger.eventlog.kafka.errors.KafkaUnavailable` reach the caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

from ledger.eventlog.base import (
    DEFAULT_POLL_INTERVAL,
    ChainVerifier,
    EventLog,
    EventLogError,
    IntegrityIssue,
    IntegrityProblem,
    IntegrityReport,
    StreamAppend,
    StreamHead,
    validate_appends,
)
from ledger.eventlog.kafka.clients import (
    close_quietly,
    ensure_topics,
    family_topic_spec,
    log_topic_specs,
    new_admin,
    new_consumer,
    new_reader,
    partition,
    translated,
)
from ledger.eventlog.kafka.config import KafkaLogConfig
from ledger.eventlog.kafka.consumer import FamilyConsumer
from ledger.eventlog.kafka.errors import KafkaUnavailable
from ledger.eventlog.kafka.heads import HeadsView, read_partition_to_end
from ledger.eventlog.kafka.records import UnreadableRecord, decode_envelope, decode_head
from ledger.eventlog.kafka.writer import LogWriter
from ledger.events import Envelope, Topic

_TAIL_WINDOW = 16
"""Offsets read back from the end to find the last envelope (commit markers sit in between)."""
_RETRY_PAUSE_MAX_S = 2.0
T = TypeVar("T")


class _Outage:
    """Retry bookkeeping of one read while the brokers are unreachable.

    The first failure starts the clock: the read is tried again (with a growing pause) until
    ``timeout_s`` has passed since then, and the last :class:`KafkaUnavailable` is raised after.
    A read that makes progress again resets the clock.
    """

    def __init__(self, log: KafkaEventLog) -> None:
        self._log = log
        self._since: float | None = None
        self._pause = 0.05

    def survived(self) -> None:
        self._since = None
        self._pause = 0.05

    def wait(self, exc: KafkaUnavailable) -> None:
        """Pause before the next try, or re-raise ``exc`` when the time is up."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if self._log._closed or now + self._pause - self._since > self._log.config.timeout_s:
            raise exc
        time.sleep(self._pause)
        self._pause = min(self._pause * 2, _RETRY_PAUSE_MAX_S)


class KafkaEventLog(EventLog):
    """:class:`EventLog` over a Kafka cluster; creates its topics when they are missing.

    Opening connects to the brokers (raising
    :class:`~ledger.eventlog.kafka.errors.KafkaUnavailable` if they do not answer within
    ``config.timeout_s``); the writer's producer starts on the first append, so a process that
    only reads never fences a writer.
    """

    def __init__(self, config: KafkaLogConfig) -> None:
        super().__init__()
        self.config = config
        self._log_tp = partition(config.log_topic)
        self._admin = new_admin(config)
        self._topics_lock = threading.Lock()
        self._known_topics: set[str] = set()
        self._pool_lock = threading.Lock()
        self._idle: list[KafkaConsumer] = []
        try:
            self._create_topics(log_topic_specs(config))
        except BaseException:
            close_quietly(self._admin)
            raise
        self._heads = HeadsView(config)
        self._writer = LogWriter(
            config=config,
            heads=self._heads,
            ensure_family_topics=self.ensure_family_topics,
            locate=lambda stream_id, sequence: list(
                self.read_stream(stream_id, from_sequence=sequence)
            ),
        )

    def __repr__(self) -> str:
        return f"KafkaEventLog({self.config.url()!r})"

    # -- topics ------------------------------------------------------------------------------

    def _create_topics(self, specs: dict[str, dict[str, object]]) -> None:
        with self._topics_lock:
            missing = {name: spec for name, spec in specs.items() if name not in self._known_topics}
            ensure_topics(self.config, self._admin, missing)
            self._known_topics.update(missing)

    def ensure_family_topics(self, names: Iterable[str]) -> None:
        """Create the family topics ``names`` (full Kafka names) that do not exist yet."""
        spec = family_topic_spec(self.config)
        self._create_topics({name: spec for name in names})

    # -- writing -----------------------------------------------------------------------------

    @property
    def writer(self) -> LogWriter:
        """This handle's writer (its name and counters: transactions, fenced, rechecks)."""
        return self._writer

    def name_writer(self, name: str) -> None:
        """Append under writer name ``name`` from now on (see :attr:`KafkaLogConfig.writer`).

        Raises :class:`ValueError` for a name that is not letters, digits, '.', '_' or '-'.
        """
        config = replace(self.config, writer=name)
        self.config = config
        self._writer.rename(config)

    def append_many(self, appends: Sequence[StreamAppend]) -> list[Envelope]:
        validate_appends(appends)
        if not appends:
            return []
        self._check_open()
        stored = self._writer.append(appends)
        self._notify_appended()
        return stored

    # -- reading -----------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[KafkaConsumer]:
        """Borrow a read-committed consumer assigned to the log partition (pooled)."""
        self._check_open()
        with self._pool_lock:
            consumer = self._idle.pop() if self._idle else None
        if consumer is None:
            consumer = new_reader(self.config)
            consumer.assign([self._log_tp])
        healthy = False
        try:
            yield consumer
            healthy = True
        finally:
            with self._pool_lock:
                if healthy and not self._closed:
                    self._idle.append(consumer)
                    consumer = None
            close_quietly(consumer)

    def _end(self, consumer: KafkaConsumer) -> int:
        """The log's last stable offset: every record below it is committed or aborted."""
        with translated(self.config, "reading the end of the log"):
            return int(consumer.end_offsets([self._log_tp])[self._log_tp])

    def _scan(self, consumer: KafkaConsumer, *, start: int, end: int) -> Iterator[ConsumerRecord]:
        with translated(self.config, "reading the log"):
            consumer.seek(self._log_tp, start)
        yield from read_partition_to_end(self.config, consumer, end=end, what="reading the log")

    def _envelope(self, record: ConsumerRecord) -> Envelope:
        try:
            return decode_envelope(record.value, position=record.offset + 1)
        except UnreadableRecord as exc:
            raise EventLogError(
                f"the record at position {record.offset + 1} of {self.config.log_topic} "
                f"is not an envelope: {exc}"
            ) from exc

    def _retrying(self, operation: Callable[[], T]) -> T:
        """``operation()``, tried again while the brokers are unreachable (see :class:`_Outage`)."""
        outage = _Outage(self)
        while True:
            try:
                return operation()
            except KafkaUnavailable as exc:
                outage.wait(exc)

    def read_all(self, *, from_position: int = 0, limit: int | None = None) -> Iterator[Envelope]:
        self._check_open()
        if limit is not None and limit <= 0:
            return
        start = max(from_position - 1, 0)
        count = 0
        outage = _Outage(self)
        while True:
            try:
                with self._reader() as consumer:
                    end = self._end(consumer)
                    if start >= end:
                        return
                    for record in self._scan(consumer, start=start, end=end):
                        envelope = self._envelope(record)
                        # A retry resumes after the last envelope yielded.
                        start = record.offset + 1
                        outage.survived()
                        yield envelope
                        count += 1
                        if limit is not None and count >= limit:
                            return
                return
            except KafkaUnavailable as exc:
                outage.wait(exc)

    def read_stream(self, stream_id: str, *, from_sequence: int = 1) -> Iterator[Envelope]:
        self._check_open()
        found = self._retrying(lambda: self._stream_envelopes(stream_id, from_sequence))
        yield from found

    def _stream_envelopes(self, stream_id: str, from_sequence: int) -> list[Envelope]:
        """The envelopes of ``stream_id`` from ``from_sequence`` up to its head as read now."""
        self._heads.catch_up()
        head = self._heads.get(stream_id)
        if head is None or from_sequence > head.version:
            return []
        key = stream_id.encode("utf-8")
        found: list[Envelope] = []
        with self._reader() as consumer:
            end = self._end(consumer)
            with translated(self.config, f"locating stream {stream_id!r}"):
                located = consumer.offsets_for_times({self._log_tp: head.first_ts})
            hit = located.get(self._log_tp)
            start = hit.offset if hit is not None else 0
            # The stream starts at the first record stamped at or after its first timestamp; if
            # that ever missed its first envelope (a clock stepping back), read from the start.
            for begin in (start, 0) if start > 0 else (0,):
                found = []
                for record in self._scan(consumer, start=begin, end=end):
                    if record.key != key:
                        continue
                    envelope = self._envelope(record)
                    found.append(envelope)
                    if envelope.sequence >= head.version:
                        break
                if found and found[0].sequence == 1:
                    break
        return [envelope for envelope in found if envelope.sequence >= from_sequence]

    def stream_version(self, stream_id: str) -> int:
        self._check_open()
        self._retrying(self._heads.catch_up)
        head = self._heads.get(stream_id)
        return head.version if head else 0

    def head_position(self) -> int:
        return self._retrying(self._head_position)

    def _head_position(self) -> int:
        with self._reader() as consumer:
            end = self._end(consumer)
            window = _TAIL_WINDOW
            while end > 0:
                start = max(end - window, 0)
                last = None
                for record in self._scan(consumer, start=start, end=end):
                    last = record.offset
                if last is not None:
                    return last + 1
                if start == 0:
                    break
                window *= 8
        return 0

    # -- following ---------------------------------------------------------------------------

    def subscribe(
        self,
        *,
        from_position: int = 0,
        stop: threading.Event | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Iterator[Envelope]:
        """Follow the log with one long-polling consumer (see :meth:`EventLog.subscribe`).

        A new envelope arrives as soon as its transaction's commit marker is written, without
        waiting for ``poll_interval`` (which only bounds how soon ``stop`` is noticed).
        """
        if self._closed:
            return
        consumer = new_consumer(self.config)
        try:
            consumer.assign([self._log_tp])
            with translated(self.config, "following the log"):
                consumer.seek(self._log_tp, max(from_position - 1, 0))
            timeout_ms = max(int(poll_interval * 1000), 1)
            while not self._closed and not (stop is not None and stop.is_set()):
                with translated(self.config, "following the log"):
                    polled = consumer.poll(timeout_ms=timeout_ms, max_records=500)
                for record in polled.get(self._log_tp, ()):
                    if stop is not None and stop.is_set():
                        return
                    yield self._envelope(record)
                    if self._closed or (stop is not None and stop.is_set()):
                        return
        finally:
            close_quietly(consumer)

    def consume(
        self,
        *,
        group_id: str,
        topics: Sequence[Topic],
        max_records: int = 100,
    ) -> FamilyConsumer:
        """Join consumer group ``group_id`` on the family topics of ``topics``.

        See :class:`~ledger.eventlog.kafka.consumer.FamilyConsumer`: at-least-once delivery,
        ordered per stream, offsets committed only by :meth:`Delivery.commit`.
        """
        self._check_open()
        names = [self.config.family_topic(topic) for topic in topics]
        self.ensure_family_topics(names)
        return FamilyConsumer(
            self.config, group_id=group_id, topic_names=names, max_records=max_records
        )

    # -- checking and lifecycle --------------------------------------------------------------

    def verify_integrity(self) -> IntegrityReport:
        """Check every envelope and every recorded head, on a snapshot with no open transaction.

        The log and heads topics are read between two identical readings of both partitions'
        ends (committed and uncommitted), so no append slipped in between; while writers keep
        appending this retries for up to ``config.timeout_s`` and then raises.
        """
        self._check_open()
        heads_tp = partition(self.config.heads_topic)
        committed = new_reader(self.config)
        uncommitted = new_reader(self.config, read_committed=False)
        deadline = time.monotonic() + self.config.timeout_s
        try:
            while True:
                with translated(self.config, "verifying the log"):
                    marks = (
                        committed.end_offsets([self._log_tp, heads_tp]),
                        uncommitted.end_offsets([self._log_tp, heads_tp]),
                    )
                if marks[0] == marks[1]:
                    report = self._verify(committed, heads_tp, marks[0])
                    with translated(self.config, "verifying the log"):
                        again = (
                            committed.end_offsets([self._log_tp, heads_tp]),
                            uncommitted.end_offsets([self._log_tp, heads_tp]),
                        )
                    if again == marks:
                        return report
                if time.monotonic() > deadline:
                    raise EventLogError(
                        f"{self.config.log_topic} kept changing for {self.config.timeout_s:.0f} s; "
                        "verify again while no writer is appending"
                    )
                time.sleep(0.05)
        finally:
            close_quietly(committed)
            close_quietly(uncommitted)

    def _verify(
        self, consumer: KafkaConsumer, heads_tp: object, ends: dict[object, int]
    ) -> IntegrityReport:
        verifier = ChainVerifier(dense_positions=False)
        heads: dict[str, StreamHead] = {}
        consumer.assign([heads_tp])
        with translated(self.config, "verifying the log"):
            consumer.seek(heads_tp, 0)
        for record in read_partition_to_end(
            self.config, consumer, end=ends[heads_tp], what="verifying stream heads"
        ):
            stream_id = record.key.decode("utf-8", "replace")
            try:
                heads[stream_id] = decode_head(record.value).stream_head()
            except UnreadableRecord as exc:
                verifier.add_problem(
                    IntegrityProblem(
                        IntegrityIssue.UNREADABLE,
                        f"stored head is unreadable: {exc}",
                        stream_id=stream_id,
                    )
                )
        consumer.assign([self._log_tp])
        for record in self._scan(consumer, start=0, end=ends[self._log_tp]):
            position = record.offset + 1
            try:
                envelope = decode_envelope(record.value, position=position)
            except UnreadableRecord as exc:
                verifier.skip_position(position)
                verifier.add_problem(
                    IntegrityProblem(
                        IntegrityIssue.UNREADABLE,
                        f"stored record is not an envelope: {exc}",
                        stream_id=record.key.decode("utf-8", "replace") if record.key else None,
                        position=position,
                    )
                )
                continue
            verifier.check(envelope)
        return verifier.finish(heads=heads)

    def close(self) -> None:
        """Close every client; a subscriber returns at its next poll. Idempotent."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for consumer in idle:
            close_quietly(consumer)
        self._writer.close()
        self._heads.close()
        with self._topics_lock:
            close_quietly(self._admin)
        super().close()


def open_url(url: str) -> KafkaEventLog:
    """Open ``kafka://host:port[,host:port][?prefix=byr&family_partitions=6&timeout_s=30]``."""
    from ledger.eventlog.kafka.config import parse_url

    return KafkaEventLog(parse_url(url))
