"""The recipe library over HTTP (``GET /v1/recipes[/{name}]``) answers the document
``byr recipes [NAME] --json`` prints: the same service behind both doors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from ledger.settings import LedgerSettings
from tests.cli import byr, ok_json
from tests.homes import TestKeys, issue_keys


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings, keys: TestKeys) -> Iterator[TestClient]:
    api = ApiSettings(trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        client.headers.update(keys.trainer)
        yield client


def test_the_library_is_the_command_lines(
    client: TestClient, ledger_settings: LedgerSettings
) -> None:
    listed = client.get("/v1/recipes")
    assert listed.status_code == 200, listed.text
    assert listed.json() == ok_json(byr(ledger_settings.home, "recipes", "--json"))
    names = [r["name"] for r in listed.json()]
    assert "knowledge_qa" in names and names == sorted(names)


def test_one_recipe_with_overrides_and_advice(
    client: TestClient, ledger_settings: LedgerSettings
) -> None:
    shown = client.get(
        "/v1/recipes/knowledge_qa",
        params={"set": ["training.learning_rate=0.1", "method_config.rank=64"], "records": 100},
    )
    assert shown.status_code == 200, shown.text
    recipe = shown.json()
    assert recipe["recipe"]["training"]["learning_rate"] == 0.1
    assert recipe["recipe"]["method_config"]["rank"] == 64
    advised = {w["field"] for w in recipe["warnings"]}
    assert {"training.learning_rate", "method_config.rank"} <= advised
    cli = byr(
        ledger_settings.home,
        *("recipes", "knowledge_qa", "--set", "training.learning_rate=0.1"),
        *("--set", "method_config.rank=64", "--records", "100", "--json"),
    )
    assert recipe == ok_json(cli)


def test_unknown_recipes_and_bad_overrides_are_refused(client: TestClient) -> None:
    missing = client.get("/v1/recipes/no_such_recipe")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    # a bundled name only: no file path reaches the recipe loader over HTTP
    assert client.get("/v1/recipes/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    for bad in ("no-equals-sign", "training.nope=1", "training.learning_rate=-1"):
        answer = client.get("/v1/recipes/knowledge_qa", params={"set": bad})
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["message"]
    assert client.get("/v1/recipes", params={"records": 0}).status_code == 422
