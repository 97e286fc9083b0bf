"""Data-parallel training: two gloo processes with micro-batch ``b`` follow the loss curve of one
process with micro-batch ``2b``, rank 0 alone writes, and a run killed after a checkpoint resumes
exactly. The ranks are started the way ``torchrun`` starts them (launch variables in the
environment); one test runs torchrun's launcher on the ``trainer.run`` entry, one covers NCCL
through the ``torchrun`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.conftest import quick_recipe, sample_records
from tests.trainer.distributed_child import (
    STEPS,
    RankJob,
    free_port,
    launch,
    recipe_overrides,
    start_method,
)
from trainer.checkpoint import RANK_RNG, checkpoint_dir, list_checkpoints
from trainer.distributed import World, launch_env
from trainer.errors import ConfigError, ResumeMismatch
from trainer.job import ADAPTER_DIR, TrainingResult, run_training
from trainer.manifest import MANIFEST_NAME
from trainer.metrics import metrics_path

REPO_ROOT = Path(__file__).resolve().parents[2]
RANK_TIMEOUT = 300.0
LOSS_RTOL = 1e-4


def single_process(
    output_dir: Path,
    cache: Path,
    *,
    batch_size: int,
    dropout: float | None = 0.0,
    method: str = "lora",
    overrides: dict[str, Any] | None = None,
) -> TrainingResult:
    return run_training(
        base="tiny",
        recipe=quick_recipe(
            method,
            **recipe_overrides(batch_size=batch_size, dropout=dropout),
            **(overrides or {}),
        ),
        dataset=sample_records(),
        output_dir=output_dir,
        max_steps=STEPS,
        progress=False,
        device="cpu",
        cache_dir=cache,
    )


def run_two_ranks(job: RankJob) -> list[dict[str, Any]]:
    """Both ranks' summaries of a run that completes."""
    ranks = launch(job)
    try:
        ranks.wait_for("done", count=2, timeout=RANK_TIMEOUT)
        assert ranks.join(60) == [0, 0]
    finally:
        ranks.kill()
    return [
        json.loads((job.results_dir / f"rank-{r}.json").read_text(encoding="utf-8"))
        for r in range(2)
    ]


def events_of(results_dir: Path, rank: int) -> list[dict[str, Any]]:
    path = results_dir / f"events-{rank}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def metric_events(run_dir: Path) -> list[str]:
    lines = metrics_path(run_dir).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["event"] for line in lines]


def adapter_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {
        f"{path.parent.name}/{name}": tensor
        for path in sorted((run_dir / ADAPTER_DIR).rglob("*.safetensors"))
        for name, tensor in load_file(str(path)).items()
    }


