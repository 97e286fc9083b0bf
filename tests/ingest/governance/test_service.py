"""The governance service on a shared event log: two workers, each with its own projections and
near-duplicate index (as on two machines), decide batches as if one process had decided them all.

The workers are real :class:`GovernanceService` instances over one SQLite log; the race is made
deterministic by letting the first worker decide in the middle of the second worker's decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.governance.dedup import DedupIndex
from ingest.governance.embeddings import Embedder
from ingest.governance.engine import Assessment, BatchGovernance, GovernanceEngine
from ingest.governance.policy import load_policy
from ingest.governance.service import GovernanceService
from ledger.application import CorpusLedger
from ledger.batching import RecordInput
from ledger.eventlog import open_event_log
from ledger.events import BatchGoverned, CorpusIndexExtended, decode
from ledger.ids import CORPUS_INDEX_STREAM, batch_stream
from ledger.projections.base import ProjectionStore
from ledger.projections.outbox import JobKind
from ledger.recordstore import SqliteRecordStore

HANDSHAKE = (
    "The three-way handshake lets both ends agree on initial sequence numbers before data "
    "flows. The client sends a SYN with its sequence number, the server answers with a "
    "SYN-ACK that acknowledges it and carries its own, and the client acknowledges that in "
    "turn. Two messages would not let the server confirm that the client received its "
    "sequence number, and old duplicate SYN segments could open stale connections."
)
WINDOW = (
    "TCP flow control keeps a fast sender from overrunning a slow receiver. Every segment the "
    "receiver sends advertises a receive window, the free space left in its buffer, and the "
    "sender keeps the bytes in flight below that window. When the window reaches zero the "
    "sender stops and probes periodically until the receiver advertises space again."
)


def record(instruction: str, output: str) -> RecordInput:
    return RecordInput(
        canonical={
            "instruction": instruction,
            "input": "",
            "output": output,
            "discipline": "computer_networks",
            "task_type": "concept_explanation",
            "language": "en",
            "license": "CC-BY-4.0",
            "institution_id": "bupt",
        },
        source_line=1,
    )


ORIGINAL = record("Why does TCP use a three-way handshake to open a connection?", HANDSHAKE)
REWORDED = record(
    "Why does TCP open a connection with a three-way handshake?",
    HANDSHAKE.replace("lets both ends agree", "allows both ends to agree"),
)
NOVEL = record("How does TCP flow control work?", WINDOW)


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    embedder = Embedder()
    yield embedder
    embedder.close()


@dataclass
class Worker:
    ledger: CorpusLedger
    service: GovernanceService

    def decisions(self, batch_id: str) -> BatchGoverned:
        (event,) = [
            decode(e)
            for e in self.ledger.log.read_stream(batch_stream(batch_id))
            if e.event_type == BatchGoverned.event_type
        ]
        assert isinstance(event, BatchGoverned)
        return event


@pytest.fixture
def workers(tmp_path: Path, embedder: Embedder) -> Iterator[list[Worker]]:
    """Two workers on one log, each with its own projection store and index."""
    policy = load_policy()
    started: list[Worker] = []

    def worker(name: str) -> Worker:
        home = tmp_path / name
        home.mkdir()
        log = open_event_log(f"sqlite:///{tmp_path / 'events.db'}")
        # One log and one record store, as in an embedded home; each its own state and index.
        ledger = CorpusLedger(
            log=log,
            store=ProjectionStore(home / "state.db"),
            records=SqliteRecordStore(tmp_path / "records.db"),
        )
        index = DedupIndex(home / "dedup.sqlite", embedder=embedder, config=policy.dedup_config())
        engine = GovernanceEngine(policy=policy, embedder=embedder, dedup_index=index)
        started.append(Worker(ledger, GovernanceService(ledger=ledger, engine=engine)))
        return started[-1]

    first = worker("a")
    first.ledger.register_institution(institution_id="bupt", name="BUPT", account="0x" + "1" * 40)
    worker("b")
    yield started
    for w in started:
        w.service.engine.dedup_index.close()
        w.ledger.log.close()
        w.ledger.store.close()


def submit(worker: Worker, *records: RecordInput) -> str:
    return worker.ledger.submit_batch(
        institution_id="bupt", source_name="batch.json", records=list(records), policy_version="t"
    ).batch_id


def test_a_worker_sees_records_another_worker_accepted(workers: list[Worker]) -> None:
    a, b = workers
    first = submit(a, ORIGINAL)
    second = submit(a, REWORDED, NOVEL)
    assert a.service.govern_batch(first) == {"accepted": 1, "rejected": 0}
    # b never governed `first` and its index file is empty: it learns the record from the log.
    assert len(b.service.engine.dedup_index) == 0
    assert b.service.govern_batch(second) == {"accepted": 1, "rejected": 1}
    decided = {d["record_id"]: d for d in b.decisions(second).decisions}
    reworded, novel = (decided[e.record_id] for e in b.ledger.batch_entries(second))
    assert reworded["reasons"] == ["near_duplicate"]
    assert reworded["duplicate_of"] == a.decisions(first).accepted_record_ids[0]
    assert novel["accepted"] is True


def test_a_decision_raced_by_another_worker_is_taken_again(
    workers: list[Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = workers
    first = submit(a, ORIGINAL)
    second = submit(a, REWORDED, NOVEL)
    b.ledger.sync()
    real_decide = b.service.engine.decide
    calls: list[BatchGovernance] = []

    def decide_while_a_commits(assessment: Assessment) -> BatchGovernance:
        decided = real_decide(assessment)
        if not calls:
            # b has decided against an index without ORIGINAL (it would accept the copy);
            # a commits its decision before b appends.
            a.service.govern_batch(first)
        calls.append(decided)
        return decided

    monkeypatch.setattr(b.service.engine, "decide", decide_while_a_commits)
    b.service.govern_batch(second)

    stale, final = calls
    assert len(stale.accepted_record_ids) == 2, "the first decision should have missed the copy"
    assert len(final.accepted_record_ids) == 1
    governed = b.decisions(second)
    assert governed.accepted_record_ids == final.accepted_record_ids
    assert list(governed.rejected.values()) == [["near_duplicate"]]
    # The corpus-index stream holds both extensions, in the order they were decided.
    extended = [decode(e) for e in a.ledger.log.read_stream(CORPUS_INDEX_STREAM)]
    assert [e.batch_id for e in extended if isinstance(e, CorpusIndexExtended)] == [
        first,
        second,
    ]
    assert not b.ledger.pending_jobs(JobKind.GOVERN)


def test_the_index_is_rebuilt_from_the_log(workers: list[Worker], tmp_path: Path) -> None:
    a, b = workers
    first = submit(a, ORIGINAL, NOVEL)
    a.service.govern_batch(first)
    accepted = set(a.decisions(first).accepted_record_ids)
    assert len(accepted) == 2
    # A third worker with nothing on disk (a new machine, or a lost index file).
    b.service.engine.dedup_index.close()
    fresh = DedupIndex(tmp_path / "c.sqlite", embedder=None, config=load_policy().dedup_config())
    b.service.engine.dedup_index = fresh
    assert b.service.sync_index() == a.ledger.log.stream_version(CORPUS_INDEX_STREAM) == 1
    assert all(record_id in fresh for record_id in accepted)
    assert fresh.position == 1
    # Catching up again adds nothing.
    assert b.service.sync_index() == 1
    assert len(fresh) == 2


def test_a_record_erased_anywhere_leaves_every_worker_index(workers: list[Worker]) -> None:
    a, b = workers
    first = submit(a, ORIGINAL)
    assert a.service.govern_batch(first) == {"accepted": 1, "rejected": 0}
    b.service.sync_index()
    (record_id,) = [r.record_id for r in a.ledger.records(first)]
    assert record_id in b.service.engine.dedup_index

    a.ledger.erase(record_id, reason="withdrawn", requested_by="bupt")
    b.service.sync_index()  # b's next step follows the erasure it reads from the log
    assert record_id not in b.service.engine.dedup_index
    # A copy of the erased text is novel again: nothing of the original is left to match.
    again = submit(b, ORIGINAL)
    assert b.service.govern_batch(again) == {"accepted": 1, "rejected": 0}
