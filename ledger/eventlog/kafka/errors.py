"""Errors of the Kafka event log backend; kafka-python errors are translated into these."""

from __future__ import annotations

from ledger.eventlog.base import EventLogError


class KafkaUnavailable(EventLogError):
    """The brokers at ``bootstrap`` did not answer in time; retrying later may succeed.

    Nothing was stored by the call that raised it, unless the message says the outcome is unknown.
    """

    retryable = True

    def __init__(self, bootstrap: str, detail: str) -> None:
        super().__init__(f"Kafka at {bootstrap} is unavailable: {detail}")
        self.bootstrap = bootstrap
        self.detail = detail

    def __reduce__(self) -> tuple[type[KafkaUnavailable], tuple[str, str]]:
        return (KafkaUnavailable, (self.bootstrap, self.detail))


class KafkaBrokerError(EventLogError):
    """The local development broker could not be installed, started or stopped."""
