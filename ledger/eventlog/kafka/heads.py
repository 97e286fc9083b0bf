"""Every stream's head, materialized in memory from the compacted heads topic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

from ledger.eventlog.kafka.clients import close_quietly, new_reader, partition, translated
from ledger.eventlog.kafka.config import KafkaLogConfig
from ledger.eventlog.kafka.errors import KafkaUnavailable
from ledger.eventlog.kafka.records import Head, UnreadableRecord, decode_head

_POLL_MS = 10
"""A bounded read polls briefly: a fetch that holds only transaction markers yields no records
but moves the position, and poll() would otherwise wait out its whole timeout before the loop
sees that the end was reached (every read ending at a commit marker, i.e. nearly all, cost it)."""


def read_partition_to_end(
    config: KafkaLogConfig, consumer: KafkaConsumer, *, end: int, what: str
) -> Iterator[ConsumerRecord]:
    """Yield the records of the consumer's one assigned partition from its position up to ``end``.

    Control records (transaction markers) and aborted records are skipped by the consumer but
    still move its position, so the loop ends on the position, not on a record count. Raises
    :class:`KafkaUnavailable` when the position stops moving for ``config.timeout_s``.
    """
    (tp,) = consumer.assignment()
    stalled_since = time.monotonic()
    with translated(config, what):
        position = consumer.position(tp)
        while position < end:
            polled = consumer.poll(timeout_ms=_POLL_MS, max_records=2000)
            yield from polled.get(tp, ())
            moved = consumer.position(tp)
            if moved != position:
                position, stalled_since = moved, time.monotonic()
            elif time.monotonic() - stalled_since > config.timeout_s:
                raise KafkaUnavailable(
                    config.bootstrap, f"{what}: no progress at offset {position} of {end}"
                )


class HeadsView:
    """The heads topic read into a dict; safe to share between threads.

    Versions only move forward in the view: a record older than what the view holds (a catch-up
    replaying history after the writer recorded its own commit) never rolls a head back.
    """

    def __init__(self, config: KafkaLogConfig) -> None:
        self._config = config
        self._tp = partition(config.heads_topic)
        self._lock = threading.Lock()
        self._heads: dict[str, Head] = {}
        self._consumer: KafkaConsumer | None = None

    def get(self, stream_id: str) -> Head | None:
        """The head as last read or recorded (no broker round trip)."""
        with self._lock:
            return self._heads.get(stream_id)

    def catch_up(self) -> None:
        """Read every head committed so far (one round trip when nothing is new)."""
        with self._lock:
            consumer = self._consumer
            if consumer is None:
                consumer = new_reader(self._config)
                consumer.assign([self._tp])
                consumer.seek_to_beginning(self._tp)
                self._consumer = consumer
            try:
                with translated(self._config, "reading stream heads"):
                    end = consumer.end_offsets([self._tp])[self._tp]
                for record in read_partition_to_end(
                    self._config, consumer, end=end, what="reading stream heads"
                ):
                    try:
                        head = decode_head(record.value)
                    except UnreadableRecord:
                        # Only a foreign writer puts such a record here; verification reports it.
                        continue
                    self._advance(record.key.decode("utf-8", "replace"), head)
            except BaseException:
                # Its position is unknown now: read again from the beginning next time (the heads
                # already known stay: re-reading them cannot move a version back).
                close_quietly(consumer)
                self._consumer = None
                raise

    def record(self, heads: Mapping[str, Head]) -> None:
        """Take the heads a commit of this process wrote (before the topic is read back)."""
        with self._lock:
            for stream_id, head in heads.items():
                self._advance(stream_id, head)

    def _advance(self, stream_id: str, head: Head) -> None:
        current = self._heads.get(stream_id)
        if current is None or head.version > current.version:
            self._heads[stream_id] = head

    def close(self) -> None:
        with self._lock:
            close_quietly(self._consumer)
            self._consumer = None
