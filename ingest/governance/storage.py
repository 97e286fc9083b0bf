"""What governance keeps in its folder, and the folder's secret cache key.

A governance folder holds caches derived from submitted texts: the embedding cache
(:data:`EMBEDDINGS_FILE`) and the near-duplicate index (:data:`DEDUP_FILE`). Both look texts up by
a hash. A plain hash would let anyone holding the files confirm a guessed text (hash the guess,
search the file), so every such hash is an HMAC-SHA256 under a secret of the folder,
:data:`CACHE_KEY_FILE`: 32 random bytes, owner-only, created once by the first process that needs
it and read by every later one. Each cache records which key its entries were made under
(:func:`key_id`) and rebuilds or drops them when it changes, so a lost or replaced key costs
recomputation, never wrong answers.

Erasure: deleted rows are overwritten with zeros (``PRAGMA secure_delete``) and
:func:`flush_erased` moves the rewritten pages out of the write-ahead log, so an erased text
leaves no bytes behind in the database files.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
from pathlib import Path

from ingest.governance.errors import GovernanceError
from ledger.files import private_dir, private_file

CACHE_KEY_FILE = "cache.key"
EMBEDDINGS_FILE = "embeddings.sqlite"
DEDUP_FILE = "dedup.sqlite"
KEY_BYTES = 32


class CacheKeyError(GovernanceError):
    """The folder's cache key file exists but does not hold a key."""


class ErasureIncomplete(GovernanceError):
    """Erased rows are deleted but their pages could not be moved out of the write-ahead log
    (another connection kept reading for the whole busy timeout); erasing again finishes it."""


def load_cache_key(directory: Path) -> bytes:
    """The secret of a governance folder, created (with the folder) when missing.

    Several processes may call this at once: the key is written to a private temporary file
    and linked into place, so every caller reads the same complete key. Raises
    :class:`CacheKeyError` when the file holds anything but :data:`KEY_BYTES` bytes.
    """
    private_dir(directory)
    path = directory / CACHE_KEY_FILE
    if not path.exists():
        staging = private_file(
            directory / f".{CACHE_KEY_FILE}.{os.getpid()}.{secrets.token_hex(8)}"
        )
        try:
            with staging.open("wb") as out:
                out.write(secrets.token_bytes(KEY_BYTES))
                out.flush()
                os.fsync(out.fileno())
            # Fails when another process created it first: theirs is used.
            with contextlib.suppress(FileExistsError):
                os.link(staging, path)
        finally:
            staging.unlink()
    private_file(path)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise CacheKeyError(
            f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte cache key; delete it to "
            "start the caches of this folder afresh"
        )
    return key


def random_cache_key() -> bytes:
    """A key for caches that live only in memory (nothing outlives the object)."""
    return secrets.token_bytes(KEY_BYTES)


def key_id(key: bytes) -> str:
    """A public name of ``key`` that caches store to notice a changed key; reveals nothing of it."""
    return hmac.new(key, b"governance cache key id", hashlib.sha256).hexdigest()[:16]


def flush_erased(conn: sqlite3.Connection) -> None:
    """Checkpoint the write-ahead log into the database file and empty it, after a secure delete.

    With ``secure_delete`` on, a delete writes zeroed pages to the log; until they are
    checkpointed, the database file still holds the old bytes and the log holds older frames.
    Raises :class:`ErasureIncomplete` when other connections prevented the checkpoint.
    """
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise ErasureIncomplete(
            "erased rows are deleted but the write-ahead log could not be emptied; "
            "retry the erasure"
        )
