"""Text normalization, MinHash signatures and an LSH band index, vectorized with numpy.

Pure computation, no I/O: :mod:`ingest.governance.dedup` stores what this module computes.

Shingles are n-grams of *tokens*, where a token is one CJK character or one run of other word
characters (letters, digits, underscore). The same rule serves Chinese, English and mixed text, so
records of every language share one index and a record's language label does not change its
signature. Every hash is stable across processes and machines (a polynomial hash of code points,
fixed-seed permutations): signatures are persisted.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

SCHEME_VERSION = 1
"""Bumped whenever normalization, tokenization or hashing changes: stored signatures go stale."""

# Kana, CJK Extension A, CJK Unified Ideographs, compatibility ideographs, Hangul syllables, and
# the ideographs of planes 2 and 3.
_CJK_RANGES = (
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xAC00, 0xD7AF),
    (0x20000, 0x323AF),
)
_CJK = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES)
# Spaces next to a CJK character carry no meaning (Chinese is written without them).
_CJK_SPACE_RE = re.compile(f"(?<=[{_CJK}]) | (?=[{_CJK}])")
# No code point at or above this one is punctuation or a non-CJK word character.
_CLASSIFIED_BELOW = 0x20000

_U64 = np.uint64
# Odd 64-bit constants (golden ratio, murmur3 finalizer) that mix token hashes into shingles.
_MIX_A = _U64(0x9E3779B97F4A7C15)
_MIX_B = _U64(0xC2B2AE3D27D4EB4F)
_MIX_C = _U64(0xFF51AFD7ED558CCD)
# Base of the polynomial token hash, and its inverse modulo 2**64 (the base is odd).
_BASE = 0x100000001B3
_BASE_INVERSE = pow(_BASE, -1, 2**64)

# Rows of the (num_perm x shingles) hash matrix stay in cache when a chunk holds about this many
# shingles; bigger chunks measured 3-4x slower.
_SHINGLES_PER_CHUNK = 4096

_OTHER, _WORD, _CJK_CHAR = 0, 1, 2


@functools.cache
def _punctuation_table() -> dict[int, str]:
    """Every Unicode punctuation code point (categories P*) mapped to a space."""
    return {
        cp: " " for cp in range(_CLASSIFIED_BELOW) if unicodedata.category(chr(cp)).startswith("P")
    }


@functools.cache
def _char_classes() -> np.ndarray:
    """The token class of every code point: other (separator), word character, or CJK."""
    classes = np.zeros(0x110000, dtype=np.uint8)
    classes[:_CLASSIFIED_BELOW] = np.frombuffer(
        bytes(
            _WORD if chr(cp).isalnum() or cp == 0x5F else _OTHER for cp in range(_CLASSIFIED_BELOW)
        ),
        dtype=np.uint8,
    )
    for lo, hi in _CJK_RANGES:
        classes[lo : hi + 1] = _CJK_CHAR
    return classes


def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``BASE**k`` and ``BASE**-k`` modulo 2**64 for at least ``k < length``."""
    # Whole powers of two only, so that a few tables serve every batch.
    return _power_tables(max(1 << 16, 1 << (length - 1).bit_length()))


@functools.cache
def _power_tables(length: int) -> tuple[np.ndarray, np.ndarray]:
    # uint64 products wrap around, which is exactly arithmetic modulo 2**64.
    up = np.full(length, _BASE, dtype=np.uint64)
    up[0] = 1
    down = np.full(length, _BASE_INVERSE, dtype=np.uint64)
    down[0] = 1
    return np.cumprod(up, dtype=np.uint64), np.cumprod(down, dtype=np.uint64)


def normalize_text(text: str) -> str:
    """NFKC, lowercase, punctuation turned into spaces, whitespace runs collapsed to one space,
    and spaces next to CJK characters dropped.

    Symbols (``+ = < >``, currency, math) are kept: ``a+b`` and ``a-b`` must stay different.
    """
    folded = unicodedata.normalize("NFKC", text).lower().translate(_punctuation_table())
    return _CJK_SPACE_RE.sub("", " ".join(folded.split()))


def exact_key(normalized: str, *, key: bytes) -> bytes:
    """The exact-duplicate key of a normalized text: HMAC-SHA256(``key``, ``b"exact\\x00"`` +
    its UTF-8 bytes).

    Keyed (by the governance folder's secret, see :mod:`ingest.governance.storage`) so that a
    stored key does not let anyone confirm a guessed text; the prefix keeps these hashes apart
    from the other keyed hashes made with the same secret.
    """
    message = b"exact\x00" + normalized.encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).digest()


def _mix(values: np.ndarray) -> np.ndarray:
    """Murmur3's 64-bit finalizer, in place: spreads nearby inputs over the whole range."""
    values ^= values >> _U64(33)
    values *= _MIX_C
    values ^= values >> _U64(33)
    values *= _MIX_B
    values ^= values >> _U64(33)
    return values


