"""Running an answer's Python code against an item's tests, isolated from the host.

The child runs in a clean temporary folder (its cwd, HOME and TMPDIR), with a minimal
environment, in its own session, under CPU-time, address-space, file-size and open-file limits
(``resource.setrlimit`` in the child) and a wall-clock limit enforced by killing its process
group. Network access is removed with a new network namespace (``unshare -n``, or ``unshare
-rn`` for an unprivileged user) where the host allows it; where it does not, the code runs
with the network and :attr:`SandboxResult.network_isolated` says so. This is a guard for
benchmark code, not a security boundary against a determined attacker.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from trainer.eval.errors import SandboxUnavailable

logger = logging.getLogger(__name__)

_RUNNER = Path(__file__).with_name("sandbox_runner.py")
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_OUTPUT_LIMIT = 4000


class SandboxOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    ERROR = "error"


_EXIT_OUTCOMES = {
    0: SandboxOutcome.PASS,
    1: SandboxOutcome.FAIL,
    2: SandboxOutcome.ERROR,
    3: SandboxOutcome.MEMORY_EXCEEDED,
}


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one run."""

    wall_s: float = 10.0
    cpu_s: int = 5
    memory_bytes: int = 512 * 1024**2
    file_bytes: int = 16 * 1024**2
    open_files: int = 64

    def __post_init__(self) -> None:
        if self.wall_s <= 0 or self.cpu_s <= 0 or self.memory_bytes <= 0:
            raise ValueError("sandbox limits must be positive")


@dataclass(frozen=True)
class SandboxResult:
    outcome: SandboxOutcome
    seconds: float
    network_isolated: bool
    stderr_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is SandboxOutcome.PASS


def extract_code(answer: str) -> str:
    """The Python code of an answer: its fenced code blocks (```python or bare ```), joined;
    the whole answer when it has no fence."""
    blocks = _FENCE.findall(answer)
    return "\n\n".join(b.strip("\n") for b in blocks) if blocks else answer


@lru_cache(maxsize=1)
def network_isolation_prefix() -> tuple[str, ...] | None:
    """The command prefix that runs a child without network, or ``None`` where the host allows
    no new network namespace (checked once per process)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        logger.warning("unshare not found: sandboxed code runs with network access")
        return None
    for prefix in ((unshare, "-n", "--"), (unshare, "-rn", "--")):
        try:
            probe = subprocess.run(
                [*prefix, sys.executable, "-I", "-c", "pass"],
                capture_output=True,
                timeout=30,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    logger.warning("no network namespace allowed here: sandboxed code runs with network access")
    return None


def _limit_child(limits: SandboxLimits) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_python_tests(
    *,
    code: str,
    tests: str,
    limits: SandboxLimits | None = None,
    isolate_network: bool = True,
) -> SandboxResult:
    """Run ``code`` then ``tests`` (in one namespace) in a sandboxed child; the verdict is
    ``pass`` (tests ran clean), ``fail`` (a test raised), ``error`` (the code itself raised or
    did not compile), ``timeout`` (wall or CPU limit) or ``memory_exceeded``."""
    limits = limits or SandboxLimits()
    prefix = network_isolation_prefix() if isolate_network else None
    try:
        workdir = Path(tempfile.mkdtemp(prefix="byr-sandbox-"))
    except OSError as e:
        raise SandboxUnavailable("cannot create a sandbox folder") from e
    try:
        (workdir / "solution.py").write_text(code, encoding="utf-8")
        (workdir / "tests.py").write_text(tests, encoding="utf-8")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
        }
        command = [*(prefix or ()), sys.executable, "-I", str(_RUNNER)]
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_limit_child(limits),
            )
        except OSError as e:
            raise SandboxUnavailable("cannot start the sandboxed interpreter") from e
        try:
            _, stderr = process.communicate(timeout=limits.wall_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _, stderr = process.communicate()
            timed_out = True
        elapsed = time.monotonic() - started
        tail = stderr.decode("utf-8", "replace")[-_OUTPUT_LIMIT:]
        return SandboxResult(
            outcome=_verdict(process.returncode, timed_out=timed_out, stderr=tail),
            seconds=elapsed,
            network_isolated=prefix is not None,
            stderr_tail=tail,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        process.kill()


def _verdict(returncode: int, *, timed_out: bool, stderr: str) -> SandboxOutcome:
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return SandboxOutcome.TIMEOUT
    if returncode in _EXIT_OUTCOMES:
        return _EXIT_OUTCOMES[returncode]
    if "MemoryError" in stderr or returncode == -signal.SIGSEGV:
        return SandboxOutcome.MEMORY_EXCEEDED
    return SandboxOutcome.ERROR
