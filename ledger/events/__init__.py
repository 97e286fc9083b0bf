"""Domain events: frozen, typed, versioned, registered once with their topic.

An event class says *what happened* (past tense). The event log stores it inside an
:class:`Envelope` that adds identity, ordering and a tamper-evident hash chain. Decoding an envelope
looks the type up in the registry, upcasts old schema versions, and fails loudly on unknown types.

- :mod:`.envelope`: the machinery (the :class:`DomainEvent` base, the registry, :class:`Envelope`,
  hashing, decoding and upcasting);
- :mod:`.catalogue`: the concrete events.

Both are re-exported here: import events and machinery from ``ledger.events``. Importing this
package registers the whole catalogue.
"""

from ledger.events.catalogue import (
    ApiKeyIssued,
    ApiKeyRevoked,
    BatchAnchored,
    BatchAnchorFailed,
    BatchGoverned,
    CheckpointSaved,
    ContributionRewarded,
    CorpusBatchSubmitted,
    CorpusIndexExtended,
    EvaluatedModel,
    EvaluationCompleted,
    InstitutionDeactivated,
    InstitutionRegistered,
    LegacyBody,
    RecordEntry,
    RecordErased,
    RecordGoverned,
    TrainingProgressed,
    TrainingRunAnchored,
    TrainingRunCompleted,
    TrainingRunCreated,
    TrainingRunFailed,
    TrainingRunRequested,
    TrainingRunResumeRequested,
    TrainingRunStarted,
    TrainingRunStopped,
    TrainingRunStopRequested,
)
from ledger.events.envelope import (
    ZERO_HASH,
    DomainEvent,
    Envelope,
    Topic,
    UnknownEventType,
    decode,
    envelope_hash,
    event,
    event_class,
    registered_events,
    upcaster,
    utcnow,
)

__all__ = [
    "ZERO_HASH",
    "ApiKeyIssued",
    "ApiKeyRevoked",
    "BatchAnchorFailed",
    "BatchAnchored",
    "BatchGoverned",
    "CheckpointSaved",
    "ContributionRewarded",
    "CorpusBatchSubmitted",
    "CorpusIndexExtended",
    "DomainEvent",
    "Envelope",
    "EvaluatedModel",
    "EvaluationCompleted",
    "InstitutionDeactivated",
    "InstitutionRegistered",
    "LegacyBody",
    "RecordEntry",
    "RecordErased",
    "RecordGoverned",
    "Topic",
    "TrainingProgressed",
    "TrainingRunAnchored",
    "TrainingRunCompleted",
    "TrainingRunCreated",
    "TrainingRunFailed",
    "TrainingRunRequested",
    "TrainingRunResumeRequested",
    "TrainingRunStarted",
    "TrainingRunStopRequested",
    "TrainingRunStopped",
    "UnknownEventType",
    "decode",
    "envelope_hash",
    "event",
    "event_class",
    "registered_events",
    "upcaster",
    "utcnow",
]
