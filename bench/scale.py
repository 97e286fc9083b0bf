"""The plan's scale: N records (default 100,000) through the whole pipeline, embedded and on Kafka.

Run: ``.venv/bin/python bench/scale.py [--records 100000 | --records 10000,100000]
[--setup embedded|kafka|both] [--batch-size 1000] [--corpus FILE] [--bootstrap host:port]
[--out bench/results/scale.json]``. Without ``--bootstrap`` (or ``BYR_TEST_KAFKA``) the Kafka setup
starts a local broker from the cached Maven jars and stops it at the end.

The corpus is deterministic from ``--seed``: records built from the discipline glossaries and real
English and Chinese words by ``bench/dedup_synth.py`` (half Chinese, half English, the six
disciplines, task types drawn from the vocabulary), with ``--near-duplicates`` of them planted as
copies of earlier ones (exact, reordered or reworded), in files of ``--batch-size`` records.
``--corpus FILE`` (JSONL or a JSON array) is read instead. Every batch is submitted with
``byr submit FILE --institution bupt`` run in this process: the path a user takes, intake
(validation, desensitization, salting, the Merkle tree) included.

Each setup starts from nothing and runs the stages one after the other, each until the log says
that every batch passed it, so every stage's rate is its own:

- ``embedded`` (as ``make demo``): SQLite log and eth-tester chains in this process; governance,
  anchor and reward are the pipeline's stages (``byr dispatch`` runs the same table);
- ``kafka``: a Kafka log, two anvil nodes, and ``byr worker`` processes: two governance workers
  (one consumer group, each with its own home), then the anchor worker, then the rewards worker,
  then the feed worker; each stays up until the end, as in a deployment.

The feed stage is a reader paging ``/v1/feed``'s service (1,000 entries a page) from the start
until it holds every accepted record. Stage times run from the stage's start to its last event
(the events' own timestamps); ``first_item_s`` is the time to its first event (model loading for
governance). Peak memory is the sum of the RSS of this process and all its children (workers,
broker, anvil), sampled every 0.25 s. A deployment runs the stages at once, so its wall time is at
most the sum reported here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder comes first on sys.path, where bench/kafka.py would shadow the kafka
# package (kafka-python) that the event log imports: take it off, and put this checkout first.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

import psutil  # noqa: E402

from bench.dedup_synth import SynthCorpus  # noqa: E402
from bench.governance_workers import _log_tails, _stop, environment, kafka_setup  # noqa: E402
from bench.governance_workers import kafka_bootstrap as start_kafka  # noqa: E402
from ledger.eventlog import EventLog, open_event_log  # noqa: E402
from ledger.events import (  # noqa: E402
    BatchAnchored,
    BatchAnchorFailed,
    BatchGoverned,
    ContributionRewarded,
    CorpusBatchSubmitted,
)
from ledger.vocabulary import TaskType  # noqa: E402

RESULTS = HERE / "results" / "scale.json"
SEED = 20261203
STAGES = ("intake", "governance", "anchor", "reward", "feed")
TARGETS = {"wall_s": 20 * 60.0, "peak_rss_gb": 4.0, "at_records": 100_000}
TASK_TYPES = [t.value for t in TaskType]


# ---------------------------------------------------------------------------------------- corpus


def synthetic_corpus(records: int, *, seed: int, near_duplicates: float) -> list[dict[str, Any]]:
    """``records`` novel records (a share of them planted near duplicates), reproducible."""
    corpus = SynthCorpus(seed=seed, zh_share=0.5, duplicate_share=near_duplicates)
    pick = random.Random(seed + 1)
    return [
        {
            "instruction": r.instruction,
            "input": "",
            "output": r.output,
            "discipline": r.discipline,
            "task_type": pick.choice(TASK_TYPES),
            "planted_duplicate": r.duplicate_of is not None,
        }
        for r in corpus.records(records)
    ]


def read_corpus(path: Path, records: int) -> list[dict[str, Any]]:
    """The first ``records`` records of a JSONL file or JSON array."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [dict(r, planted_duplicate=False) for r in rows[:records]]


