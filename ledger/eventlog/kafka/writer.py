"""The log's writer: optimistic concurrency on Kafka, each writer under its own transactional id.

Kafka has no conditional append, so the check "stream X is still at version v" and the write must
not interleave with another writer's. Each writer has its own ``transactional.id``: the log's
prefix plus a stable writer name (``KafkaLogConfig.writer``; a worker process is named after its
kind and home, so a restarted process takes its old name back). ``init_transactions`` fences only
an earlier producer of the same name, the writer's own zombie, and aborts the transaction that one
left open. Writers of different names never fence each other.

Transactions are serialized by their *turn* on the heads topic (one partition). One append (or one
group of appends, below) is one transaction that:

1. checks every expected version against the heads known so far, seals the envelopes and writes
   the new head records to the heads topic FIRST; the offset of its first head record is its turn;
2. waits until the heads topic's last stable offset (what ``read_committed`` readers see) reaches
   the turn: every transaction that wrote heads before it is committed or aborted by then, and any
   that comes later has a later turn and waits for this one;
3. reads the committed heads up to the turn and checks again. A stream another writer moved
   meanwhile aborts the transaction, and the check is redone on the exact heads, where that stream
   now raises :class:`ConcurrencyConflict` (never a duplicate sequence);
4. otherwise writes the envelopes to the log topic (the total order) and their family topics,
   commits, and waits until a read-committed reader can see the commit (so a read after
   ``append`` returns includes it).

No two writers can both pass the check for the same stream version: of two transactions, the one
with the later turn reads the other's heads before it writes any envelope. A writer that crashes
with a transaction open holds back the others' turns until it restarts under its name (which aborts
that transaction) or ``transaction_timeout_s`` passes (the broker aborts it).

A failed transaction (broker gone, producer fenced by its own restarted name) is dropped, the
producer re-created, and the check redone the same way.

Within a process, concurrent appends are combined: the thread holding the write lock takes every
append queued meanwhile into the same transaction, each one still all-or-nothing and checked in
turn against the heads the earlier ones produced.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka import errors as kafka_errors
from kafka.producer.future import FutureRecordMetadata

from ledger.eventlog.base import (
    ConcurrencyConflict,
    EventLogError,
    SealedFields,
    StreamAppend,
    seal_fields,
)
from ledger.eventlog.kafka.clients import close_quietly, new_transactional_producer
from ledger.eventlog.kafka.config import MAX_MESSAGE_BYTES, KafkaLogConfig
from ledger.eventlog.kafka.errors import KafkaUnavailable
from ledger.eventlog.kafka.heads import HeadsView
from ledger.eventlog.kafka.records import Head, encode_envelope, encode_head
from ledger.eventlog.kafka.turns import StableOffsets
from ledger.events import ZERO_HASH, Envelope
from ledger.faults import crash_point

# Errors that no retry can fix: the request itself is refused.
_PERMANENT = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.UnsupportedVersionError,
)
_FENCED = (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError)
"""What the broker answers a producer whose transactional id a newer producer has taken."""
_RECORD_OVERHEAD = 1024
"""Room left in a message for the key, headers and batch framing."""


@dataclass(eq=False)
class _Request:
    """One caller's ``append_many`` while it waits in (or is carried by) a group."""

    appends: Sequence[StreamAppend]
    result: list[Envelope] | None = None
    error: BaseException | None = None
    base: dict[str, Head | None] | None = None
    """The heads the envelopes below were sealed against."""
    sealed: list[SealedFields] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    futures: list[FutureRecordMetadata] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    def final_heads(self) -> dict[str, tuple[int, str]]:
        """stream id -> (version, last hash) once these envelopes are stored."""
        out: dict[str, tuple[int, str]] = {}
        for fields in self.sealed:
            out[fields[1]] = (fields[2], fields[8])
        return out


def _kafka_cause(exc: BaseException) -> kafka_errors.KafkaError | None:
    """The kafka-python error behind ``exc`` (itself, or the one a translated error wraps)."""
    if isinstance(exc, kafka_errors.KafkaError):
        return exc
    if isinstance(exc, EventLogError) and isinstance(exc.__cause__, kafka_errors.KafkaError):
        return exc.__cause__
    return None


Locate = Callable[[str, int], list[Envelope]]
"""``(stream_id, from_sequence) -> stored envelopes``: finds positions of a lost acknowledgement."""


