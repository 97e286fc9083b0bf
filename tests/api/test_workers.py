"""Workers on the embedded (SQLite) log: a worker process serves its metrics and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ledger.eventlog.kafka.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
BYR = [sys.executable, "-m", "api.cli"]

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BYR_")}
    return inherited | {"BYR_HOME": str(home), "BYR_LOG_LEVEL": "INFO"}


def _scrape(port: int, *, timeout_s: float) -> str:
    """The worker's metrics page, waiting until it serves one."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                return str(reply.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _metric(page: str, name: str) -> float:
    for line in page.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics page")


def test_worker_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = _env(tmp_path)
    init = subprocess.run(
        [*BYR, "init", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert init.returncode == 0, init.stderr
    port = free_port()
    worker = subprocess.Popen(
        [*BYR, "worker", "feed", "--metrics-port", str(port), "--idle-wait", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        page = _scrape(port, timeout_s=60)
        while _metric(page, "byr_worker_steps_total") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            page = _scrape(port, timeout_s=5)
        assert _metric(page, "byr_worker_steps_total") >= 2
        assert 'byr_worker_info{kind="feed"} 1.0' in page
        assert _metric(page, "byr_projection_lag_events") == 0
        assert _metric(page, "byr_worker_last_success_timestamp_seconds") > time.time() - 60
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr
    assert "worker feed stopped after" in stderr
