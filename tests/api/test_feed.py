"""``GET /v1/feed`` and ``GET /v1/feed/stream`` on a real embedded home, with another writer (its
own parts, as another process would) submitting, governing, anchoring and erasing meanwhile.

Governance decisions and anchors are appended as the events the pipeline's handlers append, so no
embedding model loads and the tests stay fast.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from api.routes import feed as feed_routes
from ledger.application import CorpusLedger
from ledger.batching import RecordInput
from ledger.events import BatchAnchored, BatchGoverned
from ledger.ids import batch_stream
from ledger.settings import LedgerSettings
from tests.homes import TestKeys, issue_keys

CONTRACT = "0x" + "22" * 20


def canonical(i: int, institution: str) -> dict[str, Any]:
    return {
        "instruction": f"Explain concept number {i} of channel coding.",
        "input": "",
        "output": f"Concept {i} concerns how redundancy lets a receiver correct errors.",
        "discipline": "information_theory" if i % 2 == 0 else "signal_processing",
        "task_type": "concept_explanation",
        "language": "en",
        "license": "CC-BY-4.0",
        "institution_id": institution,
    }


_counter = iter(range(10**6))


def add_batch(ledger: CorpusLedger, institution: str, *, n: int = 4) -> list[str]:
    """Submit ``n`` records, accept all but the last, anchor; returns the accepted ids."""
    start = next(_counter) * 100
    submitted = ledger.submit_batch(
        institution_id=institution,
        source_name="batch.jsonl",
        records=[
            RecordInput(canonical=canonical(start + i, institution), source_line=i + 1)
            for i in range(n)
        ],
        policy_version="test-1",
    )
    ids = submitted.record_ids
    ledger.append(
        batch_stream(submitted.batch_id),
        [
            BatchGoverned(
                batch_id=submitted.batch_id,
                institution_id=institution,
                policy_version="test-1",
                accepted_record_ids=ids[:-1],
                rejected={ids[-1]: ["off_topic"]},
                decisions=[],
                contribution_score=1.0,
                reward_wei="0",
            )
        ],
    )
    ledger.append(
        batch_stream(submitted.batch_id),
        [
            BatchAnchored(
                batch_id=submitted.batch_id,
                merkle_root=submitted.merkle_root,
                metadata_hash=submitted.metadata_hash,
                chain_id=31337,
                contract_address=CONTRACT,
                tx_hash="0x" + "cd" * 32,
                block_number=7,
            )
        ],
    )
    return ids[:-1]


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def writer(ledger_settings: LedgerSettings) -> Iterator[Parts]:
    """Another writer on the same home."""
    with Parts(ledger_settings) as parts:
        yield parts


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings, keys: TestKeys) -> Iterator[TestClient]:
    app = create_app(settings=ledger_settings, api_settings=ApiSettings())
    with TestClient(app, headers=keys.trainer) as client:
        yield client


def page_all(client: TestClient, *, limit: int = 3, **params: Any) -> list[dict[str, Any]]:
    cursor, out = "", []
    while True:
        body = client.get("/v1/feed", params={"cursor": cursor, "limit": limit, **params})
        assert body.status_code == 200, body.text
        page = body.json()
        out += page["entries"]
        cursor = page["next_cursor"]
        if page["at_head"]:
            return out


def test_paging_during_submissions_and_erasures_sees_each_record_once(
    client: TestClient, writer: Parts
) -> None:
    accepted: list[str] = []
    erased: list[str] = []
    failures: list[BaseException] = []
    done = threading.Event()
    turn = threading.Condition()
    pages_read = [0]
    assert client.get("/v1/feed", params={"limit": 1}).status_code == 200  # the key is verified

    def write() -> None:
        try:
            for round_ in range(8):
                # Interleave for sure: each round waits for the reader to read another page.
                with turn:
                    reached = pages_read[0] + 1
                    assert turn.wait_for(lambda r=reached: pages_read[0] >= r, timeout=30)
                accepted.extend(add_batch(writer.ledger, "bupt" if round_ % 2 else "xidian"))
                if round_ % 2:
                    victim = accepted[round_]
                    writer.ledger.erase(victim, reason="withdrawn", requested_by="bupt")
                    erased.append(victim)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen: dict[str, int] = {}
    tombstones: list[str] = []
    cursor = ""
    read_while_writing = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = done.is_set()  # read before the page: a page at the head after it is final
        page = client.get("/v1/feed", params={"cursor": cursor, "limit": 2}).json()
        if not done.is_set():
            read_while_writing += len(page["entries"])
        with turn:
            pages_read[0] += 1
            turn.notify_all()
        for entry in page["entries"]:
            if entry["type"] == "record":
                seen[entry["record_id"]] = seen.get(entry["record_id"], 0) + 1
            else:
                tombstones.append(entry["record_id"])
        cursor = page["next_cursor"]
        if finished and page["at_head"]:
            break
    thread.join()
    assert not failures, failures
    assert read_while_writing > 0
    mine = set(accepted)
    assert {k: v for k, v in seen.items() if k in mine and v != 1} == {}
    assert mine - set(erased) <= set(seen)  # every record still accepted was read, once
    assert sorted(t for t in tombstones if t in mine) == sorted(erased)  # each erasure, once
    mirror = {k for k in seen if k in mine} - set(tombstones)
    assert mirror == mine - set(erased)


def test_entries_have_the_documented_shape_and_no_salt(client: TestClient, writer: Parts) -> None:
    ids = add_batch(writer.ledger, "bupt")
    writer.ledger.erase(ids[0], reason="withdrawn", requested_by="bupt")
    response = client.get("/v1/feed", params={"limit": 1000})
    assert "salt" not in response.text
    entries = response.json()["entries"]
    live = next(e for e in entries if e["record_id"] == ids[1])
    assert set(live) == {
        "type",
        "position",
        "record_id",
        "batch_id",
        "leaf",
        "record",
        "discipline",
        "task_type",
        "language",
        "institution_id",
        "accepted_at",
    }
    assert live["record"]["output"].startswith("Concept")
    (tomb,) = [e for e in entries if e["record_id"] == ids[0]]
    assert tomb["type"] == "erased" and set(tomb) == {"type", "record_id", "position", "erased_at"}
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions)


def test_filters(client: TestClient, writer: Parts) -> None:
    add_batch(writer.ledger, "xidian")
    everything = page_all(client, limit=50)
    theory = page_all(client, discipline="information_theory")
    assert theory and {e["discipline"] for e in theory if e["type"] == "record"} == {
        "information_theory"
    }
    xidian = page_all(client, institution="xidian", limit=1000)
    assert {e["institution_id"] for e in xidian if e["type"] == "record"} == {"xidian"}
    assert page_all(client, language="zh") == []
    assert page_all(client, accepted_since="2999-01-01T00:00:00Z") == []
    assert page_all(client, accepted_since="2000-01-01") == everything


def test_who_may_read_the_feed(client: TestClient, keys: TestKeys, writer: Parts) -> None:
    add_batch(writer.ledger, "bupt")
    add_batch(writer.ledger, "xidian")
    assert client.get("/v1/feed", headers=keys.trainer).status_code == 200
    assert client.get("/v1/feed", headers=keys.admin).status_code == 403
    own = client.get("/v1/feed", headers=keys.bupt, params={"limit": 1000}).json()["entries"]
    assert own and {e.get("institution_id", "bupt") for e in own} == {"bupt"}
    assert {e["record_id"] for e in own if e["type"] == "record"} >= {
        e["record_id"] for e in page_all(client, institution="bupt") if e["type"] == "record"
    }
    other = client.get("/v1/feed", headers=keys.bupt, params={"institution": "xidian"})
    assert other.status_code == 403
    assert client.get("/v1/feed", headers=keys.auditor).status_code == 403
    assert client.get("/v1/feed/stream", headers=keys.auditor).status_code == 403
    assert client.get("/v1/feed", headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"cursor": "12abc"}, {}, "cursor"),
        ({"accepted_since": "last tuesday"}, {}, "accepted_since"),
        ({"institution": "Not A Slug"}, {}, "institution"),
        ({}, {"Last-Event-ID": "x-1"}, "Last-Event-ID"),
    ],
)
def test_bad_parameters_are_a_422_naming_the_field(
    client: TestClient, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    path = "/v1/feed/stream" if headers else "/v1/feed"
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert field.lower() in message.lower()
    for value in (*params.values(), *headers.values()):
        assert value not in message
    assert client.get("/v1/feed", params={"limit": 0}).status_code == 422


# -- the event stream -------------------------------------------------------------------------


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app served by uvicorn on a free local port, in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"
        sock.close()


def read_events(
    stream: httpx.Response, count: int, *, comments: list[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` events of an SSE response as ``(id, data)``."""
    events: list[tuple[str, dict[str, Any]]] = []
    event_id, data = "", ""
    for line in stream.iter_lines():
        if line.startswith(":"):
            if comments is not None:
                comments.append(line)
                if count == 0:
                    return events
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            events.append((event_id, json.loads(data)))
            event_id, data = "", ""
            if len(events) == count:
                return events
    raise AssertionError(f"the stream ended after {len(events)} of {count} events")


