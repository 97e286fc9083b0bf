"""What the ledger's queries return: frozen views of the projections, ready for JSON.

Each view is built from its rows by the queries of the projection that owns the table
(:mod:`ledger.projections`); :class:`~ledger.application.CorpusLedger` hands them out. ``to_dict``
gives the shape the API and the CLI print, so a JSON document never depends on how a view is stored.
"""

from __future__ import annotations

import json
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
    record: dict[str, Any] | None
    """The canonical fields from the record store; ``None`` once erased."""
    salt: str | None
    """``None`` once erased."""
    record_hash: str | None
    """The unsalted sha256 of the record; ``None`` once erased."""
    leaf: str
    discipline: str
    language: str
    task_type: str
    redactions: dict[str, int]
    status: str
    reasons: list[str]
    decision: dict[str, Any] | None
    erased_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class TrainingRunView:
    """A training run as projected: its lifecycle status, hashes, adapter folder and anchor."""

    run_id: str
    recipe: str
    method: str
    base_model: str
    config: dict[str, Any]
    status: str
    created_at: str
    dataset_root: str | None
    train_records: int | None
    last_step: int | None
    last_loss: float | None
    last_checkpoint: str | None
    adapter_dir: str | None
    adapter_hash: str | None
    recipe_hash: str | None
    base_model_hash: str | None
    final_loss: float | None
    error: str | None
    anchor_tx_hash: str | None
    anchor_chain_id: int | None
    anchor_contract: str | None

    @property
    def request_id(self) -> str | None:
        """The training request this run serves, when a worker ran it for one."""
        value = self.config.get("request_id")
        return str(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Every column as stored; ``config`` stays the JSON text it is stored as (sorted keys)."""
        out = {name: getattr(self, name) for name in self.__slots__}
        out["config"] = json.dumps(self.config, sort_keys=True)
        return out


@dataclass(frozen=True, slots=True)
class TrainingRequestView:
    """A requested training run (``TrainingRunRequested``), as a trainer worker reads it."""

    request_id: str
    recipe: str
    base_model: str
    overrides: dict[str, Any]
    max_steps: int | None
    disciplines: list[str]
    languages: list[str]
    institutions: list[str]
    record_limit: int | None
    requested_at: str

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class BalanceView:
    """BYR earned by one institution account; ``amount_wei`` is an exact decimal string."""

    account: str
    institution_id: str
    amount_wei: str
    rewards: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "institution_id": self.institution_id,
            "amount_wei": self.amount_wei,
            "rewards": self.rewards,
        }


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
