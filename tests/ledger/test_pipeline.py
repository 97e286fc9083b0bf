"""The ledger's outbox pipeline on real chains: submit -> (decision) -> anchor -> reward -> audit.

Governance decisions are recorded here as the ``BatchGoverned`` events the governance step appends,
so these tests exercise the ledger, the outbox, the dispatchers and both contracts on their own;
the governance step itself is tested in tests/ingest/governance and end to end in tests/api.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.application import CorpusLedger
from ledger.audit import verify_offline, verify_online
from ledger.batching import RecordInput
from ledger.chain import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    AcademicLedgerClient,
    BYRTokenClient,
    ServiceRoles,
    connect_rpc,
    connect_tester,
    deploy_contracts,
    dev_accounts,
)
from ledger.chain.accounts import DEV_PRIVATE_KEYS
from ledger.chain.anvil import ANVIL_BINARY, AnvilNode
from ledger.chain_jobs import AnchorBatchJob, RewardJob
from ledger.eventlog import open_event_log
from ledger.events import BatchGoverned
from ledger.ids import batch_stream, id_key
from ledger.jobs import JobHandler, OutboxJobs, StageReport, run_stage
from ledger.projections.base import ProjectionStore
from ledger.projections.outbox import JobKind

REWARD = 3 * 10**18


def record(i: int, *, lang: str = "en") -> dict[str, str]:
    return {
        "instruction": f"Explain concept number {i} of channel coding.",
        "input": "",
        "output": f"Concept {i} concerns how redundancy lets a receiver correct errors.",
        "discipline": "information_theory",
        "task_type": "concept_explanation",
        "language": lang,
        "license": "CC-BY-4.0",
        "institution_id": "bupt",
    }


@dataclass
class Setup:
    ledger: CorpusLedger
    academic: AcademicLedgerClient
    token: BYRTokenClient
    institution_account: str


def _run(ledger: CorpusLedger, handler: JobHandler, kind: JobKind) -> StageReport:
    """One pass of ``handler`` over the open jobs of ``kind``, as every pipeline driver runs it."""
    return run_stage(handler, OutboxJobs(ledger).claim(kind), kind=kind)


def _ledger(tmp_path: Path) -> CorpusLedger:
    log = open_event_log(f"sqlite:///{tmp_path / 'events.db'}")
    return CorpusLedger(log=log, store=ProjectionStore(tmp_path / "state.db"))


def _setup(tmp_path: Path, academic_chain, incentive_chain) -> Setup:  # type: ignore[no-untyped-def]
    dev = dev_accounts()
    deployments = deploy_contracts(
        academic=academic_chain, incentive=incentive_chain, roles=ServiceRoles.from_dev(dev)
    )
    admin = deployments.academic_client(academic_chain)
    account = dev.institutions[0].address
    tx = admin.register_institution(institution_id="bupt", account=account)
    ledger = _ledger(tmp_path)
    ledger.register_institution(
        institution_id="bupt", name="BUPT", account=account, academic_tx_hash=tx.tx_hash
    )
    return Setup(
        ledger=ledger,
        academic=admin.with_signer(dev.submitter),
        token=deployments.token_client(incentive_chain).with_signer(dev.minter),
        institution_account=account,
    )


@pytest.fixture
def tester(tmp_path: Path) -> Iterator[Setup]:
    academic = connect_tester(chain_id=ACADEMIC_CHAIN_ID, name="academic")
    incentive = connect_tester(chain_id=INCENTIVE_CHAIN_ID, name="incentive")
    setup = _setup(tmp_path, academic, incentive)
    yield setup
    setup.ledger.log.close()
    setup.ledger.store.close()
    academic.close()
    incentive.close()


def submit_and_decide(ledger: CorpusLedger, n: int = 5, reward: int = REWARD) -> str:
    submitted = ledger.submit_batch(
        institution_id="bupt",
        source_name="batch.jsonl",
        records=[RecordInput(canonical=record(i), source_line=i + 1) for i in range(n)],
        policy_version="test-1",
    )
    accepted = submitted.record_ids[:-1]
    rejected = submitted.record_ids[-1]
    ledger.append(
        batch_stream(submitted.batch_id),
        [
            BatchGoverned(
                batch_id=submitted.batch_id,
                institution_id="bupt",
                policy_version="test-1",
                accepted_record_ids=accepted,
                rejected={rejected: ["off_topic"]},
                decisions=[
                    {"record_id": r, "accepted": r != rejected, "reasons": [], "scores": {}}
                    for r in submitted.record_ids
                ],
                contribution_score=float(len(accepted)),
                reward_wei=str(reward),
            )
        ],
    )
    return submitted.batch_id


def test_submit_anchor_reward_and_audit(tester: Setup) -> None:
    ledger = tester.ledger
    batch_id = submit_and_decide(ledger)
    assert ledger.pending_jobs(JobKind.ANCHOR) == [batch_id]

    anchors = _run(ledger, AnchorBatchJob(ledger=ledger, academic=tester.academic), JobKind.ANCHOR)
    assert anchors.done == [batch_id]
    batch = ledger.batch(batch_id)
    assert batch.status == "anchored" and batch.tx_hash
    assert ledger.pending_jobs(JobKind.ANCHOR) == []
    assert ledger.pending_jobs(JobKind.REWARD) == [batch_id]

    rewards = _run(ledger, RewardJob(ledger=ledger, token=tester.token), JobKind.REWARD)
    assert rewards.done == [batch_id]
    assert tester.token.balance_of(tester.institution_account) == REWARD
    assert tester.token.total_supply() == REWARD
    assert [b.to_dict() for b in ledger.balances()] == [
        {
            "account": tester.institution_account,
            "institution_id": "bupt",
            "amount_wei": str(REWARD),
            "rewards": 1,
        }
    ]
    reward = tester.token.find_reward(id_key(batch_id))
    assert reward is not None and reward.academic_ref.hex() == batch.merkle_root[2:]

    record_id = ledger.records(batch_id)[0].record_id
    bundle = ledger.proof(record_id)
    assert verify_offline(bundle).ok
    report = verify_online(bundle, academic=tester.academic)
    assert report.ok, report.render()

    assert ledger.replay().equal


def test_dispatcher_records_an_anchor_sent_before_a_crash_without_sending_again(
    tester: Setup,
) -> None:
    ledger = tester.ledger
    batch_id = submit_and_decide(ledger)
    batch = ledger.batch(batch_id)
    # A previous dispatcher sent the anchor and died before recording it.
    sent = tester.academic.anchor_batch(
        batch_id=batch_id,
        merkle_root=bytes.fromhex(batch.merkle_root[2:]),
        metadata_hash=bytes.fromhex(batch.metadata_hash[2:]),
        institution_id="bupt",
        record_count=batch.record_count,
    )
    block_before = tester.academic.chain.block_number()

    report = _run(ledger, AnchorBatchJob(ledger=ledger, academic=tester.academic), JobKind.ANCHOR)

    assert report.recovered == [batch_id] and report.done == []
    assert tester.academic.chain.block_number() == block_before  # nothing new was sent
    assert ledger.batch(batch_id).tx_hash == sent.tx_hash


def test_reward_minted_before_a_crash_is_recorded_not_minted_twice(tester: Setup) -> None:
    ledger = tester.ledger
    batch_id = submit_and_decide(ledger)
    _run(ledger, AnchorBatchJob(ledger=ledger, academic=tester.academic), JobKind.ANCHOR)
    root = bytes.fromhex(ledger.batch(batch_id).merkle_root[2:])
    tester.token.mint(
        to=tester.institution_account,
        amount_wei=REWARD,
        contribution_id=id_key(batch_id),
        academic_ref=root,
    )

    report = _run(ledger, RewardJob(ledger=ledger, token=tester.token), JobKind.REWARD)

    assert report.recovered == [batch_id]
    assert tester.token.total_supply() == REWARD
    assert ledger.balances()[0].amount_wei == str(REWARD)


def test_nothing_to_reward_opens_no_mint_job(tester: Setup) -> None:
    ledger = tester.ledger
    batch_id = submit_and_decide(ledger, reward=0)
    _run(ledger, AnchorBatchJob(ledger=ledger, academic=tester.academic), JobKind.ANCHOR)
    assert ledger.batch(batch_id).status == "anchored"
    assert ledger.pending_jobs(JobKind.REWARD) == []


def test_duplicate_root_is_a_permanent_failure(tester: Setup) -> None:
    ledger = tester.ledger
    batch_id = submit_and_decide(ledger)
    _run(ledger, AnchorBatchJob(ledger=ledger, academic=tester.academic), JobKind.ANCHOR)
    batch = ledger.batch(batch_id)
    # Another batch id claiming the same root is refused by the contract for good.
    other = ledger.submit_batch(
        institution_id="bupt",
        source_name="copy.jsonl",
        records=[RecordInput(canonical=record(100))],
        policy_version="test-1",
    )
    tester.academic.anchor_batch(
        batch_id=other.batch_id + "-squatter",
        merkle_root=bytes.fromhex(other.merkle_root[2:]),
        metadata_hash=bytes.fromhex(batch.metadata_hash[2:]),
        institution_id="bupt",
        record_count=1,
    )
    ledger.append(
        batch_stream(other.batch_id),
        [
            BatchGoverned(
                batch_id=other.batch_id,
                institution_id="bupt",
                policy_version="test-1",
                accepted_record_ids=other.record_ids,
                rejected={},
                decisions=[],
                contribution_score=1.0,
                reward_wei="0",
            )
        ],
    )
    report = _run(ledger, AnchorBatchJob(ledger=ledger, academic=tester.academic), JobKind.ANCHOR)
    assert list(report.failed) == [other.batch_id]
    assert "RootAlreadyAnchored" in report.failed[other.batch_id]
    assert ledger.batch(other.batch_id).status == "anchor_failed"
    assert ledger.pending_jobs(JobKind.ANCHOR) == []


@pytest.mark.anvil
def test_chain_outage_defers_jobs_until_the_node_returns(tmp_path: Path) -> None:
    if not ANVIL_BINARY.is_file():
        pytest.skip(f"anvil binary not installed at {ANVIL_BINARY} (run `npm ci`)")
    state = tmp_path / "academic-state.json"
    academic_node = AnvilNode(chain_id=ACADEMIC_CHAIN_ID, state_path=state).start()
    incentive_node = AnvilNode(chain_id=INCENTIVE_CHAIN_ID).start()
    try:
        academic = connect_rpc(url=academic_node.url, private_key=DEV_PRIVATE_KEYS[0])
        incentive = connect_rpc(url=incentive_node.url, private_key=DEV_PRIVATE_KEYS[0])
        setup = _setup(tmp_path, academic, incentive)
        batch_id = submit_and_decide(setup.ledger)

        anchor = AnchorBatchJob(ledger=setup.ledger, academic=setup.academic)
        academic_node.stop()  # the node goes away, its state saved to disk
        report = _run(setup.ledger, anchor, JobKind.ANCHOR)
        assert list(report.deferred) == [batch_id]
        assert setup.ledger.pending_jobs(JobKind.ANCHOR) == [batch_id]

        academic_node = AnvilNode(
            chain_id=ACADEMIC_CHAIN_ID, port=academic_node.port, state_path=state
        ).start()
        report = _run(setup.ledger, anchor, JobKind.ANCHOR)
        assert report.done == [batch_id]
        bundle = setup.ledger.proof(setup.ledger.records(batch_id)[0].record_id)
        assert verify_online(bundle, academic=setup.academic).ok
    finally:
        academic_node.stop()
        incentive_node.stop()
