"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from ledger.settings import LedgerSettings
from tests.homes import initialized_settings


@pytest.fixture(scope="module")
def ledger_settings(tmp_path_factory: pytest.TempPathFactory) -> LedgerSettings:
    """An initialized home (``byr init``) shared by the tests of one module."""
    return initialized_settings(tmp_path_factory.mktemp("byr-home"))
