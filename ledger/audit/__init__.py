"""Proof bundles: what an auditor needs to check one record's provenance, and their verification.

A :class:`ProofBundle` carries a record's canonical fields, its salt, hash, Merkle leaf and proof,
the batch root, and where the root was anchored. :func:`verify_offline` recomputes every hash from
the record up to the root; :func:`verify_online` adds what only the academic chain can confirm.
Both return a :class:`VerificationReport` whose failed checks say what differs. The format and the
independent ways to verify it are specified in docs/PROVENANCE.md.
"""

from ledger.audit.bundle import (
    BUNDLE_VERSION,
    AuditError,
    BundleFormatError,
    ProofBundle,
    load_bundle,
)
from ledger.audit.offline import verify_offline
from ledger.audit.online import (
    BATCH_ANCHORED_TOPIC,
    AcademicLedgerView,
    AnchorView,
    ChainView,
    verify_online,
)
from ledger.audit.verification import Check, VerificationReport

__all__ = [
    "BATCH_ANCHORED_TOPIC",
    "BUNDLE_VERSION",
    "AcademicLedgerView",
    "AnchorView",
    "AuditError",
    "BundleFormatError",
    "ChainView",
    "Check",
    "ProofBundle",
    "VerificationReport",
    "load_bundle",
    "verify_offline",
    "verify_online",
]
