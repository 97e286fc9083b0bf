"""The web console in a real browser (headless Chromium through Playwright) against a real
``byr serve``: each role signs in with its key and uses the pages its role may use.

The end-to-end test walks the console as its users do: a contributor uploads a question bank with
its column mapping and sees the governance report, a record with its flagged spans and redaction
placeholders, search hits, erasure and a proof bundle; an auditor verifies that bundle and sees
the proof path; a trainer reads the recipe library, starts, stops and resumes a run on the tiny
model while its loss curve fills, and talks to the adapter next to its base. Every page is checked
with axe-core (no serious or critical violation) and at a phone's width (390 px, no sideways
scrolling); screenshots go to the test's tmp folder and to var/test-artifacts/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli import ROOT
from tests.console.conftest import AXE, XIDIAN_MARKER, ConsoleServer, save_artifact

pytestmark = pytest.mark.slow

EXAMPLES = ROOT / "examples"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
#: A run that takes a few seconds on the tiny model (as tests/api/test_training_http.py).
QUICK = {
    "training.max_seq_length": 64,
    "training.batch_size": 4,
    "training.learning_rate": 0.01,
    "training.warmup_ratio": 0,
    "training.scheduler": "constant",
    "training.checkpoint_every": 0,
    "training.val_size": 2,
    "training.eval_steps": 2,
}
GOVERNANCE_TIMEOUT_MS = 300_000  # the first governed upload loads the embedding models
RUN_TIMEOUT_MS = 180_000


def reader_pages(server: ConsoleServer) -> list[str]:
    """The navigation of a contributor or an auditor: evaluations too where they are served."""
    paths = httpx.get(server.base + "/openapi.json", timeout=60).json()["paths"]
    pages = ["#/overview", "#/data", "#/institutions", "#/audit"]
    return [*pages, "#/evaluations"] if "/v1/evaluations" in paths else pages


class Console:
    """One browser tab on the console, with the checks every page gets."""

    def __init__(
        self, server: ConsoleServer, browser: Any, tmp_path: Path, viewport: dict[str, int]
    ) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.viewport = viewport
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        # axe-core comes in through the browser's own channel: the page's CSP allows no script
        # that is not a file of the server, and the check must not need that loosened
        self.context.add_init_script(path=str(AXE))
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", self._console_message)

    def _console_message(self, message: Any) -> None:
        # a message key without a translation (i18n.js warns), never a refused request: the
        # role-boundary test asks for what it may not read on purpose
        if message.type == "warning" and "missing message" in message.text:
            self.errors.append(f"console: {message.text}")

    def close(self) -> None:
        self.context.close()

    # -- navigation ---------------------------------------------------------------------------

    def sign_in(self, who: str) -> None:
        self.page.goto(self.server.url())
        self.page.wait_for_selector("main[data-page=signin][data-state=ready]")
        self.page.fill("#signin-key", self.server.key_text[who])
        self.page.click("#signin button[type=submit]")
        self.page.wait_for_selector("nav a")
        self.ready()

    def sign_out(self) -> None:
        self.page.click("#signout")
        self.page.wait_for_selector("main[data-page=signin][data-state=ready]")

    def open(self, hash_path: str, *, state: str = "ready") -> None:
        """Go to ``#/hash_path`` and wait for its first answer."""
        self.page.evaluate(
            "(hash) => { document.getElementById('main').dataset.state = 'stale';"
            " location.hash = hash; }",
            "#/" + hash_path,
        )
        self.ready(state)

    def ready(self, state: str = "ready") -> None:
        self.page.wait_for_selector(f"main[data-state={state}]", timeout=60_000)

    def nav(self) -> list[str]:
        return [a.get_attribute("href") or "" for a in self.page.query_selector_all("nav a")]

    def main_text(self) -> str:
        return self.page.inner_text("main")

    # -- checks -------------------------------------------------------------------------------

    def check(self, name: str) -> None:
        """axe-core finds no serious or critical violation; at a phone's width nothing scrolls
        sideways; a screenshot is kept."""
        violations = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ["violations"]});
                return result.violations
                    .filter((v) => v.impact === "serious" || v.impact === "critical")
                    .map((v) => `${v.id} (${v.impact}): ${v.help} at ` +
                        v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "));
            }"""
        )
        assert violations == [], f"{name}: accessibility violations:\n" + "\n".join(violations)
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= self.viewport["width"], f"{name}: {width} px wide at {self.viewport}"
        save_artifact(self.tmp_path, self.page, name)
        assert self.errors == [], self.errors

    def wait_points(self, chart: str, more_than: int, timeout: int = RUN_TIMEOUT_MS) -> int:
        self.page.wait_for_function(
            "([chart, n]) => Number(document.querySelector(`[data-chart=${chart}]`)"
            "?.dataset.points || 0) > n",
            arg=[chart, more_than],
            timeout=timeout,
        )
        return self.points(chart)

    def points(self, chart: str, name: str = "points") -> int:
        value = self.page.get_attribute(f"[data-chart={chart}]", f"data-{name}")
        return int(value or 0)


@pytest.fixture
def console(console_server: ConsoleServer, browser: Any, tmp_path: Path) -> Iterator[Any]:
    tabs: list[Console] = []

    def open_tab(viewport: dict[str, int] = DESKTOP) -> Console:
        tab = Console(console_server, browser, tmp_path, viewport)
        tabs.append(tab)
        return tab

    yield open_tab
    for tab in tabs:
        tab.close()


def _mapping() -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / "question_bank_mapping.yaml").read_text("utf-8"))
    return dict(document["columns"])


def _upload(tab: Console, path: Path) -> str:
    """Submit the chosen file from the upload form; the batch id its report link names."""
    page = tab.page
    assert page.is_checked("#upload-wait")
    page.click("#upload-submit")
    link = page.wait_for_selector(
        "#upload-result a[href^='#/data/batch/']", timeout=GOVERNANCE_TIMEOUT_MS
    )
    assert link is not None
    assert page.inner_text("#upload-state") in ("已记录。", "Recorded.")
    return (link.get_attribute("href") or "").rsplit("/", 1)[-1]


def _contributor_uploads_and_reads(tab: Console, tmp_path: Path) -> dict[str, Any]:
    server = tab.server
    page = tab.page
    tab.sign_in("bupt")
    # Chinese first; the switch is remembered for this browser (not for the key)
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert tab.nav() == reader_pages(server)
    assert page.inner_text("nav a[href='#/data']") == "数据中心"
    page.click("#lang")
    assert page.get_attribute("html", "lang") == "en"
    tab.ready()
    assert page.inner_text("nav a[href='#/data']") == "Data hub"
    # the key stays in this tab's session storage: never local storage, never a URL
    key = server.key_text["bupt"]
    assert page.evaluate("sessionStorage.getItem('byr-console-key')") == key
    assert not page.evaluate("(k) => Object.values(localStorage).some((v) => v.includes(k))", key)
    page.wait_for_selector("[data-stat=head] .value")
    tab.check("contributor-overview")

    # a question bank, its columns mapped as examples/question_bank_mapping.yaml maps them
    tab.open("data")
    page.set_input_files("#upload-file", str(EXAMPLES / "question_bank_zh.csv"))
    page.wait_for_selector("#map-instruction")
    mapping = _mapping()
    for name, column in mapping.items():
        if isinstance(column, list):
            for each in column:
                page.check(f"#map-options input[value='{each}']")
        else:
            page.select_option(f"#map-{name}", column)
    assert json.loads(page.inner_text("#map-preview")) == mapping
    tab.check("contributor-upload-mapper")
    bank_batch = _upload(tab, EXAMPLES / "question_bank_zh.csv")

    # a JSONL batch whose records hold personal data: redacted at intake, flagged
    pii = tmp_path / "pii.jsonl"
    lines = (EXAMPLES / "governance_cases.jsonl").read_text("utf-8").splitlines()
    pii.write_text("\n".join(lines[6:8]) + "\n", encoding="utf-8")
    page.set_input_files("#upload-file", str(pii))
    assert page.query_selector("#map-instruction") is None  # JSON needs no mapper
    pii_batch = _upload(tab, pii)

    # the question bank's governance report: every question accepted
    tab.open(f"data/batch/{bank_batch}")
    page.wait_for_selector("#report table")
    report = tab.main_text()
    assert "12 / 12" in report and "question_bank_zh.csv" in report
    tab.check("contributor-report")
    first = page.query_selector("#report tbody a")
    assert first is not None
    bank_record = first.inner_text()
    first.click()
    tab.ready()
    assert "误码率" in page.inner_text("#record-texts")
    with page.expect_download() as download:
        page.click("#proof-download")
    bundle = tmp_path / "bundle.json"
    download.value.save_as(bundle)
    assert json.loads(bundle.read_text())["record_id"] == bank_record
    tab.check("contributor-record")

    # the record with personal data: the flagged span is the placeholder, at its offsets
    pii_report = server.get(f"/v1/batches/{pii_batch}/report", "bupt").json()
    flagged = next(d for d in pii_report["decisions"] if d["flags"])
    tab.open(f"data/record/{flagged['record_id']}")
    texts = page.inner_text("#record-texts")
    assert "[EMAIL]" in texts or "[PHONE]" in texts
    marked = page.query_selector_all("#record-texts mark.flag .placeholder")
    assert marked and all(re.fullmatch(r"\[[A-Z_]+\]", m.inner_text()) for m in marked)
    assert "wei.zhang2021@example.com" not in tab.main_text()
    tab.check("contributor-record-flags")

    # erase it, after confirming with a reason
    page.click("#erase")
    page.fill("#erase-reason", "withdrawn by the author")
    tab.check("contributor-erase-dialog")
    page.evaluate("document.getElementById('main').dataset.state = 'stale'")
    page.click("#erase-confirm")
    tab.ready()
    erased = server.get(f"/v1/records/{flagged['record_id']}", "bupt").json()
    assert erased["status"] == "erased" and erased["record"] is None
    assert page.query_selector("#erase") is None

    # hybrid search over its own records, hits marked in the text
    tab.open("data")
    page.fill("#search-q", "误码率")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-results li[data-record]")
    assert page.query_selector_all("#search-results mark.hit")
    assert bank_record in page.inner_text("#search-results")
    tab.check("contributor-search")

    tab.open("institutions")
    balances = tab.main_text()
    assert "Beijing University of Posts and Telecommunications" in balances
    assert "BYR" in balances
    tab.check("contributor-institutions")
    tab.sign_out()
    return {"bank_batch": bank_batch, "bank_record": bank_record, "bundle": bundle}


def _auditor_verifies(tab: Console, bundle: Path) -> None:
    page = tab.page
    tab.sign_in("auditor")
    assert tab.nav() == reader_pages(tab.server)
    tab.open("audit")
    page.set_input_files("#bundle-file", str(bundle))
    # A function, not an expression: Playwright polls an expression with eval (the CSP forbids it).
    page.wait_for_function("() => document.getElementById('bundle-text').value.length > 0")
    page.click("#verify-submit")
    page.wait_for_selector("#verdict")
    assert page.query_selector("#verdict h2 .ok") is not None
    checks = page.query_selector_all("#verdict li[data-check]")
    assert len(checks) >= 10
    assert all(c.get_attribute("data-ok") == "true" for c in checks)
    # the path drawn from the bundle: leaf, one level per sibling, the root it recomputes
    levels = page.query_selector_all("#proof-path li")
    proof = json.loads(bundle.read_text())["proof"]
    assert len(levels) == len(proof) + 2
    assert "ok" in (page.get_attribute("#path-verdict", "class") or "")
    tab.check("auditor-verified")
    tab.open("institutions")
    assert "Xidian University" in tab.main_text()  # an auditor reads every balance
    tab.check("auditor-institutions")
    tab.sign_out()


def _fill_run_form(tab: Console, *, max_steps: int) -> None:
    page = tab.page
    page.fill("#run-max-steps", str(max_steps))
    page.fill("#run-overrides", "\n".join(f"{k}={json.dumps(v)}" for k, v in QUICK.items()))


def _metrics_events(server: ConsoleServer, run_id: str) -> int:
    """How many events the run's metrics file holds, read as a client resumes: each answer
    (follow=false) ends at an ``end`` line, and a resumed run has one per stop."""
    last: str | None = None
    count = 0
    while True:
        headers = {**server.keys.trainer, **({"Last-Event-ID": last} if last else {})}
        answer = httpx.get(
            f"{server.base}/v1/training/runs/{run_id}/metrics",
            params={"follow": "false"},
            headers=headers,
            timeout=60,
        )
        ids = re.findall(r"^id: (\d+)$", answer.text, re.MULTILINE)
        if not ids:
            return count
        count += len(ids)
        last = ids[-1]


def _trainer_trains_and_chats(tab: Console) -> str:
    page = tab.page
    tab.sign_in("trainer")
    assert "#/training" in tab.nav() and "#/chat" in tab.nav()
    assert "#/institutions" not in tab.nav()  # balances are not a trainer's
    tab.open("training")
    page.click("button[data-recipe=knowledge_qa]")
    page.wait_for_selector("#recipe-detail [data-shown=knowledge_qa]")
    tab.check("trainer-recipes")

    # a long run: stopped, resumed on the same curve, stopped again
    _fill_run_form(tab, max_steps=5000)
    page.click("#run-check")
    page.wait_for_selector("#run-advice li")
    assert "training.learning_rate" in page.inner_text("#run-advice")
    page.click("#run-start")
    page.wait_for_selector("#run-status")
    tab.ready()
    tab.wait_points("loss", 0)
    page.click("#run-stop:not([disabled])", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector("#run-status[data-status=stopped]", timeout=RUN_TIMEOUT_MS)
    stopped_at = tab.points("loss")
    page.click("#run-resume:not([disabled])")
    tab.wait_points("loss", stopped_at)
    page.click("#run-stop:not([disabled])", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector("#run-status[data-status=stopped]", timeout=RUN_TIMEOUT_MS)
    # the page got every line of the run's metrics once, across the stop and the resume
    run_id = page.evaluate("location.hash").rsplit("/", 1)[-1]
    page.wait_for_function(
        "(n) => Number(document.getElementById('run-latest').dataset.events) === n",
        arg=_metrics_events(tab.server, run_id),
        timeout=RUN_TIMEOUT_MS,
    )

    # a short run to its end: loss and eval-loss points, then anchored with its lineage
    tab.open("training")
    _fill_run_form(tab, max_steps=6)
    page.click("#run-start")
    page.wait_for_selector("#run-status")
    tab.ready()
    page.wait_for_selector("#run-status[data-status=anchored]", timeout=RUN_TIMEOUT_MS)
    assert tab.wait_points("loss", 5) == 6
    assert tab.points("loss", "eval-points") >= 1
    assert tab.wait_points("lr", 0) == 6 and tab.wait_points("tps", 0) == 6
    page.wait_for_selector("#lineage")
    run_hash = page.evaluate("location.hash").rsplit("/", 1)[-1]
    tab.check("trainer-run")

    # the adapter's answer and its base's, streamed side by side
    tab.open("chat")
    page.fill("#chat-prompt", "什么是误码率？")
    page.fill("#chat-max-tokens", "8")
    page.click("#chat-send")
    for side in ("adapter", "base"):
        page.wait_for_selector(
            f"#chat-{side}-log .bubble.assistant[data-state=done]", timeout=RUN_TIMEOUT_MS
        )
        stats = page.inner_text(f"#chat-{side}-log .bubble.assistant .who:last-child")
        assert re.search(r"\d+", stats), stats
    tab.check("trainer-chat")
    tab.sign_out()
    return run_hash


def test_console_end_to_end(console: Any, tmp_path: Path) -> None:
    desktop: Console = console(DESKTOP)
    made = _contributor_uploads_and_reads(desktop, tmp_path)
    _auditor_verifies(desktop, made["bundle"])
    run = _trainer_trains_and_chats(desktop)

    # every page of every role again at a phone's width (in Chinese, the default)
    phone: Console = console(PHONE)
    pages = {
        "bupt": [
            "overview",
            "data",
            f"data/batch/{made['bank_batch']}",
            f"data/record/{made['bank_record']}",
            "institutions",
            "audit",
        ],
        "auditor": ["overview", "data", "institutions"],
        "trainer": ["overview", "data", "training", f"training/run/{run}", "chat"],
        "admin": ["overview", f"data/batch/{made['bank_batch']}", "institutions", "training"],
    }
    for who, hashes in pages.items():
        phone.sign_in(who)
        for hash_path in hashes:
            phone.open(hash_path)
            if hash_path.startswith("training/run/"):
                phone.page.wait_for_selector("#lineage")
            named = [part for part in hash_path.split("/") if len(part) < 20]
            phone.check("-".join(["phone", who, *named]))
        if who == "auditor":
            phone.open("audit")
            phone.page.fill("#bundle-text", made["bundle"].read_text())
            phone.page.click("#verify-submit")
            phone.page.wait_for_selector("#proof-path")
            phone.check("phone-auditor-audit")
        phone.sign_out()
    phone.check("phone-signin")


def test_a_contributor_never_sees_another_institutions_data(
    console: Any, console_server: ConsoleServer
) -> None:
    tab: Console = console(DESKTOP)
    tab.sign_in("bupt")
    assert "#/training" not in tab.nav() and "#/chat" not in tab.nav()
    secrets = (XIDIAN_MARKER, console_server.xidian_batch, "xidian-private.jsonl")
    for hash_path in ("overview", "data", "institutions", "audit"):
        tab.open(hash_path)
        shown = tab.main_text()
        assert not [s for s in secrets if s in shown], hash_path
    assert "Xidian University" not in tab.main_text()
    # the other institution's batch and record, asked for by id: refused, nothing shown
    for hash_path in (
        f"data/batch/{console_server.xidian_batch}",
        f"data/record/{console_server.xidian_record}",
    ):
        tab.open(hash_path, state="failed")
        shown = tab.main_text()
        assert "403" in shown and XIDIAN_MARKER not in shown
    tab.open("data")
    tab.page.fill("#search-q", "water-filling power allocation")
    tab.page.click("#search-form button[type=submit]")
    tab.page.wait_for_selector("#search-results p")
    assert XIDIAN_MARKER not in tab.page.inner_text("#search-results")
    # a page the role may not use falls back to the overview
    tab.open("training")
    assert tab.page.get_attribute("main", "data-page") == "overview"
    # a key the server refuses signs the tab out
    tab.page.evaluate("sessionStorage.setItem('byr-console-key', 'byr_k000000000000_x')")
    tab.page.evaluate("location.reload()")
    tab.page.wait_for_selector("main[data-page=signin][data-state=ready]")
    assert tab.page.evaluate("sessionStorage.getItem('byr-console-key')") is None


def test_evaluations_are_listed_with_their_scores(
    console: Any, console_server: ConsoleServer
) -> None:
    events = pytest.importorskip("ledger.events")
    if not hasattr(events, "EvaluationCompleted"):
        pytest.skip("this ledger records no evaluations")
    from api.composition import Parts
    from ledger.ids import evaluation_stream

    completed = events.EvaluationCompleted(
        report_id="eval-console",
        report_sha256="ab" * 32,
        report_dir="/srv/eval/reports/eval-console",
        base_model="tiny",
        base_model_hash="cd" * 32,
        models=[
            events.EvaluatedModel(name="base", items_scored=40, overall=0.25),
            events.EvaluatedModel(
                name="knowledge_qa adapter",
                adapter_hash="ef" * 32,
                run_id="run-console",
                items_scored=39,
                items_refused=1,
                overall=0.62,
                forgetting_flags=2,
            ),
        ],
        benchmark_name="seed",
        benchmark_version="1.0.0",
        benchmark_hash="12" * 32,
        items=40,
        cells=6,
        control_items=8,
        started_at="2026-01-01T00:00:00+00:00",
        seconds=12.5,
    )
    with Parts(console_server.settings) as parts:
        parts.ledger.append(evaluation_stream("eval-console"), [completed], expected_version=0)
    for viewport in (DESKTOP, PHONE):
        tab: Console = console(viewport)
        tab.sign_in("auditor")
        tab.open("evaluations")
        tab.page.click("#evaluations a[href='#/evaluations/eval-console']")
        # the click changes the hash; the page is drawn once both of its requests answered
        tab.page.wait_for_selector("#heatmap-missing")
        tab.ready()
        cells = tab.page.query_selector_all("td.heat")
        assert [c.inner_text() for c in cells] == ["0.25", "0.62"]
        colours = [c.evaluate("(td) => getComputedStyle(td).backgroundColor") for c in cells]
        assert len(set(colours)) == 2, colours  # each score on its own colour of the scale
        # its report file is not on this server: said so, no heatmap
        assert tab.page.is_visible("#heatmap-missing")
        assert tab.page.query_selector_all("table.heatmap") == []
        tab.check(f"evaluation-{viewport['width']}")


def test_an_evaluation_report_is_shown_as_heatmaps(
    console: Any, console_server: ConsoleServer, tmp_path: Path
) -> None:
    """A real evaluation on the server's home (the base and a tiny adapter, one item in each of
    two cells): its heatmap per model and dimension, the deltas, flags and contamination."""
    from api.composition import Parts
    from api.services.evaluation import EvaluationRequest, EvaluationService
    from tests.trainer.conftest import sample_records
    from tests.trainer.eval.adapters import train_tiny_adapter

    home = console_server.home
    adapter = train_tiny_adapter(
        tmp_path / "adapter", records=sample_records(12), cache_dir=home / "models"
    )
    with Parts(console_server.settings) as parts:
        service = EvaluationService(
            ledger=parts.ledger, eval_dir=home / "eval", model_cache_dir=home / "models"
        )
        done = service.evaluate(
            EvaluationRequest(
                models=["base", str(adapter)],
                cells=["information_theory:knowledge_qa", "computer_networks:teaching_dialogue"],
                limit=1,
                max_new_tokens=4,
                glossary_terms=0,
            )
        )
    report_id = done["report_id"]
    for viewport, name in ((DESKTOP, "evaluation-heatmap"), (PHONE, "evaluation-heatmap-390")):
        tab: Console = console(viewport)
        tab.sign_in("auditor")
        tab.open(f"evaluations/{report_id}")
        tab.page.wait_for_selector("table.heatmap td.heat-cell")
        tables = tab.page.query_selector_all("table.heatmap")
        assert [t.get_attribute("data-model") for t in tables] == ["base", str(adapter)]
        cells = tab.page.query_selector_all("table.heatmap td.heat-cell[data-value]")
        assert len(cells) == 4  # two cells per model
        for cell in cells:
            assert re.fullmatch(r"\d\.\d{3}", cell.query_selector(".score").inner_text())
            colour = cell.evaluate("(td) => getComputedStyle(td).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
        heads = [th.inner_text() for th in tables[0].query_selector_all("tbody th")]
        assert len(heads) == 2 and all(heads)
        assert "#/evaluations" in tab.nav()
        assert tab.page.is_visible("#forgetting") and tab.page.is_visible("#contamination")
        # another dimension, then the deltas of the adapter against the base
        tab.page.select_option("#heatmap-dimension", "teaching")
        tab.page.wait_for_selector("table.heatmap td.heat-cell[data-value]")
        tab.page.check("#heatmap-deltas")
        tab.page.wait_for_selector("table.heatmap td.heat-cell.delta")
        adapter_cells = tab.page.query_selector_all("table.heatmap")[1].query_selector_all(
            "td.heat-cell[data-value]"
        )
        deltas = [c.query_selector(".score").inner_text() for c in adapter_cells]
        assert len(deltas) == 2 and all(re.fullmatch(r"[+-]?\d\.\d{3}", d) for d in deltas)
        tab.page.uncheck("#heatmap-deltas")
        tab.page.select_option("#heatmap-dimension", "overall")
        if viewport is PHONE:
            wrap = tab.page.query_selector(".heatmap-wrap")
            assert wrap is not None
            overflow = wrap.evaluate("(w) => getComputedStyle(w).overflowX")
            assert overflow == "auto", overflow
        tab.check(name)


def test_question_bank_headers_are_read_in_the_browser(console: Any, tmp_path: Path) -> None:
    """The column mapper offers the file's own headers, read by the page: a CSV whose header
    quotes a comma, and an XLSX workbook with two sheets (shared and inline strings)."""
    from openpyxl import Workbook

    csv = tmp_path / "bank.csv"
    csv.write_text('\ufeff题目,"选项 A, B",答案\n"多行\n题目",x,y\n', encoding="utf-8")
    workbook = Workbook()
    first = workbook.active
    assert first is not None
    first.title = "期中"
    first.append(["题目描述", "参考答案", "解析"])
    first.append(["什么是信道容量？", "C = B log2(1 + S/N)", "香农公式"])
    second = workbook.create_sheet("期末")
    second.append(["question", "answer"])
    xlsx = tmp_path / "bank.xlsx"
    workbook.save(xlsx)

    tab: Console = console(DESKTOP)
    tab.sign_in("bupt")
    tab.open("data")
    page = tab.page

    def offered() -> list[str]:
        return [o.inner_text() for o in page.query_selector_all("#map-instruction option")][1:]

    page.set_input_files("#upload-file", str(csv))
    page.wait_for_selector("#map-instruction")
    assert offered() == ["题目", "选项 A, B", "答案"]
    assert page.query_selector("#map-sheet") is None
    page.set_input_files("#upload-file", str(xlsx))
    page.wait_for_selector("#map-sheet")
    assert offered() == ["题目描述", "参考答案", "解析"]
    page.select_option("#map-sheet", "期末")
    assert offered() == ["question", "answer"]
    page.select_option("#map-answer", "answer")
    assert json.loads(page.inner_text("#map-preview")) == {"answer": "answer"}
    tab.check("upload-xlsx-mapper")
