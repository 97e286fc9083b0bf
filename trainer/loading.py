"""Loading a trained output back for inference, from its folder and manifest alone.

Plain peft works too (see docs/TRAINER.md); this helper also re-creates the quantized base of a
QLoRA run, points a moved MoE-LoRA folder at its own experts and activates the expert of a
discipline in a discipline-experts folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import ModelResolutionError
from trainer.manifest import read_manifest
from trainer.models import BaseModelRef, load_model, load_pretrained, load_tokenizer, resolve_base

if TYPE_CHECKING:
    from torch import nn


def load_trained(
    adapter_dir: Path,
    *,
    base: str | BaseModelRef | None = None,
    cache_dir: Path | None = None,
    device: str | None = None,
    discipline: str | None = None,
) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` of a finished run, in eval mode.

    ``base`` defaults to the base model name recorded in the manifest. For discipline experts
    (``moe_lora_discipline``), the expert of ``discipline`` is active, or the run's fallback when
    it is ``None`` or unknown. Raises :class:`ManifestError` when the folder has no manifest.
    """
    adapter_dir = Path(adapter_dir).resolve()
    manifest = read_manifest(adapter_dir)
    if isinstance(base, BaseModelRef):
        ref = base
    else:
        ref = resolve_base(base or manifest.base_model.name, cache_dir=cache_dir)
    if manifest.adapter.format == "transformers":
        # A whole model: the weights come from the output folder, the tokenizer from the base.
        return load_model(adapter_dir, device=device), load_tokenizer(ref.path)
    from peft import PeftConfig, PeftModel

    quantization = manifest.method_details.get("quantization")
    kwargs: dict[str, Any] = {}
    if quantization:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantization["bnb_4bit_quant_type"],
            bnb_4bit_compute_dtype=getattr(torch, quantization["bnb_4bit_compute_dtype"]),
            bnb_4bit_use_double_quant=quantization["bnb_4bit_use_double_quant"],
        )
    if manifest.adapter.peft_type == "XLORA":
        kwargs["use_cache"] = False
    model, tokenizer = load_pretrained(ref.path, device=device, **kwargs)
    if manifest.method == "moe_lora_discipline":
        from trainer.methods.moe_lora_discipline.inference import load_discipline_experts

        try:
            return load_discipline_experts(model, adapter_dir, discipline=discipline), tokenizer
        except Exception as exc:
            raise ModelResolutionError(f"cannot load the experts in {adapter_dir}: {exc}") from exc
    config = PeftConfig.from_pretrained(str(adapter_dir))
    if manifest.adapter.peft_type == "XLORA":
        # The saved config names the experts by absolute path; follow the folder if it moved.
        config.adapters = {k: str(adapter_dir / "experts" / k) for k in config.adapters}
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), config=config)
    except Exception as exc:
        raise ModelResolutionError(f"cannot load the adapter in {adapter_dir}: {exc}") from exc
    peft_model.eval()
    return peft_model, tokenizer
