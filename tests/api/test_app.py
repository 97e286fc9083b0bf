"""The HTTP API against real parts: a BYR_HOME initialized like ``byr init`` (embedded
eth-tester chains persisted under a temporary folder), opened and closed by the app's lifespan.

Batches here are only submitted (intake + recording), never governed, so no embedding model loads;
the first submission loads the PII pipelines (spaCy) once for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from api.services.provisioning import NotInitialized
from ledger.events import ApiKeyRevoked
from ledger.settings import LedgerSettings
from tests.homes import TestKeys, issue_keys

AUTH: dict[str, str] = {}
"""The bupt contributor's key, as a header (filled by the ``keys`` fixture)."""
ADMIN: dict[str, str] = {}
"""An admin key, as a header (filled by the ``keys`` fixture)."""

GOOD = [
    {
        "instruction": "What is the purpose of a cyclic prefix in OFDM?",
        "output": "The cyclic prefix copies the end of each OFDM symbol to its front, so echoes "
        "shorter than the prefix cause no intersymbol interference and each subcarrier sees one "
        "complex gain.",
        "discipline": "communication_principles",
    },
    {
        "instruction": "什么是信噪比？",
        "output": "信噪比是信号功率与噪声功率之比，常用分贝表示，例如信噪比为 1000 时对应 30 dB。",
        "discipline": "通信原理",
    },
    {
        "instruction": "Why should passwords be stored with a slow salted hash?",
        "output": "A slow salted hash such as Argon2 lets the server check a login without being "
        "able to recover the password, and makes guessing leaked hashes expensive.",
        "discipline": "network_security",
    },
]


@pytest.fixture(scope="module")
def settings(ledger_settings: LedgerSettings) -> LedgerSettings:
    return ledger_settings


@pytest.fixture(scope="module")
def keys(settings: LedgerSettings) -> TestKeys:
    issued = issue_keys(settings)
    AUTH.clear()
    AUTH.update(issued.bupt)
    ADMIN.clear()
    ADMIN.update(issued.admin)
    return issued


@pytest.fixture(scope="module")
def client(settings: LedgerSettings, keys: TestKeys) -> Iterator[TestClient]:
    """A client that sends the bupt contributor's key unless a test sends another."""
    app = create_app(settings=settings, api_settings=ApiSettings())
    with TestClient(app, headers=keys.bupt) as client:
        yield client


