"""The composition root shared by the CLI and the HTTP API.

:class:`Runtime` builds every long-lived part from :class:`~ledger.settings.LedgerSettings` on first
use (event log, state database, chains, contract clients, governance models) and closes what it
opened. Its methods are the application services both front ends call, so the CLI and the API never
duplicate logic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ledger.application import (
    BatchView,
    CorpusLedger,
    InstitutionView,
    InvalidRequest,
    SubmittedBatch,
)
from ledger.batching import RecordInput
from ledger.chain.backends import Chain
from ledger.chain.clients import AcademicLedgerClient, BYRTokenClient
from ledger.chain.deploy import Deployments
from ledger.dispatch import AnchorDispatcher, DispatchReport, RewardDispatcher
from ledger.eventlog import open_event_log
from ledger.eventlog.base import EventLog
from ledger.projections.base import ProjectionStore
from ledger.settings import ChainBackend, LedgerSettings

if TYPE_CHECKING:
    from api.training import TrainingService
    from ingest.governance.service import GovernanceService
    from ingest.intake import IntakeResult

log = logging.getLogger(__name__)

#: Institutions registered by ``byr init`` on the embedded chains (development accounts 4..8).
DEMO_INSTITUTIONS: tuple[tuple[str, str], ...] = (
    ("bupt", "Beijing University of Posts and Telecommunications"),
    ("xidian", "Xidian University"),
    ("uestc", "University of Electronic Science and Technology of China"),
    ("njupt", "Nanjing University of Posts and Telecommunications"),
    ("hust", "Huazhong University of Science and Technology"),
)


class NotInitialized(InvalidRequest):
    """``BYR_HOME`` holds no ledger yet."""


class AlreadyInitialized(InvalidRequest):
    """``byr init`` found an existing ledger."""


@dataclass(frozen=True, slots=True)
class SubmissionOutcome:
    """What happened to one submitted file."""

    intake: IntakeResult
    batch: SubmittedBatch | None
    view: BatchView | None
    pipeline: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The submission document shared by ``byr submit --json`` and ``POST /v1/batches``."""
        intake = self.intake
        data: dict[str, Any] = {
            "source": intake.source,
            "items": intake.items_seen,
            "valid_records": len(intake.records),
            "issues": [issue.to_dict() for issue in intake.issues],
            "redactions": intake.redaction_totals(),
            "recorded": self.batch is not None,
            "pipeline": self.pipeline,
        }
        if self.batch is not None and self.view is not None:
            view = self.view
            data.update(
                batch_id=self.batch.batch_id,
                merkle_root=self.batch.merkle_root,
                metadata_hash=self.batch.metadata_hash,
                record_ids=self.batch.record_ids,
                status=view.status,
                accepted=view.accepted_count,
                policy_version=view.policy_version,
                tx_hash=view.tx_hash,
                block_number=view.block_number,
                chain_id=view.chain_id,
                contract_address=view.contract_address,
                reward_wei=view.reward_wei if view.reward_tx_hash else None,
                reward_tx_hash=view.reward_tx_hash,
                anchor_error=view.anchor_error,
            )
        return data


