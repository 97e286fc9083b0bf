"""Governance workers sharing the corpus topic through a Kafka consumer group.

Every test has its own topic prefix and homes. The ledger is initialized in one home (persisted
tester chains there); each governance worker process has its own home (own projections and
near-duplicate index) but the same event log and deployments file. The anchor and rewards workers
run in the initializing home, where the chains live. Record counts are small (batches of five
short synthetic records) because every governance process loads the embedding models.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from api.composition import Parts
from bench.dedup_synth import SynthCorpus
from ingest.governance.minhash import normalize_text
from ledger.chain.accounts import DEV_PRIVATE_KEYS, dev_accounts
from ledger.chain.anvil import ANVIL_BINARY, AnvilNode
from ledger.eventlog.kafka.broker import free_port
from ledger.events import BatchGoverned, ContributionRewarded, CorpusIndexExtended, decode
from ledger.ids import CORPUS_INDEX_STREAM, batch_stream
from ledger.settings import LedgerSettings
from tests.kafka_fixtures import (
    KafkaForTests,
    kafka_broker_fixture,  # noqa: F401 - provides kafka_broker
)

ROOT = Path(__file__).resolve().parents[2]
BYR = [sys.executable, "-m", "api.cli"]
TOPICS = ["routing", "modulation", "antennas", "coding", "fading", "scheduling", "queues", "radar"]

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@dataclass
class Cluster:
    """One ledger on a Kafka log: the initializing home and the shared settings."""

    root: Path
    url: str
    home: Path
    chain_env: dict[str, str] = field(default_factory=dict)
    """``BYR_*`` chain settings (empty: the tester chains persisted in the initializing home)."""

    @property
    def deployments(self) -> Path:
        return self.home / "deployments.json"

    def env(self, home: Path) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BYR_")}
        return (
            inherited
            | {
                "BYR_HOME": str(home),
                "BYR_EVENT_LOG": self.url,
                "BYR_DEPLOYMENTS_FILE": str(self.deployments),
                "BYR_LOG_LEVEL": "INFO",
            }
            | self.chain_env
        )

    def parts(self) -> Parts:
        chain = {k.removeprefix("BYR_").lower(): v for k, v in self.chain_env.items()}
        return Parts(
            LedgerSettings(
                home=self.home,
                event_log=self.url,
                deployments_file=self.deployments,
                **chain,  # type: ignore[arg-type]
            )
        )

    def cli(self, home: Path, *args: str) -> None:
        """Run ``byr ARGS`` in ``home``; fails the test if it exits non-zero."""
        done = subprocess.run(
            [*BYR, *args], cwd=ROOT, env=self.env(home), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    def start_worker(self, kind: str, name: str) -> Worker:
        home = self.root / name
        log_path = self.root / f"{name}.log"
        handle = log_path.open("a")
        process = subprocess.Popen(
            [*BYR, "worker", kind, "--idle-wait", "0.5"],
            cwd=ROOT,
            env=self.env(self.home if kind != "governance" else home),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        return Worker(name=name, process=process, log_path=log_path)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def governed(self) -> set[str]:
        """Batches this worker's log says it governed."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return {
            line.split("governed batch ", 1)[1].split(":", 1)[0]
            for line in text.splitlines()
            if "governed batch " in line
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


def batch_file(index: int) -> bytes:
    """Five distinct records that pass intake."""
    records = [
        {
            "instruction": f"Explain item {index}-{n} of {TOPICS[(index + n) % len(TOPICS)]}.",
            "input": "",
            "output": (
                f"Item {index}-{n} concerns {TOPICS[(index + n) % len(TOPICS)]}: a receiver "
                f"measures {index * 7 + n} samples, estimates the channel and reports "
                f"{n + 2} distinct findings about case {index * 31 + n * 17}."
            ),
            "discipline": "communication_principles",
        }
        for n in range(5)
    ]
    return json.dumps(records).encode()


def init_cluster(root: Path, url: str, chain_env: dict[str, str] | None = None) -> Cluster:
    """Initialize a ledger (chains, contracts, institution ``bupt``) on ``url``."""
    home = root / "init"
    cluster = Cluster(root=root, url=url, home=home, chain_env=chain_env or {})
    cluster.cli(home, "init", "--json")
    if cluster.chain_env:
        # On rpc chains no demo institution is registered: add the one the batches use.
        account = dev_accounts().institutions[0].address
        cluster.cli(home, "institution", "add", "bupt", "--name", "BUPT", "--account", account)
    return cluster


