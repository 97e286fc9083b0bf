"""OpenZeppelin-compatible Merkle trees of ``[record_hash, salt]`` leaves.

A port of ``StandardMerkleTree`` from ``@openzeppelin/merkle-tree`` (v1.0.x) for the leaf
encoding ``["bytes32", "bytes32"]``: same leaf hash, same sorted-pair node hash, same array layout
and leaf order, same ``standard-v1`` JSON dump. Roots, proofs and dumps are interchangeable with the
JS library, and proofs verify with ``MerkleProof.sol`` (see docs/PROVENANCE.md).

Layout (as OpenZeppelin): the tree is an array of ``2n - 1`` nodes, the root at index 0, the
children of node ``i`` at ``2i + 1`` and ``2i + 2``; the ``n`` leaves fill the end of the array in
reverse, the first (smallest, when sorted) leaf at the last index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from eth_hash.auto import keccak

from ledger.errors import LedgerError

LEAF_ENCODING: Final[tuple[str, str]] = ("bytes32", "bytes32")
"""The Solidity ABI types of a leaf value: ``(record_hash, salt)``."""

DUMP_FORMAT: Final = "standard-v1"

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")

LeafValue = tuple[bytes, bytes]
"""``(record_hash, salt)``, 32 bytes each."""


class MerkleError(LedgerError):
    """A tree cannot be built, loaded or queried as asked (empty input, bad value, unknown leaf)."""


class InvalidTree(MerkleError):
    """A loaded tree dump is inconsistent: a node or leaf does not match its children or value."""


# ---------------------------------------------------------------------------------------------
# Hex helpers: bytes32 values travel as 0x-prefixed lowercase hex in JSON (as OpenZeppelin's dump).
# ---------------------------------------------------------------------------------------------


def to_hex(value: bytes) -> str:
    """``0x`` + lowercase hex of ``value``."""
    return "0x" + value.hex()


def parse_bytes32(value: str | bytes, *, what: str = "value") -> bytes:
    """32 bytes from raw bytes or a hex string (``0x`` prefix optional, any case).

    Raises :class:`MerkleError` naming ``what`` when ``value`` is not exactly 32 bytes of hex.
    """
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        if _HEX.fullmatch(text) is None:
            raise MerkleError(f"{what} is not hex: {value!r}")
        raw = bytes.fromhex(text)
    else:
        raise MerkleError(f"{what} must be bytes or a hex string, got {type(value).__name__}")
    if len(raw) != 32:
        raise MerkleError(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


# ---------------------------------------------------------------------------------------------
# Hashes
# ---------------------------------------------------------------------------------------------


def leaf_hash(record_hash: bytes, salt: bytes) -> bytes:
    """``keccak256(keccak256(abi.encode(bytes32 record_hash, bytes32 salt)))``.

    ``abi.encode`` of two ``bytes32`` is their 64-byte concatenation. Hashing twice (OpenZeppelin's
    standard leaf) keeps a leaf from ever being mistaken for a 64-byte internal node preimage.
    """
    record_hash = parse_bytes32(record_hash, what="record_hash")
    salt = parse_bytes32(salt, what="salt")
    return keccak(keccak(record_hash + salt))


def node_hash(a: bytes, b: bytes) -> bytes:
    """``keccak256`` of the two children in ascending byte order (as ``MerkleProof.sol``)."""
    return keccak(a + b) if a <= b else keccak(b + a)


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root reached from ``leaf`` by hashing in each proof element in turn."""
    node = parse_bytes32(leaf, what="leaf")
    for position, sibling in enumerate(proof):
        node = node_hash(node, parse_bytes32(sibling, what=f"proof[{position}]"))
    return node


def verify_proof(*, root: bytes, leaf: bytes, proof: Iterable[bytes]) -> bool:
    """Whether ``proof`` leads from ``leaf`` to ``root`` (what ``MerkleProof.verify`` answers)."""
    return process_proof(leaf, proof) == parse_bytes32(root, what="root")