# AdaLoRA: its loss adds an orthogonality penalty and it reallocates ranks from the gradients;
# discipline experts: a micro-batch splits into one route per discipline, each route training only
# its expert (DDP must find the parameters a rank's last pass left unused); X-LoRA: a learned
# router over experts; full: every weight trains (replicated on each rank: no FSDP).
METHODS = {
    "lora": {},
    "adalora": {},
    "moe_lora_discipline": {"method_config.targets": "mlp"},
    "moe_lora": {},
    "full": {},
}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_follow_the_loss_curve_of_one_process_with_the_global_batch(
    method: str, tmp_path: Path, model_cache: Path
) -> None:
    options = METHODS[method]
    dropout = None if method == "full" else 0.0
    reference = single_process(
        tmp_path / "one",
        model_cache,
        batch_size=4,
        dropout=dropout,
        method=method,
        overrides=options,
    )
    job = RankJob(
        output_dir=tmp_path / "two",
        cache_dir=model_cache,
        results_dir=tmp_path / "results",
        batch_size=2,
        dropout=dropout,
        method=method,
        overrides=options,
    )
    rank0, rank1 = run_two_ranks(job)

    assert rank0["losses"] == pytest.approx(reference.losses, rel=LOSS_RTOL)
    assert rank0["validation_loss"] == pytest.approx(reference.validation_loss, rel=LOSS_RTOL)
    assert rank1 == rank0  # every rank returns rank 0's figures
    one, two = adapter_weights(tmp_path / "one"), adapter_weights(tmp_path / "two")
    assert one and one.keys() == two.keys()
    # AdamW normalizes each update, so a weight whose gradient is ~0 can move by rounding noise:
    # compare each tensor as a whole.
    for name in one:
        drift = float((two[name] - one[name]).norm() / one[name].norm().clamp_min(1e-12))
        assert drift < 1e-3, name

    # Rank 0 alone emitted events and wrote metrics, checkpoints and the adapter, each once.
    assert events_of(job.results_dir, 1) == []
    events = events_of(job.results_dir, 0)
    saved = [e["step"] for e in events if e["event_type"] == "CheckpointSaved"]
    assert saved == [2, 4, 6]
    assert [e["event_type"] for e in events].count("TrainingRunCompleted") == 1
    assert [e["event_type"] for e in events].count("TrainingRunCreated") == 1
    lines = metric_events(job.output_dir)
    assert lines.count("start") == 1 and lines.count("end") == 1
    assert lines.count("step") == STEPS and lines.count("checkpoint") == 3
    assert (job.output_dir / ADAPTER_DIR / MANIFEST_NAME).is_file()
    assert list_checkpoints(job.output_dir) == []  # superseded by the adapter


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_run(
    tmp_path: Path, model_cache: Path
) -> None:
    # Dropout draws from every rank's generators: exact resume needs each rank's own state.
    uninterrupted = run_two_ranks(
        RankJob(
            output_dir=tmp_path / "uninterrupted",
            cache_dir=model_cache,
            results_dir=tmp_path / "results-uninterrupted",
            batch_size=2,
            dropout=0.1,
        )
    )[0]

    killed = tmp_path / "killed"
    job = RankJob(
        output_dir=killed,
        cache_dir=model_cache,
        results_dir=tmp_path / "results-killed",
        batch_size=2,
        dropout=0.1,
        block_after_checkpoint=4,
    )
    ranks = launch(job)
    try:
        assert ranks.wait_for("checkpoint", count=1, timeout=RANK_TIMEOUT) == [("checkpoint", 0, 4)]
        for process in ranks.processes:
            assert process.pid is not None
            os.kill(process.pid, signal.SIGKILL)
        assert ranks.join(60) == [-signal.SIGKILL, -signal.SIGKILL]
    finally:
        ranks.kill()

    assert [p.name for p in list_checkpoints(killed)] == [
        checkpoint_dir(killed, 2).name,
        checkpoint_dir(killed, 4).name,
    ]
    latest = checkpoint_dir(killed, 4)
    assert (latest / f"{RANK_RNG}1.pt").is_file() and (latest / f"{RANK_RNG}1.json").is_file()
    assert not (latest / f"{RANK_RNG}2.pt").exists()
    assert not (killed / ADAPTER_DIR / MANIFEST_NAME).exists()

    # One process cannot continue what two started: its data position means other batches.
    with pytest.raises(ResumeMismatch, match="2 process"):
        run_training(
            base="tiny",
            recipe=quick_recipe("lora", **recipe_overrides(batch_size=2, dropout=0.1)),
            dataset=sample_records(),
            output_dir=killed,
            max_steps=STEPS,
            resume=True,
            progress=False,
            device="cpu",
            cache_dir=model_cache,
        )
    assert [p.name for p in list_checkpoints(killed)][-1] == latest.name

    resumed_job = RankJob(
        output_dir=killed,
        cache_dir=model_cache,
        results_dir=tmp_path / "results-resumed",
        batch_size=2,
        dropout=0.1,
        resume=True,
    )
    resumed, resumed_rank1 = run_two_ranks(resumed_job)
    assert resumed["resumed_from_step"] == 4
    assert resumed["losses"] == pytest.approx(uninterrupted["losses"], rel=1e-5)
    assert resumed["adapter_hash"] == uninterrupted["adapter_hash"]
    assert resumed_rank1 == resumed
    started = [
        e for e in events_of(resumed_job.results_dir, 0) if e["event_type"] == "TrainingRunStarted"
    ]
    assert [e["resumed_from_step"] for e in started] == [4]
    assert events_of(resumed_job.results_dir, 1) == []


def test_the_launch_environment_is_checked_without_echoing_values() -> None:
    assert launch_env({}) is None
    assert launch_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    good = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    env = launch_env(good)
    assert env is not None and (env.rank, env.world_size, env.local_rank) == (1, 2, 1)
    bad = {
        "WORLD_SIZE": ("two-ranks", "WORLD_SIZE: expected an integer"),
        "RANK": ("7", "RANK: must be between"),
        "MASTER_PORT": ("99999", "MASTER_PORT: must be a TCP port"),
        "MASTER_ADDR": ("", "MASTER_ADDR: required"),
    }
    for name, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message) as caught:
            launch_env({**good, name: value})
        if value:
            assert value not in str(caught.value)
    assert World.join(environ={}) is None


