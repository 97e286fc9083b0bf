"""The authorization matrix: every /v1 route driven with every role, with no key, a revoked key and
another institution's key; status codes as docs/API.md states them, and no response to anyone but
the owner holds one of the owner's texts or salts."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from ledger.settings import LedgerSettings
from tests.api.test_app import GOOD
from tests.cli import byr, ok_json
from tests.homes import TestKeys, issue_keys

WHO = ("none", "revoked", "admin", "bupt", "xidian", "auditor", "trainer")


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def revoked(ledger_settings: LedgerSettings) -> dict[str, str]:
    with Parts(ledger_settings) as parts:
        issued = parts.keys.create(role="admin", label="to be revoked")
        parts.keys.revoke(issued.key_id)
    return {"Authorization": f"Bearer {issued.key}"}


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings) -> Iterator[TestClient]:
    # No trainer thread: the queued runs of the matrix stay queued.
    api = ApiSettings(trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        yield client


@pytest.fixture(scope="module")
def owned(client: TestClient, keys: TestKeys) -> dict[str, Any]:
    """A batch of bupt's, with what only bupt may see: texts and salts."""
    created = client.post(
        "/v1/batches", json={"institution_id": "bupt", "records": GOOD}, headers=keys.bupt
    )
    assert created.status_code == 201, created.text
    batch = created.json()
    records = client.get(f"/v1/batches/{batch['batch_id']}/records", headers=keys.bupt).json()
    salts = [r["salt"] for r in records] + [r["record_hash"] for r in records]
    texts = [r["record"]["instruction"] for r in records]
    texts += [r["record"]["output"][:40] for r in records]
    bundle = client.get(f"/v1/records/{records[0]['record_id']}/proof", headers=keys.bupt).json()
    # Anchored: the batch is in the trainer's feed.
    assert client.post("/v1/dispatch", headers=keys.admin).status_code == 200
    later = client.post(
        "/v1/batches",
        json={"institution_id": "bupt", "records": GOOD[:1]},
        headers=keys.bupt | {"Prefer": "respond-async"},
    )
    assert later.status_code == 202, later.text
    return {
        "submission_id": later.json()["submission_id"],
        "batch_id": batch["batch_id"],
        "record_id": records[0]["record_id"],
        "salts": salts,
        "texts": texts,
        "bundle": bundle,
    }


def headers_of(who: str, keys: TestKeys, revoked: dict[str, str]) -> dict[str, str]:
    if who == "none":
        return {}
    if who == "revoked":
        return revoked
    return dict(getattr(keys, who))


