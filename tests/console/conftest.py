"""Fixtures of the console's browser tests: the system Chromium driven by Playwright (no browser
download), and a real ``byr serve`` on its own home with one key per role.

Without /usr/bin/chromium the browser tests are skipped, except under ``CI=true``, where they
fail (``make setup`` installs it: scripts/ensure-chromium.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.composition import Parts
from ledger.batching import RecordInput
from ledger.chain.anvil import free_port
from ledger.events import BatchGoverned
from ledger.ids import batch_stream
from ledger.settings import LedgerSettings
from tests.cli import BYR, ROOT, byr_env
from tests.homes import TestKeys, initialized_settings, issue_keys

CHROMIUM = Path("/usr/bin/chromium")
#: Without the network flags Chromium keeps trying to reach the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
ARTIFACTS = ROOT / "var" / "test-artifacts"
#: Text only xidian's seeded batch holds: no page shown to another institution may contain it.
XIDIAN_MARKER = "xidian-only-7f3a"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (make setup installs it: scripts/ensure-chromium.sh)"
    if in_ci():
        pytest.fail(message + " (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch arguments: the system Chromium, headless, offline."""
    require_chromium()
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@dataclass(frozen=True)
class ConsoleServer:
    base: str
    home: Path
    settings: LedgerSettings
    keys: TestKeys
    key_text: dict[str, str]
    """Each role's key itself (the header value without ``Bearer``)."""
    xidian_batch: str
    xidian_record: str

    def url(self, hash_path: str = "") -> str:
        return f"{self.base}/console{hash_path}"

    def get(self, path: str, who: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=getattr(self.keys, who), timeout=60)


def _seed_other_institution(settings: LedgerSettings) -> tuple[str, str]:
    """An accepted batch of xidian's (recorded as governance records it, no models loaded)."""
    records = [
        {
            "instruction": f"What does a water-filling power allocation do? ({XIDIAN_MARKER} {i})",
            "input": "",
            "output": "It gives more power to the stronger parallel channels, up to a common "
            "water level, which maximizes the total capacity under a power budget.",
            "discipline": "information_theory",
            "task_type": "knowledge_qa",
            "language": "en",
            "license": "CC-BY-4.0",
            "institution_id": "xidian",
        }
        for i in range(3)
    ]
    with Parts(settings) as parts:
        submitted = parts.ledger.submit_batch(
            institution_id="xidian",
            source_name="xidian-private.jsonl",
            records=[RecordInput(canonical=r) for r in records],
            policy_version="2026.11-1",
        )
        parts.ledger.append(
            batch_stream(submitted.batch_id),
            [
                BatchGoverned(
                    batch_id=submitted.batch_id,
                    institution_id="xidian",
                    policy_version="2026.11-1",
                    accepted_record_ids=submitted.record_ids,
                    rejected={},
                    decisions=[],
                    contribution_score=3.0,
                    reward_wei=str(10**18),
                )
            ],
        )
        parts.pipeline.drain()
    return submitted.batch_id, submitted.record_ids[0]


def _wait_for_health(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the server exited at start:\n" + log.read_text())
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer /health:\n" + log.read_text())


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """``byr serve`` on a new home (its trainer thread on), keys for every role, and one
    accepted batch of another institution (xidian)."""
    require_chromium()
    home = tmp_path_factory.mktemp("console-home")
    settings = initialized_settings(home, model_cache=home / "models")
    keys = issue_keys(settings)
    batch, record = _seed_other_institution(settings)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    env = byr_env(home, BYR_MODEL_CACHE=str(home / "models"), BYR_API_TRAINER="true")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*BYR, "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_health(base, process, log)
        key_text = {
            who: getattr(keys, who)["Authorization"].removeprefix("Bearer ")
            for who in ("admin", "bupt", "xidian", "auditor", "trainer")
        }
        yield ConsoleServer(base, home, settings, keys, key_text, batch, record)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def save_artifact(tmp_path: Path, page: Any, name: str) -> Path:
    """A full-page screenshot in the test's tmp folder, copied to var/test-artifacts/."""
    shot = tmp_path / f"console-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)
    return shot
