"""A real Kafka broker for tests, shared by the whole session.

``BYR_TEST_KAFKA=host:port`` names a running broker to use. Otherwise one is started from Maven
Central jars (``ledger.eventlog.kafka.broker``; the first run downloads them, later runs use the
cache) in a temporary folder on free ports, and stopped at the end of the session. Without java
and mvn the Kafka tests are skipped, except when ``CI=true``: there a missing or failing broker
fails them.

Test modules import the fixtures they use::

    from tests.kafka_fixtures import kafka_broker_fixture  # noqa: F401 - provides kafka_broker
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.eventlog.kafka.broker import BrokerConfig, LocalBroker, free_port, tools_available
from ledger.eventlog.kafka.errors import KafkaBrokerError


@dataclass(frozen=True)
class KafkaForTests:
    """The broker the tests talk to; ``local`` is set when the session started it itself."""

    bootstrap: str
    local: LocalBroker | None

    def url(self, prefix: str | None = None, **options: object) -> str:
        """A ``kafka://`` URL on a fresh topic prefix (so every test has its own log)."""
        query = {"prefix": prefix or new_prefix(), **options}
        return f"kafka://{self.bootstrap}?" + "&".join(f"{k}={v}" for k, v in query.items())


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _unavailable(reason: str) -> None:
    message = f"no Kafka broker for the Kafka tests: {reason}"
    if in_ci():
        pytest.fail(message + " (CI=true: the Kafka tests must run)", pytrace=False)
    pytest.skip(message)


def start_local_broker(home: os.PathLike[str] | str) -> LocalBroker:
    """Start a broker in ``home`` on two free ports (fails the test if it cannot start)."""
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    broker = LocalBroker(
        BrokerConfig(home=Path(home), port=port, controller_port=controller_port, heap_mb=512)
    )
    try:
        broker.up(timeout_s=240)
    except KafkaBrokerError as exc:
        broker.down()
        pytest.fail(f"the local Kafka broker did not start: {exc}", pytrace=False)
    return broker


@pytest.fixture(scope="session", name="kafka_broker")
def kafka_broker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaForTests]:
    external = os.environ.get("BYR_TEST_KAFKA", "").strip()
    if external:
        yield KafkaForTests(external, None)
        return
    missing = tools_available()
    if missing:
        _unavailable(f"BYR_TEST_KAFKA is not set and {missing} to start one")
    broker = start_local_broker(tmp_path_factory.mktemp("kafka-broker"))
    try:
        yield KafkaForTests(broker.bootstrap, broker)
    finally:
        broker.down()
