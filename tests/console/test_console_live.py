"""The console's overview in a real browser against a real ``byr serve``: the stage throughput
table, and the live event list that grows while the page is open, as submissions arrive through
the API. A contributor's list never shows another institution's event; a server that checks no
keys (``--insecure-local``) says so on every page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import ApiSettings, create_app
from tests.api.test_app import GOOD
from tests.api.test_feed import serve
from tests.console.conftest import XIDIAN_MARKER, ConsoleServer, save_artifact
from tests.homes import initialized_settings

pytestmark = pytest.mark.slow

STAGES = ["intake", "governance", "anchor", "reward", "feed"]
TIMEOUT_MS = 60_000


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "missing message" in m.text else None,
    )
    yield page
    context.close()
    assert errors == []


def sign_in(page: Any, server: ConsoleServer, who: str) -> None:
    page.goto(server.url())
    page.wait_for_selector("main[data-page=signin][data-state=ready]")
    page.fill("#signin-key", server.key_text[who])
    page.click("#signin button[type=submit]")
    page.wait_for_selector("main[data-page=overview][data-state=ready]", timeout=TIMEOUT_MS)


def submit(server: ConsoleServer, who: str, institution: str, records: list[dict[str, Any]]) -> str:
    """A batch recorded through the API (not governed yet); its id."""
    answer = httpx.post(
        server.base + "/v1/batches",
        json={"institution_id": institution, "records": records},
        headers=getattr(server.keys, who),
        timeout=120,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["batch_id"])


def shown_events(page: Any) -> list[dict[str, str]]:
    return list(
        page.eval_on_selector_all(
            "#live-events li",
            "(items) => items.map((li) => ({position: li.dataset.position, type: li.dataset.type,"
            " institution: li.dataset.institution, text: li.textContent}))",
        )
    )


def wait_for_event(page: Any, batch_id: str) -> None:
    """Until the list shows an event of ``batch_id`` (its id is shortened on the page: the title
    holds it whole)."""
    page.wait_for_function(
        "(batch) => [...document.querySelectorAll('#live-events li code')]"
        ".some((c) => c.title === batch)",
        arg=batch_id,
        timeout=TIMEOUT_MS,
    )


def test_overview_shows_throughput_and_live_events_of_the_contributors_own_only(
    console_server: ConsoleServer, tab: Any, tmp_path: Path
) -> None:
    server = console_server
    sign_in(tab, server, "bupt")
    tab.wait_for_selector("#throughput tr[data-stage]", timeout=TIMEOUT_MS)
    assert (
        tab.eval_on_selector_all(
            "#throughput tr[data-stage]", "(rows) => rows.map((r) => r.dataset.stage)"
        )
        == STAGES
    )
    tab.wait_for_function(
        "() => (document.getElementById('live-state')?.textContent || '').length > 0"
    )
    before = int(tab.get_attribute("#live-events", "data-events") or 0)

    # while the page is open: another institution's batch first, then the contributor's own
    theirs = submit(server, "xidian", "xidian", [{**GOOD[0], "institution_id": "xidian"}])
    mine = submit(server, "bupt", "bupt", GOOD[:2])
    wait_for_event(tab, mine)
    events = shown_events(tab)
    assert int(tab.get_attribute("#live-events", "data-events") or 0) > before
    assert events and {e["institution"] for e in events} == {"bupt"}
    submitted = [e for e in events if e["type"] == "CorpusBatchSubmitted"]
    assert submitted and "批次已提交" in submitted[0]["text"]
    text = tab.inner_text("main")
    assert theirs not in text and server.xidian_batch not in text and XIDIAN_MARKER not in text
    # the newest first, each once
    positions = [int(e["position"]) for e in events]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)

    # the throughput table counts the contributor's records at its next refresh
    tab.wait_for_function(
        "() => Number(document.querySelector('#throughput tr[data-stage=intake]')"
        "?.dataset.records || 0) >= 2",
        timeout=TIMEOUT_MS,
    )
    save_artifact(tmp_path, tab, "overview-live-contributor")
    shown = tab.query_selector_all("#live-events li code")
    assert all(c.get_attribute("title") != theirs for c in shown)


def test_an_auditor_sees_every_institutions_events(
    console_server: ConsoleServer, tab: Any, tmp_path: Path
) -> None:
    server = console_server
    sign_in(tab, server, "auditor")
    tab.wait_for_selector("#live-events li", timeout=TIMEOUT_MS)
    theirs = submit(server, "xidian", "xidian", [{**GOOD[1], "institution_id": "xidian"}])
    wait_for_event(tab, theirs)
    assert "xidian" in {e["institution"] for e in shown_events(tab)}
    # summaries only: no text of the records streams to anyone
    assert GOOD[1]["instruction"] not in tab.inner_text("main")
    tab.click("#lang")
    tab.wait_for_selector("main[data-page=overview][data-state=ready]", timeout=TIMEOUT_MS)
    tab.wait_for_selector("#live-events li", timeout=TIMEOUT_MS)
    assert tab.inner_text("#throughput-title").startswith("Stage throughput")
    save_artifact(tmp_path, tab, "overview-live-auditor-en")


def test_a_server_without_keys_shows_a_warning_on_every_page(
    tab: Any, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    settings = initialized_settings(tmp_path_factory.mktemp("insecure-home"))
    insecure = ApiSettings(insecure_local=True, trainer=False)
    app = create_app(settings=settings, api_settings=insecure)
    with serve(app) as base:
        tab.goto(base + "/console")
        tab.wait_for_selector("main[data-page=overview][data-state=ready]", timeout=TIMEOUT_MS)
        banner = tab.wait_for_selector("#insecure-banner[role=alert]")
        assert banner is not None and "--insecure-local" in banner.inner_text()
        tab.evaluate("() => { location.hash = '#/data'; }")
        tab.wait_for_selector("main[data-page=data][data-state=ready]", timeout=TIMEOUT_MS)
        assert tab.is_visible("#insecure-banner")
        save_artifact(tmp_path, tab, "insecure-banner")
