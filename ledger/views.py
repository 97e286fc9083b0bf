"""What the ledger's queries return: frozen views of the projections, ready for JSON.

Each view is built by :class:`~ledger.application.CorpusLedger` from projection rows; ``to_dict``
gives the shape the API and the CLI print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class InstitutionView:
    institution_id: str
    name: str
    account: str
    active: bool
    registered_at: str
    academic_tx_hash: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "institution_id": self.institution_id,
            "name": self.name,
            "account": self.account,
            "active": self.active,
            "registered_at": self.registered_at,
            "academic_tx_hash": self.academic_tx_hash,
        }


@dataclass(frozen=True, slots=True)
class BatchView:
    batch_id: str
    institution_id: str
    source_name: str
    merkle_root: str
    metadata_hash: str
    manifest: dict[str, Any]
    record_count: int
    status: str
    submitted_at: str
    rejected_at_intake: list[dict[str, Any]]
    policy_version: str | None
    accepted_count: int | None
    contribution_score: float | None
    reward_wei: str | None
    chain_id: int | None
    contract_address: str | None
    tx_hash: str | None
    block_number: int | None
    anchor_error: str | None
    reward_tx_hash: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class RecordView:
    record_id: str
    batch_id: str
    index: int
    source_line: int | None
    record: dict[str, str] | None
    """``None`` once erased."""
    salt: str | None
    record_hash: str
    leaf: str
    redactions: dict[str, int]
    status: str
    reasons: list[str]
    decision: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class SubmittedBatch:
    """What :meth:`CorpusLedger.submit_batch` recorded."""

    batch_id: str
    merkle_root: str
    metadata_hash: str
    record_ids: list[str]
    position: int


@dataclass(frozen=True, slots=True)
class LedgerStatus:
    head_position: int
    institutions: int
    batches_by_status: dict[str, int]
    records_by_status: dict[str, int]
    pending_jobs: dict[str, int]
    failed_jobs: dict[str, int]
    rewarded_wei_total: str
    training_runs_by_status: dict[str, int]
    projection_positions: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Outcome of rebuilding every projection from the log and comparing with the live state."""

    events_replayed: int
    tables: dict[str, int]
    """Table -> rows after replay."""
    differences: dict[str, dict[str, list[list[Any]]]] = field(default_factory=dict)
    """Table -> {"live_only": rows, "replayed_only": rows}; empty when equal."""
    replaced: bool = False

    @property
    def equal(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_replayed": self.events_replayed,
            "tables": self.tables,
            "equal": self.equal,
            "differences": self.differences,
            "replaced": self.replaced,
        }
