"""Rule-first detection and redaction of personal data in Chinese, English and mixed texts.

``PiiRedactor().redact(text, language="zh")`` returns the text with typed placeholders (``[PHONE]``,
``[EMAIL]``, ``[ID_CARD]``, ...) and per-type counts. Detection reads a normalized view of the
text (:mod:`~ingest.governance.pii.normalize`), so zero-width characters, digits of other scripts,
Chinese numerals or spelled-out e-mail addresses do not hide a value; the redaction replaces
exactly the original characters. Importing this package does not import spaCy; the pipelines are
built on first use.
"""

from ingest.governance.pii.config import DEFAULT_ID_RULES, IdRule, PiiConfig
from ingest.governance.pii.errors import (
    InvalidPiiConfig,
    NerModelUnavailable,
    PiiError,
    UnsupportedLanguage,
)
from ingest.governance.pii.model import (
    STRUCTURED_TYPES,
    PiiMatch,
    PiiRedaction,
    PiiType,
    RedactionSpan,
)
from ingest.governance.pii.patterns import find_structured
from ingest.governance.pii.redactor import PiiRedactor, TextTooLong, apply_redaction

__all__ = [
    "DEFAULT_ID_RULES",
    "STRUCTURED_TYPES",
    "IdRule",
    "InvalidPiiConfig",
    "NerModelUnavailable",
    "PiiConfig",
    "PiiError",
    "PiiMatch",
    "PiiRedaction",
    "PiiRedactor",
    "PiiType",
    "RedactionSpan",
    "TextTooLong",
    "UnsupportedLanguage",
    "apply_redaction",
    "find_structured",
]
