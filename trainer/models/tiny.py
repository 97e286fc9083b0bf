"""Tiny random causal LMs built in code, one per architecture family, for fast tests.

Each keeps the module naming and structure of its family (fused ``c_attn`` in GPT-2, fused
``query_key_value`` in the BLOOM/ChatGLM naming, multi-head latent attention and shared experts in
DeepSeek-V3, ...) at hidden size 64 and 2 layers, so targeting and training code sees what it would
see on a real checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainer.errors import ModelResolutionError
from trainer.models.tokenizer import build_tiny_tokenizer

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

HIDDEN = 64
LAYERS = 2
HEADS = 4
MAX_POSITIONS = 512

_SPECIAL_IDS: dict[str, Any] = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def _llama(vocab: int) -> PretrainedConfig:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=2, max_position_embeddings=MAX_POSITIONS,
        **_SPECIAL_IDS,
    )  # fmt: skip


def _qwen2(vocab: int) -> PretrainedConfig:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=2, max_position_embeddings=MAX_POSITIONS,
        **_SPECIAL_IDS,
    )  # fmt: skip


def _mistral(vocab: int) -> PretrainedConfig:
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=1, max_position_embeddings=MAX_POSITIONS,
        sliding_window=None, **_SPECIAL_IDS,
    )  # fmt: skip


def _gpt2(vocab: int) -> PretrainedConfig:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=MAX_POSITIONS,
        **_SPECIAL_IDS,
    )  # fmt: skip


def _glm(vocab: int) -> PretrainedConfig:
    from transformers import GlmConfig

    return GlmConfig(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=MAX_POSITIONS, **_SPECIAL_IDS,
    )  # fmt: skip


def _bloom(vocab: int) -> PretrainedConfig:
    from transformers import BloomConfig

    return BloomConfig(
        vocab_size=vocab, hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS, **_SPECIAL_IDS
    )


def _deepseek_v3(vocab: int) -> PretrainedConfig:
    from transformers import DeepseekV3Config

    return DeepseekV3Config(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=128, moe_intermediate_size=32,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
        n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
        q_lora_rank=None, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
        n_group=1, topk_group=1, max_position_embeddings=MAX_POSITIONS, **_SPECIAL_IDS,
    )  # fmt: skip


def _qwen2_moe(vocab: int) -> PretrainedConfig:
    from transformers import Qwen2MoeConfig

    return Qwen2MoeConfig(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=128, moe_intermediate_size=32,
        shared_expert_intermediate_size=64, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
        max_position_embeddings=MAX_POSITIONS, **_SPECIAL_IDS,
    )  # fmt: skip


def _mixtral(vocab: int) -> PretrainedConfig:
    from transformers import MixtralConfig

    return MixtralConfig(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=2, num_local_experts=4,
        num_experts_per_tok=2, max_position_embeddings=MAX_POSITIONS, **_SPECIAL_IDS,
    )  # fmt: skip


TINY_FAMILIES: dict[str, Callable[[int], Any]] = {
    "llama": _llama,
    "qwen2": _qwen2,
    "mistral": _mistral,
    "gpt2": _gpt2,
    "glm": _glm,
    "bloom": _bloom,
    "deepseek_v3": _deepseek_v3,
    "qwen2_moe": _qwen2_moe,
    "mixtral": _mixtral,
}
"""Family name -> tiny config factory. ``bloom`` carries the ChatGLM-style naming
(``query_key_value``, ``dense``, ``dense_h_to_4h``, ``dense_4h_to_h``); ``glm`` is transformers' GLM
(separate q/k/v, fused ``gate_up_proj``)."""


def normalize_family(family: str) -> str:
    """``family`` with hyphens read as underscores (``deepseek-v3`` -> ``deepseek_v3``)."""
    return family.strip().lower().replace("-", "_")


def build_tiny_model(
    family: str = "llama", *, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tiny random fp32 model of ``family`` and the matching tiny tokenizer.

    The same ``family`` and ``seed`` give bit-identical weights; the global torch RNG is left
    untouched. Raises :class:`ModelResolutionError` for an unknown family.
    """
    import torch
    from transformers import AutoModelForCausalLM

    name = normalize_family(family)
    factory = TINY_FAMILIES.get(name)
    if factory is None:
        raise ModelResolutionError(
            f"unknown tiny model family {family!r}; known: {', '.join(TINY_FAMILIES)}"
        )
    tokenizer = build_tiny_tokenizer()
    config = factory(len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    return model, tokenizer
