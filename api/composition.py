"""The composition root: every long-lived part of a ledger home, built once from its settings.

:class:`Parts` builds on first use, and closes on exit, the event log, the state database, the
chains and contract clients, the governance models, the services the doors call (submission,
institutions, training) and the pipeline table (:func:`pipeline_stages`). It holds no use case
itself: the CLI (:mod:`api.cli`) and the HTTP routes (:mod:`api.routes`) take a service from it,
call it, and render the result. :func:`initialize` creates a home (``byr init``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from api.pipeline import Pipeline, Stage
from api.services.erasure import ErasureService
from api.services.generation import GenerationService
from api.services.keys import KeyService
from api.services.provisioning import (
    AlreadyInitialized,
    InstitutionRegistry,
    NotInitialized,
    deploy,
    describe_home,
    wipe_home,
)
from api.services.submission import SubmissionService, intake_limits
from api.services.training import TrainingService
from ledger.application import CorpusLedger
from ledger.chain.backends import Chain
from ledger.chain.clients import AcademicLedgerClient, BYRTokenClient
from ledger.chain.deploy import Deployments
from ledger.chain_jobs import AnchorBatchJob, AnchorRunJob, RewardJob
from ledger.errors import InvalidRequest
from ledger.eventlog import open_event_log
from ledger.eventlog.base import EventLog
from ledger.files import private_dir, private_file
from ledger.projections.base import ProjectionStore
from ledger.projections.outbox import JobKind
from ledger.recordstore import RecordStore
from ledger.settings import ChainBackend, LedgerSettings

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from api.intake_pool import IntakePool
    from api.services.evaluation import EvaluationService
    from api.services.search import SearchService
    from ingest.governance.pii import PiiRedactor
    from ingest.governance.service import GovernanceService

log = logging.getLogger(__name__)


def pipeline_stages(parts: Parts) -> list[Stage]:
    """The pipeline table: each outbox job kind and the handler that performs it."""
    return [
        Stage(JobKind.GOVERN, "governance", lambda: parts.governance, detail_name="governed"),
        Stage(JobKind.ANCHOR, "anchor", lambda: parts.anchor_job),
        Stage(JobKind.REWARD, "reward", lambda: parts.reward_job),
        Stage(JobKind.TRAIN, "train", lambda: parts.training, detail_name="runs"),
        Stage(JobKind.ANCHOR_RUN, "run_anchor", lambda: parts.anchor_run_job),
    ]


class Parts:
    """The parts of one ledger home, each built on first use from ``settings``."""

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

    # ------------------------------------------------------------------ storage

    @cached_property
    def log(self) -> EventLog:
        private_dir(self.settings.home)
        event_log = open_event_log(self.settings.event_log_url)
        self._closers.append(event_log.close)
        return event_log

    @cached_property
    def store(self) -> ProjectionStore:
        private_dir(self.settings.home)
        store = ProjectionStore(self.settings.state_path)
        self._closers.append(store.close)
        return store

    @cached_property
    def record_store(self) -> RecordStore:
        from ledger.recordstore.open import open_record_store

        store = open_record_store(self.settings)
        self._closers.append(store.close)
        return store

    @cached_property
    def ledger(self) -> CorpusLedger:
        ledger = CorpusLedger(log=self.log, store=self.store, records=self.record_store)
        ledger.sync()
        return ledger

    # ------------------------------------------------------------------ chains

    def _connect(self, which: str) -> Chain:
        from ledger.chain.backends import connect_rpc, connect_tester

        s = self.settings
        chain_id = s.academic_chain_id if which == "academic" else s.incentive_chain_id
        if s.chain_backend is ChainBackend.TESTER:
            chain = connect_tester(
                chain_id=chain_id, state_path=s.chains_dir / f"{which}.db", name=which
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

    @cached_property
    def dev_accounts(self) -> tuple[LocalAccount, ...]:
        """Institution accounts handed out on the embedded chains; none on rpc nodes."""
        if self.settings.chain_backend is not ChainBackend.TESTER:
            return ()
        from ledger.chain.accounts import dev_accounts

        return dev_accounts().institutions

    def _academic_as(self, role: str) -> AcademicLedgerClient:
        """AcademicLedger signed by a service role: its development account on the embedded
        chains; on rpc nodes the configured key of the chain signs for every role."""
        client = self.deployments.academic_client(self.academic_chain)
        if self.settings.chain_backend is not ChainBackend.TESTER:
            return client
        from ledger.chain.accounts import dev_accounts

        return client.with_signer(getattr(dev_accounts(), role))

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

    def academic_at(self, address: str | None) -> AcademicLedgerClient:
        """An AcademicLedger at ``address`` on the academic chain (default: the deployed one)."""
        self.require_initialized()
        return AcademicLedgerClient(
            self.academic_chain, address or self.deployments.academic.address
        )

    @cached_property
    def token(self) -> BYRTokenClient:
        """BYRToken signed by the minter."""
        client = self.deployments.token_client(self.incentive_chain)
        if self.settings.chain_backend is not ChainBackend.TESTER:
            return client
        from ledger.chain.accounts import dev_accounts

        return client.with_signer(dev_accounts().minter)

    # ------------------------------------------------------------------ stage handlers

    @cached_property
    def governance(self) -> GovernanceService:
        from ingest.governance.service import GovernanceService

        service = GovernanceService.open(ledger=self.ledger, directory=self.settings.governance_dir)
        self._closers.append(service.close)
        return service

    @cached_property
    def anchor_job(self) -> AnchorBatchJob:
        return AnchorBatchJob(ledger=self.ledger, academic=self.academic)

    @cached_property
    def reward_job(self) -> RewardJob:
        return RewardJob(ledger=self.ledger, token=self.token)

    @cached_property
    def anchor_run_job(self) -> AnchorRunJob:
        return AnchorRunJob(ledger=self.ledger, academic=self.trainer_academic)

    @cached_property
    def pipeline(self) -> Pipeline:
        self.require_initialized()
        return Pipeline(ledger=self.ledger, stages=pipeline_stages(self))

    # ------------------------------------------------------------------ services

    @cached_property
    def redactor(self) -> PiiRedactor:
        """The PII redactor (its spaCy pipelines load once, on first use)."""
        from ingest.governance.pii import PiiRedactor

        return PiiRedactor()

    @cached_property
    def submission(self) -> SubmissionService:
        from ingest.governance.policy import load_policy

        self.require_initialized()
        return SubmissionService(
            ledger=self.ledger,
            limits=intake_limits(self.settings),
            desensitizer=lambda: self.redactor,
            drain=lambda: self.pipeline.drain(),
            policy_version=lambda: load_policy().version,
        )

    @cached_property
    def intake_pool(self) -> IntakePool | None:
        """Where the HTTP server reads submissions: worker processes (``None``: its threads)."""
        from api.intake_pool import IntakePool

        if self.settings.intake_processes == 0:
            return None
        # The SQLite log serializes writers of every process, so its workers record too.
        records = urlsplit(self.settings.event_log_url).scheme == "sqlite"
        pool = IntakePool(
            processes=self.settings.intake_processes,
            settings=self.settings if records else None,
        )
        self._closers.append(pool.close)
        return pool

    @cached_property
    def keys(self) -> KeyService:
        return KeyService(ledger=self.ledger)

    @cached_property
    def erasure(self) -> ErasureService:
        self.require_initialized()
        return ErasureService(ledger=self.ledger, governance_dir=self.settings.governance_dir)

    @cached_property
    def institutions(self) -> InstitutionRegistry:
        self.require_initialized()
        return InstitutionRegistry(
            ledger=self.ledger, admin=self.academic_admin, dev_accounts=self.dev_accounts
        )

    @cached_property
    def training(self) -> TrainingService:
        self.require_initialized()
        return TrainingService(
            ledger=self.ledger,
            runs_dir=self.settings.home / "runs",
            model_cache_dir=self.settings.model_cache_dir,
            anchor_runs=lambda: self.pipeline.run_once(JobKind.ANCHOR_RUN),
            academic=lambda: self.trainer_academic,
        )

    @cached_property
    def search(self) -> SearchService:
        """Search over the accepted corpus; its index lives in ``BYR_HOME/search``."""
        from api.services.search import SearchService

        self.require_initialized()
        service = SearchService(
            ledger=self.ledger,
            directory=self.settings.home / "search",
            governance_dir=self.settings.governance_dir,
        )
        self._closers.append(service.close)
        return service

    @cached_property
    def generation(self) -> GenerationService:
        """Generation with trained adapters (models load on first use)."""
        self.require_initialized()
        return GenerationService(ledger=self.ledger, model_cache_dir=self.settings.model_cache_dir)

    @cached_property
    def evaluation(self) -> EvaluationService:
        """Evaluations of the base and adapters; caches and reports in ``BYR_HOME/eval``."""
        from api.services.evaluation import EvaluationService

        self.require_initialized()
        return EvaluationService(
            ledger=self.ledger,
            eval_dir=self.settings.home / "eval",
            model_cache_dir=self.settings.model_cache_dir,
        )

    def describe(self) -> dict[str, Any]:
        """Where the ledger lives: home, event log, contracts and institutions."""
        self.require_initialized()
        return describe_home(settings=self.settings, ledger=self.ledger)


def initialize(
    settings: LedgerSettings,
    *,
    force: bool = False,
    demo_institutions: bool = True,
    if_needed: bool = False,
) -> dict[str, Any]:
    """Create the ledger in ``settings.home`` (``byr init``): event log, state, contracts on both
    chains, and the demo institutions (embedded chains only). With ``if_needed`` an existing
    ledger is described instead; with ``force`` an embedded one is deleted first."""
    exists = settings.deployments_path.exists()
    if exists and if_needed:
        with Parts(settings) as parts:
            return parts.describe() | first_admin_key(settings, parts)
    if exists and not force:
        raise AlreadyInitialized(
            f"a ledger already exists in {settings.home} (use --force to start over)"
        )
    if force and settings.chain_backend is ChainBackend.TESTER and settings.home.exists():
        wipe_home(settings)
    private_dir(settings.home)
    with Parts(settings) as parts:
        deploy(
            settings=settings,
            academic=parts.academic_chain,
            incentive=parts.incentive_chain,
            ledger=parts.ledger,
        )
        registered = []
        if demo_institutions:
            registered = [v.to_dict() for v in parts.institutions.add_demo_institutions()]
        described = describe_home(settings=settings, ledger=parts.ledger, institutions=registered)
        return described | first_admin_key(settings, parts)


ADMIN_KEY_FILE = "admin.key"


def first_admin_key(settings: LedgerSettings, parts: Parts) -> dict[str, Any]:
    """Issue the first admin key when the ledger has no active one, into ``BYR_HOME/admin.key``
    (owner-only); says where it is. The key is in that file and nowhere else: move it to a
    password manager and delete the file. With ``BYR_ADMIN_KEY`` set (a key from ``byr keys
    generate``), that key is issued instead and no file is written."""
    path = settings.home / ADMIN_KEY_FILE
    if parts.keys.has_active_admin():
        return {"admin_key_file": str(path) if path.exists() else None}
    if settings.admin_key is not None:
        issued = parts.keys.create(
            role="admin",
            label="first admin key (byr init, BYR_ADMIN_KEY)",
            key=settings.admin_key.get_secret_value(),
        )
        log.warning("the first admin key (%s) is the one BYR_ADMIN_KEY holds", issued.key_id)
        return {"admin_key_file": None, "admin_key_id": issued.key_id, "admin_key_from": "env"}
    issued = parts.keys.create(role="admin", label="first admin key (byr init)")
    private_file(path).write_text(issued.key + "\n", encoding="ascii")
    log.warning("the first admin key (%s) is in %s", issued.key_id, path)
    return {"admin_key_file": str(path), "admin_key_id": issued.key_id}


def reseal(settings: LedgerSettings) -> dict[str, Any]:
    """Make the text of an embedded home written before the record store erasable
    (``byr reseal``): re-seal its SQLite event log (:func:`ledger.reseal.reseal_sqlite_log`),
    then wipe the state database, whose old rows held text, and rebuild it from the new log.

    Stop every server and worker of the home first. Raises :class:`InvalidRequest` for a log
    that is not the embedded SQLite one."""
    from ledger.recordstore import SqliteRecordStore
    from ledger.reseal import reseal_sqlite_log, wipe_database

    url = urlsplit(settings.event_log_url)
    if url.scheme != "sqlite":
        raise InvalidRequest(
            "reseal rewrites the embedded SQLite event log only; a Kafka deployment re-seals by "
            "copying into a new topic prefix (see docs/PROVENANCE.md, erasure)"
        )
    log_path = Path(url.path[1:])
    records = SqliteRecordStore(settings.home / "records.db")
    try:
        report = reseal_sqlite_log(log_path, records=records)
    finally:
        records.close()
    rebuilt = False
    if not report.already_sealed:
        wipe_database(settings.state_path)
        with Parts(settings) as parts:
            parts.ledger.sync()
        rebuilt = True
    return {**report.to_dict(), "state_rebuilt": rebuilt}
