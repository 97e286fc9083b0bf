"""Where converted and generated base models live, and quiet loading."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "byr"


def model_cache_dir() -> Path:
    """``$BYR_MODEL_CACHE`` when set, else ``~/.cache/byr`` (never inside the repository)."""
    configured = os.environ.get("BYR_MODEL_CACHE")
    return Path(configured).expanduser() if configured else DEFAULT_CACHE


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and info logging for the duration, then restore them."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
