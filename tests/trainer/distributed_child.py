"""One rank of a data-parallel test run on CPU (gloo), started the way ``torchrun`` starts it: the
launch variables in the environment, then :func:`trainer.job.run_training`.

:func:`launch` forks the ranks from the test process (torch, transformers and peft are already
imported there, so a rank starts at once instead of importing them again).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.events import CheckpointSaved, DomainEvent
from tests.trainer.conftest import quick_recipe, sample_records
from trainer.errors import TrainerError
from trainer.job import run_training

STEPS = 8
CHECKPOINT_EVERY = 2


def recipe_overrides(*, batch_size: int, dropout: float | None) -> dict[str, Any]:
    """The test runs' settings; ``dropout`` ``None`` for a method without adapters."""
    overrides: dict[str, Any] = {
        "training.batch_size": batch_size,
        "training.checkpoint_every": CHECKPOINT_EVERY,
        "training.eval_steps": 4,
    }
    if dropout is not None:
        overrides["method_config.dropout"] = dropout
    return overrides


@dataclass(frozen=True)
class RankJob:
    """What every rank of one launch trains."""

    output_dir: Path
    cache_dir: Path
    results_dir: Path
    batch_size: int
    dropout: float | None = 0.0
    method: str = "lora"
    overrides: dict[str, Any] = field(default_factory=dict)
    """More recipe overrides (the method's options)."""
    resume: bool = False
    block_after_checkpoint: int | None = None
    """Rank 0 reports this checkpoint on ``signals`` and then waits to be killed."""
    env: dict[str, str] = field(default_factory=dict)


def train_rank(job: RankJob, rank: int, signals: Any) -> None:
    """Train as rank ``rank`` and write ``results_dir/rank-<rank>.json`` (losses, adapter hash,
    resumed step) and ``results_dir/events-<rank>.jsonl`` (the events this rank was handed)."""
    events = job.results_dir / f"events-{rank}.jsonl"

    def on_event(event: DomainEvent) -> None:
        with events.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"event_type": event.event_type, **event.model_dump()}) + "\n")
        if isinstance(event, CheckpointSaved) and event.step == job.block_after_checkpoint:
            signals.put(("checkpoint", rank, event.step))
            threading.Event().wait()  # until the test kills this process

    try:
        result = run_training(
            base="tiny",
            recipe=quick_recipe(
                job.method,
                **recipe_overrides(batch_size=job.batch_size, dropout=job.dropout),
                **job.overrides,
            ),
            dataset=sample_records(),
            output_dir=job.output_dir,
            max_steps=STEPS,
            resume=job.resume,
            on_event=on_event,
            progress=False,
            device="cpu",
            cache_dir=job.cache_dir,
        )
    except TrainerError as exc:
        signals.put(("error", rank, f"{type(exc).__name__}: {exc}"))
        raise
    except Exception:
        signals.put(("error", rank, traceback.format_exc()))
        raise
    summary = {
        "losses": result.losses,
        "validation_loss": result.validation_loss,
        "adapter_hash": result.manifest.adapter.hash,
        "resumed_from_step": result.resumed_from_step,
    }
    (job.results_dir / f"rank-{rank}.json").write_text(json.dumps(summary), encoding="utf-8")
    signals.put(("done", rank, None))


def start_method() -> str:
    import torch

    return "spawn" if torch.cuda.is_initialized() else "fork"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rank_main(
    target: Callable[[RankJob, int, Any], None],
    job: RankJob,
    rank: int,
    world_size: int,
    port: int,
    signals: Any,
) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            **job.env,
        }
    )
    target(job, rank, signals)


@dataclass
class Launch:
    """The forked ranks of one run and the queue they report on."""

    processes: list[Any]
    signals: Any

    def wait_for(self, kind: str, *, count: int, timeout: float) -> list[tuple[str, int, Any]]:
        """The first ``count`` reports of ``kind``; an ``error`` report fails at once."""
        seen: list[tuple[str, int, Any]] = []
        while len(seen) < count:
            report = self.signals.get(timeout=timeout)
            if report[0] == "error":
                self.kill()
                raise AssertionError(f"rank {report[1]} failed: {report[2]}")
            if report[0] == kind:
                seen.append(report)
        return seen

    def join(self, timeout: float) -> list[int | None]:
        for process in self.processes:
            process.join(timeout)
        return [p.exitcode for p in self.processes]

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
        for process in self.processes:
            process.join(30)


def launch(
    job: RankJob, *, world_size: int = 2, target: Callable[[RankJob, int, Any], None] = train_rank
) -> Launch:
    """Start ``world_size`` ranks running ``target`` with the launch variables ``torchrun`` sets:
    forked, unless this process already initialized CUDA (a forked child cannot use it)."""
    context: Any = multiprocessing.get_context(start_method())
    signals = context.Queue()
    port = free_port()
    job.results_dir.mkdir(parents=True, exist_ok=True)
    processes = [
        context.Process(target=_rank_main, args=(target, job, rank, world_size, port, signals))
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    return Launch(processes=processes, signals=signals)
