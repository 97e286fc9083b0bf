"""The Kafka backend against a real broker: the shared suite, then what only Kafka has.

Every test works on its own topic prefix, so tests never see each other's events.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.admin import NewPartitions

from ledger.eventlog import (
    ConcurrencyConflict,
    EventLog,
    EventLogURLError,
    IntegrityIssue,
    StreamAppend,
    open_event_log,
)
from ledger.eventlog.kafka import (
    Delivery,
    KafkaEventLog,
    KafkaLogConfig,
    KafkaUnavailable,
    kafka_url,
    parse_url,
)
from ledger.eventlog.kafka.broker import LocalBroker, _kafka_uuid, free_port, tools_available
from ledger.eventlog.kafka.broker_cli import main as broker_main
from ledger.eventlog.kafka.clients import new_admin, new_reader
from ledger.events import Envelope, Topic, envelope_hash
from ledger.faults import CRASH_ENV
from ledger.projections import ProjectionRunner, ProjectionStore
from tests.kafka_fixtures import (
    KafkaForTests,
    kafka_broker_fixture,  # noqa: F401 - provides the kafka_broker fixture
    new_prefix,
    start_local_broker,
)
from tests.ledger.eventlog_suite import EventLogSuite, notes, texts_of
from tests.ledger.test_projections_base import NoteCounter


@pytest.mark.kafka
class TestKafkaEventLog(EventLogSuite):
    bootstrap: str
    prefix: str

    @pytest.fixture(autouse=True)
    def _fresh_topics(self, kafka_broker: KafkaForTests) -> None:
        self.bootstrap = kafka_broker.bootstrap
        self.prefix = new_prefix()

    def create_log(self) -> EventLog:
        return open_event_log(kafka_url(self.bootstrap, prefix=self.prefix))

    def reopen_log(self) -> EventLog:
        return open_event_log(kafka_url(self.bootstrap, prefix=self.prefix))

    def url_for_other_processes(self) -> str:
        return kafka_url(self.bootstrap, prefix=self.prefix)

    # Every append is a Kafka transaction and every retry re-reads the stream head: keep the race
    # small enough to stay quick on a loaded broker.
    race_rounds = 6
    race_shared_appends = 8

    @pytest.mark.slow  # two processes starting Kafka clients: ~15 s, more on a loaded machine
    def test_two_processes_racing_have_one_winner_per_stream_and_lose_nothing(self) -> None:
        super().test_two_processes_racing_have_one_winner_per_stream_and_lose_nothing()


@pytest.fixture
def log(kafka_broker: KafkaForTests) -> Iterator[KafkaEventLog]:
    opened = open_event_log(kafka_broker.url(family_partitions=4))
    assert isinstance(opened, KafkaEventLog)
    yield opened
    opened.close()


# -- URLs and errors (no broker needed) -----------------------------------------------------------


def test_urls_round_trip_and_name_the_topics() -> None:
    config = parse_url("kafka://127.0.0.1:19092,127.0.0.1:29092?prefix=lab&family_partitions=3")
    assert config == KafkaLogConfig(
        bootstrap="127.0.0.1:19092,127.0.0.1:29092", prefix="lab", family_partitions=3
    )
    assert parse_url(config.url()) == config
    assert (config.log_topic, config.heads_topic) == ("lab.log", "lab.heads")
    assert config.family_topic(Topic.CORPUS) == "lab.corpus"
    named = parse_url("kafka://h:1?prefix=lab&writer=governance-0a1b")
    assert named.transactional_id == "lab.writer.governance-0a1b"
    assert parse_url(named.url()) == named
    assert config.transactional_id == "lab.writer.main"
    default = parse_url(kafka_url("localhost:9092"))
    assert default.family_topic(Topic.TRAINING) == Topic.TRAINING.value == "byr.training"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://", "names its brokers"),
        ("kafka://host", "not host:port"),
        ("kafka://h:1/path", "names its brokers"),
        ("kafka://h:1?partitions=3", "unknown kafka URL option"),
        ("kafka://h:1?family_partitions=many", "not a int"),
        ("kafka://h:1?prefix=no/slash", "prefix must be"),
        ("kafka://h:1?writer=no/slash", "writer must be"),
        ("kafka://h:1?writer=", "writer must be"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(EventLogURLError, match=message):
        open_event_log(url)


def test_an_unreachable_broker_is_a_retryable_error_naming_it() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match=address) as caught:
        open_event_log(f"kafka://{address}?timeout_s=1")
    assert caught.value.retryable
    assert caught.value.bootstrap == address
    assert time.monotonic() - started < 15


# -- Kafka specifics ----------------------------------------------------------------------------


@pytest.mark.kafka
def test_positions_are_log_offsets_plus_one_and_survive_in_projections(
    log: KafkaEventLog, tmp_path: Path
) -> None:
    log.append("batch-a", notes("a1", "a2"), expected_version=0)
    log.append("batch-b", notes("b1"), expected_version=0)
    everything = list(log.read_all())
    positions = [e.position for e in everything]
    # Each transaction ends with a commit marker that takes an offset: positions are sparse.
    assert positions == [1, 2, 4]
    assert log.head_position() == 4

    with ProjectionStore(tmp_path / "state.db") as store:
        runner = ProjectionRunner(log=log, store=store, projections=[NoteCounter()])
        assert runner.catch_up().position == 4
        log.append("batch-a", notes("a3"), expected_version=2)
        report = runner.catch_up()
        assert report.position == log.head_position()
        counts = dict(store.reader().execute("SELECT * FROM example_note_counts"))
    assert counts == {"batch-a": 3, "batch-b": 1}


@pytest.mark.kafka
def test_append_many_lands_in_family_topics_keyed_by_stream(log: KafkaEventLog) -> None:
    stored = log.append_many(
        [
            StreamAppend(f"batch-{i}", notes(f"n{i}-1", f"n{i}-2"), expected_version=0)
            for i in range(6)
        ]
    )
    with log.consume(group_id="reader", topics=[Topic.TRAINING]) as consumer:
        deliveries: list[Delivery] = []
        deadline = time.monotonic() + 30
        while len(deliveries) < len(stored) and time.monotonic() < deadline:
            deliveries.extend(consumer.poll(timeout=0.5))
    assert sorted(d.envelope.event_id for d in deliveries) == sorted(e.event_id for e in stored)
    by_id = {e.event_id: e for e in stored}
    partitions: dict[str, set[int]] = {}
    for d in deliveries:
        assert d.topic == log.config.family_topic(Topic.TRAINING)
        assert d.envelope == by_id[d.envelope.event_id]  # same fields, same hash
        partitions.setdefault(d.envelope.stream_id, set()).add(d.partition)
    assert all(len(p) == 1 for p in partitions.values())


@pytest.mark.kafka
def test_a_consumer_group_splits_partitions_and_commits_what_it_processed(
    log: KafkaEventLog,
) -> None:
    streams = [f"batch-{i}" for i in range(16)]
    received: dict[str, list[Envelope]] = {"left": [], "right": []}
    assigned: dict[str, set[tuple[str, int]]] = {"left": set(), "right": set()}
    stop = threading.Event()
    errors: queue.Queue[BaseException] = queue.Queue()

    def member(name: str) -> None:
        try:
            with log.consume(group_id="workers", topics=[Topic.TRAINING]) as consumer:
                while not stop.is_set():
                    for delivery in consumer.poll(timeout=0.1):
                        received[name].append(delivery.envelope)
                        delivery.commit()
                    assigned[name] = consumer.assignment()
        except BaseException as exc:
            errors.put(exc)

    threads = [threading.Thread(target=member, args=(n,)) for n in received]
    for t in threads:
        t.start()
    try:

        def split() -> bool:
            # Each member's view is read after its own poll, so one may still show the previous
            # generation's assignment for a moment: wait for a view that is a true split.
            left, right = assigned["left"], assigned["right"]
            return bool(left and right and not left & right and len(left | right) == 4)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and errors.empty() and not split():
            time.sleep(0.05)
        assert errors.empty(), errors.get()
        assert split(), assigned

        stored = []
        for stream_id in streams:
            stored += log.append(stream_id, notes("one", "two"), expected_version=0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(map(len, received.values())) < len(stored):
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors.empty(), errors.get()

    assert received["left"] and received["right"]
    got = [e.event_id for e in received["left"] + received["right"]]
    assert sorted(got) == sorted(e.event_id for e in stored)  # each exactly once
    for envelopes in received.values():
        for stream_id in {e.stream_id for e in envelopes}:
            assert [e.sequence for e in envelopes if e.stream_id == stream_id] == [1, 2]

    # Everything was committed: the group has nothing left, a new group replays it all.
    with log.consume(group_id="workers", topics=[Topic.TRAINING]) as again:
        assert all(not again.poll(timeout=0.5) for _ in range(6))
    with log.consume(group_id="auditors", topics=[Topic.TRAINING]) as fresh:
        replayed: list[str] = []
        deadline = time.monotonic() + 30
        while len(replayed) < len(stored) and time.monotonic() < deadline:
            replayed += [d.envelope.event_id for d in fresh.poll(timeout=0.5)]
    assert sorted(replayed) == sorted(got)


@pytest.mark.kafka
def test_a_member_takes_up_an_assignment_that_completed_between_polls(
    kafka_broker: KafkaForTests,
) -> None:
    """A rebalance that finishes while nobody waits on it is applied by the next poll.

    Adding partitions makes the only member (the group's leader) rejoin because its metadata
    changed, and polling without waiting lets that join finish between polls: kafka-python alone
    then leaves the member rebalancing for good (see ``ledger.eventlog.kafka.rejoin``).
    """
    log = open_event_log(kafka_broker.url(family_partitions=2))
    try:
        topic = log.config.family_topic(Topic.TRAINING)
        with log.consume(group_id="workers", topics=[Topic.TRAINING]) as consumer:
            deadline = time.monotonic() + 30
            while len(consumer.assignment()) < 2 and time.monotonic() < deadline:
                consumer.poll(timeout=0.1)
            assert consumer.assignment() == {(topic, 0), (topic, 1)}

            admin = new_admin(log.config)
            try:
                admin.create_partitions({topic: NewPartitions(total_count=4)})
            finally:
                admin.close()
            consumer._client().topics()  # fetch metadata now rather than in five minutes

            deadline = time.monotonic() + 30
            while len(consumer.assignment()) < 4 and time.monotonic() < deadline:
                consumer.poll(timeout=0)
                time.sleep(0.2)  # the join completes here, with nobody waiting for it
            assert consumer.assignment() == {(topic, p) for p in range(4)}
            log.append("batch-late", notes("after"), expected_version=0)
            got: list[str] = []
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                got += [d.envelope.stream_id for d in consumer.poll(timeout=0.2)]
            assert got == ["batch-late"]
    finally:
        log.close()


@pytest.mark.kafka
def test_records_written_around_the_writer_are_caught_by_verification(
    log: KafkaEventLog,
) -> None:
    log.append("batch-a", notes("a1", "a2"), expected_version=0)
    log.append("batch-b", notes("b1"), expected_version=0)
    (a1, a2) = log.read_stream("batch-a")
    assert log.verify_integrity().ok

    forged = a2.hashed_fields() | {"sequence": 3, "prev_hash": a2.hash, "event_id": "forged"}
    forged["payload"] = {"text": "forged", "tags": [], "extra": {}}
    edited = a1.hashed_fields() | {"payload": {"text": "edited", "tags": [], "extra": {}}}
    raw = KafkaProducer(bootstrap_servers=log.config.bootstrap)
    try:
        for fields, digest in ((forged, envelope_hash(forged)), (edited, a1.hash)):
            value = json.dumps(fields | {"hash": digest}).encode()
            raw.send(log.config.log_topic, key=b"batch-a", value=value, partition=0).get(30)
        raw.send(log.config.log_topic, key=b"batch-b", value=b"{not json", partition=0).get(30)
    finally:
        raw.close()

    report = log.verify_integrity()
    assert report.issues() == {
        IntegrityIssue.HEAD_MISMATCH,  # batch-a: events go past the recorded head
        IntegrityIssue.HASH_MISMATCH,  # the edited copy of a1
        IntegrityIssue.SEQUENCE_GAP,  # ... which repeats sequence 1
        IntegrityIssue.BROKEN_LINK,
        IntegrityIssue.UNREADABLE,  # the garbage record
    }
    assert {p.stream_id for p in report.problems} == {"batch-a", "batch-b"}


@pytest.mark.kafka
def test_a_fresh_writers_first_appends_are_readable_at_once_without_a_producer_restart(
    kafka_broker: KafkaForTests,
) -> None:
    url = kafka_broker.url()
    with open_event_log(url) as reader:
        for n in range(3):
            with open_event_log(url.replace("prefix=", f"writer=fresh{n}&prefix=")) as log:
                assert isinstance(log, KafkaEventLog)
                assert log.config.writer == f"fresh{n}"
                (stored,) = log.append(f"batch-{n}", notes(f"n{n}"), expected_version=0)
                assert stored.event_id in {e.event_id for e in reader.read_all()}
                assert (log.writer.transactions, log.writer.fencings) == (1, 0)


# -- writers in several processes ---------------------------------------------------------------

RACE_STREAMS = 3
RACE_APPENDS = 12
RACE_CREATES = 4


def _racing_writer(url: str, name: str, writer: str, go: Any, results: Any) -> None:
    """A writer process named ``writer``: appends ``RACE_APPENDS`` notes over the shared streams
    (each retried on a conflict) and races to create ``batch-new-R``; puts what happened on
    ``results``."""
    outcome: dict[str, Any] = {"name": name, "conflicts": 0, "wins": [], "lost": [], "other": []}
    try:
        with open_event_log(f"{url}&writer={writer}") as log:
            assert isinstance(log, KafkaEventLog)
            log.stream_version("batch-warmup")
            results.put(("ready", name))
            go.wait(60)
            for i in range(RACE_APPENDS):
                stream_id = f"batch-shared-{i % RACE_STREAMS}"
                while True:
                    try:
                        version = log.stream_version(stream_id)
                        log.append(stream_id, notes(f"{name}-{i}"), expected_version=version)
                        break
                    except ConcurrencyConflict:
                        outcome["conflicts"] += 1
                if i < RACE_CREATES:
                    try:
                        log.append(f"batch-new-{i}", notes(name), expected_version=0)
                        outcome["wins"].append(i)
                    except ConcurrencyConflict:
                        outcome["lost"].append(i)
            outcome["fenced"] = log.writer.fenced
            outcome["transactions"] = log.writer.transactions
    except BaseException as exc:
        outcome["other"].append(repr(exc))
    results.put(("done", outcome))


def _race(url: str, writers: dict[str, str]) -> list[dict[str, Any]]:
    """Run one :func:`_racing_writer` process per ``name: writer name``; their outcomes."""
    names = list(writers)
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    results = context.Queue()
    children = [
        context.Process(target=_racing_writer, args=(url, name, writers[name], go, results))
        for name in names
    ]
    for child in children:
        child.start()
    try:
        ready = [results.get(timeout=120) for _ in children]
        assert sorted(r[1] for r in ready) == sorted(names), ready
        go.set()
        done = [results.get(timeout=240) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    return [outcome for _, outcome in done]


@pytest.mark.kafka
@pytest.mark.slow
def test_writers_with_their_own_names_append_side_by_side_without_fencing(
    kafka_broker: KafkaForTests,
) -> None:
    prefix = new_prefix()
    names = ["alpha", "beta"]
    outcomes = _race(kafka_broker.url(prefix), {n: n for n in names})
    outcomes = sorted(outcomes, key=lambda o: str(o["name"]))
    assert [o["other"] for o in outcomes] == [[], []]
    # Distinct names never take each other's transactional id.
    assert [o["fenced"] for o in outcomes] == [0, 0]
    with open_event_log(kafka_broker.url(prefix)) as log:
        for r in range(RACE_STREAMS):
            stored = list(log.read_stream(f"batch-shared-{r}"))
            assert [e.sequence for e in stored] == list(range(1, len(stored) + 1))
        texts = [
            text
            for r in range(RACE_STREAMS)
            for text in texts_of(list(log.read_stream(f"batch-shared-{r}")))
        ]
        assert sorted(texts) == sorted(f"{n}-{i}" for n in names for i in range(RACE_APPENDS))
        for r in range(RACE_CREATES):
            winners = [o["name"] for o in outcomes if r in o["wins"]]
            losers = [o["name"] for o in outcomes if r in o["lost"]]
            assert len(winners) == 1 and len(losers) == 1, (r, winners, losers)
            (created,) = log.read_stream(f"batch-new-{r}")
            assert texts_of([created]) == winners
        assert log.verify_integrity().ok


@pytest.mark.kafka
@pytest.mark.slow
def test_writers_sharing_a_name_fence_each_other_and_still_lose_nothing(
    kafka_broker: KafkaForTests,
) -> None:
    """The contrast: one name in two processes is one transactional id, taken in turns."""
    prefix = new_prefix()
    outcomes = _race(kafka_broker.url(prefix), {"p1": "same", "p2": "same"})
    assert [o["other"] for o in outcomes] == [[], []]
    assert sum(o["fenced"] for o in outcomes) > 0
    with open_event_log(kafka_broker.url(prefix)) as log:
        for r in range(RACE_STREAMS):
            stored = list(log.read_stream(f"batch-shared-{r}"))
            assert [e.sequence for e in stored] == list(range(1, len(stored) + 1))
        assert sum(len(list(log.read_stream(f"batch-shared-{r}"))) for r in range(3)) == (
            2 * RACE_APPENDS
        )
        assert log.verify_integrity().ok


def _crashing_writer(url: str) -> None:
    """Dies (SIGKILL) inside its append, after writing heads and envelopes, before committing."""
    os.environ[CRASH_ENV] = "kafka.append.before_commit"
    with open_event_log(url) as log:
        log.append("batch-crash", notes("lost"), expected_version=1)


@pytest.mark.kafka
@pytest.mark.slow
def test_a_writer_killed_mid_transaction_is_aborted_when_it_restarts_under_its_name(
    kafka_broker: KafkaForTests,
) -> None:
    # The broker would abort the open transaction only after a minute: a restart must not wait.
    url = kafka_broker.url(writer="worker-1", transaction_timeout_s=60)
    with open_event_log(url) as log:
        (first,) = log.append("batch-crash", notes("kept"), expected_version=0)
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_crashing_writer, args=(url,))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL

    # Its records are in the topics, uncommitted: they hold back what readers see ...
    with open_event_log(url.replace("worker-1", "reader")) as reader:
        assert isinstance(reader, KafkaEventLog)
        raw = new_reader(reader.config, read_committed=False)
        try:
            tp = TopicPartition(reader.config.log_topic, 0)
            assert raw.end_offsets([tp])[tp] > reader.head_position()
        finally:
            raw.close()

    # ... until the writer starts again under its name: that aborts the transaction at once.
    started = time.monotonic()
    with open_event_log(url) as log:
        (second,) = log.append("batch-crash", notes("after"), expected_version=1)
        assert time.monotonic() - started < 30
        assert texts_of(list(log.read_stream("batch-crash"))) == ["kept", "after"]
        assert [e.event_id for e in log.read_all()] == [first.event_id, second.event_id]
        assert second.prev_hash == first.hash
        assert log.verify_integrity().ok
    # Another writer's turn comes right after.
    with open_event_log(url.replace("worker-1", "worker-2")) as other:
        other.append("batch-crash", notes("other"), expected_version=2)
        assert other.stream_version("batch-crash") == 3


# -- a broker restart ----------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.slow
def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
    kafka_broker: KafkaForTests, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Restart the session's broker when this session started it; else start one of our own.
    broker = kafka_broker.local
    if broker is None:
        missing = tools_available()
        if missing:
            pytest.skip(f"cannot restart the broker at {kafka_broker.bootstrap}: {missing}")
        broker = start_local_broker(tmp_path_factory.mktemp("restart"))
    try:
        _write_through_a_restart(broker)
    finally:
        if kafka_broker.local is None:
            broker.down()


def _write_through_a_restart(broker: LocalBroker) -> None:
    url = f"kafka://{broker.bootstrap}?prefix={new_prefix()}&timeout_s=90"
    acknowledged: list[Envelope] = []
    failures: list[BaseException] = []
    reads: list[int] = []
    stop = threading.Event()

    with open_event_log(url) as log, open_event_log(url) as reader_log:

        def writer() -> None:
            i = 0
            while not stop.is_set():
                stream_id = f"batch-{i % 5}"
                try:
                    version = log.stream_version(stream_id)
                    acknowledged.extend(
                        log.append(stream_id, notes(f"n{i}"), expected_version=version)
                    )
                    i += 1
                except BaseException as exc:
                    failures.append(exc)
                    return

        def reader() -> None:
            # A second handle (as another process would have) keeps reading: reads wait for the
            # broker to come back instead of failing, and see a growing log.
            while not stop.is_set():
                try:
                    head = reader_log.head_position()
                    count = sum(1 for _ in reader_log.read_all())
                    reader_log.stream_version("batch-0")
                    assert not reads or count >= reads[-1], (count, reads[-1])
                    assert head <= reader_log.head_position()
                    reads.append(count)
                except BaseException as exc:
                    failures.append(exc)
                    return
                time.sleep(0.1)

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        try:
            _wait_until(lambda: len(acknowledged) >= 20, timeout=60)
            broker.restart(timeout_s=180)
            after_restart = len(acknowledged)
            _wait_until(lambda: len(acknowledged) >= after_restart + 20 or bool(failures), 120)
            reads_after = len(reads)
            _wait_until(lambda: len(reads) > reads_after + 2 or bool(failures), 120)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
        assert not failures, failures
        assert not any(thread.is_alive() for thread in threads)

        stored = list(log.read_all())
        assert [e.event_id for e in stored] == [e.event_id for e in acknowledged]
        assert [e.position for e in stored] == [e.position for e in acknowledged]
        report = log.verify_integrity()
        assert report.ok, report.problems


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the local broker's command line ------------------------------------------------------------


def test_broker_status_and_down_without_a_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--home", str(tmp_path), "--port", str(free_port()), "--controller-port", "1"]
    assert broker_main(["status", *args]) == 3
    assert broker_main(["down", *args]) == 0
    assert capsys.readouterr().out.splitlines() == ["not running", "not running"]


@pytest.mark.kafka
def test_broker_up_is_idempotent_and_status_reports_it(
    kafka_broker: KafkaForTests, capsys: pytest.CaptureFixture[str]
) -> None:
    if kafka_broker.local is None:
        pytest.skip("the session uses a broker it did not start")
    config = kafka_broker.local.config
    args = [
        "--home",
        str(config.home),
        "--port",
        str(config.port),
        "--controller-port",
        str(config.controller_port),
    ]
    started = time.monotonic()
    assert broker_main(["up", *args]) == 0
    assert time.monotonic() - started < 10
    assert broker_main(["status", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == kafka_broker.bootstrap
    assert out[1].startswith("running pid=") and out[1].endswith(kafka_broker.bootstrap)


def test_cluster_ids_are_never_taken_for_an_option() -> None:
    # One random id in 64 starts with "-", which the storage tool reads as an option.
    ids = [_kafka_uuid() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
