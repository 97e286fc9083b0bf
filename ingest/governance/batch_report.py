"""Render a governed batch for people and programs (``byr report BATCH [--json]``).

:func:`build_report` turns the decisions (from :class:`ingest.governance.engine.BatchGovernance` or
a stored ``BatchGoverned`` event) and the records' texts into one JSON-ready dict; every flag gets
an excerpt of its field with the flagged span marked ``«…»``. :func:`render_text` prints that dict
as plain text; :func:`render_rich` builds a rich table for terminals.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ingest.governance.engine import BatchGovernance, RecordDecision
from ledger.canonical import field_text

if TYPE_CHECKING:
    from rich.console import RenderableType

EXCERPT_CONTEXT = 24
"""Characters of context shown on each side of a flagged span."""
MAX_SPAN_SHOWN = 60
"""Longer flagged spans are shortened in the middle."""
WEI_PER_BYR = 10**18
SCORE_KEYS = (
    "term_coverage",
    "instruction_output",
    "consecutive_sentences",
    "repeat_ratio",
    "duplicate_similarity",
    "quality",
    "novelty",
    "contribution",
)


def excerpt(text: str, start: int, end: int, *, context: int = EXCERPT_CONTEXT) -> str:
    """``text`` around ``[start, end)`` with the span marked ``«…»``, newlines shown as ``⏎``,
    control characters as ``\\xNN`` and cut ends marked ``…``. An empty span shows as ``«»``."""
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    span = text[start:end]
    if len(span) > MAX_SPAN_SHOWN:
        half = MAX_SPAN_SHOWN // 2
        span = f"{span[:half]}…{span[-half:]}"
    before = text[max(0, start - context) : start]
    after = text[end : end + context]
    piece = f"{'…' if start > context else ''}{before}«{span}»{after}"
    piece += "…" if end + context < len(text) else ""
    return _CONTROL.sub(_visible, piece.replace("\r", "").replace("\n", "⏎"))


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(match: re.Match[str]) -> str:
    """Control characters (garbled text often holds them) as escapes, so a terminal shows them."""
    return f"\\x{ord(match.group()):02x}"


def build_report(
    *,
    decisions: Sequence[RecordDecision | Mapping[str, Any]],
    records: Mapping[str, Mapping[str, Any]],
    policy_version: str,
    contribution_score: float,
    reward_wei: int | str,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """The report of one batch. ``records`` maps record ids to canonical records (for excerpts);
    a record missing there (erased) is reported without excerpts."""
    rows = [d if isinstance(d, RecordDecision) else RecordDecision.from_dict(d) for d in decisions]
    reasons: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    out: list[dict[str, Any]] = []
    for decision in rows:
        reasons.update(decision.reasons)
        redactions.update(decision.redactions)
        record = records.get(decision.record_id)
        flags = []
        for flag in decision.flags:
            shown = dict(flag)
            if record is not None:
                shown["excerpt"] = excerpt(
                    field_text(record, flag["field"]), flag["start"], flag["end"]
                )
            flags.append(shown)
        out.append({**decision.to_dict(), "flags": flags})
    accepted = sum(1 for d in rows if d.accepted)
    return {
        "batch_id": batch_id,
        "policy_version": policy_version,
        "records": len(rows),
        "accepted": accepted,
        "rejected": len(rows) - accepted,
        "reasons": dict(sorted(reasons.items())),
        "redactions": dict(sorted(redactions.items())),
        "contribution_score": contribution_score,
        "reward_wei": str(reward_wei),
        "reward_byr": format_byr(int(reward_wei)),
        "decisions": out,
    }


def report_from_governance(
    batch: BatchGovernance, records: Mapping[str, Mapping[str, Any]], *, batch_id: str | None = None
) -> dict[str, Any]:
    """:func:`build_report` for a batch just decided by the engine."""
    return build_report(
        decisions=batch.decisions,
        records=records,
        policy_version=batch.policy_version,
        contribution_score=batch.contribution_score,
        reward_wei=batch.reward_wei,
        batch_id=batch_id,
    )


def report_from_event(
    governed: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """:func:`build_report` for a stored ``BatchGoverned`` payload (``event.model_dump()``)."""
    return build_report(
        decisions=governed["decisions"],
        records=records,
        policy_version=governed["policy_version"],
        contribution_score=governed["contribution_score"],
        reward_wei=governed["reward_wei"],
        batch_id=governed.get("batch_id"),
    )


def format_byr(wei: int) -> str:
    """``wei`` as BYR with up to six decimals, e.g. ``17.278624 BYR``."""
    value = (Decimal(wei) / WEI_PER_BYR).quantize(Decimal("0.000001"))
    return f"{value.normalize():f} BYR"


def _score_line(scores: Mapping[str, float]) -> str:
    return "  ".join(f"{key}={scores[key]:.2f}" for key in SCORE_KEYS if key in scores)


def render_text(report: Mapping[str, Any]) -> str:
    """The report as plain text: a summary, then one block per record with its flags."""
    lines = [
        f"batch {report['batch_id'] or '-'}  policy {report['policy_version']}",
        f"records {report['records']}: {report['accepted']} accepted, "
        f"{report['rejected']} rejected",
    ]
    if report["reasons"]:
        lines.append("reasons: " + ", ".join(f"{k} {v}" for k, v in report["reasons"].items()))
    if report["redactions"]:
        lines.append(
            "redactions: " + ", ".join(f"{k} {v}" for k, v in report["redactions"].items())
        )
    lines.append(
        f"contribution {report['contribution_score']:.6f}  reward {report['reward_byr']} "
        f"({report['reward_wei']} wei)"
    )
    for d in report["decisions"]:
        verdict = "ACCEPT" if d["accepted"] else "REJECT"
        head = f"{d['record_id']}  {verdict}"
        if d["reasons"]:
            head += "  " + ",".join(d["reasons"])
        if d["duplicate_of"]:
            head += f"  (duplicate of {d['duplicate_of']})"
        lines += ["", head, f"    {_score_line(d['scores'])}"]
        if d["redactions"]:
            lines.append(
                "    redacted: " + ", ".join(f"{k} {v}" for k, v in d["redactions"].items())
            )
        for f in d["flags"]:
            lines.append(
                f"    [{f['severity']}] {f['code']} {f['field']}[{f['start']}:{f['end']}] "
                f"{f['message']}"
            )
            if "excerpt" in f:
                lines.append(f"        {f['excerpt']}")
    return "\n".join(lines)


def render_rich(report: Mapping[str, Any]) -> RenderableType:
    """The report as a rich renderable: a summary line and a table with one row per record."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    summary = Text(
        f"batch {report['batch_id'] or '-'} · policy {report['policy_version']} · "
        f"{report['accepted']}/{report['records']} accepted · reward {report['reward_byr']}"
    )
    table = Table(show_lines=True)
    table.add_column("record")
    table.add_column("decision")
    table.add_column("reasons")
    table.add_column("scores")
    table.add_column("flags")
    for d in report["decisions"]:
        decision = Text("accept", style="green") if d["accepted"] else Text("reject", style="red")
        reasons = ", ".join(d["reasons"])
        if d["duplicate_of"]:
            reasons += f"\nduplicate of {d['duplicate_of']}"
        flags = Text()
        for f in d["flags"]:
            style = "red" if f["severity"] == "error" else "yellow"
            flags.append(f"{f['code']} {f['field']}[{f['start']}:{f['end']}]", style=style)
            flags.append(f" {f.get('excerpt', f['message'])}\n")
        scores = "\n".join(f"{k} {d['scores'][k]:.2f}" for k in SCORE_KEYS if k in d["scores"])
        table.add_row(d["record_id"], decision, reasons, scores, flags)
    return Group(summary, table)
