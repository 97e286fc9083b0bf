"""The served OpenAPI document against the app itself: schemathesis fuzzes every documented route
in process (ASGI) and fails on any 5xx, undocumented status, body that does not match its
documented schema, wrong content type, or request whose acceptance contradicts the schema (valid
data refused, invalid data accepted).

Bounded and deterministic: a fixed seed with derandomized generation, at most
:data:`MAX_EXAMPLES` generated cases per route in the fuzzing phase (plus the examples and
coverage phases, which are finite), no example database, and generation that responses never
steer (no response-derived values, no error feedback), so every run sends the same requests.
About 30 s in all on a busy 2-core machine.

Two passes over one ledger home: a contributor key (bupt) on the contributor routes first, so
batches exist, then an admin key on every route. Schemathesis does not hold the answers to its
own request-shape probes (a wrong media type, say) to the document, so a third test sends each
refusal of the edge (413, 415, 422 for JSON nested too deep, 429) to every route and checks
those answers against it. What the fuzzing leaves out, and why:

- ``POST /v1/dispatch``: it governs pending batches, which loads the embedding and NER models
  (minutes).
- ``GET /v1/feed/stream``: it follows the log until the client goes away, and schemathesis reads
  a response to its end (``tests/api/test_feed.py`` drives it, ``follow=false`` included).
  ``GET /v1/events/stream`` likewise (``tests/api/test_events.py``).
- Training: the app runs no trainer thread, so queued runs stay queued.
- ``POST /v1/evaluations``: an accepted one loads models and generates in a thread of the server
  (tens of seconds even for the tiny model), and whether cells exist is the benchmark's to say,
  which no JSON Schema does (``tests/api/test_evaluation_start.py`` drives it).
- Submissions with ``wait`` (JSON field, form field or query parameter): the same, before
  answering; and with ``Prefer: respond-async``: they record the batch in a background task
  that would race the requests after it.
- Registrations (``POST /v1/institutions``) without an ``account`` in the positive cases: the
  home has one free development account, and once it is taken such a registration is refused
  (422), a state the schema cannot describe.
- Key labels (``POST /v1/keys``) that are not printable once trimmed, in the positive cases: the
  server refuses them (documented in the field's description), and a pattern for Python's
  "printable" lists so many code points that generating from it takes tens of seconds.
- ``POST /v1/batches`` may answer 422 to schema-valid data: intake decides which records are
  valid (lengths, languages, PII, quality), which no JSON Schema says. So may ``GET /v1/search``:
  a ``min_quality`` above ``max_quality`` is refused.
- The ``Allow`` header of a 405: Starlette answers a wrong method with the methods of the first
  route matching the path only (``OPTIONS /v1/batches`` gets ``Allow: POST``), not every method
  of the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import ApiSettings, create_app
from api.composition import Parts
from ledger.settings import LedgerSettings
from tests.homes import TestKeys as Keys  # a `Test*` name here is one pytest would collect
from tests.homes import issue_keys

SEED = 20240601
MAX_EXAMPLES = 50
UNLIMITED = "1000000/minute"
"""A rate limit the run never reaches."""


def fuzz_config(key: dict[str, str]) -> schemathesis.Config:
    """The run's settings, with ``key`` (an ``Authorization`` header) as the bearer token."""
    no_responses = {"extra-data-sources": {"responses": False}}
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": no_responses,
                "coverage": no_responses,
                "fuzzing": {**no_responses, "error-feedback": {"enabled": False}},
                "stateful": {"enabled": False},
            },
            "auth": {
                "openapi": {"HTTPBearer": {"bearer": key["Authorization"].removeprefix("Bearer ")}}
            },
            "checks": {"allow_header_conformance": {"enabled": False}},
            "operations": [
                {
                    "include-method": "POST",
                    "include-path": "/v1/batches",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", 401, 403, 404, 409, 422, 429]
                        }
                    },
                },
                {
                    # min_quality above max_quality is refused (a rule across two parameters).
                    "include-method": "GET",
                    "include-path": "/v1/search",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", 401, 403, 404, 409, 422, 429]
                        }
                    },
                },
            ],
        }
    )


def _asks_to_wait(value: Any) -> bool:
    return value not in (None, False, "false")


