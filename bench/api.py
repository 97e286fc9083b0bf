"""The HTTP API under load: concurrent submitters and readers, then reads during a huge upload.

Run: ``.venv/bin/python bench/api.py [--clients 32] [--rounds 5] [--batch-records 100]
[--upload-lines 100000]`` (several minutes on 2 cores; the huge upload's intake dominates).
Writes ``bench/results/api.json``.

A fresh embedded home (``byr init``) is served by ``byr serve`` in a subprocess on loopback. Three
phases, each measured from the clients (httpx, one connection pool per client):

1. *idle reads* (the baseline): readers alone, ``GET /v1/batches/{id}``, ``/v1/records/{id}``,
   ``/v1/status``;
2. *mixed*: half the clients submit ``--batch-records``-record batches with ``Prefer:
   respond-async`` (the figure is the 202's latency), the other half read as in phase 1;
3. *huge upload*: one client submits a ``--upload-lines``-line batch (202), and the readers read
   until its intake and recording are done.

Targets: p99 of the 202 below 250 ms; p99 of reads during the huge upload below 100 ms; zero
errors. Ratios are against the idle reads of phase 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

import httpx  # noqa: E402
import psutil  # noqa: E402

from api.composition import Parts, initialize  # noqa: E402
from bench.dedup_synth import SynthCorpus  # noqa: E402
from ledger.settings import LedgerSettings  # noqa: E402

RESULTS = HERE / "results" / "api.json"
SEED = 20261202


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * pick(0.99), 2),
        "max_ms": round(1000 * ordered[-1], 2),
    }


def batch_lines(corpus: SynthCorpus, n: int) -> bytes:
    return "".join(
        json.dumps(
            {"instruction": r.instruction, "output": r.output, "discipline": r.discipline},
            ensure_ascii=False,
        )
        + "\n"
        for r in corpus.records(n)
    ).encode("utf-8")


class Load:
    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {key}"}
        self.errors: list[str] = []
        self.batch_ids: list[str] = []
        self.record_ids: list[str] = []

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, headers=self.headers, timeout=600)

    async def reader(self, stop: asyncio.Event, out: list[float]) -> None:
        async with self.client() as client:
            i = 0
            while not stop.is_set():
                i += 1
                if i % 3 == 0:
                    path = "/v1/status"
                elif i % 3 == 1 and self.batch_ids:
                    path = f"/v1/batches/{self.batch_ids[i % len(self.batch_ids)]}"
                elif self.record_ids:
                    path = f"/v1/records/{self.record_ids[i % len(self.record_ids)]}"
                else:
                    path = "/v1/batches"
                t0 = time.perf_counter()
                response = await client.get(path)
                out.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    self.errors.append(f"GET {path}: {response.status_code}")

    async def submitter(self, bodies: list[bytes], out: list[float], urls: list[str]) -> None:
        async with self.client() as client:
            for body in bodies:
                t0 = time.perf_counter()
                response = await client.post(
                    "/v1/batches",
                    params={"institution_id": "bupt", "filename": "load.jsonl"},
                    content=body,
                    headers={"Content-Type": "application/x-ndjson", "Prefer": "respond-async"},
                )
                out.append(time.perf_counter() - t0)
                if response.status_code != 202:
                    self.errors.append(f"POST /v1/batches: {response.status_code}")
                else:
                    urls.append(response.headers["location"])

    async def settle(self, urls: list[str]) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        async with self.client() as client:
            for url in urls:
                while True:
                    body = (await client.get(url)).json()
                    if body["status"] in ("done", "failed"):
                        done.append(body)
                        if body["status"] == "failed":
                            self.errors.append(f"{url}: {body['http_status']}")
                        else:
                            self.batch_ids.append(body["result"]["batch_id"])
                            self.record_ids += body["result"]["record_ids"][:5]
                        break
                    await asyncio.sleep(0.2)
        return done


async def timed_reads(load: Load, readers: int, seconds: float) -> list[float]:
    stop, out = asyncio.Event(), list[float]()
    tasks = [asyncio.create_task(load.reader(stop, out)) for _ in range(readers)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return out


class PeakRss:
    """The largest RSS of a process and of each of its children, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.server = 0
        self.children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(psutil.Error):
                self.server = max(self.server, self._process.memory_info().rss)
                for child in self._process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        self.children = max(self.children, child.memory_info().rss)


