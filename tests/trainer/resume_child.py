"""Child process for the resume test: trains, reports its first checkpoint, then waits to be killed.

Usage: ``python -m tests.trainer.resume_child OUTPUT_DIR CACHE_DIR STOP_STEP``
"""

from __future__ import annotations

import sys
from pathlib import Path

from ledger.events import CheckpointSaved, DomainEvent
from tests.trainer.conftest import quick_recipe, sample_records
from trainer.job import run_training

RESUME_RECIPE_OVERRIDES = {"training.checkpoint_every": 2, "method_config.dropout": 0.1}
RESUME_STEPS = 8


def main() -> None:
    output_dir, cache_dir, stop_step = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

    def report(event: DomainEvent) -> None:
        if isinstance(event, CheckpointSaved) and event.step == stop_step:
            print(f"CHECKPOINT {event.step}", flush=True)
            sys.stdin.read()  # block until the parent kills this process

    run_training(
        base="tiny",
        recipe=quick_recipe("lora", **RESUME_RECIPE_OVERRIDES),
        dataset=sample_records(),
        output_dir=output_dir,
        max_steps=RESUME_STEPS,
        on_event=report,
        progress=False,
        cache_dir=cache_dir,
    )


if __name__ == "__main__":
    main()
