"""The ledger package's error tree; adapters translate library errors into these at the boundary."""


class LedgerError(Exception):
    """Base class of every error raised by the ledger package."""


class NotFound(LedgerError):
    """The thing asked for (batch, record, institution) is not in the ledger."""


class InvalidRequest(LedgerError):
    """A request names something malformed or impossible (e.g. a bad institution id)."""


class InvalidInstitutionId(InvalidRequest, ValueError):
    """An institution id that is not a well-formed slug."""


class Conflict(InvalidRequest):
    """The request contradicts what the ledger already holds (e.g. an account registered to
    another institution); retrying it unchanged cannot succeed (HTTP 409)."""
