"""The event machinery: the event base class and its registry, envelopes, hashing and decoding.

An event class says *what happened*; the log stores it inside an :class:`Envelope` that adds
identity, ordering and a tamper-evident hash chain. Event classes register once, under their class
name, with a topic and a schema version (:func:`event`); :func:`decode` looks an envelope's type up
in the registry, upcasts old schema versions (:func:`upcaster`), and fails loudly on unknown types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import rfc8785
from pydantic import BaseModel, ConfigDict

from ledger.errors import LedgerError

ZERO_HASH = "0" * 64


class Topic(StrEnum):
    """Event families; the Kafka backend maps each to a topic."""

    INSTITUTIONS = "byr.institutions"
    CORPUS = "byr.corpus"
    CHAIN = "byr.chain"
    REWARDS = "byr.rewards"
    TRAINING = "byr.training"


class UnknownEventType(LedgerError):
    """An envelope names an event type (or version) that this code does not know."""


class DomainEvent(BaseModel):
    """Base class of every event. Subclasses are registered with :func:`event`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[Topic]
    schema_version: ClassVar[int]


E = TypeVar("E", bound=type[DomainEvent])

_REGISTRY: dict[str, type[DomainEvent]] = {}
_UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def event(*, topic: Topic, version: int = 1) -> Callable[[E], E]:
    """Register an event class under its class name with ``topic`` and schema ``version``."""

    def register(cls: E) -> E:
        name = cls.__name__
        if name in _REGISTRY:
            raise ValueError(f"event type {name} registered twice")
        cls.event_type = name
        cls.topic = topic
        cls.schema_version = version
        _REGISTRY[name] = cls
        return cls

    return register


def upcaster(
    event_type: str, from_version: int
) -> Callable[
    [Callable[[dict[str, Any]], dict[str, Any]]], Callable[[dict[str, Any]], dict[str, Any]]
]:
    """Register a function turning a ``from_version`` payload into a ``from_version + 1`` one."""

    def register(
        fn: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def event_class(event_type: str) -> type[DomainEvent]:
    """The registered class for ``event_type``; raises :class:`UnknownEventType`."""
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r}") from None


def registered_events() -> Mapping[str, type[DomainEvent]]:
    return dict(_REGISTRY)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One stored event: identity, ordering, payload and the per-stream hash chain.

    ``hash`` covers every field except ``hash`` and ``position`` (the position is assigned by the
    log and differs between backends). ``prev_hash`` is the previous envelope's ``hash`` in the
    same stream, or
    :data:`ZERO_HASH` for the first.
    """

    event_id: str
    stream_id: str
    sequence: int
    event_type: str
    schema_version: int
    occurred_at: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    position: int | None = field(default=None, compare=False)

    def hashed_fields(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "stream_id": self.stream_id,
            "sequence": self.sequence,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
        }

    def computed_hash(self) -> str:
        return envelope_hash(self.hashed_fields())

    def with_position(self, position: int) -> Envelope:
        return Envelope(
            event_id=self.event_id,
            stream_id=self.stream_id,
            sequence=self.sequence,
            event_type=self.event_type,
            schema_version=self.schema_version,
            occurred_at=self.occurred_at,
            payload=self.payload,
            prev_hash=self.prev_hash,
            hash=self.hash,
            position=position,
        )

    @property
    def topic(self) -> Topic:
        return event_class(self.event_type).topic

    def to_json_dict(self) -> dict[str, Any]:
        out = self.hashed_fields()
        out["hash"] = self.hash
        out["position"] = self.position
        return out

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Envelope:
        return cls(
            event_id=data["event_id"],
            stream_id=data["stream_id"],
            sequence=int(data["sequence"]),
            event_type=data["event_type"],
            schema_version=int(data["schema_version"]),
            occurred_at=data["occurred_at"],
            payload=data["payload"],
            prev_hash=data["prev_hash"],
            hash=data["hash"],
            position=data.get("position"),
        )


def envelope_hash(fields: Mapping[str, Any]) -> str:
    """sha256 over the RFC 8785 canonical JSON of the hashed envelope fields."""
    return hashlib.sha256(rfc8785.dumps(dict(fields))).hexdigest()


def decode(envelope: Envelope) -> DomainEvent:
    """The typed event inside ``envelope``, upcast to the current schema version."""
    cls = event_class(envelope.event_type)
    payload = dict(envelope.payload)
    version = envelope.schema_version
    while version < cls.schema_version:
        try:
            payload = _UPCASTERS[(envelope.event_type, version)](payload)
        except KeyError:
            raise UnknownEventType(
                f"no upcaster for {envelope.event_type} v{version} -> v{version + 1}"
            ) from None
        version += 1
    if version != cls.schema_version:
        raise UnknownEventType(
            f"{envelope.event_type} v{envelope.schema_version} is newer than this code "
            f"(v{cls.schema_version})"
        )
    return cls.model_validate(payload)
