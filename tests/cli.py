"""Running the ``byr`` command in its own process, as users and operators do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BYR = [sys.executable, "-m", "api.cli"]


def byr_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without ``BYR_*`` settings, pointed at ``home``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BYR_")}
    return inherited | {"BYR_HOME": str(home), "BYR_LOG_LEVEL": "WARNING"} | extra


def byr(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``byr ARGS`` on ``home`` and wait for it."""
    return subprocess.run(
        [*BYR, *args],
        cwd=ROOT,
        env=byr_env(home) | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful command printed (fails the test with its output otherwise)."""
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)
