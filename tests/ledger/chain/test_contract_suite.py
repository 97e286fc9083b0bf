"""The contracts through their typed clients, on every backend (eth-tester and two anvil nodes).

Every test runs once per backend; the ``isolated`` fixture reverts both chains after each test.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from ledger.chain import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    Role,
)
from ledger.chain.errors import (
    AlreadyRewarded,
    BatchAlreadyAnchored,
    EmptyBatch,
    InactiveInstitution,
    InstitutionAlreadyRegistered,
    RootAlreadyAnchored,
    RunAlreadyAnchored,
    TransactionReverted,
    Unauthorized,
    UnknownInstitution,
    ZeroAddress,
    ZeroAmount,
    ZeroRoot,
)
from ledger.ids import id_key
from tests.ledger.chain.conftest import (
    INSTITUTION,
    OTHER_INSTITUTION,
    SmallTree,
    World,
    standard_leaf,
)

ROOT = keccak(text="root")
META = keccak(text="manifest")
ZERO = bytes(32)


def anchor(world: World, batch_id: str = "batch-1", **overrides: object) -> object:
    args: dict[str, object] = {
        "batch_id": batch_id,
        "merkle_root": ROOT,
        "metadata_hash": META,
        "institution_id": INSTITUTION,
        "record_count": 100,
    }
    args.update(overrides)
    return world.submitter.anchor_batch(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------------ chains and deployment


def test_chains_have_their_own_ids(isolated: World) -> None:
    assert isolated.chains.academic.w3.eth.chain_id == ACADEMIC_CHAIN_ID
    assert isolated.chains.incentive.w3.eth.chain_id == INCENTIVE_CHAIN_ID
    assert isolated.deployments.academic.chain_id == ACADEMIC_CHAIN_ID
    assert isolated.deployments.incentive.chain_id == INCENTIVE_CHAIN_ID


def test_deployment_grants_the_service_roles(isolated: World) -> None:
    accounts = isolated.accounts
    ledger, token = isolated.admin, isolated.token_admin
    assert ledger.has_role(Role.ADMIN, accounts.deployer.address)
    assert ledger.has_role(Role.SUBMITTER, accounts.submitter.address)
    assert ledger.has_role(Role.TRAINER, accounts.trainer.address)
    assert not ledger.has_role(Role.SUBMITTER, accounts.trainer.address)
    assert token.has_role(Role.MINTER, accounts.minter.address)
    assert not token.has_role(Role.MINTER, accounts.submitter.address)
    assert token.token_info() == ("BYR Token", "BYR", 18)


def test_a_deployment_is_checked_against_the_other_chain(isolated: World) -> None:
    from ledger.chain.errors import ChainMismatch

    with pytest.raises(ChainMismatch):
        isolated.deployments.academic.check(isolated.chains.incentive)


# ------------------------------------------------------------------ institutions


def test_register_institution(isolated: World) -> None:
    account = isolated.accounts.institutions[1].address
    result = isolated.admin.register_institution(institution_id=OTHER_INSTITUTION, account=account)
    assert result.block_number > 0 and result.gas_used > 21_000
    inst = isolated.admin.institution(OTHER_INSTITUTION)
    assert inst is not None
    assert (inst.institution_key, inst.account, inst.active) == (
        id_key(OTHER_INSTITUTION),
        account,
        True,
    )
    assert isolated.admin.institution("unknown-inst") is None


def test_register_institution_twice_is_refused(isolated: World) -> None:
    with pytest.raises(InstitutionAlreadyRegistered) as err:
        isolated.admin.register_institution(
            institution_id=INSTITUTION, account=isolated.accounts.institutions[1].address
        )
    assert err.value.arguments == {"institutionId": id_key(INSTITUTION)}


def test_register_institution_with_zero_address_is_refused(isolated: World) -> None:
    with pytest.raises(ZeroAddress):
        isolated.admin.register_institution(
            institution_id=OTHER_INSTITUTION, account="0x" + "0" * 40
        )


def test_only_the_admin_registers_institutions(isolated: World) -> None:
    with pytest.raises(Unauthorized) as err:
        isolated.submitter.register_institution(
            institution_id=OTHER_INSTITUTION, account=isolated.accounts.institutions[1].address
        )
    assert err.value.arguments == {
        "account": isolated.accounts.submitter.address,
        "neededRole": Role.ADMIN.key,
    }


def test_only_the_admin_changes_institution_status(isolated: World) -> None:
    with pytest.raises(Unauthorized):
        isolated.submitter.set_institution_active(institution_id=INSTITUTION, active=False)


def test_status_of_an_unknown_institution_is_refused(isolated: World) -> None:
    with pytest.raises(UnknownInstitution) as err:
        isolated.admin.set_institution_active(institution_id="unknown-inst", active=False)
    assert err.value.arguments == {"institutionId": id_key("unknown-inst")}


def test_deactivate_and_reactivate_an_institution(isolated: World) -> None:
    isolated.admin.set_institution_active(institution_id=INSTITUTION, active=False)
    inst = isolated.admin.institution(INSTITUTION)
    assert inst is not None and not inst.active
    with pytest.raises(InactiveInstitution) as err:
        anchor(isolated)
    assert err.value.arguments == {"institutionId": id_key(INSTITUTION)}
    isolated.admin.set_institution_active(institution_id=INSTITUTION, active=True)
    anchor(isolated)
    assert isolated.admin.root_of("batch-1") == ROOT


# ------------------------------------------------------------------ batches


def test_anchor_batch_stores_root_and_emits_the_event(isolated: World) -> None:
    result = anchor(isolated, record_count=1000)
    ledger = isolated.admin
    assert ledger.root_of("batch-1") == ROOT
    assert ledger.batch_key_of_root(ROOT) == id_key("batch-1")
    record = ledger.find_batch_anchor("batch-1")
    assert record is not None
    assert record.tx_hash == result.tx_hash  # type: ignore[attr-defined]
    assert record.block_number == result.block_number  # type: ignore[attr-defined]
    assert (record.batch_key, record.merkle_root, record.metadata_hash) == (
        id_key("batch-1"),
        ROOT,
        META,
    )
    assert (record.institution_key, record.record_count) == (id_key(INSTITUTION), 1000)
    receipt = isolated.chains.academic.receipt(record.tx_hash)
    assert receipt is not None and receipt["status"] == 1
    assert receipt["blockNumber"] == record.block_number
    assert isolated.chains.academic.receipt("0x" + "ab" * 32) is None


def test_anchor_batch_gas_stays_compact(isolated: World) -> None:
    result = anchor(isolated)
    # Two fresh storage slots (batch -> root, root -> batch) cost 44,200 of this.
    assert result.gas_used < 80_000  # type: ignore[attr-defined]


def test_find_batch_anchor_picks_its_batch_among_many(isolated: World) -> None:
    results = {
        f"batch-{i}": anchor(isolated, f"batch-{i}", merkle_root=keccak(text=f"root {i}"))
        for i in range(5)
    }
    for batch_id, result in results.items():
        record = isolated.admin.find_batch_anchor(batch_id)
        assert record is not None
        assert record.tx_hash == result.tx_hash  # type: ignore[attr-defined]
        assert record.merkle_root == keccak(text=f"root {batch_id.split('-')[1]}")


def test_unanchored_batch_reads_as_absent(isolated: World) -> None:
    assert isolated.admin.root_of("never") is None
    assert isolated.admin.find_batch_anchor("never") is None
    assert isolated.admin.batch_key_of_root(ROOT) is None


def test_a_batch_is_anchored_once(isolated: World) -> None:
    anchor(isolated)
    with pytest.raises(BatchAlreadyAnchored) as err:
        anchor(isolated, merkle_root=keccak(text="another root"))
    assert err.value.arguments == {"batchId": id_key("batch-1")}


def test_a_root_is_anchored_once(isolated: World) -> None:
    anchor(isolated)
    with pytest.raises(RootAlreadyAnchored) as err:
        anchor(isolated, batch_id="batch-2")
    assert err.value.arguments == {"merkleRoot": ROOT}


def test_zero_root_is_refused(isolated: World) -> None:
    with pytest.raises(ZeroRoot):
        anchor(isolated, merkle_root=ZERO)


def test_empty_batch_is_refused(isolated: World) -> None:
    with pytest.raises(EmptyBatch):
        anchor(isolated, record_count=0)


def test_batch_of_unknown_institution_is_refused(isolated: World) -> None:
    with pytest.raises(UnknownInstitution) as err:
        anchor(isolated, institution_id="unknown-inst")
    assert err.value.arguments == {"institutionId": id_key("unknown-inst")}


@pytest.mark.parametrize("who", ["deployer", "trainer", "minter", "institution"])
def test_only_the_submitter_anchors_batches(isolated: World, who: str) -> None:
    accounts = isolated.accounts
    signer = accounts.institutions[0] if who == "institution" else getattr(accounts, who)
    with pytest.raises(Unauthorized) as err:
        isolated.admin.with_signer(signer).anchor_batch(
            batch_id="batch-1",
            merkle_root=ROOT,
            metadata_hash=META,
            institution_id=INSTITUTION,
            record_count=1,
        )
    assert err.value.arguments == {"account": signer.address, "neededRole": Role.SUBMITTER.key}
    assert err.value.error_name == "AccessControlUnauthorizedAccount"


def test_a_refused_transaction_is_never_sent(isolated: World) -> None:
    chain = isolated.chains.academic
    signer = isolated.accounts.submitter.address
    nonce, block = chain.w3.eth.get_transaction_count(signer), chain.block_number()
    with pytest.raises(ZeroRoot):
        anchor(isolated, merkle_root=ZERO)
    assert chain.w3.eth.get_transaction_count(signer) == nonce
    assert chain.block_number() == block


def test_a_call_that_runs_out_of_gas_is_reported_as_a_revert(isolated: World) -> None:
    ledger = isolated.admin
    data = bytes.fromhex(
        ledger._contract.encode_abi(
            "registerInstitution", args=[id_key("x"), isolated.accounts.minter.address]
        )[2:]
    )
    with pytest.raises(TransactionReverted, match="failed") as err:
        isolated.chains.academic.transact(
            to=ledger.address, data=data, gas=30_000, abi=ledger.artifact.abi
        )
    assert type(err.value) is TransactionReverted
    assert ledger.institution("x") is None


def test_revoked_submitter_can_no_longer_anchor(isolated: World) -> None:
    isolated.admin.revoke_role(role=Role.SUBMITTER, account=isolated.accounts.submitter.address)
    with pytest.raises(Unauthorized):
        anchor(isolated)


def test_only_the_admin_grants_roles(isolated: World) -> None:
    with pytest.raises(Unauthorized) as err:
        isolated.submitter.grant_role(
            role=Role.SUBMITTER, account=isolated.accounts.institutions[0].address
        )
    assert err.value.arguments["neededRole"] == Role.ADMIN.key


# ------------------------------------------------------------------ proofs


def test_verify_record_accepts_every_leaf_of_the_anchored_tree(
    isolated: World, small_tree: SmallTree
) -> None:
    anchor(isolated, merkle_root=small_tree.root, record_count=len(small_tree.leaves))
    for leaf, proof in zip(small_tree.leaves, small_tree.proofs, strict=True):
        assert isolated.admin.verify_record(batch_id="batch-1", leaf=leaf, proof=list(proof))


def test_verify_record_refuses_wrong_leaf_wrong_proof_and_unknown_batch(
    isolated: World, small_tree: SmallTree
) -> None:
    anchor(isolated, merkle_root=small_tree.root, record_count=4)
    leaf, proof = small_tree.leaves[0], list(small_tree.proofs[0])
    ledger = isolated.admin
    assert not ledger.verify_record(batch_id="batch-1", leaf=keccak(text="forged"), proof=proof)
    assert not ledger.verify_record(batch_id="batch-1", leaf=leaf, proof=list(small_tree.proofs[2]))
    assert not ledger.verify_record(batch_id="never", leaf=leaf, proof=proof)


def test_verify_record_accepts_proofs_of_the_ledger_merkle_tree(isolated: World) -> None:
    """Roots and proofs of ``ledger.merkle`` (OpenZeppelin's layout) verify with MerkleProof.sol."""
    from ledger.merkle import StandardMerkleTree

    values = [(keccak(text=f"record {i}"), keccak(text=f"salt {i}")) for i in range(300)]
    tree = StandardMerkleTree.of(values)
    anchor(isolated, merkle_root=tree.root, record_count=len(values))
    for i in (0, 1, 150, 299):
        assert tree.leaf(i) == standard_leaf(*values[i])
        assert isolated.admin.verify_record(
            batch_id="batch-1", leaf=tree.leaf(i), proof=tree.proof(i)
        )
    assert not isolated.admin.verify_record(
        batch_id="batch-1", leaf=tree.leaf(0), proof=tree.proof(1)
    )


def test_verify_proof_is_pure(isolated: World, small_tree: SmallTree) -> None:
    ledger = isolated.admin
    leaf, proof = small_tree.leaves[3], list(small_tree.proofs[3])
    assert ledger.verify_proof(root=small_tree.root, leaf=leaf, proof=proof)
    assert not ledger.verify_proof(root=ROOT, leaf=leaf, proof=proof)


# ------------------------------------------------------------------ training runs


def run_args(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "run_id": "run-1",
        "dataset_root": keccak(text="dataset"),
        "adapter_hash": keccak(text="adapter"),
        "recipe_hash": keccak(text="recipe"),
        "base_model_hash": keccak(text="base"),
    }
    args.update(overrides)
    return args


def test_anchor_training_run(isolated: World) -> None:
    result = isolated.trainer.anchor_training_run(**run_args())  # type: ignore[arg-type]
    assert isolated.admin.adapter_of("run-1") == keccak(text="adapter")
    record = isolated.admin.find_training_run("run-1")
    assert record is not None
    assert (record.tx_hash, record.block_number) == (result.tx_hash, result.block_number)
    assert record.run_key == id_key("run-1")
    assert (record.dataset_root, record.recipe_hash, record.base_model_hash) == (
        keccak(text="dataset"),
        keccak(text="recipe"),
        keccak(text="base"),
    )
    assert isolated.admin.find_training_run("run-2") is None


def test_a_training_run_is_anchored_once(isolated: World) -> None:
    isolated.trainer.anchor_training_run(**run_args())  # type: ignore[arg-type]
    with pytest.raises(RunAlreadyAnchored) as err:
        isolated.trainer.anchor_training_run(**run_args(adapter_hash=keccak(text="other")))  # type: ignore[arg-type]
    assert err.value.arguments == {"runId": id_key("run-1")}


@pytest.mark.parametrize("field", ["dataset_root", "adapter_hash"])
def test_training_run_with_zero_root_is_refused(isolated: World, field: str) -> None:
    with pytest.raises(ZeroRoot):
        isolated.trainer.anchor_training_run(**run_args(**{field: ZERO}))  # type: ignore[arg-type]


def test_only_the_trainer_anchors_training_runs(isolated: World) -> None:
    with pytest.raises(Unauthorized) as err:
        isolated.submitter.anchor_training_run(**run_args())  # type: ignore[arg-type]
    assert err.value.arguments["neededRole"] == Role.TRAINER.key


# ------------------------------------------------------------------ rewards


def test_mint_rewards_a_contribution(isolated: World) -> None:
    receiver = isolated.accounts.institutions[0].address
    contribution = id_key("batch-1")
    token = isolated.token_admin
    assert not token.rewarded(contribution) and token.find_reward(contribution) is None
    result = isolated.minter.mint(
        to=receiver, amount_wei=5 * 10**18, contribution_id=contribution, academic_ref=ROOT
    )
    assert token.rewarded(contribution)
    assert token.balance_of(receiver) == 5 * 10**18
    assert token.total_supply() == 5 * 10**18
    reward = token.find_reward(contribution)
    assert reward is not None
    assert (reward.to, reward.amount_wei, reward.academic_ref) == (receiver, 5 * 10**18, ROOT)
    assert (reward.tx_hash, reward.block_number) == (result.tx_hash, result.block_number)


def test_a_contribution_is_rewarded_once(isolated: World) -> None:
    receiver = isolated.accounts.institutions[0].address
    contribution = id_key("batch-1")
    isolated.minter.mint(to=receiver, amount_wei=1, contribution_id=contribution, academic_ref=ROOT)
    with pytest.raises(AlreadyRewarded) as err:
        isolated.minter.mint(
            to=receiver, amount_wei=1, contribution_id=contribution, academic_ref=ROOT
        )
    assert err.value.arguments == {"contributionId": contribution}
    assert isolated.token_admin.balance_of(receiver) == 1


def test_zero_reward_is_refused(isolated: World) -> None:
    with pytest.raises(ZeroAmount):
        isolated.minter.mint(
            to=isolated.accounts.institutions[0].address,
            amount_wei=0,
            contribution_id=id_key("batch-1"),
            academic_ref=ROOT,
        )


@pytest.mark.parametrize("who", ["deployer", "submitter", "institution"])
def test_only_the_minter_mints(isolated: World, who: str) -> None:
    accounts = isolated.accounts
    signer = accounts.institutions[0] if who == "institution" else getattr(accounts, who)
    with pytest.raises(Unauthorized) as err:
        isolated.token_admin.with_signer(signer).mint(
            to=signer.address, amount_wei=1, contribution_id=id_key("x"), academic_ref=ROOT
        )
    assert err.value.arguments == {"account": signer.address, "neededRole": Role.MINTER.key}


def test_mint_to_the_zero_address_reverts_with_the_erc20_error(isolated: World) -> None:
    with pytest.raises(TransactionReverted) as err:
        isolated.minter.mint(
            to="0x" + "0" * 40, amount_wei=1, contribution_id=id_key("x"), academic_ref=ROOT
        )
    assert err.value.error_name == "ERC20InvalidReceiver"


def test_snapshots_isolate_tests(isolated: World) -> None:
    """Nothing that earlier tests anchored or minted is visible here."""
    assert isolated.admin.root_of("batch-1") is None
    assert isolated.token_admin.total_supply() == 0
