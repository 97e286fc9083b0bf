"""The Kafka record store against a real broker: bodies travel between processes' local copies,
and an erased body leaves the topic's files on the broker and the local SQLite files.

Every test works on its own topic prefix. The broker-file test reads the broker's data folder, so
it needs the broker this session started (not one named by ``BYR_TEST_KAFKA``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.admin import ConfigResource

from ledger.eventlog.kafka import parse_url
from ledger.eventlog.kafka.broker import free_port
from ledger.eventlog.kafka.clients import close_quietly, new_admin
from ledger.recordstore import RecordBody, RecordStoreError
from ledger.recordstore.kafka import RECORDS_TOPIC_CONFIGS, KafkaRecordStore, records_topic
from tests.kafka_fixtures import (
    KafkaForTests,
    kafka_broker_fixture,  # noqa: F401 - provides the kafka_broker fixture
)

CLEANED_WITHIN_S = 60
"""How long the broker may take to drop an erased body from its files (about 3 s is usual:
the roll inside ``erase``, the cleaner's 1 s back-off, the 1 s file deletion delay)."""


def new_body(batch_id: str = "batch-erasure") -> RecordBody:
    text = f"erasable text {uuid.uuid4().hex} for the record store"
    return RecordBody(
        record_id=f"rec-{uuid.uuid4().hex[:16]}",
        batch_id=batch_id,
        record={"text": text, "lang": "en"},
        salt="0x" + secrets.token_hex(32),
        record_hash="0x" + hashlib.sha256(text.encode()).hexdigest(),
    )


def needles(body: RecordBody) -> dict[str, bytes]:
    """The bytes that must not survive an erasure: text, salt and hash (hex without ``0x``)."""
    return {
        "text": body.record["text"].encode(),
        "salt": body.salt.removeprefix("0x").encode(),
        "record_hash": body.record_hash.removeprefix("0x").encode(),
    }


def _data(path: Path) -> bytes:
    """The file's bytes, skipping holes: the broker preallocates sparse 10 MB index files."""
    with open(path, "rb") as file:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        parts: list[bytes] = []
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            os.lseek(fd, start, os.SEEK_SET)
            parts.append(os.read(fd, end - start))
            offset = end
        return b"".join(parts)


def files_holding(paths: list[Path], wanted: dict[str, bytes]) -> dict[str, list[str]] | None:
    """Which of ``paths`` hold each of ``wanted``; ``None`` when a file vanished mid-scan (the
    broker renames and deletes segments while it cleans), so the scan proves nothing."""
    hits: dict[str, list[str]] = {}
    for path in paths:
        try:
            data = _data(path)
        except FileNotFoundError:
            return None
        for name, needle in wanted.items():
            if needle in data:
                hits.setdefault(name, []).append(str(path))
    return hits


def broker_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def wait_until_gone(root: Path, wanted: dict[str, bytes]) -> dict[str, list[str]] | None:
    """Scan the broker's files until none holds any of ``wanted`` (``{}``), for at most
    :data:`CLEANED_WITHIN_S`; the last scan's hits otherwise."""
    deadline = time.monotonic() + CLEANED_WITHIN_S
    while True:
        hits = files_holding(broker_files(root), wanted)
        if hits == {} or time.monotonic() > deadline:
            return hits
        time.sleep(0.5)


def sqlite_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


@pytest.fixture
def url(kafka_broker: KafkaForTests) -> str:
    return kafka_broker.url()


OpenStore = Callable[[str], KafkaRecordStore]


@pytest.fixture
def open_store(url: str, tmp_path: Path) -> Iterator[OpenStore]:
    """Open a store on the test's topic as a process with its own home named ``name`` would."""
    opened: list[KafkaRecordStore] = []

    def open_(name: str) -> KafkaRecordStore:
        store = KafkaRecordStore.open(url, local_path=tmp_path / name / "records.db")
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


# -- without a broker ----------------------------------------------------------------------------


def test_an_unreachable_broker_is_a_record_store_error_naming_it(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(RecordStoreError, match=address) as caught:
        KafkaRecordStore.open(f"kafka://{address}?timeout_s=1", local_path=tmp_path / "r.db")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert time.monotonic() - started < 15


def test_a_bad_url_is_a_record_store_error(tmp_path: Path) -> None:
    with pytest.raises(RecordStoreError, match="not host:port"):
        KafkaRecordStore.open("kafka://nowhere", local_path=tmp_path / "r.db")


# -- against the broker --------------------------------------------------------------------------


@pytest.mark.kafka
def test_the_topic_is_created_once_compacted_with_the_documented_settings(
    url: str, tmp_path: Path
) -> None:
    errors: list[BaseException] = []

    def open_and_close(name: str) -> None:
        try:
            KafkaRecordStore.open(url, local_path=tmp_path / name / "records.db").close()
        except BaseException as exc:
            errors.append(exc)

    # Processes starting together race to create the topic: every one of them opens it.
    threads = [threading.Thread(target=open_and_close, args=(f"p{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors

    config = parse_url(url)
    admin = new_admin(config)
    try:
        topic = records_topic(config)
        described = admin.describe_configs([ConfigResource("TOPIC", topic)], config_filter="all")
        partitions = admin.describe_topics([topic])[0]["partitions"]
    finally:
        close_quietly(admin)
    settings = {k: v["value"] for k, v in described["topic"][topic].items()}
    assert {k: settings[k] for k in RECORDS_TOPIC_CONFIGS} == RECORDS_TOPIC_CONFIGS
    assert len(partitions) == config.family_partitions


@pytest.mark.kafka
def test_bodies_travel_between_local_copies_and_erasure_reaches_every_copy(
    open_store: OpenStore,
) -> None:
    a, b = open_store("a"), open_store("b")
    bodies = [new_body() for _ in range(6)]
    ids = [x.record_id for x in bodies]
    a.put_many(bodies)
    assert a.get_many(ids) == {x.record_id: x for x in bodies}
    assert b.get_many(ids) == {}  # reads never go to the brokers by themselves
    b.refresh()
    assert b.get_many(ids) == {x.record_id: x for x in bodies}

    erased, kept = bodies[0], bodies[1:]
    assert a.erase([erased.record_id, "rec-never-stored"]) == [erased.record_id]
    assert a.get(erased.record_id) is None
    assert b.get(erased.record_id) == erased  # until it catches up
    b.refresh()
    assert b.get_many(ids) == {x.record_id: x for x in kept}
    assert b.erase([erased.record_id]) == []  # its copy is already gone

    # A store erases what only the topic holds (its copy has not caught up): the others drop it.
    c = open_store("c")
    assert c.erase([kept[0].record_id]) == []
    a.refresh()
    assert a.get(kept[0].record_id) is None
    kept = kept[1:]

    # A process that starts afterwards reads bodies and tombstones in one pass: it never writes
    # an erased body, not even for a moment.
    d = open_store("d")
    d.refresh()
    assert d.get_many(ids) == {x.record_id: x for x in kept}
    gone = needles(erased) | {f"c-{k}": v for k, v in needles(bodies[1]).items()}
    assert files_holding(sqlite_files(d.local_path), gone) == {}

    # forget_local drops this process's copy only; the topic still has the body for others.
    assert d.forget_local([kept[0].record_id]) == [kept[0].record_id]
    assert d.get(kept[0].record_id) is None
    fresh = open_store("e")
    fresh.refresh()
    assert fresh.get(kept[0].record_id) == kept[0]


@pytest.mark.kafka
def test_an_erased_body_leaves_every_file_of_the_broker(
    kafka_broker: KafkaForTests, open_store: OpenStore
) -> None:
    if kafka_broker.local is None:
        pytest.skip("the broker was not started by this session: its files cannot be read")
    root = kafka_broker.local.config.data_dir
    store = open_store("a")
    bodies = [new_body() for _ in range(4)]
    store.put_many(bodies)
    erased, kept = bodies[0], bodies[1:]
    gone = needles(erased)
    stay = {f"{k}-{i}": v for i, x in enumerate(kept) for k, v in needles(x).items()}

    # The broker has the bytes in its files once put_many returned: the scan can see them.
    before = files_holding(broker_files(root), gone)
    assert before is not None and set(before) == set(gone), before

    started = time.monotonic()
    store.erase([erased.record_id])
    erase_s = time.monotonic() - started
    hits = wait_until_gone(root, gone)
    assert hits == {}, (
        f"{time.monotonic() - started:.0f} s after the erasure the broker's files still hold "
        f"the erased body: {hits}"
    )
    cleaned_s = time.monotonic() - started
    remaining = files_holding(broker_files(root), stay)
    assert remaining is not None and set(remaining) == set(stay), remaining
    print(f"erase returned after {erase_s:.1f} s; broker files clean after {cleaned_s:.1f} s")


@pytest.mark.kafka
def test_in_a_compacted_partition_max_compaction_lag_bounds_an_erased_body(
    kafka_broker: KafkaForTests, tmp_path: Path
) -> None:
    """Once a partition has been compacted, one more tombstone leaves its dirty ratio far below
    ``min.cleanable.dirty.ratio``: ``max.compaction.lag.ms`` (15 min; 4 s on this test's topic)
    is what makes the cleaner come back for it."""
    if kafka_broker.local is None:
        pytest.skip("the broker was not started by this session: its files cannot be read")
    root = kafka_broker.local.config.data_dir
    store = KafkaRecordStore.open(
        kafka_broker.url(family_partitions=1), local_path=tmp_path / "records.db"
    )
    try:
        bodies = [new_body() for _ in range(200)]
        store.put_many(bodies)
        first, second = bodies[0], bodies[1]
        store.erase([first.record_id])
        assert wait_until_gone(root, needles(first)) == {}  # the first cleaning: dirty ratio 1

        admin = new_admin(store.config)
        try:
            admin.alter_configs(
                [ConfigResource("TOPIC", store.topic, configs={"max.compaction.lag.ms": "4000"})]
            )
        finally:
            close_quietly(admin)
        started = time.monotonic()
        store.erase([second.record_id])
        hits = wait_until_gone(root, needles(second))
        assert hits == {}, f"the broker's files still hold the erased body: {hits}"
        print(f"compacted partition: broker files clean after {time.monotonic() - started:.1f} s")
    finally:
        store.close()


@pytest.mark.kafka
def test_an_erased_body_leaves_the_local_sqlite_files(
    open_store: OpenStore,
) -> None:
    a, b = open_store("a"), open_store("b")
    bodies = [new_body() for _ in range(5)]
    a.put_many(bodies)
    b.refresh()
    erased, kept = bodies[2], bodies[:2] + bodies[3:]
    gone = needles(erased)
    stay = {f"{k}-{i}": v for i, x in enumerate(kept) for k, v in needles(x).items()}
    for store in (a, b):
        held = files_holding(sqlite_files(store.local_path), gone)
        assert held is not None and set(held) == set(gone), held

    assert a.erase([erased.record_id]) == [erased.record_id]
    b.refresh()
    assert b.get(erased.record_id) is None
    for store in (a, b):
        files = sqlite_files(store.local_path)
        assert files_holding(files, gone) == {}, f"erased bytes left in {files}"
        remaining = files_holding(files, stay)
        assert remaining is not None and set(remaining) == set(stay)
