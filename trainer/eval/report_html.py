"""The evaluation report as one self-contained HTML page: inline CSS, charts as PNG images made
with matplotlib and embedded as base64 data URLs, no script and no external asset, so the file
can be mailed, archived or opened offline as it is.

Charts: per model, a discipline x task heatmap for each dimension (knowledge, teaching,
application, overall); per adapter, the same heatmaps of its deltas against the base (forgetting
cells framed) and its glossary log-likelihood change per discipline. Every text that comes from
the report is HTML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ledger.vocabulary import Discipline, TaskType
from trainer.eval.analysis import DIMENSIONS, ITEM_METRICS
from trainer.eval.report_charts import glossary_chart, heatmaps, label

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px;
       color: #1b1f24; background: #fff; line-height: 1.4; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 32px;
     border-bottom: 1px solid #d0d7de; padding-bottom: 4px; } h3 { font-size: 16px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; }
th { background: #f6f8fa; } td.t, th.t { text-align: left; }
.muted { color: #656d76; } .flag { color: #b42318; font-weight: 600; }
.ok { color: #1a7f37; } .box { background: #fff4f2; border: 1px solid #f4b4ab; padding: 8px 12px;
     border-radius: 6px; } .good { background: #eefbf1; border-color: #a6dfb4; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
code { font-size: 12px; background: #f6f8fa; padding: 1px 4px; border-radius: 4px; }
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return escape(str(value))


def _axes_order(report: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    cells = [(c["discipline"], c["task_type"]) for c in report["benchmark"]["cells"]]
    disciplines = [d.value for d in Discipline if any(c[0] == d.value for c in cells)]
    tasks = [t.value for t in TaskType if any(c[1] == t.value for c in cells)]
    return disciplines, tasks


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, text_columns: int = 1) -> str:
    head = "".join(
        f'<th class="{"t" if i < text_columns else ""}">{escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"t" if i < text_columns else ""}">{_fmt(v)}</td>'
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _short(value: str | None) -> str:
    """A hash cut to 16 characters for the page (report.json has it whole)."""
    return "—" if not value else value[:16] + "…"


def _lineage(report: Mapping[str, Any]) -> str:
    base = report["lineage"]["base_model"]
    rows = []
    for m in report["lineage"]["models"]:
        rows.append(
            [
                m["name"],
                m["kind"],
                _short(m.get("adapter_hash")),
                m.get("adapter_verified", "—"),
                m.get("run_id") or "—",
                m.get("method") or "—",
                _short(m.get("dataset_root")),
                m.get("train_records", "—"),
                m.get("loaded") or "base",
            ]
        )
    header = (
        f"<p>Base model <b>{escape(base['name'])}</b>, weights hash <code>{escape(base['hash'])}"
        "</code></p>"
    )
    note = '<p class="muted">Hashes are shortened here; report.json holds them whole.</p>'
    return (
        header
        + note
        + _table(
            [
                "model",
                "kind",
                "adapter hash",
                "hash verified",
                "run",
                "method",
                "dataset root",
                "train records",
                "loaded",
            ],
            rows,
            text_columns=7,
        )
    )


def _flags(report: Mapping[str, Any]) -> str:
    parts = []
    for comparison in report["comparisons"]:
        flags = comparison["forgetting"]
        if not flags:
            parts.append(
                f'<p class="ok">{escape(comparison["model"])}: no forgetting flag against '
                f"{escape(comparison['against'])}.</p>"
            )
            continue
        items = "".join(
            "<li>"
            + escape(
                f"{label(f['discipline'])} × {label(f['task_type'])}: {f['reason']}"
                if f["scope"] == "cell"
                else f"control set: {f['reason']}"
            )
            + "</li>"
            for f in flags
        )
        parts.append(
            f'<div class="box"><span class="flag">forgetting</span> '
            f"{escape(comparison['model'])} against {escape(comparison['against'])}:"
            f"<ul>{items}</ul></div>"
        )
    return "".join(parts) or '<p class="muted">No adapter was compared with the base.</p>'


def _contamination(report: Mapping[str, Any]) -> str:
    parts = []
    for model in report["models"]:
        check = model["contamination"]
        if model["kind"] == "base":
            continue
        if not check["checked"]:
            parts.append(f"<p>{escape(model['name'])}: not checked (no training texts given).</p>")
            continue
        coverage = (
            f"{check['texts_available']} of {check['training_records']} training records readable"
        )
        if not check["items"]:
            parts.append(
                f'<p class="ok">{escape(model["name"])}: no item shares a 13-gram with its '
                f"training data ({coverage}).</p>"
            )
            continue
        rows = [
            [c["item_id"], ", ".join(c["fields"]), c["shared_ngrams"], ", ".join(c["record_ids"])]
            for c in check["items"]
        ]
        parts.append(
            f'<p><span class="flag">{len(rows)} item(s) refused</span> for '
            f"{escape(model['name'])} ({coverage}):</p>"
            + _table(
                ["item", "fields", "shared 13-grams", "training records"], rows, text_columns=2
            )
        )
    return "".join(parts) or '<p class="muted">No adapter evaluated.</p>'


def _model_tables(model: Mapping[str, Any]) -> str:
    rows = [
        [
            label(c["discipline"]),
            label(c["task_type"]),
            c["items"],
            *(c[d] for d in DIMENSIONS),
            *(c["metrics"][m] for m in ITEM_METRICS),
            c["perplexity"],
        ]
        for c in model["cells"]
    ]
    s = model["summary"]
    summary = (
        f"<p>{s['items_scored']} items in {s['cells']} cells; overall {_fmt(s['overall'])}, "
        f"knowledge {_fmt(s['knowledge'])}, teaching {_fmt(s['teaching'])}, application "
        f"{_fmt(s['application'])}; reference perplexity {_fmt(s['perplexity'], 2)}.</p>"
    )
    return summary + _table(
        ["discipline", "task", "items", *DIMENSIONS, *ITEM_METRICS, "perplexity"],
        rows,
        text_columns=2,
    )


def _control_and_glossary(report: Mapping[str, Any]) -> str:
    control_rows = [
        [
            m["name"],
            m["control"]["items"],
            m["control"]["overall"],
            m["control"]["rouge_l"],
            m["control"]["bleu"],
            m["control"]["mean_log_likelihood"],
            m["control"]["perplexity"],
        ]
        for m in report["models"]
    ]
    html = "<h3>Control set</h3>" + _table(
        ["model", "items", "text score", "rouge_l", "bleu", "log-likelihood / token", "perplexity"],
        control_rows,
    )
    disciplines = sorted({d for m in report["models"] for d in m["glossary"]})
    if disciplines:
        rows = [
            [
                label(d),
                *(m["glossary"].get(d, {}).get("mean_log_likelihood") for m in report["models"]),
            ]
            for d in disciplines
        ]
        html += "<h3>Glossary terms: log-likelihood per token</h3>" + _table(
            ["discipline", *(m["name"] for m in report["models"])], rows
        )
    return html


def render_html(report: Mapping[str, Any]) -> str:
    """The report page (see the module docstring)."""
    disciplines, tasks = _axes_order(report)
    bench, control, decoding = report["benchmark"], report["control"], report["decoding"]
    sections = [
        f"<h1>Evaluation {escape(report['report_id'])}</h1>",
        f'<p class="muted">{escape(report["created_at"])} · benchmark '
        f"<b>{escape(bench['name'])}</b> {escape(bench['version'])} (<code>"
        f"{escape(bench['hash'][:16])}…</code>), {bench['items']} items in "
        f"{len(bench['cells'])} cells · control set {escape(str(control['name']))} "
        f"({control['items']} items) · max {decoding['max_new_tokens']} new tokens, "
        f"{'greedy' if decoding['greedy'] else 'sampled'} · {report['seconds']} s</p>",
        "<h2>Forgetting</h2>",
        _flags(report),
        "<h2>Lineage</h2>",
        _lineage(report),
        "<h2>Contamination</h2>",
        _contamination(report),
        "<h2>Scores</h2>",
    ]
    for model in report["models"]:
        values = {(c["discipline"], c["task_type"]): c for c in model["cells"]}
        sections.append(f"<h3>{escape(model['name'])}</h3>")
        if values:
            sections.append(heatmaps(model["name"], values, disciplines, tasks))
        sections.append(_model_tables(model))
    if report["comparisons"]:
        sections.append("<h2>Against the base</h2>")
    gain = report["thresholds"]["glossary_gain"]
    for comparison in report["comparisons"]:
        deltas = {(c["discipline"], c["task_type"]): c["delta"] for c in comparison["cells"]}
        framed = frozenset(
            (c["discipline"], c["task_type"]) for c in comparison["cells"] if c["forgetting"]
        )
        name = f"{comparison['model']} − {comparison['against']}"
        sections.append(f"<h3>{escape(name)}</h3>")
        if deltas:
            sections.append(
                heatmaps(name, deltas, disciplines, tasks, diverging=True, framed=framed)
            )
        c = comparison["control"]
        if c is not None:
            sections.append(
                f"<p>Control set ({c['paired_items']} items): text score "
                f"{_fmt(c['delta_overall'], 3)}, log-likelihood "
                f"{_fmt(c['delta_mean_log_likelihood'], 3)} nats/token.</p>"
            )
        if comparison["glossary"]:
            sections.append(
                glossary_chart(
                    f"glossary log-likelihood change: {name}", comparison["glossary"], gain
                )
            )
            sections.append(
                _table(
                    ["discipline", "before", "after", "change", "injected"],
                    [
                        [
                            label(g["discipline"]),
                            g["before"],
                            g["after"],
                            g["delta"],
                            g["injected"],
                        ]
                        for g in comparison["glossary"]
                    ],
                )
            )
    sections.append("<h2>Control set and glossary</h2>")
    sections.append(_control_and_glossary(report))
    thresholds = report["thresholds"]
    sections.append(
        '<p class="muted">Thresholds: '
        + ", ".join(f"{escape(k)} {v}" for k, v in thresholds.items())
        + f" · loads {escape(str(report['stats'].get('loads')))}, generated "
        f"{report['stats'].get('generated')}, cache hits {report['stats'].get('cache_hits')}</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Evaluation {escape(report['report_id'])}</title>"
        f"<style>{CSS}</style></head><body>" + "\n".join(sections) + "</body></html>\n"
    )
