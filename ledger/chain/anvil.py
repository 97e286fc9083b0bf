"""Start and stop local anvil nodes (the JSON-RPC dev node shipped by the npm package
@foundry-rs/anvil).

anvil funds the development accounts of :mod:`ledger.chain.accounts` (its default mnemonic) with
10,000 ETH each. A node started with ``state_path`` loads that file on start and writes it back on a
clean stop. The state and log files and their folder are owner-only (``ledger.files``): anvil writes
its state file with the umask it inherited, so a node stopped here tightens the file after it exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from ledger.chain.errors import ChainError, ChainUnavailable
from ledger.files import private_dir, private_file, tighten

ROOT = Path(__file__).resolve().parents[2]
ANVIL_BINARY = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


class AnvilNotInstalled(ChainError):
    """The anvil binary is not where the npm package puts it."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rpc_chain_id(url: str, *, timeout_s: float = 1.0) -> int | None:
    """The chain id a node at ``url`` answers with, or None when nothing answers."""
    payload: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    try:
        response = requests.post(url, json=payload, timeout=timeout_s)
        return int(response.json()["result"], 16)
    except (requests.RequestException, ValueError, KeyError):
        return None


class AnvilNode:
    """One anvil process on ``host:port`` serving ``chain_id`` with the Prague hardfork.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``detach=True`` starts the
    node in its own session so that it outlives this process; stop it later with :func:`stop_pid`.
    """

    def __init__(
        self,
        *,
        chain_id: int,
        port: int | None = None,
        host: str = "127.0.0.1",
        state_path: Path | None = None,
        log_path: Path | None = None,
        binary: Path = ANVIL_BINARY,
    ) -> None:
        self.chain_id = chain_id
        self.host = host
        self.port = port or free_port(host)
        self.state_path = state_path
        self.log_path = log_path
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "--host", self.host,
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--hardfork", "prague",
        ]  # fmt: skip
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path)]
        return cmd

    def start(self, *, timeout_s: float = 15.0, detach: bool = False) -> AnvilNode:
        """Start the node and wait until it answers with its chain id.

        Raises :class:`AnvilNotInstalled` without the binary and :class:`ChainUnavailable` when the
        node exits or does not answer within ``timeout_s``.
        """
        if not self.binary.is_file():
            raise AnvilNotInstalled(f"anvil not found at {self.binary}: run `npm ci`")
        if self.state_path is not None:
            private_dir(self.state_path.parent)
            tighten_state_file(self.state_path)
        if self.log_path is not None:
            private_file(self.log_path)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        finally:
            if not isinstance(log, int):
                log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ChainUnavailable(
                    f"anvil exited with {self._process.returncode} before answering on {self.url}"
                )
            answered = rpc_chain_id(self.url, timeout_s=0.5)
            if answered == self.chain_id:
                return self
            if answered is not None:
                self.stop()
                raise ChainUnavailable(f"{self.url} answers chain {answered}, not {self.chain_id}")
            time.sleep(0.05)
        self.stop()
        raise ChainUnavailable(f"anvil did not answer on {self.url} within {timeout_s} s")

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop the node (SIGTERM, so it can write its state file; SIGKILL after ``timeout_s``)."""
        if self._process is None:
            return
        _terminate(self._process, timeout_s)
        self._process = None
        if self.state_path is not None:
            tighten_state_file(self.state_path)

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def tighten_state_file(state_path: Path) -> None:
    """Remove group and other bits from a node's state file, when there is one."""
    if state_path.is_file():
        tighten(state_path)


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_pid(pid: int, *, timeout_s: float = 10.0) -> bool:
    """Stop a detached node by its process id; returns False when no such process was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    # A child of ours lingers as a zombie until reaped; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
