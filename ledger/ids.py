"""Identifier types shared by every package, and their on-chain keys."""

from __future__ import annotations

import re
import uuid
from typing import NewType

from eth_hash.auto import keccak

from ledger.errors import InvalidInstitutionId

BatchId = NewType("BatchId", str)
RecordId = NewType("RecordId", str)
InstitutionId = NewType("InstitutionId", str)
RunId = NewType("RunId", str)
StreamId = NewType("StreamId", str)
EventId = NewType("EventId", str)

INSTITUTION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")


def new_batch_id() -> BatchId:
    """A fresh random batch id: 32 lowercase hex characters."""
    return BatchId(uuid.uuid4().hex)


def new_run_id() -> RunId:
    """A fresh random training-run id: 32 lowercase hex characters."""
    return RunId(uuid.uuid4().hex)


def record_id_for_leaf(leaf: bytes) -> RecordId:
    """The record id derived from a record's Merkle leaf (unique because every leaf is salted)."""
    return RecordId("rec_" + leaf.hex()[:20])


def id_key(identifier: str) -> bytes:
    """The bytes32 key of a string id on chain: keccak256 of its UTF-8 bytes."""
    return keccak(identifier.encode("utf-8"))


INSTITUTION_ID_RULE = "a slug like 'bupt' ([a-z0-9][a-z0-9_-]{1,63})"


def is_valid_institution_id(value: str) -> bool:
    """Whether ``value`` is a well-formed institution slug."""
    return bool(INSTITUTION_ID_RE.match(value))


def require_institution_id(value: str) -> InstitutionId:
    """``value`` as an institution id; raises :class:`~ledger.errors.InvalidInstitutionId`
    naming the rule when it is not a well-formed slug."""
    if not is_valid_institution_id(value):
        raise InvalidInstitutionId(f"invalid institution id: expected {INSTITUTION_ID_RULE}")
    return InstitutionId(value)


def batch_stream(batch_id: str) -> StreamId:
    return StreamId(f"batch-{batch_id}")


def institution_stream(institution_id: str) -> StreamId:
    return StreamId(f"institution-{institution_id}")


CORPUS_INDEX_STREAM = StreamId("corpus-index")
"""The stream of ``CorpusIndexExtended`` events: the order in which accepted records joined the
corpus (one stream, so appending to it serializes governance decisions)."""


def run_stream(run_id: str) -> StreamId:
    return StreamId(f"run-{run_id}")


def evaluation_stream(report_id: str) -> StreamId:
    return StreamId(f"evaluation-{report_id}")