@pytest.fixture
def cluster(kafka_broker: KafkaForTests, tmp_path: Path) -> Cluster:
    return init_cluster(tmp_path, kafka_broker.url(timeout_s=90))


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def submit(parts: Parts, count: int, *, start: int = 0) -> list[str]:
    ids = []
    for index in range(start, start + count):
        outcome = parts.submission.submit_bytes(
            batch_file(index), source_name=f"b{index}.json", institution_id="bupt"
        )
        assert outcome.batch is not None
        ids.append(outcome.batch.batch_id)
    return ids


def governed_counts(parts: Parts, batch_ids: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for batch_id in batch_ids:
        for envelope in parts.log.read_stream(batch_stream(batch_id)):
            if envelope.event_type == BatchGoverned.event_type:
                counts[batch_id] += 1
    return counts


def all_governed(parts: Parts, batch_ids: list[str]) -> Callable[[], bool]:
    return lambda: len(governed_counts(parts, batch_ids)) == len(batch_ids)


def test_two_governance_workers_split_the_partitions(
    cluster: Cluster, workers: list[Worker]
) -> None:
    workers += [cluster.start_worker("governance", f"gov{i}") for i in range(2)]
    with cluster.parts() as parts:
        batch_ids = submit(parts, 24)
        wait_until(all_governed(parts, batch_ids), timeout_s=240, what="every batch governed")
        counts = governed_counts(parts, batch_ids)
    assert set(counts) == set(batch_ids)
    assert set(counts.values()) == {1}
    # A worker logs a decision just after appending it: wait for both logs to catch up.
    wait_until(
        lambda: workers[0].governed() | workers[1].governed() == set(batch_ids),
        timeout_s=30,
        what="both workers' logs naming every batch",
    )
    by_worker = [w.governed() for w in workers]
    assert all(by_worker), f"a worker governed nothing: {[len(b) for b in by_worker]}"
    assert by_worker[0].isdisjoint(by_worker[1])


def test_killed_worker_loses_nothing_and_rewards_mint_once(
    cluster: Cluster, workers: list[Worker]
) -> None:
    first, second = (cluster.start_worker("governance", f"gov{i}") for i in range(2))
    workers += [first, second]
    with cluster.parts() as parts:
        batch_ids = submit(parts, 8)
        # Generous: on a loaded machine loading the embedding models alone can take minutes.
        wait_until(lambda: bool(first.governed()), timeout_s=240, what="the first decision")
        batch_ids += submit(parts, 16, start=8)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        workers.append(cluster.start_worker("governance", "gov0"))
        wait_until(all_governed(parts, batch_ids), timeout_s=240, what="every batch governed")
        counts = governed_counts(parts, batch_ids)
        assert set(counts) == set(batch_ids)
        assert set(counts.values()) == {1}

        workers += [cluster.start_worker(kind, kind) for kind in ("anchor", "rewards")]
        settle_and_check_rewards(parts, batch_ids)


def settle_and_check_rewards(parts: Parts, batch_ids: list[str]) -> None:
    """Wait until every batch with accepted records is rewarded; then one mint per batch and a
    total supply equal to the rewards recorded."""

    def settled() -> bool:
        parts.ledger.sync()
        views = [parts.ledger.batch(b) for b in batch_ids]
        return all(v.status == "rewarded" or not int(v.reward_wei or 0) for v in views)

    wait_until(settled, timeout_s=180, what="every batch anchored and rewarded")
    rewards = [
        ContributionRewarded.model_validate(dict(e.payload))
        for b in batch_ids
        for e in parts.log.read_stream(batch_stream(b))
        if e.event_type == ContributionRewarded.event_type
    ]
    rewarded = [b for b in batch_ids if parts.ledger.batch(b).status == "rewarded"]
    assert sorted(r.batch_id for r in rewards) == sorted(rewarded)
    assert rewarded
    assert parts.token.total_supply() == sum(int(r.amount_wei) for r in rewards)


def test_a_broker_restart_mid_pipeline_loses_nothing(
    kafka_broker: KafkaForTests, tmp_path: Path, workers: list[Worker]
) -> None:
    """The broker stops once batches are submitted and governance has begun, and stays down while
    a submission and a read are waiting on it; both finish once it is back, and every batch is
    governed (and rewarded) exactly once."""
    broker = kafka_broker.local
    if broker is None:
        pytest.skip(f"the broker at {kafka_broker.bootstrap} was not started by these tests")
    # The client timeout covers the restart: appends and reads wait for the broker, not fail.
    cluster = init_cluster(tmp_path, kafka_broker.url(timeout_s=240))
    workers += [cluster.start_worker("governance", f"gov{i}") for i in range(2)]
    workers += [cluster.start_worker(kind, kind) for kind in ("anchor", "rewards")]

    with cluster.parts() as parts:
        submitted = submit(parts, 2)
        wait_until(
            lambda: bool(workers[0].governed() | workers[1].governed()),
            timeout_s=150,
            what="the first decision",
        )
        # The chosen point: governance has started and has work left that was just submitted.
        submitted += submit(parts, 4, start=2)
        broker.down()

        outcomes: dict[str, object] = {}
        calling: dict[str, threading.Event] = {
            "submit": threading.Event(),
            "read": threading.Event(),
        }

        def during_outage(what: str, call: Callable[[], object]) -> None:
            calling[what].set()
            try:
                outcomes[what] = call()
            except BaseException as exc:
                outcomes[what] = exc

        def read() -> object:
            return len(list(parts.log.read_stream(batch_stream(submitted[0]))))

        threads = [
            threading.Thread(
                target=during_outage, args=("submit", lambda: submit(parts, 1, start=6))
            ),
            threading.Thread(target=during_outage, args=("read", read)),
        ]
        for thread in threads:
            thread.start()
        for event in calling.values():
            assert event.wait(30)
        # Both calls are waiting on the broker, not failing: nothing can answer them now.
        for thread in threads:
            thread.join(timeout=3)
        assert outcomes == {}, outcomes
        broker.up(timeout_s=180)
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads), "a call never returned"
        assert isinstance(outcomes["read"], int) and outcomes["read"] >= 1, outcomes
        new_batch = outcomes["submit"]
        assert isinstance(new_batch, list) and len(new_batch) == 1, outcomes
        submitted += new_batch

        wait_until(all_governed(parts, submitted), timeout_s=240, what="every batch governed")
        counts = governed_counts(parts, submitted)
        assert set(counts) == set(submitted)
        assert set(counts.values()) == {1}
        settle_and_check_rewards(parts, submitted)
        assert parts.log.verify_integrity().ok
    assert all(w.process.poll() is None for w in workers), "a worker died during the restart"


