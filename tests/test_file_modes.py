"""Everything the ledger writes is owner-only: files 0600, folders 0700.

The home is written by the real ``byr`` command in its own process, started under umask 022 (as a
shell usually has it) so that the command has to narrow its umask itself. The storage adapters are
also checked in this process under umask 022, fresh and on a home left loose by an older version,
and so are the Kafka broker's home (without starting Kafka), the deployments file, the state and
logs of local anvil nodes, and a training run's folder (run file, checkpoints, adapter and merged
model).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.nodes import chains_down, chains_up
from ingest.governance.dedup.store import IndexStore
from ingest.governance.embeddings import EmbeddingCache
from ledger.chain.anvil import ANVIL_BINARY, AnvilNode, free_port
from ledger.chain.deploy import ContractDeployment, Deployments
from ledger.chain.tester import open_embedded
from ledger.eventlog.kafka.broker import BrokerConfig, LocalBroker, tools_available
from ledger.eventlog.sqlite import SQLiteEventLog
from ledger.files import private_dir, private_file
from ledger.projections.base import ProjectionStore
from ledger.settings import LedgerSettings
from tests.cli import ROOT, byr, ok_json

EXAMPLES = ROOT / "examples"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Umask 022 for the test (and the processes it starts), the previous one restored after."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def not_private(root: Path, *, exact: bool = True) -> list[str]:
    """Every path under ``root`` (itself included) whose mode is not 0600 (files) or 0700
    (folders), as ``"0644 path"``; with ``exact=False`` only those with group or other bits."""
    wrong = []
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        expected = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        loose = mode != expected if exact else bool(mode & 0o077)
        if loose:
            wrong.append(f"{mode:04o} {path.relative_to(root.parent)}")
    return wrong


def loosen(root: Path) -> None:
    """Make ``root`` look like a home written by a version without private modes."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.slow
def test_a_home_written_by_the_byr_command_is_owner_only(tmp_path: Path, loose_umask: None) -> None:
    home = tmp_path / "home"
    ok_json(byr(home, "init", "--json"))
    batch = str(EXAMPLES / "small_batch.json")
    submitted = ok_json(byr(home, "submit", batch, "--institution", "bupt", "--wait", "--json"))
    assert submitted["status"] == "rewarded"
    written = {p.relative_to(home).as_posix() for p in home.rglob("*")}
    assert {"events.db", "state.db", "deployments.json", "chains", "governance"} <= written
    assert any(p.startswith("governance/") for p in written)
    assert any(p.startswith("chains/") for p in written)
    assert not_private(home) == []


def test_storage_adapters_create_private_files_and_tighten_a_loose_home(
    tmp_path: Path, loose_umask: None
) -> None:
    home = tmp_path / "home"

    def open_all() -> None:
        SQLiteEventLog(home / "events.db").close()
        ProjectionStore(home / "state.db").close()
        open_embedded(chain_id=31337001, state_path=home / "chains" / "academic.db").close()
        EmbeddingCache(home / "governance" / "embeddings.sqlite").close()
        IndexStore(
            home / "governance" / "dedup.sqlite",
            scheme="test",
            signatures=lambda texts: np.zeros((len(texts), 4), dtype=np.uint32),
        ).close()

    open_all()
    assert (home / "chains" / "academic.db").stat().st_size > 0
    assert not_private(home) == []
    loosen(home)
    assert not_private(home) != []
    open_all()
    assert not_private(home) == []


def test_sqlite_companion_files_take_the_database_files_mode(
    tmp_path: Path, loose_umask: None
) -> None:
    log = SQLiteEventLog(tmp_path / "log" / "events.db")
    try:
        wal = tmp_path / "log" / "events.db-wal"
        # An open WAL-mode database keeps its -wal and -shm files while a connection is open.
        assert {p.name for p in (tmp_path / "log").iterdir()} >= {wal.name, "events.db-shm"}
        assert not_private(tmp_path / "log") == []
    finally:
        log.close()


def test_private_dir_creates_parents_privately_and_leaves_existing_parents_alone(
    tmp_path: Path, loose_umask: None
) -> None:
    tmp_path.chmod(0o755)
    created = private_dir(tmp_path / "a" / "b")
    assert created.is_dir()
    assert not_private(tmp_path / "a") == []
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        private_dir(tmp_path / "file")
    assert stat.S_IMODE(private_file(tmp_path / "file").stat().st_mode) == 0o600
    assert (tmp_path / "file").read_text() == "x"


def test_the_kafka_brokers_home_and_data_folder_are_owner_only(
    tmp_path: Path, loose_umask: None
) -> None:
    broker = LocalBroker(BrokerConfig(home=tmp_path / "kafka", cache_dir=tmp_path / "cache"))
    old_segment = broker.config.data_dir / "byr-events-0" / "00000000000000000000.log"
    old_segment.parent.mkdir(parents=True)
    old_segment.write_bytes(b"")
    broker.config.log_file.write_text("an older broker's log\n")
    loosen(broker.config.home)
    broker._render_properties()
    assert broker.config.properties_file.is_file()
    assert not_private(broker.config.home) == []


