"""Architecture-aware targeting, fingerprints and the base model hash on several families."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

from trainer.architecture import (
    AttentionKind,
    PositionEncoding,
    base_model_hash,
    detect_targets,
    fingerprint,
)
from trainer.errors import ModelResolutionError
from trainer.methods import TargetScope
from trainer.methods.runtime import effective_targets
from trainer.models import build_tiny_model, resolve_base

# family -> (attention targets, mlp targets, expert parameters, attention kind, positions, experts)
EXPECTED = {
    "llama": (
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"],
        ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
        [],
        AttentionKind.GQA,
        PositionEncoding.ROPE,
        0,
    ),
    "mistral": (
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"],
        ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
        [],
        AttentionKind.MQA,
        PositionEncoding.ROPE,
        0,
    ),
    "gpt2": (
        ["attn.c_attn", "attn.c_proj"],
        ["mlp.c_fc", "mlp.c_proj"],
        [],
        AttentionKind.FUSED,
        PositionEncoding.LEARNED,
        0,
    ),
    "glm": (
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"],
        ["mlp.gate_up_proj", "mlp.down_proj"],
        [],
        AttentionKind.GQA,
        PositionEncoding.ROPE,
        0,
    ),
    "bloom": (
        ["self_attention.query_key_value", "self_attention.dense"],
        ["mlp.dense_h_to_4h", "mlp.dense_4h_to_h"],
        [],
        AttentionKind.FUSED,
        PositionEncoding.ALIBI,
        0,
    ),
    "deepseek_v3": (
        [
            "self_attn.q_proj",
            "self_attn.kv_a_proj_with_mqa",
            "self_attn.kv_b_proj",
            "self_attn.o_proj",
        ],
        [
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
            "mlp.shared_experts.gate_proj",
            "mlp.shared_experts.up_proj",
            "mlp.shared_experts.down_proj",
        ],
        ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
        AttentionKind.MLA,
        PositionEncoding.ROPE,
        4,
    ),
    "qwen2_moe": (
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"],
        ["mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj", "mlp.shared_expert.down_proj"],
        ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
        AttentionKind.GQA,
        PositionEncoding.ROPE,
        4,
    ),
}


PEFT_REMAPS_MLP = {"deepseek_v3"}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_targets_and_fingerprint_follow_the_module_tree(family: str) -> None:
    attention, mlp, experts, kind, positions, num_experts = EXPECTED[family]
    model, tokenizer = build_tiny_model(family, seed=0)
    plan = detect_targets(model)
    assert list(plan.attention) == attention
    assert list(plan.mlp) == mlp
    assert list(plan.expert_parameters) == experts
    assert plan.num_layers == 2
    print_ = fingerprint(model)
    assert print_.family == family
    assert print_.attention is kind
    assert print_.position_encoding is positions
    assert (print_.layers, print_.hidden_size, print_.vocab_size) == (2, 64, len(tokenizer))
    assert print_.parameter_count == sum(p.numel() for p in model.parameters())
    assert print_.is_moe is (num_experts > 0)
    assert print_.num_experts == num_experts


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_detected_targets_are_accepted_by_peft(family: str) -> None:
    model, _ = build_tiny_model(family, seed=0)
    plan = detect_targets(model)
    base_print = fingerprint(model)
    scope = TargetScope.ALL if plan.expert_parameters else TargetScope.ATTENTION_MLP
    config = LoraConfig(
        r=8,
        target_modules=plan.modules_for(scope),
        target_parameters=plan.parameters_for(scope) or None,
    )
    peft_model = get_peft_model(model, config)
    effective = effective_targets(peft_model.peft_config["default"])
    adapted = {n.split(".lora_A")[0] for n, _ in peft_model.named_parameters() if ".lora_A." in n}
    for target in plan.attention:
        assert target in effective["target_modules"]
    for target in effective["target_modules"]:
        assert any(name.endswith("." + target) for name in adapted), target
    experts = [name for name in adapted if ".mlp.experts" in name]
    assert bool(experts) is bool(plan.expert_parameters)
    if family in PEFT_REMAPS_MLP:
        # peft 0.21 reads gate/up/down_proj targets of these families as fused routed experts.
        assert not set(plan.mlp) & set(effective["target_modules"])
    else:
        assert set(plan.mlp) <= set(effective["target_modules"])
    # Detection sees through the adapters: plan and fingerprint are those of the base model.
    assert detect_targets(peft_model) == plan
    assert fingerprint(peft_model) == base_print


def test_mlp_scope_without_dense_mlp_is_an_error() -> None:
    model, _ = build_tiny_model("mixtral", seed=0)
    plan = detect_targets(model)
    assert plan.mlp == ()
    with pytest.raises(ModelResolutionError, match="no mlp modules"):
        plan.modules_for(TargetScope.MLP)


def test_fingerprint_counts_4bit_weights_by_their_real_shape(model_cache: Path) -> None:
    from transformers import BitsAndBytesConfig

    from trainer.models import load_model

    path = resolve_base("tiny-llama", cache_dir=model_cache).path
    full = fingerprint(load_model(path))
    quantized = load_model(
        path,
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32
        ),
    )
    assert fingerprint(quantized) == full


def test_base_model_hash_covers_weights_not_file_layout(tmp_path: Path, model_cache: Path) -> None:
    path = resolve_base("tiny-llama", cache_dir=model_cache).path
    digest = base_model_hash(path)
    assert len(digest) == 64
    assert base_model_hash(path) == digest

    model, _ = build_tiny_model("llama", seed=0)
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="100KB")
    assert len(list(sharded.glob("*.safetensors"))) > 1
    assert base_model_hash(sharded) == digest

    changed = tmp_path / "changed"
    changed.mkdir()
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    state["model.norm.weight"][0] += 1e-3
    save_file(state, str(changed / "model.safetensors"))
    assert base_model_hash(changed) != digest


def test_base_model_hash_needs_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError):
        base_model_hash(tmp_path)
