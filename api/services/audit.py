"""What auditors run: proof-bundle verification and replay of the log against the live state.

``byr verify`` / ``POST /v1/verify`` and ``byr replay`` call these; online verification asks
either the configured academic chain or any JSON-RPC node given by URL (reads only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.application import CorpusLedger
from ledger.audit import ProofBundle, VerificationReport, verify_offline, verify_online
from ledger.chain.clients import AcademicLedgerClient
from ledger.errors import LedgerError
from ledger.eventlog.base import EventLog


class BundleHasNoAnchor(LedgerError):
    """Online verification was asked for a bundle without chain coordinates."""


def verify_bundle(
    bundle: ProofBundle,
    *,
    offline: bool = False,
    rpc_url: str | None = None,
    configured: Callable[[str | None], AcademicLedgerClient] | None = None,
) -> VerificationReport:
    """Verify ``bundle`` offline, or also online: against the node at ``rpc_url`` (only public
    reads), else against the academic chain ``configured`` connects to for the bundle's contract
    address (the deployed AcademicLedger when the bundle names none, whose chain checks then
    fail)."""
    if offline:
        return verify_offline(bundle)
    if rpc_url is not None:
        return _verify_at(bundle, rpc_url)
    if configured is None:
        raise LedgerError("online verification needs a chain: give an RPC URL or a ledger home")
    return verify_online(bundle, academic=configured(bundle.contract_address))


def _verify_at(bundle: ProofBundle, rpc_url: str) -> VerificationReport:
    from eth_account import Account

    from ledger.chain.backends import connect_rpc

    if bundle.contract_address is None:
        raise BundleHasNoAnchor(
            "the bundle names no contract (exported before anchoring); use --offline"
        )
    # Reads only: a throwaway key satisfies the signing connection without holding funds.
    chain = connect_rpc(url=rpc_url, private_key=Account.create().key.hex())
    try:
        return verify_online(bundle, academic=AcademicLedgerClient(chain, bundle.contract_address))
    finally:
        chain.close()


def replay_document(*, log: EventLog, ledger: CorpusLedger, repair: bool = False) -> dict[str, Any]:
    """Check the log's hash chains, rebuild every projection from it and compare with the live
    state (``repair`` overwrites live projections that differ). ``ok`` is false when the log is
    damaged or the projections differ and were not repaired."""
    integrity = log.verify_integrity()
    report = ledger.replay(replace=repair)
    return report.to_dict() | {
        "integrity": {
            "ok": integrity.ok,
            "events_checked": integrity.events_checked,
            "problems": [str(p) for p in integrity.problems],
        },
        "ok": integrity.ok and (report.equal or report.replaced),
    }
