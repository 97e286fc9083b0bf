"""The ``byr`` command: every command prints for people by default and JSON with ``--json``.

Exit codes: 0 success; 1 the request failed or a verification did not pass; 2 bad usage or input
(unknown option, unreadable file, malformed bundle); 3 a batch was recorded but some of its lines
were rejected at intake.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ledger.errors import LedgerError

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

app = typer.Typer(
    name="byr",
    help="BYR Corpus Ledger: submit, govern, anchor, reward, prove and train on a shared corpus.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
institution_app = typer.Typer(help="Manage the institution registry.", no_args_is_help=True)
app.add_typer(institution_app, name="institution")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3


def _settings() -> Any:
    from pydantic import ValidationError

    from ledger.settings import LedgerSettings

    try:
        return LedgerSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"[red]error:[/red] invalid settings: {problems}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc


@contextmanager
def _runtime() -> Iterator[Any]:
    from api.runtime import Runtime

    with Runtime(_settings()) as runtime:
        yield runtime


def _emit(data: Any, *, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        human()


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Turn our typed errors into one clear line (or JSON) and a non-zero exit."""
    from ingest.errors import IngestError

    try:
        yield
    except (LedgerError, IngestError) as exc:
        code = EXIT_BAD_INPUT if _is_input_error(exc) else EXIT_FAILED
        if as_json:
            sys.stdout.write(
                json.dumps({"error": type(exc).__name__, "message": str(exc)}, ensure_ascii=False)
                + "\n"
            )
        else:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(code) from exc


def _is_input_error(exc: Exception) -> bool:
    from ingest.errors import IngestError
    from ledger.application import InvalidRequest, NotFound
    from ledger.audit import BundleFormatError

    return isinstance(exc, InvalidRequest | NotFound | BundleFormatError | IngestError)


# ---------------------------------------------------------------------------------------------
# init, institutions
# ---------------------------------------------------------------------------------------------


@app.command()
def init(
    as_json: JsonOpt = False,
    force: Annotated[bool, typer.Option(help="Start over: delete the existing ledger.")] = False,
    no_demo_institutions: Annotated[
        bool, typer.Option(help="Do not register the demo institutions.")
    ] = False,
    if_needed: Annotated[
        bool, typer.Option(help="Succeed without changes when a ledger already exists.")
    ] = False,
) -> None:
    """Create BYR_HOME: the event log, the state database, both contracts on their chains, and
    the demo institutions."""
    with _errors(as_json), _runtime() as rt:
        if if_needed and rt.initialized:
            result = rt.describe()
        else:
            result = rt.init(force=force, demo_institutions=not no_demo_institutions)

    def human() -> None:
        out.print(f"ledger created in [bold]{result['home']}[/bold]")
        out.print(f"event log   {result['event_log']}")
        for name, chain in result["chains"].items():
            contract = next(k for k in chain if k != "chain_id")
            out.print(f"{name:<11} chain {chain['chain_id']}  {contract} at {chain[contract]}")
        if result["institutions"]:
            ids = ", ".join(i["institution_id"] for i in result["institutions"])
            out.print(f"institutions registered: {ids}")

    _emit(result, as_json=as_json, human=human)