def sendable(ctx: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Whether the run sends ``case`` (see the module docstring for what it does not)."""
    label = case.operation.label
    body = case.body if isinstance(case.body, dict) else {}
    if label == "POST /v1/batches":
        headers = {name.lower(): str(value) for name, value in (case.headers or {}).items()}
        return not (
            _asks_to_wait(body.get("wait"))
            or _asks_to_wait((case.query or {}).get("wait"))
            or "respond-async" in headers.get("prefer", "").lower()
        )
    positive = (
        case.meta is not None and case.meta.generation.mode is schemathesis.GenerationMode.POSITIVE
    )
    if positive and label == "POST /v1/institutions":
        return body.get("account") is not None
    if positive and label == "POST /v1/keys":
        text = body.get("label", "")
        return not isinstance(text, str) or text.strip().isprintable()
    return True


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> Keys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def parts(ledger_settings: LedgerSettings) -> Iterator[Parts]:
    """Parts that outlive the apps: schemathesis starts and stops an app's lifespan for each
    test, which then opens nothing."""
    with Parts(ledger_settings) as opened:
        # The search index loads the embedding model on first use (seconds): not inside a case.
        opened.search.warm()
        # So does intake's PII pipelines, in the intake worker.
        pool = opened.intake_pool
        if pool is not None:
            pool.start(load_models=True).result(timeout=600)
        yield opened


@pytest.fixture(scope="module")
def app(parts: Parts) -> FastAPI:
    return create_app(
        parts=parts,
        api_settings=ApiSettings(
            rate_limit_reads=UNLIMITED, rate_limit_submissions=UNLIMITED, trainer=False
        ),
    )


def served_schema(app: FastAPI, key: dict[str, str]) -> schemathesis.BaseSchema:
    """The app's OpenAPI document as it serves it, fuzzed with ``key``."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config(key))
    schema.hook("filter_case")(sendable)
    return schema


@pytest.fixture
def contributor_schema(app: FastAPI, keys: Keys) -> schemathesis.BaseSchema:
    return served_schema(app, keys.bupt)


@pytest.fixture
def admin_schema(app: FastAPI, keys: Keys) -> schemathesis.BaseSchema:
    return served_schema(app, keys.admin)


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's `from_fixture` renames the running item through `Function._nodeid`,
    # which pytest 9.2 no longer has (the id lives in `_id`): give it one to read and write.
    request.node._nodeid = request.node.nodeid


contributor_routes = schemathesis.pytest.from_fixture("contributor_schema").include(
    tag=["batches", "records", "rewards"]
)
every_route = (
    schemathesis.pytest.from_fixture("admin_schema")
    .exclude(method="POST", path="/v1/dispatch")
    .exclude(method="GET", path="/v1/feed/stream")
    .exclude(method="GET", path="/v1/events/stream")
    .exclude(method="POST", path="/v1/evaluations")
)


@contributor_routes.parametrize()
def test_contributor_routes_answer_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()


@every_route.parametrize()
def test_every_route_answers_an_admin_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()


#: The checks of a response to a request the edge refuses.
DOCUMENTED = [status_code_conformance, content_type_conformance, response_schema_conformance]


def refusal(
    client: TestClient,
    operation: schemathesis.APIOperation,
    key: dict[str, str],
    *,
    body: bytes | None = None,
    media_type: str = "application/json",
) -> int:
    """The status ``operation`` answers (every path parameter ``x``, ``body`` of ``media_type``
    when given), once the answer is checked against the operation's documented responses."""
    names = re.findall(r"{(\w+)}", operation.path)
    case = operation.Case(path_parameters=dict.fromkeys(names, "x"))
    headers = key if body is None else {**key, "Content-Type": media_type}
    response = client.request(case.method, case.formatted_path, headers=headers, content=body)
    case.validate_response(response, checks=DOCUMENTED)
    return response.status_code


def test_edge_refusals_answer_as_documented(parts: Parts, keys: Keys) -> None:
    """Every refusal of the edge, on every route: a documented status with the error body."""
    small = ApiSettings(
        max_body_bytes=64,
        max_upload_bytes=64,
        max_json_depth=4,
        rate_limit_reads=UNLIMITED,
        rate_limit_submissions=UNLIMITED,
    )
    with TestClient(create_app(parts=parts, api_settings=small)) as client:
        document = client.get("/openapi.json").json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [
            schema[path][method] for path in document["paths"] for method in document["paths"][path]
        ]
        for operation in operations:
            large = refusal(client, operation, keys.admin, body=b'"' + b"x" * 100 + b'"')
            deep = refusal(client, operation, keys.admin, body=b"[" * 5 + b"]" * 5)
            assert (large, deep) == (413, 422), operation.label
            if operation.body:
                plain = refusal(client, operation, keys.admin, body=b"x", media_type="text/plain")
                assert plain == 415, operation.label
    once = ApiSettings(rate_limit_reads="1/hour", rate_limit_submissions="1/hour")
    with TestClient(create_app(parts=parts, api_settings=once)) as client:
        client.get("/v1/institutions", headers=keys.admin)  # the reads budget
        client.post("/v1/batches", headers=keys.admin)  # the submissions budget
        for operation in operations:
            if operation.path.startswith("/v1/"):
                assert refusal(client, operation, keys.admin) == 429, operation.label