class LogWriter:
    """Appends for one :class:`~ledger.eventlog.kafka.log.KafkaEventLog`; safe between threads."""

    def __init__(
        self,
        *,
        config: KafkaLogConfig,
        heads: HeadsView,
        ensure_family_topics: Callable[[Iterable[str]], None],
        locate: Locate,
    ) -> None:
        self._config = config
        self._heads = heads
        self._ensure_family_topics = ensure_family_topics
        self._locate = locate
        self._queue: list[_Request] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._offsets = StableOffsets(config)
        self.transactions = 0
        """Transactions committed by this writer (combined appends count once)."""
        self.fencings = 0
        """Times this writer lost its producer (fenced, a broker error, an aborted transaction)."""
        self.fenced = 0
        """Times the broker refused this writer's producer because a newer one took its
        transactional id (``ProducerFencedError`` or a stale epoch): only another writer of the
        same name does that."""
        self.rechecks = 0
        """Transactions aborted because a writer with an earlier turn moved one of their streams."""

    @property
    def name(self) -> str:
        return self._config.writer

    def rename(self, config: KafkaLogConfig) -> None:
        """Write under ``config.writer`` from the next append on (``config`` differs only there)."""
        with self._write_lock:
            close_quietly(self._producer)
            self._producer = None
            self._config = config

    def append(self, appends: Sequence[StreamAppend]) -> list[Envelope]:
        """Store ``appends`` atomically, or raise (see :meth:`EventLog.append_many`)."""
        request = _Request(appends)
        with self._queue_lock:
            self._queue.append(request)
        with self._write_lock:
            if not request.finished:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._run(group)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    # -- one group ---------------------------------------------------------------------------

    def _run(self, group: list[_Request]) -> None:
        deadline = time.monotonic() + self._config.timeout_s
        attempt = 0
        last_error: BaseException | None = None
        try:
            while True:
                pending = [r for r in group if not r.finished]
                if not pending:
                    return
                if attempt and time.monotonic() > deadline:
                    for request in pending:
                        outcome = (
                            "its outcome is unknown: read the stream before retrying"
                            if request.futures
                            else "nothing was stored"
                        )
                        request.error = KafkaUnavailable(
                            self._config.bootstrap,
                            f"append not confirmed within {self._config.timeout_s:.0f} s, "
                            f"{outcome} (last error: {last_error!r})",
                        )
                    return
                try:
                    if self._attempt(pending):
                        return
                    # Aborted on the re-check: the heads are exact now, check again at once.
                    self.rechecks += 1
                    attempt += 1
                    continue
                except Exception as exc:
                    cause = _kafka_cause(exc)
                    if cause is None:
                        raise
                    if isinstance(cause, _PERMANENT):
                        raise EventLogError(
                            f"Kafka at {self._config.bootstrap} refused the append: {cause!r}"
                        ) from exc
                    if isinstance(cause, _FENCED):
                        self.fenced += 1
                    # A broker that went away, an aborted transaction, a zombie of this name:
                    # start over with a new producer (whose start aborts what this one left open).
                    last_error = exc
                    self._drop_producer()
                    attempt += 1
                    time.sleep(min(1.0, 0.01 * 2**attempt) * random.uniform(0.5, 1.0))
        except BaseException as exc:
            # Whatever broke, nobody may wait forever or get a result that was not stored.
            self._drop_producer()
            for request in group:
                if not request.finished:
                    request.error = exc
            if not isinstance(exc, Exception):
                raise

    def _attempt(self, pending: list[_Request]) -> bool:
        """One transaction for ``pending``; False when it was aborted on the re-check."""
        producer = self._lease()
        self._settle_earlier_attempts(pending)
        now_ms = int(time.time() * 1000)
        accepted, heads = self._check_and_seal(
            [r for r in pending if not r.finished], now_ms=now_ms, refresh=True
        )
        if not accepted:
            return True
        self._ensure_family_topics({f for r in accepted for f in r.families})
        timeout = self._config.timeout_s
        # kafka-python errors propagate untranslated: _run tells retryable from permanent ones.
        producer.begin_transaction()
        head_futures = self._send_heads(producer, heads, now_ms=now_ms)
        producer.flush(timeout=timeout)
        turn = min(f.get(timeout=timeout).offset for f in head_futures)
        self._offsets.wait_for_turn(turn)
        self._heads.catch_up()
        # An earlier attempt that reported an error may have committed after all: its heads are
        # among those read now.
        self._settle_earlier_attempts(accepted)
        again, heads_again = self._check_and_seal(
            [r for r in accepted if not r.finished], now_ms=now_ms, refresh=False
        )
        if again != accepted or heads_again != heads:
            producer.abort_transaction()
            return False
        copies: list[FutureRecordMetadata] = []
        for request in accepted:
            request.futures = []
            for fields, value, family in zip(
                request.sealed, request.values, request.families, strict=True
            ):
                key = fields[1].encode("utf-8")
                request.futures.append(
                    producer.send(
                        self._config.log_topic,
                        key=key,
                        value=value,
                        partition=0,
                        timestamp_ms=now_ms,
                    )
                )
                copies.append(producer.send(family, key=key, value=value, timestamp_ms=now_ms))
        producer.flush(timeout=timeout)
        # The worst moment to die: heads and envelopes written, the transaction still open.
        crash_point("kafka.append.before_commit")
        producer.commit_transaction()
        # Every send must have succeeded, not only those whose offsets are returned: when a send
        # is refused for a stale epoch, kafka-python bumps the epoch, which aborts the
        # transaction, and then completes commit_transaction() without committing anything.
        # So nothing counts as stored before all of them are checked.
        for future in copies:
            future.get(timeout=timeout)
        offsets = [[f.get(timeout=timeout).offset for f in r.futures] for r in accepted]
        last_head = max(f.get(timeout=timeout).offset for f in head_futures)
        self.transactions += 1
        for request, stored_at in zip(accepted, offsets, strict=True):
            request.result = [
                Envelope(*fields, offset + 1)
                for fields, offset in zip(request.sealed, stored_at, strict=True)
            ]
        last_log = max(stored_at[-1] for stored_at in offsets)
        self._heads.record(heads)
        self._offsets.wait_visible(last_log=last_log, last_head=last_head)
        return True

    def _send_heads(
        self, producer: KafkaProducer, heads: dict[str, Head], *, now_ms: int
    ) -> list[FutureRecordMetadata]:
        return [
            producer.send(
                self._config.heads_topic,
                key=stream_id.encode("utf-8"),
                value=encode_head(head),
                partition=0,
                timestamp_ms=now_ms,
            )
            for stream_id, head in heads.items()
        ]

    def _check_and_seal(
        self, pending: list[_Request], *, now_ms: int, refresh: bool
    ) -> tuple[list[_Request], dict[str, Head]]:
        """Check each request against the heads (and those of the requests before it) and seal.

        Sets a conflict or sealing error on the requests that fail; returns the accepted ones and
        the heads they produce (new streams start at ``now_ms``). With ``refresh``, a caller
        that expects a version above the one known reads the heads again first.
        """
        produced: dict[str, Head] = {}
        accepted: list[_Request] = []
        refreshed = not refresh
        for request in pending:
            base: dict[str, Head | None] = {}
            for item in request.appends:
                head = produced.get(item.stream_id) or self._heads.get(item.stream_id)
                version = head.version if head else 0
                if version < item.expected_version and not refreshed:
                    # The caller saw a version this writer has not read yet: read again before
                    # calling it a conflict (a version above the expected one is a sure conflict).
                    self._heads.catch_up()
                    refreshed = True
                    head = produced.get(item.stream_id) or self._heads.get(item.stream_id)
                    version = head.version if head else 0
                if version != item.expected_version:
                    request.error = ConcurrencyConflict(
                        item.stream_id, item.expected_version, version
                    )
                    break
                base[item.stream_id] = head
            if request.error is not None:
                continue
            if request.base != base:
                try:
                    self._seal(request, base)
                except (ValueError, TypeError, EventLogError) as exc:
                    request.error = exc
                    continue
            for stream_id, (version, last_hash) in request.final_heads().items():
                previous = base[stream_id]
                first_ts = previous.first_ts if previous else now_ms
                produced[stream_id] = Head(version, last_hash, first_ts)
            accepted.append(request)
        return accepted, produced

    def _seal(self, request: _Request, base: dict[str, Head | None]) -> None:
        sealed: list[SealedFields] = []
        families: list[str] = []
        for item in request.appends:
            head = base[item.stream_id]
            sealed.extend(
                seal_fields(
                    item.events,
                    stream_id=item.stream_id,
                    after_sequence=item.expected_version,
                    prev_hash=head.last_hash if head else ZERO_HASH,
                )
            )
            families.extend(self._config.family_topic(evt.topic) for evt in item.events)
        values = [encode_envelope(fields) for fields in sealed]
        for fields, value in zip(sealed, values, strict=True):
            if len(value) > MAX_MESSAGE_BYTES - _RECORD_OVERHEAD:
                raise EventLogError(
                    f"event {fields[3]} for {fields[1]!r} is {len(value)} bytes; the Kafka log "
                    f"takes at most {MAX_MESSAGE_BYTES - _RECORD_OVERHEAD}"
                )
        request.base, request.sealed, request.values, request.families = (
            base,
            sealed,
            values,
            families,
        )

    def _settle_earlier_attempts(self, pending: list[_Request]) -> None:
        """Finish requests whose transaction did commit although the attempt reported an error.

        The heads were read again after the producer was re-created, so a request whose streams
        all end with its own last hashes was stored (hashes cover the event ids).
        """
        for request in pending:
            if not request.futures:
                continue
            mine = request.final_heads()
            heads = {stream_id: self._heads.get(stream_id) for stream_id in mine}
            if any(
                head is None or (head.version, head.last_hash) != final
                for head, final in zip(heads.values(), mine.values(), strict=True)
            ):
                continue
            stored: dict[str, Envelope] = {}
            for item in request.appends:
                for envelope in self._locate(item.stream_id, item.expected_version + 1):
                    stored[envelope.event_id] = envelope
            request.result = [stored[fields[0]] for fields in request.sealed]

    # -- producer and visibility -------------------------------------------------------------

    def _lease(self) -> KafkaProducer:
        """The transactional producer under this writer's name, initialized, and the heads read.

        Initializing fences an earlier producer of the same name only (a zombie of this writer)
        and aborts the transaction it left open.
        """
        if self._producer is None:
            self._producer = new_transactional_producer(self._config)
            self._heads.catch_up()
        return self._producer

    def _drop_producer(self) -> None:
        if self._producer is not None:
            self.fencings += 1
            close_quietly(self._producer)
            self._producer = None

    def close(self) -> None:
        with self._write_lock:
            close_quietly(self._producer)
            self._producer = None
            self._offsets.close()
