"""Errors of the search package."""

from __future__ import annotations

from ingest.errors import IngestError


class SearchError(IngestError):
    """Base class of every error raised by :mod:`ingest.search`."""


class InvalidQuery(SearchError, ValueError):
    """A search request the index cannot answer; the message names the field, never its value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