@pytest.mark.kafka
@pytest.mark.slow
def test_the_kafka_storage_tool_writes_owner_only_files(tmp_path: Path, loose_umask: None) -> None:
    missing = tools_available()
    if missing:
        pytest.skip(f"{missing}: cannot run the Kafka storage tool")
    broker = LocalBroker(BrokerConfig(home=tmp_path / "kafka"))
    lib = broker.install()
    broker._render_properties()
    broker._format_storage(lib)
    assert (broker.config.data_dir / "meta.properties").is_file()
    # Kafka makes its metadata snapshot read-only (0400) on purpose: stricter is fine.
    assert not_private(broker.config.home, exact=False) == []


def test_the_deployments_file_is_written_owner_only(tmp_path: Path, loose_umask: None) -> None:
    home = tmp_path / "home"
    academic = ContractDeployment(
        chain_name="academic",
        chain_id=31337001,
        contract="AcademicLedger",
        address="0x" + "11" * 20,
        deploy_tx="0x" + "22" * 32,
        block_number=1,
        backend="tester",
        admin="0x" + "33" * 20,
    )
    deployments = Deployments(
        academic=academic,
        incentive=replace(academic, chain_name="incentive", chain_id=31337002, contract="BYRToken"),
    )
    deployments.save(home / "deployments.json")
    assert Deployments.load(home / "deployments.json") == deployments
    assert not_private(home) == []
    loosen(home)
    deployments.save(home / "deployments.json")
    assert not_private(home) == []


def require_anvil() -> None:
    if not ANVIL_BINARY.is_file():
        pytest.skip(f"anvil binary not installed at {ANVIL_BINARY} (run `npm ci`)")


@pytest.mark.anvil
def test_an_anvil_nodes_state_and_log_are_owner_only(tmp_path: Path, loose_umask: None) -> None:
    require_anvil()
    chains = tmp_path / "home" / "chains"
    node = AnvilNode(
        chain_id=31337001, state_path=chains / "anvil.json", log_path=chains / "anvil.log"
    )
    with node:
        assert not_private(tmp_path / "home") == []
    assert (chains / "anvil.json").stat().st_size > 0
    assert not_private(tmp_path / "home") == []
    loosen(chains)
    with node:
        pass
    assert not_private(chains) == []


@pytest.mark.anvil
def test_chains_up_and_down_keep_the_chains_folder_owner_only(
    tmp_path: Path, loose_umask: None
) -> None:
    require_anvil()
    settings = LedgerSettings(home=tmp_path / "home")
    stopped: list[str] = []
    try:
        chains_up(settings, academic_port=free_port(), incentive_port=free_port())
        assert (settings.chains_dir / "nodes.json").is_file()
        assert not_private(settings.home) == []
    finally:
        stopped = chains_down(settings)
    assert sorted(stopped) == ["academic", "incentive"]
    # The detached nodes inherited umask 022 and wrote their state files on the way out.
    assert {p.name for p in settings.chains_dir.iterdir()} >= {
        "anvil-academic.json",
        "anvil-incentive.json",
        "anvil-academic.log",
    }
    assert not_private(settings.home) == []


class Interrupt(Exception):
    """Raised from the event sink to stop a run right after its first checkpoint."""


def test_a_training_run_writes_owner_only_checkpoints_and_adapters(
    tmp_path: Path, loose_umask: None
) -> None:
    import torch

    from ledger.events import CheckpointSaved, DomainEvent
    from tests.trainer.conftest import quick_recipe, sample_records
    from trainer.checkpoint import list_checkpoints
    from trainer.errors import TrainingFailed
    from trainer.job import run_training
    from trainer.manifest import MANIFEST_NAME, MERGED_DIR

    def stop_after_a_checkpoint(event: DomainEvent) -> None:
        if isinstance(event, CheckpointSaved):
            raise Interrupt("stop")

    runs = tmp_path / "runs"
    options: dict[str, Any] = {
        "base": "tiny",
        "recipe": quick_recipe("lora", **{"training.checkpoint_every": 1}),
        "dataset": sample_records(8),
        "output_dir": runs / "run",
        "max_steps": 2,
        "progress": False,
        "cache_dir": tmp_path / "models",
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model only loses time to a second thread
    try:
        with pytest.raises(TrainingFailed):
            run_training(**options, on_event=stop_after_a_checkpoint)
        assert list_checkpoints(runs / "run")
        assert (runs / "run" / "run.json").is_file()
        assert not_private(runs) == []
        result = run_training(**options, resume=True, merge=True)
    finally:
        torch.set_num_threads(threads)
    assert (result.adapter_dir / MANIFEST_NAME).is_file()
    assert any((result.adapter_dir / MERGED_DIR).iterdir())
    assert not_private(runs) == []


def test_process_defaults_narrow_the_umask_and_keep_a_stricter_one(loose_umask: None) -> None:
    from api.environment import apply_process_defaults

    apply_process_defaults()
    assert os.umask(0o277) == 0o077
    apply_process_defaults()
    assert os.umask(0o022) == 0o277
