"""Process defaults shared by every entry point (the ``byr`` command, the HTTP app, workers).

The fast keccak backend, and Hugging Face libraries that never reach for the network: models ship
in packages, nothing is downloaded at run time. Values already set in the environment win.

The process umask gains :data:`ledger.files.PRIVATE_UMASK`: everything written under ``BYR_HOME``
(event log, state, chains, governance caches, adapters), by this process or by the nodes and
brokers it starts, is owner-only. A stricter umask already in place is kept.
"""

from __future__ import annotations

import os

from ledger.files import restrict_umask

PROCESS_DEFAULTS: dict[str, str] = {
    "ETH_HASH_BACKEND": "pysha3",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def apply_process_defaults() -> None:
    """Set each default that the environment does not set already, and narrow the umask."""
    for name, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    restrict_umask()
