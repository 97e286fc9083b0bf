"""What the edge refuses, and how a refusal is answered: the project's error body
(:func:`api.errors.error_body`) with the status :data:`api.errors.ERROR_STATUS` gives the error's
class, so an edge refusal reads exactly like the same refusal raised by a route."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from api.errors import ERROR_STATUS, ApiError, RateLimited, UploadRejected, error_body

__all__ = ["JsonNotUtf8", "JsonTooDeep", "RateLimited", "refusal", "status_of"]


class JsonTooDeep(UploadRejected):
    """A JSON body nests arrays and objects deeper than the edge lets any parser see."""


class JsonNotUtf8(UploadRejected):
    """A JSON body is not UTF-8 (RFC 8259 §8.1)."""


def status_of(exc: ApiError) -> int:
    """The status of ``exc``: the most specific class listed in :data:`ERROR_STATUS`."""
    return next((ERROR_STATUS[k] for k in type(exc).__mro__ if k in ERROR_STATUS), 500)


def refusal(exc: ApiError, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The response that refuses a request with ``exc``."""
    return JSONResponse(
        error_body(type(exc).__name__, str(exc)), status_code=status_of(exc), headers=headers
    )
