"""The evaluation runner on discipline experts: each item is scored by the expert of its
discipline (as that expert loaded alone with plain peft scores it), items without a discipline by
the fallback, next to a plain LoRA run of the same data in the per-discipline results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.conftest import quick_recipe, sample_records
from tests.trainer.eval.adapters import small_plan, train_tiny_adapter
from trainer.eval.cache import EvalCache
from trainer.eval.likelihood import reference_log_likelihood
from trainer.eval.runner import run_evaluation
from trainer.eval.switcher import ModelUnderTest
from trainer.generate import prompt_text
from trainer.job import run_training
from trainer.loading import load_trained
from trainer.models import resolve_base


def test_each_item_is_scored_by_the_expert_of_its_discipline(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cache = tmp_path / "models"
    records = sample_records(12)
    lora = train_tiny_adapter(tmp_path / "lora", records=records, cache_dir=cache)
    experts = run_training(
        base="tiny",
        recipe=quick_recipe("moe_lora_discipline", **{"method_config.targets": "mlp"}),
        dataset=records,
        output_dir=tmp_path / "experts",
        max_steps=4,
        progress=False,
        cache_dir=cache,
    ).adapter_dir
    plan = small_plan()
    with EvalCache(tmp_path / "eval-cache") as eval_cache:
        result = run_evaluation(
            models=[ModelUnderTest("lora", lora), ModelUnderTest("experts", experts)],
            plan=plan,
            base="tiny",
            cache=eval_cache,
            model_cache_dir=cache,
        )
    assert result.stats["loads"] == {"base": 1, "adapter": 1, "standalone": 1}
    by_name = {m.model.name: m for m in result.models}
    scored = by_name["experts"]
    assert (
        {i.discipline for i in scored.items}
        == {i.discipline for i in by_name["lora"].items}
        == {"information_theory", "computer_networks"}
    )

    base_path = resolve_base("tiny", cache_dir=cache).path
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    for item in plan.items:
        base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
        alone = PeftModel.from_pretrained(base, str(experts / item.discipline.value)).eval()
        prompt = prompt_text(tokenizer, [{"role": "user", "content": item.question()}])
        expected = reference_log_likelihood(
            alone, tokenizer, prompt=prompt, reference=item.reference
        )
        got = next(i for i in scored.items if i.item_id == item.id)
        assert got.log_likelihood == pytest.approx(expected.log_likelihood, abs=1e-5)

    fallback, _ = load_trained(experts, cache_dir=cache)
    control = plan.control_items[0]
    prompt = prompt_text(tokenizer, [{"role": "user", "content": control.question()}])
    expected = reference_log_likelihood(
        fallback, tokenizer, prompt=prompt, reference=control.reference
    )
    got = next(i for i in scored.control if i.item_id == control.id)
    assert got.log_likelihood == pytest.approx(expected.log_likelihood, abs=1e-5)