@institution_app.command("add")
def institution_add(
    institution_id: Annotated[str, typer.Argument(help="Short id, e.g. bupt.")],
    name: Annotated[str, typer.Option(help="Full name.")],
    account: Annotated[
        str | None,
        typer.Option(help="Address that receives BYR (embedded chains: a free dev account)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an institution on the academic chain and in the ledger."""
    with _errors(as_json), _runtime() as rt:
        view = rt.add_institution(institution_id=institution_id, name=name, account=account)
    _emit(
        view.to_dict(),
        as_json=as_json,
        human=lambda: out.print(
            f"registered {view.institution_id} ({view.name}) -> {view.account}"
            f"  tx {view.academic_tx_hash}"
        ),
    )


@institution_app.command("list")
def institution_list(as_json: JsonOpt = False) -> None:
    """List registered institutions."""
    with _errors(as_json), _runtime() as rt:
        rt.require_initialized()
        views = rt.ledger.institutions()

    def human() -> None:
        table = Table("id", "name", "account", "active")
        for v in views:
            table.add_row(v.institution_id, v.name, v.account, "yes" if v.active else "no")
        out.print(table)

    _emit([v.to_dict() for v in views], as_json=as_json, human=human)


# ---------------------------------------------------------------------------------------------
# submit, status, report
# ---------------------------------------------------------------------------------------------


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="A JSON array or JSONL file of records.")],
    institution: Annotated[str, typer.Option(help="Submitting institution id.")],
    discipline: Annotated[
        str | None, typer.Option(help="Discipline for records that name none.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Carry the batch through governance, anchoring and reward.")
    ] = False,
    strict: Annotated[bool, typer.Option(help="Record nothing when any line is rejected.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate, desensitize and record a batch; report every rejected line precisely."""
    with _errors(as_json), _runtime() as rt:
        outcome = rt.submit(
            file, institution_id=institution, discipline=discipline, strict=strict, wait=wait
        )
    intake = outcome.intake
    data = outcome.to_dict()

    def human() -> None:
        for issue in intake.issues:
            style = "red" if issue.is_error else "yellow"
            err.print(f"[{style}]{issue.severity.value}[/{style}] {issue.message}", highlight=False)
        out.print(intake.summary(), highlight=False)
        if outcome.batch is None:
            out.print("[red]nothing recorded[/red]")
            return
        out.print(f"batch     {data['batch_id']}")
        out.print(f"root      {data['merkle_root']}")
        out.print(f"records   {len(data['record_ids'])} ({', '.join(data['record_ids'][:3])}, ...)")
        out.print(f"status    {data['status']}")
        if data.get("accepted") is not None:
            out.print(f"accepted  {data['accepted']} of {len(data['record_ids'])}")
        if data.get("tx_hash"):
            out.print(
                f"anchored  tx {data['tx_hash']} block {data['block_number']}"
                f" (chain {data['chain_id']})"
            )
        if data.get("reward_tx_hash"):
            out.print(
                f"reward    {int(data['reward_wei']) / 1e18:.4f} BYR tx {data['reward_tx_hash']}"
            )
        if data.get("anchor_error"):
            out.print(f"[red]anchor failed[/red] {data['anchor_error']}")

    _emit(data, as_json=as_json, human=human)
    if outcome.batch is None:
        raise typer.Exit(EXIT_FAILED)
    if not intake.ok:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def dispatch(as_json: JsonOpt = False) -> None:
    """Run pending governance, anchor and reward jobs until none makes progress."""
    with _errors(as_json), _runtime() as rt:
        rt.require_initialized()
        rounds = rt.drain()
    _emit(rounds, as_json=as_json, human=lambda: out.print_json(data=rounds))


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Batches, records, outbox jobs and rewards at a glance."""
    with _errors(as_json), _runtime() as rt:
        rt.require_initialized()
        st = rt.ledger.status()
        batches = rt.ledger.batches()
    data = st.to_dict() | {
        "batches": [
            {
                "batch_id": b.batch_id,
                "institution_id": b.institution_id,
                "source": b.source_name,
                "records": b.record_count,
                "accepted": b.accepted_count,
                "status": b.status,
                "tx_hash": b.tx_hash,
            }
            for b in batches
        ]
    }

    def human() -> None:
        out.print(f"log head position {st.head_position}; institutions {st.institutions}")
        out.print(f"records   {st.records_by_status or '{}'}")
        out.print(f"pending   {st.pending_jobs or 'nothing'}")
        if st.failed_jobs:
            out.print(f"[red]failed[/red]    {st.failed_jobs}")
        out.print(f"BYR minted {int(st.rewarded_wei_total) / 1e18:.4f}")
        table = Table(
            "batch", "institution", "source", "records", "accepted", "status", "anchor tx"
        )
        for b in data["batches"]:
            table.add_row(
                b["batch_id"][:12],
                b["institution_id"],
                b["source"],
                str(b["records"]),
                "-" if b["accepted"] is None else str(b["accepted"]),
                b["status"],
                (b["tx_hash"] or "-")[:18],
            )
        out.print(table)

    _emit(data, as_json=as_json, human=human)


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
    with _errors(as_json), _runtime() as rt:
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

    with _errors(as_json):
        bundle = load_bundle(bundle_path)
        report = verify_offline(bundle) if offline else _verify_online(bundle, rpc_url=rpc_url)
    _emit(
        report.to_dict(),
        as_json=as_json,
        human=lambda: out.print(report.render(), highlight=False, markup=False),
    )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def _verify_online(bundle: Any, *, rpc_url: str | None) -> Any:
    """Online verification against ``rpc_url`` (only public reads) or the configured chain."""
    if rpc_url is None:
        with _runtime() as rt:
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
    with _errors(as_json), _runtime() as rt:
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

    _emit(data, as_json=as_json, human=human)
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

    with _errors(as_json), _runtime() as rt:
        rt.require_initialized()
        data = batch_report(rt.ledger, batch_id)
    _emit(data, as_json=as_json, human=lambda: render_batch_report(data, out))


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
    from api.runtime import TrainingRequest

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
    from trainer.errors import TrainerError

    try:
        with _errors(as_json), _runtime() as rt:
            if queue:
                request_id = rt.request_training(request)
                result: dict[str, Any] = {"request_id": request_id, "queued": True}
            else:
                result = rt.train(request, output_dir=output, resume=resume, progress=not as_json)
    except TrainerError as exc:
        if as_json:
            sys.stdout.write(json.dumps({"error": type(exc).__name__, "message": str(exc)}) + "\n")
        else:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT if isinstance(exc, ValueError) else EXIT_FAILED) from exc

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

    _emit(result, as_json=as_json, human=human)


@app.command()
def lineage(
    adapter_dir: Annotated[Path, typer.Argument(help="An adapter folder written by byr train.")],
    as_json: JsonOpt = False,
) -> None:
    """Verify adapter hash -> run anchor -> dataset root -> records -> batches -> institutions."""
    with _errors(as_json), _runtime() as rt:
        report = rt.lineage(adapter_dir)
    _emit(
        report.to_dict(),
        as_json=as_json,
        human=lambda: out.print(report.render(), highlight=False, markup=False),
    )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


# ---------------------------------------------------------------------------------------------
# services: workers, API, local chain nodes
# ---------------------------------------------------------------------------------------------


@app.command()
def worker(
    kind: Annotated[str, typer.Argument(help="governance | anchor | rewards | feed | trainer")],
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port.")
    ] = None,
    idle_wait: Annotated[float, typer.Option(help="Seconds to wait when idle.")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
) -> None:
    """Run one pipeline worker until SIGTERM/SIGINT (graceful: the current step finishes)."""
    from api.workers import WorkerKind, run_worker

    try:
        worker_kind = WorkerKind(kind)
    except ValueError:
        err.print(
            f"[red]error:[/red] unknown worker {kind!r}; one of "
            + ", ".join(k.value for k in WorkerKind)
        )
        raise typer.Exit(EXIT_BAD_INPUT) from None
    logging.getLogger().setLevel(os.environ.get("BYR_LOG_LEVEL", "INFO"))
    with _errors(False), _runtime() as rt:
        run_worker(
            worker_kind, rt, idle_wait_s=idle_wait, metrics_port=metrics_port, max_steps=max_steps
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


chains_app = typer.Typer(help="Local EVM nodes (anvil) for single-machine deployments.")
app.add_typer(chains_app, name="chains")


@chains_app.command("up")
def chains_up(as_json: JsonOpt = False) -> None:
    """Start the academic and incentive anvil nodes (state kept in BYR_HOME/chains/anvil-*.json)
    and print the settings that point the ledger at them."""
    from api.nodes import chains_up as start

    with _errors(as_json):
        info = start(_settings())
    _emit(info, as_json=as_json, human=lambda: _print_env(info))


def _print_env(info: dict[str, Any]) -> None:
    for name, node in info["nodes"].items():
        out.print(f"# {name}: chain {node['chain_id']} at {node['url']} (pid {node['pid']})")
    for key, value in info["env"].items():
        out.print(f"export {key}={value}", highlight=False)


@chains_app.command("down")
def chains_down(as_json: JsonOpt = False) -> None:
    """Stop the anvil nodes started by `byr chains up` (their state is saved)."""
    from api.nodes import chains_down as stop

    with _errors(as_json):
        stopped = stop(_settings())
    _emit(stopped, as_json=as_json, human=lambda: out.print(f"stopped: {stopped or 'nothing'}"))


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("BYR_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # bitsandbytes warns at import about optional CPU kernels we do not use.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    app()


if __name__ == "__main__":
    main()