def test_a_run_file_is_checked_field_by_field(tmp_path: Path) -> None:
    from trainer.run import read_records, read_run_file

    run_file = tmp_path / "run.yaml"
    run_file.write_text(
        "recipe: knowledge_qa\ndata: records.jsonl\noutput: out\nmax_steps: 3\n", encoding="utf-8"
    )
    run = read_run_file(run_file)
    assert (run.base, run.data, run.output, run.max_steps) == (
        "tiny",
        tmp_path / "records.jsonl",
        tmp_path / "out",
        3,
    )
    cases = {
        "recipe: knowledge_qa\noutput: out\n": "field 'data' is required",
        "recipe: knowledge_qa\ndata: r\noutput: o\nmax_steps: many\n": "'max_steps' must be an int",
        "recipe: knowledge_qa\ndata: r\noutput: o\nsecret_field: 1\n": "unknown field",
        "recipe: [unclosed\n": "not valid YAML or JSON at line",
    }
    for text, message in cases.items():
        run_file.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message) as caught:
            read_run_file(run_file)
        assert str(run_file) in str(caught.value)
        assert "many" not in str(caught.value)
    records = tmp_path / "records.jsonl"
    records.write_text('{"record_id": "a"}\n\nnot json\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"records.jsonl, line 3: not a JSON object"):
        read_records(records)


def _run_file(tmp_path: Path, cache: Path, *, batch_size: int, device: str) -> Path:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in sample_records()), encoding="utf-8")
    overrides = {
        "method": "lora",
        "training.batch_size": batch_size,
        "training.max_seq_length": 64,
        "training.learning_rate": 1e-2,
        "training.warmup_ratio": 0.0,
        "training.scheduler": "constant",
        "training.checkpoint_every": 2,
        "training.eval_steps": 4,
        "training.val_fraction": 0.2,
        "method_config.dropout": 0.0,
    }
    run_file = tmp_path / f"run-{device}-{batch_size}.yaml"
    run_file.write_text(
        json.dumps(
            {
                "base": "tiny",
                "recipe": "knowledge_qa",
                "set": overrides,
                "data": str(records),
                "output": str(tmp_path / f"run-{device}-{batch_size}"),
                "max_steps": STEPS,
                "device": device,
                "cache_dir": str(cache),
            }
        ),
        encoding="utf-8",
    )
    return run_file


def _launch_entry(run_file: Path, *, processes: int) -> dict[str, Any]:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = [sys.executable, *(launcher if processes > 1 else []), "-m", "trainer.run"]
    command.append(str(run_file))
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1, done.stdout  # only rank 0 prints
    summary: dict[str, Any] = summaries[0]
    return summary


@pytest.mark.slow
def test_the_torchrun_launcher_runs_the_entry_on_two_processes(
    tmp_path: Path, model_cache: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """torchrun's own launcher (the elastic agent ``torchrun`` runs, here with forked workers so
    they need not import torch again) starts ``trainer.run.main`` on two ranks."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from trainer import run as entry

    reference = single_process(tmp_path / "one", model_cache, batch_size=4)
    run_file = _run_file(tmp_path, model_cache, batch_size=2, device="cpu")
    capfd.readouterr()
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=2,
        run_id="byr-test",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        max_restarts=0,
        start_method=start_method(),
    )
    returned = elastic_launch(config, entry.main)([str(run_file)])
    assert returned == {0: 0, 1: 0}
    summaries = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line[:1] == "{"
    ]
    assert len(summaries) == 1  # rank 0 alone reports
    assert summaries[0]["steps"] == STEPS
    assert summaries[0]["final_loss"] == pytest.approx(reference.final_loss, rel=LOSS_RTOL)
    run_dir = tmp_path / "run-cpu-2"
    events = [
        json.loads(line)
        for line in (run_dir / entry.EVENTS_FILE).read_text(encoding="utf-8").splitlines()
    ]
    assert [e["step"] for e in events if e["event_type"] == "CheckpointSaved"] == [2, 4, 6]
    assert [e["event_type"] for e in events].count("TrainingRunCompleted") == 1


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    reason="needs two CUDA GPUs for NCCL",
)
def test_nccl_on_two_gpus_follows_one_gpu_with_the_global_batch(
    tmp_path: Path, model_cache: Path
) -> None:
    one = _launch_entry(_run_file(tmp_path, model_cache, batch_size=4, device="cuda"), processes=1)
    two = _launch_entry(_run_file(tmp_path, model_cache, batch_size=2, device="cuda"), processes=2)
    assert two["steps"] == one["steps"] == STEPS
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-3)
