"""MoE-LoRA routed by discipline: each record trains only its discipline's expert, every expert
reloads with plain peft, unknown disciplines get the documented fallback; compared with plain
LoRA on the same data and steps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from ledger.vocabulary import Discipline
from tests.trainer.conftest import quick_recipe, sample_records
from trainer.data import tokenize_records
from trainer.errors import ConfigError, DatasetError
from trainer.job import TrainingResult, run_training
from trainer.loading import load_trained
from trainer.manifest import adapter_hash
from trainer.methods import DisciplineMoeLoraConfig, method_spec
from trainer.methods.moe_lora_discipline.builder import DisciplineMoeLoraRuntime
from trainer.methods.moe_lora_discipline.inference import LAYOUT_FILE, UNIFORM_EXPERT
from trainer.models import resolve_base

PROBE = ["什么是信道容量？ What is channel capacity?", "TCP handshake: SYN, SYN-ACK, ACK"]
EXPERTS = {"method_config.targets": "mlp", "training.batch_size": 8}
TRAINED = {"information_theory", "computer_networks", "signal_processing", "network_security"}
"""The disciplines of :func:`sample_records`; communication_principles and data_science have
no records."""


def probe_logits(model: Any, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(PROBE, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch, use_cache=False).logits.float()


def train(method: str, output_dir: Path, cache: Path, **overrides: Any) -> TrainingResult:
    return run_training(
        base="tiny",
        recipe=quick_recipe(method, **{**EXPERTS, **overrides}),
        dataset=sample_records(12),
        output_dir=output_dir,
        max_steps=3,
        progress=False,
        cache_dir=cache,
        return_model=True,
    )


def build_runtime(cache: Path, **options: Any) -> DisciplineMoeLoraRuntime:
    """The runtime a run with seed 42 starts from (the builder draws from the seeded RNG)."""
    torch.manual_seed(42)
    config = DisciplineMoeLoraConfig(targets="mlp", **options)  # type: ignore[arg-type]
    runtime = method_spec("moe_lora_discipline").load_builder()(
        config, base=resolve_base("tiny", cache_dir=cache), total_steps=1, device="cpu"
    )
    assert isinstance(runtime, DisciplineMoeLoraRuntime)
    return runtime


def expert_weights(runtime: DisciplineMoeLoraRuntime, expert: str) -> dict[str, torch.Tensor]:
    """The expert's LoRA weights keyed as in its saved ``adapter_model.safetensors``."""
    suffix = f".{expert}.weight"
    return {
        name.removesuffix(suffix) + ".weight": param.detach().clone()
        for name, param in runtime.model.named_parameters()
        if name.endswith(suffix)
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, TrainingResult, Path]:
    """A discipline-experts run and a plain LoRA run on the same records, recipe and steps."""
    root = tmp_path_factory.mktemp("discipline-experts")
    cache = root / "cache"
    experts = train("moe_lora_discipline", root / "experts", cache)
    lora = train("lora", root / "lora", cache)
    return experts, lora, cache


def test_both_runs_complete_with_finite_falling_losses(
    runs: tuple[TrainingResult, TrainingResult, Path],
) -> None:
    experts, lora, _ = runs
    for result in (experts, lora):
        assert len(result.losses) == 3
        assert all(math.isfinite(loss) for loss in result.losses)
        assert result.final_loss < result.losses[0]
        assert result.validation_loss is not None and math.isfinite(result.validation_loss)
    assert experts.manifest.dataset.train_record_ids == lora.manifest.dataset.train_record_ids


def test_an_expert_without_records_keeps_its_initial_weights(
    runs: tuple[TrainingResult, TrainingResult, Path],
) -> None:
    experts, _, cache = runs
    initial = build_runtime(cache)
    for discipline in Discipline:
        saved = load_file(str(experts.adapter_dir / discipline.value / "adapter_model.safetensors"))
        start = expert_weights(initial, discipline.value)
        assert saved.keys() == start.keys() and saved
        unchanged = all(torch.equal(saved[k], start[k]) for k in saved)
        assert unchanged == (discipline.value not in TRAINED), discipline


def test_a_route_gives_gradients_to_its_discipline_expert_only(model_cache: Path) -> None:
    runtime = build_runtime(model_cache, shared_expert=True)
    examples = tokenize_records(
        sample_records(8), runtime.tokenizer, max_seq_length=64, prompt_format="auto"
    )
    routes = runtime.route(examples)
    assert [r.examples[0].discipline for r in routes] == [
        "network_security",
        "information_theory",
        "signal_processing",
        "computer_networks",
    ]
    from trainer.data import collate

    route = routes[1]
    runtime.model.train()
    with route.context():
        runtime.model(**collate(route.examples, pad_token_id=0)).loss.backward()
    with_grad = {
        name.rsplit(".", 2)[-2]
        for name, param in runtime.trainable_parameters()
        if param.grad is not None and bool(param.grad.abs().sum() > 0)
    }
    assert with_grad == {"information_theory", "shared"}


def test_records_without_a_discipline_need_the_shared_expert(model_cache: Path) -> None:
    records = sample_records(2)
    records[1] = {**records[1], "discipline": ""}
    for shared in (True, False):
        runtime = build_runtime(model_cache, shared_expert=shared)
        examples = tokenize_records(
            records, runtime.tokenizer, max_seq_length=64, prompt_format="auto"
        )
        if shared:
            assert [len(r.examples) for r in runtime.route(examples)] == [1, 1]
        else:
            with pytest.raises(DatasetError, match="shared_expert"):
                runtime.route(examples)


def test_every_expert_reloads_with_plain_peft_bit_exactly(
    runs: tuple[TrainingResult, TrainingResult, Path],
) -> None:
    experts, _, cache = runs
    folder = experts.adapter_dir
    assert experts.manifest.adapter.hash == adapter_hash(folder)
    assert LAYOUT_FILE in experts.manifest.adapter.files
    base_path = resolve_base("tiny", cache_dir=cache).path
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    trained = experts.model
    for discipline in sorted(TRAINED):
        trained.base_model.set_adapter(discipline, inference_mode=True)
        expected = probe_logits(trained, tokenizer)
        base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
        plain = PeftModel.from_pretrained(base, str(folder / discipline)).eval()
        assert torch.equal(probe_logits(plain, tokenizer), expected), discipline
        routed, _ = load_trained(folder, cache_dir=cache, discipline=discipline)
        assert torch.equal(probe_logits(routed, tokenizer), expected), discipline


def test_an_unknown_discipline_gets_the_mean_of_the_experts(
    runs: tuple[TrainingResult, TrainingResult, Path],
) -> None:
    experts, _, cache = runs
    model, _ = load_trained(experts.adapter_dir, cache_dir=cache, discipline="astronomy")
    layer = model.base_model.model.model.layers[0].mlp.down_proj
    assert layer.active_adapters == [UNIFORM_EXPERT]

    def delta(name: str) -> torch.Tensor:
        update = layer.lora_B[name].weight @ layer.lora_A[name].weight
        return update * layer.scaling[name]

    mean = sum(delta(d.value) for d in Discipline) / len(Discipline)
    torch.testing.assert_close(delta(UNIFORM_EXPERT), mean, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fallback": "router"}, "fallback must be one of"),
        ({"fallback": "shared"}, "needs shared_expert"),
        ({"shared_expert": "yes"}, "shared_expert must be true or false"),
        ({"rank": 4}, "rank must be between"),
    ],
)
def test_config_rejects_bad_combinations(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DisciplineMoeLoraConfig(**options)
