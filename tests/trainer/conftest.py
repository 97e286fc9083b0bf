"""Shared fixtures: a per-session model cache for tiny models, sample records, quick recipes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer.recipes import Recipe, load_recipe

QUICK_TRAINING: dict[str, Any] = {
    "training.batch_size": 4,
    "training.max_seq_length": 64,
    "training.learning_rate": 1e-2,
    "training.warmup_ratio": 0.0,
    "training.scheduler": "constant",
    "training.checkpoint_every": 0,
    "training.val_fraction": 0.2,
}


def quick_recipe(method: str, **overrides: Any) -> Recipe:
    """The knowledge_qa recipe switched to ``method``, with tiny-model settings."""
    return load_recipe("knowledge_qa", {"method": method, **QUICK_TRAINING, **overrides})


def sample_records(count: int = 24) -> list[dict[str, str]]:
    """Bilingual accepted records in the shape the corpus feed delivers."""
    topics = [
        ("information_theory", "What is Shannon entropy?", "熵衡量信源的平均信息量。"),
        ("computer_networks", "Describe the TCP handshake.", "三次握手：SYN、SYN-ACK、ACK。"),
        ("signal_processing", "什么是傅里叶变换？", "It maps a signal to the frequency domain."),
        ("network_security", "什么是防火墙？", "A firewall filters packets by rules."),
    ]
    records = []
    for i in range(count):
        discipline, question, answer = topics[i % len(topics)]
        records.append(
            {
                "record_id": f"rec_{i:020x}",
                "instruction": f"{question} ({i})",
                "input": "" if i % 3 else "Answer briefly.",
                "output": f"{answer} #{i}",
                "discipline": discipline,
                "language": "mixed",
                "leaf": "0x" + f"{i:064x}",
            }
        )
    return records


@pytest.fixture(autouse=True)
def single_thread_torch() -> Iterator[None]:
    """Run tiny models on one thread: with hidden size 64, a second thread only adds contention
    (a tiny step is ~10x slower with two threads on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tiny base models are materialized, once per test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture()
def records() -> list[dict[str, str]]:
    return sample_records()
