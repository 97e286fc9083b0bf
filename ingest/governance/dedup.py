"""A persistent near-duplicate index over the accepted corpus.

Three stages, cheapest first; each later stage only sees what the earlier ones let through:

1. **exact**: sha256 of the normalized text (NFKC, lowercase, punctuation and whitespace
   collapsed, spaces next to CJK characters dropped);
2. **minhash**: MinHash LSH over token-bigram shingles (a token is one CJK character or one word)
   finds candidates; a candidate whose estimated Jaccard similarity reaches
   ``DedupConfig.minhash_threshold`` is a duplicate. Shingle sets ignore sentence order, so
   reordered sentences stay near-identical;
3. **embedding**: the remaining LSH candidates that still share enough shingles
   (``embedding_min_jaccard``) are compared by sentence-embedding cosine (calibrated, see
   :meth:`ingest.governance.embeddings.Embedder.calibrate`), which catches rewording. Only these
   candidates are ever embedded, so the index costs no model time for records without a
   near neighbour.

Languages: stages 1 and 2 are language independent. Stage 3 compares two records only when the
same model embeds both (``en`` with ``en``; ``zh`` and ``mixed`` with each other). Cross-language
duplicates (a translation of an accepted record) are out of scope: they share no shingles and
their vectors live in different spaces.

Storage: one SQLite file holds every accepted record's id, language, exact key, signature and
text (the text is needed to embed it when it becomes a candidate; :meth:`DedupIndex.remove`
deletes it). The LSH buckets are rebuilt in memory from the stored signatures when the index
opens (about 4 s per 100k records on 2 busy cores). Several instances may open the same file:
each one reloads when another has committed a change (a generation counter in the file), so a
write made by one process is seen by the next call of the others. Checking and adding are two
calls: the index alone does not stop two processes governing at the same moment from each
accepting one copy of a duplicate. The governance service closes that gap with the event log
(:mod:`ingest.governance.service`): the index is a projection of the log's ``corpus-index``
stream, and :attr:`DedupIndex.position` is the stream version it reflects.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from ingest.governance.embeddings import Embedder, model_for_language, text_digest
from ingest.governance.errors import GovernanceError
from ingest.governance.minhash import (
    SCHEME_VERSION,
    BandIndex,
    MinHasher,
    estimated_jaccard,
    exact_key,
    normalize_text,
)

_LOOKUP_CHUNK = 900


class DedupError(GovernanceError):
    """Base class of errors raised by the near-duplicate index."""


class InvalidDedupConfig(DedupError, ValueError):
    """A :class:`DedupConfig` combination that cannot work."""


@dataclass(frozen=True)
class DedupConfig:
    """Parameters of the near-duplicate index.

    The signature scheme (``shingle_size``, ``num_perm``, ``lsh_bands``, ``lsh_rows``, ``seed``) is
    stored with the index; opening an index with a different scheme recomputes the stored
    signatures from the stored texts. Thresholds can change freely between runs.
    """

    shingle_size: int = field(
        default=2,
        metadata={
            "help": "Tokens per shingle. Bigrams keep reworded text similar enough to be an LSH "
            "candidate while unrelated records share almost none."
        },
    )
    num_perm: int = field(default=192, metadata={"help": "MinHash permutations per signature."})
    lsh_bands: int = field(default=64, metadata={"help": "LSH bands."})
    lsh_rows: int = field(
        default=3,
        metadata={
            "help": "Signature positions per band. 64 bands x 3 rows make a pair a candidate "
            "with probability 0.83 at Jaccard 0.3, 0.985 at 0.4, but only 0.008 at 0.05."
        },
    )
    seed: int = field(default=20240611, metadata={"help": "Seed of the MinHash permutations."})
    minhash_threshold: float = field(
        default=0.7,
        metadata={
            "help": "Estimated Jaccard similarity at or above which a candidate is a "
            "duplicate without looking at embeddings."
        },
    )
    embedding_min_jaccard: float = field(
        default=0.2,
        metadata={
            "help": "Candidates below this estimated Jaccard similarity are dropped without "
            "being embedded (bounds model time)."
        },
    )
    embedding_threshold: float = field(
        default=0.85,
        metadata={
            "help": "Calibrated embedding similarity at or above which a candidate is a "
            "reworded duplicate. Measured: rewordings 0.92-0.96, same-topic records <= 0.7."
        },
    )

    def __post_init__(self) -> None:
        if self.shingle_size < 1:
            raise InvalidDedupConfig("shingle_size must be at least 1")
        if self.lsh_bands < 1 or self.lsh_rows < 1:
            raise InvalidDedupConfig("lsh_bands and lsh_rows must be at least 1")
        if self.lsh_bands * self.lsh_rows > self.num_perm:
            raise InvalidDedupConfig(
                f"lsh_bands * lsh_rows ({self.lsh_bands * self.lsh_rows}) exceeds num_perm "
                f"({self.num_perm})"
            )
        for name in ("minhash_threshold", "embedding_min_jaccard", "embedding_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidDedupConfig(f"{name} must be in (0, 1], got {value}")
        if self.embedding_min_jaccard > self.minhash_threshold:
            raise InvalidDedupConfig("embedding_min_jaccard must not exceed minhash_threshold")

    def scheme(self) -> str:
        """The signature scheme as canonical JSON (what stored signatures depend on)."""
        params = asdict(self)
        keys = ("shingle_size", "num_perm", "lsh_bands", "lsh_rows", "seed")
        return json.dumps(
            {"version": SCHEME_VERSION, **{k: params[k] for k in keys}}, sort_keys=True
        )


@dataclass(frozen=True)
class DedupItem:
    """A record as the index sees it: its id, the text compared, and its language."""

    record_id: str
    text: str
    language: str

    @classmethod
    def from_record(cls, record_id: str, record: Mapping[str, str]) -> DedupItem:
        """The item of a canonical record: instruction, input (if any) and output, one per line."""
        parts = [record["instruction"], record.get("input", ""), record["output"]]
        return cls(
            record_id=record_id,
            text="\n".join(part for part in parts if part),
            language=record["language"],
        )


class DuplicateMethod(StrEnum):
    EXACT = "exact"
    MINHASH = "minhash"
    EMBEDDING = "embedding"


@dataclass(frozen=True)
class DuplicateMatch:
    """The earlier record an item duplicates, and how that was found.

    ``similarity`` is 1.0 for ``exact``, the estimated Jaccard similarity of the shingle sets for
    ``minhash``, and the calibrated embedding similarity for ``embedding``.
    """

    record_id: str
    method: DuplicateMethod
    similarity: float


@dataclass
class _Prepared:
    exact: bytes
    signature: np.ndarray


@dataclass
class _Candidate:
    """A possible earlier duplicate of one query item: a corpus record or an earlier batch item."""

    record_id: str
    language: str
    jaccard: float
    corpus_pos: int | None
    batch_index: int | None


class DedupIndex:
    """The accepted corpus's near-duplicate index, stored in one SQLite file.

    ``embedder=None`` disables stage 3 (only exact and MinHash duplicates are found). Calls are
    serialized (safe to share between threads).
    """

    def __init__(
        self, path: Path, *, embedder: Embedder | None, config: DedupConfig = DedupConfig()
    ) -> None:
        self._path = path
        self._embedder = embedder
        self._config = config
        self._hasher = MinHasher(
            num_perm=config.num_perm, shingle_size=config.shingle_size, seed=config.seed
        )
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        self._create_schema()
        self._memo: dict[tuple[str, bytes], _Prepared] = {}
        self._generation = -1
        self._reset_memory()
        self._sync()

    # -- public API --------------------------------------------------------------------------------

    @property
    def config(self) -> DedupConfig:
        return self._config

    def __len__(self) -> int:
        with self._lock:
            self._sync()
            return len(self._pos_of)

    def __contains__(self, record_id: object) -> bool:
        with self._lock:
            self._sync()
            return record_id in self._pos_of

    def find_duplicates(self, items: Sequence[DedupItem]) -> list[DuplicateMatch | None]:
        """For each item, the earlier record it duplicates, or ``None``.

        "Earlier" means a record of the accepted corpus or an item before it in ``items``
        (whether or not that item is itself a duplicate). A record never duplicates itself:
        candidates with the item's own ``record_id`` are ignored, so re-checking a stored record
        is harmless. When several earlier records match, the strongest method wins (exact, then
        minhash, then embedding), then the highest similarity, then the corpus over the batch.
        """
        with self._lock:
            self._sync()
            for item in items:
                model_for_language(item.language)
            prepared = self._prepare(items)
            self._memo = {
                (item.record_id, text_digest(item.text)): p
                for item, p in zip(items, prepared, strict=True)
            }
            results: list[DuplicateMatch | None] = [None] * len(items)
            self._match_exact(items, prepared, results)
            pending = [i for i, match in enumerate(results) if match is None]
            if not pending:
                return results
            candidates = self._lsh_candidates(items, prepared, pending)
            need_embedding: dict[int, list[_Candidate]] = {}
            for i in pending:
                found = candidates.get(i, [])
                if not found:
                    continue
                best = max(found, key=lambda c: (c.jaccard, c.corpus_pos is not None))
                if best.jaccard >= self._config.minhash_threshold:
                    results[i] = DuplicateMatch(
                        best.record_id, DuplicateMethod.MINHASH, best.jaccard
                    )
                    continue
                close = [
                    c
                    for c in found
                    if c.jaccard >= self._config.embedding_min_jaccard
                    and model_for_language(c.language) == model_for_language(items[i].language)
                ]
                if close:
                    need_embedding[i] = close
            if need_embedding and self._embedder is not None:
                self._match_embeddings(items, need_embedding, results)
            return results

    @property
    def position(self) -> int:
        """The position in the source of accepted records (for the ledger, the version of its
        ``corpus-index`` stream) that the stored records reflect; 0 for a new index."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'position'").fetchone()
            return int(row[0]) if row else 0

    def add(self, items: Sequence[DedupItem], *, position: int | None = None) -> int:
        """Store accepted records; ids already stored (or repeated in ``items``) are skipped.

        Returns how many records were added. The write is one transaction, which also records
        ``position`` (see :attr:`position`) when it is given.
        """
        with self._lock:
            self._sync()
            fresh: dict[str, DedupItem] = {}
            for item in items:
                model_for_language(item.language)
                if item.record_id not in self._pos_of and item.record_id not in fresh:
                    fresh[item.record_id] = item
            if not fresh:
                if position is not None:
                    with self._conn:
                        self._set_position(position)
                return 0
            new_items = list(fresh.values())
            prepared = self._prepare(new_items)
            with self._conn:
                if position is not None:
                    self._set_position(position)
                self._conn.executemany(
                    "INSERT INTO records (record_id, language, exact_key, signature, text)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (item.record_id, item.language, p.exact, p.signature.tobytes(), item.text)
                        for item, p in zip(new_items, prepared, strict=True)
                    ],
                )
                generation = self._bump_generation()
            self._remember(
                [
                    (item.record_id, item.language, p.exact)
                    for item, p in zip(new_items, prepared, strict=True)
                ],
                np.stack([p.signature for p in prepared]),
            )
            self._generation = generation
            return len(new_items)

    def remove(self, record_id: str) -> bool:
        """Erase a record from the index (its text included, and its cached embedding).

        Returns whether the record was stored.
        """
        with self._lock:
            self._sync()
            row = self._conn.execute(
                "SELECT language, text FROM records WHERE record_id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return False
            language, text = row
            with self._conn:
                self._conn.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
                generation = self._bump_generation()
            # Erasure: move the zeroed pages out of the write-ahead log into the main file too.
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pos = self._pos_of.pop(record_id)
            self._alive[pos] = False
            same_text = self._exact.get(self._exact_of[pos], [])
            if pos in same_text:
                same_text.remove(pos)
            self._generation = generation
            if self._embedder is not None:
                self._embedder.forget([text], language=language)
            return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> DedupIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- stages ------------------------------------------------------------------------------------

    def _match_exact(
        self,
        items: Sequence[DedupItem],
        prepared: Sequence[_Prepared],
        results: list[DuplicateMatch | None],
    ) -> None:
        first_in_batch: dict[bytes, list[int]] = {}
        for i, (item, p) in enumerate(zip(items, prepared, strict=True)):
            in_corpus = [
                pos for pos in self._exact.get(p.exact, ()) if self._ids[pos] != item.record_id
            ]
            earlier = [
                j for j in first_in_batch.get(p.exact, ()) if items[j].record_id != item.record_id
            ]
            if in_corpus:
                results[i] = DuplicateMatch(self._ids[in_corpus[0]], DuplicateMethod.EXACT, 1.0)
            elif earlier:
                results[i] = DuplicateMatch(items[earlier[0]].record_id, DuplicateMethod.EXACT, 1.0)
            first_in_batch.setdefault(p.exact, []).append(i)

    def _lsh_candidates(
        self, items: Sequence[DedupItem], prepared: Sequence[_Prepared], pending: list[int]
    ) -> dict[int, list[_Candidate]]:
        """Candidates per pending item index, from the corpus and from earlier batch items."""
        cfg = self._config
        sigs = np.stack([p.signature for p in prepared])
        keys = self._hasher.band_keys(sigs, bands=cfg.lsh_bands, rows=cfg.lsh_rows)
        found: dict[int, list[_Candidate]] = {}

        pending_arr = np.asarray(pending, dtype=np.int64)
        rows, owners = self._bands.lookup(keys[pending_arr])
        if len(rows):
            query = pending_arr[rows]
            keep = self._alive[owners]
            query, owners = query[keep], owners[keep]
            jaccard = estimated_jaccard(sigs[query], self._sigs[owners])
            # Chance band collisions grow with the corpus; drop them before any per-pair work.
            close = jaccard >= cfg.embedding_min_jaccard
            query, owners, jaccard = query[close], owners[close], jaccard[close]
            for i, pos, jac in zip(query.tolist(), owners.tolist(), jaccard.tolist(), strict=True):
                if self._ids[pos] == items[i].record_id:
                    continue
                found.setdefault(i, []).append(
                    _Candidate(self._ids[pos], self._langs[pos], jac, pos, None)
                )

        # Earlier items of the same call: items that share a band key, grouped by sorting the keys.
        pending_set = set(pending)
        flat = keys.ravel()
        owner_of = np.repeat(np.arange(len(items), dtype=np.int64), keys.shape[1])
        order = np.argsort(flat, kind="stable")
        flat, owner_of = flat[order], owner_of[order]
        starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
        sizes = np.diff(np.append(starts, len(flat)))
        pairs: set[tuple[int, int]] = set()
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
            members = sorted(set(owner_of[start : start + size].tolist()))
            for a_index, later in enumerate(members):
                if later in pending_set:
                    pairs.update((earlier, later) for earlier in members[:a_index])
        if pairs:
            earlier_arr = np.array([e for e, _ in pairs], dtype=np.int64)
            later_arr = np.array([later for _, later in pairs], dtype=np.int64)
            jaccard = estimated_jaccard(sigs[later_arr], sigs[earlier_arr])
            close = jaccard >= cfg.embedding_min_jaccard
            for e, later, jac in zip(
                earlier_arr[close].tolist(),
                later_arr[close].tolist(),
                jaccard[close].tolist(),
                strict=True,
            ):
                if items[e].record_id == items[later].record_id:
                    continue
                found.setdefault(later, []).append(
                    _Candidate(items[e].record_id, items[e].language, jac, None, e)
                )
        return found

    def _match_embeddings(
        self,
        items: Sequence[DedupItem],
        need: dict[int, list[_Candidate]],
        results: list[DuplicateMatch | None],
    ) -> None:
        assert self._embedder is not None
        corpus_ids = sorted(
            {c.record_id for cands in need.values() for c in cands if c.corpus_pos is not None}
        )
        # A corpus record removed by another instance since the lookup has no text any more.
        corpus_texts = self._texts(corpus_ids)
        pairs: dict[int, list[tuple[_Candidate, str]]] = {}
        for i, cands in need.items():
            for c in cands:
                text = (
                    items[c.batch_index].text
                    if c.batch_index is not None
                    else corpus_texts.get(c.record_id)
                )
                if text is not None:
                    pairs.setdefault(i, []).append((c, text))

        # One encode call per language for the whole batch; the cache makes repeats free.
        by_language: dict[str, list[str]] = {}
        for i, found in pairs.items():
            texts = by_language.setdefault(items[i].language, [])
            texts.append(items[i].text)
            texts.extend(text for _, text in found)
        vectors: dict[str, dict[str, np.ndarray]] = {}
        for language, texts in by_language.items():
            unique = list(dict.fromkeys(texts))
            encoded = self._embedder.encode(unique, language=language)
            vectors[language] = dict(zip(unique, encoded, strict=True))

        for i, found in pairs.items():
            table = vectors[items[i].language]
            query = table[items[i].text]
            cosines = np.array([float(query @ table[text]) for _, text in found])
            similarity = self._embedder.calibrate(cosines, language=items[i].language)
            best = max(
                range(len(found)),
                key=lambda k: (float(similarity[k]), found[k][0].corpus_pos is not None),
            )
            if similarity[best] >= self._config.embedding_threshold:
                results[i] = DuplicateMatch(
                    found[best][0].record_id, DuplicateMethod.EMBEDDING, float(similarity[best])
                )

    # -- preparation -------------------------------------------------------------------------------

    def _prepare(self, items: Sequence[DedupItem]) -> list[_Prepared]:
        """Exact keys and signatures, reusing those computed by the last ``find_duplicates``."""
        out: list[_Prepared | None] = []
        todo: list[int] = []
        normalized: list[str] = []
        for item in items:
            memo = self._memo.get((item.record_id, text_digest(item.text)))
            out.append(memo)
            if memo is None:
                todo.append(len(out) - 1)
                normalized.append(normalize_text(item.text))
        if todo:
            sigs = self._hasher.signatures(normalized)
            for k, index in enumerate(todo):
                out[index] = _Prepared(exact_key(normalized[k]), sigs[k])
        return [p for p in out if p is not None]

    def _texts(self, record_ids: Sequence[str]) -> dict[str, str]:
        texts: dict[str, str] = {}
        for start in range(0, len(record_ids), _LOOKUP_CHUNK):
            chunk = record_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            texts.update(
                self._conn.execute(
                    f"SELECT record_id, text FROM records WHERE record_id IN ({marks})", chunk
                )
            )
        return texts

    # -- storage and in-memory state ---------------------------------------------------------------

    def _create_schema(self) -> None:
        with self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # Deleted rows (erased texts) are overwritten with zeros, not left in free pages.
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                " seq INTEGER PRIMARY KEY,"
                " record_id TEXT NOT NULL UNIQUE,"
                " language TEXT NOT NULL,"
                " exact_key BLOB NOT NULL,"
                " signature BLOB NOT NULL,"
                " text TEXT NOT NULL)"
            )
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            stored = self._conn.execute("SELECT value FROM meta WHERE key = 'scheme'").fetchone()
            if stored is None:
                self._conn.execute(
                    "INSERT INTO meta VALUES ('scheme', ?)", (self._config.scheme(),)
                )
            elif stored[0] != self._config.scheme():
                self._rebuild_signatures()

    def _rebuild_signatures(self) -> None:
        """Recompute every stored exact key and signature under the configured scheme.

        Runs inside the caller's transaction.
        """
        rows = self._conn.execute("SELECT seq, text FROM records").fetchall()
        normalized = [normalize_text(text) for _, text in rows]
        sigs = self._hasher.signatures(normalized)
        self._conn.executemany(
            "UPDATE records SET exact_key = ?, signature = ? WHERE seq = ?",
            [
                (exact_key(norm), sig.tobytes(), seq)
                for (seq, _), norm, sig in zip(rows, normalized, sigs, strict=True)
            ],
        )
        self._conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'scheme'", (self._config.scheme(),)
        )
        self._bump_generation()

    def _set_position(self, position: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('position', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(position),),
        )

    def _bump_generation(self) -> int:
        (value,) = self._conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            " RETURNING value"
        ).fetchone()
        return int(value)

    def _stored_generation(self) -> int:
        (value,) = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(value)

    def _sync(self) -> None:
        """Reload from the file when another instance has committed since our last look."""
        generation = self._stored_generation()
        if generation == self._generation:
            return
        self._reset_memory()
        rows = self._conn.execute(
            "SELECT record_id, language, exact_key, signature FROM records ORDER BY seq"
        ).fetchall()
        if rows:
            sigs = np.frombuffer(b"".join(row[3] for row in rows), dtype=np.uint32)
            self._remember(
                [(row[0], row[1], bytes(row[2])) for row in rows],
                sigs.reshape(len(rows), self._config.num_perm),
            )
        self._generation = generation

    def _reset_memory(self) -> None:
        self._ids: list[str] = []
        self._langs: list[str] = []
        self._exact_of: list[bytes] = []
        self._pos_of: dict[str, int] = {}
        self._exact: dict[bytes, list[int]] = {}
        self._sigs = np.zeros((0, self._config.num_perm), dtype=np.uint32)
        self._alive = np.zeros(0, dtype=bool)
        self._bands = BandIndex()

    def _remember(self, rows: Sequence[tuple[str, str, bytes]], sigs: np.ndarray) -> None:
        """Add stored records to the in-memory arrays and buckets (positions are append order)."""
        first = len(self._ids)
        count = len(rows)
        needed = first + count
        if needed > len(self._sigs):
            capacity = max(needed, 2 * len(self._sigs), 1024)
            grown = np.zeros((capacity, self._config.num_perm), dtype=np.uint32)
            grown[:first] = self._sigs[:first]
            self._sigs = grown
            alive = np.zeros(capacity, dtype=bool)
            alive[:first] = self._alive[:first]
            self._alive = alive
        self._sigs[first:needed] = sigs
        self._alive[first:needed] = True
        for offset, (record_id, language, exact) in enumerate(rows):
            pos = first + offset
            self._ids.append(record_id)
            self._langs.append(language)
            self._exact_of.append(exact)
            self._pos_of[record_id] = pos
            self._exact.setdefault(exact, []).append(pos)
        keys = self._hasher.band_keys(
            sigs, bands=self._config.lsh_bands, rows=self._config.lsh_rows
        )
        self._bands.add(keys, np.arange(first, needed, dtype=np.int64))
