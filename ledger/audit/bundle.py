"""The proof bundle: a record's canonical fields, salt, hashes, proof and anchor, as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ledger.canonical import RecordValue, canonical_record, record_hash
from ledger.errors import LedgerError
from ledger.ids import record_id_for_leaf
from ledger.merkle import MerkleError, StandardMerkleTree, leaf_hash, parse_bytes32, to_hex

BUNDLE_VERSION = 1


class AuditError(LedgerError):
    """A proof bundle cannot be built or read."""


class BundleFormatError(AuditError):
    """The text is not a proof bundle this code can read (bad JSON, version or field)."""


def _hex32(value: str) -> str:
    try:
        return to_hex(parse_bytes32(value))
    except MerkleError as exc:
        # pydantic reports ValueErrors raised by validators with the field's location.
        raise ValueError(str(exc).removeprefix("value ")) from None


def _address(value: str) -> str:
    raw = value[2:] if value.startswith(("0x", "0X")) else ""
    if len(raw) != 40 or any(c not in "0123456789abcdefABCDEF" for c in raw):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return value


def _integer(value: object) -> object:
    # JSON true/false and numeric strings are not integers, whatever Python coerces.
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be an integer")
    return value


# What the validators accept, for the JSON Schema (the API's OpenAPI document); the validators
# stay the rule, with their own messages.
HEX32_PATTERN = r"^(0[xX])?[0-9a-fA-F]{64}$"
ADDRESS_PATTERN = r"^0[xX][0-9a-fA-F]{40}$"

Hex32 = Annotated[
    str,
    AfterValidator(_hex32),
    WithJsonSchema({"type": "string", "pattern": HEX32_PATTERN}),
]
"""A 32-byte value as 0x-prefixed lowercase hex (any case and an optional prefix are accepted)."""
Address = Annotated[
    str,
    AfterValidator(_address),
    WithJsonSchema({"type": "string", "pattern": ADDRESS_PATTERN}),
]
Integer = Annotated[int, BeforeValidator(_integer)]
"""A JSON integer (pydantic's lax mode would also take booleans and numeric strings)."""


def _record_value(value: object) -> object:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        # pydantic's own error for a field that is not a string: its message quotes nothing.
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(text, str) for text in pair)
        for pair in value
    ):
        return value
    raise ValueError("must be an array of [user, assistant] string pairs (history)")


BundleRecordValue = Annotated[
    RecordValue,
    PlainValidator(_record_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
            ]
        }
    ),
]
"""A canonical record field as a bundle holds it; whether the record as a whole is canonical is
the ``record_fields`` check of verification, not a format error."""


class ProofBundle(BaseModel):
    """One record's proof of inclusion in an anchored batch (JSON: ``to_json`` / ``from_json``).

    The chain fields are ``None`` when the bundle was exported before the batch was anchored; such a
    bundle verifies offline but not online.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bundle_version: Literal[1] = 1
    batch_id: str
    record_id: str | None = None
    """``rec_`` + the first 20 hex digits of the leaf (see ``ledger.ids``)."""
    record: dict[str, BundleRecordValue]
    """The canonical record fields, as hashed (``system`` and ``history`` only when present)."""
    salt: Hex32
    record_hash: Hex32
    leaf: Hex32
    proof: tuple[Hex32, ...]
    """Sibling hashes from the leaf up to the root (OpenZeppelin ``getProof`` order)."""
    root: Hex32
    metadata_hash: Hex32 | None = None
    chain_id: Integer | None = None
    contract_address: Address | None = None
    tx_hash: Hex32 | None = None
    block_number: Integer | None = None

    @classmethod
    def for_record(
        cls,
        *,
        tree: StandardMerkleTree,
        index: int,
        record: Mapping[str, Any],
        salt: bytes,
        batch_id: str,
        metadata_hash: bytes | None = None,
        chain_id: int | None = None,
        contract_address: str | None = None,
        tx_hash: str | None = None,
        block_number: int | None = None,
    ) -> ProofBundle:
        """The bundle of value ``index`` of ``tree``, which must be ``(record_hash(record), salt)``.

        Raises :class:`AuditError` when the record or salt is not the one the tree holds there.
        """
        fields = canonical_record(record)
        value = (record_hash(fields), parse_bytes32(salt, what="salt"))
        if tree.leaf(index) != leaf_hash(*value):
            raise AuditError(
                f"value {index} of the tree is not this record and salt; refusing to build "
                "a bundle that cannot verify"
            )
        leaf = tree.leaf(index)
        return cls(
            batch_id=batch_id,
            record_id=record_id_for_leaf(leaf),
            record=fields,
            salt=to_hex(value[1]),
            record_hash=to_hex(value[0]),
            leaf=to_hex(leaf),
            proof=tuple(tree.proof_hex(index)),
            root=tree.root_hex,
            metadata_hash=to_hex(metadata_hash) if metadata_hash is not None else None,
            chain_id=chain_id,
            contract_address=contract_address,
            tx_hash=tx_hash,
            block_number=block_number,
        )

    def to_json(self) -> str:
        """Pretty JSON (UTF-8 text kept readable, not escaped)."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> ProofBundle:
        """Parse a bundle; raises :class:`BundleFormatError` saying which field is wrong."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleFormatError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BundleFormatError("a proof bundle is a JSON object")
        version = data.get("bundle_version")
        if version != BUNDLE_VERSION:
            raise BundleFormatError(
                f"unsupported bundle_version {version!r}; this code reads version {BUNDLE_VERSION}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(bundle)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise BundleFormatError(f"malformed proof bundle: {problems}") from exc


def load_bundle(path: Path) -> ProofBundle:
    """Read a bundle file; raises :class:`BundleFormatError` (also for an unreadable file)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleFormatError(f"cannot read {path}: {exc}") from exc
    return ProofBundle.from_json(data)
