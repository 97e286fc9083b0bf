"""``byr init``, ``byr institution ...``, ``byr submit``, ``byr dispatch`` and ``byr status``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from api.cli.common import (
    EXIT_FAILED,
    EXIT_PARTIAL,
    JsonOpt,
    app,
    emit,
    err,
    exit_on_error,
    institution_app,
    load_settings,
    open_parts,
    out,
)

if TYPE_CHECKING:
    from ingest.banks import ConversionOptions
    from ingest.records import IntakeIssue

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
    from api.composition import initialize

    with exit_on_error(as_json):
        result = initialize(
            load_settings(),
            force=force,
            demo_institutions=not no_demo_institutions,
            if_needed=if_needed,
        )

    def human() -> None:
        out.print(f"ledger created in [bold]{result['home']}[/bold]")
        out.print(f"event log   {result['event_log']}")
        for name, chain in result["chains"].items():
            contract = next(k for k in chain if k != "chain_id")
            out.print(f"{name:<11} chain {chain['chain_id']}  {contract} at {chain[contract]}")
        if result["institutions"]:
            ids = ", ".join(i["institution_id"] for i in result["institutions"])
            out.print(f"institutions registered: {ids}")
        if result.get("admin_key_id"):
            out.print(
                f"admin key   {result['admin_key_id']} written to {result['admin_key_file']} "
                "(shown nowhere else: keep it safe, then delete the file)"
            )

    emit(result, as_json=as_json, human=human)


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
    with exit_on_error(as_json), open_parts() as parts:
        view = parts.institutions.add(institution_id=institution_id, name=name, account=account)
    emit(
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
    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        views = parts.ledger.institutions()

    def human() -> None:
        table = Table("id", "name", "account", "active")
        for v in views:
            table.add_row(v.institution_id, v.name, v.account, "yes" if v.active else "no")
        out.print(table)

    emit([v.to_dict() for v in views], as_json=as_json, human=human)


# ---------------------------------------------------------------------------------------------
# submit, status, report
# ---------------------------------------------------------------------------------------------

MapOpt = Annotated[
    str | None,
    typer.Option(
        "--map",
        help="Question banks (CSV, TSV, XLSX, Parquet): which column holds which field, e.g. "
        "instruction=题目,output=答案,discipline=科目 (options=A|B|C|D for one column per option). "
        "Fields: instruction, input, output, discipline, task_type, language, license, options, "
        "answer, explanation. Overrides --mapping.",
    ),
]
MappingOpt = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        help="Question banks: a YAML or JSON mapping file of field to column header "
        "(see examples/question_bank_mapping.yaml).",
    ),
]
SheetOpt = Annotated[
    str | None,
    typer.Option("--sheet", help="XLSX workbooks: read only this sheet (default: every sheet)."),
]


def conversion_options(
    *, map_text: str | None, mapping_file: Path | None, sheet: str | None
) -> ConversionOptions | None:
    """The question-bank options of ``--map``, ``--mapping`` and ``--sheet`` (``None`` when
    none is given); raises ``InvalidMapping`` for a malformed mapping."""
    from ingest.banks import ColumnMapping, ConversionOptions

    if map_text is None and mapping_file is None and sheet is None:
        return None
    mapping = ColumnMapping.load(mapping_file) if mapping_file is not None else None
    if map_text is not None:
        given = ColumnMapping.from_option(map_text)
        mapping = given if mapping is None else mapping.merged(given)
    return ConversionOptions(mapping=mapping, sheet=sheet)


def print_issues(issues: Iterable[IntakeIssue]) -> None:
    """Every intake issue on stderr, errors in red and warnings in yellow; the message says
    where (file, line, field; sheet, row, column)."""
    for issue in issues:
        style = "red" if issue.is_error else "yellow"
        err.print(f"[{style}]{issue.severity.value}[/{style}] {issue.message}", highlight=False)


@app.command()
def submit(
    file: Annotated[
        Path,
        typer.Argument(
            help="A JSON array or JSONL file of records (Alpaca, with optional system and "
            "history; ShareGPT conversations; or OpenAI-style messages), or a CSV, TSV, XLSX or "
            "Parquet question bank (one question a row)."
        ),
    ],
    institution: Annotated[str, typer.Option(help="Submitting institution id.")],
    discipline: Annotated[
        str | None, typer.Option(help="Discipline for records that name none.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Carry the batch through governance, anchoring and reward.")
    ] = False,
    strict: Annotated[bool, typer.Option(help="Record nothing when any line is rejected.")] = False,
    map_text: MapOpt = None,
    mapping_file: MappingOpt = None,
    sheet: SheetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate, desensitize and record a batch; report every rejected line precisely (for a
    question bank: its sheet, row and column)."""
    with exit_on_error(as_json), open_parts() as parts:
        conversion = conversion_options(map_text=map_text, mapping_file=mapping_file, sheet=sheet)
        outcome = parts.submission.submit(
            file,
            institution_id=institution,
            discipline=discipline,
            strict=strict,
            wait=wait,
            conversion=conversion,
        )
    intake = outcome.intake
    data = outcome.to_dict()

    def human() -> None:
        print_issues(intake.issues)
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

    emit(data, as_json=as_json, human=human)
    if outcome.batch is None:
        raise typer.Exit(EXIT_FAILED)
    if not intake.ok:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def erase(
    record_id: Annotated[str, typer.Argument(help="The record to erase (rec_...).")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (recorded in the log; no personal data).")
    ],
    institution: Annotated[
        str | None,
        typer.Option(
            "--institution", help="Erase on behalf of this institution (it must own the record)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase a record for good: its text, salt and hash are deleted from every store of this home,
    its near-duplicate entry and cached embeddings too; its salted leaf stays in the batch tree,
    so every other record still proves. Erasing again is a no-op; an unknown record exits 2."""
    from api.services.erasure import ErasureRequest

    with exit_on_error(as_json), open_parts() as parts:
        result = parts.erasure.erase(
            ErasureRequest(record_id=record_id, reason=reason, institution_id=institution)
        )

    def human() -> None:
        removed = result["removed"]
        if result["already_erased"]:
            out.print(f"{record_id} was already erased at {result['erased_at']}; swept again.")
        else:
            out.print(f"erased {record_id} (batch {result['batch_id']}) at {result['erased_at']}")
        out.print(
            "  removed: text, salt and record hash "
            f"{'yes' if removed['body'] else 'already gone'}; "
            f"near-duplicate index entries {removed['near_duplicate_index_entries']}; "
            f"cached embeddings {removed['cached_embeddings']}"
        )
        out.print(f"  kept: salted leaf {result['kept']['leaf']} (unlinkable without the salt)")
        if result["legacy_text_in_log"]:
            err.print(
                "[yellow]warning:[/yellow] this record was submitted before the record store; "
                "its text is also in the old event log until the home is re-sealed "
                "(`byr reseal`, see docs/PROVENANCE.md)",
                highlight=False,
            )

    emit(result, as_json=as_json, human=human)


@app.command()
def reseal(as_json: JsonOpt = False) -> None:
    """Make the text of a home written before the record store erasable: re-seal the embedded
    event log without text (bodies move to the record store, verified against every leaf and
    root), then rebuild the state. Stop the server and workers first. Safe to run twice."""
    from api.composition import reseal as reseal_home

    with exit_on_error(as_json):
        result = reseal_home(load_settings())

    def human() -> None:
        if result["already_sealed"]:
            out.print(f"nothing to re-seal: the log's {result['events']} events hold no text")
            return
        out.print(
            f"re-sealed {result['events']} events: {result['batches_rewritten']} batches "
            f"rewritten, {result['bodies_moved']} record bodies moved to the record store, "
            f"{result['erased_dropped']} erased bodies dropped; state rebuilt"
        )

    emit(result, as_json=as_json, human=human)


@app.command()
def dispatch(as_json: JsonOpt = False) -> None:
    """Run pending governance, anchor and reward jobs until none makes progress."""
    with exit_on_error(as_json), open_parts() as parts:
        rounds = parts.pipeline.drain()
    emit(rounds, as_json=as_json, human=lambda: out.print_json(data=rounds))


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Batches, records, outbox jobs and rewards at a glance."""
    from api.services.status import status_document

    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        parts.ledger.sync()
        data = status_document(parts.ledger)

    def human() -> None:
        out.print(f"log head position {data['head_position']}; institutions {data['institutions']}")
        out.print(f"records   {data['records_by_status'] or '{}'}")
        out.print(f"pending   {data['pending_jobs'] or 'nothing'}")
        if data["failed_jobs"]:
            out.print(f"[red]failed[/red]    {data['failed_jobs']}")
        out.print(f"BYR minted {int(data['rewarded_wei_total']) / 1e18:.4f}")
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

    emit(data, as_json=as_json, human=human)
