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
from collections.abc import Iterator

from ledger.application import CorpusLedger
from ledger.eventlog.kafka import Delivery, KafkaEventLog
from ledger.eventlog.kafka.consumer import FamilyConsumer
from ledger.events import CorpusBatchSubmitted, Topic
from ledger.jobs import ClaimedJob
from ledger.projections.outbox import JobKind

log = logging.getLogger("byr.worker.kafka")


def governance_group(event_log: KafkaEventLog) -> str:
    """The consumer group that governance workers of ``event_log`` share."""
    return f"{event_log.config.prefix}-governance"


class ConsumerGroupJobs:
    """``govern`` jobs as the consumer group hands them to this member: one delivery per claim.

    A claim polls for at most ``poll_timeout_s`` seconds (it blocks while idle, so a worker need
    not wait for the log between empty steps). A delivered batch whose governance job is already
    closed (a redelivery after another member decided it) is handed out as stale. The offset is
    committed when the job was performed; a job that raises makes the member rejoin, so the group
    delivers again from the last committed offset. Use it from one thread; :meth:`close` leaves
    the group so the partitions move to the other members.
    """

    blocks_when_idle = True

    def __init__(
        self, *, event_log: KafkaEventLog, ledger: CorpusLedger, poll_timeout_s: float = 1.0
    ) -> None:
        self.ledger = ledger
        self.poll_timeout_s = poll_timeout_s
        self.group_id = governance_group(event_log)
        self._event_log = event_log
        self._consumer: FamilyConsumer = self._join()

    def _join(self) -> FamilyConsumer:
        # One delivery per poll: governing a batch takes seconds, and a member takes part in a
        # rebalance only when it polls. A member that took a hundred deliveries at once would
        # govern all of them before a worker that joined meanwhile received any partition.
        return self._event_log.consume(group_id=self.group_id, topics=[Topic.CORPUS], max_records=1)

    def claim(self, kind: JobKind) -> Iterator[ClaimedJob]:
        if kind is not JobKind.GOVERN:
            raise ValueError(f"the governance consumer group hands out govern jobs, not {kind}")
        for delivery in self._consumer.poll(timeout=self.poll_timeout_s):
            batch_id = self._batch_id(delivery)
            if batch_id is None:
                delivery.commit()
                continue
            # The delivery can run ahead of this worker's projections: catch them up first, so
            # the batch and its governance job are visible.
            self.ledger.sync()
            stale = batch_id not in self.ledger.pending_jobs(JobKind.GOVERN)
            # Committed only after the decision is in the log: a crash before the commit makes
            # the group deliver the batch again, and the pending-job check makes that harmless.
            yield ClaimedJob(batch_id, ack=delivery.commit, stale=stale)

    @staticmethod
    def _batch_id(delivery: Delivery) -> str | None:
        envelope = delivery.envelope
        if envelope.event_type != CorpusBatchSubmitted.event_type:
            return None
        return str(envelope.payload["batch_id"])

    def abandon(self) -> None:
        """The consumer's position is already past the failed delivery: rejoin."""
        self._consumer.close()
        self._consumer = self._join()

    def close(self) -> None:
        """Leave the consumer group. Idempotent."""
        self._consumer.close()
