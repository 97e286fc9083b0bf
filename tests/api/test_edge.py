"""The HTTP edge (``api/edge``) in front of the real app.

Most tests talk to a real ``byr serve --insecure-local`` process (uvicorn, its own home), so that
a parser overflowing the C stack shows as a dead server and its memory can be read from outside.
Rate limits need low limits and are checked on an in-process app over the module's home.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.edge.errors import JsonTooDeep
from api.edge.json_scan import JsonBodyCheck
from ledger.chain.anvil import free_port
from ledger.settings import LedgerSettings
from tests.cli import BYR, ROOT, byr_env
from tests.homes import initialized_settings

DEPTHS = (80_000, 100_000)
HUGE_BYTES = 300 * 1024 * 1024
MAX_GROWTH_BYTES = 100 * 1024 * 1024
EDGE_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
STRICT_CSP = "default-src 'none'"
JSON = {"Content-Type": "application/json"}


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a server that died on it fails the test with its exit status."""
        try:
            return httpx.request(method, self.base + path, timeout=120, **kwargs)
        except httpx.TransportError as exc:
            try:
                code: int | None = self.process.wait(10)
            except subprocess.TimeoutExpired:
                code = None
            raise AssertionError(
                f"{method} {path}: no answer ({exc!r}); server exit status {code}"
            ) from exc


def _wait_for_health(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError("the server exited at start:\n" + log.read_text())
        try:
            if httpx.get(server.base + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer /health:\n" + log.read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("edge-server")
    initialized_settings(home)
    port = free_port()
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*BYR, "serve", "--insecure-local", "--port", str(port)],
            cwd=ROOT,
            env=byr_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Server(f"http://127.0.0.1:{port}", process)
    try:
        _wait_for_health(running, log)
        yield running
    finally:
        process.terminate()
        process.wait(30)


def _error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["error"] == error and body["message"], body
    return body


def _json_body_routes(server: Server) -> list[tuple[str, str]]:
    """Every (method, path) whose requestBody reads JSON, from the served OpenAPI document
    (path parameters filled in)."""
    paths = server.request("GET", "/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}/]+\}", "x", path))
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


# ---------------------------------------------------------------------------------------------
# JSON nesting and encoding
# ---------------------------------------------------------------------------------------------


def test_deeply_nested_json_never_reaches_a_parser(server: Server) -> None:
    routes = _json_body_routes(server)
    assert {("POST", "/v1/verify"), ("POST", "/v1/batches"), ("POST", "/v1/keys")} <= set(routes)
    bodies = [
        body for n in DEPTHS for body in (b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n)
    ]
    for (method, path), body in itertools.product(routes, bodies):
        response = server.request(method, path, content=body, headers=JSON)
        _error(response, 422, "JsonTooDeep")
        assert server.process.poll() is None
    assert server.request("GET", "/health").json() == {"status": "ok"}


def test_brackets_inside_strings_are_not_nesting(server: Server) -> None:
    """The scan skips strings (escaped quotes included): the body reaches the route's own
    validation."""
    text = '\\"' + "[{" * 50_000
    body = f'{{"bundle_version": 2, "batch_id": "{text}"}}'.encode()
    response = server.request("POST", "/v1/verify?offline=true", content=body, headers=JSON)
    _error(response, 422, "RequestValidationError")


@pytest.mark.parametrize(
    "body",
    [b'{"batch_id": "\xff"}', '{"batch_id": "b"}'.encode("utf-16"), b'{"batch_id": "\xc3'],
    ids=["invalid-byte", "utf-16", "truncated"],
)
def test_json_that_is_not_utf8_is_refused(server: Server, body: bytes) -> None:
    response = server.request("POST", "/v1/verify?offline=true", content=body, headers=JSON)
    _error(response, 422, "JsonNotUtf8")


