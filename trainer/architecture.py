"""Architecture awareness: which modules to adapt, a structural fingerprint, and the base model
hash.

Targets are found by walking the module tree of the decoder layers, not by looking up
``model_type``: any linear layer (``nn.Linear``, GPT-2's ``Conv1D``, bitsandbytes' ``Linear4bit``)
under an attention block is an attention target, any under a feed-forward block is an MLP target,
routers are never targets, and 3-D expert weight tensors of MoE layers are parameter targets. So a
family this module has never seen is handled when it follows the usual naming.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydantic import BaseModel, ConfigDict

from trainer.errors import ModelResolutionError
from trainer.methods.base import TargetScope

if TYPE_CHECKING:
    from torch import nn

_ATTENTION_PART = re.compile(r"attn|attention", re.IGNORECASE)
_MLP_PART = re.compile(r"mlp|feed_forward|ffn|moe|expert", re.IGNORECASE)
_ROUTER_LEAF = re.compile(r"(^|_)(gate|router)$")
_FUSED_QKV = {"c_attn", "query_key_value", "qkv_proj", "Wqkv", "qkv", "W_pack", "qkv_linear"}
_LATENT_KV = re.compile(r"kv_a_proj|kv_b_proj")
_ALIBI_TYPES = {"bloom", "mpt", "baichuan"}


class AttentionKind(StrEnum):
    MHA = "mha"
    """Separate q/k/v projections, as many key/value heads as query heads."""
    GQA = "gqa"
    """Grouped-query: fewer key/value heads than query heads (more than one)."""
    MQA = "mqa"
    """Multi-query: a single key/value head."""
    FUSED = "fused"
    """One projection produces q, k and v together (GPT-2 ``c_attn``, ``query_key_value``)."""
    MLA = "mla"
    """Multi-head latent attention: keys and values through a low-rank latent (DeepSeek-V2/V3)."""


class PositionEncoding(StrEnum):
    ROPE = "rope"
    LEARNED = "learned"
    ALIBI = "alibi"
    NONE = "none"


class ModelFingerprint(BaseModel):
    """Structural summary of a base model, recorded with every training run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str
    architecture: str
    attention: AttentionKind
    position_encoding: PositionEncoding
    layers: int
    hidden_size: int
    vocab_size: int
    parameter_count: int
    is_moe: bool
    num_experts: int


@dataclass(frozen=True)
class TargetPlan:
    """Adapter targets of one model, as module paths relative to a decoder layer.

    Paths such as ``self_attn.q_proj`` or ``mlp.shared_experts.down_proj`` are used as peft
    ``target_modules`` (peft matches them as name suffixes, so ``attn.c_proj`` and ``mlp.c_proj`` of
    GPT-2 stay distinct).
    """

    layers_path: str
    """Dotted path of the decoder layer list, e.g. ``model.layers`` or ``transformer.h``."""
    num_layers: int
    attention: tuple[str, ...]
    mlp: tuple[str, ...]
    expert_parameters: tuple[str, ...]
    """3-D routed-expert weights (``mlp.experts.gate_up_proj``), for peft ``target_parameters``."""

    def modules_for(self, scope: TargetScope) -> list[str]:
        """``target_modules`` for ``scope``; raises :class:`ModelResolutionError` if there are
        none."""
        if scope is TargetScope.ATTENTION:
            found = list(self.attention)
        elif scope is TargetScope.MLP:
            found = list(self.mlp)
        else:
            found = [*self.attention, *self.mlp]
        if not found:
            raise ModelResolutionError(f"no {scope} modules found under {self.layers_path}")
        return found

    def parameters_for(self, scope: TargetScope) -> list[str]:
        """``target_parameters`` for ``scope`` (only :attr:`TargetScope.ALL` reaches routed
        experts)."""
        return list(self.expert_parameters) if scope is TargetScope.ALL else []


def _is_linear(module: nn.Module) -> bool:
    from torch import nn

    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def _out_features(module: nn.Module) -> int:
    out = getattr(module, "out_features", None)
    if out is None:
        out = getattr(module, "nf", None)  # transformers' Conv1D
    return int(out) if out is not None else 0


