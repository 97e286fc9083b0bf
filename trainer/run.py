"""``python -m trainer.run CONFIG``: one training run from a run file, in one process or under a
data-parallel launcher::

    python -m trainer.run run.yaml
    torchrun --standalone --nproc_per_node 2 -m trainer.run run.yaml
    accelerate launch --multi_gpu --num_processes 2 -m trainer.run run.yaml

The run file (YAML or JSON) names what :func:`trainer.job.run_training` needs::

    base: tiny                  # tiny, tiny-<family>, smollm2-135m or a model folder
    recipe: knowledge_qa        # a recipe name or a recipe YAML file
    set: {training.batch_size: 2}   # recipe overrides (optional)
    data: records.jsonl         # accepted records, one JSON object a line
    output: runs/demo           # the run folder
    resume: false               # continue the run in ``output`` (optional)
    max_steps: 8                # (optional)
    device: cpu                 # (optional; default: the local GPU when visible)
    cache_dir: var/models       # model cache (optional)

Relative paths are read from the folder of the run file. Rank 0 appends the run's lifecycle events
to ``<output>/events.jsonl``, one JSON object a line (``event_type`` and the event's fields), and
prints a one-line JSON summary; other ranks print nothing. The ``byr train`` command is the door
that records events in the ledger and anchors the adapter; this entry is for launchers.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import ConfigError, TrainerError

EVENTS_FILE = "events.jsonl"
_KINDS = {str: "a string", int: "an integer", bool: "true or false", dict: "a mapping"}
_KNOWN = {"base", "recipe", "set", "data", "output", "resume", "max_steps", "device", "cache_dir"}


@dataclass(frozen=True)
class RunFile:
    """A parsed run file."""

    base: str
    recipe: str
    data: Path
    output: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    max_steps: int | None = None
    device: str | None = None
    cache_dir: Path | None = None


def _field(raw: Mapping[str, Any], name: str, kind: type, *, where: str, required: bool) -> Any:
    value = raw.get(name)
    if value is None:
        if required:
            raise ConfigError(f"{where}: field {name!r} is required")
        return None
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{where}: field {name!r} must be {_KINDS[kind]}")
    return value


def read_run_file(path: Path) -> RunFile:
    """Parse and check the run file at ``path``; raises :class:`ConfigError` naming the file and
    the field."""
    import yaml

    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the run file ({type(exc).__name__})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML or JSON{line}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of fields")
    unknown = sorted(str(k) for k in raw if k not in _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    folder = path.parent

    def local(value: str | None) -> Path | None:
        if value is None:
            return None
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else folder / candidate

    recipe = _field(raw, "recipe", str, where=where, required=True)
    if recipe.endswith((".yaml", ".yml")):
        recipe = str(local(recipe))
    base = _field(raw, "base", str, where=where, required=False) or "tiny"
    if "/" in base or base.startswith("."):
        base = str(local(base))
    data = local(_field(raw, "data", str, where=where, required=True))
    output = local(_field(raw, "output", str, where=where, required=True))
    assert data is not None and output is not None
    return RunFile(
        base=base,
        recipe=recipe,
        data=data,
        output=output,
        overrides=dict(_field(raw, "set", dict, where=where, required=False) or {}),
        resume=bool(_field(raw, "resume", bool, where=where, required=False)),
        max_steps=_field(raw, "max_steps", int, where=where, required=False),
        device=_field(raw, "device", str, where=where, required=False),
        cache_dir=local(_field(raw, "cache_dir", str, where=where, required=False)),
    )


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; raises :class:`ConfigError` naming the file and line."""
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the records ({type(exc).__name__})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{path}, line {number}: not a JSON object") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path}, line {number}: not a JSON object")
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    """Run the training the run file describes; 0 on success, 1 on a trainer error, 2 on
    usage."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in {"-h", "--help"}:
        print(__doc__, file=sys.stderr)
        return 2
    from ledger.events import DomainEvent
    from trainer.errors import TrainingStopped
    from trainer.job import run_training
    from trainer.recipes import load_recipe

    try:
        run = read_run_file(Path(args[0]))
        records = read_records(run.data)
        recipe = load_recipe(run.recipe, run.overrides)
        events = run.output / EVENTS_FILE

        def record(event: DomainEvent) -> None:
            line = json.dumps({"event_type": event.event_type, **event.model_dump(mode="json")})
            events.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)

        result = run_training(
            base=run.base,
            recipe=recipe,
            dataset=records,
            output_dir=run.output,
            resume=run.resume,
            on_event=record,
            max_steps=run.max_steps,
            progress=False,
            device=run.device,
            cache_dir=run.cache_dir,
        )
    except TrainingStopped as stopped:
        print(json.dumps({"status": "stopped", "step": stopped.step}), file=sys.stderr)
        return 1
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        summary = {
            "status": "completed",
            "run_id": result.run_id,
            "adapter_dir": str(result.adapter_dir),
            "steps": len(result.losses),
            "final_loss": result.final_loss,
            "validation_loss": result.validation_loss,
            "adapter_hash": result.manifest.adapter.hash,
        }
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