@pytest.fixture(scope="module")
def submitted(client: TestClient) -> dict[str, Any]:
    """Three good records, one without output and one with a number as output."""
    records = [
        GOOD[0],
        {"instruction": "An item without an output.", "discipline": "data_science"},
        GOOD[1],
        {"instruction": "A number as output", "output": 42, "discipline": "data_science"},
        GOOD[2],
    ]
    response = client.post(
        "/v1/batches", json={"institution_id": "bupt", "records": records}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["error"] == error, body
    assert body["message"]
    return body


# ---------------------------------------------------------------------------------------------
# service
# ---------------------------------------------------------------------------------------------


def test_health_and_openapi_document(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    doc = client.get("/openapi.json").json()
    assert {"/v1/batches", "/v1/records/{record_id}/proof", "/v1/verify"} <= set(doc["paths"])
    upload = doc["paths"]["/v1/batches"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data", "application/x-ndjson"} <= set(upload)
    assert client.get("/docs").status_code == 200


def test_status_reports_positions_and_lag(client: TestClient) -> None:
    status = client.get("/v1/status").json()
    assert status["institutions"] == 5  # the demo institutions of byr init
    assert status["head_position"] >= 5
    assert set(status["projection_positions"].values()) == {status["head_position"]}
    assert status["projection_lag"] == 0


def test_status_never_waits_for_the_writers_turn(
    client: TestClient, settings: LedgerSettings
) -> None:
    """While a writer holds the parts (a long submission), status answers from the projections as
    committed, and says how far behind the log they are."""
    state = client.app.state.byr  # type: ignore[attr-defined]
    assert client.portal is not None
    with Parts(settings) as other:  # another process appends, its projections not caught up
        issued = other.keys.create(role="auditor", label="revoked elsewhere")
        other.log.append(
            f"key-{issued.key_id}",
            [ApiKeyRevoked(key_id=issued.key_id, revoked_by="operator")],
            expected_version=1,
        )
    client.portal.call(state.lock.acquire)
    try:
        status = client.get("/v1/status", timeout=10).json()
        assert status["projection_lag"] >= 1
        assert status["head_position"] > min(status["projection_positions"].values())
    finally:
        client.portal.call(state.lock.release)
    assert client.get("/v1/status").json()["projection_lag"] == 0


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    _error(client.get("/v1/nothing-here"), 404, "NotFound")


def test_app_refuses_to_start_on_an_uninitialized_home(tmp_path: Path) -> None:
    app = create_app(settings=LedgerSettings(home=tmp_path / "empty"))
    with pytest.raises(NotInitialized), TestClient(app):
        pass


# ---------------------------------------------------------------------------------------------
# API token
# ---------------------------------------------------------------------------------------------


def test_every_v1_route_needs_a_valid_key(settings: LedgerSettings, keys: TestKeys) -> None:
    app = create_app(settings=settings, api_settings=ApiSettings())
    attempts = [
        ("POST", "/v1/institutions", {"institution_id": "nobody", "name": "No One"}),
        ("POST", "/v1/batches", {"institution_id": "bupt", "records": GOOD}),
        ("POST", "/v1/dispatch", None),
        ("GET", "/v1/institutions", None),
        ("GET", "/v1/status", None),
        ("GET", "/v1/batches", None),
    ]
    with TestClient(app) as bare:
        for method, path, body in attempts:
            missing = bare.request(method, path, json=body)
            _error(missing, 401, "NotAuthenticated")
            assert missing.headers["www-authenticate"] == "Bearer"
            for wrong in ("x" * 26, "byr_k000000000000_" + "A" * 43):
                answer = bare.request(
                    method, path, json=body, headers={"Authorization": "Bearer " + wrong}
                )
                _error(answer, 401, "InvalidKey")
                assert wrong not in answer.text
        assert bare.get("/health").status_code == 200  # health needs no key
        assert bare.get("/v1/institutions/nobody", headers=keys.admin).status_code == 404


def test_insecure_local_opens_every_route(settings: LedgerSettings) -> None:
    app = create_app(settings=settings, api_settings=ApiSettings(insecure_local=True))
    with TestClient(app) as open_client:
        assert open_client.get("/v1/status").status_code == 200
        assert open_client.get("/v1/keys").status_code == 200


# ---------------------------------------------------------------------------------------------
# institutions
# ---------------------------------------------------------------------------------------------


def test_list_institutions(client: TestClient) -> None:
    ids = [i["institution_id"] for i in client.get("/v1/institutions").json()]
    assert ids == sorted(ids)
    assert {"bupt", "xidian", "uestc", "njupt", "hust"} <= set(ids)


def test_add_institution_then_read_it(client: TestClient) -> None:
    created = client.post(
        "/v1/institutions",
        json={"institution_id": "zju", "name": "Zhejiang University"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["active"] is True and view["academic_tx_hash"].startswith("0x")
    assert client.get("/v1/institutions/zju").json() == view
    assert "zju" in {i["institution_id"] for i in client.get("/v1/institutions").json()}

    again = client.post(
        "/v1/institutions",
        json={"institution_id": "zju", "name": "Zhejiang University", "account": view["account"]},
        headers=ADMIN,
    )
    assert again.status_code == 201 and again.json()["account"] == view["account"]

    other = client.get("/v1/institutions/bupt").json()["account"]
    conflict = client.post(
        "/v1/institutions",
        json={"institution_id": "zju", "name": "Zhejiang University", "account": other},
        headers=ADMIN,
    )
    _error(conflict, 409, "Conflict")


def test_add_institution_validates_the_body(client: TestClient) -> None:
    body = _error(
        client.post("/v1/institutions", json={"institution_id": "Not A Slug!"}, headers=ADMIN),
        422,
        "RequestValidationError",
    )
    locs = {tuple(i["loc"]) for i in body["issues"]}
    assert {("body", "institution_id"), ("body", "name")} <= locs
    bad_account = client.post(
        "/v1/institutions",
        json={"institution_id": "fdu", "name": "Fudan University", "account": "0x123"},
        headers=ADMIN,
    )
    _error(bad_account, 422, "InvalidRequest")


# ---------------------------------------------------------------------------------------------
# submitting
# ---------------------------------------------------------------------------------------------


def test_submission_records_valid_items_and_locates_bad_ones(submitted: dict[str, Any]) -> None:
    assert submitted["recorded"] is True
    assert submitted["items"] == 5 and submitted["valid_records"] == 3
    assert len(submitted["record_ids"]) == 3
    assert all(r.startswith("rec_") for r in submitted["record_ids"])
    assert submitted["status"] == "submitted"
    assert submitted["merkle_root"].startswith("0x") and len(submitted["merkle_root"]) == 66
    problems = {(i["index"], i["field"], i["code"]) for i in submitted["issues"]}
    assert problems == {(1, "output", "missing_field"), (3, "output", "wrong_type")}
    assert all(i["source"] == "records.json" for i in submitted["issues"])


def test_nothing_valid_is_422_with_every_issue(client: TestClient) -> None:
    before = len(client.get("/v1/batches").json())
    body = _error(
        client.post(
            "/v1/batches",
            json={"institution_id": "bupt", "records": [{"instruction": "x"}, "not an object"]},
            headers=AUTH,
        ),
        422,
        "BatchNotRecorded",
    )
    assert {i["index"] for i in body["issues"]} == {0, 1}
    assert len(client.get("/v1/batches").json()) == before


def test_strict_submission_with_a_bad_item_records_nothing(client: TestClient) -> None:
    before = len(client.get("/v1/batches").json())
    body = _error(
        client.post(
            "/v1/batches",
            json={
                "institution_id": "bupt",
                "records": [*GOOD, {"output": "x", "discipline": "data_science"}],
                "strict": True,
            },
            headers=AUTH,
        ),
        422,
        "BatchNotRecorded",
    )
    assert [(i["index"], i["field"]) for i in body["issues"] if i["severity"] == "error"] == [
        (3, "instruction")
    ]
    assert len(client.get("/v1/batches").json()) == before


def test_submission_for_another_or_malformed_institution(client: TestClient) -> None:
    """A contributor key submits for its own institution only, whatever the body names."""
    for other in ("xidian", "nobody", "Bad Id"):
        body = {"institution_id": other, "records": GOOD}
        _error(client.post("/v1/batches", json=body, headers=AUTH), 403, "NotAuthorized")
    missing = client.post("/v1/batches", json={"records": GOOD}, headers=AUTH)
    issues = _error(missing, 422, "RequestValidationError")["issues"]
    assert ["body", "institution_id"] in [i["loc"] for i in issues]


def test_raw_jsonl_upload_records_a_batch_named_like_the_file(
    client: TestClient, keys: TestKeys
) -> None:
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in GOOD) + "\n"
    response = client.post(
        "/v1/batches",
        params={"institution_id": "xidian", "filename": "../uploads/week1.jsonl"},
        content=data.encode("utf-8"),
        headers=keys.xidian | {"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["source"] == "week1.jsonl" and created["valid_records"] == 3
    batch = client.get(f"/v1/batches/{created['batch_id']}", headers=keys.xidian).json()
    assert batch["source_name"] == "week1.jsonl" and batch["institution_id"] == "xidian"


def test_multipart_upload_takes_options_from_form_fields(client: TestClient) -> None:
    pytest.importorskip("python_multipart")
    lines = [json.dumps({k: v for k, v in r.items() if k != "discipline"}) for r in GOOD[:2]]
    response = client.post(
        "/v1/batches",
        files={"file": ("lecture.jsonl", ("\n".join(lines) + "\n").encode(), "application/jsonl")},
        data={"institution_id": "bupt", "discipline": "signal_processing"},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["source"] == "lecture.jsonl" and created["valid_records"] == 2
    record = client.get(f"/v1/records/{created['record_ids'][0]}").json()
    assert record["record"]["discipline"] == "signal_processing"
    assert record["record"]["institution_id"] == "bupt"


def test_a_large_multipart_upload_never_touches_the_disk(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file part above Starlette's 1 MB spooling threshold stays in memory: the batch holds
    personal data until intake has desensitized it. Two files in one form are refused."""
    pytest.importorskip("python_multipart")
    import tempfile

    spooled: list[object] = []
    real = tempfile.TemporaryFile

    def watched(*args: Any, **kwargs: Any) -> Any:
        spooled.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", watched)
    lines = [
        json.dumps(GOOD[0] | {"output": f"{GOOD[0]['output']} 13800138000 ({i}) " + "x" * 2000})
        for i in range(700)
    ]
    body = ("\n".join(lines) + "\n").encode()
    assert len(body) > 1024 * 1024
    response = client.post(
        "/v1/batches",
        files={"file": ("big.jsonl", body, "application/jsonl")},
        data={"institution_id": "bupt"},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    assert response.json()["valid_records"] == 700
    assert spooled == []
    two = client.post(
        "/v1/batches",
        files=[
            ("file", ("a.jsonl", b"{}", "text/plain")),
            ("file", ("b.jsonl", b"{}", "text/plain")),
        ],
        data={"institution_id": "bupt"},
        headers=AUTH,
    )
    _error(two, 422, "UploadRejected")


def test_uploads_that_cannot_be_read(client: TestClient) -> None:
    no_institution = client.post(
        "/v1/batches", content=b"{}", headers=AUTH | {"Content-Type": "application/x-ndjson"}
    )
    issues = _error(no_institution, 422, "RequestValidationError")["issues"]
    assert ["query", "institution_id"] in [i["loc"] for i in issues]
    dot_dot = client.post(
        "/v1/batches",
        params={"institution_id": "bupt", "filename": ".."},
        content=b"{}",
        headers=AUTH | {"Content-Type": "application/x-ndjson"},
    )
    _error(dot_dot, 422, "UploadRejected")
    form = client.post("/v1/batches", data={"institution_id": "bupt"}, headers=AUTH)
    _error(form, 415, "UnsupportedUpload")
    boundary = "0d37f771f3609e9baf6be26654101f5f"
    broken = client.post(
        "/v1/batches",
        content=f"--{boundary}\r\nTrue--{boundary}--\r\n".encode(),
        headers=AUTH | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "True" not in _error(broken, 422, "UploadRejected")["message"]


# ---------------------------------------------------------------------------------------------
# reading batches and records
# ---------------------------------------------------------------------------------------------


def test_batch_views(client: TestClient, submitted: dict[str, Any]) -> None:
    batch_id = submitted["batch_id"]
    assert batch_id in [b["batch_id"] for b in client.get("/v1/batches").json()]
    hust = client.get("/v1/batches?institution_id=hust", headers=ADMIN).json()
    assert hust == []
    _error(client.get("/v1/batches?institution_id=hust"), 403, "NotAuthorized")
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["merkle_root"] == submitted["merkle_root"]
    assert batch["record_count"] == 3
    assert {(i["index"], i["field"]) for i in batch["rejected_at_intake"]} == {
        (1, "output"),
        (3, "output"),
    }
    records = client.get(f"/v1/batches/{batch_id}/records").json()
    assert [r["record_id"] for r in records] == submitted["record_ids"]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert client.get(f"/v1/batches/{batch_id}/records?status=accepted").json() == []
    one = client.get(f"/v1/records/{records[1]['record_id']}").json()
    assert one == records[1]
    assert one["record"]["language"] == "zh" and one["status"] == "pending"


def test_report_before_governance(client: TestClient, submitted: dict[str, Any]) -> None:
    report = client.get(f"/v1/batches/{submitted['batch_id']}/report").json()
    assert report["governed"] is False and report["status"] == "submitted"
    assert report["records"] == 3 and report["merkle_root"] == submitted["merkle_root"]
    assert report["decisions"] is None and report["anchor_tx_hash"] is None


def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in (
        "/v1/institutions/nobody",
        "/v1/batches/0123456789abcdef0123456789abcdef",
        "/v1/batches/0123456789abcdef0123456789abcdef/records",
        "/v1/batches/0123456789abcdef0123456789abcdef/report",
        "/v1/records/rec_00000000000000000000",
        "/v1/records/rec_00000000000000000000/proof",
    ):
        _error(client.get(path), 404, "NotFound")


def test_balances_are_empty_before_any_reward(client: TestClient) -> None:
    assert client.get("/v1/balances").json() == []


# ---------------------------------------------------------------------------------------------
# proofs
# ---------------------------------------------------------------------------------------------


def test_proof_verifies_offline(client: TestClient, submitted: dict[str, Any]) -> None:
    record_id = submitted["record_ids"][0]
    bundle = client.get(f"/v1/records/{record_id}/proof").json()
    assert bundle["record_id"] == record_id and bundle["root"] == submitted["merkle_root"]
    assert bundle["tx_hash"] is None  # not anchored yet
    report = client.post("/v1/verify", params={"offline": True}, json=bundle).json()
    assert report["ok"] is True and report["record_id"] == record_id
    assert {c["name"] for c in report["checks"]} >= {"record_hash", "leaf", "merkle_proof"}


def test_unanchored_bundle_fails_online_with_reasons(
    client: TestClient, submitted: dict[str, Any]
) -> None:
    bundle = client.get(f"/v1/records/{submitted['record_ids'][0]}/proof").json()
    response = client.post("/v1/verify", json=bundle)
    assert response.status_code == 200
    report = response.json()
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert report["ok"] is False and {"anchor_tx", "anchored_root"} <= failed
    assert {"record_hash", "merkle_proof"}.isdisjoint(failed)


def test_tampered_bundle_is_ok_false_naming_the_check(
    client: TestClient, submitted: dict[str, Any]
) -> None:
    bundle = client.get(f"/v1/records/{submitted['record_ids'][2]}/proof").json()
    bundle["record"]["output"] += " Edited."
    response = client.post("/v1/verify?offline=true", json=bundle)
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is False
    assert [c["name"] for c in report["checks"] if not c["ok"]] == ["record_hash"]


def test_malformed_bundle_is_422(client: TestClient, submitted: dict[str, Any]) -> None:
    bundle = client.get(f"/v1/records/{submitted['record_ids'][0]}/proof").json()
    bad = bundle | {"proof": ["0xnothex"], "bundle_version": 2}
    issues = _error(client.post("/v1/verify", json=bad), 422, "RequestValidationError")["issues"]
    locs = [i["loc"] for i in issues]
    assert ["body", "proof", "0"] in locs and ["body", "bundle_version"] in locs
    not_json = client.post(
        "/v1/verify", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    _error(not_json, 422, "RequestValidationError")


# ---------------------------------------------------------------------------------------------
# concurrency
# ---------------------------------------------------------------------------------------------


def test_queries_do_not_wait_for_a_writer(client: TestClient, submitted: dict[str, Any]) -> None:
    """While a writer holds the parts (as a long ``wait=true`` submission does), queries of the
    read models and offline verification still answer."""
    state = client.app.state.byr  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None
    portal.call(state.lock.acquire)
    try:
        assert client.get(f"/v1/batches/{submitted['batch_id']}").status_code == 200
        bundle = client.get(f"/v1/records/{submitted['record_ids'][0]}/proof").json()
        assert client.post("/v1/verify?offline=true", json=bundle).json()["ok"] is True
        assert client.get("/v1/balances").status_code == 200
    finally:
        portal.call(state.lock.release)
    assert client.get("/v1/status").status_code == 200


def test_console_page_reads_the_public_api(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/static/js/main.js">' in page.text
    scripts = "".join(
        client.get(f"/console/static/js/{name}").text
        for name in ("main.js", "pages/overview.js", "pages/data.js", "pages/audit.js")
    )
    for endpoint in ("/v1/keys/me", "/v1/status", "/v1/batches", "/v1/verify", "/proof"):
        assert endpoint in scripts