@pytest.mark.parametrize("limit", [3, 4])
def test_the_nesting_scan_does_not_depend_on_where_chunks_split(limit: int) -> None:
    """Strings, escapes and multi-byte characters split across chunks at every position."""
    document = '{"a\\"[[[[": ["\\\\", "x\\u005b", "é😀"], "b": [[["]}\\\\"]]]}'.encode()
    for cut in range(len(document) + 1):
        check = JsonBodyCheck(max_depth=limit)
        if limit < 4:
            with pytest.raises(JsonTooDeep):
                check.feed(document[:cut])
                check.feed(document[cut:])
        else:
            check.feed(document[:cut])
            check.feed(document[cut:])
            check.finish()
    one_byte_at_a_time = JsonBodyCheck(max_depth=4)
    for i in range(len(document)):
        one_byte_at_a_time.feed(document[i : i + 1])
    one_byte_at_a_time.finish()


# ---------------------------------------------------------------------------------------------
# body size
# ---------------------------------------------------------------------------------------------


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b" " * size  # whitespace: valid as far as a JSON scan can tell
    for _ in range(total // size):
        yield block


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/batches?institution_id=bupt", "application/octet-stream"),
        ("/v1/batches", "application/json"),
        ("/v1/verify?offline=true", "application/json"),
    ],
)
def test_a_huge_chunked_body_is_refused_in_bounded_memory(
    server: Server, path: str, content_type: str
) -> None:
    process = psutil.Process(server.process.pid)
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = server.request(
            "POST", path, content=_chunks(HUGE_BYTES), headers={"Content-Type": content_type}
        )
    finally:
        done.set()
        sampler.join()
    _error(response, 413, "UploadTooLarge")
    assert peak - baseline < MAX_GROWTH_BYTES, f"the server grew by {(peak - baseline) >> 20} MiB"
    assert server.request("GET", "/health").status_code == 200


def test_a_declared_length_over_the_limit_is_refused_before_any_byte(server: Server) -> None:
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/verify?offline=true HTTP/1.1\r\nHost: edge\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n"
        )
        head = connection.recv(65536)
    assert head.startswith(b"HTTP/1.1 413 "), head


# ---------------------------------------------------------------------------------------------
# media types
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/batches?institution_id=bupt", "/v1/verify?offline=true"])
@pytest.mark.parametrize("content_type", ["text/plain", None])
def test_a_body_of_an_undeclared_media_type_is_refused(
    server: Server, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = server.request("POST", path, content=b'{"records": []}', headers=headers)
    _error(response, 415, "UnsupportedUpload")


def test_declared_upload_types_pass_the_edge(server: Server) -> None:
    """An ndjson upload without its institution reaches the route, which names what is missing."""
    response = server.request(
        "POST", "/v1/batches", content=b"{}\n", headers={"Content-Type": "application/x-ndjson"}
    )
    issues = _error(response, 422, "RequestValidationError")["issues"]
    assert ["query", "institution_id"] in [i["loc"] for i in issues]


# ---------------------------------------------------------------------------------------------
# headers and pages
# ---------------------------------------------------------------------------------------------


def _sha256_sources(page: str, tag: str) -> list[str]:
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
    assert bodies, f"no inline <{tag}> in the page"
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in bodies
    ]


def _directive(policy: str, name: str) -> list[str]:
    for directive in policy.split(";"):
        words = directive.split()
        if words and words[0] == name:
            return words[1:]
    return []


def test_json_answers_carry_the_security_headers(server: Server) -> None:
    for response in (
        server.request("GET", "/v1/status"),
        server.request("POST", "/v1/verify", content=b"x", headers={"Content-Type": "text/plain"}),
        server.request("GET", "/v1/nowhere"),
    ):
        assert EDGE_HEADERS.items() <= response.headers.items(), response.headers
        assert response.headers["content-security-policy"].startswith(STRICT_CSP)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"