def find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder layer list: the ``ModuleList`` of same-typed blocks holding the most
    parameters."""
    from torch import nn

    best: tuple[str, nn.ModuleList] | None = None
    best_size = -1
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        if not any(_is_linear(m) for m in module[0].modules()):
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best_size:
            best, best_size = (name, module), size
    if best is None:
        raise ModelResolutionError(f"no decoder layer list found in {type(model).__name__}")
    return best


def _is_adapter_part(part: str) -> bool:
    """Whether a module path component belongs to a peft tuner layer rather than the base model."""
    return part == "base_layer" or part.startswith("lora_") or part == "internal_xlora_classifier"


def _base_modules(root: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``named_modules`` of ``root`` as the base model had them: a peft tuner layer stands for the
    module it wraps (innermost ``base_layer``) and the adapter's own submodules are skipped."""
    from torch import nn

    for path, module in root.named_modules():
        if any(_is_adapter_part(part) for part in path.split(".")):
            continue
        while isinstance(getattr(module, "base_layer", None), nn.Module):
            module = module.base_layer
        yield path, module


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (targets are found on the bare model)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def detect_targets(model: nn.Module) -> TargetPlan:
    """Adapter targets found by inspecting the decoder layers of ``model``."""
    model = _unwrap(model)
    layers_path, layers = find_layers(model)
    attention: dict[str, None] = {}
    mlp: dict[str, None] = {}
    experts: dict[str, None] = {}
    for layer in layers:
        for path, module in _base_modules(layer):
            parts = path.split(".") if path else []
            for pname, param in module.named_parameters(recurse=False):
                if param.dim() == 3 and any(_MLP_PART.search(p) for p in parts):
                    experts[f"{path}.{pname}"] = None
            if not parts or not _is_linear(module) or _ROUTER_LEAF.search(parts[-1]):
                continue
            parents = parts[:-1]
            if any(_ATTENTION_PART.search(p) for p in parents):
                attention[path] = None
            elif any(_MLP_PART.search(p) for p in parents):
                mlp[path] = None
    return TargetPlan(
        layers_path=layers_path,
        num_layers=len(layers),
        attention=tuple(attention),
        mlp=tuple(mlp),
        expert_parameters=tuple(experts),
    )