def routes(owned: dict[str, Any], keys: TestKeys) -> list[tuple[str, str, Any, dict[str, int]]]:
    """(method, path, JSON body, expected status per principal); 401 for none and revoked."""
    batch, record, bundle = owned["batch_id"], owned["record_id"], owned["bundle"]
    everyone = {w: 200 for w in WHO[2:]}
    owner_only = {"admin": 403, "bupt": 200, "xidian": 403, "auditor": 403, "trainer": 403}
    readable = {**everyone, "xidian": 403}
    new_batch = {"institution_id": "bupt", "records": GOOD[:1]}
    feed_readers = {"admin": 403, "bupt": 200, "xidian": 200, "auditor": 403, "trainer": 200}
    trainers = {w: 403 for w in WHO[2:]}
    run = "no-such-run"
    return [
        ("GET", "/v1/status", None, everyone),
        ("GET", "/v1/institutions", None, everyone),
        ("GET", "/v1/institutions/bupt", None, everyone),
        (
            "POST",
            "/v1/institutions",
            {"institution_id": "fudan", "name": "Fudan University"},
            {**{w: 403 for w in WHO[2:]}, "admin": 201},
        ),
        ("POST", "/v1/batches", new_batch, {**{w: 403 for w in WHO[2:]}, "bupt": 201}),
        ("GET", "/v1/batches", None, everyone),
        ("GET", f"/v1/batches/{batch}", None, readable),
        ("GET", f"/v1/batches/{batch}/records", None, readable),
        ("GET", f"/v1/batches/{batch}/report", None, readable),
        ("GET", f"/v1/batches/{batch}/anchor", None, {**readable, "trainer": 403}),
        ("GET", f"/v1/records/{record}", None, readable),
        ("GET", f"/v1/records/{record}/proof", None, owner_only),
        ("GET", f"/v1/submissions/{owned['submission_id']}", None, owner_only),
        ("POST", "/v1/verify", bundle, everyone),
        ("GET", "/v1/balances", None, {**everyone, "trainer": 403}),
        ("POST", "/v1/keys", {"role": "auditor"}, {**{w: 403 for w in WHO[2:]}, "admin": 201}),
        ("GET", "/v1/keys", None, {**{w: 403 for w in WHO[2:]}, "admin": 200}),
        ("GET", "/v1/keys/me", None, everyone),
        ("GET", "/v1/recipes", None, everyone),
        ("GET", "/v1/recipes/knowledge_qa", None, everyone),
        (
            "DELETE",
            f"/v1/keys/{keys.ids['trainer']}x",
            None,
            {**{w: 403 for w in WHO[2:]}, "admin": 404},
        ),
        (
            "DELETE",
            f"/v1/records/{record}",
            {"reason": "not yours"},
            {"xidian": 403, "auditor": 403, "trainer": 403},
        ),
        (
            "POST",
            "/v1/dispatch",
            None,
            {"bupt": 403, "xidian": 403, "auditor": 403, "trainer": 403},
        ),
        ("GET", "/v1/feed?limit=5", None, feed_readers),
        ("GET", "/v1/feed/stream?follow=false", None, feed_readers),
        # summaries of the whole log: no text or salt for anyone (a contributor: its own only)
        ("GET", "/v1/events/stream?follow=false&after=0", None, everyone),
        ("GET", "/v1/events/throughput?window=600", None, everyone),
        # xidian has no accepted records: its export is empty, a 404.
        ("GET", "/v1/exports/alpaca", None, {**feed_readers, "xidian": 404}),
        ("GET", "/v1/search?q=entropy", None, {**everyone, "auditor": 403}),
        ("GET", "/v1/evaluations", None, everyone),
        ("GET", "/v1/evaluations/eval-none", None, {w: 404 for w in WHO[2:]}),
        ("GET", "/v1/evaluations/eval-none/report", None, {w: 404 for w in WHO[2:]}),
        (
            "POST",
            "/v1/evaluations",
            {"models": ["base", run], "limit": 1},
            {**trainers, "admin": 404, "trainer": 404},
        ),
        ("GET", "/v1/evaluations/jobs/evj-none", None, {**trainers, "admin": 404, "trainer": 404}),
        (
            "POST",
            "/v1/training/runs",
            {"recipe": "knowledge_qa", "max_steps": 1},
            {**trainers, "admin": 202, "trainer": 202},
        ),
        ("GET", "/v1/training/runs", None, everyone),
        ("GET", f"/v1/training/runs/{run}", None, {w: 404 for w in WHO[2:]}),
        ("POST", f"/v1/training/runs/{run}/stop", None, {**trainers, "admin": 404, "trainer": 404}),
        (
            "POST",
            f"/v1/training/runs/{run}/resume",
            None,
            {**trainers, "admin": 404, "trainer": 404},
        ),
        (
            "GET",
            f"/v1/training/runs/{run}/metrics",
            None,
            {**trainers, "admin": 404, "trainer": 404},
        ),
        (
            "POST",
            f"/v1/models/{run}/generate",
            {"prompt": "What is entropy?"},
            {**trainers, "admin": 404, "trainer": 404},
        ),
    ]


#: Routes whose answers hold texts for the trainer (the accepted feed is its door); salts and
#: unsalted hashes are still the owner's alone.
TEXT_DOORS = ("/v1/feed", "/v1/exports/", "/v1/search")