def test_the_console_runs_only_files_of_this_server(server: Server) -> None:
    response = server.request("GET", "/console")
    assert response.status_code == 200
    assert EDGE_HEADERS.items() <= response.headers.items()
    policy = response.headers["content-security-policy"]
    assert _directive(policy, "default-src") == ["'none'"]
    # no inline code at all: scripts and styles are the console's files, nothing else
    assert not re.search(r"<style\b|\sstyle=", response.text)
    assert all(" src=" in tag for tag in re.findall(r"<script\b[^>]*>", response.text))
    for directive in ("script-src", "style-src", "img-src", "connect-src"):
        assert _directive(policy, directive) == ["'self'"], directive
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    urls = re.findall(r'(?:src|href)="(/[^"]+)"', response.text)
    assert "/console/static/js/main.js" in urls
    for url in urls:
        assert server.request("GET", url).status_code == 200, url


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_files_of_this_server(server: Server, page: str) -> None:
    response = server.request("GET", page)
    assert response.status_code == 200
    assert EDGE_HEADERS.items() <= response.headers.items()
    html = response.text
    assert "://" not in html  # no CDN, no font service, no absolute URL at all
    urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
    urls += re.findall(r"url: '([^']+)'", html)
    assert any(u.endswith(".js") for u in urls) and "/openapi.json" in urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        assert server.request("GET", url).status_code == 200, url
    policy = response.headers["content-security-policy"]
    assert _directive(policy, "default-src") == ["'none'"]
    scripts = _directive(policy, "script-src")
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    if page == "/docs":
        assert set(_sha256_sources(html, "script")) <= set(scripts)


def test_an_unexpected_error_carries_the_headers_too(ledger_settings: LedgerSettings) -> None:
    app = create_app(settings=ledger_settings, api_settings=ApiSettings(insecure_local=True))

    def fail() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/v1/fail", fail)
    response = TestClient(app, raise_server_exceptions=False).get("/v1/fail")
    assert response.status_code == 500 and response.json()["error"] == "InternalError"
    assert EDGE_HEADERS.items() <= response.headers.items()
    assert response.headers["cache-control"] == "no-store"


# ---------------------------------------------------------------------------------------------
# rate limits
# ---------------------------------------------------------------------------------------------

READS_PER_MINUTE = 5
SUBMISSIONS_PER_MINUTE = 2


@pytest.fixture(scope="module")
def limited(ledger_settings: LedgerSettings) -> Iterator[TestClient]:
    settings = ApiSettings(
        insecure_local=True,
        rate_limit_reads=f"{READS_PER_MINUTE}/minute",
        rate_limit_submissions=f"{SUBMISSIONS_PER_MINUTE}/minute",
    )
    with TestClient(create_app(settings=ledger_settings, api_settings=settings)) as client:
        yield client


def _key(key_id: str) -> dict[str, str]:
    """A key of that id; the edge buckets by the id without checking the key."""
    return {"Authorization": f"Bearer byr_{key_id}_{'s' * 43}"}


def test_reads_over_the_limit_get_429_per_key(limited: TestClient) -> None:
    for _ in range(READS_PER_MINUTE):
        assert limited.get("/v1/status", headers=_key("k0000000000a1")).status_code == 200
    refused = limited.get("/v1/status", headers=_key("k0000000000a1"))
    assert refused.status_code == 429
    assert refused.json()["error"] == "RateLimited" and refused.json()["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert EDGE_HEADERS.items() <= refused.headers.items()
    assert limited.get("/v1/status", headers=_key("k0000000000b2")).status_code == 200
    assert limited.get("/v1/status").status_code == 200  # no key: the client address's budget


def test_submissions_have_their_own_budget(limited: TestClient) -> None:
    key = _key("k0000000000c3")
    for _ in range(SUBMISSIONS_PER_MINUTE):
        # an empty JSON object passes the edge and is refused by the route: it still counts
        assert limited.post("/v1/batches", json={}, headers=key).status_code == 422
    refused = limited.post("/v1/batches", json={}, headers=key)
    assert refused.status_code == 429 and refused.json()["error"] == "RateLimited"
    assert int(refused.headers["retry-after"]) >= 1
    assert limited.get("/v1/status", headers=key).status_code == 200
