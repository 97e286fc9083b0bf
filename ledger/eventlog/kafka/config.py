"""Settings of a Kafka event log: brokers, topic names, sizes and time limits, read from a URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from ledger.eventlog.base import EventLogURLError
from ledger.events import Topic

_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_WRITER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest envelope the log accepts (a corpus batch event carries its records)."""


@dataclass(frozen=True, slots=True)
class KafkaLogConfig:
    """Where a Kafka event log lives and how long it waits for the brokers.

    Topics: ``<prefix>.log`` (one partition, the source of truth and its total order),
    ``<prefix>.heads`` (one partition, compacted: every stream's head) and one topic per event
    family, ``<prefix>.<family>`` (``family_partitions`` partitions keyed by stream id, for consumer
    groups). The default prefix ``byr`` gives the family topics the names of
    :class:`~ledger.events.Topic` (``byr.corpus``, ...).
    """

    bootstrap: str
    prefix: str = "byr"
    writer: str = "main"
    """This process's writer name: its transactional id is ``<prefix>.writer.<writer>``. Writers
    of different names append side by side; a writer fences only an earlier producer of its own
    name. Give a process the same name on every start (a worker: its kind and home), so it aborts
    the transaction its crashed predecessor left open instead of waiting for it to time out."""
    family_partitions: int = 6
    timeout_s: float = 30.0
    """How long an operation keeps retrying an unreachable broker before raising."""
    transaction_timeout_s: float = 15.0
    """How long a transaction left open by a crashed writer blocks readers (at most)."""
    erase_within_s: float = 900.0
    """The records topic's ``max.compaction.lag.ms`` (as seconds), set when the topic is created:
    the longest an erased body can stay in the brokers' files, plus the cleaner's backoff (see
    ``ledger.recordstore.kafka``). Smaller means erasure completes sooner and busy partitions are
    rewritten more often."""

    def __post_init__(self) -> None:
        if not self.bootstrap or any(not part.strip() for part in self.bootstrap.split(",")):
            raise ValueError(f"bootstrap must list host:port pairs, got {self.bootstrap!r}")
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(
                f"prefix must be letters, digits, '_' or '-' (at most 100), got {self.prefix!r}"
            )
        if not _WRITER_RE.match(self.writer):
            raise ValueError(
                "writer must be letters, digits, '.', '_' or '-' (at most 100), starting with a "
                "letter or digit"
            )
        if not 1 <= self.family_partitions <= 1000:
            raise ValueError(f"family_partitions must be 1..1000, got {self.family_partitions}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if not 1.0 <= self.transaction_timeout_s <= 900.0:
            raise ValueError("transaction_timeout_s must be within 1..900 s")
        if not 2.0 <= self.erase_within_s <= 7 * 86400.0:
            raise ValueError("erase_within_s must be within 2 s..7 days")

    @property
    def log_topic(self) -> str:
        return f"{self.prefix}.log"

    @property
    def heads_topic(self) -> str:
        return f"{self.prefix}.heads"

    @property
    def transactional_id(self) -> str:
        """This writer's identity on the log: a new producer fences only an older one of the
        same name."""
        return f"{self.prefix}.writer.{self.writer}"

    def family_topic(self, topic: Topic | str) -> str:
        """The Kafka topic of an event family: ``byr.corpus`` -> ``<prefix>.corpus``."""
        value = topic.value if isinstance(topic, Topic) else topic
        return f"{self.prefix}.{value.split('.', 1)[-1]}"

    def url(self) -> str:
        """The ``kafka://`` URL that opens this configuration."""
        defaults = KafkaLogConfig(bootstrap=self.bootstrap)
        options = {
            name: getattr(self, name)
            for name in (
                "prefix",
                "writer",
                "family_partitions",
                "timeout_s",
                "transaction_timeout_s",
                "erase_within_s",
            )
            if getattr(self, name) != getattr(defaults, name)
        }
        query = f"?{urlencode(options)}" if options else ""
        return f"kafka://{self.bootstrap}{query}"


_OPTIONS: dict[str, type] = {
    "prefix": str,
    "writer": str,
    "family_partitions": int,
    "timeout_s": float,
    "transaction_timeout_s": float,
    "erase_within_s": float,
}


def parse_url(url: str) -> KafkaLogConfig:
    """``kafka://host:port[,host:port...][?prefix=byr&writer=main&family_partitions=6&...]``."""
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise EventLogURLError(f"not a kafka URL: {url!r}")
    if not parts.netloc or parts.path not in ("", "/"):
        raise EventLogURLError(
            f"a kafka URL names its brokers and nothing else: kafka://host:port, got {url!r}"
        )
    for broker in parts.netloc.split(","):
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise EventLogURLError(f"broker {broker!r} in {url!r} is not host:port")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise EventLogURLError(
            f"unknown kafka URL option(s) {sorted(unknown)} in {url!r}; known: {sorted(_OPTIONS)}"
        )
    values: dict[str, object] = {}
    for name, kind in _OPTIONS.items():
        if name in options:
            raw = options[name][-1]
            try:
                values[name] = kind(raw)
            except ValueError:
                raise EventLogURLError(
                    f"{name}={raw!r} in {url!r} is not a {kind.__name__}"
                ) from None
    try:
        return KafkaLogConfig(bootstrap=parts.netloc, **values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise EventLogURLError(f"{exc} (in {url!r})") from None
