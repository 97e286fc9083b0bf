"""The console's chain audit in a real browser against a real ``byr serve``: an auditor checks a
batch's anchor on the academic chain step by step, and reads each institution's balance with the
chain transactions behind it (reward and anchor transaction hashes); at a phone's width too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import ConsoleServer
from tests.console.test_console_browser import DESKTOP, PHONE, Console, console  # noqa: F401

pytestmark = pytest.mark.slow

ANCHOR_CHECKS = ["chain_id", "contract_code", "anchor_tx", "metadata_hash", "anchored_root"]


def _check_anchor(tab: Console, batch_id: str) -> str:
    """Ask for ``batch_id``'s anchor and wait for the verdict or the error; the result's text."""
    page = tab.page
    page.fill("#anchor-batch", batch_id)
    page.click("#anchor-submit")
    page.wait_for_selector("#anchor-result :is(#anchor-verdict, .error)", timeout=60_000)
    return page.inner_text("#anchor-result")


def _anchor_steps(tab: Console) -> dict[str, str | None]:
    return {
        li.get_attribute("data-check") or "": li.get_attribute("data-ok")
        for li in tab.page.query_selector_all("#anchor-verdict li[data-check]")
    }


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_an_auditor_checks_a_batch_anchor_and_the_transactions_behind_balances(
    console: Any,  # noqa: F811 - the fixture imported above
    console_server: ConsoleServer,
    tmp_path: Path,
    viewport: dict[str, int],
) -> None:
    name = "desktop" if viewport is DESKTOP else "phone"
    batch = console_server.get(f"/v1/batches/{console_server.xidian_batch}", "auditor").json()
    assert batch["tx_hash"] and batch["reward_tx_hash"], batch
    tab: Console = console(viewport)
    tab.sign_in("auditor")
    tab.open("audit")
    shown = _check_anchor(tab, console_server.xidian_batch)
    assert tab.page.query_selector("#anchor-verdict") is not None, shown
    assert _anchor_steps(tab) == {check: "true" for check in ANCHOR_CHECKS}
    assert tab.page.get_attribute("#anchor-verdict", "data-ok") == "true"
    verdict = tab.page.inner_text("#anchor-verdict")
    assert batch["tx_hash"] in verdict and batch["contract_address"] in verdict
    tab.check(f"audit-anchor-{name}")

    # an unknown batch: the server's 404, said on the page
    assert "404" in _check_anchor(tab, "0" * 32)
    assert tab.page.query_selector("#anchor-verdict") is None

    tab.open("institutions")
    row = tab.page.query_selector(f"tr[data-batch='{console_server.xidian_batch}']")
    assert row is not None
    assert row.get_attribute("data-reward-tx") == batch["reward_tx_hash"]
    assert row.get_attribute("data-anchor-tx") == batch["tx_hash"]
    titles = [c.get_attribute("title") for c in row.query_selector_all("code")]
    assert batch["reward_tx_hash"] in titles and batch["tx_hash"] in titles
    section = tab.page.inner_text("#txs-xidian")
    assert "Xidian University" in section or "西安电子科技大学" in section
    assert "✓" in tab.page.inner_text("#txs-xidian p.hint")  # the rewards add up to the balance
    tab.check(f"institutions-txs-{name}")

    # from the transactions to the audit: the row's link opens the anchor already checked
    row.query_selector("a[href^='#/audit/anchor/']").click()
    tab.page.wait_for_selector("#anchor-verdict[data-ok=true]")
    assert _anchor_steps(tab) == {check: "true" for check in ANCHOR_CHECKS}
