"""Verification reports: named checks with a verdict and a reason, as text or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger.merkle import to_hex


def abbrev(value: bytes | str) -> str:
    """A long hex value abbreviated for reasons (``0x1234abcd…ef5678``)."""
    text = to_hex(value) if isinstance(value, bytes) else value
    return text[:10] + "…" + text[-6:] if len(text) > 18 else text


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step: a stable ``name``, whether it passed, and why (in words)."""

    name: str
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The outcome of verifying one bundle: valid when it has checks and all of them passed."""

    batch_id: str
    record_id: str | None
    root: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def exit_code(self) -> int:
        """0 when valid, 1 when not (the ``byr verify`` convention)."""
        return 0 if self.ok else 1

    def check(self, name: str) -> Check:
        """The check called ``name``; raises ``KeyError`` when the report has none."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "batch_id": self.batch_id,
            "record_id": self.record_id,
            "root": self.root,
            "checks": [{"name": c.name, "ok": c.ok, "reason": c.reason} for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    def render(self) -> str:
        """Human-readable text: a verdict line, then one line per check."""
        subject = f"record {self.record_id or '(no id)'} in batch {self.batch_id}"
        if self.ok:
            head = f"VALID: {subject} is included under root {self.root}"
        else:
            head = f"INVALID: {subject}: {len(self.failed)} of {len(self.checks)} checks failed"
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [head]
        lines += [
            f"  [{'ok' if c.ok else 'FAIL':>4}] {c.name:<{width}}  {c.reason}" for c in self.checks
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
