"""The event catalogue: every concrete event of the ledger, grouped by topic.

Each class says *what happened* (past tense) and is registered once, with its topic and schema
version, by :func:`~ledger.events.envelope.event`. A new schema version of an event registers an
:func:`~ledger.events.envelope.upcaster` from the previous one, so stored envelopes still decode.
"""

# Every class here is a pydantic model, which copies a mutable default for each instance; ruff
# cannot see that through the imported DomainEvent base.
# ruff: noqa: RUF012

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ledger.events.envelope import DomainEvent, Topic, event, upcaster

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


@event(topic=Topic.INSTITUTIONS)
class ApiKeyIssued(DomainEvent):
    """An API key was issued to an identity with one role (and, for contributors, one
    institution). The log holds the key's id and an Argon2id hash of its secret, never the
    secret itself."""

    key_id: str
    role: str
    institution_id: str | None = None
    label: str = ""
    secret_hash: str
    """Argon2id PHC string of the key's secret."""
    issued_by: str
    """Key id of the admin who issued it, or ``operator`` (``byr keys`` on the server's home)."""


@event(topic=Topic.INSTITUTIONS)
class ApiKeyRevoked(DomainEvent):
    key_id: str
    revoked_by: str
    """Key id of the admin who revoked it, or ``operator``."""


# ---------------------------------------------------------------------------------------------
# Corpus batches
# ---------------------------------------------------------------------------------------------


class LegacyBody(BaseModel):
    """The text, salt and unsalted hash that schema 1 of ``CorpusBatchSubmitted`` kept in the
    log itself; present only on events written before the record store (see ``byr reseal``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record: dict[str, str]
    salt: str
    record_hash: str


class RecordEntry(BaseModel):
    """One record as the log knows it: identity, Merkle leaf and non-text metadata.

    The record's text, salt and unsalted hash are not here: they live in the deletable record
    store (:mod:`ledger.recordstore`), so that erasing a record never needs to change the log.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    index: int
    """Position of the record in the batch tree's input order."""
    source_line: int | None = None
    leaf: str
    """0x-prefixed ``keccak256(keccak256(abi.encode(record_hash, salt)))``."""
    discipline: str
    language: str
    task_type: str
    redactions: dict[str, int] = {}
    """PII type -> number of replacements made at intake (never the values)."""
    legacy: LegacyBody | None = None
    """Schema 1 only: the body as the old log holds it (erasable only after a re-seal)."""


@event(topic=Topic.CORPUS, version=2)
class CorpusBatchSubmitted(DomainEvent):
    """A batch entered the ledger: its root, manifest and record entries (no text, no salt).

    Schema 2 moved each record's text, salt and unsalted hash to the record store; schema 1
    payloads are upcast with those kept aside as ``RecordEntry.legacy``.
    """

    batch_id: str
    institution_id: str
    source_name: str
    """File name as given by the submitter (no directories)."""
    merkle_root: str
    metadata_hash: str
    manifest: dict[str, Any]
    records: list[RecordEntry]
    rejected_at_intake: list[dict[str, Any]] = []
    """Intake problems (location + field + rule) of lines that did not become records."""
    submitted_by: str | None = None
    """The API key id the batch came with; ``None`` when submitted on the server's home."""


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


@event(topic=Topic.CORPUS, version=2)
class RecordErased(DomainEvent):
    """A record's text, salt and unsalted hash were erased from every store we control; its salted
    leaf stays in the log and on chain, unlinkable to any text without the salt."""

    batch_id: str
    record_id: str
    reason: str
    """Why, as the requester gave it (free text, kept short by the doors)."""
    requested_by: str
    """Who asked: the institution (or the operator) on whose authority the record was erased."""
    key_id: str | None = None
    """The API key of the request; ``None`` when erased on the server's home."""


@upcaster("RecordErased", 1)
def _record_erased_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 had no requester; it was only ever appended by hand."""
    return {**payload, "requested_by": payload.get("requested_by", "unknown")}


@upcaster("CorpusBatchSubmitted", 1)
def _batch_submitted_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 kept each record's text, salt and hash in the log: keep them aside as ``legacy``
    and lift the non-text metadata the projections now read from the entry."""
    entries = []
    for entry in payload.get("records", []):
        record = dict(entry.get("record", {}))
        entries.append(
            {
                "record_id": entry["record_id"],
                "index": entry["index"],
                "source_line": entry.get("source_line"),
                "leaf": entry["leaf"],
                "discipline": record.get("discipline", ""),
                "language": record.get("language", ""),
                "task_type": record.get("task_type", ""),
                "redactions": entry.get("redactions", {}),
                "legacy": {
                    "record": record,
                    "salt": entry["salt"],
                    "record_hash": entry["record_hash"],
                },
            }
        )
    return {**payload, "records": entries}


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
class TrainingRunStopRequested(DomainEvent):
    """Someone asked a running run to stop; its trainer stops at the next step boundary."""

    run_id: str
    requested_by: str = ""
    """The API key id (or ``local``) that asked."""


@event(topic=Topic.TRAINING)
class TrainingRunStopped(DomainEvent):
    """A run stopped on request after ``step`` steps, its state saved in ``checkpoint``."""

    run_id: str
    step: int
    checkpoint: str


@event(topic=Topic.TRAINING)
class TrainingRunResumeRequested(DomainEvent):
    """Someone asked a stopped run to continue from its last checkpoint."""

    run_id: str
    requested_by: str = ""


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


# ---------------------------------------------------------------------------------------------
# Evaluations
# ---------------------------------------------------------------------------------------------


class EvaluatedModel(BaseModel):
    """One model of an evaluation: the base (no adapter hash) or an adapter on it, with its
    headline numbers (ids and numbers only, never text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """As the evaluation named it: ``base``, a run id or an adapter folder."""
    adapter_hash: str | None = None
    run_id: str | None = None
    items_scored: int
    items_refused: int = 0
    """Items refused because they share a 13-gram with the adapter's training data."""
    overall: float | None = None
    forgetting_flags: int = 0


@event(topic=Topic.TRAINING)
class EvaluationCompleted(DomainEvent):
    """An evaluation report was written: the base and adapters it scored on a benchmark, and the
    sha256 of its ``report.json``, which lets anyone check a copy of the report."""

    report_id: str
    report_sha256: str
    report_dir: str
    base_model: str
    base_model_hash: str
    models: list[EvaluatedModel]
    benchmark_name: str
    benchmark_version: str
    benchmark_hash: str
    items: int
    """Benchmark items selected (per model, before contamination refusals)."""
    cells: int
    control_items: int = 0
    started_at: str
    seconds: float
