"""Errors of the HTTP layer, and the one place where errors become HTTP responses.

Every error response has the body ``{"error": <type>, "message": <text>}``, plus ``"issues"``
(located problems) when the error carries several. :data:`ERROR_STATUS` says which status each of
our typed errors gets; the most specific class listed wins. Errors that are not ours become a 500
whose body says nothing about the failure (the server log has the traceback).

A request-validation error never repeats what the client sent: an unknown key or the key of a
free-form mapping can itself be personal data (an e-mail address, a phone number). So its issues
locate the problem with names the API declares (the properties and parameters of the app's OpenAPI
document, plus ``body``, ``query``, ...) and list indexes, any other location part reads ``<key>``;
``input`` and ``ctx`` are left out; and the message is re-rendered from the pydantic error type with
only context taken from the schema (expected values, patterns, limits), any other context reading
``<value>``. Messages of error types that are not pydantic's own become a fixed text.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticKnownError
from pydantic_core.core_schema import ErrorType
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorPublic
from api.services.keys import InvalidKey, NotAuthorized
from api.services.provisioning import NotInitialized
from ingest.errors import IngestError
from ingest.governance.embeddings import EmbeddingModelUnavailable
from ingest.governance.errors import GovernanceError
from ingest.governance.pii.errors import NerModelUnavailable, PiiError
from ledger.application import InvalidRequest, NotFound
from ledger.audit import BundleFormatError
from ledger.batching import NoValidRecords
from ledger.chain.errors import (
    ChainError,
    ChainMismatch,
    ChainUnavailable,
    TransactionRejected,
    TransactionReverted,
)
from ledger.errors import Conflict, LedgerError
from ledger.eventlog.base import ConcurrencyConflict

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base class of errors raised by the HTTP layer itself."""

    def __init__(self, message: str, *, issues: Sequence[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues) if issues is not None else None


class NotAuthenticated(ApiError):
    """A mutating request came without the API token (or with a wrong one)."""


class UploadRejected(ApiError):
    """An upload is malformed before intake can read it (no file part, unusable file name)."""


class UnsupportedUpload(ApiError):
    """The request body has a content type the endpoint does not read."""


class UploadTooLarge(ApiError):
    """The request body is larger than any batch intake accepts."""


class BatchNotRecorded(ApiError):
    """Intake found nothing to record (no valid record, or ``strict`` and a rejected item);
    ``issues`` holds every problem with its location."""


class RateLimited(ApiError):
    """The key (or, without a key, the client address) sent more requests than its limit."""


#: Status of each typed error. Handlers are looked up along the exception's MRO, so a subclass
#: listed here (``NotInitialized``) takes precedence over its base (``InvalidRequest``).
ERROR_STATUS: dict[type[Exception], int] = {
    # the HTTP layer
    NotAuthenticated: 401,
    InvalidKey: 401,
    NotAuthorized: 403,
    UploadRejected: 422,
    UnsupportedUpload: 415,
    UploadTooLarge: 413,
    BatchNotRecorded: 422,
    RateLimited: 429,
    # requests the ledger refuses
    NotFound: 404,
    Conflict: 409,
    InvalidRequest: 422,
    NotInitialized: 503,
    NoValidRecords: 422,
    BundleFormatError: 422,
    IngestError: 422,
    ConcurrencyConflict: 409,
    # governance failures are the server's, not the request's
    GovernanceError: 500,
    PiiError: 500,
    EmbeddingModelUnavailable: 503,
    NerModelUnavailable: 503,
    # chains
    ChainUnavailable: 503,
    ChainMismatch: 503,
    TransactionReverted: 409,
    TransactionRejected: 502,
    ChainError: 502,
    LedgerError: 500,
}


def error_body(
    error: str, message: str, *, issues: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "message": message}
    if issues is not None:
        body["issues"] = list(issues)
    return body


def status_and_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    """What a request that raised ``exc`` answers (for work finished after the answer, such as a
    submission answered 202); the message of a server-side failure stays in the server log."""
    status = next((ERROR_STATUS[k] for k in type(exc).__mro__ if k in ERROR_STATUS), 500)
    if status >= 500 and not isinstance(exc, LedgerError):
        log.error("background work failed: %s", type(exc).__name__, exc_info=exc)
        return 500, error_body("InternalError", "the server failed; see its log")
    issues = exc.issues if isinstance(exc, ApiError) else None
    return status, error_body(type(exc).__name__, str(exc), issues=issues)


def _typed_handler(status: int) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if status >= 500:
            log.error(
                "%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc
            )
        unauthenticated = isinstance(exc, NotAuthenticated | InvalidKey)
        headers = {"WWW-Authenticate": "Bearer"} if unauthenticated else None
        issues = exc.issues if isinstance(exc, ApiError) else None
        return JSONResponse(
            error_body(type(exc).__name__, str(exc), issues=issues),
            status_code=status,
            headers=headers,
        )

    return handle


KEY_PLACEHOLDER = "<key>"
"""Stands for a location part the API does not declare (an unknown key, a mapping's key)."""
VALUE_PLACEHOLDER = "<value>"
"""Stands for error context that may quote the input."""

_LOCATION_SOURCES = frozenset({"body", "query", "path", "header", "cookie", "form"})
_PYDANTIC_ERROR_TYPES = frozenset(typing.get_args(ErrorType))
#: Error context that comes from the schema (or is a count), never from the input.
_SCHEMA_CONTEXT = frozenset(
    {
        "expected", "pattern", "class_name", "class", "field_type", "min_length", "max_length",
        "actual_length", "gt", "ge", "lt", "le", "multiple_of", "discriminator", "expected_tags",
        "encoding", "tz_expected", "expected_schemes", "expected_version", "max_digits",
        "decimal_places", "whole_digits",
    }
)  # fmt: skip
#: Error types whose ``error`` context is a JSON parser's message, which names a position and
#: never quotes the text (Python's ``json`` for FastAPI's own body, serde_json for pydantic).
_PARSER_CONTEXT: dict[str, frozenset[str]] = {"json_invalid": frozenset({"error"})}


def declared_names(openapi: Mapping[str, Any]) -> frozenset[str]:
    """Every property and parameter name of an OpenAPI document, and the location sources."""
    names: set[str] = set(_LOCATION_SOURCES)
    pending: list[Any] = [openapi]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            properties = node.get("properties")
            if isinstance(properties, Mapping):
                names.update(str(name) for name in properties)
            parameters = node.get("parameters")
            if isinstance(parameters, list):
                names.update(str(p["name"]) for p in parameters if isinstance(p, Mapping))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return frozenset(names)


def safe_location(loc: Iterable[Any], declared: frozenset[str]) -> list[str]:
    """``loc`` with every part that is neither a declared name nor a list index replaced by
    :data:`KEY_PLACEHOLDER` (indexes as text, as before)."""
    return [str(part) if type(part) is int or part in declared else KEY_PLACEHOLDER for part in loc]


def safe_message(error_type: str, context: Mapping[str, Any] | None) -> str:
    """The pydantic message of ``error_type`` rendered with schema context only."""
    if error_type not in _PYDANTIC_ERROR_TYPES:
        return "Input is not valid"
    trusted = _SCHEMA_CONTEXT | _PARSER_CONTEXT.get(error_type, frozenset())
    kept = {
        key: value if key in trusted else VALUE_PLACEHOLDER
        for key, value in (context or {}).items()
    }
    try:
        return PydanticKnownError(error_type, kept).message()  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        # The context lacks what the type's message needs: say no more than the type.
        return f"Input is not valid ({error_type})"


def _validation_handler() -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    declared: frozenset[str] | None = None

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        nonlocal declared
        assert isinstance(exc, RequestValidationError)
        if declared is None:
            # Routes are added after the handlers are installed: read them on first use.
            declared = declared_names(request.app.openapi())
        issues = [
            {
                "loc": safe_location(err.get("loc", ()), declared),
                "message": safe_message(str(err.get("type", "")), err.get("ctx")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(i['loc'])}: {i['message']}" for i in issues)
        return JSONResponse(
            error_body("RequestValidationError", f"invalid request: {summary}", issues=issues),
            status_code=422,
        )

    return handle


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "HTTP error"
    return JSONResponse(
        error_body(phrase.replace(" ", ""), str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body("InternalError", "internal error (details are in the server log)"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping of this module on ``app``."""
    for error_type, status in ERROR_STATUS.items():
        app.add_exception_handler(error_type, _typed_handler(status))
    app.add_exception_handler(RequestValidationError, _validation_handler())
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a route, for the OpenAPI document."""
    return {
        status: {"model": ErrorPublic, "description": HTTPStatus(status).phrase}
        for status in statuses
    }


_ERROR_REF = f"#/components/schemas/{ErrorPublic.__name__}"


def stream_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a route that streams events: errors are JSON, not events."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
        }
        for status in statuses
    }


#: FastAPI documents its request-validation answer with these; :func:`_validation_handler`
#: answers with :class:`ErrorPublic` instead.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def document_errors(
    openapi: dict[str, Any], statuses: Callable[[str, dict[str, Any]], Iterable[int]]
) -> None:
    """Make the error responses of an OpenAPI document (changed in place) the ones the app
    sends: every request-validation response FastAPI documented gets the error body
    (:class:`ErrorPublic`), and each operation also documents ``statuses(path, operation)``
    (with the error body) unless it documents them already."""
    error_content = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for response in responses.values():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema == {"$ref": _FASTAPI_VALIDATION_REF}:
                    response["content"] = dict(error_content)
            for status in statuses(path, operation):
                responses.setdefault(
                    str(status),
                    {"description": HTTPStatus(status).phrase, "content": dict(error_content)},
                )
            operation["responses"] = dict(sorted(responses.items()))
    schemas = openapi.get("components", {}).get("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
