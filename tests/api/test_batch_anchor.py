"""``GET /v1/batches/{batch_id}/anchor``: a batch's anchor checked on the academic chain, step by
step, against what the ledger recorded; who may ask; and the answers for a batch the chain
contradicts, an unknown batch and a batch not anchored yet."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.deps import ApiState
from ledger.events.catalogue import BatchAnchored
from ledger.ids import batch_stream
from ledger.merkle import parse_bytes32, to_hex
from ledger.settings import LedgerSettings
from tests.api.test_app import GOOD
from tests.homes import TestKeys, issue_keys

ANCHOR_CHECKS = ["chain_id", "contract_code", "anchor_tx", "metadata_hash", "anchored_root"]


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings) -> Iterator[TestClient]:
    api = ApiSettings(trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        yield client


def _submit(client: TestClient, keys: TestKeys, records: list[dict[str, Any]]) -> dict[str, Any]:
    created = client.post(
        "/v1/batches", json={"institution_id": "bupt", "records": records}, headers=keys.bupt
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


@pytest.fixture(scope="module")
def anchored(client: TestClient, keys: TestKeys) -> dict[str, Any]:
    """A batch of bupt's carried through governance, anchoring and reward; and its texts."""
    batch = _submit(client, keys, GOOD)
    records = client.get(f"/v1/batches/{batch['batch_id']}/records", headers=keys.bupt).json()
    assert client.post("/v1/dispatch", headers=keys.admin).status_code == 200
    recorded = client.get(f"/v1/batches/{batch['batch_id']}", headers=keys.admin).json()
    assert recorded["tx_hash"], recorded
    secrets = [r["salt"] for r in records] + [r["record"]["instruction"] for r in records]
    return {"batch": recorded, "secrets": secrets}


@pytest.fixture(scope="module")
def unanchored(client: TestClient, keys: TestKeys, anchored: dict[str, Any]) -> str:
    """A batch recorded after the last dispatch: not governed, not anchored."""
    return str(_submit(client, keys, GOOD[:1])["batch_id"])


@pytest.fixture(scope="module")
def contradicted(client: TestClient, keys: TestKeys, unanchored: str) -> dict[str, Any]:
    """A batch whose id the chain holds with another root: the batch is anchored directly with a
    different root (the contract anchors a batch id once), and the ledger then records that
    transaction as the anchor of its own root, as a ledger whose chain was tampered with would."""
    created = _submit(client, keys, GOOD[1:2])
    batch = client.get(f"/v1/batches/{created['batch_id']}", headers=keys.bupt).json()
    state = client.app.state.byr  # type: ignore[attr-defined]
    assert isinstance(state, ApiState)
    parts = state.parts
    other_root = os.urandom(32)
    sent = parts.academic.anchor_batch(
        batch_id=batch["batch_id"],
        merkle_root=other_root,
        metadata_hash=parse_bytes32(batch["metadata_hash"]),
        institution_id="bupt",
        record_count=batch["record_count"],
    )
    parts.ledger.append(
        batch_stream(batch["batch_id"]),
        [
            BatchAnchored(
                batch_id=batch["batch_id"],
                merkle_root=batch["merkle_root"],
                metadata_hash=batch["metadata_hash"],
                chain_id=parts.academic.chain.chain_id,
                contract_address=parts.academic.address,
                tx_hash=sent.tx_hash,
                block_number=sent.block_number,
            )
        ],
    )
    return {"batch_id": batch["batch_id"], "other_root": to_hex(other_root)}


