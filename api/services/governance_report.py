"""The governance report of one batch, for ``byr report`` and ``GET /v1/batches/{id}/report``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.application import CorpusLedger


def batch_report(ledger: CorpusLedger, batch_id: str, *, with_texts: bool = True) -> dict[str, Any]:
    """Per-record decisions, scores, flags (with excerpts of the text when ``with_texts``),
    redaction counts, the reward and the batch's chain coordinates. Raises ``NotFound`` for an
    unknown batch."""
    batch = ledger.batch(batch_id)
    records = ledger.records(batch_id)
    chain = {
        "status": batch.status,
        "merkle_root": batch.merkle_root,
        "anchor_tx_hash": batch.tx_hash,
        "anchor_chain_id": batch.chain_id,
        "reward_tx_hash": batch.reward_tx_hash,
        "anchor_error": batch.anchor_error,
    }
    if batch.policy_version is None:
        return {
            "batch_id": batch_id,
            "institution_id": batch.institution_id,
            "source": batch.source_name,
            "records": batch.record_count,
            "governed": False,
            **chain,
        }
    from ingest.governance.batch_report import build_report

    report = build_report(
        decisions=[r.decision for r in records if r.decision is not None],
        records={r.record_id: r.record for r in records if r.record is not None}
        if with_texts
        else {},
        policy_version=batch.policy_version,
        contribution_score=batch.contribution_score or 0.0,
        reward_wei=batch.reward_wei or "0",
        batch_id=batch_id,
    )
    lines = {r.record_id: r.source_line for r in records}
    for decision in report["decisions"]:
        decision["source_line"] = lines.get(decision["record_id"])
    return report | {
        "institution_id": batch.institution_id,
        "source": batch.source_name,
        "governed": True,
        **chain,
    }


def render_batch_report(report: Mapping[str, Any], console: Any) -> None:
    """Print a report for people: a summary, then the table of decisions."""
    if not report.get("governed"):
        console.print(
            f"batch {report['batch_id']} ({report['records']} records) is not governed yet: "
            "run `byr dispatch` or a governance worker"
        )
        return
    from ingest.governance.batch_report import render_rich

    console.print(render_rich(report))
    if report.get("anchor_tx_hash"):
        console.print(
            f"anchored in tx {report['anchor_tx_hash']} (chain {report['anchor_chain_id']})"
        )
    if report.get("reward_tx_hash"):
        console.print(f"rewarded in tx {report['reward_tx_hash']}")
