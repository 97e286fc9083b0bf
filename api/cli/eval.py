"""``byr eval``: score the base and adapters on a benchmark, per discipline and task, with
contamination refusal, forgetting flags and a JSON + HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.common import JsonOpt, app, emit, err, exit_on_error, open_parts, out

if TYPE_CHECKING:
    from trainer.eval.results import Progress


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@app.command(name="eval")
def evaluate(
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated models: base, finished run ids and/or adapter folders "
            "(e.g. base,RUN_A,RUN_B)."
        ),
    ],
    base: Annotated[
        str | None,
        typer.Option(
            help="Base model: tiny, tiny-<family>, smollm2-135m or a folder "
            "(default: the first adapter's own base)."
        ),
    ] = None,
    benchmark: Annotated[
        Path | None, typer.Option(help="Benchmark folder (default: the bundled seed benchmark).")
    ] = None,
    cells: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated DISCIPLINE:TASK cells, e.g. "
            "information_theory:knowledge_qa (default: every cell)."
        ),
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Only items in zh or en (default: both).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most N items per cell (and N control items).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=2048)] = 128,
    control: Annotated[
        Path | None, typer.Option(help="Control-set folder (default: the bundled control set).")
    ] = None,
    glossary_terms: Annotated[
        int, typer.Option(min=0, help="Glossary terms per discipline to probe (0: none).")
    ] = 16,
    output: Annotated[
        Path | None,
        typer.Option(help="Report folder (default: BYR_HOME/eval/reports/<report id>)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the base and adapters (loaded once, adapters swapped on it) on a benchmark:
    generation, metrics and perplexity per item, cached so that a rerun resumes; items in an
    adapter's training data are refused; forgetting and glossary knowledge against the base.
    Writes report.json and report.html and records the evaluation in the ledger."""
    from api.services.evaluation import EvaluationRequest

    request = EvaluationRequest(
        models=_split(models),
        base=base,
        benchmark=benchmark,
        cells=_split(cells),
        languages=_split(language),
        limit=limit,
        max_new_tokens=max_new_tokens,
        control=control,
        glossary_terms=glossary_terms,
    )
    shown: dict[tuple[str, str], int] = {}

    def progress(p: Progress) -> None:
        # One line per model and stage, at its end: quiet enough for a log.
        if p.done == p.total and shown.get((p.model, p.stage)) != p.total:
            shown[(p.model, p.stage)] = p.total
            err.print(f"  {p.model}: {p.stage} {p.done}/{p.total}", highlight=False)

    with exit_on_error(as_json), open_parts() as parts:
        result = parts.evaluation.evaluate(
            request, output_dir=output, progress=None if as_json else progress
        )

    def human() -> None:
        out.print(
            f"evaluation {result['report_id']}: {result['items']} items in "
            f"{result['cells']} cells, {result['control_items']} control items"
        )
        for name, summary in result["summary"].items():
            overall = summary["overall"]
            refused = result["contaminated"].get(name, [])
            line = f"  {name:<36} overall {overall:.3f}" if overall is not None else f"  {name}"
            if refused:
                line += f", {len(refused)} contaminated item(s) refused"
            flags = result["forgetting"].get(name)
            if flags:
                line += f", [red]{len(flags)} forgetting flag(s)[/red]"
            out.print(line, highlight=False)
        out.print(f"report    {result['report_html']}")
        out.print(f"json      {result['report_json']}")
        out.print(f"sha256    {result['report_sha256']}")

    emit(result, as_json=as_json, human=human)
