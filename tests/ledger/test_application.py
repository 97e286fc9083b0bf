"""The ledger's application layer on a real SQLite log and state database: what it writes, what its
reads return, and that a read never catches up with the log on its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.application import CorpusLedger, InvalidRequest, NotFound, default_projections
from ledger.audit import verify_offline
from ledger.batching import RecordInput
from ledger.eventlog import open_event_log
from ledger.eventlog.sqlite import sqlite_url
from ledger.events import (
    BatchAnchored,
    BatchAnchorFailed,
    BatchGoverned,
    ContributionRewarded,
    TrainingRunCompleted,
    TrainingRunCreated,
    TrainingRunRequested,
    TrainingRunStarted,
)
from ledger.ids import batch_stream, run_stream
from ledger.projections.base import Projection, ProjectionStore
from ledger.projections.outbox import JobKind, JobStatus, list_jobs
from ledger.projections.training import TrainingRequestsProjection
from ledger.views import TrainingRequestView

ACCOUNT = "0x" + "11" * 20
CONTRACT = "0x" + "22" * 20


def canonical(i: int) -> dict[str, str]:
    return {
        "instruction": f"Explain concept number {i} of channel coding.",
        "input": "",
        "output": f"Concept {i} concerns how redundancy lets a receiver correct errors.",
        "discipline": "information_theory" if i % 2 == 0 else "signal_processing",
        "task_type": "concept_explanation",
        "language": "en",
        "license": "CC-BY-4.0",
        "institution_id": "bupt",
    }


@dataclass
class Files:
    events: Path
    state: Path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(events=tmp_path / "events.db", state=tmp_path / "state.db")


def open_ledger(
    events: Path, state: Path, *, projections: Sequence[Projection] | None = None
) -> CorpusLedger:
    return CorpusLedger(
        log=open_event_log(sqlite_url(events)),
        store=ProjectionStore(state),
        projections=projections,
    )


def close(ledger: CorpusLedger) -> None:
    ledger.log.close()
    ledger.store.close()


@pytest.fixture
def ledger(files: Files) -> Iterator[CorpusLedger]:
    ledger = open_ledger(files.events, files.state)
    yield ledger
    close(ledger)


def register_bupt(ledger: CorpusLedger) -> None:
    ledger.register_institution(
        institution_id="bupt", name="BUPT", account=ACCOUNT, academic_tx_hash="0x" + "ab" * 32
    )


def submit(ledger: CorpusLedger, n: int = 3) -> str:
    submitted = ledger.submit_batch(
        institution_id="bupt",
        source_name="uploads/batch.jsonl",
        records=[RecordInput(canonical=canonical(i), source_line=i + 1) for i in range(n)],
        policy_version="test-1",
    )
    return submitted.batch_id


def govern(ledger: CorpusLedger, batch_id: str, *, reward_wei: str = "0") -> list[str]:
    """Accept every record but the last; returns the accepted ids."""
    ids = [r.record_id for r in ledger.records(batch_id)]
    ledger.append(
        batch_stream(batch_id),
        [
            BatchGoverned(
                batch_id=batch_id,
                institution_id="bupt",
                policy_version="test-1",
                accepted_record_ids=ids[:-1],
                rejected={ids[-1]: ["off_topic"]},
                decisions=[],
                contribution_score=float(len(ids) - 1),
                reward_wei=reward_wei,
            )
        ],
    )
    return ids[:-1]


def anchor(ledger: CorpusLedger, batch_id: str) -> None:
    batch = ledger.batch(batch_id)
    ledger.append(
        batch_stream(batch_id),
        [
            BatchAnchored(
                batch_id=batch_id,
                merkle_root=batch.merkle_root,
                metadata_hash=batch.metadata_hash,
                chain_id=31337,
                contract_address=CONTRACT,
                tx_hash="0x" + "cd" * 32,
                block_number=7,
            )
        ],
    )


def request_training(ledger: CorpusLedger, request_id: str) -> TrainingRunRequested:
    event = TrainingRunRequested(
        request_id=request_id,
        recipe="knowledge_qa",
        base_model="tiny",
        overrides={"training.max_steps": 4, "lora.r": 8},
        max_steps=4,
        disciplines=["information_theory"],
        languages=["en", "zh"],
        institutions=["bupt"],
        record_limit=50,
    )
    ledger.append(run_stream(f"request-{request_id}"), [event], expected_version=0)
    return event


# -- institutions -------------------------------------------------------------------------------


def test_registered_institutions_read_back_by_id_and_in_id_order(ledger: CorpusLedger) -> None:
    ledger.register_institution(institution_id="xidian", name="Xidian", account=ACCOUNT)
    registered = ledger.register_institution(
        institution_id="bupt", name="BUPT", account=ACCOUNT, academic_tx_hash="0x" + "ab" * 32
    )

    assert registered == ledger.institution("bupt")
    assert registered.to_dict() == {
        "institution_id": "bupt",
        "name": "BUPT",
        "account": ACCOUNT,
        "active": True,
        "registered_at": registered.registered_at,
        "academic_tx_hash": "0x" + "ab" * 32,
    }
    assert [i.institution_id for i in ledger.institutions()] == ["bupt", "xidian"]
    assert ledger.status().institutions == 2


def test_an_unknown_or_malformed_institution_is_refused(ledger: CorpusLedger) -> None:
    with pytest.raises(NotFound, match="not registered") as refused:
        ledger.institution("nobody")
    assert "nobody" not in str(refused.value)
    with pytest.raises(InvalidRequest):
        ledger.register_institution(institution_id="Not A Slug", name="x", account=ACCOUNT)
    assert ledger.institutions() == []


# -- batches, records, proofs -------------------------------------------------------------------


def test_a_submitted_batch_reads_back_with_its_records_and_proofs(ledger: CorpusLedger) -> None:
    register_bupt(ledger)
    submitted = ledger.submit_batch(
        institution_id="bupt",
        source_name="uploads/batch.jsonl",
        records=[RecordInput(canonical=canonical(i), source_line=i + 1) for i in range(3)],
        policy_version="test-1",
    )

    batch = ledger.batch(submitted.batch_id)
    assert (batch.status, batch.record_count, batch.source_name) == ("submitted", 3, "batch.jsonl")
    assert batch.merkle_root == submitted.merkle_root
    assert [b.batch_id for b in ledger.batches(institution_id="bupt")] == [submitted.batch_id]
    assert ledger.batches(institution_id="xidian") == []

    records = ledger.records(submitted.batch_id)
    assert [r.record_id for r in records] == submitted.record_ids
    assert [(r.index, r.source_line, r.status) for r in records] == [
        (0, 1, "pending"),
        (1, 2, "pending"),
        (2, 3, "pending"),
    ]
    assert ledger.record(submitted.record_ids[1]).record == canonical(1)

    bundle = ledger.proof(submitted.record_ids[2])
    assert bundle.root == submitted.merkle_root and bundle.tx_hash is None
    assert verify_offline(bundle).ok
    assert ledger.status().records_by_status == {"pending": 3}


def test_governed_records_filter_by_status(ledger: CorpusLedger) -> None:
    register_bupt(ledger)
    batch_id = submit(ledger)
    accepted = govern(ledger, batch_id)

    assert [r.record_id for r in ledger.records(batch_id, status="accepted")] == accepted
    (rejected,) = ledger.records(batch_id, status="rejected")
    assert rejected.reasons == ["off_topic"]
    assert ledger.batch(batch_id).accepted_count == 2


def test_unknown_batches_and_records_are_not_found(ledger: CorpusLedger) -> None:
    for read in (ledger.batch, ledger.batch_tree, ledger.batch_entries):
        with pytest.raises(NotFound, match="batch_missing"):
            read("batch_missing")
    with pytest.raises(NotFound, match="rec_missing"):
        ledger.record("rec_missing")


def test_the_feed_holds_accepted_records_of_anchored_batches_only(ledger: CorpusLedger) -> None:
    register_bupt(ledger)
    batch_id = submit(ledger, n=4)
    accepted = govern(ledger, batch_id)
    assert ledger.accepted_feed() == []  # governed, not anchored yet

    anchor(ledger, batch_id)

    feed = ledger.accepted_feed()
    assert [r.record_id for r, _ in feed] == accepted
    assert {b.tx_hash for _, b in feed} == {"0x" + "cd" * 32}
    theory = ledger.accepted_feed(disciplines=["information_theory"])
    assert [r.record["discipline"] for r, _ in theory if r.record] == ["information_theory"] * 2
    assert len(ledger.accepted_feed(limit=1)) == 1
    assert ledger.accepted_feed(institutions=["xidian"]) == []


# -- reads do not catch up ----------------------------------------------------------------------


def test_a_read_does_not_catch_up_with_the_log_on_its_own(
    ledger: CorpusLedger, files: Files, tmp_path: Path
) -> None:
    register_bupt(ledger)
    # A second ledger on the same log (its own state database) appends what the first has not seen.
    other = open_ledger(files.events, tmp_path / "other-state.db")
    try:
        other.sync()
        batch_id = submit(other)
        govern(other, batch_id)
        anchor(other, batch_id)
        request_training(other, "req-1")
    finally:
        close(other)

    before = ledger.status()
    assert before.head_position > max(before.projection_positions.values())
    assert ledger.pending_jobs(JobKind.TRAIN) == []
    assert ledger.accepted_feed() == []
    assert ledger.batches() == []
    assert before.batches_by_status == {}

    assert ledger.sync() > 0

    after = ledger.status()
    assert set(after.projection_positions.values()) == {after.head_position}
    assert ledger.pending_jobs(JobKind.TRAIN) == ["req-1"]
    assert [b.batch_id for _, b in ledger.accepted_feed()] == [batch_id, batch_id]
    assert after.batches_by_status == {"anchored": 1}


# -- outbox jobs --------------------------------------------------------------------------------


def test_pending_jobs_follow_each_batch_through_the_outbox(ledger: CorpusLedger) -> None:
    register_bupt(ledger)
    batch_id = submit(ledger)
    assert ledger.pending_jobs(JobKind.GOVERN) == [batch_id]
    assert ledger.pending_jobs(JobKind.ANCHOR) == []

    govern(ledger, batch_id, reward_wei=str(10**18))
    assert ledger.pending_jobs(JobKind.GOVERN) == []
    assert ledger.pending_jobs(JobKind.ANCHOR) == [batch_id]

    anchor(ledger, batch_id)
    assert ledger.pending_jobs(JobKind.REWARD) == [batch_id]
    assert ledger.status().pending_jobs == {"reward": 1}


def test_jobs_are_selected_by_their_status_enum(ledger: CorpusLedger) -> None:
    register_bupt(ledger)
    failed, done = submit(ledger), submit(ledger)
    govern(ledger, failed)
    govern(ledger, done)
    ledger.append(
        batch_stream(failed),
        [BatchAnchorFailed(batch_id=failed, error="RootAlreadyAnchored", detail="same root")],
    )
    anchor(ledger, done)

    with ledger.store.transaction() as conn:
        by_status = {status: list_jobs(conn, JobKind.ANCHOR, status=status) for status in JobStatus}
    assert by_status == {
        JobStatus.PENDING: [],
        JobStatus.DONE: [done],
        JobStatus.FAILED: [failed],
    }
    assert ledger.pending_jobs(JobKind.ANCHOR) == []
    status = ledger.status()
    assert status.failed_jobs == {"anchor": 1}
    assert status.batches_by_status == {"anchor_failed": 1, "anchored": 1}


def test_delivery_attempts_are_counted_per_job(ledger: CorpusLedger) -> None:
    assert ledger.note_attempt(JobKind.ANCHOR, "b1", error="node down") == 1
    assert ledger.note_attempt(JobKind.ANCHOR, "b1", error="still down") == 2
    assert ledger.note_attempt(JobKind.REWARD, "b1", error=None) == 1
    assert ledger.replay().equal  # attempts are operational data, outside the replayed state


# -- training requests and runs -----------------------------------------------------------------


def test_a_training_request_reads_back_with_every_field_of_its_event(
    ledger: CorpusLedger,
) -> None:
    event = request_training(ledger, "req-1")

    request = ledger.training_request("req-1")

    (envelope,) = ledger.log.read_stream(run_stream("request-req-1"))
    assert request == TrainingRequestView(
        **event.model_dump(include=set(TrainingRequestView.__slots__)),
        requested_at=envelope.occurred_at,
    )
    assert list(request.overrides) == ["training.max_steps", "lora.r"]  # in the order given
    assert ledger.pending_jobs(JobKind.TRAIN) == ["req-1"]
    with pytest.raises(NotFound, match="req-2"):
        ledger.training_request("req-2")


def test_requests_made_before_the_table_existed_are_projected_on_the_next_sync(
    files: Files,
) -> None:
    older = [p for p in default_projections() if not isinstance(p, TrainingRequestsProjection)]
    before = open_ledger(files.events, files.state, projections=older)
    request_training(before, "req-old")
    close(before)

    upgraded = open_ledger(files.events, files.state)
    try:
        with pytest.raises(NotFound):
            upgraded.training_request("req-old")
        upgraded.sync()
        assert upgraded.training_request("req-old").record_limit == 50
        report = upgraded.replay()
        assert report.equal and report.tables["training_requests"] == 1
    finally:
        close(upgraded)


def run_to_completion(ledger: CorpusLedger, run_id: str, request_id: str) -> None:
    ledger.append(
        run_stream(run_id),
        [
            TrainingRunCreated(
                run_id=run_id,
                recipe="knowledge_qa",
                method="lora",
                base_model="tiny",
                config={"request_id": request_id, "lora": {"r": 8, "alpha": 16.5}, "名": "値"},
            ),
            TrainingRunStarted(
                run_id=run_id, dataset_root="0x" + "01" * 32, train_records=9, validation_records=1
            ),
            TrainingRunCompleted(
                run_id=run_id,
                adapter_dir="/runs/r1",
                adapter_hash="0x" + "02" * 32,
                recipe_hash="0x" + "03" * 32,
                base_model_hash="0x" + "04" * 32,
                dataset_root="0x" + "01" * 32,
                final_loss=0.25,
            ),
        ],
    )


def test_a_training_run_view_gives_exactly_the_stored_row_as_a_dict(ledger: CorpusLedger) -> None:
    request_training(ledger, "req-1")
    run_to_completion(ledger, "run-1", "req-1")

    run = ledger.training_run("run-1")

    assert (run.status, run.final_loss, run.request_id) == ("completed", 0.25, "req-1")
    assert run.config["lora"] == {"r": 8, "alpha": 16.5}
    with ledger.store.transaction() as conn:
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM training_runs WHERE run_id = 'run-1'").fetchone()
        finally:
            conn.row_factory = None
    assert list(run.to_dict().items()) == list(dict(row).items())
    assert [r.to_dict() for r in ledger.training_runs()] == [run.to_dict()]
    assert ledger.pending_jobs(JobKind.TRAIN) == []
    assert ledger.pending_jobs(JobKind.ANCHOR_RUN) == ["run-1"]
    assert ledger.status().training_runs_by_status == {"completed": 1}
    with pytest.raises(NotFound, match="run-2"):
        ledger.training_run("run-2")


# -- balances -----------------------------------------------------------------------------------


def test_balances_are_typed_views_with_the_documented_dict(ledger: CorpusLedger) -> None:
    register_bupt(ledger)
    for batch_id, amount in ((submit(ledger), 10**18), (submit(ledger), 2 * 10**18)):
        ledger.append(
            batch_stream(batch_id),
            [
                ContributionRewarded(
                    batch_id=batch_id,
                    contribution_id=f"c-{batch_id}",
                    institution_id="bupt",
                    account=ACCOUNT,
                    amount_wei=str(amount),
                    academic_ref=batch_id,
                    chain_id=31338,
                    contract_address=CONTRACT,
                    tx_hash="0x" + "ef" * 32,
                    block_number=3,
                )
            ],
        )

    (balance,) = ledger.balances()

    assert balance.amount_wei == str(3 * 10**18)
    assert balance.to_dict() == {
        "account": ACCOUNT,
        "institution_id": "bupt",
        "amount_wei": str(3 * 10**18),
        "rewards": 2,
    }
    assert ledger.status().rewarded_wei_total == str(3 * 10**18)


def test_replay_of_every_projection_equals_the_live_state(ledger: CorpusLedger) -> None:
    register_bupt(ledger)
    batch_id = submit(ledger)
    govern(ledger, batch_id)
    anchor(ledger, batch_id)
    request_training(ledger, "req-1")
    run_to_completion(ledger, "run-1", "req-1")

    report = ledger.replay()

    assert report.equal, report.differences
    assert report.tables["training_requests"] == 1 and report.tables["training_runs"] == 1