def batch_files(rows: list[dict[str, Any]], folder: Path, *, batch_size: int) -> list[Path]:
    """The corpus as JSONL files of ``batch_size`` records (the planting marks left out)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(0, len(rows), batch_size):
        path = folder / f"batch-{index // batch_size:05d}.jsonl"
        lines = [
            json.dumps({k: v for k, v in r.items() if k != "planted_duplicate"}, ensure_ascii=False)
            for r in rows[index : index + batch_size]
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(path)
    return files


# ---------------------------------------------------------------------------------------- memory


class PeakRss:
    """The peak of the summed RSS of this process and all its descendants, sampled; and the CPU
    seconds the tree has used (each process's last sampled user + system time)."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        total = 0
        with self._lock:
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
                    cpu = process.cpu_times()
                    self._cpu[process.pid] = cpu.user + cpu.system
            self.peak_bytes = max(self.peak_bytes, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def cpu_s(self) -> float:
        """CPU seconds used so far by this process and its descendants."""
        self._sample()
        with self._lock:
            return sum(self._cpu.values())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def gb(self) -> float:
        return round(self.peak_bytes / 1024**3, 3)


def with_cpu(figures: dict[str, Any], cpu_s: float) -> dict[str, Any]:
    """``figures`` with the stage's CPU seconds and records per CPU second (load-independent)."""
    return figures | {
        "cpu_s": round(cpu_s, 2),
        "records_per_cpu_s": round(figures["records"] / cpu_s, 2) if cpu_s > 0 else None,
    }


# -------------------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """What the log says so far: per batch, the timestamps of each stage's event."""

    submitted: dict[str, float] = field(default_factory=dict)
    governed: dict[str, float] = field(default_factory=dict)
    anchored: dict[str, float] = field(default_factory=dict)
    rewarded: dict[str, float] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    to_reward: set[str] = field(default_factory=set)
    duplicates_found: set[str] = field(default_factory=set)
    """Record ids governance rejected as a near duplicate of an earlier record."""
    counts: dict[str, int] = field(default_factory=dict)
    """Events per (type, batch), to check that each happened once."""
    anchor_failures: dict[str, str] = field(default_factory=dict)
    position: int = 0

    def read(self, log: EventLog) -> None:
        for envelope in log.read_all(from_position=self.position + 1):
            self.position = envelope.position or self.position
            payload, kind = envelope.payload, envelope.event_type
            at = datetime.fromisoformat(envelope.occurred_at).timestamp()
            batch_id = str(payload.get("batch_id", ""))
            if kind == CorpusBatchSubmitted.event_type:
                self.submitted[batch_id] = at
                self.records[batch_id] = len(payload["records"])
            elif kind == BatchGoverned.event_type:
                self.governed.setdefault(batch_id, at)
                self.accepted[batch_id] = len(payload["accepted_record_ids"])
                if int(payload["reward_wei"]):
                    self.to_reward.add(batch_id)
                self.duplicates_found |= {
                    d["record_id"] for d in payload["decisions"] if d.get("duplicate_of")
                }
            elif kind == BatchAnchored.event_type:
                self.anchored.setdefault(batch_id, at)
            elif kind == ContributionRewarded.event_type:
                self.rewarded.setdefault(batch_id, at)
            elif kind == BatchAnchorFailed.event_type:
                self.anchor_failures[batch_id] = str(payload["error"])
            else:
                continue
            key = f"{kind}:{batch_id}"
            self.counts[key] = self.counts.get(key, 0) + 1

    def done(self, stage: str, batch_ids: list[str]) -> bool:
        passed = {"governance": self.governed, "anchor": self.anchored, "reward": self.rewarded}
        wanted = self.to_reward if stage == "reward" else set(batch_ids)
        return wanted <= set(passed[stage])

    def stage_figures(self, stage: str, started: float) -> dict[str, Any]:
        """Records through ``stage``, seconds from ``started`` to its last event, and rates."""
        times = {
            "intake": self.submitted,
            "governance": self.governed,
            "anchor": self.anchored,
            "reward": self.rewarded,
        }[stage]
        weight = self.accepted if stage == "reward" else self.records
        records = sum(weight[b] for b in times)
        first, last = min(times.values()), max(times.values())
        seconds = max(last - started, 1e-6)
        after_first = records - sum(weight[b] for b, t in times.items() if t == first)
        return {
            "records": records,
            "batches": len(times),
            "seconds": round(seconds, 2),
            "first_item_s": round(first - started, 2),
            "records_per_s": round(records / seconds, 2),
            "steady_records_per_s": round(after_first / (last - first), 2)
            if last > first
            else None,
        }


def wait_for(condition: Any, *, timeout_s: float, check: Any, poll_s: float = 0.5) -> None:
    """Poll ``condition`` until true; ``check`` raises when the pipeline cannot get there."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        check()
        if time.monotonic() > deadline:
            raise TimeoutError("the pipeline did not get there in time")
        time.sleep(poll_s)


# ----------------------------------------------------------------------------------------- doors


def submit_all(env: dict[str, str], files: list[Path]) -> tuple[list[str], list[str]]:
    """``byr submit FILE --institution bupt --json`` for each file, in this process (no interpreter
    start per batch); the batch ids, and every recorded record id in corpus order."""
    from api.cli import app

    batch_ids, record_ids = [], []
    with environment(env):
        for path in files:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                code = app(
                    ["submit", str(path), "--institution", "bupt", "--json"], standalone_mode=False
                )
            # 3: recorded, with some lines rejected at intake.
            if code not in (None, 0, 3):
                raise RuntimeError(
                    f"byr submit {path.name} exited {code}: {printed.getvalue()[-2000:]}"
                )
            outcome = json.loads(printed.getvalue())
            batch_ids.append(str(outcome["batch_id"]))
            record_ids += [str(r) for r in outcome["record_ids"]]
    return batch_ids, record_ids


def read_feed(settings: Any, *, expected: int, timeout_s: float) -> int:
    """Page the feed from its start as ``GET /v1/feed`` does (projections caught up, then a page)
    until ``expected`` records came; the records read."""
    from api.composition import Parts
    from api.services.feed import FeedService, feed_filter, feed_request

    seen = 0
    cursor: str | None = None
    deadline = time.monotonic() + timeout_s
    with Parts(settings) as parts:
        service = FeedService(ledger=parts.ledger)
        while seen < expected:
            parts.ledger.sync()
            page = service.page(feed_request(cursor=cursor, limit=1000, where=feed_filter(None)))
            seen += sum(1 for item in page.items if item.record is not None)
            cursor = str(page.next_cursor)
            if page.at_head and seen < expected:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the feed holds {seen} of {expected} records")
                time.sleep(0.2)
    return seen


# ---------------------------------------------------------------------------------------- setups


def run_embedded(*, files: list[Path], workdir: Path, timeout_s: float) -> dict[str, Any]:
    """The embedded home: ``byr init``, then every stage in this process, one after another."""
    from api.composition import Parts, initialize
    from ledger.projections.outbox import JobKind
    from ledger.settings import LedgerSettings

    settings = LedgerSettings(home=workdir / f"embedded-{uuid.uuid4().hex[:6]}")
    init_started = time.perf_counter()
    initialize(settings)
    init_s = time.perf_counter() - init_started
    progress = Progress()
    stages: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()
    with PeakRss() as rss, open_event_log(settings.event_log_url) as log:
        started, cpu = time.time(), rss.cpu_s()
        batch_ids, _ = submit_all({"BYR_HOME": str(settings.home)}, files)
        progress.read(log)
        stages["intake"] = with_cpu(progress.stage_figures("intake", started), rss.cpu_s() - cpu)
        with Parts(settings) as parts:
            kinds = {"governance": JobKind.GOVERN, "anchor": JobKind.ANCHOR}
            for stage, kind in (*kinds.items(), ("reward", JobKind.REWARD)):
                stage_started, cpu = time.time(), rss.cpu_s()
                deadline = time.monotonic() + timeout_s
                while parts.ledger.status().pending_jobs.get(kind.value, 0):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the {stage} stage did not finish in time")
                    parts.pipeline.step([kind])
                progress.read(log)
                if not progress.done(stage, batch_ids):
                    failed = parts.ledger.status().failed_jobs
                    raise RuntimeError(f"the {stage} stage left batches behind (failed: {failed})")
                figures = progress.stage_figures(stage, stage_started)
                stages[stage] = with_cpu(figures, rss.cpu_s() - cpu)
        cpu = rss.cpu_s()
        stages["feed"] = feed_stage(settings, progress, timeout_s=timeout_s)
        stages["feed"] = with_cpu(stages["feed"], rss.cpu_s() - cpu)
        wall_s = time.time() - started
    return run_document(
        "embedded", progress, batch_ids, stages=stages, wall_s=wall_s, rss=rss, init_s=init_s
    ) | {"load_average": {"before": load_before, "after": os.getloadavg()}}


def run_kafka(
    *, files: list[Path], workdir: Path, bootstrap: str, governance_workers: int, timeout_s: float
) -> dict[str, Any]:
    """A Kafka log and two anvil nodes; each stage run by ``byr worker`` processes started when
    the stage starts (and kept up until the end)."""
    from ledger.chain.accounts import dev_accounts
    from ledger.settings import LedgerSettings

    root = workdir / f"kafka-{uuid.uuid4().hex[:6]}"
    processes: dict[str, Any] = {}
    progress = Progress()
    stages: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()
    with ExitStack() as stack:
        rss = stack.enter_context(PeakRss())
        setup = kafka_setup(stack, root=root, bootstrap=bootstrap, prefix="scale")
        init_started = time.perf_counter()
        setup.cli("init", "--json")
        account = dev_accounts().institutions[0].address
        setup.cli("institution", "add", "bupt", "--name", "BUPT", "--account", account)
        init_s = time.perf_counter() - init_started
        stack.callback(stop_all, processes)
        log = stack.enter_context(open_event_log(setup.url))

        def check() -> None:
            dead = [n for n, p in processes.items() if p.poll() is not None]
            if dead or progress.anchor_failures:
                raise RuntimeError(
                    f"workers exited: {dead}; anchor failures: {progress.anchor_failures}\n"
                    + _log_tails(root, list(processes))
                )

        started, cpu = time.time(), rss.cpu_s()
        batch_ids, _ = submit_all(setup.env(setup.home), files)
        progress.read(log)
        stages["intake"] = with_cpu(progress.stage_figures("intake", started), rss.cpu_s() - cpu)
        workers = {
            "governance": [(f"gov{i}", "governance") for i in range(governance_workers)],
            "anchor": [("anchor", "anchor")],
            "reward": [("rewards", "rewards")],
        }
        for stage, names in workers.items():
            stage_started, cpu = time.time(), rss.cpu_s()
            processes |= {name: setup.start_worker(kind, name) for name, kind in names}

            def passed(stage: str = stage) -> bool:
                progress.read(log)
                return progress.done(stage, batch_ids)

            wait_for(passed, timeout_s=timeout_s, check=check)
            figures = progress.stage_figures(stage, stage_started)
            stages[stage] = with_cpu(figures, rss.cpu_s() - cpu)
        cpu = rss.cpu_s()
        processes["feed"] = setup.start_worker("feed", "feed")
        reader = LedgerSettings(home=setup.home, event_log=setup.url)
        stages["feed"] = feed_stage(reader, progress, timeout_s=timeout_s)
        stages["feed"] = with_cpu(stages["feed"], rss.cpu_s() - cpu)
        wall_s = time.time() - started
        check()
    return run_document(
        "kafka", progress, batch_ids, stages=stages, wall_s=wall_s, rss=rss, init_s=init_s
    ) | {
        "governance_workers": governance_workers,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def stop_all(processes: dict[str, Any]) -> None:
    for process in processes.values():
        _stop(process)


def feed_stage(settings: Any, progress: Progress, *, timeout_s: float) -> dict[str, Any]:
    expected = sum(progress.accepted.values())
    stage_started = time.perf_counter()
    in_feed = read_feed(settings, expected=expected, timeout_s=timeout_s)
    seconds = max(time.perf_counter() - stage_started, 1e-6)
    return {
        "records": in_feed,
        "seconds": round(seconds, 2),
        "records_per_s": round(in_feed / seconds, 2),
    }


def run_document(
    name: str,
    progress: Progress,
    batch_ids: list[str],
    *,
    stages: dict[str, dict[str, Any]],
    wall_s: float,
    rss: PeakRss,
    init_s: float,
) -> dict[str, Any]:
    records = sum(progress.records[b] for b in batch_ids)
    accepted = sum(progress.accepted[b] for b in batch_ids)
    return {
        "setup": name,
        "records": records,
        "batches": len(batch_ids),
        "wall_s": round(wall_s, 2),
        "init_s": round(init_s, 2),
        "peak_rss_gb": rss.gb,
        "stages": stages,
        "accepted": accepted,
        "rejected": records - accepted,
        "in_feed": stages["feed"]["records"],
        "duplicates_found": len(progress.duplicates_found),
        "rewarded_batches": len(progress.rewarded),
        "exactly_once": set(progress.counts.values()) == {1},
    }


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", default="100000", help="a size, or sizes: 10000,100000")
    parser.add_argument("--setup", choices=["embedded", "kafka", "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, help="JSONL or JSON array to submit instead")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--near-duplicates", type=float, default=0.03, help="planted share")
    parser.add_argument("--governance-workers", type=int, default=2)
    parser.add_argument("--bootstrap", default=os.environ.get("BYR_TEST_KAFKA") or None)
    parser.add_argument("--timeout-s", type=float, default=7200.0, help="per stage")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.records.split(","))
    names = ["embedded", "kafka"] if args.setup == "both" else [args.setup]

    bench_started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    planted: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="byr-bench-scale-") as folder:
        workdir = Path(folder)
        if args.corpus:
            rows = read_corpus(args.corpus, sizes[-1])
        else:
            rows = synthetic_corpus(sizes[-1], seed=args.seed, near_duplicates=args.near_duplicates)
        corpora = {}
        for size in sizes:
            planted[size] = sum(r["planted_duplicate"] for r in rows[:size])
            corpora[size] = batch_files(
                rows[:size], workdir / f"corpus-{size}", batch_size=args.batch_size
            )
        if "embedded" in names:
            for size in sizes:
                print(f"== embedded, {size} records", flush=True)
                runs.append(
                    run_embedded(files=corpora[size], workdir=workdir, timeout_s=args.timeout_s)
                )
                print("   " + json.dumps(runs[-1]["stages"]), flush=True)
        if "kafka" in names:
            with start_kafka(args.bootstrap, workdir) as bootstrap:
                for size in sizes:
                    print(f"== kafka, {size} records", flush=True)
                    runs.append(
                        run_kafka(
                            files=corpora[size],
                            workdir=workdir,
                            bootstrap=bootstrap,
                            governance_workers=args.governance_workers,
                            timeout_s=args.timeout_s,
                        )
                    )
                    print("   " + json.dumps(runs[-1]["stages"]), flush=True)
    for run in runs:
        run["planted_near_duplicates"] = planted[run["records"]] if not args.corpus else None

    results = results_document(args, sizes, runs, wall_s=time.perf_counter() - bench_started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_summary(results)
    print(f"wrote {args.out}")
    return 0


def results_document(
    args: argparse.Namespace, sizes: list[int], runs: list[dict[str, Any]], *, wall_s: float
) -> dict[str, Any]:
    largest = {
        run["setup"]: run for run in runs if run["records"] == max(r["records"] for r in runs)
    }
    results: dict[str, Any] = {
        "benchmark": "scale",
        "records": max(run["records"] for run in runs),
        "sizes": sizes,
        "batch_size": args.batch_size,
        "corpus": str(args.corpus) if args.corpus else "synthetic",
        "seed": args.seed,
        "near_duplicates": args.near_duplicates,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "targets": TARGETS,
        "wall_s": round(wall_s, 2),
        "peak_rss_gb": max(run["peak_rss_gb"] for run in runs),
        "setups": largest,
        "runs": runs,
    }
    if len(sizes) > 1:
        results["t_ratio"] = {}
        for name in {run["setup"] for run in runs}:
            walls = {run["records"]: run["wall_s"] for run in runs if run["setup"] == name}
            results["t_ratio"][name] = round(walls[max(walls)] / walls[min(walls)], 3)
    if {"embedded", "kafka"} <= set(largest):
        results["ratio_kafka_over_embedded"] = {
            stage: round(
                largest["kafka"]["stages"][stage]["records_per_s"]
                / largest["embedded"]["stages"][stage]["records_per_s"],
                3,
            )
            for stage in STAGES
        }
    return results


def print_summary(results: dict[str, Any]) -> None:
    targets = results["targets"]
    print(
        f"== targets at {targets['at_records']:,} records:"
        f" wall <= {targets['wall_s'] / 60:.0f} min,"
        f" peak RSS <= {targets['peak_rss_gb']} GB (reported, not asserted)"
    )
    for run in results["runs"]:
        rates = " | ".join(
            f"{s} {run['stages'][s]['records_per_s']:.1f}/s"
            f" ({run['stages'][s]['records_per_cpu_s']}/cpu-s)"
            for s in STAGES
        )
        scale = targets["at_records"] / run["records"]
        print(
            f"{run['setup']:8s} {run['records']:>7,} records: wall {run['wall_s']:8.1f} s"
            f" (x{scale:g} linearly: {run['wall_s'] * scale / 60:.1f} min), peak RSS"
            f" {run['peak_rss_gb']:.2f} GB, accepted {run['accepted']}, in feed {run['in_feed']}"
        )
        print(f"         {rates}")
        print(f"         load average before/after: {run['load_average']}")
    for name, ratio in results.get("t_ratio", {}).items():
        print(f"t({results['sizes'][-1]})/t({results['sizes'][0]}) {name}: {ratio}")
    for stage, ratio in results.get("ratio_kafka_over_embedded", {}).items():
        print(f"kafka / embedded records/s, {stage}: {ratio}")


if __name__ == "__main__":
    raise SystemExit(main())