def test_every_route_with_every_principal(
    client: TestClient, keys: TestKeys, revoked: dict[str, str], owned: dict[str, Any]
) -> None:
    problems = []
    for method, path, body, expected in routes(owned, keys):
        for who in WHO:
            want = 401 if who in ("none", "revoked") else expected.get(who)
            if want is None:  # a success with side effects, covered elsewhere
                continue
            response = client.request(
                method, path, json=body, headers=headers_of(who, keys, revoked)
            )
            if response.status_code != want:
                problems.append(f"{method} {path} as {who}: {response.status_code}, want {want}")
            if who != "bupt":
                secrets = owned["salts"]
                if not (who == "trainer" and path.startswith(TEXT_DOORS)):
                    secrets = secrets + owned["texts"]
                leaked = [s for s in secrets if s and s in response.text]
                if leaked:
                    problems.append(f"{method} {path} as {who}: leaks {len(leaked)} secret(s)")
            if response.status_code >= 400:
                assert response.json()["error"], response.text
    assert problems == [], "\n".join(problems)


def test_the_matrix_covers_every_route(
    client: TestClient, keys: TestKeys, owned: dict[str, Any]
) -> None:
    """A route added to the app without a row in the matrix above fails here."""
    import re

    rows = [(method, path.split("?")[0]) for method, path, _, _ in routes(owned, keys)]
    missing = []
    document = client.get("/openapi.json").json()
    for template, operations in document["paths"].items():
        if not template.startswith("/v1"):
            continue
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method in operations:
            if method.upper() in ("HEAD", "OPTIONS"):
                continue
            if not any(m == method.upper() and pattern.match(p) for m, p in rows):
                missing.append(f"{method.upper()} {template}")
    assert missing == [], "routes without a row in the authorization matrix: " + ", ".join(missing)


def test_offline_verification_and_health_need_no_key(
    client: TestClient, owned: dict[str, Any]
) -> None:
    assert client.get("/health").status_code == 200
    offline = client.post("/v1/verify?offline=true", json=owned["bundle"])
    assert offline.status_code == 200 and offline.json()["ok"] is True


def test_contributors_see_only_their_own(
    client: TestClient, keys: TestKeys, owned: dict[str, Any]
) -> None:
    theirs = client.get("/v1/batches", headers=keys.xidian).json()
    assert owned["batch_id"] not in {b["batch_id"] for b in theirs}
    mine = client.get("/v1/batches", headers=keys.bupt).json()
    assert owned["batch_id"] in {b["batch_id"] for b in mine}
    assert {b["institution_id"] for b in mine} == {"bupt"}
    status = client.get("/v1/status", headers=keys.xidian).json()
    assert owned["batch_id"] not in {b["batch_id"] for b in status["batches"]}
    everything = client.get("/v1/status", headers=keys.auditor).json()
    assert owned["batch_id"] in {b["batch_id"] for b in everything["batches"]}
    seen = client.get(f"/v1/records/{owned['record_id']}", headers=keys.auditor).json()
    assert seen["record"] is None and seen["salt"] is None and seen["record_hash"] is None
    assert seen["leaf"].startswith("0x") and seen["status"] == "accepted"


def test_a_key_revoked_on_the_home_stops_working_at_once(
    client: TestClient, ledger_settings: LedgerSettings
) -> None:
    with Parts(ledger_settings) as other_process:
        issued = other_process.keys.create(role="auditor", label="short-lived")
    header = {"Authorization": f"Bearer {issued.key}"}
    assert client.get("/v1/status", headers=header).status_code == 200
    with Parts(ledger_settings) as other_process:
        other_process.keys.revoke(issued.key_id)
    refused = client.get("/v1/status", headers=header)
    assert refused.status_code == 401 and issued.key not in refused.text


def test_keys_are_attributed_in_the_events_they_cause(
    client: TestClient, keys: TestKeys, ledger_settings: LedgerSettings
) -> None:
    created = client.post(
        "/v1/batches", json={"institution_id": "bupt", "records": GOOD[1:2]}, headers=keys.bupt
    ).json()
    with Parts(ledger_settings) as parts:
        (submitted,) = [
            e
            for e in parts.log.read_stream(f"batch-{created['batch_id']}")
            if e.event_type == "CorpusBatchSubmitted"
        ]
    assert submitted.payload["submitted_by"] == keys.ids["bupt"]


