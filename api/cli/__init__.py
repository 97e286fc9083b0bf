"""The ``byr`` command: every command prints for people by default and JSON with ``--json``.

Exit codes: 0 success; 1 the request failed or a verification did not pass; 2 bad usage or input
(unknown option, unreadable file, malformed bundle); 3 a batch was recorded but some of its lines
were rejected at intake.

The commands live by audience (``intake``, ``audit``, ``training``, ``services``); importing them
registers them on :data:`app`, in the order ``byr --help`` lists them.
"""

from __future__ import annotations

import importlib
import logging
import os

from api.cli.common import app

for _module in ("intake", "convert", "audit", "training", "eval", "services", "search", "data"):
    importlib.import_module(f"api.cli.{_module}")

__all__ = ["app", "main"]


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("BYR_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # bitsandbytes warns at import about optional CPU kernels we do not use.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    app()