def verify_value(*, root: bytes, value: LeafValue, proof: Iterable[bytes]) -> bool:
    """Whether ``value = (record_hash, salt)`` is proven under ``root``
    (OpenZeppelin's static ``StandardMerkleTree.verify``)."""
    return verify_proof(root=root, leaf=leaf_hash(*value), proof=proof)


# ---------------------------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------------------------


def _left(i: int) -> int:
    return 2 * i + 1


def _sibling(i: int) -> int:
    # Odd indices are left children, their sibling is to the right.
    return i + 1 if i % 2 == 1 else i - 1


def _parent(i: int) -> int:
    return (i - 1) // 2


def _make_tree(leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    tree: list[bytes] = [b""] * (2 * n - 1)
    last = len(tree) - 1
    for i, leaf in enumerate(leaves):
        tree[last - i] = leaf
    for i in range(len(tree) - 1 - n, -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak(a + b) if a <= b else keccak(b + a)
    return tree


def _normalize_value(value: Sequence[bytes | str], index: int) -> LeafValue:
    if isinstance(value, str | bytes) or len(value) != 2:
        raise MerkleError(f"values[{index}] must be a pair (record_hash, salt)")
    return (
        parse_bytes32(value[0], what=f"values[{index}].record_hash"),
        parse_bytes32(value[1], what=f"values[{index}].salt"),
    )


class StandardMerkleTree:
    """An OpenZeppelin ``StandardMerkleTree`` over ``(record_hash, salt)`` values.

    Values keep their input order (``value index``); ``tree_index`` says where each value's leaf
    sits in the node array. Build with :meth:`of`, restore with :meth:`load`, or rebuild from leaf
    hashes with :meth:`from_leaves` when some values are no longer known (erased records).
    """

    __slots__ = ("_hash_lookup", "_tree", "_tree_indices", "_values")

    def __init__(
        self, *, tree: list[bytes], values: Sequence[LeafValue | None], tree_indices: list[int]
    ) -> None:
        """Low-level constructor; use :meth:`of`, :meth:`from_leaves` or :meth:`load`."""
        self._tree = tree
        self._values = list(values)
        self._tree_indices = tree_indices
        # The last value wins for duplicate leaves, as in OpenZeppelin's hashLookup.
        self._hash_lookup: dict[bytes, int] = {
            tree[t]: value_index for value_index, t in enumerate(tree_indices)
        }

    @classmethod
    def of(
        cls, values: Sequence[Sequence[bytes | str]], *, sort_leaves: bool = True
    ) -> StandardMerkleTree:
        """Build the tree of ``values`` (pairs of 32-byte record hash and salt, bytes or hex).

        ``sort_leaves`` (OpenZeppelin's ``sortLeaves``, default true) orders leaves by hash before
        building, which makes the root independent of the input order. Raises :class:`MerkleError`
        for an empty sequence or a malformed value.
        """
        if len(values) == 0:
            raise MerkleError("cannot build a Merkle tree of zero values")
        normalized = [_normalize_value(v, i) for i, v in enumerate(values)]
        hashed = [keccak(keccak(rh + salt)) for rh, salt in normalized]
        return cls._build(hashed, normalized, sort_leaves=sort_leaves)

    @classmethod
    def from_leaves(
        cls,
        leaves: Sequence[bytes | str],
        *,
        values: Sequence[Sequence[bytes | str] | None] | None = None,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """The tree over precomputed leaf hashes: same root, layout and proofs as :meth:`of` over
        the values behind them.

        For batches whose erased records are known only by their leaves. ``values[i]``, when given
        and not ``None``, must hash to ``leaves[i]``; a ``None`` value (or no ``values`` at all)
        marks a value that is not known. Raises :class:`MerkleError` for zero leaves, a malformed
        leaf, or a value that does not hash to its leaf.
        """
        if len(leaves) == 0:
            raise MerkleError("cannot build a Merkle tree of zero values")
        hashed = [parse_bytes32(leaf, what=f"leaves[{i}]") for i, leaf in enumerate(leaves)]
        known: list[LeafValue | None] = [None] * len(hashed)
        if values is not None:
            if len(values) != len(hashed):
                raise MerkleError(f"{len(values)} values for {len(hashed)} leaves")
            for i, value in enumerate(values):
                if value is None:
                    continue
                pair = _normalize_value(value, i)
                if leaf_hash(*pair) != hashed[i]:
                    raise MerkleError(f"values[{i}] does not hash to leaves[{i}]")
                known[i] = pair
        return cls._build(hashed, known, sort_leaves=sort_leaves)

    @classmethod
    def _build(
        cls,
        hashed: list[bytes],
        values: list[LeafValue] | list[LeafValue | None],
        *,
        sort_leaves: bool,
    ) -> StandardMerkleTree:
        order = list(range(len(hashed)))
        if sort_leaves:
            # Stable, as JavaScript's Array.prototype.sort: equal leaves keep their input order.
            order.sort(key=hashed.__getitem__)
        tree = _make_tree([hashed[i] for i in order])
        tree_indices = [0] * len(hashed)
        last = len(tree) - 1
        for leaf_position, value_index in enumerate(order):
            tree_indices[value_index] = last - leaf_position
        return cls(tree=tree, values=values, tree_indices=tree_indices)

    # ------------------------------------------------------------------ queries

    @property
    def root(self) -> bytes:
        return self._tree[0]

    @property
    def root_hex(self) -> str:
        return to_hex(self._tree[0])

    def __len__(self) -> int:
        return len(self._values)

    @property
    def values(self) -> list[LeafValue]:
        """The values in input order (a copy); raises :class:`MerkleError` when one is unknown."""
        return [self.at(i) for i in range(len(self._values))]

    def has_value(self, index: int) -> bool:
        """Whether the value at ``index`` is known (false for leaves given without their value)."""
        self._check_index(index)
        return self._values[index] is not None

    @property
    def nodes(self) -> list[bytes]:
        """The node array in OpenZeppelin's layout (a copy)."""
        return list(self._tree)

    def at(self, index: int) -> LeafValue:
        """The value at ``index`` (input order); raises :class:`MerkleError` when it is unknown."""
        self._check_index(index)
        value = self._values[index]
        if value is None:
            raise MerkleError(f"value {index} is not known (the tree was built from its leaf)")
        return value

    def tree_index(self, index: int) -> int:
        """Where the leaf of value ``index`` sits in :attr:`nodes`."""
        self._check_index(index)
        return self._tree_indices[index]

    def leaf(self, index: int) -> bytes:
        """The leaf hash of value ``index``."""
        return self._tree[self.tree_index(index)]

    def leaf_index(self, value: Sequence[bytes | str]) -> int:
        """The value index of ``value``; raises :class:`MerkleError` when it is not in the tree."""
        return self.index_of_leaf(leaf_hash(*_normalize_value(value, 0)))

    def index_of_leaf(self, leaf: bytes) -> int:
        """The value index whose leaf hash is ``leaf``; raises :class:`MerkleError` when absent."""
        try:
            return self._hash_lookup[parse_bytes32(leaf, what="leaf")]
        except KeyError:
            raise MerkleError(f"leaf {to_hex(bytes(leaf))} is not in the tree") from None

    def proof(self, index: int) -> list[bytes]:
        """The proof of value ``index``: sibling hashes from the leaf up to (excluding) the root."""
        position = self.tree_index(index)
        proof: list[bytes] = []
        while position > 0:
            proof.append(self._tree[_sibling(position)])
            position = _parent(position)
        return proof

    def proof_hex(self, index: int) -> list[str]:
        """:meth:`proof` as 0x-hex strings, as OpenZeppelin's ``getProof`` returns it."""
        return [to_hex(node) for node in self.proof(index)]

    def verify(self, index: int, proof: Iterable[bytes]) -> bool:
        """Whether ``proof`` proves value ``index`` under this tree's root."""
        return verify_proof(root=self.root, leaf=self.leaf(index), proof=proof)

    def entries(self) -> Iterable[tuple[int, LeafValue]]:
        """``(value index, value)`` in input order, for the values that are known."""
        return [(i, v) for i, v in enumerate(self._values) if v is not None]

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self._values):
            raise MerkleError(f"value index {index} out of range (tree has {len(self)} values)")

    # ------------------------------------------------------------------ dump / load

    def dump(self) -> dict[str, Any]:
        """OpenZeppelin's ``standard-v1`` dump: JSON-ready, loadable by ``StandardMerkleTree.load``
        in JavaScript and by :meth:`load` here. The format needs every value: raises
        :class:`MerkleError` when one is unknown."""
        values = self.values
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": [to_hex(node) for node in self._tree],
            "values": [
                {"value": [to_hex(rh), to_hex(salt)], "treeIndex": t}
                for (rh, salt), t in zip(values, self._tree_indices, strict=True)
            ],
        }

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> StandardMerkleTree:
        """Restore a tree from a ``standard-v1`` dump and validate it completely.

        Raises :class:`MerkleError` for another format or leaf encoding, :class:`InvalidTree` when a
        node does not hash from its children or a leaf does not hash from its value.
        """
        if data.get("format") != DUMP_FORMAT:
            raise MerkleError(f"unknown tree dump format {data.get('format')!r}")
        if tuple(data.get("leafEncoding") or ()) != LEAF_ENCODING:
            raise MerkleError(
                f"leaf encoding {data.get('leafEncoding')!r} is not supported; "
                f"expected {list(LEAF_ENCODING)}"
            )
        raw_tree = data.get("tree")
        raw_values = data.get("values")
        if not isinstance(raw_tree, list) or not isinstance(raw_values, list) or not raw_values:
            raise MerkleError("tree dump needs a non-empty 'tree' list and 'values' list")
        tree = [parse_bytes32(node, what=f"tree[{i}]") for i, node in enumerate(raw_tree)]
        if len(tree) != 2 * len(raw_values) - 1:
            raise InvalidTree(f"{len(raw_values)} values need {2 * len(raw_values) - 1} nodes")
        values: list[LeafValue] = []
        tree_indices: list[int] = []
        first_leaf = len(tree) - len(raw_values)
        for i, entry in enumerate(raw_values):
            value = _normalize_value(entry.get("value") or (), i)
            t = entry.get("treeIndex")
            if not isinstance(t, int) or not first_leaf <= t < len(tree):
                raise InvalidTree(f"values[{i}].treeIndex {t!r} is not a leaf position")
            if tree[t] != leaf_hash(*value):
                raise InvalidTree(f"values[{i}] does not hash to the leaf at tree[{t}]")
            values.append(value)
            tree_indices.append(t)
        # Bottom-up, so the message names the lowest inconsistent node (the one that was altered).
        for i in range(first_leaf - 1, -1, -1):
            left = _left(i)
            if tree[i] != node_hash(tree[left], tree[left + 1]):
                raise InvalidTree(f"tree[{i}] is not the hash of its children")
        return cls(tree=tree, values=values, tree_indices=tree_indices)

    def render(self) -> str:
        """A text drawing of the tree (as OpenZeppelin's ``render``), for debugging small trees."""
        lines: list[str] = []
        stack: list[tuple[int, list[int]]] = [(0, [])]
        while stack:
            i, path = stack.pop()
            prefix = "".join(("   ", "│  ")[p] for p in path[:-1])
            prefix += "".join(("└─ ", "├─ ")[p] for p in path[-1:])
            lines.append(f"{prefix}{i}) {to_hex(self._tree[i])}")
            if _left(i) + 1 < len(self._tree):
                stack.append((_left(i) + 1, [*path, 0]))
                stack.append((_left(i), [*path, 1]))
        return "\n".join(lines)