def test_every_key_says_who_it_is(client: TestClient, keys: TestKeys) -> None:
    """``GET /v1/keys/me``: the caller's own key id, role, institution and label, never the
    secret or its hash (the console decides what to offer from it)."""
    for who, role, institution in (
        ("admin", "admin", None),
        ("bupt", "contributor", "bupt"),
        ("xidian", "contributor", "xidian"),
        ("auditor", "auditor", None),
        ("trainer", "trainer", None),
    ):
        response = client.get("/v1/keys/me", headers=getattr(keys, who))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "key_id": keys.ids[who],
            "role": role,
            "institution_id": institution,
            "label": f"test {who}",
            "local": False,
        }
        secret = getattr(keys, who)["Authorization"].split("_", 2)[2]
        assert secret not in response.text and "argon2" not in response.text


def test_a_server_without_keys_says_so(ledger_settings: LedgerSettings) -> None:
    api = ApiSettings(insecure_local=True, trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        assert client.get("/v1/keys/me").json() == {
            "key_id": "local",
            "role": None,
            "institution_id": None,
            "label": "",
            "local": True,
        }


def test_key_management_through_the_admin_endpoints(client: TestClient, keys: TestKeys) -> None:
    created = client.post(
        "/v1/keys", json={"role": "contributor", "institution_id": "hust"}, headers=keys.admin
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith(f"byr_{key['key_id']}_") and key["institution_id"] == "hust"
    listed = client.get("/v1/keys", headers=keys.admin)
    assert key["key"] not in listed.text and "argon2" not in listed.text
    assert {"key_id": key["key_id"], "active": True}.items() <= next(
        k for k in listed.json() if k["key_id"] == key["key_id"]
    ).items()
    hust = {"Authorization": f"Bearer {key['key']}"}
    assert client.get("/v1/batches", headers=hust).status_code == 200
    revoked = client.delete(f"/v1/keys/{key['key_id']}", headers=keys.admin)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert client.get("/v1/batches", headers=hust).status_code == 401
    for bad in (
        {"role": "contributor"},
        {"role": "auditor", "institution_id": "bupt"},
        {"role": "owner"},
        {"role": "contributor", "institution_id": "nobody"},
    ):
        answer = client.post("/v1/keys", json=bad, headers=keys.admin)
        assert answer.status_code in (404, 422), (bad, answer.text)


@pytest.mark.slow
def test_keys_from_the_command_line(ledger_settings: LedgerSettings) -> None:
    home = ledger_settings.home
    admin_file = home / "admin.key"
    assert admin_file.exists() and stat.S_IMODE(admin_file.stat().st_mode) == 0o600
    created = ok_json(byr(home, "keys", "create", "--role", "trainer", "--label", "lab", "--json"))
    assert created["key"].startswith("byr_k") and created["role"] == "trainer"
    listed = byr(home, "keys", "list", "--json")
    assert listed.returncode == 0 and created["key"] not in listed.stdout
    assert created["key_id"] in {k["key_id"] for k in json.loads(listed.stdout)}
    revoked = ok_json(byr(home, "keys", "revoke", created["key_id"], "--json"))
    assert revoked["active"] is False
    unknown = byr(home, "keys", "revoke", "k000000000000", "--json")
    assert unknown.returncode == 2
    bad_role = byr(home, "keys", "create", "--role", "root", "--json")
    assert bad_role.returncode == 2 and "role" in bad_role.stdout


def test_the_first_admin_key_is_written_by_init(ledger_settings: LedgerSettings) -> None:
    key = (Path(ledger_settings.home) / "admin.key").read_text().strip()
    # No trainer thread: the queued runs of the matrix stay queued.
    api = ApiSettings(trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        assert client.get("/v1/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_keys_handed_in_through_the_environment(tmp_path: Path) -> None:
    """A deployment generates its keys beforehand and passes them in its environment: init
    issues BYR_ADMIN_KEY as the first admin key (no key file), and `keys create --key-from-env`
    issues another one; a malformed or reused key is refused."""
    home = tmp_path / "home"
    generated = byr(home, "keys", "generate")
    assert generated.returncode == 0, generated.stderr
    admin = generated.stdout.strip()
    assert admin.startswith("byr_k") and admin != byr(home, "keys", "generate").stdout.strip()
    init = ok_json(byr(home, "init", "--json", env={"BYR_ADMIN_KEY": admin}))
    assert admin not in json.dumps(init)
    assert not (home / "admin.key").exists()
    trainer = byr(home, "keys", "generate").stdout.strip()
    created = ok_json(
        byr(
            home,
            *("keys", "create", "--role", "trainer", "--key-from-env", "TRAINER_KEY", "--json"),
            env={"TRAINER_KEY": trainer},
        )
    )
    assert created["key"] == trainer
    again = byr(
        home,
        *("keys", "create", "--role", "trainer", "--key-from-env", "TRAINER_KEY", "--json"),
        env={"TRAINER_KEY": trainer},
    )
    assert again.returncode != 0 and trainer not in again.stdout + again.stderr
    malformed = byr(
        home,
        *("keys", "create", "--role", "auditor", "--key-from-env", "BAD", "--json"),
        env={"BAD": "byr_not-a-key"},
    )
    assert malformed.returncode == 2 and "byr_not-a-key" not in malformed.stdout
    unset = byr(home, "keys", "create", "--role", "auditor", "--key-from-env", "UNSET_VAR")
    assert unset.returncode == 2
    settings = LedgerSettings(home=home)
    with TestClient(create_app(settings=settings, api_settings=ApiSettings())) as client:
        for key in (admin, trainer):
            status = client.get("/v1/status", headers={"Authorization": f"Bearer {key}"})
            assert status.status_code == 200
        listed = client.get("/v1/keys", headers={"Authorization": f"Bearer {admin}"})
        assert listed.status_code == 200 and admin not in listed.text


def test_an_account_cannot_be_taken_over(ledger_settings: LedgerSettings) -> None:
    """Registering a newcomer with another institution's account, or re-registering an id with
    other data, is refused; balances and reward history stay with their owner."""
    from ledger.errors import Conflict
    from ledger.events import ContributionRewarded
    from ledger.ids import batch_stream

    with Parts(ledger_settings) as parts:
        bupt = parts.ledger.institution("bupt")
        parts.ledger.append(  # a reward bupt earned (as the reward job records it)
            batch_stream("f" * 32),
            [
                ContributionRewarded(
                    batch_id="f" * 32,
                    contribution_id="0x" + "ab" * 32,
                    institution_id="bupt",
                    account=bupt.account,
                    amount_wei=str(7 * 10**18),
                    academic_ref="0x" + "cd" * 32,
                    chain_id=1,
                    contract_address="0x" + "11" * 20,
                    tx_hash="0x" + "ef" * 32,
                    block_number=1,
                )
            ],
        )
        before = [b.to_dict() for b in parts.ledger.balances()]
        with pytest.raises(Conflict, match="another institution"):
            parts.institutions.add(institution_id="evil", name="Evil U", account=bupt.account)
        with pytest.raises(Conflict, match="already registered"):
            parts.institutions.add(institution_id="bupt", name="Renamed", account=bupt.account)
        again = parts.institutions.add(institution_id="bupt", name=bupt.name, account=bupt.account)
        assert again == bupt  # idempotent, nothing appended
        assert parts.ledger.institution("bupt").academic_tx_hash == bupt.academic_tx_hash
        assert [b.to_dict() for b in parts.ledger.balances()] == before
        assert any(b["institution_id"] == "bupt" and b["amount_wei"] for b in before)
        with pytest.raises(Exception):  # noqa: B017 - nothing named evil exists
            parts.ledger.institution("evil")
