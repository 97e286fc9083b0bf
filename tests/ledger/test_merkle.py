"""The OpenZeppelin-compatible StandardMerkleTree: properties, vectors, dumps, and OpenZeppelin's
own JS library as the oracle."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ledger.merkle import (
    InvalidTree,
    LeafValue,
    MerkleError,
    StandardMerkleTree,
    leaf_hash,
    node_hash,
    parse_bytes32,
    process_proof,
    to_hex,
    verify_proof,
    verify_value,
)

SIZES = [1, 2, 3, 7, 100]
REPO = Path(__file__).resolve().parents[2]
OZ_SCRIPT = Path(__file__).resolve().parent / "oz_merkle.mjs"
OZ_PACKAGE = REPO / "node_modules" / "@openzeppelin" / "merkle-tree"


def _values(n: int, seed: int = 0) -> list[LeafValue]:
    # Deterministic pseudo-random 32-byte values, so failures reproduce.
    def b32(*parts: object) -> bytes:
        return hashlib.sha256(repr((seed, *parts)).encode()).digest()

    return [(b32("record", i), b32("salt", i)) for i in range(n)]


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_every_proof_verifies(n: int) -> None:
    values = _values(n)
    tree = StandardMerkleTree.of(values)
    assert len(tree) == n
    assert len(tree.nodes) == 2 * n - 1
    for i, value in enumerate(values):
        proof = tree.proof(i)
        assert tree.at(i) == value
        assert tree.leaf(i) == leaf_hash(*value)
        assert tree.verify(i, proof)
        assert verify_proof(root=tree.root, leaf=tree.leaf(i), proof=proof)
        assert verify_value(root=tree.root, value=value, proof=proof)
        assert tree.leaf_index(value) == i
        assert tree.index_of_leaf(tree.leaf(i)) == i


@pytest.mark.parametrize("n", SIZES)
def test_changed_value_or_proof_fails(n: int) -> None:
    values = _values(n)
    tree = StandardMerkleTree.of(values)
    for i, (record_hash, salt) in enumerate(values):
        proof = tree.proof(i)
        assert not verify_value(root=tree.root, value=(_flip(record_hash), salt), proof=proof)
        assert not verify_value(root=tree.root, value=(record_hash, _flip(salt)), proof=proof)
        for k in range(len(proof)):
            bad = [*proof[:k], _flip(proof[k]), *proof[k + 1 :]]
            assert not verify_value(root=tree.root, value=(record_hash, salt), proof=bad)
        assert not verify_value(root=_flip(tree.root), value=(record_hash, salt), proof=proof)


def test_single_leaf_tree_is_its_leaf() -> None:
    [value] = _values(1)
    tree = StandardMerkleTree.of([value])
    assert tree.root == leaf_hash(*value)
    assert tree.proof(0) == []


def test_leaf_and_node_hash_definitions() -> None:
    from eth_hash.auto import keccak

    record_hash, salt = b"\x11" * 32, b"\x22" * 32
    assert leaf_hash(record_hash, salt) == keccak(keccak(record_hash + salt))
    a, b = leaf_hash(record_hash, salt), leaf_hash(salt, record_hash)
    assert node_hash(a, b) == node_hash(b, a) == keccak(min(a, b) + max(a, b))


def test_known_answer_vector_from_openzeppelin() -> None:
    # Produced by @openzeppelin/merkle-tree 1.0.8 (StandardMerkleTree.of, bytes32 x2).
    tree = StandardMerkleTree.of([(b"\x11" * 32, b"\x22" * 32), (b"\x33" * 32, b"\x44" * 32)])
    assert tree.root_hex == "0xc05f469820eb45023db3ddbe6557ebe34bf758acf38d53073624dc337ef57a2b"
    assert tree.proof_hex(0) == [
        "0x6b465f642be48c4229751db4382f05a581aa8df17bd8c661b5ffd9afb1d8e5da"
    ]
    assert [v["treeIndex"] for v in tree.dump()["values"]] == [2, 1]


def test_sorted_leaves_make_the_root_independent_of_input_order() -> None:
    values = _values(7)
    shuffled = values[:]
    random.Random(1).shuffle(shuffled)
    assert StandardMerkleTree.of(values).root == StandardMerkleTree.of(shuffled).root
    unsorted = StandardMerkleTree.of(values, sort_leaves=False)
    assert unsorted.root != StandardMerkleTree.of(shuffled, sort_leaves=False).root
    # Unsorted, the first value's leaf sits at the end of the node array.
    assert unsorted.tree_index(0) == len(unsorted.nodes) - 1


def test_sorted_layout_puts_the_smallest_leaf_last() -> None:
    tree = StandardMerkleTree.of(_values(7))
    leaves = tree.nodes[-7:]
    assert leaves == sorted(leaves, reverse=True)


def test_empty_tree_is_refused() -> None:
    with pytest.raises(MerkleError, match="zero values"):
        StandardMerkleTree.of([])


def test_malformed_values_are_named() -> None:
    with pytest.raises(MerkleError, match=r"values\[1\]\.salt must be 32 bytes, got 31"):
        StandardMerkleTree.of([(b"\x01" * 32, b"\x02" * 32), (b"\x01" * 32, b"\x02" * 31)])
    with pytest.raises(MerkleError, match=r"values\[0\] must be a pair"):
        StandardMerkleTree.of([(b"\x01" * 32,)])
    with pytest.raises(MerkleError, match="record_hash is not hex"):
        leaf_hash("0xzz", b"\x00" * 32)  # type: ignore[arg-type]


def test_hex_values_are_accepted() -> None:
    values = _values(3)
    as_hex = [(to_hex(a), to_hex(b).upper().replace("0X", "0x")) for a, b in values]
    assert StandardMerkleTree.of(as_hex).root == StandardMerkleTree.of(values).root
    assert parse_bytes32(to_hex(values[0][0])[2:]) == values[0][0]


def test_unknown_value_and_bad_index_raise() -> None:
    tree = StandardMerkleTree.of(_values(3))
    with pytest.raises(MerkleError, match="not in the tree"):
        tree.leaf_index((b"\x00" * 32, b"\x00" * 32))
    with pytest.raises(MerkleError, match="out of range"):
        tree.proof(3)


def test_process_proof_reports_bad_proof_elements() -> None:
    with pytest.raises(MerkleError, match=r"proof\[1\] must be 32 bytes"):
        process_proof(b"\x00" * 32, [b"\x01" * 32, b"\x02" * 5])


@pytest.mark.parametrize("n", SIZES)
def test_dump_load_round_trip(n: int) -> None:
    tree = StandardMerkleTree.of(_values(n))
    dumped = json.loads(json.dumps(tree.dump()))
    loaded = StandardMerkleTree.load(dumped)
    assert loaded.root == tree.root
    assert loaded.values == tree.values
    assert [loaded.proof(i) for i in range(n)] == [tree.proof(i) for i in range(n)]


def test_load_rejects_tampered_dumps() -> None:
    dump = StandardMerkleTree.of(_values(7)).dump()
    with pytest.raises(MerkleError, match="unknown tree dump format"):
        StandardMerkleTree.load({**dump, "format": "simple-v1"})
    with pytest.raises(MerkleError, match="leaf encoding"):
        StandardMerkleTree.load({**dump, "leafEncoding": ["address", "uint256"]})
    bad_node = {**dump, "tree": [*dump["tree"]]}
    bad_node["tree"][1] = to_hex(_flip(parse_bytes32(bad_node["tree"][1])))
    with pytest.raises(InvalidTree, match=r"tree\[1\] is not the hash of its children"):
        StandardMerkleTree.load(bad_node)
    bad_value = json.loads(json.dumps(dump))
    bad_value["values"][2]["value"][1] = to_hex(b"\x00" * 32)
    with pytest.raises(InvalidTree, match=r"values\[2\] does not hash to the leaf"):
        StandardMerkleTree.load(bad_value)


@pytest.mark.parametrize("n", SIZES)
def test_tree_from_leaves_equals_tree_of_values(n: int) -> None:
    values = _values(n)
    full = StandardMerkleTree.of(values)
    leaves = [leaf_hash(*v) for v in values]
    # Every other value erased: only its leaf is known.
    partial = StandardMerkleTree.from_leaves(
        leaves, values=[v if i % 2 else None for i, v in enumerate(values)]
    )
    assert partial.root == full.root
    assert partial.nodes == full.nodes
    for i in range(n):
        assert partial.proof(i) == full.proof(i)
        assert partial.has_value(i) is bool(i % 2)
    assert [i for i, _ in partial.entries()] == list(range(1, n, 2))
    assert StandardMerkleTree.from_leaves(leaves).root == full.root


def test_unknown_values_cannot_be_read_or_dumped() -> None:
    values = _values(3)
    tree = StandardMerkleTree.from_leaves(
        [leaf_hash(*v) for v in values], values=[None, *values[1:]]
    )
    with pytest.raises(MerkleError, match="value 0 is not known"):
        tree.at(0)
    with pytest.raises(MerkleError, match="value 0 is not known"):
        tree.dump()
    assert tree.leaf_index(values[0]) == 0  # found by its leaf hash
    with pytest.raises(MerkleError, match=r"values\[1\] does not hash to leaves\[1\]"):
        StandardMerkleTree.from_leaves(
            [leaf_hash(*v) for v in values], values=[None, values[2], None]
        )
    with pytest.raises(MerkleError, match="zero values"):
        StandardMerkleTree.from_leaves([])


def test_render_draws_every_node() -> None:
    tree = StandardMerkleTree.of(_values(3))
    drawing = tree.render()
    assert drawing.splitlines()[0] == f"0) {tree.root_hex}"
    assert len(drawing.splitlines()) == 5


# ---------------------------------------------------------------------------------------------
# OpenZeppelin's JS library as the oracle
# ---------------------------------------------------------------------------------------------


def _oz(payload: dict[str, Any]) -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not OZ_PACKAGE.is_dir():
        pytest.skip("node_modules/@openzeppelin/merkle-tree is missing (run `npm ci`)")
    proc = subprocess.run(
        ["node", str(OZ_SCRIPT)],
        input=json.dumps(payload).encode(),
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _hex_values(values: list[LeafValue]) -> list[list[str]]:
    return [[to_hex(a), to_hex(b)] for a, b in values]


def _proof_bytes(proof: list[str]) -> list[bytes]:
    return [parse_bytes32(p) for p in proof]


@pytest.mark.node
@pytest.mark.parametrize("sort_leaves", [True, False])
def test_same_root_proofs_and_dump_as_openzeppelin(sort_leaves: bool) -> None:
    # One node process per ordering keeps the test fast; each size is a separate tree inside it.
    for n in SIZES:
        values = _values(n, seed=n)
        ours = StandardMerkleTree.of(values, sort_leaves=sort_leaves)
        theirs = _oz({"values": _hex_values(values), "sortLeaves": sort_leaves})
        assert theirs["root"] == ours.root_hex, n
        assert theirs["proofs"] == [ours.proof_hex(i) for i in range(n)], n
        assert theirs["dump"] == ours.dump(), n


@pytest.mark.node
def test_openzeppelin_accepts_our_proofs_and_rejects_tampered_ones() -> None:
    values = _values(100, seed=7)
    tree = StandardMerkleTree.of(values)
    root = tree.root_hex
    cases: list[dict[str, Any]] = []
    expected: list[bool] = []
    for i in (0, 1, 42, 99):
        record_hash, salt = values[i]
        proof = tree.proof_hex(i)
        bad_proof = [*proof]
        bad_proof[len(proof) // 2] = to_hex(_flip(tree.proof(i)[len(proof) // 2]))
        for value, prf, ok in [
            ((record_hash, salt), proof, True),
            ((_flip(record_hash), salt), proof, False),
            ((record_hash, _flip(salt)), proof, False),
            ((record_hash, salt), bad_proof, False),
        ]:
            cases.append({"root": root, "value": _hex_values([value])[0], "proof": prf})
            expected.append(ok)
            assert verify_value(root=tree.root, value=value, proof=_proof_bytes(prf)) is ok
    assert _oz({"verify": cases})["verified"] == expected


@pytest.mark.node
def test_dumps_load_across_implementations() -> None:
    values = _values(7, seed=3)
    ours = StandardMerkleTree.of(values)
    result = _oz({"values": _hex_values(values), "load": ours.dump()})
    assert result["loaded"] == {"root": ours.root_hex, "proofs": result["proofs"]}
    reloaded = StandardMerkleTree.load(result["dump"])
    assert reloaded.root == ours.root
    assert reloaded.values == values
    tampered = json.loads(json.dumps(ours.dump()))
    tampered["tree"][0] = to_hex(b"\x00" * 32)
    assert "error" in _oz({"load": tampered})["loaded"]
