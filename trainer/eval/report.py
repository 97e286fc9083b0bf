"""The evaluation report: one JSON document (``report.json``), the same as a self-contained HTML
page (``report.html``), and the models' answers (``answers.jsonl``).

The report names the lineage of what it evaluated (base model hash; per adapter its hash, run,
recipe hash and dataset root), the benchmark and control set by name, version and content hash,
and the decoding settings; then per model the cell x dimension scores, the per-metric means, the
control set, the glossary probes and the contaminated items it refused; then per adapter its
deltas against the base and its forgetting flags (:mod:`trainer.eval.analysis`). It holds ids and
numbers, never training text; the answers the models generated are written next to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.eval.analysis import (
    Thresholds,
    by_cell,
    cell_stats,
    compare_cells,
    compare_control,
    compare_glossary,
    control_summary,
    forgetting_flags,
    model_summary,
)
from trainer.eval.results import EvaluationResult, ModelResult

REPORT_SCHEMA_VERSION = 1
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
ANSWERS = "answers.jsonl"


def new_report_id() -> str:
    """``eval-<UTC time>-<8 hex>``: sortable by time, unique."""
    return f"eval-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _model_section(model: ModelResult) -> dict[str, Any]:
    contamination: dict[str, Any] = {"checked": model.contamination is not None}
    if model.contamination is not None:
        contamination |= {
            "training_records": model.contamination.training_records,
            "texts_available": model.contamination.texts_available,
            "items": [
                {
                    "item_id": c.item_id,
                    "fields": list(c.fields),
                    "shared_ngrams": c.shared_ngrams,
                    "record_ids": list(c.record_ids),
                }
                for c in model.contamination.contaminated
            ],
        }
    return {
        "name": model.model.name,
        "kind": "base" if model.model.is_base else "adapter",
        "adapter_hash": model.lineage.get("adapter_hash"),
        "summary": model_summary(model.items),
        "cells": [
            {"discipline": d, "task_type": t, **cell_stats(group)}
            for (d, t), group in by_cell(model.items).items()
        ],
        "control": control_summary(model.control),
        "glossary": {
            d: {
                "mean_log_likelihood": g.mean_log_likelihood,
                "tokens": g.tokens,
                "probes": g.probes,
            }
            for d, g in sorted(model.glossary.items())
        },
        "contamination": contamination,
        "items": [i.as_dict() for i in model.items],
        "control_items": [i.as_dict() for i in model.control],
    }


def _comparison(base: ModelResult, adapter: ModelResult, thresholds: Thresholds) -> dict[str, Any]:
    cells = compare_cells(base.items, adapter.items, thresholds)
    control = compare_control(base.control, adapter.control, thresholds) if base.control else None
    return {
        "model": adapter.model.name,
        "against": base.model.name,
        "cells": cells,
        "control": control,
        "glossary": compare_glossary(base.glossary, adapter.glossary, thresholds),
        "forgetting": forgetting_flags(cells, control),
    }


def build_report(
    result: EvaluationResult,
    *,
    report_id: str,
    thresholds: Thresholds | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """The report document of ``result`` (see the module docstring). Comparisons need the base
    among the models; without it there are none."""
    thresholds = thresholds or Thresholds()
    plan = result.plan
    base = next((m for m in result.models if m.model.is_base), None)
    comparisons = (
        [_comparison(base, m, thresholds) for m in result.models if not m.model.is_base]
        if base is not None
        else []
    )
    settings = plan.settings
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "report_id": report_id,
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "started_at": result.started_at,
        "seconds": round(result.seconds, 3),
        "benchmark": {
            "name": plan.benchmark_name,
            "version": plan.benchmark_version,
            "hash": plan.benchmark_hash,
            "items": len(plan.items),
            "cells": [{"discipline": d, "task_type": t} for d, t in plan.cells],
            "languages": list(plan.languages),
        },
        "control": {
            "name": plan.control_name,
            "version": plan.control_version,
            "hash": plan.control_hash,
            "items": len(plan.control_items),
        },
        "glossary": {
            "disciplines": sorted(plan.glossary),
            "terms_per_discipline": max((len(t) for t in plan.glossary.values()), default=0),
        },
        "decoding": {
            "max_new_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "greedy": settings.temperature == 0,
        },
        "thresholds": thresholds.as_dict(),
        "lineage": {
            "base_model": {"name": result.base_model["name"], "hash": result.base_model["hash"]},
            "models": [m.lineage for m in result.models],
        },
        "models": [_model_section(m) for m in result.models],
        "comparisons": comparisons,
        "stats": result.stats,
        "files": {"json": REPORT_JSON, "html": REPORT_HTML, "answers": ANSWERS},
    }


@dataclass(frozen=True)
class ReportFiles:
    directory: Path
    json_path: Path
    html_path: Path
    answers_path: Path
    sha256: str
    """sha256 (hex) of ``report.json`` as written."""


def _write_atomic(path: Path, data: bytes) -> None:
    staging = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    with staging.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    staging.replace(path)


def write_report(report: dict[str, Any], result: EvaluationResult, directory: Path) -> ReportFiles:
    """Write ``report.json``, ``report.html`` and ``answers.jsonl`` into ``directory``."""
    from ledger.files import private_dir
    from trainer.eval.report_html import render_html

    private_dir(directory)
    answers = [
        {"model": m.model.name, "item_id": i.item_id, "answer": i.answer, "cached": i.cached}
        for m in result.models
        for i in [*m.items, *m.control]
    ]
    _write_atomic(
        directory / ANSWERS,
        "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers).encode("utf-8"),
    )
    data = (json.dumps(report, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()
    _write_atomic(directory / REPORT_JSON, data)
    _write_atomic(directory / REPORT_HTML, render_html(report).encode("utf-8"))
    return ReportFiles(
        directory=directory,
        json_path=directory / REPORT_JSON,
        html_path=directory / REPORT_HTML,
        answers_path=directory / ANSWERS,
        sha256=hashlib.sha256(data).hexdigest(),
    )
