"""A real single-node Apache Kafka broker (KRaft) for development and tests, run from Maven jars.

No Kafka broker ships in Debian, PyPI or npm, so the broker's class path is resolved from Maven
Central with ``scripts/kafka/pom.xml`` into a cache outside the work tree (once per Kafka version),
the storage is formatted with ``kafka.tools.StorageTool format --standalone`` and the broker runs as
``java -cp 'lib/*' kafka.Kafka server.properties`` in its own session, so it outlives the command
that started it. Its home folder holds the rendered ``server.properties``, the data, the pid file
and the broker's log, all owner-only (files 0600, folders 0700, see :mod:`ledger.files`): the data
holds the event log, records included. The storage tool and the broker run with umask
:data:`~ledger.files.PRIVATE_UMASK` whatever the caller's, so the JVM creates its segments
owner-only too; a home created by an older version is tightened at start.

Command line: :mod:`ledger.eventlog.kafka.broker_cli` (``scripts/kafka/kafka.sh`` wraps it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from ledger.eventlog.kafka.errors import KafkaBrokerError
from ledger.files import PRIVATE_UMASK, private_dir, private_file, tighten

KAFKA_VERSION = "4.4.0"
"""The Kafka release the broker runs (``kafka_2.13`` on Maven Central)."""

SCRIPTS_DIR = Path(__file__).resolve().parents[3] / "scripts" / "kafka"
DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_HEAP_MB = 768
_MAIN_CLASS = "kafka.Kafka"


def default_cache_dir() -> Path:
    """Where resolved broker jars are kept: ``$XDG_CACHE_HOME/byr/kafka`` (``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "byr" / "kafka"


def default_home() -> Path:
    """The broker's home folder: ``$BYR_HOME/kafka`` (``./var/kafka`` by default)."""
    return Path(os.environ.get("BYR_HOME", "var")) / "kafka"


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where and how the local broker runs."""

    home: Path = field(default_factory=default_home)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    heap_mb: int = DEFAULT_HEAP_MB
    kafka_version: str = KAFKA_VERSION
    cache_dir: Path = field(default_factory=default_cache_dir)
    scripts_dir: Path = SCRIPTS_DIR

    def __post_init__(self) -> None:
        if self.port == self.controller_port:
            raise ValueError("the broker and controller ports must differ")
        for port in (self.port, self.controller_port):
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is out of range")
        if not 256 <= self.heap_mb <= 16384:
            raise ValueError(f"heap_mb must be within 256..16384, got {self.heap_mb}")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / self.kafka_version / "lib"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str


def tools_available() -> str | None:
    """``None`` when java and mvn are on PATH, else a sentence naming what is missing."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found on PATH" if missing else None


class LocalBroker:
    """Install, start, probe and stop one local broker described by a :class:`BrokerConfig`."""

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig()

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap

    # -- installing --------------------------------------------------------------------------

    def install(self) -> Path:
        """Resolve the broker's jars into the cache (once per version) and return the folder."""
        lib = self.config.lib_dir
        if (lib / ".complete").exists():
            return lib
        missing = tools_available()
        if missing:
            raise KafkaBrokerError(f"cannot install the Kafka broker: {missing}")
        lib.parent.mkdir(parents=True, exist_ok=True)
        # Resolve into a scratch folder and rename it, so an interrupted download never leaves a
        # half-filled lib/ that looks complete.
        scratch = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
        command = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(self.config.scripts_dir / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-Dkafka.version={self.config.kafka_version}",
            f"-DoutputDirectory={scratch}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not any(scratch.glob("kafka_2.13-*.jar")):
            shutil.rmtree(scratch, ignore_errors=True)
            raise KafkaBrokerError(
                "resolving the Kafka broker jars with Maven failed:\n"
                + (done.stdout + done.stderr)[-3000:]
            )
        (scratch / ".complete").write_text(self.config.kafka_version + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        scratch.rename(lib)
        return lib

    # -- running -----------------------------------------------------------------------------

    def status(self) -> BrokerStatus:
        pid = self._live_pid()
        running = pid is not None and self._answers(timeout_s=2.0)
        return BrokerStatus(running=running, pid=pid, bootstrap=self.bootstrap)

    def up(self, *, timeout_s: float = 120.0) -> str:
        """Start the broker unless it already runs; return its bootstrap address once it answers.

        Raises :class:`KafkaBrokerError` when the ports are taken by something else, the jars
        cannot be resolved, or the broker does not answer within ``timeout_s``.
        """
        pid = self._live_pid()
        if pid is not None:
            self.wait_ready(timeout_s=timeout_s, pid=pid)
            return self.bootstrap
        for port in (self.config.port, self.config.controller_port):
            if _port_in_use(self.config.host, port):
                raise KafkaBrokerError(
                    f"port {self.config.host}:{port} is already in use by another program; "
                    "choose other ports"
                )
        lib = self.install()
        self._render_properties()
        self._format_storage(lib)
        pid = self._spawn(lib)
        self.wait_ready(timeout_s=timeout_s, pid=pid)
        return self.bootstrap

    def down(self, *, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``); whether one was running."""
        pid = self._live_pid()
        if pid is None:
            self.config.pid_file.unlink(missing_ok=True)
            return False
        _signal(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout_s):
            _signal(pid, signal.SIGKILL)
            _wait_exit(pid, 10.0)
        self.config.pid_file.unlink(missing_ok=True)
        return True

    def restart(self, *, timeout_s: float = 120.0) -> str:
        """Stop and start again on the same data (a clean broker restart)."""
        self.down()
        return self.up(timeout_s=timeout_s)

    def wait_ready(self, *, timeout_s: float, pid: int | None = None) -> None:
        """Block until the broker answers a metadata request; fail early if its process exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pid is not None and not _alive(pid):
                raise KafkaBrokerError(
                    f"the Kafka broker exited during start-up; last lines of "
                    f"{self.config.log_file}:\n{self._log_tail()}"
                )
            if self._answers(timeout_s=min(5.0, max(deadline - time.monotonic(), 0.5))):
                return
            time.sleep(0.25)
        raise KafkaBrokerError(
            f"the Kafka broker at {self.bootstrap} did not answer within {timeout_s:.0f} s; "
            f"last lines of {self.config.log_file}:\n{self._log_tail()}"
        )

    # -- internals ---------------------------------------------------------------------------

    def _render_properties(self) -> None:
        template = Template((self.config.scripts_dir / "server.properties").read_text())
        self._private_home()
        private_file(self.config.properties_file).write_text(
            template.substitute(
                host=self.config.host,
                port=self.config.port,
                controller_port=self.config.controller_port,
                data_dir=str(self.config.data_dir.resolve()),
            )
        )

    def _private_home(self) -> None:
        """Create (or tighten) the home, the data folder and everything already in them."""
        private_dir(self.config.home)
        private_dir(self.config.data_dir)
        for path in self.config.home.rglob("*"):
            tighten(path)

    def _java(self, lib: Path, *args: str, heap_mb: int | None = None) -> list[str]:
        heap = [f"-Xms{heap_mb // 2}m", f"-Xmx{heap_mb}m"] if heap_mb else ["-Xmx256m"]
        log_config = (self.config.scripts_dir / "log4j2.properties").resolve()
        return [
            "java",
            *heap,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            "-cp",
            f"{lib}/*",
            *args,
        ]

    def _format_storage(self, lib: Path) -> None:
        if (self.config.data_dir / "meta.properties").exists():
            return
        private_dir(self.config.data_dir)
        cluster_id = _kafka_uuid()
        command = self._java(
            lib,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(self.config.properties_file),
        )
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, umask=PRIVATE_UMASK
        )
        if done.returncode != 0:
            raise KafkaBrokerError(
                f"formatting the Kafka storage failed (exit {done.returncode}):\n"
                + (done.stdout + done.stderr)[-3000:]
            )

    def _spawn(self, lib: Path) -> int:
        command = self._java(
            lib, _MAIN_CLASS, str(self.config.properties_file), heap_mb=self.config.heap_mb
        )
        with open(private_file(self.config.log_file), "ab") as log:
            # A session of its own: the broker outlives `up` and ignores the caller's Ctrl-C.
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        private_file(self.config.pid_file).write_text(f"{process.pid}\n")
        return process.pid

    def _live_pid(self) -> int | None:
        """The pid in the pid file when that process is alive and is a Kafka broker."""
        try:
            pid = int(self.config.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        # A recycled pid belongs to another program: never signal it.
        if _MAIN_CLASS.encode() not in cmdline or not _alive(pid):
            return None
        return pid

    def _answers(self, *, timeout_s: float) -> bool:
        # Imported here: the broker CLI should start even where the client library is broken.
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        if not _port_in_use(self.config.host, self.config.port):
            return False
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                bootstrap_timeout_ms=int(timeout_s * 1000),
                request_timeout_ms=int(timeout_s * 1000),
            )
        except (KafkaError, OSError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.config.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding.

    Never one that starts with ``-`` (1 in 64 would): the storage tool would take it for an
    option and refuse to format. Kafka's own ``Uuid.randomUuid`` skips those ids too.
    """
    import base64

    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (for brokers started by tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        # A zombie (exited, not yet reaped by its parent) is not alive.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)