def test_the_stream_resumes_without_loss_after_a_dropped_connection(
    ledger_settings: LedgerSettings, keys: TestKeys, writer: Parts
) -> None:
    for institution in ("bupt", "xidian", "bupt"):
        add_batch(writer.ledger, institution)
    app = create_app(settings=ledger_settings, api_settings=ApiSettings())
    with serve(app) as base, httpx.Client(base_url=base, headers=keys.trainer, timeout=30) as http:
        before = http.get("/v1/feed", params={"limit": 1000}).json()
        total_before = len(before["entries"])
        assert total_before > 6
        with http.stream("GET", "/v1/feed/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = read_events(stream, total_before - 3)
        # Disconnected: the log grows; an erasure removes a record not streamed yet.
        not_streamed = [e["record_id"] for e in before["entries"][-3:] if e["type"] == "record"]
        writer.ledger.erase(not_streamed[0], reason="withdrawn", requested_by="bupt")
        add_batch(writer.ledger, "xidian")
        everything: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = http.get("/v1/feed", params={"cursor": cursor, "limit": 5}).json()
            everything += page["entries"]
            cursor = page["next_cursor"]
            if page["at_head"]:
                break
        resumed_from = first[-1][0]
        with http.stream("GET", "/v1/feed/stream", headers={"Last-Event-ID": resumed_from}) as s:
            rest = read_events(s, len(everything) - len(first))
        # The record erased before it was streamed comes as its tombstone only, as in the pages.
        assert [data for _, data in first + rest] == everything
        assert [e["type"] for _, e in rest].count("erased") == 1
        ids = [event_id for event_id, _ in first + rest]
        assert len(set(ids)) == len(ids)
        # The server is still healthy after the dropped connections.
        assert http.get("/v1/feed", params={"limit": 1}).status_code == 200


def test_an_idle_stream_sends_heartbeats(
    ledger_settings: LedgerSettings, keys: TestKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_routes, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(feed_routes, "POLL_SECONDS", 0.05)
    app = create_app(settings=ledger_settings, api_settings=ApiSettings())
    with serve(app) as base, httpx.Client(base_url=base, headers=keys.trainer, timeout=30) as http:
        head = http.get("/v1/feed", params={"limit": 1000}).json()
        while not head["at_head"]:
            head = http.get("/v1/feed", params={"cursor": head["next_cursor"]}).json()
        comments: list[str] = []
        with http.stream("GET", "/v1/feed/stream", params={"cursor": head["next_cursor"]}) as s:
            read_events(s, 0, comments=comments)
        assert comments == [": heartbeat"]


def test_a_stream_that_does_not_follow_ends_at_the_head(client: TestClient) -> None:
    everything = page_all(client, limit=1000)
    response = client.get("/v1/feed/stream", params={"follow": "false"})
    assert response.status_code == 200
    events = [
        json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
    ]
    assert events == everything
    ids = [line[3:].strip() for line in response.text.splitlines() if line.startswith("id:")]
    tail = client.get("/v1/feed/stream", params={"follow": "false", "cursor": ids[-2]})
    assert [json.loads(x[5:]) for x in tail.text.splitlines() if x.startswith("data:")] == [
        everything[-1]
    ]
