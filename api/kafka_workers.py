"""Governance workers over a Kafka consumer group.

With a Kafka event log, several governance workers share the corpus family topic through one
consumer group, ``<prefix>-governance``: each member receives the ``CorpusBatchSubmitted``
envelopes of its share of the partitions and governs exactly those batches. Delivery is at least
once (an offset is committed only after the batch is decided), so a worker that dies or loses its
partitions leaves the uncommitted batches to the next member. Decisions stay exactly once: the
``BatchGoverned`` append is conditional on the batch stream's version, and a batch whose
governance job is no longer pending is skipped.

Each worker may have its own home (projections and near-duplicate index): the index is a
projection of the log's ``corpus-index`` stream, and decisions that accept records append to that
stream conditionally, so a near-duplicate pair split across two workers is still caught (see
:mod:`ingest.governance.service`).
"""

from __future__ import annotations

import logging
from typing import Any

from api.runtime import Runtime
from ledger.eventlog.base import ConcurrencyConflict
from ledger.eventlog.kafka import Delivery, KafkaEventLog
from ledger.eventlog.kafka.consumer import FamilyConsumer
from ledger.events import CorpusBatchSubmitted, Topic
from ledger.projections.outbox import JobKind

log = logging.getLogger("byr.worker.kafka")


def governance_group(event_log: KafkaEventLog) -> str:
    """The consumer group that governance workers of ``event_log`` share."""
    return f"{event_log.config.prefix}-governance"


class KafkaGovernanceStep:
    """One governance step: poll the corpus topic, govern the delivered batches, commit.

    Each call polls for at most ``poll_timeout_s`` seconds (the step blocks while idle, so the
    caller need not wait for the log between empty steps) and returns ``(items, detail)`` where
    ``items`` counts the batches this worker governed. Use it from one thread; :meth:`close`
    leaves the group so the partitions move to the other members.
    """

    blocks_when_idle = True

    def __init__(self, runtime: Runtime, *, poll_timeout_s: float = 1.0) -> None:
        event_log = runtime.log
        if not isinstance(event_log, KafkaEventLog):
            raise TypeError(f"the Kafka governance step needs a Kafka event log, got {event_log!r}")
        self.runtime = runtime
        self.poll_timeout_s = poll_timeout_s
        self.group_id = governance_group(event_log)
        self._event_log = event_log
        self._consumer: FamilyConsumer = self._join()

    def _join(self) -> FamilyConsumer:
        # One delivery per poll: governing a batch takes seconds, and a member takes part in a
        # rebalance only when it polls. A member that took a hundred deliveries at once would
        # govern all of them before a worker that joined meanwhile received any partition.
        return self._event_log.consume(group_id=self.group_id, topics=[Topic.CORPUS], max_records=1)

    def __call__(self) -> tuple[int, dict[str, Any]]:
        governed: dict[str, dict[str, int]] = {}
        skipped: list[str] = []
        for delivery in self._consumer.poll(timeout=self.poll_timeout_s):
            batch_id = self._batch_id(delivery)
            if batch_id is not None:
                try:
                    counts = self._govern(batch_id)
                except Exception:
                    # The consumer's position is already past the failed delivery: rejoin so
                    # the group delivers again from the last committed offset.
                    self._consumer.close()
                    self._consumer = self._join()
                    raise
                if counts is None:
                    skipped.append(batch_id)
                else:
                    governed[batch_id] = counts
            # Committed only after the decision is in the log: a crash before this line makes
            # the group deliver the batch again, and the pending-job check makes that harmless.
            delivery.commit()
        return len(governed), {"governed": governed, "skipped": skipped, "group": self.group_id}

    @staticmethod
    def _batch_id(delivery: Delivery) -> str | None:
        envelope = delivery.envelope
        if envelope.event_type != CorpusBatchSubmitted.event_type:
            return None
        return str(envelope.payload["batch_id"])

    def _govern(self, batch_id: str) -> dict[str, int] | None:
        """Govern ``batch_id`` unless it is already decided; ``None`` when skipped."""
        ledger = self.runtime.ledger
        # The delivery can run ahead of this worker's projections: pending_jobs catches them up
        # first, so the batch and its governance job are visible.
        if batch_id not in ledger.pending_jobs(JobKind.GOVERN):
            return None
        try:
            return self.runtime.governance.govern_batch(batch_id)
        except ConcurrencyConflict:
            log.info("batch %s was decided by another worker", batch_id)
            ledger.sync()
            return None

    def close(self) -> None:
        """Leave the consumer group. Idempotent."""
        self._consumer.close()
