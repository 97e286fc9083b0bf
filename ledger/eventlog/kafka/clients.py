"""kafka-python clients configured for the event log, topic creation, and error translation.

Every call into kafka-python goes through :func:`translated`, so callers of the backend only ever
see :class:`~ledger.eventlog.base.EventLogError` subclasses: an unreachable or timed-out broker
becomes :class:`~ledger.eventlog.kafka.errors.KafkaUnavailable` (retryable, naming the bootstrap
address), anything else :class:`~ledger.eventlog.base.EventLogError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors

from ledger.eventlog.base import EventLogError
from ledger.eventlog.kafka.config import MAX_MESSAGE_BYTES, KafkaLogConfig
from ledger.eventlog.kafka.errors import KafkaUnavailable

_TOPIC_ALREADY_EXISTS = kafka_errors.TopicAlreadyExistsError.errno
_KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
_RECONNECT_BACKOFF_MAX_MS = 1000
"""Reconnect attempts back off to at most this: a restarted broker is used again within 1 s
(kafka-python's default, 30 s, would leave an append waiting long after the broker is back)."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the brokers could not be reached or answered too late."""
    return isinstance(
        exc,
        kafka_errors.KafkaTimeoutError
        | kafka_errors.KafkaConnectionError
        | kafka_errors.RequestTimedOutError
        | kafka_errors.NodeNotReadyError
        | kafka_errors.NotLeaderForPartitionError
        | kafka_errors.CoordinatorNotAvailableError
        | kafka_errors.NotCoordinatorError
        | kafka_errors.UnknownTopicOrPartitionError
        | ConnectionError,
    ) or bool(getattr(exc, "retriable", False))


@contextmanager
def translated(config: KafkaLogConfig, what: str) -> Iterator[None]:
    """Re-raise kafka-python errors from the block as event log errors naming ``what``."""
    try:
        yield
    except kafka_errors.KafkaError as exc:
        if is_unavailable(exc):
            raise KafkaUnavailable(config.bootstrap, f"{what}: {exc!r}") from exc
        raise EventLogError(f"{what} failed on Kafka at {config.bootstrap}: {exc!r}") from exc


def _timeout_ms(config: KafkaLogConfig) -> int:
    return int(config.timeout_s * 1000)


def new_admin(config: KafkaLogConfig) -> KafkaAdminClient:
    with translated(config, "connecting an admin client"):
        return KafkaAdminClient(
            bootstrap_servers=config.bootstrap,
            client_id=f"{config.prefix}-admin",
            bootstrap_timeout_ms=_timeout_ms(config),
            request_timeout_ms=_timeout_ms(config),
            reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
        )


def new_consumer(
    config: KafkaLogConfig,
    *,
    topics: Iterable[str] = (),
    group_id: str | None = None,
    read_committed: bool = True,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer that sees only committed transactions and never commits offsets by itself."""
    settings: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap,
        "client_id": f"{config.prefix}-{group_id or 'reader'}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed" if read_committed else "read_uncommitted",
        "bootstrap_timeout_ms": _timeout_ms(config),
        # An idle follower's fetch returns after this long, so it notices a stop request soon.
        "fetch_max_wait_ms": 100,
        "max_partition_fetch_bytes": MAX_MESSAGE_BYTES,
        "fetch_max_bytes": 4 * MAX_MESSAGE_BYTES,
        "reconnect_backoff_max_ms": _RECONNECT_BACKOFF_MAX_MS,
    }
    settings.update(overrides)
    with translated(config, "connecting a consumer"):
        return KafkaConsumer(*topics, **settings)


def new_reader(config: KafkaLogConfig, *, read_committed: bool = True) -> KafkaConsumer:
    """A consumer for bounded reads (up to an end offset looked up first), not for following.

    Its fetches return after at most 5 ms when there is nothing new. kafka-python leaves a fetch
    in flight after each poll, and a broker answers one connection's requests in order: with the
    default 100 ms wait, the end-offsets lookup that starts the next read queued behind that
    fetch and took about 40 ms on average.
    """
    return new_consumer(config, read_committed=read_committed, fetch_max_wait_ms=5)


def new_transactional_producer(config: KafkaLogConfig) -> KafkaProducer:
    """A writer of the log: idempotent, ``acks=all``, transactional under ``config.writer``'s id.

    ``init_transactions`` fences every earlier producer of the same id (in this process or any
    other) and completes or aborts the transaction it left open; producers of other ids are
    left alone.
    """
    with translated(config, "starting the transactional writer"):
        producer = KafkaProducer(
            bootstrap_servers=config.bootstrap,
            client_id=f"{config.prefix}-writer-{config.writer}",
            transactional_id=config.transactional_id,
            transaction_timeout_ms=int(config.transaction_timeout_s * 1000),
            enable_idempotence=True,
            acks="all",
            # Records wait in the accumulator until the writer flushes before committing: one
            # request per partition per transaction, instead of waking the sender thread for
            # every small batch (which costs more than the sends themselves in kafka-python).
            linger_ms=1000,
            batch_size=1024 * 1024,
            # The coordinator answers CONCURRENT_TRANSACTIONS while the previous transaction's
            # markers are written (a few ms); the default 100 ms back-off would dominate latency.
            retry_backoff_ms=10,
            max_block_ms=_timeout_ms(config),
            delivery_timeout_ms=max(_timeout_ms(config), 31_000),
            request_timeout_ms=30_000,
            bootstrap_timeout_ms=_timeout_ms(config),
            reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
            max_request_size=MAX_MESSAGE_BYTES,
        )
        try:
            producer.init_transactions()
        except BaseException:
            producer.close(timeout=0)
            raise
        return producer


def close_quietly(client: KafkaConsumer | KafkaProducer | KafkaAdminClient | None) -> None:
    """Close a client that may already be broken; errors while closing are of no use then."""
    if client is None:
        return
    try:
        if isinstance(client, KafkaProducer):
            client.close(timeout=1)
        else:
            client.close()
    except Exception:
        # A client that fails to close has nothing left to release or report.
        pass


def ensure_topics(
    config: KafkaLogConfig, admin: KafkaAdminClient, specs: dict[str, dict[str, Any]]
) -> None:
    """Create the topics in ``specs`` that do not exist yet and wait until they have leaders."""
    if not specs:
        return
    with translated(config, f"creating topics {sorted(specs)}"):
        response = admin.create_topics(specs, timeout_ms=_timeout_ms(config), raise_errors=False)
        for topic in response["topics"]:
            code = topic["error_code"]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise kafka_errors.for_code(code)(
                    f"topic {topic['name']}: {topic['error_message']}"
                )
        admin.wait_for_topics(list(specs), timeout_ms=_timeout_ms(config))


def log_topic_specs(config: KafkaLogConfig) -> dict[str, dict[str, Any]]:
    """The log topic (one partition, kept forever) and the heads topic (one, compacted)."""
    big = {"max.message.bytes": str(MAX_MESSAGE_BYTES), "message.timestamp.type": "CreateTime"}
    return {
        config.log_topic: {
            "num_partitions": 1,
            "replication_factor": -1,
            "configs": {**_KEEP_FOREVER, **big, "cleanup.policy": "delete"},
        },
        config.heads_topic: {
            "num_partitions": 1,
            "replication_factor": -1,
            "configs": {"cleanup.policy": "compact"},
        },
    }


def family_topic_spec(config: KafkaLogConfig) -> dict[str, Any]:
    """A family topic: keyed by stream id over several partitions, kept forever for replays.

    Replication follows the cluster's ``default.replication.factor`` (1 on the local broker).
    """
    return {
        "num_partitions": config.family_partitions,
        "replication_factor": -1,
        "configs": {
            **_KEEP_FOREVER,
            "max.message.bytes": str(MAX_MESSAGE_BYTES),
            "cleanup.policy": "delete",
        },
    }


def partition(topic: str) -> TopicPartition:
    """Partition 0 of ``topic`` (the log and heads topics have exactly one)."""
    return TopicPartition(topic, 0)
