"""The Apache Kafka event log backend (kafka-python), opened as ``kafka://host:port[?prefix=...]``.

- :mod:`.log`: :class:`KafkaEventLog`, the :class:`~ledger.eventlog.base.EventLog` contract on
  Kafka topics (design and guarantees in its docstring);
- :mod:`.writer`: optimistic concurrency, each writer under its own transactional id, its
  transactions serialized by their turn on the heads topic (:mod:`.turns` waits for it);
- :mod:`.consumer`: consumer groups over the family topics, for workers;
- :mod:`.broker`: a real single-node broker from Maven Central jars, for tests and local use
  (:mod:`.broker_cli`, ``scripts/kafka/kafka.sh up|down|status``).
"""

from __future__ import annotations

from ledger.eventlog.kafka.config import KafkaLogConfig, parse_url
from ledger.eventlog.kafka.consumer import Delivery, FamilyConsumer
from ledger.eventlog.kafka.errors import KafkaBrokerError, KafkaUnavailable
from ledger.eventlog.kafka.log import KafkaEventLog, open_url


def kafka_url(bootstrap: str, *, prefix: str | None = None) -> str:
    """The ``kafka://`` URL of the log with topic ``prefix`` (default ``byr``) at ``bootstrap``."""
    config = KafkaLogConfig(bootstrap=bootstrap)
    if prefix:
        config = KafkaLogConfig(bootstrap=bootstrap, prefix=prefix)
    return config.url()


__all__ = [
    "Delivery",
    "FamilyConsumer",
    "KafkaBrokerError",
    "KafkaEventLog",
    "KafkaLogConfig",
    "KafkaUnavailable",
    "kafka_url",
    "open_url",
    "parse_url",
]