@pytest.fixture
def anvil_chains(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two anvil nodes (academic and incentive chains, state files) and the settings naming them."""
    if not ANVIL_BINARY.is_file():
        pytest.skip(f"anvil binary not installed at {ANVIL_BINARY} (run `npm ci`)")
    defaults = LedgerSettings(home=tmp_path / "defaults")
    nodes = [
        AnvilNode(
            chain_id=chain_id,
            port=free_port(),
            state_path=tmp_path / f"anvil-{name}.json",
            log_path=tmp_path / f"anvil-{name}.log",
        ).start()
        for name, chain_id in (
            ("academic", defaults.academic_chain_id),
            ("incentive", defaults.incentive_chain_id),
        )
    ]
    try:
        yield {
            "BYR_CHAIN_BACKEND": "rpc",
            "BYR_ACADEMIC_RPC_URL": nodes[0].url,
            "BYR_INCENTIVE_RPC_URL": nodes[1].url,
            "BYR_ACADEMIC_PRIVATE_KEY": DEV_PRIVATE_KEYS[0],
            "BYR_INCENTIVE_PRIVATE_KEY": DEV_PRIVATE_KEYS[0],
        }
    finally:
        for node in nodes:
            node.stop()


STREAM_BATCHES = 8
STREAM_BATCH_SIZE = 40
STREAM_DUPLICATE_SHARE = 0.2


@pytest.mark.anvil
def test_a_stream_is_governed_exactly_once_by_two_workers_one_killed_on_anvil_chains(
    kafka_broker: KafkaForTests,
    anvil_chains: dict[str, str],
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    """320 synthetic records in 8 batches (a fifth planted duplicates of earlier ones, in other
    batches too), two governance workers with separate homes, the first to decide killed with
    SIGKILL mid-stream, anchors and mints on anvil.

    ``bench/governance_workers.py`` runs a 5,000-record stream through one and two workers.
    """
    cluster = init_cluster(tmp_path, kafka_broker.url(timeout_s=90), anvil_chains)
    governance = [cluster.start_worker("governance", f"gov{i}") for i in range(2)]
    workers += governance
    workers += [cluster.start_worker(kind, kind) for kind in ("anchor", "rewards")]
    corpus = SynthCorpus(seed=20261124, duplicate_share=STREAM_DUPLICATE_SHARE)
    with cluster.parts() as parts:
        batch_ids: list[str] = []
        for index in range(STREAM_BATCHES):
            records = [
                {
                    "instruction": r.instruction,
                    "input": "",
                    "output": r.output,
                    "discipline": r.discipline,
                }
                for r in corpus.records(STREAM_BATCH_SIZE)
            ]
            outcome = parts.submission.submit_bytes(
                json.dumps(records, ensure_ascii=False).encode(),
                source_name=f"stream-{index}.json",
                institution_id="bupt",
            )
            assert outcome.batch is not None
            batch_ids.append(outcome.batch.batch_id)

        # Kill the first worker to decide, most likely while it governs its next batch. Once the
        # group drops it (its session times out), the other worker receives its partitions, the
        # uncommitted delivery included.
        wait_until(
            lambda: any(w.governed() for w in governance), timeout_s=240, what="a first decision"
        )
        victim = next(w for w in governance if w.governed())
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        assert not all_governed(parts, batch_ids)(), "the stream was over before the kill"
        wait_until(all_governed(parts, batch_ids), timeout_s=300, what="every batch governed")

        # One decision per batch, one per record, and both workers took part.
        assert set(governed_counts(parts, batch_ids).values()) == {1}

        def named() -> set[str]:
            return governance[0].governed() | governance[1].governed()

        # A worker logs a decision just after appending it: wait for the logs to catch up, short
        # of one batch the victim may have decided in the instant before the kill.
        wait_until(
            lambda: len(set(batch_ids) - named()) <= 1,
            timeout_s=60,
            what="the workers' logs naming every batch",
        )
        assert governance[0].governed().isdisjoint(governance[1].governed())
        owner = {b: w.name for w in governance for b in w.governed()}
        assert len(set(owner.values())) == 2
        decided: dict[str, dict[str, object]] = {}
        batch_of: dict[str, str] = {}
        texts: dict[str, str] = {}
        records_total = 0
        for batch_id in batch_ids:
            entries = parts.ledger.batch_entries(batch_id)
            bodies = {r.record_id: r.record for r in parts.ledger.records(batch_id)}
            records_total += len(entries)
            (governed,) = [
                decode(e)
                for e in parts.log.read_stream(batch_stream(batch_id))
                if e.event_type == BatchGoverned.event_type
            ]
            assert isinstance(governed, BatchGoverned)
            assert sorted(d["record_id"] for d in governed.decisions) == sorted(
                e.record_id for e in entries
            )
            for entry, decision in zip(entries, governed.decisions, strict=True):
                decided[entry.record_id] = decision
                batch_of[entry.record_id] = batch_id
                body = bodies[entry.record_id]
                assert body is not None  # nothing is erased here
                fields = (body["instruction"], body["output"])
                texts[entry.record_id] = "\n".join(fields)
        assert records_total >= 0.95 * STREAM_BATCHES * STREAM_BATCH_SIZE

        # The accepted corpus is the corpus-index stream, each record once.
        indexed = [
            record_id
            for e in parts.log.read_stream(CORPUS_INDEX_STREAM)
            for record_id in CorpusIndexExtended.model_validate(dict(e.payload)).record_ids
        ]
        accepted = [r for r, d in decided.items() if d["accepted"]]
        assert len(indexed) == len(set(indexed))
        assert set(indexed) == set(accepted)
        # No copy was accepted twice, whichever worker saw which copy.
        keys = Counter(normalize_text(texts[r]) for r in accepted)
        assert keys.most_common(1)[0][1] == 1
        duplicates = {r: str(d["duplicate_of"]) for r, d in decided.items() if d["duplicate_of"]}
        across = [
            r
            for r, o in duplicates.items()
            if batch_of[r] in owner
            and batch_of[o] in owner
            and owner[batch_of[r]] != owner[batch_of[o]]
        ]
        assert across, "no duplicate was caught across workers"

        settle_and_check_rewards(parts, batch_ids)
    assert all(w.process.poll() is None for w in workers if w is not victim)
