"""Canonical records, their hashes, salts and the batch manifest (see docs/PROVENANCE.md).

Pure functions, no I/O. A record's identity is ``sha256(JCS(record))`` where JCS is the RFC 8785
JSON Canonicalization Scheme: any tool that implements RFC 8785 and sha256 recomputes the same 32
bytes. Text is hashed exactly as given (JCS does not normalize Unicode); normalization is intake's
job.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import rfc8785

from ledger.errors import LedgerError

CANONICAL_FIELDS: tuple[str, ...] = (
    "instruction",
    "input",
    "output",
    "discipline",
    "task_type",
    "language",
    "license",
    "institution_id",
)
"""The fields of a canonical record, all strings; ``input`` may be empty."""

CANONICAL_SCHEMA_VERSION = 1
"""Version of the canonical record schema (the field list above); recorded in batch manifests."""

SALT_BYTES = 32


class CanonicalError(LedgerError):
    """A record or manifest cannot be put in canonical form."""


def canonical_record(fields: Mapping[str, Any]) -> dict[str, str]:
    """Exactly the :data:`CANONICAL_FIELDS` of ``fields``, in that order, all strings.

    Raises :class:`CanonicalError` naming the field when one is missing or not a string, and naming
    any field that is not canonical (a hash must never silently ignore part of what it was given).
    """
    missing = [name for name in CANONICAL_FIELDS if name not in fields]
    if missing:
        raise CanonicalError(f"record is missing canonical field(s): {', '.join(missing)}")
    extra = sorted(str(name) for name in fields if name not in CANONICAL_FIELDS)
    if extra:
        raise CanonicalError(
            f"record has non-canonical field(s): {', '.join(extra)}; "
            f"expected exactly {', '.join(CANONICAL_FIELDS)}"
        )
    for name in CANONICAL_FIELDS:
        value = fields[name]
        if not isinstance(value, str):
            raise CanonicalError(
                f"record field {name!r} must be a string, got {type(value).__name__}"
            )
    return {name: fields[name] for name in CANONICAL_FIELDS}


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of ``value``; raises :class:`CanonicalError` when it has none
    (non-string keys, NaN, integers beyond 2**53, ...)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalError(f"value cannot be canonicalized (RFC 8785): {exc}") from exc


def record_hash(record: Mapping[str, Any]) -> bytes:
    """sha256 of the RFC 8785 canonical JSON of the canonical record (32 bytes).

    ``record`` is checked with :func:`canonical_record` first.
    """
    return hashlib.sha256(jcs(canonical_record(record))).digest()


def metadata_hash(manifest: Mapping[str, Any]) -> bytes:
    """sha256 of the RFC 8785 canonical JSON of a batch manifest (32 bytes)."""
    return hashlib.sha256(jcs(dict(manifest))).digest()


def new_salt() -> bytes:
    """A fresh random 32-byte salt from the operating system's CSPRNG."""
    return secrets.token_bytes(SALT_BYTES)


def batch_manifest(
    *,
    institution_id: str,
    discipline_counts: Mapping[str, int],
    record_count: int,
    rejected_count: int,
    submitted_at: datetime | str,
    schema_version: int = CANONICAL_SCHEMA_VERSION,
    policy_version: str,
    source_name: str,
) -> dict[str, Any]:
    """The batch manifest whose :func:`metadata_hash` is anchored next to the batch's Merkle root.

    Contract (documented in docs/PROVENANCE.md): ``record_count`` is the number of leaves under
    the root and equals the sum of ``discipline_counts``; ``rejected_count`` counts submitted
    records left out of the tree; ``submitted_at`` is an aware datetime (stored as ISO 8601 in UTC)
    or an ISO 8601 string stored as given. Raises :class:`CanonicalError` on a violated contract.
    """
    if isinstance(submitted_at, datetime):
        if submitted_at.tzinfo is None:
            raise CanonicalError("submitted_at must be timezone-aware")
        submitted_at = submitted_at.astimezone(UTC).isoformat()
    if not submitted_at:
        raise CanonicalError("submitted_at must not be empty")
    for name, count in (("record_count", record_count), ("rejected_count", rejected_count)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CanonicalError(f"{name} must be a non-negative integer, got {count!r}")
    counts: dict[str, int] = {}
    for discipline, count in sorted(discipline_counts.items()):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CanonicalError(
                f"discipline_counts[{discipline!r}] must be a non-negative integer, got {count!r}"
            )
        counts[str(discipline)] = count
    if sum(counts.values()) != record_count:
        raise CanonicalError(
            f"discipline_counts sum to {sum(counts.values())} but record_count is {record_count}"
        )
    manifest: dict[str, Any] = {
        "institution_id": institution_id,
        "source_name": source_name,
        "submitted_at": submitted_at,
        "record_count": record_count,
        "rejected_count": rejected_count,
        "discipline_counts": counts,
        "schema_version": schema_version,
        "policy_version": policy_version,
    }
    # Fail here, not later at hashing time, when a value has no canonical JSON form.
    jcs(manifest)
    return manifest