def test_an_anchored_batch_passes_every_check(
    client: TestClient, keys: TestKeys, anchored: dict[str, Any]
) -> None:
    batch = anchored["batch"]
    response = client.get(f"/v1/batches/{batch['batch_id']}/anchor", headers=keys.auditor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True, body
    assert [c["name"] for c in body["checks"]] == ANCHOR_CHECKS
    assert all(c["ok"] and c["detail"] for c in body["checks"]), body["checks"]
    assert {k: body[k] for k in ("batch_id", "chain_id", "contract_address", "tx_hash")} == {
        k: batch[k] for k in ("batch_id", "chain_id", "contract_address", "tx_hash")
    }
    assert body["block_number"] == batch["block_number"]
    assert f"chain {batch['chain_id']}" in body["checks"][0]["detail"]
    assert f"block {batch['block_number']}" in body["checks"][2]["detail"]
    assert not [s for s in anchored["secrets"] if s in response.text]


def test_who_may_check_an_anchor(
    client: TestClient, keys: TestKeys, anchored: dict[str, Any]
) -> None:
    path = f"/v1/batches/{anchored['batch']['batch_id']}/anchor"
    statuses = {
        who: client.get(path, headers=getattr(keys, who)).status_code
        for who in ("admin", "auditor", "bupt", "xidian", "trainer")
    }
    assert statuses == {"admin": 200, "auditor": 200, "bupt": 200, "xidian": 403, "trainer": 403}
    assert client.get(path).status_code == 401


def test_a_root_the_chain_contradicts_fails_naming_the_checks(
    client: TestClient, keys: TestKeys, contradicted: dict[str, Any]
) -> None:
    response = client.get(f"/v1/batches/{contradicted['batch_id']}/anchor", headers=keys.auditor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is False
    failed = {c["name"]: c["detail"] for c in body["checks"] if not c["ok"]}
    assert list(failed) == ["anchor_tx", "anchored_root"], body["checks"]
    short = contradicted["other_root"][:10]
    assert f"anchored root {short}" in failed["anchor_tx"]
    assert "the ledger's root" in failed["anchor_tx"]
    assert f"is {short}" in failed["anchored_root"]
    assert "the ledger's root was altered" in failed["anchored_root"]


def test_an_unknown_batch_is_a_404(client: TestClient, keys: TestKeys) -> None:
    response = client.get("/v1/batches/" + "0" * 32 + "/anchor", headers=keys.auditor)
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "NotFound"


def test_a_batch_not_anchored_yet_is_a_409(
    client: TestClient, keys: TestKeys, unanchored: str
) -> None:
    response = client.get(f"/v1/batches/{unanchored}/anchor", headers=keys.auditor)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "BatchNotAnchored"
    assert unanchored in body["message"] and "not anchored yet" in body["message"]
    assert client.get(f"/v1/batches/{unanchored}/anchor", headers=keys.xidian).status_code == 403


def test_an_anchor_recorded_at_another_address_is_not_asked(
    client: TestClient, keys: TestKeys, anchored: dict[str, Any], contradicted: dict[str, Any]
) -> None:
    """The ledger names an address without AcademicLedger's code: nothing there is believed."""
    created = _submit(client, keys, GOOD[2:3])
    batch = client.get(f"/v1/batches/{created['batch_id']}", headers=keys.bupt).json()
    state = client.app.state.byr  # type: ignore[attr-defined]
    assert isinstance(state, ApiState)
    elsewhere = "0x" + "11" * 20
    state.parts.ledger.append(
        batch_stream(batch["batch_id"]),
        [
            BatchAnchored(
                batch_id=batch["batch_id"],
                merkle_root=batch["merkle_root"],
                metadata_hash=batch["metadata_hash"],
                chain_id=anchored["batch"]["chain_id"],
                contract_address=elsewhere,
                tx_hash=anchored["batch"]["tx_hash"],
                block_number=anchored["batch"]["block_number"],
            )
        ],
    )
    response = client.get(f"/v1/batches/{batch['batch_id']}/anchor", headers=keys.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is False and body["contract_address"] == elsewhere
    verdicts = {c["name"]: c for c in body["checks"]}
    assert verdicts["chain_id"]["ok"] is True
    assert [n for n, c in verdicts.items() if not c["ok"]] == [
        "contract_code",
        "anchor_tx",
        "anchored_root",
    ]
    assert "no code" in verdicts["contract_code"]["detail"]
    assert "emitted no BatchAnchored event" in verdicts["anchor_tx"]["detail"]
    assert verdicts["anchored_root"]["detail"].startswith("not asked")
