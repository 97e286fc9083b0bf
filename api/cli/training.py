"""``byr train`` and ``byr lineage``: fine-tune on the accepted corpus, trace adapters back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.common import (
    EXIT_FAILED,
    JsonOpt,
    app,
    emit,
    exit_on_error,
    open_parts,
    out,
)

# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML scalars (numbers, booleans, lists)."""
    import yaml

    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@app.command()
def train(
    recipe: Annotated[str, typer.Option(help="Recipe name (see trainer/recipes) or YAML file.")],
    base: Annotated[
        str, typer.Option(help="Base model: tiny, tiny-<family>, smollm2-135m or a folder.")
    ] = "tiny",
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe field: key=value (repeatable)."),
    ] = None,
    discipline: Annotated[
        list[str] | None, typer.Option(help="Train on this discipline only (repeatable).")
    ] = None,
    language: Annotated[
        list[str] | None, typer.Option(help="zh, en or mixed (repeatable).")
    ] = None,
    institution: Annotated[
        list[str] | None, typer.Option(help="Records of this institution only (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many records.")] = None,
    output: Annotated[
        Path | None, typer.Option(help="Run folder (default: BYR_HOME/runs/<time>-<recipe>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --output from its last checkpoint.")
    ] = False,
    queue: Annotated[
        bool, typer.Option(help="Only record the request; a `byr worker trainer` runs it.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a base model on the accepted corpus; the adapter is anchored on the academic
    chain with its dataset root, recipe and base-model hashes."""
    from api.services.training import TrainingRequest

    request = TrainingRequest(
        recipe=recipe,
        base_model=base,
        overrides=_parse_overrides(set_ or []),
        max_steps=max_steps,
        disciplines=discipline or [],
        languages=language or [],
        institutions=institution or [],
        record_limit=limit,
    )
    with exit_on_error(as_json), open_parts() as parts:
        if queue:
            request_id = parts.training.request_training(request)
            result: dict[str, Any] = {"request_id": request_id, "queued": True}
        else:
            result = parts.training.train(
                request, output_dir=output, resume=resume, progress=not as_json
            )

    def human() -> None:
        if result.get("queued"):
            out.print(f"training request {result['request_id']} queued")
            return
        losses = result["losses"]
        out.print(f"run       {result['run_id']} on {result['records']} records")
        out.print(f"loss      {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps")
        out.print(f"adapter   {result['adapter_dir']}")
        out.print(f"dataset   {result['dataset_root']}")
        out.print(f"anchored  {result['anchor_tx_hash'] or 'pending'}")

    emit(result, as_json=as_json, human=human)


@app.command()
def lineage(
    adapter_dir: Annotated[Path, typer.Argument(help="An adapter folder written by byr train.")],
    as_json: JsonOpt = False,
) -> None:
    """Verify adapter hash -> run anchor -> dataset root -> records -> batches -> institutions."""
    with exit_on_error(as_json), open_parts() as parts:
        report = parts.training.lineage(adapter_dir)
    emit(
        report.to_dict(),
        as_json=as_json,
        human=lambda: out.print(report.render(), highlight=False, markup=False),
    )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
