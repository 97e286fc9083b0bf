"""Setting a ledger up: deploying the contracts of a new home, and the institution registry.

Deployment and the first institutions are one use case (``byr init``), run by
:func:`api.composition.initialize` on a fresh set of parts; registering an institution later is
:class:`InstitutionRegistry` (``byr institution add``, ``POST /v1/institutions``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.application import CorpusLedger, InstitutionView, InvalidRequest
from ledger.chain.backends import Chain
from ledger.chain.clients import AcademicLedgerClient
from ledger.chain.deploy import Deployments, ServiceRoles, deploy_contracts
from ledger.errors import Conflict
from ledger.ids import require_institution_id
from ledger.settings import ChainBackend, LedgerSettings

#: Institutions registered by ``byr init`` on the embedded chains (development accounts 4..8).
DEMO_INSTITUTIONS: tuple[tuple[str, str], ...] = (
    ("bupt", "Beijing University of Posts and Telecommunications"),
    ("xidian", "Xidian University"),
    ("uestc", "University of Electronic Science and Technology of China"),
    ("njupt", "Nanjing University of Posts and Telecommunications"),
    ("hust", "Huazhong University of Science and Technology"),
)

#: What ``byr init --force`` deletes from an embedded home (and the SQLite side files of each).
HOME_CONTENTS = (
    "events.db",
    "state.db",
    "records.db",
    "governance",
    "deployments.json",
    "chains",
)


class NotInitialized(InvalidRequest):
    """``BYR_HOME`` holds no ledger yet."""


class AlreadyInitialized(InvalidRequest):
    """``byr init`` found an existing ledger."""


def wipe_home(settings: LedgerSettings) -> None:
    """Delete the ledger of an embedded home (nothing of it may be open)."""
    for name in HOME_CONTENTS:
        target = settings.home / name
        for path in [target, *target.parent.glob(target.name + "-*")]:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def deploy(
    *, settings: LedgerSettings, academic: Chain, incentive: Chain, ledger: CorpusLedger
) -> Deployments:
    """Deploy both contracts, record where they are, and bring the projections up."""
    if settings.chain_backend is ChainBackend.TESTER:
        from ledger.chain.accounts import dev_accounts

        roles = ServiceRoles.from_dev(dev_accounts())
    else:
        # On real nodes one service key per chain holds every service role.
        academic_addr = academic.account.address
        roles = ServiceRoles(
            submitter=academic_addr, trainer=academic_addr, minter=incentive.account.address
        )
    deployments = deploy_contracts(academic=academic, incentive=incentive, roles=roles)
    deployments.save(settings.deployments_path)
    ledger.sync()
    return deployments


def describe_home(
    *,
    settings: LedgerSettings,
    ledger: CorpusLedger,
    institutions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Where the ledger lives: home, event log, contracts and institutions."""
    deployments = Deployments.load(settings.deployments_path)
    if institutions is None:
        institutions = [i.to_dict() for i in ledger.institutions()]
    return {
        "home": str(settings.home),
        "event_log": settings.event_log_url,
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


@dataclass(frozen=True, slots=True)
class InstitutionRegistry:
    """Registers institutions on the academic chain, then in the log (idempotent)."""

    ledger: CorpusLedger
    admin: AcademicLedgerClient
    """AcademicLedger signed by its admin (the deployer)."""
    dev_accounts: tuple[LocalAccount, ...] = ()
    """Accounts handed out when no account is given (embedded chains only)."""

    def add(self, *, institution_id: str, name: str, account: str | None = None) -> InstitutionView:
        from eth_utils import is_address, to_checksum_address

        from ledger.chain.errors import InstitutionAlreadyRegistered

        require_institution_id(institution_id)
        self.ledger.sync()
        known = {i.institution_id: i for i in self.ledger.institutions()}
        existing = known.get(institution_id)
        if account is None:
            account = existing.account if existing is not None else self._free_account()
        if not is_address(account):
            raise InvalidRequest("account: not an Ethereum address")
        account = to_checksum_address(account)
        if existing is not None:
            if existing.account == account and existing.name == name:
                return existing  # the same registration again changes nothing
            raise Conflict(
                f"institution {institution_id} is already registered with another "
                + ("account" if existing.account != account else "name")
                + "; changing it is not a registration"
            )
        owner = next((i for i in known.values() if i.account == account), None)
        if owner is not None:
            # Balances and reward history follow the account: a second institution on it would
            # take over the first one's.
            raise Conflict("account: already registered to another institution")
        tx_hash = None
        try:
            tx_hash = self.admin.register_institution(
                institution_id=institution_id, account=account
            ).tx_hash
        except InstitutionAlreadyRegistered:
            on_chain = self.admin.institution(institution_id)
            if on_chain is None or on_chain.account != account:
                raise
        return self.ledger.register_institution(
            institution_id=institution_id, name=name, account=account, academic_tx_hash=tx_hash
        )

    def add_demo_institutions(self) -> list[InstitutionView]:
        """Register :data:`DEMO_INSTITUTIONS` with the development accounts, in order."""
        return [
            self.add(institution_id=institution_id, name=name, account=account.address)
            for (institution_id, name), account in zip(
                DEMO_INSTITUTIONS, self.dev_accounts, strict=False
            )
        ]

    def _free_account(self) -> str:
        if not self.dev_accounts:
            raise InvalidRequest("--account is required with the rpc chain backend")
        used = {i.account for i in self.ledger.institutions()}
        for account in self.dev_accounts:
            if account.address not in used:
                return str(account.address)
        raise Conflict("every development account is taken: pass --account")
