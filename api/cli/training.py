"""``byr train``, ``byr recipes``, ``byr chat`` and ``byr lineage``: fine-tune on the accepted
corpus (with recipe advice), talk to the adapter, trace adapters back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.common import (
    EXIT_FAILED,
    JsonOpt,
    app,
    emit,
    err,
    exit_on_error,
    open_parts,
    out,
)

# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML scalars (numbers, booleans, lists)."""
    from api.services.recipes import parse_overrides
    from ledger.errors import InvalidRequest

    try:
        return parse_overrides(items, where="--set")
    except InvalidRequest as exc:
        raise typer.BadParameter(str(exc)) from exc


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
        if not as_json:
            _, warnings = parts.training.check_request(request)
            _print_warnings(warnings)
        if queue:
            result: dict[str, Any] = {**parts.training.submit(request), "queued": True}
        else:
            result = parts.training.train(
                request, output_dir=output, resume=resume, progress=not as_json
            )

    def human() -> None:
        if result.get("queued"):
            out.print(f"training request {result['request_id']} queued")
            return
        if result["status"] == "stopped":
            out.print(f"run       {result['run_id']} stopped after step {result['step']}")
            out.print(f"resume    byr train --resume --output {result['run_dir']} ...")
            return
        losses = result["losses"]
        out.print(f"run       {result['run_id']} on {result['records']} records")
        out.print(f"loss      {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps")
        out.print(f"adapter   {result['adapter_dir']}")
        out.print(f"dataset   {result['dataset_root']}")
        out.print(f"anchored  {result['anchor_tx_hash'] or 'pending'}")

    emit(result, as_json=as_json, human=human)


def _print_warnings(warnings: list[dict[str, Any]]) -> None:
    for warning in warnings:
        err.print(
            f"[yellow]advice:[/yellow] {warning['field']}: {warning['message']}",
            highlight=False,
        )


@app.command()
def recipes(
    name: Annotated[
        str | None, typer.Argument(help="Show this recipe resolved, with its advice.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe field: key=value (repeatable)."),
    ] = None,
    records: Annotated[
        int | None, typer.Option(help="Corpus size, for the advice that depends on it.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the bundled recipes, or show one resolved with the settings outside their advised
    range and why (advice only: nothing is changed)."""
    from api.services.recipes import describe_recipe, recipe_library

    with exit_on_error(as_json):
        if name:
            shown = [
                describe_recipe(
                    name,
                    overrides=_parse_overrides(set_ or []),
                    records=records,
                    allow_paths=True,
                )
            ]
        else:
            shown = recipe_library(records=records)

    def human() -> None:
        for item in shown:
            out.print(f"{item['name']:<22} {item['method']:<9} {item['description'][:60]}")
            for warning in item["warnings"]:
                out.print(f"  advice: {warning['field']}: {warning['message']}", highlight=False)
        if name:
            import yaml

            out.print(yaml.safe_dump(shown[0]["recipe"], sort_keys=False), highlight=False)

    emit(shown if not name else shown[0], as_json=as_json, human=human)


@app.command()
def chat(
    adapter: Annotated[
        str, typer.Option(help="An adapter folder, a finished run id, or `base`.")
    ] = "base",
    base: Annotated[
        str | None, typer.Option(help="Base model (default: the adapter's own, or tiny).")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Answer this one prompt and exit (no REPL).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=512)] = 128,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="0: greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.01, max=1.0)] = 1.0,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Talk to a trained adapter (loaded by plain peft on its base), streamed token by token.

    Without --prompt: a REPL; an empty line or Ctrl-D ends it, /reset forgets the
    conversation."""
    import sys

    with exit_on_error(as_json), open_parts() as parts:
        service = parts.generation
        history: list[dict[str, str]] = []

        def answer(text: str) -> dict[str, Any]:
            history.append({"role": "user", "content": text})
            stream = service.stream(
                adapter=adapter,
                messages=history,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                base=base,
                allow_paths=True,
            )
            pieces = []
            for piece in stream:
                pieces.append(piece)
                if not as_json:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            if not as_json:
                sys.stdout.write("\n")
            reply = "".join(pieces)
            history.append({"role": "assistant", "content": reply})
            return {
                "adapter": adapter,
                "text": reply,
                "pieces": pieces,
                "prompt_tokens": stream.prompt_tokens,
                "completion_tokens": stream.completion_tokens,
                "finish_reason": stream.finish_reason,
            }

        if prompt is not None:
            result = answer(prompt)
            if as_json:
                emit(result, as_json=True, human=lambda: None)
            return
        while True:
            try:
                line = input("you> ")
            except EOFError:
                break
            if not line.strip():
                break
            if line.strip() == "/reset":
                history.clear()
                continue
            result = answer(line)
            if as_json:
                emit(result, as_json=True, human=lambda: None)


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
