"""Offline verification: recompute record hash, leaf and root from the bundle alone."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from ledger.audit.bundle import ProofBundle
from ledger.audit.verification import Check, VerificationReport, abbrev
from ledger.canonical import (
    CANONICAL_FIELDS,
    CanonicalError,
    canonical_record,
    record_hash,
    record_texts,
)
from ledger.ids import record_id_for_leaf
from ledger.merkle import leaf_hash, parse_bytes32, process_proof

# Accidental edits that change a field's bytes but not what a reader sees; trying them lets a failed
# record_hash check name the field and the kind of change instead of only saying "changed".
_ACCIDENTAL_EDITS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("Unicode normalization (committed as NFC)", lambda s: unicodedata.normalize("NFC", s)),
    ("Unicode normalization (committed as NFD)", lambda s: unicodedata.normalize("NFD", s)),
    ("compatibility characters (committed as NFKC)", lambda s: unicodedata.normalize("NFKC", s)),
    ("line endings (committed with CRLF)", lambda s: s.replace("\r\n", "\n").replace("\n", "\r\n")),
    ("line endings (committed with LF)", lambda s: s.replace("\r\n", "\n")),
    ("surrounding whitespace (committed stripped)", str.strip),
)


def _diagnose_record(fields: Mapping[str, Any], expected: bytes) -> str | None:
    """The single text (a field, or one turn of ``history``) and accidental edit whose undoing
    makes the record hash to ``expected``."""
    texts = [(name, fields[name]) for name in CANONICAL_FIELDS] + [
        (name, text) for name, text in record_texts(fields) if name not in CANONICAL_FIELDS
    ]
    for name, text in texts:
        for label, undo in _ACCIDENTAL_EDITS:
            candidate = undo(text)
            if candidate != text and record_hash(_with_text(fields, name, candidate)) == expected:
                return f"field {name!r} differs from the committed text only in {label}"
    return None


def _with_text(fields: Mapping[str, Any], name: str, text: str) -> dict[str, Any]:
    """``fields`` with the text at ``name`` (``output``, ``history[1][0]``) replaced."""
    if not name.startswith("history["):
        return {**fields, name: text}
    turn, side = (int(part) for part in name[len("history[") : -1].split("]["))
    history = [list(pair) for pair in fields["history"]]
    history[turn][side] = text
    return {**fields, "history": history}


def verify_offline(bundle: ProofBundle) -> VerificationReport:
    """Recompute the record hash, the leaf and the root from the bundle alone.

    Checks, in order: ``record_fields`` (exactly the canonical fields), ``record_hash`` (sha256 of
    the record's RFC 8785 JSON), ``leaf`` (from record_hash and salt), ``record_id`` (when present),
    ``merkle_proof`` (leaf + proof lead to root). Each failure names the value that differs.
    """
    return VerificationReport(
        batch_id=bundle.batch_id,
        record_id=bundle.record_id,
        root=bundle.root,
        checks=tuple(offline_checks(bundle)),
    )


def offline_checks(bundle: ProofBundle) -> list[Check]:
    """The checks of :func:`verify_offline`, in order."""
    claimed_hash = parse_bytes32(bundle.record_hash)
    salt = parse_bytes32(bundle.salt)
    claimed_leaf = parse_bytes32(bundle.leaf)
    root = parse_bytes32(bundle.root)
    computed_leaf = leaf_hash(claimed_hash, salt)
    reached_root = process_proof(claimed_leaf, (parse_bytes32(p) for p in bundle.proof))
    leaf_ok = computed_leaf == claimed_leaf
    proof_ok = reached_root == root
    record_hash_ok = False
    checks: list[Check] = []

    try:
        fields = canonical_record(bundle.record)
    except CanonicalError as exc:
        checks.append(Check("record_fields", False, f"the record is not canonical: {exc}"))
        checks.append(
            Check("record_hash", False, "not computed: the record does not have canonical form")
        )
    else:
        checks.append(
            Check(
                "record_fields",
                True,
                _fields_summary(fields),
            )
        )
        computed_hash = record_hash(fields)
        record_hash_ok = computed_hash == claimed_hash
        if record_hash_ok:
            checks.append(
                Check(
                    "record_hash",
                    True,
                    f"sha256 of the record's RFC 8785 JSON is record_hash {abbrev(claimed_hash)}",
                )
            )
        else:
            diagnosis = _diagnose_record(fields, claimed_hash)
            if diagnosis is not None:
                cause = diagnosis
            elif leaf_ok and proof_ok:
                cause = (
                    "record_hash, salt, leaf and proof agree with the root, so the record's text "
                    "was changed after export: at least one of its fields differs from the "
                    "committed text (sha256 does not say which)"
                )
            else:
                cause = "a field of the record was changed, or record_hash was altered"
            checks.append(
                Check(
                    "record_hash",
                    False,
                    f"record_hash does not match the record: the record hashes to "
                    f"{abbrev(computed_hash)}, the bundle says {abbrev(claimed_hash)}; {cause}",
                )
            )

    if leaf_ok:
        checks.append(
            Check(
                "leaf",
                True,
                f"keccak256(keccak256(abi.encode(record_hash, salt))) is the leaf "
                f"{abbrev(claimed_leaf)}",
            )
        )
    else:
        if not proof_ok:
            cause = "the salt, record_hash or leaf was altered"
        elif record_hash_ok:
            cause = (
                "the leaf is in the tree, so the salt was changed, or the record was replaced "
                "together with its record_hash"
            )
        else:
            cause = "the leaf is in the tree, so the salt or record_hash was changed"
        checks.append(
            Check(
                "leaf",
                False,
                f"the leaf does not match record_hash and salt: they give {abbrev(computed_leaf)}, "
                f"the bundle's leaf is {abbrev(claimed_leaf)}; {cause}",
            )
        )

    if bundle.record_id is not None:
        expected_id = record_id_for_leaf(claimed_leaf)
        checks.append(
            Check("record_id", True, f"record_id {expected_id} is derived from the leaf")
            if bundle.record_id == expected_id
            else Check(
                "record_id",
                False,
                f"record_id {bundle.record_id} is not derived from the leaf "
                f"(expected {expected_id})",
            )
        )

    if proof_ok:
        checks.append(
            Check(
                "merkle_proof",
                True,
                f"the {len(bundle.proof)}-step proof leads from the leaf to the root "
                f"{abbrev(root)}",
            )
        )
    else:
        checks.append(
            Check(
                "merkle_proof",
                False,
                f"the proof does not lead from the leaf to the root: it reaches "
                f"{abbrev(reached_root)} instead of {abbrev(root)}; a proof element, the leaf or "
                "the root was altered",
            )
        )
    return checks


def _fields_summary(fields: Mapping[str, Any]) -> str:
    extras = []
    if "system" in fields:
        extras.append("a system prompt")
    if "history" in fields:
        n = len(fields["history"])
        extras.append(f"{n} earlier exchange{'s' if n != 1 else ''} in history")
    if not extras:
        return f"the record has exactly the {len(CANONICAL_FIELDS)} canonical fields, all strings"
    return (
        f"the record has the {len(CANONICAL_FIELDS)} canonical string fields plus "
        f"{' and '.join(extras)}, all of canonical types"
    )
