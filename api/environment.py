"""Process defaults shared by every entry point (the ``byr`` command, the HTTP app, workers).

The fast keccak backend, and Hugging Face libraries that never reach for the network: models ship
in packages, nothing is downloaded at run time. Values already set in the environment win.
"""

from __future__ import annotations

import os

PROCESS_DEFAULTS: dict[str, str] = {
    "ETH_HASH_BACKEND": "pysha3",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def apply_process_defaults() -> None:
    """Set each default that the environment does not set already."""
    for name, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(name, value)
