"""The governance package's error tree.

A record that fails a quality check is not an exception: it is a rejection with reason codes (see
:mod:`ingest.governance.engine`). Exceptions are for configuration that cannot be used (a bad
policy file, a broken glossary) and for callers that misuse the API.
"""

from __future__ import annotations

from ingest.errors import IngestError


class GovernanceError(IngestError):
    """Base class of every error raised by the governance package."""


class PolicyError(GovernanceError, ValueError):
    """The decision policy file is missing, not YAML, or fails validation. The message names the
    offending YAML key (e.g. ``disciplines.network_security.min_term_coverage``)."""


class GlossaryError(GovernanceError, ValueError):
    """A glossary file is missing, malformed, or holds a duplicate term. The message names the file
    and the entry."""


class GovernanceInputError(GovernanceError, ValueError):
    """A caller passed records the engine cannot govern (duplicate record ids in one batch, an
    unknown discipline or language)."""


class EmbeddingError(GovernanceError):
    """Base class of errors raised while computing or caching embeddings."""


class UnsupportedLanguage(EmbeddingError, ValueError):
    """A language other than ``zh``, ``en`` or ``mixed`` was asked for."""


class EmbeddingModelUnavailable(EmbeddingError):
    """The package that ships a model is missing or its files cannot be found."""
