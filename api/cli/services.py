"""``byr worker``, ``byr serve`` and ``byr chains up|down``: the long-running services."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.common import (
    EXIT_BAD_INPUT,
    JsonOpt,
    app,
    emit,
    err,
    exit_on_error,
    keys_app,
    load_settings,
    open_parts,
    out,
)

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
    with exit_on_error(False), open_parts() as parts:
        run_worker(
            worker_kind,
            parts,
            idle_wait_s=idle_wait,
            metrics_port=metrics_port,
            max_steps=max_steps,
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    insecure_local: Annotated[
        bool,
        typer.Option(
            "--insecure-local",
            help="Serve without API keys, as one all-powerful user (a laptop demo only).",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs). Every /v1 route needs an API key
    (`byr keys create`) except health and offline verification."""
    import uvicorn

    from api.app import ApiSettings, create_app

    settings = ApiSettings()
    if insecure_local:
        settings = settings.model_copy(update={"insecure_local": True})
    if settings.insecure_local:
        err.print(
            "[bold red]INSECURE:[/bold red] serving without API keys: anyone who reaches "
            f"{host}:{port} reads every text and salt and acts as any institution",
            highlight=False,
        )
    uvicorn.run(create_app(api_settings=settings), host=host, port=port, log_level="info")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, contributor, auditor or trainer.")],
    institution: Annotated[
        str | None, typer.Option("--institution", help="Contributor keys: the institution.")
    ] = None,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
    key_from_env: Annotated[
        str | None,
        typer.Option(
            "--key-from-env",
            metavar="VAR",
            help="Issue the key this environment variable holds (from `byr keys generate`) "
            "instead of drawing one: for keys a deployment receives through its environment.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue an API key and print it once (the server keeps only a hash of its secret)."""
    key = None
    if key_from_env is not None:
        key = os.environ.get(key_from_env)
        if not key:
            err.print(f"[red]error:[/red] --key-from-env: {key_from_env} is not set")
            raise typer.Exit(EXIT_BAD_INPUT)
    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        issued = parts.keys.create(role=role, institution_id=institution, label=label, key=key)

    def human() -> None:
        scope = f" for {issued.institution_id}" if issued.institution_id else ""
        err.print(f"issued {issued.role} key {issued.key_id}{scope}; it is shown only now:")
        out.print(issued.key, highlight=False, markup=False)

    emit(issued.to_dict(), as_json=as_json, human=human)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random API key without issuing it: hand it to a deployment as BYR_ADMIN_KEY
    (`byr init` then issues it as the first admin key) or to `keys create --key-from-env`."""
    from api.services.keys import generate_key

    out.print(generate_key(), highlight=False, markup=False)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """Every key ever issued, revoked ones included (never a secret)."""
    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        keys = [k.to_public() for k in parts.keys.list()]

    def human() -> None:
        table = Table("key id", "role", "institution", "label", "created", "revoked")
        for k in keys:
            table.add_row(
                k["key_id"],
                k["role"],
                k["institution_id"] or "",
                k["label"],
                k["created_at"],
                k["revoked_at"] or "",
            )
        out.print(table)

    emit(keys, as_json=as_json, human=human)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (k...).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: the server refuses it from its next request on. Idempotent."""
    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        revoked = parts.keys.revoke(key_id).to_public()
    emit(
        revoked,
        as_json=as_json,
        human=lambda: out.print(f"revoked {key_id} at {revoked['revoked_at']}"),
    )


chains_app = typer.Typer(help="Local EVM nodes (anvil) for single-machine deployments.")
app.add_typer(chains_app, name="chains")


@chains_app.command("up")
def chains_up(as_json: JsonOpt = False) -> None:
    """Start the academic and incentive anvil nodes (state kept in BYR_HOME/chains/anvil-*.json)
    and print the settings that point the ledger at them."""
    from api.nodes import chains_up as start

    with exit_on_error(as_json):
        info = start(load_settings())
    emit(info, as_json=as_json, human=lambda: _print_env(info))


def _print_env(info: dict[str, Any]) -> None:
    for name, node in info["nodes"].items():
        out.print(f"# {name}: chain {node['chain_id']} at {node['url']} (pid {node['pid']})")
    for key, value in info["env"].items():
        out.print(f"export {key}={value}", highlight=False)


@chains_app.command("down")
def chains_down(as_json: JsonOpt = False) -> None:
    """Stop the anvil nodes started by `byr chains up` (their state is saved)."""
    from api.nodes import chains_down as stop

    with exit_on_error(as_json):
        stopped = stop(load_settings())
    emit(stopped, as_json=as_json, human=lambda: out.print(f"stopped: {stopped or 'nothing'}"))
