"""Domain events: frozen, typed, versioned, registered once with their topic.

An event class says *what happened* (past tense). The event log stores it inside an
:class:`Envelope` that adds identity, ordering and a tamper-evident hash chain. Decoding an envelope
looks the type up in the registry, upcasts old schema versions, and fails loudly on unknown types.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
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


def seal(
    evt: DomainEvent,
    *,
    stream_id: str,
    sequence: int,
    prev_hash: str,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """Wrap ``evt`` in an envelope that continues a stream whose last hash is ``prev_hash``."""
    fields: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),
        "stream_id": stream_id,
        "sequence": sequence,
        "event_type": evt.event_type,
        "schema_version": evt.schema_version,
        "occurred_at": (occurred_at or utcnow()).isoformat(),
        "payload": evt.model_dump(mode="json"),
        "prev_hash": prev_hash,
    }
    return Envelope(**fields, hash=envelope_hash(fields))


def seal_all(
    events: Sequence[DomainEvent], *, stream_id: str, after_sequence: int, prev_hash: str
) -> list[Envelope]:
    """Seal consecutive events of one stream, chaining their hashes."""
    out: list[Envelope] = []
    for offset, evt in enumerate(events, start=1):
        env = seal(evt, stream_id=stream_id, sequence=after_sequence + offset, prev_hash=prev_hash)
        out.append(env)
        prev_hash = env.hash
    return out


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


# ---------------------------------------------------------------------------------------------
# Institutions
# ---------------------------------------------------------------------------------------------


@event(topic=Topic.INSTITUTIONS)
class InstitutionRegistered(DomainEvent):
    institution_id: str
    name: str
    account: str
    """Checksummed address that receives BYR rewards."""
    academic_tx_hash: str | None = None


@event(topic=Topic.INSTITUTIONS)
class InstitutionDeactivated(DomainEvent):
    institution_id: str
    reason: str
    academic_tx_hash: str | None = None


# ---------------------------------------------------------------------------------------------
# Corpus batches
# ---------------------------------------------------------------------------------------------


class RecordEntry(BaseModel):
    """One record as stored in the log: desensitized fields, salt and Merkle data (no raw PII)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    index: int
    """Position of the record in the batch tree's input order."""
    source_line: int | None = None
    record: dict[str, str]
    """The canonical record fields (see docs/PROVENANCE.md)."""
    salt: str
    """0x-prefixed 32-byte hex."""
    record_hash: str
    leaf: str
    redactions: dict[str, int] = {}
    """PII type -> number of replacements made at intake (never the values)."""


@event(topic=Topic.CORPUS)
class CorpusBatchSubmitted(DomainEvent):
    batch_id: str
    institution_id: str
    source_name: str
    """File name as given by the submitter (no directories)."""
    merkle_root: str
    metadata_hash: str
    manifest: dict[str, Any]
    records: list[RecordEntry]
    rejected_at_intake: list[dict[str, Any]] = []
    """Intake problems (location + field + message) of lines that did not become records."""


@event(topic=Topic.CORPUS)
class RecordGoverned(DomainEvent):
    """Governance decision for one record (the per-record form of :class:`BatchGoverned`)."""

    batch_id: str
    record_id: str
    accepted: bool
    reasons: list[str]
    scores: dict[str, float]


@event(topic=Topic.CORPUS)
class BatchGoverned(DomainEvent):
    batch_id: str
    institution_id: str
    policy_version: str
    accepted_record_ids: list[str]
    rejected: dict[str, list[str]]
    """record id -> machine-readable reasons."""
    decisions: list[dict[str, Any]]
    """Per-record scores, flags (with character spans) and reasons."""
    contribution_score: float
    reward_wei: str
    """Decimal string; 0 when nothing was accepted."""


@event(topic=Topic.CORPUS)
class CorpusIndexExtended(DomainEvent):
    """A governance decision added accepted records to the corpus that later batches are checked
    against for near duplicates.

    Appended to the one stream ``corpus-index`` together with the batch's ``BatchGoverned``, on
    the version the deciding worker had indexed: two workers deciding at once cannot both extend
    the corpus from the same version, so every decision saw every record accepted before it.
    """

    batch_id: str
    record_ids: list[str]


@event(topic=Topic.CORPUS)
class RecordErased(DomainEvent):
    """A record's text and salt were erased from every store we control; its leaf stays on chain."""

    batch_id: str
    record_id: str
    reason: str


# ---------------------------------------------------------------------------------------------
# Chain effects
# ---------------------------------------------------------------------------------------------


@event(topic=Topic.CHAIN)
class BatchAnchored(DomainEvent):
    batch_id: str
    merkle_root: str
    metadata_hash: str
    chain_id: int
    contract_address: str
    tx_hash: str
    block_number: int


@event(topic=Topic.CHAIN)
class BatchAnchorFailed(DomainEvent):
    """The chain refused the anchor for a reason retrying cannot fix (e.g. a duplicate root)."""

    batch_id: str
    error: str
    detail: str


@event(topic=Topic.REWARDS)
class ContributionRewarded(DomainEvent):
    batch_id: str
    contribution_id: str
    """0x bytes32 used on the BYR contract (``id_key(batch_id)``)."""
    institution_id: str
    account: str
    amount_wei: str
    academic_ref: str
    """The batch Merkle root anchored on the academic chain."""
    chain_id: int
    contract_address: str
    tx_hash: str
    block_number: int


# ---------------------------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------------------------


@event(topic=Topic.TRAINING)
class TrainingRunRequested(DomainEvent):
    """Someone asked for a training run; a trainer worker picks it up."""

    request_id: str
    recipe: str
    base_model: str
    overrides: dict[str, Any] = {}
    max_steps: int | None = None
    disciplines: list[str] = []
    languages: list[str] = []
    institutions: list[str] = []
    record_limit: int | None = None


@event(topic=Topic.TRAINING)
class TrainingRunCreated(DomainEvent):
    run_id: str
    recipe: str
    method: str
    base_model: str
    config: dict[str, Any]


@event(topic=Topic.TRAINING)
class TrainingRunStarted(DomainEvent):
    run_id: str
    dataset_root: str
    train_records: int
    validation_records: int
    resumed_from_step: int = 0


@event(topic=Topic.TRAINING)
class TrainingProgressed(DomainEvent):
    run_id: str
    step: int
    loss: float
    learning_rate: float
    tokens_per_second: float
    peak_memory_mb: float


@event(topic=Topic.TRAINING)
class CheckpointSaved(DomainEvent):
    run_id: str
    step: int
    path: str


@event(topic=Topic.TRAINING)
class TrainingRunCompleted(DomainEvent):
    run_id: str
    adapter_dir: str
    adapter_hash: str
    recipe_hash: str
    base_model_hash: str
    dataset_root: str
    final_loss: float


@event(topic=Topic.TRAINING)
class TrainingRunFailed(DomainEvent):
    run_id: str
    error: str


@event(topic=Topic.TRAINING)
class TrainingRunAnchored(DomainEvent):
    run_id: str
    dataset_root: str
    adapter_hash: str
    recipe_hash: str
    base_model_hash: str
    chain_id: int
    contract_address: str
    tx_hash: str
    block_number: int
