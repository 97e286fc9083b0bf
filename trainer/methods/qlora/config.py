"""QLoRA: LoRA on a 4-bit (NF4) quantized, frozen base model (Dettmers et al., 2023)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trainer.errors import ConfigError
from trainer.methods.base import AdapterMethodConfig, Method


@dataclass(frozen=True)
class QLoraConfig(AdapterMethodConfig):
    """QLoRA with bitsandbytes 4-bit weights. Runs on CPU (fp32 compute) or CUDA when available."""

    method: ClassVar[Method] = Method.QLORA

    quant_type: str = field(
        default="nf4",
        metadata={"help": "4-bit data type: nf4 (normal float) or fp4."},
    )
    double_quant: bool = field(
        default=True,
        metadata={"help": "Quantize the quantization constants too (saves ~0.4 bit per weight)."},
    )
    compute_dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype of the de-quantized matmuls: float32 (CPU), bfloat16 or float16 (CUDA)."
        },
    )
    gradient_checkpointing: bool = field(
        default=True,
        metadata={"help": "Recompute activations in the backward pass to save memory."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quant_type not in ("nf4", "fp4"):
            raise ConfigError(f"quant_type must be nf4 or fp4, got {self.quant_type!r}")
        if self.compute_dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(
                f"compute_dtype must be float32, bfloat16 or float16, got {self.compute_dtype!r}"
            )
