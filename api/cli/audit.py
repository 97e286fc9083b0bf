"""``byr proof``, ``byr verify``, ``byr replay`` and ``byr report``: what auditors run."""

from __future__ import annotations

import sys
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
    open_runtime,
    out,
)
from ledger.errors import LedgerError

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
    with exit_on_error(as_json), open_runtime() as rt:
        rt.require_initialized()
        bundle = rt.ledger.proof(record_id)
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
    from ledger.audit import load_bundle, verify_offline

    with exit_on_error(as_json):
        bundle = load_bundle(bundle_path)
        report = verify_offline(bundle) if offline else _verify_online(bundle, rpc_url=rpc_url)
    emit(
        report.to_dict(),
        as_json=as_json,
        human=lambda: out.print(report.render(), highlight=False, markup=False),
    )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def _verify_online(bundle: Any, *, rpc_url: str | None) -> Any:
    """Online verification against ``rpc_url`` (only public reads) or the configured chain."""
    if rpc_url is None:
        with open_runtime() as rt:
            return rt.verify(bundle)
    from eth_account import Account

    from ledger.audit import verify_online
    from ledger.chain.backends import connect_rpc
    from ledger.chain.clients import AcademicLedgerClient

    if bundle.contract_address is None:
        raise BundleHasNoAnchor(
            "the bundle names no contract (exported before anchoring); use --offline"
        )
    # Reads only: a throwaway key satisfies the signing connection without holding funds.
    chain = connect_rpc(url=rpc_url, private_key=Account.create().key.hex())
    try:
        return verify_online(bundle, academic=AcademicLedgerClient(chain, bundle.contract_address))
    finally:
        chain.close()


class BundleHasNoAnchor(LedgerError):
    """Online verification was asked for a bundle without chain coordinates."""


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
    with exit_on_error(as_json), open_runtime() as rt:
        rt.require_initialized()
        integrity = rt.log.verify_integrity()
        report = rt.ledger.replay(replace=repair)
    data = report.to_dict() | {
        "integrity": {
            "ok": integrity.ok,
            "events_checked": integrity.events_checked,
            "problems": [str(p) for p in integrity.problems],
        }
    }

    def human() -> None:
        mark = "[green]ok[/green]" if integrity.ok else "[red]FAILED[/red]"
        out.print(f"log integrity {mark}: {integrity.events_checked} events checked")
        for p in integrity.problems[:20]:
            out.print(f"  [red]{p}[/red]", highlight=False)
        out.print(f"replayed {report.events_replayed} events into {len(report.tables)} tables")
        if report.equal:
            out.print("[green]replayed projections equal the live ones[/green]")
        else:
            for table, diff in report.differences.items():
                out.print(
                    f"[red]{table}[/red]: {len(diff['live_only'])} live-only rows, "
                    f"{len(diff['replayed_only'])} replayed-only rows"
                )
            if report.replaced:
                out.print("live projections replaced by the replayed ones")

    emit(data, as_json=as_json, human=human)
    if not integrity.ok or (not report.equal and not report.replaced):
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
    from api.reports import batch_report, render_batch_report

    with exit_on_error(as_json), open_runtime() as rt:
        rt.require_initialized()
        data = batch_report(rt.ledger, batch_id)
    emit(data, as_json=as_json, human=lambda: render_batch_report(data, out))