class Runtime:
    """Everything a command or a request needs, built lazily from ``settings``."""

    def __init__(self, settings: LedgerSettings) -> None:
        self.settings = settings
        self._closers: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:  # a failing close must not hide the others
                log.exception("error while closing")

    @property
    def initialized(self) -> bool:
        return self.settings.deployments_path.exists()

    def require_initialized(self) -> None:
        if not self.initialized:
            raise NotInitialized(
                f"no ledger in {self.settings.home} (run `byr init` first, or set BYR_HOME)"
            )

    # ------------------------------------------------------------------ parts

    @cached_property
    def log(self) -> EventLog:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        event_log = open_event_log(self.settings.event_log_url)
        self._closers.append(event_log.close)
        return event_log

    @cached_property
    def store(self) -> ProjectionStore:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        store = ProjectionStore(self.settings.state_path)
        self._closers.append(store.close)
        return store

    @cached_property
    def ledger(self) -> CorpusLedger:
        ledger = CorpusLedger(log=self.log, store=self.store)
        ledger.sync()
        return ledger

    def _connect(self, which: str) -> Chain:
        from ledger.chain.backends import connect_rpc, connect_tester

        s = self.settings
        chain_id = s.academic_chain_id if which == "academic" else s.incentive_chain_id
        if s.chain_backend is ChainBackend.TESTER:
            chain = connect_tester(
                chain_id=chain_id,
                state_path=s.chains_dir / f"{which}.db",
                name=which,
            )
        else:
            url = s.academic_rpc_url if which == "academic" else s.incentive_rpc_url
            secret = s.academic_private_key if which == "academic" else s.incentive_private_key
            assert url is not None and secret is not None  # checked by the settings validator
            chain = connect_rpc(
                url=url, private_key=secret.get_secret_value(), chain_id=chain_id, name=which
            )
        self._closers.append(chain.close)
        return chain

    def _signer(self, role: str) -> Any:
        """The local account of a service role on the embedded chains; ``None`` on rpc nodes,
        where the configured key of each chain signs for every role."""
        if self.settings.chain_backend is not ChainBackend.TESTER:
            return None
        from ledger.chain.accounts import dev_accounts

        return getattr(dev_accounts(), role)

    @cached_property
    def academic_chain(self) -> Chain:
        return self._connect("academic")

    @cached_property
    def incentive_chain(self) -> Chain:
        return self._connect("incentive")

    @cached_property
    def deployments(self) -> Deployments:
        self.require_initialized()
        return Deployments.load(self.settings.deployments_path)

    def _academic_as(self, role: str) -> AcademicLedgerClient:
        client = self.deployments.academic_client(self.academic_chain)
        signer = self._signer(role)
        return client.with_signer(signer) if signer is not None else client

    @cached_property
    def academic(self) -> AcademicLedgerClient:
        """AcademicLedger signed by the submitter (anchors batches)."""
        return self._academic_as("submitter")

    @cached_property
    def academic_admin(self) -> AcademicLedgerClient:
        return self._academic_as("deployer")

    @cached_property
    def trainer_academic(self) -> AcademicLedgerClient:
        """AcademicLedger signed by the trainer (anchors training runs)."""
        return self._academic_as("trainer")

    @cached_property
    def token(self) -> BYRTokenClient:
        """BYRToken signed by the minter."""
        client = self.deployments.token_client(self.incentive_chain)
        signer = self._signer("minter")
        return client.with_signer(signer) if signer is not None else client

    @cached_property
    def governance(self) -> GovernanceService:
        from ingest.governance.service import GovernanceService

        service = GovernanceService.open(ledger=self.ledger, directory=self.settings.governance_dir)
        self._closers.append(service.close)
        return service

    # ------------------------------------------------------------------ use cases

    def init(self, *, force: bool = False, demo_institutions: bool = True) -> dict[str, Any]:
        """Create the ledger in ``BYR_HOME``: event log, state, contracts on both chains, and the
        demo institutions (embedded chains only)."""
        import shutil

        from ledger.chain.accounts import dev_accounts
        from ledger.chain.deploy import ServiceRoles, deploy_contracts

        s = self.settings
        if self.initialized and not force:
            raise AlreadyInitialized(
                f"a ledger already exists in {s.home} (use --force to start over)"
            )
        if force and s.chain_backend is ChainBackend.TESTER and s.home.exists():
            self.close()
            for name in ("events.db", "state.db", "governance", "deployments.json", "chains"):
                target = s.home / name
                for path in [target, *target.parent.glob(target.name + "-*")]:
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()
            for attr in list(vars(self)):
                if attr != "settings" and attr != "_closers":
                    delattr(self, attr)
        s.home.mkdir(parents=True, exist_ok=True)
        if s.chain_backend is ChainBackend.TESTER:
            roles = ServiceRoles.from_dev(dev_accounts())
        else:
            # On real nodes one service key per chain holds every service role.
            academic_addr = self.academic_chain.account.address
            minter = self.incentive_chain.account.address
            roles = ServiceRoles(submitter=academic_addr, trainer=academic_addr, minter=minter)
        deployments = deploy_contracts(
            academic=self.academic_chain, incentive=self.incentive_chain, roles=roles
        )
        deployments.save(s.deployments_path)
        self.ledger.sync()
        registered = []
        if demo_institutions and s.chain_backend is ChainBackend.TESTER:
            accounts = dev_accounts().institutions
            for (institution_id, name), account in zip(DEMO_INSTITUTIONS, accounts, strict=False):
                registered.append(
                    self.add_institution(
                        institution_id=institution_id, name=name, account=account.address
                    ).to_dict()
                )
        return self.describe(institutions=registered)

    def describe(self, *, institutions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Where the ledger lives: home, event log, contracts and institutions."""
        s = self.settings
        deployments = Deployments.load(s.deployments_path)
        if institutions is None:
            institutions = [i.to_dict() for i in self.ledger.institutions()]
        return {
            "home": str(s.home),
            "event_log": s.event_log_url,
            "chains": {
                "academic": {
                    "chain_id": deployments.academic.chain_id,
                    "AcademicLedger": deployments.academic.address,
                },
                "incentive": {
                    "chain_id": deployments.incentive.chain_id,
                    "BYRToken": deployments.incentive.address,
                },
            },
            "institutions": institutions,
        }

    def add_institution(
        self, *, institution_id: str, name: str, account: str | None = None
    ) -> InstitutionView:
        """Register an institution on the academic chain, then in the log (idempotent)."""
        from eth_utils import is_address, to_checksum_address

        from ledger.chain.errors import InstitutionAlreadyRegistered
        from ledger.ids import is_valid_institution_id

        self.require_initialized()
        if not is_valid_institution_id(institution_id):
            raise InvalidRequest(
                f"institution id {institution_id!r} must match [a-z0-9][a-z0-9_-]{{1,63}}"
            )
        if account is None:
            account = self._free_dev_account()
        if not is_address(account):
            raise InvalidRequest(f"account {account!r} is not an Ethereum address")
        account = to_checksum_address(account)
        tx_hash = None
        try:
            tx_hash = self.academic_admin.register_institution(
                institution_id=institution_id, account=account
            ).tx_hash
        except InstitutionAlreadyRegistered:
            on_chain = self.academic_admin.institution(institution_id)
            if on_chain is None or on_chain.account != account:
                raise
        return self.ledger.register_institution(
            institution_id=institution_id, name=name, account=account, academic_tx_hash=tx_hash
        )

    def _free_dev_account(self) -> str:
        if self.settings.chain_backend is not ChainBackend.TESTER:
            raise InvalidRequest("--account is required with the rpc chain backend")
        from ledger.chain.accounts import dev_accounts

        used = {i.account for i in self.ledger.institutions()}
        for account in dev_accounts().institutions:
            if account.address not in used:
                return str(account.address)
        raise InvalidRequest("every development account is taken: pass --account")

    @cached_property
    def redactor(self) -> Any:
        """The PII redactor (its spaCy pipelines load once, on first use)."""
        from ingest.governance.pii import PiiRedactor

        return PiiRedactor()

    def _limits(self) -> Any:
        from ingest.intake import IntakeLimits

        return IntakeLimits(
            max_field_chars=self.settings.max_field_chars,
            max_record_chars=self.settings.max_record_chars,
        )

    def read_bytes(
        self, data: bytes, *, source_name: str, institution_id: str, discipline: str | None = None
    ) -> IntakeResult:
        """Validate and desensitize a batch (nothing is recorded)."""
        from ingest.intake import read_batch_bytes

        return read_batch_bytes(
            data,
            source_name=source_name,
            institution_id=institution_id,
            default_discipline=discipline,
            limits=self._limits(),
            desensitizer=self.redactor,
        )

    def submit(
        self,
        path: Path,
        *,
        institution_id: str,
        discipline: str | None = None,
        strict: bool = False,
        wait: bool = False,
    ) -> SubmissionOutcome:
        """Read the batch file at ``path`` and :meth:`submit_bytes` it."""
        from ingest.errors import BatchUnreadable

        limit = self._limits().max_batch_bytes
        try:
            with Path(path).open("rb") as handle:
                # One byte past the limit is enough for intake to report the batch as too large.
                data = handle.read(limit + 1)
        except OSError as exc:
            raise BatchUnreadable(f"cannot read batch {path}: {exc.strerror or exc}") from exc
        return self.submit_bytes(
            data,
            source_name=Path(path).name,
            institution_id=institution_id,
            discipline=discipline,
            strict=strict,
            wait=wait,
        )

    def submit_bytes(
        self,
        data: bytes,
        *,
        source_name: str,
        institution_id: str,
        discipline: str | None = None,
        strict: bool = False,
        wait: bool = False,
    ) -> SubmissionOutcome:
        """Validate and desensitize a batch; record its valid records as one batch.

        With ``strict`` a batch with any bad line records nothing. With ``wait`` the batch is
        carried through governance, anchoring and rewarding before returning.
        """
        self.require_initialized()
        self.ledger.institution(institution_id)  # fail fast on an unknown institution
        intake = self.read_bytes(
            data, source_name=source_name, institution_id=institution_id, discipline=discipline
        )
        if not intake.records or (strict and not intake.ok):
            return SubmissionOutcome(intake=intake, batch=None, view=None)
        from ingest.governance.policy import load_policy

        batch = self.ledger.submit_batch(
            institution_id=institution_id,
            source_name=intake.source,
            records=[
                RecordInput(
                    canonical=r.fields.as_dict(), source_line=r.line, redactions=r.redactions
                )
                for r in intake.records
            ],
            rejected_at_intake=[i.to_dict() for i in intake.issues if i.is_error],
            policy_version=load_policy().version,
        )
        pipeline: list[dict[str, Any]] = []
        if wait:
            pipeline = self.drain()
        return SubmissionOutcome(
            intake=intake, batch=batch, view=self.ledger.batch(batch.batch_id), pipeline=pipeline
        )

    def verify(self, bundle: Any, *, offline: bool = False) -> Any:
        """Verify a proof bundle offline, or also against the configured academic chain. A bundle
        that names no contract is checked against the deployed AcademicLedger (and fails its
        chain checks)."""
        from ledger.audit import verify_offline, verify_online

        if offline:
            return verify_offline(bundle)
        self.require_initialized()
        address = bundle.contract_address or self.deployments.academic.address
        return verify_online(bundle, academic=AcademicLedgerClient(self.academic_chain, address))

    def dispatch_anchors(self) -> DispatchReport:
        return AnchorDispatcher(ledger=self.ledger, academic=self.academic).run_once()

    def dispatch_rewards(self) -> DispatchReport:
        return RewardDispatcher(ledger=self.ledger, token=self.token).run_once()

    def drain(self, *, max_rounds: int = 20) -> list[dict[str, Any]]:
        """Run governance, anchoring and rewarding until no outbox job makes progress."""
        from ledger.projections.outbox import JobKind

        rounds: list[dict[str, Any]] = []
        for _ in range(max_rounds):
            step: dict[str, Any] = {}
            progressed = False
            if self.ledger.pending_jobs(JobKind.GOVERN):
                governed = self.governance.run_once()
                step["governance"] = governed.to_dict()
                progressed |= governed.progressed
            if self.ledger.pending_jobs(JobKind.ANCHOR):
                anchors = self.dispatch_anchors()
                step["anchor"] = anchors.to_dict()
                progressed |= anchors.progressed
            if self.ledger.pending_jobs(JobKind.REWARD):
                rewards = self.dispatch_rewards()
                step["reward"] = rewards.to_dict()
                progressed |= rewards.progressed
            if self.ledger.pending_jobs(JobKind.ANCHOR_RUN):
                runs = self.dispatch_run_anchors()
                step["run_anchor"] = runs.to_dict()
                progressed |= runs.progressed
            if step:
                rounds.append(step)
            if not progressed:
                break
        return rounds

    # ------------------------------------------------------------------ training

    @cached_property
    def training(self) -> TrainingService:
        """Training requests, runs, their anchors and adapter lineage."""
        from api.training import TrainingService

        return TrainingService(self)

    def dispatch_run_anchors(self) -> DispatchReport:
        return self.training.dispatch_run_anchors()
