"""Generation with a trained adapter: plain peft on its base, the base's chat template, streamed
piece by piece through TextIteratorStreamer; and ``byr chat --prompt`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.cli import byr
from tests.homes import initialized_settings
from tests.trainer.conftest import quick_recipe, sample_records
from trainer.errors import ConfigError
from trainer.generate import GenerationSettings, load_generator, prompt_text, stream_generate
from trainer.job import run_training


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(adapter_dir, model_cache)`` of a short LoRA run on the tiny model."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen")
    result = run_training(
        base="tiny",
        recipe=quick_recipe("lora"),
        dataset=sample_records(12),
        output_dir=root / "run",
        max_steps=4,
        progress=False,
        cache_dir=root / "models",
    )
    return result.adapter_dir, root / "models"


def test_the_adapter_streams_its_answer_piece_by_piece(adapter: tuple[Path, Path]) -> None:
    adapter_dir, cache = adapter
    model, tokenizer = load_generator(adapter_dir=adapter_dir, cache_dir=cache)
    assert type(model).__name__.startswith("Peft")
    messages = [{"role": "user", "content": "What is Shannon entropy?"}]
    settings = GenerationSettings(max_new_tokens=10)
    stream = stream_generate(model, tokenizer, messages=messages, settings=settings)
    pieces = list(stream)
    assert pieces and all(isinstance(p, str) and p for p in pieces)
    assert 1 <= stream.completion_tokens <= 10
    assert stream.prompt_tokens == len(tokenizer(prompt_text(tokenizer, messages))["input_ids"])
    # greedy decoding is the model's own argmax continuation, as plain generate gives it
    encoded = tokenizer(prompt_text(tokenizer, messages), return_tensors="pt")
    with torch.no_grad():
        plain = model.generate(**encoded, max_new_tokens=10, do_sample=False)
    expected = tokenizer.decode(plain[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "".join(pieces) == expected


def test_the_chat_template_formats_the_conversation(adapter: tuple[Path, Path]) -> None:
    adapter_dir, cache = adapter
    _, tokenizer = load_generator(adapter_dir=adapter_dir, cache_dir=cache)
    text = prompt_text(tokenizer, [{"role": "user", "content": "你好"}])
    assert "你好" in text and text.rstrip().endswith("assistant")
    with pytest.raises(ConfigError, match=r"messages\[0\]"):
        prompt_text(tokenizer, [{"role": "robot", "content": "x"}])


def test_sampling_is_reproducible_with_a_seed(adapter: tuple[Path, Path]) -> None:
    _, cache = adapter
    model, tokenizer = load_generator(adapter_dir=None, base="tiny", cache_dir=cache)
    messages = [{"role": "user", "content": "hello"}]
    settings = GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    first = list(stream_generate(model, tokenizer, messages=messages, settings=settings))
    second = list(stream_generate(model, tokenizer, messages=messages, settings=settings))
    assert first == second


@pytest.mark.slow  # three subprocesses that import torch: ~25 s on a busy machine
def test_byr_chat_answers_one_prompt(adapter: tuple[Path, Path], tmp_path: Path) -> None:
    adapter_dir, cache = adapter
    home = tmp_path / "home"
    initialized_settings(home)
    env = {"BYR_MODEL_CACHE": str(cache)}
    args = ["chat", "--adapter", str(adapter_dir), "--prompt", "What is TCP?"]
    result = byr(home, *args, "--max-new-tokens", "5", "--json", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["completion_tokens"] >= 1 and answer["text"] == "".join(answer["pieces"])
    missing = byr(home, "chat", "--adapter", "run_nope", "--prompt", "x", env=env)
    assert missing.returncode == 2 and "run_nope" in missing.stderr


def test_without_a_template_the_prompt_carries_the_conversation(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from trainer.data import ALPACA_NO_INPUT, alpaca_prompt
    from trainer.models import resolve_base

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_base("tiny", cache_dir=tmp_path).path))
    tokenizer.chat_template = None
    one = [{"role": "user", "content": "hello"}]
    assert prompt_text(tokenizer, one) == ALPACA_NO_INPUT.format(instruction="hello")
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is SNR?"},
        {"role": "assistant", "content": "Signal power over noise power."},
        {"role": "user", "content": "In what unit?"},
    ]
    # The same prompt a multi-turn record trains on (trainer.data.format_record).
    assert prompt_text(tokenizer, conversation) == alpaca_prompt(
        instruction="In what unit?",
        system="Be brief.",
        history=[("What is SNR?", "Signal power over noise power.")],
        eos=tokenizer.eos_token,
    )
