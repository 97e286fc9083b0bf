"""Consumer groups over the family topics: how workers share the event stream.

Each member of a group gets a share of the family topics' partitions; a stream's envelopes all
land in one partition (the stream id is the key), so one member sees them in order. Delivery is
at least once: an offset is committed only by :meth:`Delivery.commit`, after the worker has
processed the envelope, so a crash or a rebalance delivers the uncommitted ones again (workers
skip event ids they have already handled). Only committed transactions are delivered.

Example::

    with log.consume(group_id="governance", topics=[Topic.CORPUS]) as consumer:
        for delivery in consumer.deliveries(stop=stop):
            handle(delivery.envelope)
            delivery.commit()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from ledger.eventlog.base import EventLogError
from ledger.eventlog.kafka.clients import close_quietly, new_consumer, translated
from ledger.eventlog.kafka.config import KafkaLogConfig
from ledger.eventlog.kafka.errors import KafkaUnavailable
from ledger.eventlog.kafka.records import UnreadableRecord, decode_envelope
from ledger.eventlog.kafka.rejoin import finish_joins_between_polls
from ledger.events import Envelope


@dataclass(frozen=True, slots=True)
class Delivery:
    """One envelope from a family topic, with where it was read (its ``position`` is ``None``)."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    _owner: FamilyConsumer = field(repr=False, compare=False)

    def commit(self) -> None:
        """Record this envelope and everything before it in its partition as processed."""
        self._owner.commit(self)


class FamilyConsumer:
    """A member of a consumer group on family topics; use it from one thread only."""

    def __init__(
        self,
        config: KafkaLogConfig,
        *,
        group_id: str,
        topic_names: Sequence[str],
        max_records: int = 100,
    ) -> None:
        if not group_id:
            raise ValueError("group_id must not be empty")
        if not topic_names:
            raise ValueError("name at least one topic")
        self.config = config
        self.group_id = group_id
        self.topic_names = tuple(topic_names)
        self._max_records = max_records
        self._consumer: KafkaConsumer | None = new_consumer(config, group_id=group_id)
        finish_joins_between_polls(self._consumer)
        try:
            self._await_partitions()
            self._consumer.subscribe(self.topic_names)
        except BaseException:
            self.close()
            raise

    def _await_partitions(self) -> None:
        """Wait (up to ``config.timeout_s``) until the topics' partitions are known here.

        Subscribing before that lets the first assignment be computed without them: every member
        gets nothing, and the group has to rebalance again once the metadata arrives.
        """
        client = self._client()
        deadline = time.monotonic() + self.config.timeout_s
        for name in self.topic_names:
            while True:
                with translated(self.config, f"looking up the partitions of {name}"):
                    if client.partitions_for_topic(name):
                        break
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        self.config.bootstrap, f"{name} has no partitions known to the brokers"
                    )
                time.sleep(0.05)

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            raise EventLogError(f"consumer of group {self.group_id!r} is closed")
        return self._consumer

    def poll(self, *, timeout: float) -> list[Delivery]:
        """Envelopes available within ``timeout`` seconds (joining the group on the first call)."""
        client = self._client()
        with translated(self.config, f"polling for group {self.group_id!r}"):
            polled = client.poll(timeout_ms=int(timeout * 1000), max_records=self._max_records)
        out: list[Delivery] = []
        for tp, records in polled.items():
            for record in records:
                try:
                    envelope = decode_envelope(record.value, position=None)
                except UnreadableRecord as exc:
                    raise EventLogError(
                        f"{tp.topic}[{tp.partition}] offset {record.offset} is not an envelope"
                    ) from exc
                out.append(Delivery(envelope, tp.topic, tp.partition, record.offset, self))
        return out

    def deliveries(
        self, *, stop: threading.Event | None = None, poll_interval: float = 0.1
    ) -> Iterator[Delivery]:
        """Yield deliveries until ``stop`` is set (checked at least every ``poll_interval`` s)."""
        while not (stop is not None and stop.is_set()):
            for delivery in self.poll(timeout=poll_interval):
                yield delivery
                if stop is not None and stop.is_set():
                    return

    def commit(self, delivery: Delivery) -> None:
        """Commit ``delivery``'s offset + 1 for its partition (synchronously)."""
        tp = TopicPartition(delivery.topic, delivery.partition)
        with translated(self.config, f"committing for group {self.group_id!r}"):
            self._client().commit({tp: OffsetAndMetadata(delivery.offset + 1, "", -1)})

    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this member holds right now."""
        return {(tp.topic, tp.partition) for tp in self._client().assignment()}

    def close(self) -> None:
        """Leave the group (its partitions move to the other members). Idempotent."""
        close_quietly(self._consumer)
        self._consumer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
