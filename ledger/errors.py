"""The ledger package's error tree; adapters translate library errors into these at the boundary."""


class LedgerError(Exception):
    """Base class of every error raised by the ledger package."""
