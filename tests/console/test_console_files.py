"""The console's files as the server serves them, without a browser: a page with no inline code,
every file it loads served from this server, a fixed list of files (no path reaches another),
the two languages with the same messages, and scripts that insert API values as text only."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.console import STATIC, static_files
from ledger.settings import LedgerSettings

SCRIPTS = sorted((STATIC / "js").rglob("*.js"))
#: DOM and JS features that parse markup or code; the console never needs them.
PARSES_MARKUP = re.compile(
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
    r"createContextualFragment|setAttribute\(\s*[\"'](?:style|on)"
)


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings) -> Iterator[TestClient]:
    api = ApiSettings(trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        yield client


def test_the_page_loads_only_files_of_this_server(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200
    html = page.text
    assert "://" not in html  # no CDN, no absolute URL
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html)
    urls = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert {"/console/static/js/main.js", "/console/static/console.css"} <= set(urls)
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].split(";")[0] in (
            "text/javascript",
            "text/css",
            "image/svg+xml",
        ), url


def test_every_module_import_resolves_to_a_served_file(client: TestClient) -> None:
    served = static_files()
    for script in SCRIPTS:
        for target in re.findall(r'^import .* from "([^"]+)";$', script.read_text(), re.M):
            resolved = (script.parent / target).resolve().relative_to(STATIC.resolve())
            assert resolved.as_posix() in served, f"{script.name} imports {target}"
            path = "/console/static/" + resolved.as_posix()
            assert client.get(path).status_code == 200, path


def test_only_the_listed_files_are_served(client: TestClient) -> None:
    assert "js/main.js" in static_files() and "i18n/zh.json" in static_files()
    assert not any(name.endswith(".LICENSE") for name in static_files())
    for path in (
        "/console/static/js/nope.js",
        "/console/static/../__init__.py",
        "/console/static/%2e%2e/__init__.py",
        "/console/static/..%2F__init__.py",
        "/console/static/vendor/uPlot.LICENSE",
        "/console/static/",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "router = APIRouter" not in answer.text


def test_both_languages_have_every_message() -> None:
    zh = json.loads((STATIC / "i18n" / "zh.json").read_text("utf-8"))
    en = json.loads((STATIC / "i18n" / "en.json").read_text("utf-8"))
    assert zh.keys() == en.keys()
    assert all(v.strip() for v in [*zh.values(), *en.values()])
    # whole keys only (t("role." + role) builds one: the roles are checked below)
    key = re.compile(r'\bt\("([a-z_.0-9]+[a-z0-9])"')
    used = {k for script in SCRIPTS for k in key.findall(script.read_text())}
    roles = ("admin", "contributor", "auditor", "trainer", "local")
    assert {f"role.{r}" for r in roles} <= zh.keys()
    assert used and used <= zh.keys(), sorted(used - zh.keys())
    # placeholders match between the languages
    for key in zh:
        assert set(re.findall(r"\{\w+\}", zh[key])) == set(re.findall(r"\{\w+\}", en[key])), key


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(STATIC)))
def test_scripts_insert_api_values_as_text_only(script: Path) -> None:
    text = script.read_text()
    assert not PARSES_MARKUP.search(text), PARSES_MARKUP.search(text)
    # the key lives in sessionStorage only
    if "localStorage." in text:
        assert script.name == "i18n.js", "only the language choice is kept in localStorage"
    assert "EventSource" not in text.replace("EventSource cannot", "")
