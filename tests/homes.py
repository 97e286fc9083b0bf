"""Ledger homes for tests: initialized exactly as ``byr init`` does it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.composition import initialize
from ledger.settings import LedgerSettings


def initialized_settings(home: Path, **overrides: Any) -> LedgerSettings:
    """Settings of a new ledger in ``home`` (embedded log and chains, both contracts, the demo
    institutions)."""
    settings = LedgerSettings(home=home, **overrides)
    initialize(settings)
    return settings
