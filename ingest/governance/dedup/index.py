"""The near-duplicate index: the three stages over the records in memory, backed by an
:class:`~ingest.governance.dedup.store.IndexStore` (see the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.governance.dedup.config import (
    DedupConfig,
    DedupItem,
    DuplicateMatch,
    DuplicateMethod,
)
from ingest.governance.dedup.store import IndexStore
from ingest.governance.embeddings import Embedder, model_for_language, text_digest
from ingest.governance.minhash import (
    BandIndex,
    MinHasher,
    estimated_jaccard,
    normalize_text,
)
from ingest.governance.storage import load_cache_key


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

    ``embedder=None`` disables stage 3 (only exact and MinHash duplicates are found). ``key``
    keys the exact-duplicate hashes stored in the file and the in-memory memo (by default the
    secret of ``path``'s folder, see :mod:`ingest.governance.storage`); texts the index embeds
    are tagged with their record ids in the embedder's cache. Calls are serialized (safe to share
    between threads).
    """

    def __init__(
        self,
        path: Path,
        *,
        embedder: Embedder | None,
        config: DedupConfig | None = None,
        key: bytes | None = None,
    ) -> None:
        config = config or DedupConfig()
        self._key = load_cache_key(path.parent) if key is None else key
        self._path = path
        self._embedder = embedder
        self._config = config
        self._hasher = MinHasher(
            num_perm=config.num_perm, shingle_size=config.shingle_size, seed=config.seed
        )
        self._lock = threading.RLock()
        self._store = IndexStore(
            path, scheme=config.scheme(), signatures=self._hasher.signatures, key=self._key
        )
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
                (item.record_id, self._memo_key(item.text)): p
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
            return self._store.position()

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
                    with self._store.transaction:
                        self._store.set_position(position)
                return 0
            new_items = list(fresh.values())
            prepared = self._prepare(new_items)
            with self._store.transaction:
                if position is not None:
                    self._store.set_position(position)
                self._store.insert(
                    [
                        (item.record_id, item.language, p.exact, p.signature.tobytes(), item.text)
                        for item, p in zip(new_items, prepared, strict=True)
                    ]
                )
                generation = self._store.bump_generation()
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
        """Erase a record from the index (its text, keys and signature, zeroed on disk) and every
        embedding its texts left in the embedder's cache (:meth:`Embedder.forget_records`), even
        when the record was never stored (a rejected record was embedded too).

        Returns whether the record was stored.
        """
        with self._lock:
            self._sync()
            self._memo = {k: v for k, v in self._memo.items() if k[0] != record_id}
            if self._embedder is not None:
                self._embedder.forget_records([record_id])
            deleted = self._store.delete(record_id)
            if deleted is None:
                return False
            language, text, generation = deleted
            pos = self._pos_of.pop(record_id)
            self._alive[pos] = False
            same_text = self._exact.get(self._exact_of[pos], [])
            if pos in same_text:
                same_text.remove(pos)
            self._generation = generation
            if self._embedder is not None:
                # Its vector when it was embedded without an owner.
                self._embedder.forget([text], language=language)
            return True

    def close(self) -> None:
        with self._lock:
            self._store.close()

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
        corpus_texts = self._store.texts(corpus_ids)
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

        # One encode call per language for the whole batch; the cache makes repeats free. Each
        # text is tagged with the record it is the text of, for erasure.
        by_language: dict[str, list[tuple[str, str]]] = {}
        for i, found in pairs.items():
            owned = by_language.setdefault(items[i].language, [])
            owned.append((items[i].text, items[i].record_id))
            owned.extend((text, c.record_id) for c, text in found)
        vectors: dict[str, dict[str, np.ndarray]] = {}
        for language, owned in by_language.items():
            unique = list(dict.fromkeys(owned))
            encoded = self._embedder.encode(
                [text for text, _ in unique],
                language=language,
                owners=[owner for _, owner in unique],
            )
            vectors[language] = {
                text: vector for (text, _), vector in zip(unique, encoded, strict=True)
            }

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
            memo = self._memo.get((item.record_id, self._memo_key(item.text)))
            out.append(memo)
            if memo is None:
                todo.append(len(out) - 1)
                normalized.append(normalize_text(item.text))
        if todo:
            sigs = self._hasher.signatures(normalized)
            for k, index in enumerate(todo):
                out[index] = _Prepared(self._store.exact_key(normalized[k]), sigs[k])
        return [p for p in out if p is not None]

    def _memo_key(self, text: str) -> bytes:
        return text_digest(text, key=self._key, namespace="dedup-memo")

    # -- in-memory state ---------------------------------------------------------------

    def _sync(self) -> None:
        """Reload from the file when another instance has committed since our last look."""
        generation = self._store.generation()
        if generation == self._generation:
            return
        self._reset_memory()
        rows = self._store.rows()
        if rows:
            sigs = np.frombuffer(b"".join(row[3] for row in rows), dtype=np.uint32)
            self._remember(
                [(row[0], row[1], row[2]) for row in rows],
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
