"""Governance scale-out on Kafka: one record stream through one governance worker, then more.

Run: ``.venv/bin/python bench/governance_workers.py [--records 5000] [--batch-size 50]
[--workers 1,2,4] [--bootstrap host:port]`` (about 15 minutes for 5,000 records and ``1,2`` on 2
cores). Each worker process appends under its own writer name (``api/workers.py``), so the workers'
decisions do not fence each other; the figures include each setup's records/s and its ratio to
the first setup.
Without ``--bootstrap`` (or ``BYR_TEST_KAFKA``) a local broker is started from the cached Maven
jars and stopped at the end. Writes ``bench/results/governance_workers.json`` and prints each
setup's figures with its ratio to the first setup (one worker).

Every setup starts from nothing: a fresh topic prefix, two fresh anvil nodes (academic and
incentive chains), a ledger made with ``byr init`` and ``byr institution add``, and the whole
stream submitted (``byr submit`` run in this process, one batch per file) before any worker runs:
synthetic records from ``bench/dedup_synth.py`` with 3 % planted duplicates of earlier records,
in other batches too. Then the governance workers (each with its own home), the anchor worker and
the rewards worker start as ``byr worker`` processes, and the clock starts. Decision and mint times
are the events' own timestamps in the log, so polling does not blur them. Each setup also checks
what ``tests/api/test_workers_kafka.py`` checks on a smaller stream: one decision per batch and
one mint per rewarded batch.

On a 2-core machine the two workers compete with each other, with the anchor and rewards
workers, the broker and anvil for the cores: expect a speed-up well under 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder comes first on sys.path, where bench/kafka.py would shadow the kafka
# package (kafka-python) that the event log imports: take it off, and put this checkout first.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

from bench.dedup_synth import SynthCorpus  # noqa: E402
from ledger.chain.accounts import DEV_PRIVATE_KEYS, dev_accounts  # noqa: E402
from ledger.chain.anvil import AnvilNode  # noqa: E402
from ledger.eventlog import EventLog, open_event_log  # noqa: E402
from ledger.eventlog.kafka.broker import BrokerConfig, LocalBroker, free_port  # noqa: E402
from ledger.events import BatchAnchorFailed, BatchGoverned, ContributionRewarded  # noqa: E402
from ledger.settings import LedgerSettings  # noqa: E402

RESULTS = HERE / "results" / "governance_workers.json"
BYR = [sys.executable, "-m", "api.cli"]
SEED = 20261124


@dataclass
class Progress:
    """What the log says so far about the stream's batches."""

    decided_at: dict[str, float] = field(default_factory=dict)
    """batch id -> timestamp (epoch seconds) of its first BatchGoverned."""
    decisions: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    rewarded: set[str] = field(default_factory=set)
    """Batches whose decision carries a reward (``reward_wei`` > 0)."""
    minted_at: dict[str, float] = field(default_factory=dict)
    mints: dict[str, int] = field(default_factory=dict)
    anchor_failures: dict[str, str] = field(default_factory=dict)
    position: int = 0

    def read(self, log: EventLog) -> None:
        """Take in the events appended since the last call."""
        for envelope in log.read_all(from_position=self.position + 1):
            self.position = envelope.position or self.position
            payload = envelope.payload
            if envelope.event_type == BatchGoverned.event_type:
                batch_id = str(payload["batch_id"])
                self.decisions[batch_id] = self.decisions.get(batch_id, 0) + 1
                self.decided_at.setdefault(batch_id, _epoch(envelope.occurred_at))
                self.records[batch_id] = len(payload["decisions"])
                if int(payload["reward_wei"]):
                    self.rewarded.add(batch_id)
            elif envelope.event_type == ContributionRewarded.event_type:
                batch_id = str(payload["batch_id"])
                self.mints[batch_id] = self.mints.get(batch_id, 0) + 1
                self.minted_at.setdefault(batch_id, _epoch(envelope.occurred_at))
            elif envelope.event_type == BatchAnchorFailed.event_type:
                self.anchor_failures[str(payload["batch_id"])] = str(payload["error"])

    def settled(self, batch_ids: list[str]) -> bool:
        return set(batch_ids) <= set(self.decided_at) and self.rewarded <= set(self.minted_at)


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set and every other ``BYR_*`` variable removed."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("BYR_")]:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Setup:
    """One ledger on a fresh topic prefix and fresh anvil chains."""

    root: Path
    url: str
    chain_env: dict[str, str]

    @property
    def home(self) -> Path:
        return self.root / "init"

    def env(self, home: Path) -> dict[str, str]:
        return {
            "BYR_HOME": str(home),
            "BYR_EVENT_LOG": self.url,
            "BYR_DEPLOYMENTS_FILE": str(self.home / "deployments.json"),
            "BYR_LOG_LEVEL": "INFO",
            **self.chain_env,
        }

    def cli(self, *args: str) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BYR_")}
        done = subprocess.run(
            [*BYR, *args],
            cwd=ROOT,
            env=inherited | self.env(self.home),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"byr {' '.join(args)} failed:\n{done.stderr[-3000:]}")

    def submit(self, files: list[Path]) -> list[str]:
        """Submit each file as one batch with ``byr submit``, in this process (no interpreter
        start per batch); the batch ids in order."""
        from api.cli import app

        batch_ids = []
        with environment(self.env(self.home)):
            for path in files:
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    code = app(
                        ["submit", str(path), "--institution", "bupt", "--json"],
                        standalone_mode=False,
                    )
                # 3: recorded, with some lines rejected at intake.
                if code not in (None, 0, 3):
                    raise RuntimeError(f"byr submit {path} exited {code}: {printed.getvalue()}")
                batch_ids.append(str(json.loads(printed.getvalue())["batch_id"]))
        return batch_ids

    def start_worker(self, kind: str, name: str) -> subprocess.Popen[bytes]:
        home = self.root / name if kind == "governance" else self.home
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BYR_")}
        with (self.root / f"{name}.log").open("ab") as log_file:
            return subprocess.Popen(
                [*BYR, "worker", kind, "--idle-wait", "0.5"],
                cwd=ROOT,
                env=inherited | self.env(home),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )


