"""Request-validation errors locate the problem without repeating what the client sent.

An unknown key, the key of a free-form mapping and a rejected value can each be personal data, so
none of them may come back in a 422 body (``loc``, ``message`` or anywhere else). The routes are
those of the real app over an initialized home; the message rules are also checked on a bare app
with the same handlers, for error types no route of ours produces yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.app import ApiSettings, create_app
from api.errors import KEY_PLACEHOLDER, install_error_handlers
from ledger.settings import LedgerSettings

AUTH: dict[str, str] = {}
"""No key: these tests are about messages, so the app runs with ``insecure_local``."""

EMAIL = "wang.fang@example.com"
PHONE = "13812345678"
SENT = (EMAIL, PHONE, "wang.fang", "1381234")


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings) -> Iterator[TestClient]:
    app = create_app(settings=ledger_settings, api_settings=ApiSettings(insecure_local=True))
    with TestClient(app) as client:
        yield client


def issues_of(response: Any) -> list[dict[str, Any]]:
    """The issues of a 422 validation error that quotes nothing the client sent."""
    assert response.status_code == 422, response.text
    for sent in SENT:
        assert sent not in response.text
    body = response.json()
    assert body["error"] == "RequestValidationError"
    assert set(body) == {"error", "message", "issues"}
    for issue in body["issues"]:
        assert set(issue) == {"loc", "message", "type"}
    return list(body["issues"])


def by_location(issues: list[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(issue["loc"]): issue for issue in issues}


def test_an_unknown_key_and_a_bad_value_in_a_json_body(client: TestClient) -> None:
    body = {"institution_id": "bupt", "records": [], "strict": PHONE, EMAIL: PHONE}
    issues = by_location(issues_of(client.post("/v1/batches", json=body, headers=AUTH)))
    assert issues[("body", KEY_PLACEHOLDER)]["type"] == "extra_forbidden"
    assert issues[("body", KEY_PLACEHOLDER)]["message"] == "Extra inputs are not permitted"
    assert issues[("body", "strict")]["type"] == "bool_parsing"


def test_a_route_body_validated_by_fastapi(client: TestClient) -> None:
    body = {"institution_id": f"{EMAIL} {PHONE}", "name": "Fudan University", EMAIL: PHONE}
    response = client.post("/v1/institutions", json=body, headers=AUTH)
    issues = by_location(issues_of(response))
    assert issues[("body", "institution_id")]["type"] == "string_pattern_mismatch"
    assert issues[("body", "institution_id")]["message"].startswith("String should match pattern")
    assert issues[("body", KEY_PLACEHOLDER)]["type"] == "extra_forbidden"
    assert "body.institution_id: String should match pattern" in response.json()["message"]


def test_form_fields_and_query_parameters(client: TestClient) -> None:
    form = client.post(
        "/v1/batches",
        data={"institution_id": "bupt", "wait": PHONE, EMAIL: PHONE},
        files={"file": ("records.json", b"[]", "application/json")},
        headers=AUTH,
    )
    issues = by_location(issues_of(form))
    assert set(issues) == {("form", "wait"), ("form", KEY_PLACEHOLDER)}
    query = client.post(f"/v1/verify?offline={PHONE}", json={})
    assert ("query", "offline") in by_location(issues_of(query))


def test_keys_of_a_free_form_mapping_and_values_quoted_by_a_validator(client: TestClient) -> None:
    bundle = {
        "batch_id": "batch",
        "record": {EMAIL: int(PHONE)},
        "salt": PHONE,
        "record_hash": "0x" + "00" * 32,
        "leaf": "0x" + "00" * 32,
        "proof": [PHONE],
        "root": "0x" + "00" * 32,
    }
    issues = by_location(issues_of(client.post("/v1/verify", json=bundle)))
    assert issues[("body", "record", KEY_PLACEHOLDER)]["type"] == "string_type"
    # The bundle's hex validator quotes the value it rejects; its message is not passed on.
    assert issues[("body", "proof", "0")]["type"] == "value_error"
    assert issues[("body", "proof", "0")]["message"] == "Value error, <value>"
    assert issues[("body", "salt")]["type"] == "value_error"


def test_a_body_that_is_not_json(client: TestClient) -> None:
    response = client.post(
        "/v1/verify",
        content=f'{{"{EMAIL}": "{PHONE}"'.encode(),
        headers={"Content-Type": "application/json"},
    )
    [issue] = issues_of(response)
    assert issue["type"] == "json_invalid"
    assert issue["message"].startswith("Invalid JSON: ")


class Cat(BaseModel):
    kind: Literal["cat"]


class Dog(BaseModel):
    kind: Literal["dog"]


def _no_digits(value: str) -> str:
    if any(c.isdigit() for c in value):
        raise ValueError(f"{value!r} has digits")
    return value


class Pet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    animal: Cat | Dog = Field(discriminator="kind")
    scores: dict[str, int] = {}
    nickname: Annotated[str, AfterValidator(_no_digits)] = "rex"
    size: Literal["small", "large"] = "small"


@pytest.fixture(scope="module")
def bare_client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/pets")
    def add_pet(pet: Pet) -> dict[str, str]:
        return {"kind": pet.animal.kind}

    return TestClient(app)


def test_messages_keep_what_the_schema_says_and_drop_what_the_client_sent(
    bare_client: TestClient,
) -> None:
    pet = {
        "animal": {"kind": EMAIL},
        "scores": {EMAIL: f"+{PHONE}x"},
        "nickname": PHONE,
        "size": PHONE,
    }
    issues = by_location(issues_of(bare_client.post("/pets", json=pet)))
    tag = issues[("body", "animal")]
    assert tag["type"] == "union_tag_invalid"
    assert tag["message"] == (
        "Input tag '<value>' found using 'kind' does not match any of the expected tags: "
        "'cat', 'dog'"
    )
    assert issues[("body", "scores", KEY_PLACEHOLDER)]["type"] == "int_parsing"
    assert issues[("body", "nickname")]["message"] == "Value error, <value>"
    assert issues[("body", "size")]["message"] == "Input should be 'small' or 'large'"


def test_a_valid_request_is_unaffected(bare_client: TestClient) -> None:
    response = bare_client.post("/pets", json={"animal": {"kind": "dog"}, "scores": {"a": 1}})
    assert response.status_code == 200
    assert response.json() == {"kind": "dog"}
