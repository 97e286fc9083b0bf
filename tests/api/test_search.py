"""``GET /v1/search`` and ``byr search`` on an initialized home whose accepted corpus was recorded
as governance records it (``BatchGoverned`` with ``CorpusIndexExtended``), searched with the
packaged embedding models: who may search, whose texts a hit shows, filters, spans, erasure and
malformed requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.composition import Parts
from ledger.events import BatchAnchored
from ledger.ids import batch_stream
from ledger.settings import LedgerSettings
from tests.cli import byr, ok_json
from tests.homes import TestKeys, issue_keys
from tests.ingest.test_search_index import (
    EN_FOURIER,
    EN_HANDSHAKE,
    XIDIAN_EN,
    ZH_CAPACITY,
    ZH_FIREWALL,
    submit_governed,
)


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def corpus(ledger_settings: LedgerSettings) -> dict[str, str]:
    """Record ids by name: bupt's batch (anchored) and xidian's (governed, not anchored)."""
    with Parts(ledger_settings) as parts:
        ledger = parts.ledger
        bupt = submit_governed(
            ledger,
            [ZH_CAPACITY, ZH_FIREWALL, EN_HANDSHAKE, EN_FOURIER],
            qualities=[0.9, 0.5, 0.7, 0.3],
        )
        batch_id = ledger.record(bupt[0]).batch_id
        batch = ledger.batch(batch_id)
        ledger.append(
            batch_stream(batch_id),
            [
                BatchAnchored(
                    batch_id=batch_id,
                    merkle_root=batch.merkle_root,
                    metadata_hash=batch.metadata_hash,
                    chain_id=31337,
                    contract_address="0x" + "22" * 20,
                    tx_hash="0x" + "cd" * 32,
                    block_number=7,
                )
            ],
        )
        (xidian,) = submit_governed(ledger, [XIDIAN_EN], institution_id="xidian")
    names = ["zh_capacity", "zh_firewall", "en_handshake", "en_fourier"]
    return dict(zip(names, bupt, strict=True)) | {"xidian_en": xidian}


@pytest.fixture(scope="module")
def client(
    ledger_settings: LedgerSettings, keys: TestKeys, corpus: dict[str, str]
) -> Iterator[TestClient]:
    with TestClient(create_app(settings=ledger_settings)) as client:
        yield client


def search(client: TestClient, who: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/v1/search", params=params, headers=who)
    assert response.status_code == 200, response.text
    return dict(response.json())


def hit_ids(result: dict[str, Any]) -> list[str]:
    return [h["record_id"] for h in result["hits"]]


def test_zh_query_finds_zh_record_en_query_en_record(
    client: TestClient, keys: TestKeys, corpus: dict[str, str]
) -> None:
    zh = search(client, keys.trainer, q="香农信道容量")
    assert zh["query_language"] == "zh" and hit_ids(zh)[0] == corpus["zh_capacity"]
    top = zh["hits"][0]
    assert top["ranks"] == {"lexical": 1, "embedding": 1, "fused": 1}
    assert top["scores"]["lexical"] > 0 and top["scores"]["fused"] > 0
    assert top["quality"] == 0.9 and top["flags"][0]["code"] == "low_term_coverage"
    en = search(client, keys.trainer, q="Fourier transform frequencies", mode="embedding")
    assert en["query_language"] == "en" and hit_ids(en)[0] == corpus["en_fourier"]
    assert {h["language"] for h in en["hits"]} == {"en"}


def test_spans_point_at_the_query_terms(
    client: TestClient, keys: TestKeys, corpus: dict[str, str]
) -> None:
    result = search(client, keys.bupt, q="TCP handshake", mode="lexical")
    hit = next(h for h in result["hits"] if h["record_id"] == corpus["en_handshake"])
    assert hit["record"] is not None
    matched = [hit["record"][s["field"]][s["start"] : s["end"]].lower() for s in hit["spans"]]
    assert {"tcp", "handshake"} <= set(matched) <= {"tcp", "handshake"}
    assert {s["field"] for s in hit["spans"]} == {"instruction"}


def test_filters(client: TestClient, keys: TestKeys, corpus: dict[str, str]) -> None:
    q = "tcp handshake signal 信道 防火墙"
    assert set(hit_ids(search(client, keys.admin, q=q, limit=100))) == set(corpus.values())
    zh = search(client, keys.admin, q=q, language="zh")
    assert set(hit_ids(zh)) == {corpus["zh_capacity"], corpus["zh_firewall"]}
    networks = search(client, keys.admin, q=q, discipline="computer_networks")
    assert set(hit_ids(networks)) == {corpus["en_handshake"], corpus["xidian_en"]}
    explain = search(client, keys.admin, q=q, task_type="concept_explanation")
    assert set(hit_ids(explain)) == {corpus["zh_firewall"], corpus["en_handshake"]}
    quality = search(client, keys.admin, q=q, min_quality=0.6, max_quality=0.85)
    assert set(hit_ids(quality)) == {corpus["en_handshake"], corpus["xidian_en"]}
    xidian = search(client, keys.admin, q=q, institution_id="xidian")
    assert hit_ids(xidian) == [corpus["xidian_en"]]
    assert len(search(client, keys.admin, q=q, limit=2)["hits"]) == 2


def test_contributors_see_only_their_institution(
    client: TestClient, keys: TestKeys, corpus: dict[str, str]
) -> None:
    q = "tcp handshake 信道"
    bupt = search(client, keys.bupt, q=q, limit=100)
    assert bupt["filters"]["institution_id"] == "bupt"
    assert corpus["xidian_en"] not in hit_ids(bupt) and bupt["hits"]
    assert all(h["institution_id"] == "bupt" and h["record"] for h in bupt["hits"])
    xidian = search(client, keys.xidian, q=q, limit=100)
    assert hit_ids(xidian) == [corpus["xidian_en"]] and xidian["hits"][0]["record"]
    other = client.get("/v1/search", params={"q": q, "institution_id": "xidian"}, headers=keys.bupt)
    assert other.status_code == 403


def test_texts_follow_the_feed_rule(
    client: TestClient, keys: TestKeys, corpus: dict[str, str]
) -> None:
    q = "tcp handshake"
    trainer = {h["record_id"]: h for h in search(client, keys.trainer, q=q)["hits"]}
    assert trainer[corpus["en_handshake"]]["record"]["instruction"].startswith("Explain")
    assert trainer[corpus["en_handshake"]]["anchored"] is True
    # xidian's batch is not anchored yet: not in the feed, so no text for the trainer
    assert trainer[corpus["xidian_en"]]["record"] is None
    admin = search(client, keys.admin, q=q)["hits"]
    assert admin and all(h["record"] is None for h in admin)
    assert client.get("/v1/search", params={"q": q}, headers=keys.auditor).status_code == 403
    assert client.get("/v1/search", params={"q": q}).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 501}, "q"),
        ({}, "q"),
        ({"q": "tcp", "limit": 0}, "limit"),
        ({"q": "tcp", "limit": 101}, "limit"),
        ({"q": "tcp", "limit": "many"}, "limit"),
        ({"q": "tcp", "mode": "fuzzy"}, "mode"),
        ({"q": "tcp", "discipline": "astrology"}, "discipline"),
        ({"q": "tcp", "task_type": "poetry"}, "task_type"),
        ({"q": "tcp", "language": "fr"}, "language"),
        ({"q": "tcp", "institution_id": "Not An Id!"}, "institution_id"),
        ({"q": "tcp", "min_quality": 2}, "min_quality"),
        ({"q": "tcp", "max_quality": "high"}, "max_quality"),
        ({"q": "tcp", "min_quality": 0.9, "max_quality": 0.1}, "min_quality"),
        ({"q": "？！", "mode": "lexical"}, "q"),
    ],
)
def test_malformed_queries_are_422_naming_the_field(
    client: TestClient, keys: TestKeys, params: dict[str, Any], field: str
) -> None:
    response = client.get("/v1/search", params=params, headers=keys.trainer)
    assert response.status_code == 422, response.text
    assert field in response.text
    for value in params.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in response.text


def test_erased_record_disappears(
    client: TestClient, keys: TestKeys, corpus: dict[str, str]
) -> None:
    before = search(client, keys.trainer, q="防火墙 包过滤")
    assert hit_ids(before)[0] == corpus["zh_firewall"]
    erased = client.request(
        "DELETE",
        f"/v1/records/{corpus['zh_firewall']}",
        json={"reason": "withdrawn by the author"},
        headers=keys.bupt,
    )
    assert erased.status_code == 200, erased.text
    after = search(client, keys.trainer, q="防火墙 包过滤", limit=100)
    assert corpus["zh_firewall"] not in hit_ids(after)


def test_cli_rejects_a_bad_filter_with_exit_2(ledger_settings: LedgerSettings) -> None:
    result = byr(ledger_settings.home, "search", "tcp", "--discipline", "astrology", "--json")
    assert result.returncode == 2, result.stderr + result.stdout
    assert "discipline" in result.stdout and "astrology" not in result.stdout


@pytest.mark.slow
def test_cli_search_matches_the_api(
    client: TestClient, ledger_settings: LedgerSettings, keys: TestKeys, corpus: dict[str, str]
) -> None:
    api = search(client, keys.admin, q="香农信道容量", limit=3)
    cli = ok_json(byr(ledger_settings.home, "search", "香农信道容量", "--limit", "3", "--json"))
    assert hit_ids(cli) == hit_ids(api)
    assert cli["hits"][0]["record"]["instruction"] == ZH_CAPACITY["instruction"]
