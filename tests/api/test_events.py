"""``GET /v1/events/stream`` and ``GET /v1/events/throughput`` on a real embedded home, with another
writer (its own parts, as another process would) submitting, governing and anchoring meanwhile.

Governance decisions and anchors are appended as the events the pipeline's handlers append (as in
``tests/api/test_feed.py``), so no embedding model loads and the tests stay fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from api.routes import events as event_routes
from api.services.events import EventService
from api.services.keys import Principal, Role
from ledger.events import ContributionRewarded
from ledger.ids import batch_stream
from ledger.settings import LedgerSettings
from tests.api.test_feed import CONTRACT, add_batch, read_events, serve
from tests.homes import TestKeys, issue_keys

SUMMARY_FIELDS = {"position", "type", "stream", "time", "institution_id", "batch_id"}
STAGES = ["intake", "governance", "anchor", "reward", "feed"]


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
    app = create_app(settings=ledger_settings, api_settings=ApiSettings(trainer=False))
    with TestClient(app) as client:
        yield client


def streamed(
    client: TestClient, headers: dict[str, str], **params: Any
) -> list[tuple[str, dict[str, Any]]]:
    """Every event of a stream that does not follow, as ``(id, data)``."""
    params = {"follow": "false", **params}
    response = client.get("/v1/events/stream", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in response.text.split("\n\n"):
        lines = block.splitlines()
        data = [line[5:].strip() for line in lines if line.startswith("data:")]
        if not data:
            continue
        (event_id,) = [line[3:].strip() for line in lines if line.startswith("id:")]
        summary = json.loads("".join(data))
        assert event_id == str(summary["position"])
        out.append((event_id, summary))
    return out


def reward(writer: Parts, batch_id: str, institution: str) -> None:
    writer.ledger.append(
        batch_stream(batch_id),
        [
            ContributionRewarded(
                batch_id=batch_id,
                contribution_id="0x" + "ab" * 32,
                institution_id=institution,
                account="0x" + "11" * 20,
                amount_wei=str(10**18),
                academic_ref="0x" + "cd" * 32,
                chain_id=31338,
                contract_address=CONTRACT,
                tx_hash="0x" + "ef" * 32,
                block_number=9,
            )
        ],
    )


def batch_of(writer: Parts, record_id: str) -> str:
    return writer.ledger.record(record_id).batch_id


def test_summaries_hold_no_payload_and_resume_after_the_last_event_id(
    client: TestClient, keys: TestKeys, writer: Parts
) -> None:
    add_batch(writer.ledger, "bupt")
    everything = streamed(client, keys.auditor, after=0)
    head = writer.log.head_position()
    assert [int(i) for i, _ in everything] == list(range(1, head + 1))
    for _, data in everything:
        assert set(data) == SUMMARY_FIELDS
    middle = everything[len(everything) // 2][0]
    later = add_batch(writer.ledger, "xidian")
    resumed = streamed(client, keys.auditor | {"Last-Event-ID": middle})
    expected = [e for e in streamed(client, keys.auditor, after=0) if int(e[0]) > int(middle)]
    assert resumed == expected and resumed
    assert resumed[0][0] == str(int(middle) + 1)
    assert batch_of(writer, later[0]) in {d["batch_id"] for _, d in resumed}
    # the header wins over ?after=, and ?after= alone resumes the same way
    assert streamed(client, keys.auditor | {"Last-Event-ID": middle}, after=0) == resumed
    assert streamed(client, keys.auditor, after=int(middle)) == resumed


def test_a_contributor_sees_its_own_institutions_events_only(
    client: TestClient, keys: TestKeys, writer: Parts
) -> None:
    mine = batch_of(writer, add_batch(writer.ledger, "bupt")[0])
    theirs = batch_of(writer, add_batch(writer.ledger, "xidian")[0])
    seen = [d for _, d in streamed(client, keys.bupt, after=0)]
    assert seen and {d["institution_id"] for d in seen} == {"bupt"}
    batches = {d["batch_id"] for d in seen}
    assert mine in batches and theirs not in batches
    assert {"CorpusBatchSubmitted", "BatchGoverned", "BatchAnchored"} <= {d["type"] for d in seen}
    everyone = [d for _, d in streamed(client, keys.trainer, after=0)]
    assert theirs in {d["batch_id"] for d in everyone}
    assert {d["institution_id"] for d in everyone} >= {"bupt", "xidian", None}
    # recent: the last N of the contributor's own, not the last N of the log
    recent = [d for _, d in streamed(client, keys.xidian, recent=2)]
    own = [d for _, d in streamed(client, keys.xidian, after=0)]
    assert recent == own[-2:] and {d["institution_id"] for d in recent} == {"xidian"}
    last3 = [d for _, d in streamed(client, keys.admin, recent=3)]
    assert last3 == everyone[-3:]
    assert streamed(client, keys.admin) == []  # no after, no recent: from the head on


def test_no_text_or_salt_in_any_streamed_byte(
    client: TestClient, keys: TestKeys, writer: Parts
) -> None:
    ids = add_batch(writer.ledger, "bupt")
    batch = batch_of(writer, ids[0])
    records = client.get(f"/v1/batches/{batch}/records", headers=keys.bupt).json()
    secrets = [r["salt"] for r in records] + [r["record_hash"] for r in records]
    secrets += [r["record"]["instruction"] for r in records] + [
        r["record"]["output"][:40] for r in records
    ]
    assert all(secrets) and len(secrets) == 4 * len(records)
    for who in ("admin", "auditor", "trainer", "bupt", "xidian"):
        response = client.get(
            "/v1/events/stream",
            params={"after": 0, "follow": "false"},
            headers=getattr(keys, who),
        )
        body = response.content.decode()
        assert batch in body or who == "xidian"
        assert [s for s in secrets if s in body] == [], who
        assert "argon2" not in body and "leaf" not in body and "merkle_root" not in body


def throughput(client: TestClient, headers: dict[str, str], window: int = 3600) -> dict[str, Any]:
    response = client.get("/v1/events/throughput", params={"window": window}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [s["stage"] for s in body["stages"]] == STAGES
    assert body["window_seconds"] == window
    return {s["stage"]: s for s in body["stages"]} | {"institution_id": body["institution_id"]}


def test_throughput_counts_what_was_submitted(
    client: TestClient, keys: TestKeys, writer: Parts
) -> None:
    before_all = throughput(client, keys.admin)
    before_bupt = throughput(client, keys.bupt)
    bupt = [add_batch(writer.ledger, "bupt", n=n) for n in (3, 5)]  # accepts n - 1
    xidian = add_batch(writer.ledger, "xidian", n=6)
    reward(writer, batch_of(writer, bupt[1][0]), "bupt")
    after_all = throughput(client, keys.admin)
    after_bupt = throughput(client, keys.bupt)

    def moved(after: dict[str, Any], before: dict[str, Any], what: str) -> dict[str, int]:
        return {stage: after[stage][what] - before[stage][what] for stage in STAGES}

    assert moved(after_bupt, before_bupt, "records") == {
        "intake": 8,
        "governance": 8,
        "anchor": 8,
        "reward": 4,
        "feed": 6,
    }
    assert moved(after_bupt, before_bupt, "batches") == {
        "intake": 2,
        "governance": 2,
        "anchor": 2,
        "reward": 1,
        "feed": 2,
    }
    assert after_bupt["institution_id"] == "bupt" and after_all["institution_id"] is None
    everyone = moved(after_all, before_all, "records")
    assert everyone == {"intake": 14, "governance": 14, "anchor": 14, "reward": 4, "feed": 11}
    assert len(xidian) == 5
    rate = after_all["intake"]["records_per_second"]
    assert rate == pytest.approx(after_all["intake"]["records"] / 3600, abs=1e-6)


def test_throughput_counts_only_the_window(writer: Parts) -> None:
    admin = Principal(key_id="k-admin", role=Role.ADMIN)
    service = EventService(log=writer.log, who=admin)
    add_batch(writer.ledger, "bupt", n=2)
    now = datetime.now(UTC)
    recent = {s.stage.value: s.records for s in service.throughput(window=60, now=now).stages}
    assert recent["intake"] >= 2
    later = now + timedelta(hours=2)
    empty = service.throughput(window=3600, now=later)
    assert [s.records for s in empty.stages] == [0] * 5
    earlier = service.throughput(window=60, now=now - timedelta(days=30))
    assert [s.records for s in earlier.stages] == [0] * 5


@pytest.mark.parametrize(
    ("path", "params", "headers", "field"),
    [
        ("/v1/events/throughput", {"window": "5"}, {}, "window"),
        ("/v1/events/throughput", {"window": "86401"}, {}, "window"),
        ("/v1/events/throughput", {"window": "a-while"}, {}, "window"),
        ("/v1/events/stream", {"recent": "201"}, {}, "recent"),
        ("/v1/events/stream", {"after": "-4"}, {}, "after"),
        ("/v1/events/stream", {"follow": "sometimes"}, {}, "follow"),
        ("/v1/events/stream", {}, {"Last-Event-ID": "abc-9"}, "last-event-id"),
    ],
)
def test_bad_parameters_are_a_422_naming_the_field(
    client: TestClient,
    keys: TestKeys,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    field: str,
) -> None:
    response = client.get(path, params=params, headers=keys.auditor | headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] and field in body["message"].lower()
    for value in (*params.values(), *headers.values()):
        assert value not in body["message"]


def test_without_a_key_nothing_streams(client: TestClient) -> None:
    for path in ("/v1/events/stream?follow=false", "/v1/events/throughput"):
        response = client.get(path)
        assert response.status_code == 401 and response.json()["error"]


def test_a_live_stream_delivers_new_events_and_resumes_after_a_drop(
    ledger_settings: LedgerSettings, keys: TestKeys, writer: Parts
) -> None:
    app = create_app(settings=ledger_settings, api_settings=ApiSettings(trainer=False))
    with serve(app) as base, httpx.Client(base_url=base, headers=keys.bupt, timeout=30) as http:
        head = writer.log.head_position()
        with http.stream("GET", "/v1/events/stream", params={"after": head}) as stream:
            assert stream.status_code == 200
            add_batch(writer.ledger, "xidian")
            ids = add_batch(writer.ledger, "bupt")
            first = read_events(stream, 2)
        mine = batch_of(writer, ids[0])
        # xidian's batch came first in the log, but bupt's stream starts with its own
        assert [d["type"] for _, d in first] == ["CorpusBatchSubmitted", "BatchGoverned"]
        assert {d["batch_id"] for _, d in first} == {mine}
        assert all(int(i) > head for i, _ in first)
        # dropped after two events: the third comes on resume, then the stream goes on live
        with http.stream("GET", "/v1/events/stream", headers={"Last-Event-ID": first[-1][0]}) as s:
            lines = s.iter_lines()
            (third,) = next_events(lines, 1)
            assert third[1]["type"] == "BatchAnchored" and third[1]["batch_id"] == mine
            more = add_batch(writer.ledger, "bupt", n=2)
            (fourth,) = next_events(lines, 1)
            assert fourth[1]["batch_id"] == batch_of(writer, more[0])
            assert int(fourth[0]) > int(third[0])


def next_events(lines: Iterator[str], count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` events of an SSE response's lines as ``(id, data)``."""
    events: list[tuple[str, dict[str, Any]]] = []
    event_id, data = "", ""
    for line in lines:
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            events.append((event_id, json.loads(data)))
            event_id, data = "", ""
            if len(events) == count:
                return events
    raise AssertionError(f"the stream ended after {len(events)} of {count} events")


def test_an_idle_stream_sends_heartbeats(
    ledger_settings: LedgerSettings, keys: TestKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_routes, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(event_routes, "POLL_SECONDS", 0.05)
    app = create_app(settings=ledger_settings, api_settings=ApiSettings(trainer=False))
    with serve(app) as base, httpx.Client(base_url=base, headers=keys.xidian, timeout=30) as http:
        comments: list[str] = []
        with http.stream("GET", "/v1/events/stream") as stream:
            read_events(stream, 0, comments=comments)
        assert comments == [": heartbeat"]
