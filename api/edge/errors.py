"""What the edge refuses, and how a refusal is answered: the project's error body
(:func:`api.errors.error_body`) with the status :data:`api.errors.ERROR_STATUS` gives the error's
class, so an edge refusal reads exactly like the same refusal raised by a route."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from api.errors import ERROR_STATUS, ApiError, UploadRejected, error_body


class JsonTooDeep(UploadRejected):
    """A JSON body nests arrays and objects deeper than the edge lets any parser see."""


class JsonNotUtf8(UploadRejected):
    """A JSON body is not UTF-8 (RFC 8259 §8.1)."""


class RateLimited(ApiError):
    """The key (or, without a key, the client address) sent more requests than its limit."""


#: Statuses of edge errors that :data:`ERROR_STATUS` does not list yet.
_EDGE_STATUS: dict[type[Exception], int] = {RateLimited: 429}


def status_of(exc: ApiError) -> int:
    """The status of ``exc``: the most specific class listed in :data:`ERROR_STATUS` (or here)."""
    table = ERROR_STATUS | _EDGE_STATUS
    return next((table[k] for k in type(exc).__mro__ if k in table), 500)


def refusal(exc: ApiError, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The response that refuses a request with ``exc``."""
    return JSONResponse(
        error_body(type(exc).__name__, str(exc)), status_code=status_of(exc), headers=headers
    )
