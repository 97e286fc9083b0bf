"""The accepted-corpus feed as the trainer (or any mirror) reads it: cursor pages of records and
tombstones, and who may read which part of it.

The cursor is a log position (see :mod:`ledger.projections.feed`), so a reader can stop and come
back at any time, through a page or the event stream, without missing or repeating an entry.
Texts are in the feed, salts never are: the trainer reads every institution's records, a
contributor its own institution's only, admins and auditors none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from api.services.keys import NotAuthorized, Principal, Role
from ledger.application import CorpusLedger
from ledger.errors import InvalidRequest
from ledger.ids import require_institution_id
from ledger.projections.feed import MAX_PAGE, FeedCursor, FeedFilter, FeedPage

DEFAULT_PAGE = 100
MAX_FILTER_CHARS = 64

READERS = (Role.TRAINER, Role.CONTRIBUTOR)
"""Roles that read the feed (a contributor only its own institution's part). Admins do not: the
feed holds texts, and nobody but a record's owner and the feed's trainer reads those."""


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """A validated read of the feed: where to start, how much, and which entries."""

    after: FeedCursor
    limit: int
    where: FeedFilter


def parse_timestamp(value: str, *, field: str) -> str:
    """``value`` (ISO 8601; ``Z`` or an offset, UTC when none) as the UTC form the log records
    times in; raises :class:`InvalidRequest` naming ``field``."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{field}: expected an ISO 8601 timestamp such as 2026-01-31T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _short(value: str | None, *, field: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_FILTER_CHARS:
        raise InvalidRequest(f"{field}: expected at most {MAX_FILTER_CHARS} characters")
    return value


def feed_filter(
    who: Principal | None,
    *,
    discipline: str | None = None,
    task_type: str | None = None,
    language: str | None = None,
    institution: str | None = None,
    accepted_since: str | None = None,
) -> FeedFilter:
    """The filter ``who`` reads with (``None``: the server's home, everything): a contributor's
    is forced to its own institution (asking for another one is refused), an auditor is refused."""
    institution = _short(institution, field="institution")
    if institution is not None:
        try:
            require_institution_id(institution)
        except InvalidRequest:
            raise InvalidRequest(
                "institution: expected an institution id such as bupt (lowercase letters, "
                "digits, - and _)"
            ) from None
    if who is not None and not who.local:
        if not who.has(*READERS):
            raise NotAuthorized(
                "the feed holds texts: it is for the trainer and contributors (their own records)"
            )
        if who.role is Role.CONTRIBUTOR:
            if institution is not None and institution != who.institution_id:
                raise NotAuthorized("a contributor reads its own institution's records only")
            institution = who.institution_id
    return FeedFilter(
        discipline=_short(discipline, field="discipline"),
        task_type=_short(task_type, field="task_type"),
        language=_short(language, field="language"),
        institution_id=institution,
        accepted_since=(
            parse_timestamp(accepted_since, field="accepted_since") if accepted_since else None
        ),
    )


def feed_request(
    *, cursor: str | None, limit: int | None, where: FeedFilter, cursor_field: str = "cursor"
) -> FeedRequest:
    """A validated :class:`FeedRequest`; raises :class:`InvalidRequest` naming the field."""
    size = DEFAULT_PAGE if limit is None else limit
    if not 1 <= size <= MAX_PAGE:
        raise InvalidRequest(f"limit: expected 1 to {MAX_PAGE}")
    return FeedRequest(after=FeedCursor.parse(cursor, field=cursor_field), limit=size, where=where)


class FeedService:
    """Pages of the feed of one ledger, as projected (callers catch up first when they must)."""

    def __init__(self, *, ledger: CorpusLedger) -> None:
        self.ledger = ledger

    def page(self, request: FeedRequest) -> FeedPage:
        return self.ledger.feed_page(after=request.after, limit=request.limit, where=request.where)
