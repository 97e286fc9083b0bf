"""Training on a CUDA GPU (skipped where none is visible)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from tests.trainer.conftest import quick_recipe, sample_records
from tests.trainer.test_methods import plain_reload, probe_logits
from trainer.job import run_training
from trainer.models import resolve_base

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("method", ["lora", "qlora", "moe_lora"])
def test_training_runs_on_the_gpu_and_reloads(
    method: str, tmp_path: Path, model_cache: Path
) -> None:
    result = run_training(
        base="tiny",
        recipe=quick_recipe(method, **{"training.batch_size": 8}),
        dataset=sample_records(8),
        output_dir=tmp_path / "run",
        max_steps=4,
        progress=False,
        cache_dir=model_cache,
        return_model=True,
    )
    assert result.manifest.method_details["device"] == "cuda"
    assert result.final_loss < result.losses[0]
    assert result.manifest.metrics["peak_memory_mb"] > 0
    base_path = resolve_base("tiny", cache_dir=model_cache).path
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    trained = probe_logits(result.model, tokenizer)
    reloaded = probe_logits(plain_reload(result, base_path, device="cuda"), tokenizer)
    torch.testing.assert_close(reloaded, trained, rtol=1e-4, atol=1e-4)
