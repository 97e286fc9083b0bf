"""Errors raised by the PII detector and redactor.

Messages never quote the text being examined: a message may end up in a log, and the text may hold
the very personal data this package exists to remove.
"""

from __future__ import annotations

from ingest.governance.errors import GovernanceError


class PiiError(GovernanceError):
    """Base class of every error raised by :mod:`ingest.governance.pii`."""


class UnsupportedLanguage(PiiError, ValueError):
    """``language`` was not one of ``"zh"``, ``"en"`` or ``"mixed"``."""


class InvalidPiiConfig(PiiError, ValueError):
    """A :class:`~ingest.governance.pii.config.PiiConfig` was inconsistent (bad regex, bad
    window)."""


class NerModelUnavailable(PiiError):
    """An NER model was named explicitly in the config but is not installed."""