def kafka_setup(stack: ExitStack, *, root: Path, bootstrap: str, prefix: str) -> Setup:
    """A :class:`Setup` on ``bootstrap`` (a fresh topic prefix starting with ``prefix``) and two
    fresh anvil nodes, one per chain, stopped when ``stack`` closes."""
    defaults = LedgerSettings(home=root / "defaults")
    academic = stack.enter_context(AnvilNode(chain_id=defaults.academic_chain_id))
    incentive = stack.enter_context(AnvilNode(chain_id=defaults.incentive_chain_id))
    return Setup(
        root=root,
        url=f"kafka://{bootstrap}?prefix={prefix}{uuid.uuid4().hex[:10]}&timeout_s=90",
        chain_env={
            "BYR_CHAIN_BACKEND": "rpc",
            "BYR_ACADEMIC_RPC_URL": academic.url,
            "BYR_INCENTIVE_RPC_URL": incentive.url,
            "BYR_ACADEMIC_PRIVATE_KEY": DEV_PRIVATE_KEYS[0],
            "BYR_INCENTIVE_PRIVATE_KEY": DEV_PRIVATE_KEYS[0],
        },
    )


def stream_files(folder: Path, *, records: int, batch_size: int) -> list[Path]:
    """The stream as JSON files of ``batch_size`` records (the same for every setup)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = SynthCorpus(seed=SEED)
    files = []
    for index in range(0, records, batch_size):
        batch = [
            {
                "instruction": r.instruction,
                "input": "",
                "output": r.output,
                "discipline": r.discipline,
            }
            for r in corpus.records(min(batch_size, records - index))
        ]
        path = folder / f"stream-{index // batch_size:04d}.json"
        path.write_text(json.dumps(batch, ensure_ascii=False), encoding="utf-8")
        files.append(path)
    return files


def run_setup(
    *, governance_workers: int, bootstrap: str, files: list[Path], workdir: Path, timeout_s: float
) -> dict[str, Any]:
    """Carry the stream through ``governance_workers`` workers; the figures and the checks."""
    root = workdir / f"workers-{governance_workers}"
    with ExitStack() as stack:
        setup = kafka_setup(stack, root=root, bootstrap=bootstrap, prefix="gw")
        setup.cli("init", "--json")
        account = dev_accounts().institutions[0].address
        setup.cli("institution", "add", "bupt", "--name", "BUPT", "--account", account)
        submit_started = time.perf_counter()
        batch_ids = setup.submit(files)
        submit_s = time.perf_counter() - submit_started
        print(f"   submitted {len(batch_ids)} batches in {submit_s:.1f} s", flush=True)

        load_before = os.getloadavg()
        started = time.time()
        names = [f"gov{i}" for i in range(governance_workers)] + ["anchor", "rewards"]
        kinds = ["governance"] * governance_workers + ["anchor", "rewards"]
        processes = {n: setup.start_worker(k, n) for n, k in zip(names, kinds, strict=True)}
        progress = Progress()
        try:
            with open_event_log(setup.url) as log:
                deadline = time.monotonic() + timeout_s
                while not progress.settled(batch_ids):
                    dead = [n for n, p in processes.items() if p.poll() is not None]
                    if dead or progress.anchor_failures or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"setup with {governance_workers} worker(s) stopped: dead {dead}, "
                            f"anchor failures {progress.anchor_failures}, "
                            f"{len(progress.decided_at)}/{len(batch_ids)} governed\n"
                            + _log_tails(root, names)
                        )
                    time.sleep(2.0)
                    progress.read(log)
        finally:
            for process in processes.values():
                _stop(process)
        load_after = os.getloadavg()

    if set(progress.decisions.values()) != {1} or set(progress.mints.values()) != {1}:
        raise RuntimeError(f"not exactly once: {progress.decisions} {progress.mints}")
    first = min(progress.decided_at.values())
    last = max(progress.decided_at.values())
    records = sum(progress.records[b] for b in batch_ids)
    first_batches = [b for b in batch_ids if progress.decided_at[b] == first]
    after_first = records - sum(progress.records[b] for b in first_batches)
    return {
        "governance_workers": governance_workers,
        "batches": len(batch_ids),
        "records": records,
        "submit_s": round(submit_s, 2),
        "first_decision_s": round(first - started, 2),
        "governed_s": round(last - started, 2),
        "settled_s": round(max(progress.minted_at.values()) - started, 2),
        "records_per_s": round(after_first / (last - first), 2) if last > first else None,
        "load_average": {"before": load_before, "after": load_after},
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _log_tails(root: Path, names: list[str]) -> str:
    tails = []
    for name in names:
        path = root / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        tails.append(f"--- {name}.log\n" + "\n".join(lines[-15:]))
    return "\n".join(tails)


@contextmanager
def kafka_bootstrap(given: str | None, workdir: Path) -> Iterator[str]:
    if given:
        yield given
        return
    broker = LocalBroker(
        BrokerConfig(
            home=workdir / "broker", port=free_port(), controller_port=free_port(), heap_mb=768
        )
    )
    try:
        broker.up(timeout_s=240)
        yield broker.bootstrap
    finally:
        broker.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--workers",
        default="1,2",
        help="governance worker counts to run, such as 1,2,4; the first is the base of the ratios",
    )
    parser.add_argument("--bootstrap", default=os.environ.get("BYR_TEST_KAFKA") or None)
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="per setup")
    args = parser.parse_args(argv)
    try:
        counts = [int(c) for c in args.workers.split(",")]
    except ValueError:
        parser.error("--workers takes worker counts separated by commas, such as 1,2,4")
    if not counts or min(counts) < 1:
        parser.error("--workers takes worker counts of at least 1, such as 1,2,4")

    setups: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="byr-bench-workers-") as folder,
        kafka_bootstrap(args.bootstrap, Path(folder)) as bootstrap,
    ):
        workdir = Path(folder)
        files = stream_files(workdir / "stream", records=args.records, batch_size=args.batch_size)
        for count in counts:
            print(f"== {count} governance worker(s), {args.records} records", flush=True)
            setups.append(
                run_setup(
                    governance_workers=count,
                    bootstrap=bootstrap,
                    files=files,
                    workdir=workdir,
                    timeout_s=args.timeout_s,
                )
            )
            print("   " + json.dumps(setups[-1]), flush=True)

    base = setups[0]
    results: dict[str, Any] = {
        "benchmark": "governance_workers",
        "records": args.records,
        "batch_size": args.batch_size,
        "seed": SEED,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "setups": setups,
        "ratio_over_first": [
            {
                "governance_workers": s["governance_workers"],
                "records_per_s": _ratio(s["records_per_s"], base["records_per_s"]),
                "governed_s": _ratio(s["governed_s"], base["governed_s"]),
                "settled_s": _ratio(s["settled_s"], base["settled_s"]),
            }
            for s in setups
        ],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"== {args.records} records in batches of {args.batch_size} (ratio to the first setup)")
    for setup, ratio in zip(setups, results["ratio_over_first"], strict=True):
        print(
            f"{setup['governance_workers']} worker(s):"
            f" first decision {setup['first_decision_s']:6.1f} s"
            f" | all governed {setup['governed_s']:7.1f} s ({ratio['governed_s']})"
            f" | all minted {setup['settled_s']:7.1f} s ({ratio['settled_s']})"
            f" | {setup['records_per_s']} records/s ({ratio['records_per_s']})"
        )
    print(f"wrote {RESULTS}")
    return 0


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value is not None and base else None


if __name__ == "__main__":
    raise SystemExit(main())
