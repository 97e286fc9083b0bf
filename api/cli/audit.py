"""``byr proof``, ``byr verify``, ``byr replay`` and ``byr report``: what auditors run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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
# proofs
# ---------------------------------------------------------------------------------------------


@app.command()
def proof(
    record_id: Annotated[str, typer.Argument(help="A record id (rec_...).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the bundle to this file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a record's proof bundle (always JSON: the bundle is the machine format)."""
    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        bundle = parts.ledger.proof(record_id)
    text = bundle.to_json() + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        if not as_json:
            err.print(f"bundle written to {output}")
    else:
        sys.stdout.write(text)


@app.command()
def verify(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A proof bundle file.")],
    offline: Annotated[
        bool, typer.Option(help="Check hashes and proof only; do not ask the chain.")
    ] = False,
    rpc_url: Annotated[
        str | None,
        typer.Option(help="Ask this JSON-RPC node instead of the configured academic chain."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a proof bundle: offline (hash, leaf, proof) and online (anchored by that contract
    in that transaction). Exit 0 when valid, 1 with the reason when not."""
    from api.services.audit import verify_bundle
    from ledger.audit import load_bundle

    with exit_on_error(as_json):
        bundle = load_bundle(bundle_path)
        if offline or rpc_url is not None:
            report = verify_bundle(bundle, offline=offline, rpc_url=rpc_url)
        else:
            with open_parts() as parts:
                report = verify_bundle(bundle, configured=parts.academic_at)
    emit(
        report.to_dict(),
        as_json=as_json,
        human=lambda: out.print(report.render(), highlight=False, markup=False),
    )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------


@app.command()
def replay(
    repair: Annotated[
        bool, typer.Option(help="Overwrite live projections that differ from the replay.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild every projection from the event log and compare with the live state."""
    from api.services.audit import replay_document

    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        data = replay_document(log=parts.log, ledger=parts.ledger, repair=repair)
    integrity = data["integrity"]

    def human() -> None:
        mark = "[green]ok[/green]" if integrity["ok"] else "[red]FAILED[/red]"
        out.print(f"log integrity {mark}: {integrity['events_checked']} events checked")
        for p in integrity["problems"][:20]:
            out.print(f"  [red]{p}[/red]", highlight=False)
        out.print(f"replayed {data['events_replayed']} events into {len(data['tables'])} tables")
        if data["equal"]:
            out.print("[green]replayed projections equal the live ones[/green]")
        else:
            for table, diff in data["differences"].items():
                out.print(
                    f"[red]{table}[/red]: {len(diff['live_only'])} live-only rows, "
                    f"{len(diff['replayed_only'])} replayed-only rows"
                )
            if data["replaced"]:
                out.print("live projections replaced by the replayed ones")

    emit(data, as_json=as_json, human=human)
    if not data["ok"]:
        raise typer.Exit(EXIT_FAILED)


# ---------------------------------------------------------------------------------------------
# governance report
# ---------------------------------------------------------------------------------------------


@app.command()
def report(
    batch_id: Annotated[str, typer.Argument(metavar="BATCH", help="A batch id.")],
    as_json: JsonOpt = False,
) -> None:
    """Per-record decisions, scores, flags with spans, redaction counts and the reward."""
    from api.services.governance_report import batch_report, render_batch_report

    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        data = batch_report(parts.ledger, batch_id)
    emit(data, as_json=as_json, human=lambda: render_batch_report(data, out))
