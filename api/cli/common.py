"""What every ``byr`` command shares: the Typer app, consoles, exit codes, settings and errors.

Every command prints for people by default and JSON with ``--json``.

Exit codes: 0 success; 1 the request failed or a verification did not pass; 2 bad usage or input
(unknown option, unreadable file, malformed bundle); 3 a batch was recorded but some of its lines
were rejected at intake.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from api.environment import apply_process_defaults

if TYPE_CHECKING:
    from api.composition import Parts
    from ledger.settings import LedgerSettings

apply_process_defaults()

app = typer.Typer(
    name="byr",
    help="BYR Corpus Ledger: submit, govern, anchor, reward, prove and train on a shared corpus.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
institution_app = typer.Typer(help="Manage the institution registry.", no_args_is_help=True)
app.add_typer(institution_app, name="institution")
keys_app = typer.Typer(
    help="API keys of the server's home: issue, list, revoke.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3


def load_settings() -> LedgerSettings:
    """The validated settings, or a one-line error naming each bad field and exit code 2."""
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
def open_parts() -> Iterator[Parts]:
    """The :class:`~api.composition.Parts` of the configured home, closed when the block ends."""
    from api.composition import Parts

    with Parts(load_settings()) as parts:
        yield parts


def emit(data: object, *, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to print it for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        human()


@contextmanager
def exit_on_error(as_json: bool) -> Iterator[None]:
    """Turn our typed errors into one clear line (or JSON) and a non-zero exit."""
    from ingest.errors import IngestError
    from ledger.errors import LedgerError
    from trainer.errors import TrainerError

    try:
        yield
    except (LedgerError, IngestError, TrainerError) as exc:
        code = EXIT_BAD_INPUT if is_input_error(exc) else EXIT_FAILED
        if as_json:
            sys.stdout.write(
                json.dumps({"error": type(exc).__name__, "message": str(exc)}, ensure_ascii=False)
                + "\n"
            )
        else:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(code) from exc


def is_input_error(exc: Exception) -> bool:
    """Whether ``exc`` is the caller's fault (exit 2) rather than a failed request (exit 1)."""
    from ingest.errors import IngestError
    from ledger.audit import BundleFormatError
    from ledger.errors import InvalidRequest, NotFound
    from trainer.errors import TrainerError

    if isinstance(exc, TrainerError):
        return isinstance(exc, ValueError)
    return isinstance(exc, InvalidRequest | NotFound | BundleFormatError | IngestError)
