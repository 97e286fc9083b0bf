"""Ledger homes for tests: initialized exactly as ``byr init`` does it."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class TestKeys:
    """One API key per role (contributors for bupt and xidian) on a home, as headers."""

    admin: dict[str, str]
    bupt: dict[str, str]
    xidian: dict[str, str]
    auditor: dict[str, str]
    trainer: dict[str, str]
    ids: dict[str, str]


def issue_keys(settings: LedgerSettings) -> TestKeys:
    """Issue the keys of :class:`TestKeys` on the home of ``settings`` (as ``byr keys create``)."""
    from api.composition import Parts

    specs = {
        "admin": ("admin", None),
        "bupt": ("contributor", "bupt"),
        "xidian": ("contributor", "xidian"),
        "auditor": ("auditor", None),
        "trainer": ("trainer", None),
    }
    headers: dict[str, dict[str, str]] = {}
    ids: dict[str, str] = {}
    with Parts(settings) as parts:
        for name, (role, institution) in specs.items():
            issued = parts.keys.create(role=role, institution_id=institution, label=f"test {name}")
            headers[name] = {"Authorization": f"Bearer {issued.key}"}
            ids[name] = issued.key_id
    return TestKeys(**headers, ids=ids)
