"""Every method trains a few steps on a tiny model, saves, and reloads with plain peft/transformers
to the same logits; method configs reject bad combinations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from tests.trainer.conftest import quick_recipe
from trainer.errors import ConfigError
from trainer.job import TrainingResult, run_training
from trainer.manifest import adapter_hash
from trainer.methods import (
    REGISTRY,
    AdaLoraConfig,
    LoraConfig,
    Method,
    MoeLoraConfig,
    PartialConfig,
    QLoraConfig,
    TargetScope,
    method_config,
)
from trainer.models import resolve_base

PROBE = ["什么是信道容量？ What is channel capacity?", "TCP handshake: SYN, SYN-ACK, ACK"]


def probe_logits(model: Any, tokenizer: Any) -> torch.Tensor:
    """Logits of a fixed bilingual batch, on the CPU."""
    device = next(model.parameters()).device
    batch = tokenizer(PROBE, return_tensors="pt", padding=True).to(device)
    with torch.no_grad():
        return model(**batch, use_cache=False).logits.float().cpu()


def plain_reload(result: TrainingResult, base_path: Path, device: str = "cpu") -> Any:
    """The trained output loaded the way a user without this package would load it."""
    adapter_dir = str(result.adapter_dir)
    if result.manifest.adapter.format == "transformers":
        model: Any = AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=torch.float32)
        return model.to(device).eval()
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if result.manifest.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.float32,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = device
    if result.manifest.method == "moe_lora":
        kwargs["use_cache"] = False
    base: Any = AutoModelForCausalLM.from_pretrained(str(base_path), **kwargs)
    if "device_map" not in kwargs:
        base.to(device)
    return PeftModel.from_pretrained(base, adapter_dir, torch_device=device).eval()


CASES = [
    ("lora", "tiny", {}),
    ("lora", "tiny-gpt2", {"method_config.targets": "attention_mlp"}),
    ("lora", "tiny-bloom", {}),
    ("lora", "tiny-qwen2_moe", {"method_config.targets": "all", "method_config.dropout": 0.0}),
    ("adalora", "tiny", {}),
    ("qlora", "tiny", {}),
    ("moe_lora", "tiny", {"method_config.targets": "mlp", "method_config.num_experts": 3}),
    ("moe_lora", "tiny", {"method_config.targets": "mlp", "method_config.top_k": 1}),
    ("full", "tiny", {}),
    ("partial", "tiny", {}),
]


@pytest.mark.parametrize(("method", "base", "overrides"), CASES)
def test_method_trains_saves_and_reloads_with_plain_libraries(
    method: str, base: str, overrides: dict[str, Any], tmp_path: Path, model_cache: Path
) -> None:
    from tests.trainer.conftest import sample_records

    # One batch holds the whole training split, so every step sees the same data and the loss
    # must go down.
    recipe = quick_recipe(method, **{"training.batch_size": 8, **overrides})
    result = run_training(
        base=base,
        recipe=recipe,
        dataset=sample_records(8),
        output_dir=tmp_path / "run",
        max_steps=4,
        progress=False,
        cache_dir=model_cache,
        return_model=True,
    )
    assert len(result.losses) == 4
    assert result.final_loss < result.losses[0]
    assert result.manifest.method == method
    assert result.manifest.adapter.hash == adapter_hash(result.adapter_dir)
    expected_format = REGISTRY[Method(method)].output_format
    assert result.manifest.adapter.format == expected_format
    if expected_format == "peft":
        assert (result.adapter_dir / "adapter_config.json").is_file()
        assert (result.adapter_dir / "adapter_model.safetensors").is_file()

    base_path = resolve_base(base, cache_dir=model_cache).path
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    trained = probe_logits(result.model, tokenizer)
    reloaded = probe_logits(plain_reload(result, base_path), tokenizer)
    torch.testing.assert_close(reloaded, trained, rtol=1e-5, atol=1e-5)
    untouched = probe_logits(
        AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32).eval(), tokenizer
    )
    assert not torch.allclose(untouched, trained, atol=1e-4)


def test_moe_lora_output_keeps_its_experts_after_the_folder_moves(
    tmp_path: Path, model_cache: Path
) -> None:
    from tests.trainer.conftest import sample_records
    from trainer.loading import load_trained

    result = run_training(
        base="tiny",
        recipe=quick_recipe("moe_lora", **{"method_config.targets": "mlp"}),
        dataset=sample_records(),
        output_dir=tmp_path / "run",
        max_steps=2,
        progress=False,
        cache_dir=model_cache,
        return_model=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_base("tiny", cache_dir=model_cache).path))
    trained = probe_logits(result.model, tokenizer)
    moved = tmp_path / "moved"
    result.adapter_dir.rename(moved)
    model, _ = load_trained(moved, cache_dir=model_cache)
    torch.testing.assert_close(probe_logits(model, tokenizer), trained, rtol=1e-5, atol=1e-5)


def test_merged_weights_match_the_adapter(tmp_path: Path, model_cache: Path) -> None:
    from tests.trainer.conftest import sample_records

    result = run_training(
        base="tiny",
        recipe=quick_recipe("lora"),
        dataset=sample_records(),
        output_dir=tmp_path / "run",
        max_steps=2,
        progress=False,
        cache_dir=model_cache,
        merge=True,
    )
    merged_dir = result.adapter_dir / "merged"
    assert (merged_dir / "config.json").is_file()
    assert "merged/config.json" not in result.manifest.adapter.files
    base_path = resolve_base("tiny", cache_dir=model_cache).path
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32).eval()
    torch.testing.assert_close(
        probe_logits(merged, tokenizer),
        probe_logits(plain_reload(result, base_path), tokenizer),
        rtol=1e-3,
        atol=1e-3,
    )


def test_merge_is_refused_for_methods_that_cannot_merge(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="merge"):
        run_training(
            base="tiny",
            recipe=quick_recipe("qlora"),
            dataset=[],
            output_dir=tmp_path,
            merge=True,
            progress=False,
        )


def test_alpha_defaults_to_twice_the_rank() -> None:
    assert LoraConfig(rank=16).alpha == 32
    assert LoraConfig(rank=16, alpha=8).alpha == 8
    assert AdaLoraConfig(rank=16).init_rank == 24


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LoraConfig(rank=4), "rank must be between 8 and 64"),
        (lambda: LoraConfig(rank=128), "rank must be between 8 and 64"),
        (lambda: LoraConfig(dropout=0.9), "dropout"),
        (lambda: LoraConfig(alpha=0), "alpha"),
        (lambda: LoraConfig(target_modules=[]), "target_modules"),
        (lambda: QLoraConfig(targets=TargetScope.ALL), "targets=all"),
        (lambda: LoraConfig(targets=TargetScope.ALL, dropout=0.1), "dropout 0"),
        (lambda: QLoraConfig(quant_type="int3"), "quant_type"),
        (lambda: AdaLoraConfig(rank=16, init_rank=8), "init_rank"),
        (lambda: AdaLoraConfig(tinit_fraction=0.6, tfinal_fraction=0.5), "budgeting phase"),
        (lambda: MoeLoraConfig(num_experts=1), "num_experts"),
        (lambda: MoeLoraConfig(num_experts=4, top_k=4), "top_k"),
        (lambda: PartialConfig(freeze_layers="2"), "freeze_layers must be an integer"),
    ],
)
def test_method_configs_reject_bad_combinations(build: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_method_config_from_mapping_names_the_bad_field() -> None:
    with pytest.raises(ConfigError, match=r"method lora: unknown field\(s\) rnak"):
        method_config("lora", {"rnak": 8})
    with pytest.raises(ConfigError, match=r"method lora\.rank: expected an integer"):
        method_config("lora", {"rank": "eight"})
    with pytest.raises(ConfigError, match="unknown method 'dora'"):
        method_config("dora")
    config = method_config("moe_lora", {"targets": "mlp"})
    assert isinstance(config, MoeLoraConfig) and config.targets is TargetScope.MLP


def test_registry_covers_every_method_with_help_text() -> None:
    import dataclasses

    assert set(REGISTRY) == set(Method)
    for spec in REGISTRY.values():
        assert spec.config_cls.method is spec.method
        for field in dataclasses.fields(spec.config_cls):
            assert field.metadata.get("help"), f"{spec.method}.{field.name} has no help text"


@pytest.mark.parametrize(("freeze_layers", "frozen"), [(1, [0]), (-1, [0]), (-2, []), (-5, [])])
def test_partial_freezes_bottom_layers_counted_from_either_end(
    freeze_layers: int, frozen: list[int], model_cache: Path
) -> None:
    from trainer.architecture import find_layers
    from trainer.methods.partial.builder import build

    config = PartialConfig(freeze_layers=freeze_layers, freeze_embeddings=False)
    runtime = build(config, base=resolve_base("tiny", cache_dir=model_cache), total_steps=1)
    _, layers = find_layers(runtime.model)
    assert len(layers) == 2
    trainable = [any(p.requires_grad for p in layer.parameters()) for layer in layers]
    assert trainable == [i not in frozen for i in range(len(layers))]
    assert runtime.describe()["frozen_layers"] == len(frozen)


def test_partial_refuses_to_freeze_every_layer(tmp_path: Path, model_cache: Path) -> None:
    from tests.trainer.conftest import sample_records

    with pytest.raises(ConfigError, match="freeze_layers=2"):
        run_training(
            base="tiny",
            recipe=quick_recipe("partial", **{"method_config.freeze_layers": 2}),
            dataset=sample_records(),
            output_dir=tmp_path,
            progress=False,
            cache_dir=model_cache,
        )
