"""Proof bundles: JSON round trip, offline verification with precise reasons for each tampering, and
online verification against a real AcademicLedger (eth-tester, and anvil when installed)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ledger.audit import (
    AuditError,
    BundleFormatError,
    ProofBundle,
    VerificationReport,
    load_bundle,
    verify_offline,
    verify_online,
)
from ledger.canonical import batch_manifest, metadata_hash, new_salt, record_hash
from ledger.ids import new_batch_id
from ledger.merkle import StandardMerkleTree, parse_bytes32, to_hex

if TYPE_CHECKING:
    from ledger.chain.clients import AcademicLedgerClient

OFFLINE_CHECKS = ["record_fields", "record_hash", "leaf", "record_id", "merkle_proof"]
ONLINE_CHECKS = [
    "chain_id",
    "contract_address",
    "contract_code",
    "anchor_tx",
    "metadata_hash",
    "anchored_root",
    "verify_record",
]


def make_records(n: int, *, tag: str = "") -> list[dict[str, str]]:
    return [
        {
            "instruction": f"什么是信道容量？{tag}（第 {i} 题）",
            "input": "" if i % 2 else "考虑加性高斯白噪声信道。",
            "output": f"信道容量是可靠传输的最大速率：C = B·log₂(1 + S/N)。\n例 {i}。",
            "discipline": "information_theory",
            "task_type": "concept_explanation",
            "language": "zh",
            "license": "CC-BY-4.0",
            "institution_id": "bupt",
        }
        for i in range(n)
    ]


@dataclass(frozen=True)
class Batch:
    batch_id: str
    records: list[dict[str, Any]]
    salts: list[bytes]
    tree: StandardMerkleTree
    metadata_hash: bytes

    def bundle(self, index: int, **anchor: Any) -> ProofBundle:
        return ProofBundle.for_record(
            tree=self.tree,
            index=index,
            record=self.records[index],
            salt=self.salts[index],
            batch_id=self.batch_id,
            metadata_hash=self.metadata_hash,
            **anchor,
        )


def with_turns(record: dict[str, Any], i: int) -> dict[str, Any]:
    """``record`` as the last exchange of a dialogue: a system prompt and two earlier turns."""
    return {
        **record,
        "system": "你是信息论课程的助教。",
        "history": [
            ["什么是信息熵？", f"信息熵是信源的平均不确定性。\n例 {i}。"],
            ["熵的单位是什么？", "以 2 为底取对数时单位是比特。"],
        ],
    }


def make_batch(n: int, *, tag: str = "", turns: bool = False) -> Batch:
    records: list[dict[str, Any]] = make_records(n, tag=tag)
    if turns:
        records = [with_turns(r, i) for i, r in enumerate(records)]
    salts = [new_salt() for _ in records]
    tree = StandardMerkleTree.of([(record_hash(r), s) for r, s in zip(records, salts, strict=True)])
    manifest = batch_manifest(
        institution_id="bupt",
        discipline_counts={"information_theory": n},
        record_count=n,
        rejected_count=0,
        submitted_at="2026-03-01T00:00:00+00:00",
        policy_version="test",
        source_name=f"batch{tag}.jsonl",
    )
    return Batch(new_batch_id(), records, salts, tree, metadata_hash(manifest))


def tampered(bundle: ProofBundle, **changes: Any) -> ProofBundle:
    """The bundle with ``changes`` applied through its JSON form, as an edited file would be."""
    data = json.loads(bundle.to_json())
    data.update(changes)
    return ProofBundle.from_json(json.dumps(data))


def flip(hex32: str) -> str:
    raw = parse_bytes32(hex32)
    return to_hex(bytes([raw[0] ^ 0x80]) + raw[1:])


def failed_names(report: VerificationReport) -> list[str]:
    return [c.name for c in report.failed]


@pytest.fixture(scope="module")
def batch() -> Batch:
    return make_batch(5)


# ---------------------------------------------------------------------------------------------
# Bundle format
# ---------------------------------------------------------------------------------------------


def test_bundle_json_round_trip(batch: Batch, tmp_path: Path) -> None:
    bundle = batch.bundle(2, chain_id=31337001, tx_hash="0x" + "ab" * 32, block_number=7)
    text = bundle.to_json()
    assert "信道容量" in text  # readable UTF-8, not \u escapes
    assert ProofBundle.from_json(text) == bundle
    path = tmp_path / "bundle.json"
    path.write_text(text, encoding="utf-8")
    assert load_bundle(path) == bundle
    data = json.loads(text)
    assert data["bundle_version"] == 1
    assert data["root"] == batch.tree.root_hex
    assert data["proof"] == batch.tree.proof_hex(2)
    assert data["record_id"] == "rec_" + data["leaf"][2:22]


def test_bundle_from_a_tree_with_erased_records_still_verifies(batch: Batch) -> None:
    # After record 0 is erased only its leaf remains; the others' bundles are unchanged.
    leaves = [batch.tree.leaf(i) for i in range(len(batch.records))]
    tree = StandardMerkleTree.from_leaves(leaves)
    for i in range(1, len(batch.records)):
        bundle = ProofBundle.for_record(
            tree=tree,
            index=i,
            record=batch.records[i],
            salt=batch.salts[i],
            batch_id=batch.batch_id,
            metadata_hash=batch.metadata_hash,
        )
        assert bundle == batch.bundle(i)
        assert verify_offline(bundle).ok


def test_for_record_refuses_a_record_the_tree_does_not_hold(batch: Batch) -> None:
    with pytest.raises(AuditError, match="not this record and salt"):
        ProofBundle.for_record(
            tree=batch.tree,
            index=0,
            record=batch.records[0],
            salt=batch.salts[1],
            batch_id=batch.batch_id,
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "a proof bundle is a JSON object"),
        ('{"bundle_version": 2}', "unsupported bundle_version 2"),
    ],
)
def test_unreadable_bundles_say_why(text: str, message: str) -> None:
    with pytest.raises(BundleFormatError, match=message):
        ProofBundle.from_json(text)


def test_malformed_fields_are_named(batch: Batch) -> None:
    data = json.loads(batch.bundle(0).to_json())
    with pytest.raises(BundleFormatError, match=r"salt: .*32 bytes"):
        ProofBundle.from_json(json.dumps({**data, "salt": "0x1234"}))
    with pytest.raises(BundleFormatError, match=r"proof\.0: .*not hex"):
        ProofBundle.from_json(json.dumps({**data, "proof": ["0xnothex"]}))
    with pytest.raises(BundleFormatError, match=r"record\.output: .*string"):
        ProofBundle.from_json(json.dumps({**data, "record": {**data["record"], "output": 3}}))
    with pytest.raises(BundleFormatError, match="surprise: Extra inputs"):
        ProofBundle.from_json(json.dumps({**data, "surprise": 1}))
    with pytest.raises(BundleFormatError, match="cannot read"):
        load_bundle(Path("/nonexistent/bundle.json"))


# ---------------------------------------------------------------------------------------------
# Offline verification
# ---------------------------------------------------------------------------------------------


def test_every_bundle_of_a_batch_verifies_offline(batch: Batch) -> None:
    for i in range(len(batch.records)):
        report = verify_offline(batch.bundle(i))
        assert report.ok, report.render()
        assert [c.name for c in report.checks] == OFFLINE_CHECKS
        assert report.exit_code == 0


def test_single_record_batch_verifies_with_an_empty_proof() -> None:
    single = make_batch(1, tag="single")
    bundle = single.bundle(0)
    assert bundle.proof == ()
    assert bundle.root == bundle.leaf
    assert verify_offline(bundle).ok


def test_changed_record_field_is_reported_as_a_changed_record(batch: Batch) -> None:
    bundle = batch.bundle(1)
    forged = tampered(bundle, record={**bundle.record, "output": "完全不同的答案。"})
    report = verify_offline(forged)
    assert not report.ok
    assert report.exit_code == 1
    assert failed_names(report) == ["record_hash"]
    reason = report.check("record_hash").reason
    assert reason.startswith("record_hash does not match the record")
    assert "record's text was changed after export" in reason
    assert "the bundle says " + bundle.record_hash[:10] in reason


def test_accidental_line_ending_change_names_the_field(batch: Batch) -> None:
    bundle = batch.bundle(0)
    crlf = bundle.record["output"].replace("\n", "\r\n")
    report = verify_offline(tampered(bundle, record={**bundle.record, "output": crlf}))
    assert failed_names(report) == ["record_hash"]
    assert "field 'output' differs from the committed text only in line endings" in (
        report.check("record_hash").reason
    )


def test_a_dialogue_bundle_verifies_offline_and_names_a_changed_turn(tmp_path: Path) -> None:
    dialogue = make_batch(3, tag="dialogue", turns=True)
    bundle = dialogue.bundle(1)
    path = tmp_path / "bundle.json"
    path.write_text(bundle.to_json(), encoding="utf-8")
    loaded = load_bundle(path)
    assert loaded == bundle and loaded.record["history"] == dialogue.records[1]["history"]
    report = verify_offline(loaded)
    assert report.ok, report.render()
    assert report.check("record_fields").reason == (
        "the record has the 8 canonical string fields plus a system prompt and 2 earlier "
        "exchanges in history, all of canonical types"
    )
    # The documented independent recomputation (Python's standard library) works on dialogues.
    record = json.loads(path.read_text(encoding="utf-8"))["record"]
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert "0x" + hashlib.sha256(text.encode()).hexdigest() == bundle.record_hash

    history = [list(pair) for pair in bundle.record["history"]]
    history[0][1] = history[0][1].replace("\n", "\r\n")
    crlf = verify_offline(tampered(bundle, record={**bundle.record, "history": history}))
    assert failed_names(crlf) == ["record_hash"]
    assert "field 'history[0][1]' differs from the committed text only in line endings" in (
        crlf.check("record_hash").reason
    )
    dropped = {k: v for k, v in bundle.record.items() if k != "history"}
    assert failed_names(verify_offline(tampered(bundle, record=dropped))) == ["record_hash"]
    empty = verify_offline(tampered(bundle, record={**bundle.record, "system": ""}))
    assert failed_names(empty) == ["record_fields", "record_hash"]
    assert "'system' is empty" in empty.check("record_fields").reason
    with pytest.raises(BundleFormatError, match=r"record\.history: .*pairs"):
        tampered(bundle, record={**bundle.record, "history": [["only a question"]]})


def test_missing_record_field_is_named(batch: Batch) -> None:
    bundle = batch.bundle(0)
    record = {k: v for k, v in bundle.record.items() if k != "license"}
    report = verify_offline(tampered(bundle, record=record))
    assert failed_names(report) == ["record_fields", "record_hash"]
    assert "missing canonical field(s): license" in report.check("record_fields").reason


def test_changed_salt_is_reported_on_the_leaf(batch: Batch) -> None:
    bundle = batch.bundle(3)
    report = verify_offline(tampered(bundle, salt=flip(bundle.salt)))
    assert failed_names(report) == ["leaf"]
    reason = report.check("leaf").reason
    assert "the leaf does not match record_hash and salt" in reason
    assert "the salt was changed" in reason


def test_changed_record_hash_and_record_together_still_fail(batch: Batch) -> None:
    # A forger who rehashes the edited record cannot produce the committed leaf without the salt.
    bundle = batch.bundle(2)
    record = {**bundle.record, "output": "伪造的答案。"}
    forged = tampered(bundle, record=record, record_hash=to_hex(record_hash(record)))
    report = verify_offline(forged)
    assert failed_names(report) == ["leaf"]
    assert "the record was replaced together with its record_hash" in report.check("leaf").reason


def test_changed_record_hash_alone_is_reported(batch: Batch) -> None:
    bundle = batch.bundle(2)
    report = verify_offline(tampered(bundle, record_hash=flip(bundle.record_hash)))
    assert failed_names(report) == ["record_hash", "leaf"]
    assert "the salt or record_hash was changed" in report.check("leaf").reason


def test_changed_proof_element_is_reported_on_the_proof(batch: Batch) -> None:
    bundle = batch.bundle(4)
    proof = list(bundle.proof)
    proof[1] = flip(proof[1])
    report = verify_offline(tampered(bundle, proof=proof))
    assert failed_names(report) == ["merkle_proof"]
    reason = report.check("merkle_proof").reason
    assert "the proof does not lead from the leaf to the root" in reason
    assert "a proof element, the leaf or the root was altered" in reason


def test_changed_root_is_reported_on_the_proof(batch: Batch) -> None:
    bundle = batch.bundle(0)
    report = verify_offline(tampered(bundle, root=flip(bundle.root)))
    assert failed_names(report) == ["merkle_proof"]
    # The reason shows what the proof really reaches: the committed root.
    assert f"it reaches {bundle.root[:10]}" in report.check("merkle_proof").reason


def test_changed_leaf_breaks_leaf_and_proof(batch: Batch) -> None:
    bundle = batch.bundle(0)
    report = verify_offline(tampered(bundle, leaf=flip(bundle.leaf)))
    assert failed_names(report) == ["leaf", "record_id", "merkle_proof"]


def test_report_json_and_rendering(batch: Batch) -> None:
    bundle = batch.bundle(1)
    good = verify_offline(bundle)
    assert good.render().startswith(f"VALID: record {bundle.record_id} in batch {bundle.batch_id}")
    bad = verify_offline(tampered(bundle, salt=flip(bundle.salt)))
    text = bad.render()
    assert text.splitlines()[0] == (
        f"INVALID: record {bundle.record_id} in batch {bundle.batch_id}: 1 of 5 checks failed"
    )
    assert "[FAIL] leaf" in text
    data = json.loads(bad.to_json())
    assert data["ok"] is False
    assert [c["name"] for c in data["checks"] if not c["ok"]] == ["leaf"]
    assert data["root"] == bundle.root


# ---------------------------------------------------------------------------------------------
# Online verification against a real AcademicLedger
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchored:
    academic: AcademicLedgerClient
    batch: Batch
    other: Batch
    """A second anchored batch, for cross-batch confusions."""
    unanchored: Batch
    tx_hash: str
    other_tx_hash: str
    block_number: int

    def bundle(self, index: int = 0) -> ProofBundle:
        return self.batch.bundle(
            index,
            chain_id=self.academic.chain.chain_id,
            contract_address=self.academic.address,
            tx_hash=self.tx_hash,
            block_number=self.block_number,
        )


def _anchor(academic: AcademicLedgerClient, batch: Batch) -> Any:
    return academic.anchor_batch(
        batch_id=batch.batch_id,
        merkle_root=batch.tree.root,
        metadata_hash=batch.metadata_hash,
        institution_id="bupt",
        record_count=len(batch.records),
    )


@pytest.fixture(scope="module", params=["tester", pytest.param("anvil", marks=pytest.mark.anvil)])
def anchored(request: pytest.FixtureRequest) -> Iterator[Anchored]:
    """Two batches anchored on a freshly deployed AcademicLedger, on the backend the id names."""
    clients = pytest.importorskip("ledger.chain.clients", reason="ledger.chain.clients missing")
    from ledger.chain.accounts import DEV_PRIVATE_KEYS, dev_accounts
    from ledger.chain.backends import ACADEMIC_CHAIN_ID, connect_rpc, connect_tester
    from ledger.chain.deploy import deploy_contract

    node = None
    if request.param == "tester":
        chain = connect_tester(chain_id=ACADEMIC_CHAIN_ID, name="academic")
    else:
        from ledger.chain.anvil import ANVIL_BINARY, AnvilNode

        if not ANVIL_BINARY.is_file():
            pytest.skip(f"anvil binary not installed at {ANVIL_BINARY} (run `npm ci`)")
        node = AnvilNode(chain_id=ACADEMIC_CHAIN_ID).start()
        chain = connect_rpc(url=node.url, private_key=DEV_PRIVATE_KEYS[0], name="academic")
    try:
        deployment = deploy_contract(chain, contract="AcademicLedger", chain_name="academic")
        admin = clients.AcademicLedgerClient(
            chain, deployment.address, from_block=deployment.block_number
        )
        accounts = dev_accounts()
        admin.grant_role(role=clients.Role.SUBMITTER, account=accounts.submitter.address)
        admin.register_institution(institution_id="bupt", account=accounts.institutions[0].address)
        submitter = admin.with_signer(accounts.submitter)
        batch, other = make_batch(5, tag="a"), make_batch(3, tag="b")
        tx = _anchor(submitter, batch)
        other_tx = _anchor(submitter, other)
        yield Anchored(
            academic=admin,
            batch=batch,
            other=other,
            unanchored=make_batch(2, tag="c"),
            tx_hash=tx.tx_hash,
            other_tx_hash=other_tx.tx_hash,
            block_number=tx.block_number,
        )
    finally:
        chain.close()
        if node is not None:
            node.stop()


def test_anchored_bundles_verify_online(anchored: Anchored) -> None:
    for i in range(len(anchored.batch.records)):
        report = verify_online(anchored.bundle(i), academic=anchored.academic)
        assert report.ok, report.render()
        assert [c.name for c in report.checks] == OFFLINE_CHECKS + ONLINE_CHECKS


def test_our_proofs_verify_in_merkleproof_sol(anchored: Anchored) -> None:
    tree = StandardMerkleTree.of([(new_salt(), new_salt()) for _ in range(100)])
    for i in (0, 1, 50, 99):
        proof = tree.proof(i)
        assert anchored.academic.verify_proof(root=tree.root, leaf=tree.leaf(i), proof=proof)
        bad = [*proof[:-1], bytes(32)]
        assert not anchored.academic.verify_proof(root=tree.root, leaf=tree.leaf(i), proof=bad)


def test_changed_record_passes_the_contract_but_not_the_report(anchored: Anchored) -> None:
    bundle = anchored.bundle(1)
    forged = tampered(bundle, record={**bundle.record, "output": "改过的答案。"})
    report = verify_online(forged, academic=anchored.academic)
    assert report.check("verify_record").ok  # the chain only sees the leaf
    assert failed_names(report) == ["record_hash"]


def test_changed_root_is_told_apart_online(anchored: Anchored) -> None:
    bundle = anchored.bundle(0)
    report = verify_online(tampered(bundle, root=flip(bundle.root)), academic=anchored.academic)
    assert failed_names(report) == ["merkle_proof", "anchor_tx", "anchored_root"]
    assert "the bundle's root was altered" in report.check("anchored_root").reason
    assert report.check("verify_record").ok


def test_changed_proof_is_rejected_by_the_contract(anchored: Anchored) -> None:
    bundle = anchored.bundle(2)
    proof = list(bundle.proof)
    proof[0] = flip(proof[0])
    report = verify_online(tampered(bundle, proof=proof), academic=anchored.academic)
    assert failed_names(report) == ["merkle_proof", "verify_record"]
    assert "verifyRecord view rejects" in report.check("verify_record").reason


def test_wrong_chain_contract_and_block_are_named(anchored: Anchored) -> None:
    bundle = anchored.bundle(0)
    report = verify_online(
        tampered(
            bundle,
            chain_id=1,
            contract_address="0x" + "11" * 20,
            block_number=anchored.block_number + 1,
        ),
        academic=anchored.academic,
    )
    assert failed_names(report) == ["chain_id", "contract_address", "anchor_tx"]
    assert "anchored on chain 1" in report.check("chain_id").reason
    assert f"in block {anchored.block_number}, the bundle says" in report.check("anchor_tx").reason


def test_transaction_of_another_batch_is_rejected(anchored: Anchored) -> None:
    bundle = tampered(anchored.bundle(0), tx_hash=anchored.other_tx_hash)
    report = verify_online(bundle, academic=anchored.academic)
    assert failed_names(report) == ["anchor_tx"]
    assert "emitted no BatchAnchored event" in report.check("anchor_tx").reason


def test_unknown_transaction_and_wrong_metadata_hash(anchored: Anchored) -> None:
    bundle = tampered(anchored.bundle(0), tx_hash="0x" + "42" * 32, metadata_hash="0x" + "00" * 32)
    report = verify_online(bundle, academic=anchored.academic)
    assert failed_names(report) == ["anchor_tx"]
    assert "is not on this chain" in report.check("anchor_tx").reason
    bundle = tampered(anchored.bundle(0), metadata_hash="0x" + "00" * 32)
    report = verify_online(bundle, academic=anchored.academic)
    assert failed_names(report) == ["metadata_hash"]


def test_bundle_of_another_batch_with_this_batch_id(anchored: Anchored) -> None:
    # A genuine bundle of batch B relabelled as batch A: offline valid, online refused.
    bundle = tampered(anchored.other.bundle(0), batch_id=anchored.batch.batch_id)
    assert verify_offline(bundle).ok
    report = verify_online(bundle, academic=anchored.academic)
    assert "anchored_root" in failed_names(report)
    assert "verify_record" in failed_names(report)


def test_a_dialogue_bundle_verifies_online(anchored: Anchored) -> None:
    from ledger.chain.accounts import dev_accounts

    dialogue = make_batch(2, tag="dialogue", turns=True)
    tx = _anchor(anchored.academic.with_signer(dev_accounts().submitter), dialogue)
    for i in range(len(dialogue.records)):
        bundle = dialogue.bundle(
            i,
            chain_id=anchored.academic.chain.chain_id,
            contract_address=anchored.academic.address,
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
        )
        report = verify_online(ProofBundle.from_json(bundle.to_json()), academic=anchored.academic)
        assert report.ok, report.render()
        assert [c.name for c in report.checks] == OFFLINE_CHECKS + ONLINE_CHECKS


def test_unanchored_bundle_verifies_offline_only(anchored: Anchored) -> None:
    bundle = anchored.unanchored.bundle(0)
    assert verify_offline(bundle).ok
    report = verify_online(bundle, academic=anchored.academic)
    assert failed_names(report) == [
        "chain_id",
        "contract_address",
        "anchor_tx",
        "anchored_root",
        "verify_record",
    ]
    assert "is not anchored" in report.check("anchored_root").reason


def test_a_contract_that_is_not_academic_ledger_is_not_asked(anchored: Anchored) -> None:
    from ledger.chain.clients import AcademicLedgerClient
    from ledger.chain.deploy import deploy_contract

    # A bundle pointing at some other contract (here BYRToken) whose answers cannot be trusted.
    impostor = deploy_contract(anchored.academic.chain, contract="BYRToken", chain_name="academic")
    bundle = tampered(anchored.bundle(0), contract_address=impostor.address)
    academic = AcademicLedgerClient(anchored.academic.chain, impostor.address)
    report = verify_online(bundle, academic=academic)
    assert failed_names(report) == ["contract_code", "anchor_tx", "anchored_root", "verify_record"]
    assert "not AcademicLedger's runtime bytecode" in report.check("contract_code").reason
    assert report.check("verify_record").reason.startswith("not asked")