class MinHasher:
    """MinHash signatures over token n-gram shingles, and LSH band keys.

    Permutation ``k`` maps a 64-bit shingle hash ``x`` to the top 32 bits of ``a_k * x + b_k``
    (mod 2**64, multiply-shift hashing); a signature is the per-permutation minimum over a text's
    shingles. The fraction of equal positions in two signatures estimates the Jaccard similarity
    of the two shingle sets.
    """

    def __init__(self, *, num_perm: int, shingle_size: int, seed: int) -> None:
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * _U64(2) + _U64(1)
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self._band_mult = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * _U64(2) + _U64(1)

    def shingles(self, normalized_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The distinct shingle hashes of every text, all texts at once.

        Returns ``(hashes, offsets)``: text ``i`` owns ``hashes[offsets[i]:offsets[i + 1]]``
        (the last one runs to the end). Every text has at least one shingle: a text with fewer
        tokens than ``shingle_size`` (even none) has its whole token sequence as one shingle.
        """
        count = len(normalized_texts)
        # "\n" is a separator (normalized texts hold none), so no token spans two texts.
        joined = "\n".join(normalized_texts)
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        classes = _char_classes()[points]
        word = classes == _WORD
        cjk = classes == _CJK_CHAR
        token = word | cjk
        after_word = np.concatenate(([False], word[:-1]))
        before_word = np.concatenate((word[1:], [False]))
        starts = np.flatnonzero(token & (cjk | ~after_word))
        ends = np.flatnonzero(token & (cjk | ~before_word)) + 1

        # Polynomial hash of each token's code points from prefix sums: sum(cp[j] * B**(j-start)).
        up, down = _powers(len(points) + 1)
        prefix = np.zeros(len(points) + 1, dtype=np.uint64)
        np.cumsum(points.astype(np.uint64) * up[: len(points)], out=prefix[1:])
        tokens = (prefix[ends] - prefix[starts]) * down[starts]
        tokens += (ends - starts).astype(np.uint64)

        text_starts = np.zeros(count, dtype=np.int64)
        lengths = np.fromiter((len(t) + 1 for t in normalized_texts), dtype=np.int64, count=count)
        np.cumsum(lengths[:-1], out=text_starts[1:])
        token_text = np.searchsorted(text_starts, starts, side="right") - 1

        n = self.shingle_size
        per_text = np.bincount(token_text, minlength=count)
        if len(tokens) >= n:
            width = len(tokens) - n + 1
            grams = tokens[:width].copy()
            for offset in range(1, n):
                grams *= _MIX_A
                grams += tokens[offset : offset + width]
            gram_text = token_text[:width]
            inside = token_text[n - 1 :] == gram_text
            grams, gram_text = grams[inside], gram_text[inside]
        else:
            grams = np.zeros(0, dtype=np.uint64)
            gram_text = np.zeros(0, dtype=np.int64)
        short = np.flatnonzero(per_text < n)
        if len(short):
            token_offsets = np.concatenate(([0], np.cumsum(per_text)))
            whole = np.array(
                [
                    int(tokens[token_offsets[i] : token_offsets[i + 1]].sum(dtype=np.uint64))
                    + int(per_text[i])
                    for i in short
                ],
                dtype=np.uint64,
            )
            grams = np.concatenate((grams, whole))
            gram_text = np.concatenate((gram_text, short))
        grams = _mix(grams)

        order = np.lexsort((grams, gram_text))
        grams, gram_text = grams[order], gram_text[order]
        keep = np.ones(len(grams), dtype=bool)
        keep[1:] = (grams[1:] != grams[:-1]) | (gram_text[1:] != gram_text[:-1])
        grams, gram_text = grams[keep], gram_text[keep]
        return grams, np.searchsorted(gram_text, np.arange(count))

    def signatures(self, normalized_texts: Sequence[str]) -> np.ndarray:
        """MinHash signatures, shape ``(len(normalized_texts), num_perm)``, dtype uint32."""
        count = len(normalized_texts)
        out = np.empty((count, self.num_perm), dtype=np.uint32)
        if count == 0:
            return out
        hashes, offsets = self.shingles(normalized_texts)
        bounds = np.append(offsets, len(hashes))
        start = 0
        while start < count:
            # As many whole texts as fit in one chunk (at least one).
            limit = bounds[start] + _SHINGLES_PER_CHUNK
            stop = max(start + 1, int(np.searchsorted(bounds, limit, side="right")) - 1)
            stop = min(stop, count)
            flat = hashes[bounds[start] : bounds[stop]]
            local = offsets[start:stop] - bounds[start]
            out[start:stop] = self._min_hashes(flat, local)
            start = stop
        return out

    def _min_hashes(self, flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        permuted = np.empty((self.num_perm, len(flat)), dtype=np.uint64)
        np.multiply(self._a[:, None], flat[None, :], out=permuted)
        permuted += self._b[:, None]
        permuted >>= _U64(32)
        return np.minimum.reduceat(permuted, offsets, axis=1).T.astype(np.uint32)

    def band_keys(self, signatures: np.ndarray, *, bands: int, rows: int) -> np.ndarray:
        """One 64-bit key per (text, band), shape ``(n, bands)``.

        Two texts share a key in band ``i`` when their signatures agree on all ``rows`` positions
        of that band (up to 64-bit collisions, which verification by signature removes). The band
        number is mixed into the key so that all bands can live in one sorted array.
        """
        used = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
        mult = self._band_mult[: bands * rows].reshape(bands, rows)
        keys = (used * mult[None, :, :]).sum(axis=2, dtype=np.uint64)
        keys += np.arange(bands, dtype=np.uint64)[None, :] * _MIX_A
        return _mix(keys)


def estimated_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise fraction of equal signature positions (the MinHash Jaccard estimate)."""
    return np.asarray((left == right).mean(axis=1), dtype=np.float64)


class BandIndex:
    """LSH buckets: band keys of stored texts, searchable for a batch of query keys at once.

    Keys live in a large sorted array plus a small sorted delta that receives additions; the
    delta is merged into the main array when it grows past an eighth of it, so adding keys in
    batches stays cheap and a lookup is two binary searches per key.
    """

    _MIN_DELTA = 1 << 16

    def __init__(self) -> None:
        self._keys = np.zeros(0, dtype=np.uint64)
        self._owners = np.zeros(0, dtype=np.int64)
        self._delta_keys = np.zeros(0, dtype=np.uint64)
        self._delta_owners = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._keys) + len(self._delta_keys)

    def add(self, keys: np.ndarray, owners: np.ndarray) -> None:
        """Store ``keys`` (shape ``(n, bands)``) for ``owners`` (shape ``(n,)``, any int ids)."""
        flat = keys.ravel()
        flat_owners = np.repeat(owners.astype(np.int64), keys.shape[1])
        order = np.argsort(flat, kind="stable")
        self._delta_keys, self._delta_owners = _merge_sorted(
            self._delta_keys, self._delta_owners, flat[order], flat_owners[order]
        )
        if len(self._delta_keys) > max(self._MIN_DELTA, len(self._keys) // 8):
            self._keys, self._owners = _merge_sorted(
                self._keys, self._owners, self._delta_keys, self._delta_owners
            )
            self._delta_keys = np.zeros(0, dtype=np.uint64)
            self._delta_owners = np.zeros(0, dtype=np.int64)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct ``(query row, owner)`` pairs that share at least one band key.

        ``keys`` has shape ``(m, bands)``; rows are numbered 0..m-1.
        """
        flat = keys.ravel()
        # Sorted queries make the binary searches walk the stored keys in order (numpy narrows
        # each search with the previous result): about 4x faster on large indexes.
        order = np.argsort(flat)
        queries = flat[order]
        query_rows = order // keys.shape[1]
        found_rows: list[np.ndarray] = []
        found_owners: list[np.ndarray] = []
        for stored, owners in ((self._keys, self._owners), (self._delta_keys, self._delta_owners)):
            if len(stored) == 0:
                continue
            low = np.searchsorted(stored, queries, side="left")
            hit = low < len(stored)
            hit[hit] = stored[low[hit]] == queries[hit]
            if not hit.any():
                continue
            # Most queries match nothing: only the hits need the end of their run.
            low = low[hit]
            counts = np.searchsorted(stored, queries[hit], side="right") - low
            total = int(counts.sum())
            # Expand each [low, low + count) range into its positions without a Python loop.
            ends = np.cumsum(counts)
            positions = np.arange(total, dtype=np.int64) - np.repeat(ends - counts - low, counts)
            found_rows.append(np.repeat(query_rows[hit], counts))
            found_owners.append(owners[positions])
        if not found_rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        rows = np.concatenate(found_rows)
        owners_found = np.concatenate(found_owners)
        # One int64 per pair: de-duplication is a plain sort (``np.unique(axis=1)`` is far slower).
        stride = int(owners_found.max()) + 1
        combined = np.unique(rows * stride + owners_found)
        return combined // stride, combined % stride


def _merge_sorted(
    keys: np.ndarray, owners: np.ndarray, new_keys: np.ndarray, new_owners: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge a sorted ``new_keys`` run into sorted ``keys`` (owners follow their keys)."""
    if len(keys) == 0:
        return new_keys, new_owners
    at = np.searchsorted(keys, new_keys, side="right")
    return np.insert(keys, at, new_keys), np.insert(owners, at, new_owners)
