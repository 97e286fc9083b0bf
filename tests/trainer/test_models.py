"""Tiny models, the tiny tokenizer, base resolution and SmolLM2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainer.errors import ModelResolutionError
from trainer.models import TINY_FAMILIES, build_tiny_model, load_base, resolve_base
from trainer.models.smollm2 import SMOLLM2_FOLDER, gguf_path
from trainer.models.tokenizer import build_tiny_tokenizer


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_tiny_model_is_deterministic_and_runs(family: str) -> None:
    first, tokenizer = build_tiny_model(family, seed=3)
    second, _ = build_tiny_model(family, seed=3)
    other, _ = build_tiny_model(family, seed=4)
    state, same, different = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert any(not torch.equal(state[k], different[k]) for k in state)
    ids = tokenizer("熵 entropy", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = first(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert logits.dtype == torch.float32


def test_tiny_tokenizer_round_trips_chinese_and_english_with_chat_template() -> None:
    tokenizer = build_tiny_tokenizer()
    text = "信道容量 channel capacity = max I(X;Y)"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "什么是熵？"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\n什么是熵？<|im_end|>\n<|im_start|>assistant\n"
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert build_tiny_tokenizer().get_vocab() == tokenizer.get_vocab()


def test_resolve_base_materializes_tiny_models_once(model_cache: Path) -> None:
    ref = resolve_base("tiny-gpt2", cache_dir=model_cache)
    assert (ref.path / "config.json").is_file()
    mtime = (ref.path / "config.json").stat().st_mtime_ns
    again = resolve_base("tiny-gpt2", cache_dir=model_cache)
    assert again.path == ref.path
    assert (ref.path / "config.json").stat().st_mtime_ns == mtime
    assert resolve_base("tiny", cache_dir=model_cache).path.name.startswith("tiny-llama")
    model, tokenizer = load_base(ref)
    built, _ = build_tiny_model("gpt2", seed=0)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in built.state_dict().items())
    assert tokenizer.chat_template


def test_resolve_base_accepts_a_local_folder(model_cache: Path) -> None:
    folder = resolve_base("tiny-qwen2", cache_dir=model_cache).path
    ref = resolve_base(str(folder))
    assert ref.path == folder.resolve()


@pytest.mark.parametrize("name", ["tiny-transformerxl", "no-such-model", "/nonexistent/folder"])
def test_resolve_base_rejects_unknown_names(name: str, model_cache: Path) -> None:
    with pytest.raises(ModelResolutionError):
        resolve_base(name, cache_dir=model_cache)


def test_smollm2_gguf_is_installed() -> None:
    path = gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


@pytest.mark.slow
def test_load_smollm2_converts_once_and_answers_in_english(tmp_path: Path) -> None:
    from trainer.models import load_smollm2

    model: Any
    model, tokenizer = load_smollm2(tmp_path)
    folder = tmp_path / SMOLLM2_FOLDER
    assert (folder / "model.safetensors").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert model.config.num_hidden_layers == 30
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :])