async def run(args: argparse.Namespace, base: str, key: str, server_pid: int) -> dict[str, Any]:
    load = Load(base, key)
    corpus = SynthCorpus(seed=SEED, duplicate_share=0.0)
    # Warm-up: the first intake builds the PII pipelines.
    warm: list[float] = []
    warm_urls: list[str] = []
    await load.submitter([batch_lines(corpus, 10)], warm, warm_urls)
    await load.settle(warm_urls)

    readers = args.clients // 2
    idle = await timed_reads(load, readers, args.idle_seconds)

    submit_latencies: list[float] = []
    urls: list[str] = []
    stop, mixed_reads = asyncio.Event(), list[float]()
    read_tasks = [asyncio.create_task(load.reader(stop, mixed_reads)) for _ in range(readers)]
    bodies = [
        [batch_lines(corpus, args.batch_records) for _ in range(args.rounds)]
        for _ in range(args.clients - readers)
    ]
    await asyncio.gather(*(load.submitter(b, submit_latencies, urls) for b in bodies))
    settled = await load.settle(urls)
    stop.set()
    await asyncio.gather(*read_tasks)

    huge = batch_lines(corpus, args.upload_lines)
    huge_urls: list[str] = []
    huge_latency: list[float] = []
    stop, huge_reads = asyncio.Event(), list[float]()
    read_tasks = [asyncio.create_task(load.reader(stop, huge_reads)) for _ in range(readers)]
    before = psutil.Process(server_pid).memory_info().rss
    with PeakRss(server_pid) as peak:
        t0 = time.perf_counter()
        await load.submitter([huge], huge_latency, huge_urls)
        huge_done = await load.settle(huge_urls)
        huge_s = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*read_tasks)

    idle_p = percentiles(idle)
    during = percentiles(huge_reads)
    return {
        "clients": args.clients,
        "idle_reads": idle_p,
        "mixed": {
            "submit_202": percentiles(submit_latencies),
            "reads": percentiles(mixed_reads),
            "batches_recorded": sum(1 for s in settled if s["status"] == "done"),
        },
        "huge_upload": {
            "lines": args.upload_lines,
            "bytes": len(huge),
            "submit_202": percentiles(huge_latency),
            "seconds_to_recorded": round(huge_s, 1),
            "status": huge_done[0]["status"] if huge_done else None,
            "reads_during": during,
            "server_rss_before_mb": round(before / 2**20, 1),
            "server_peak_rss_mb": round(peak.server / 2**20, 1),
            "intake_worker_peak_rss_mb": round(peak.children / 2**20, 1),
            "server_growth_vs_body": round((peak.server - before) / len(huge), 2),
        },
        "ratios": {
            "reads_during_upload_p99_vs_idle": round(
                during.get("p99_ms", 0) / max(idle_p.get("p99_ms", 1), 1e-9), 2
            ),
        },
        "errors": load.errors[:20],
        "error_count": len(load.errors),
        "targets": {
            "submit_202_p99_below_250_ms": percentiles(submit_latencies).get("p99_ms", 1e9) < 250,
            "reads_during_upload_p99_below_100_ms": during.get("p99_ms", 1e9) < 100,
            "zero_errors": not load.errors,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="batches per submitting client")
    parser.add_argument("--batch-records", type=int, default=100)
    parser.add_argument("--upload-lines", type=int, default=100_000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="byr-api-bench-") as tmp:
        home = Path(tmp) / "home"
        settings = LedgerSettings(home=home)
        initialize(settings)
        with Parts(settings) as parts:
            key = parts.keys.create(role="contributor", institution_id="bupt", label="bench").key
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BYR_")} | {
            "BYR_HOME": str(home),
            # The bench measures the server, not its rate limits.
            "BYR_API_RATE_LIMIT_READS": "1000000/minute",
            "BYR_API_RATE_LIMIT_SUBMISSIONS": "1000000/minute",
        }
        log = (Path(tmp) / "server.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            else:
                raise SystemExit("the server did not start; see its log")
            result = asyncio.run(run(args, base, key, server.pid))
        finally:
            server.terminate()
            server.wait(30)
    result["machine"] = {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    idle, mixed, huge = result["idle_reads"], result["mixed"], result["huge_upload"]
    print(f"idle reads (baseline)        p50 {idle['p50_ms']} ms  p99 {idle['p99_ms']} ms")
    print(
        f"mixed: 202 of a {args.batch_records}-record batch  p50 {mixed['submit_202']['p50_ms']} ms"
        f"  p99 {mixed['submit_202']['p99_ms']} ms; reads p99 {mixed['reads']['p99_ms']} ms"
    )
    print(
        f"huge upload ({args.upload_lines} lines): 202 in {huge['submit_202'].get('p50_ms')} ms, "
        f"recorded after {huge['seconds_to_recorded']} s ({huge['status']}); reads meanwhile "
        f"p50 {huge['reads_during'].get('p50_ms')} ms p99 {huge['reads_during'].get('p99_ms')} ms"
        f" (x{result['ratios']['reads_during_upload_p99_vs_idle']} of idle p99)"
    )
    print(
        f"memory during it: server {huge['server_rss_before_mb']} -> peak"
        f" {huge['server_peak_rss_mb']} MB (growth x{huge['server_growth_vs_body']} of the"
        f" {huge['bytes'] / 2**20:.1f} MB body), intake worker peak"
        f" {huge['intake_worker_peak_rss_mb']} MB"
    )
    print(f"errors: {result['error_count']}; targets: {result['targets']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
