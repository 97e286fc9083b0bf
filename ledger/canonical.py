"""Canonical records, their hashes, salts and the batch manifest (see docs/PROVENANCE.md).

Pure functions, no I/O. A record's identity is ``sha256(JCS(record))`` where JCS is the RFC 8785
JSON Canonicalization Scheme: any tool that implements RFC 8785 and sha256 recomputes the same 32
bytes. Text is hashed exactly as given (JCS does not normalize Unicode); normalization is intake's
job.
"""

from __future__ import annotations

import hashlib
import re
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
"""The fields every canonical record has, all strings; ``input`` may be empty."""

OPTIONAL_FIELDS: tuple[str, ...] = ("system", "history")
"""The fields a multi-turn record adds, each present only when it is not empty: ``system``, a
non-empty string (the system prompt), and ``history``, a non-empty array of ``[user, assistant]``
string pairs (the turns before the last one, oldest first). A record without them is exactly the
single-turn record of :data:`CANONICAL_FIELDS`, so its JCS bytes and hash do not change."""

CANONICAL_SCHEMA_VERSION = 1
"""Version of the canonical record schema (the field lists above); recorded in batch manifests.
Adding the optional fields did not change it: every record valid before hashes as before."""

SALT_BYTES = 32

RecordValue = str | list[list[str]]
"""What a canonical record field holds: a string, or (``history``) an array of string pairs."""


class CanonicalError(LedgerError):
    """A record or manifest cannot be put in canonical form."""


def canonical_record(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical record of ``fields``: :data:`CANONICAL_FIELDS` in that order, all strings,
    then those of :data:`OPTIONAL_FIELDS` that are present (``history`` as lists).

    Raises :class:`CanonicalError` naming the field when one is missing or of the wrong type, when
    an optional field is present but empty (the canonical form leaves it out, so keeping it would
    give the same record two hashes), and naming any field that is not canonical (a hash must
    never silently ignore part of what it was given).
    """
    missing = [name for name in CANONICAL_FIELDS if name not in fields]
    if missing:
        raise CanonicalError(f"record is missing canonical field(s): {', '.join(missing)}")
    known = (*CANONICAL_FIELDS, *OPTIONAL_FIELDS)
    extra = sorted(str(name) for name in fields if name not in known)
    if extra:
        raise CanonicalError(
            f"record has non-canonical field(s): {', '.join(extra)}; "
            f"expected exactly {', '.join(CANONICAL_FIELDS)} "
            f"and optionally {', '.join(OPTIONAL_FIELDS)}"
        )
    for name in CANONICAL_FIELDS:
        value = fields[name]
        if not isinstance(value, str):
            raise CanonicalError(
                f"record field {name!r} must be a string, got {type(value).__name__}"
            )
    record: dict[str, Any] = {name: fields[name] for name in CANONICAL_FIELDS}
    if "system" in fields:
        system = fields["system"]
        if not isinstance(system, str):
            raise CanonicalError(
                f"record field 'system' must be a string, got {type(system).__name__}"
            )
        if not system:
            raise CanonicalError(
                "record field 'system' is empty: an empty system prompt is left out of the record"
            )
        record["system"] = system
    if "history" in fields:
        record["history"] = _history(fields["history"])
    return record


def _history(value: Any) -> list[list[str]]:
    if not isinstance(value, list | tuple):
        raise CanonicalError(
            f"record field 'history' must be an array of [user, assistant] pairs, "
            f"got {type(value).__name__}"
        )
    if not value:
        raise CanonicalError(
            "record field 'history' is empty: a record without earlier turns leaves it out"
        )
    pairs: list[list[str]] = []
    for index, pair in enumerate(value):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(text, str) for text in pair)
        ):
            raise CanonicalError(
                f"record field 'history[{index}]' must be a [user, assistant] pair of strings"
            )
        pairs.append([pair[0], pair[1]])
    return pairs


def record_texts(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every text of a canonical record as ``(field, text)``, in dialogue order: ``system``,
    ``history[i][0]`` (user) and ``history[i][1]`` (assistant) for each earlier turn, then
    ``instruction``, ``input`` and ``output``. Absent optional fields are left out; ``input`` is
    listed even when empty. Field names are the paths that :func:`field_text` reads."""
    texts: list[tuple[str, str]] = []
    if record.get("system"):
        texts.append(("system", str(record["system"])))
    for index, (user, assistant) in enumerate(record_history(record)):
        texts += [(f"history[{index}][0]", user), (f"history[{index}][1]", assistant)]
    texts += [(name, str(record.get(name) or "")) for name in ("instruction", "input", "output")]
    return texts


def record_history(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The earlier ``(user, assistant)`` turns of a record, oldest first (none when absent)."""
    return [(str(user), str(assistant)) for user, assistant in record.get("history") or ()]


_HISTORY_FIELD = re.compile(r"^history\[(\d+)\]\[([01])\]$")


def field_text(record: Mapping[str, Any], field: str) -> str:
    """The text a field name of :func:`record_texts` designates (``output``, ``system``,
    ``history[2][1]``); the empty string when the record has no such field."""
    match = _HISTORY_FIELD.match(field)
    if match is None:
        value = record.get(field)
        return value if isinstance(value, str) else ""
    history = record_history(record)
    turn = int(match.group(1))
    return history[turn][int(match.group(2))] if turn < len(history) else ""


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