def _config_int(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _attention_kind(layer: nn.Module, config: Any) -> AttentionKind:
    linears = {path.split(".")[-1]: m for path, m in _base_modules(layer) if path and _is_linear(m)}
    names = set(linears)
    if names & _FUSED_QKV:
        return AttentionKind.FUSED
    if any(_LATENT_KV.search(n) for n in names):
        return AttentionKind.MLA
    q = linears.get("q_proj") or linears.get("query") or linears.get("wq")
    k = linears.get("k_proj") or linears.get("key") or linears.get("wk")
    if q is None or k is None:
        return AttentionKind.MHA
    q_out, k_out = _out_features(q), _out_features(k)
    if k_out >= q_out:
        return AttentionKind.MHA
    heads = _config_int(config, "num_attention_heads", "n_head")
    if heads and k_out * heads == q_out:
        return AttentionKind.MQA
    return AttentionKind.GQA


def _input_embeddings(model: nn.Module) -> Any:
    getter = getattr(model, "get_input_embeddings", None)
    return getter() if callable(getter) else None


def _position_encoding(model: nn.Module, config: Any) -> PositionEncoding:
    from torch import nn

    if getattr(config, "alibi", False) or getattr(config, "model_type", "") in _ALIBI_TYPES:
        return PositionEncoding.ALIBI
    if any("Rotary" in type(m).__name__ for m in model.modules()):
        return PositionEncoding.ROPE
    token_embeddings = _input_embeddings(model)
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if (
            isinstance(module, nn.Embedding)
            and module is not token_embeddings
            and ("pos" in leaf or leaf == "wpe")
        ):
            return PositionEncoding.LEARNED
    return PositionEncoding.NONE


def _num_experts(layers: nn.ModuleList, config: Any) -> int:
    from torch import nn

    for layer in layers:
        for path, module in _base_modules(layer):
            leaf = path.rsplit(".", 1)[-1]
            if leaf != "experts":
                continue
            if isinstance(module, nn.ModuleList):
                return len(module)
            for param in module.parameters(recurse=False):
                if param.dim() == 3:
                    return int(param.shape[0])
    return _config_int(config, "n_routed_experts", "num_experts", "num_local_experts") or 0


def parameter_count(model: nn.Module) -> int:
    """Number of base model parameters (adapter parameters excluded), counting 4-bit packed weights
    by their unpacked shape."""
    total = 0
    for name, param in model.named_parameters():
        if any(_is_adapter_part(p) and p != "base_layer" for p in name.split(".")):
            continue
        quant_state = getattr(param, "quant_state", None)
        shape = getattr(quant_state, "shape", None)
        if shape is not None:
            count = 1
            for dim in shape:
                count *= int(dim)
            total += count
        else:
            total += param.numel()
    return total


def fingerprint(model: nn.Module) -> ModelFingerprint:
    """The structural fingerprint of ``model`` (a transformers model, possibly peft-wrapped)."""
    model = _unwrap(model)
    config = getattr(model, "config", None)
    _, layers = find_layers(model)
    embeddings = _input_embeddings(model)
    vocab = _config_int(config, "vocab_size") or int(getattr(embeddings, "num_embeddings", 0))
    hidden = _config_int(config, "hidden_size", "n_embd", "d_model") or int(
        getattr(embeddings, "embedding_dim", 0)
    )
    experts = _num_experts(layers, config)
    architectures = getattr(config, "architectures", None) or [type(model).__name__]
    return ModelFingerprint(
        family=str(getattr(config, "model_type", type(model).__name__)),
        architecture=str(architectures[0]),
        attention=_attention_kind(layers[0], config),
        position_encoding=_position_encoding(model, config),
        layers=len(layers),
        hidden_size=hidden,
        vocab_size=vocab,
        parameter_count=parameter_count(model),
        is_moe=experts > 0,
        num_experts=experts,
    )


_HASH_CHUNK = 1 << 24


def base_model_hash(folder: Path) -> str:
    """sha256 (hex) over the tensors stored in the ``*.safetensors`` files of a model folder.

    Tensors are taken in ascending order of their names (byte order of UTF-8); for each one the hash
    is fed ``name``, ``0x00``, ``dtype`` (safetensors code such as ``F32``), ``0x00``, the shape as
    comma-separated decimals, ``0x00``, the data length as 8 bytes little-endian, then the raw
    little-endian data bytes exactly as stored. File names, sharding, header order and metadata do
    not matter; a tied output head stored once is hashed once. The files are read directly (no
    torch), so a 135M fp32 model hashes in about a second.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelResolutionError(f"no *.safetensors weights in {folder}")
    entries: list[tuple[str, Path, int, dict[str, Any]]] = []
    for file in files:
        with file.open("rb") as head:
            (header_len,) = struct.unpack("<Q", head.read(8))
            header = json.loads(head.read(header_len))
        for name, info in header.items():
            if name != "__metadata__":
                entries.append((name, file, 8 + header_len, info))
    entries.sort(key=lambda e: e[0].encode("utf-8"))
    digest = hashlib.sha256()
    handles: dict[Path, BinaryIO] = {}
    try:
        for name, file, data_start, info in entries:
            begin, end = info["data_offsets"]
            shape = ",".join(str(d) for d in info["shape"])
            digest.update(f"{name}\0{info['dtype']}\0{shape}\0".encode())
            digest.update(struct.pack("<Q", end - begin))
            if file not in handles:
                handles[file] = file.open("rb")
            reader = handles[file]
            reader.seek(data_start + begin)
            remaining = end - begin
            while remaining:
                chunk = reader.read(min(remaining, _HASH_CHUNK))
                if not chunk:
                    raise ModelResolutionError(f"{file} is truncated at tensor {name}")
                digest.update(chunk)
                remaining -= len(chunk)
    finally:
        for reader in handles.values():
            reader.close()
    return digest.hexdigest()
