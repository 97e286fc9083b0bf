"""The last stable offsets of the log and heads partitions: whose turn it is, what readers see.

A ``read_committed`` reader stops at a partition's last stable offset, the first record of the
oldest transaction still open there. The writer uses that twice per append
(:mod:`ledger.eventlog.kafka.writer`): on the heads topic to wait for its turn (every transaction
that wrote heads before its own first head record is decided), and on both partitions to wait
until its commit is readable.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer
from kafka import errors as kafka_errors

from ledger.eventlog.kafka.clients import close_quietly, new_consumer, partition, translated
from ledger.eventlog.kafka.config import KafkaLogConfig
from ledger.eventlog.kafka.errors import KafkaUnavailable


class StableOffsets:
    """One consumer that asks for the two partitions' last stable offsets (not thread-safe: its
    writer's lock guards it)."""

    def __init__(self, config: KafkaLogConfig) -> None:
        self._config = config
        self._log_tp = partition(config.log_topic)
        self._heads_tp = partition(config.heads_topic)
        self._probe: KafkaConsumer | None = None

    def ends(self) -> tuple[int, int]:
        """(log, heads) last stable offsets; -1 for a partition not known yet. Raises
        kafka-python errors untranslated."""
        if self._probe is None:
            self._probe = new_consumer(self._config)
        ends = self._probe.end_offsets([self._log_tp, self._heads_tp])
        # kafka-python leaves out a partition whose topic its metadata does not hold yet.
        return int(ends.get(self._log_tp, -1)), int(ends.get(self._heads_tp, -1))

    def wait_for_turn(self, turn: int) -> None:
        """Wait until every transaction that wrote heads before offset ``turn`` is decided.

        The heads topic's last stable offset reaches ``turn`` (the caller's own first head
        record, in its open transaction) exactly when every earlier one is committed or aborted.
        A writer that crashed mid-transaction holds it back until it restarts under its name or
        the broker aborts it (``transaction_timeout_s``). Raises ``KafkaTimeoutError`` after
        ``timeout_s``.
        """
        limit = self._config.timeout_s
        deadline = time.monotonic() + limit
        pause = 0.001
        while self.ends()[1] < turn:
            if time.monotonic() > deadline:
                raise kafka_errors.KafkaTimeoutError(
                    f"the transactions before offset {turn} of {self._config.heads_topic} "
                    f"were not decided within {limit:.0f} s"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def wait_visible(self, *, last_log: int, last_head: int) -> None:
        """Wait until read-committed readers see a commit whose last records are at ``last_log``
        and ``last_head``.

        ``commit_transaction`` returns once the coordinator has logged the decision; the markers
        that make the records readable follow within milliseconds.
        """
        deadline = time.monotonic() + self._config.timeout_s
        try:
            with translated(self._config, "waiting for the commit to be readable"):
                while time.monotonic() < deadline:
                    log_end, heads_end = self.ends()
                    if log_end > last_log and heads_end > last_head:
                        return
                    time.sleep(0.002)
        except KafkaUnavailable:
            # The commit is durable; it becomes readable once the broker writes the markers.
            return

    def close(self) -> None:
        close_quietly(self._probe)
        self._probe = None
