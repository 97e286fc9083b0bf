"""The embedder: the models of each language, the on-disk cache, and calibration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.governance.embeddings import (
    M3E_SMALL,
    MINILM,
    Embedder,
    UnsupportedLanguage,
    model_for_language,
)
from ingest.governance.errors import GovernanceError

EN_TEXTS = [
    "Shannon entropy measures the average uncertainty of a discrete source.",
    "The entropy of a source is the expected information content of its symbols.",
    "A router forwards packets according to its routing table.",
]
ZH_TEXTS = [
    "香农熵衡量离散信源的平均不确定性。",
    "信源的熵是其符号所含信息量的期望。",
    "路由器根据路由表转发数据包。",
]


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    with Embedder() as shared:
        # Loading here keeps the one-off library import out of the first test's own timing.
        shared.warm_up(language="en")
        yield shared


def test_each_language_gets_its_model() -> None:
    assert model_for_language("en") is MINILM
    assert model_for_language("zh") is M3E_SMALL
    assert model_for_language("mixed") is M3E_SMALL
    with pytest.raises(UnsupportedLanguage) as caught:
        model_for_language("fr")
    assert isinstance(caught.value, GovernanceError)


@pytest.mark.parametrize(
    ("language", "texts", "dimension"),
    [("en", EN_TEXTS, 384), ("zh", ZH_TEXTS, 512), ("mixed", ["TCP 使用三次握手建立连接。"], 512)],
)
def test_encode_returns_unit_float32_rows(
    embedder: Embedder, language: str, texts: list[str], dimension: int
) -> None:
    vectors = embedder.encode(texts, language=language)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([], language=language).shape == (0, dimension)


@pytest.mark.parametrize(("language", "texts"), [("en", EN_TEXTS), ("zh", ZH_TEXTS)])
def test_paraphrases_are_closer_than_unrelated_texts(
    embedder: Embedder, language: str, texts: list[str]
) -> None:
    vectors = embedder.encode(texts, language=language)
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert paraphrase > unrelated
    calibrated = embedder.calibrate(np.array([paraphrase, unrelated]), language=language)
    assert calibrated[0] > 0.5 > calibrated[1]


def test_calibration_maps_unrelated_floor_to_zero_and_identity_to_one(embedder: Embedder) -> None:
    for language, spec in (("en", MINILM), ("zh", M3E_SMALL)):
        scaled = embedder.calibrate(np.array([spec.unrelated_cosine, 1.0, -0.5]), language=language)
        np.testing.assert_allclose(scaled, [0.0, 1.0, 0.0])


def test_second_encode_is_served_from_the_cache_without_calling_the_model(tmp_path: Path) -> None:
    with Embedder(cache_path=tmp_path / "embeddings.db") as fresh:
        first = fresh.encode(EN_TEXTS[:2], language="en")
        after_first = fresh.stats
        again = fresh.encode(EN_TEXTS[:2], language="en")
        after_again = fresh.stats

    assert (after_first.model_calls, after_first.texts_encoded, after_first.cache_misses) == (
        1,
        2,
        2,
    )
    assert after_again.model_calls == 1
    assert after_again.cache_hits == 2
    np.testing.assert_array_equal(first, again)


def test_only_missing_texts_reach_the_model_and_repeats_are_encoded_once(tmp_path: Path) -> None:
    with Embedder(cache_path=tmp_path / "embeddings.db") as fresh:
        fresh.encode([EN_TEXTS[0]], language="en")
        mixed_batch = [EN_TEXTS[0], EN_TEXTS[1], EN_TEXTS[1], EN_TEXTS[2]]
        vectors = fresh.encode(mixed_batch, language="en")
        stats = fresh.stats

    assert stats.model_calls == 2
    assert stats.texts_encoded == 3  # EN_TEXTS[0] once, then EN_TEXTS[1] and EN_TEXTS[2] once each
    np.testing.assert_array_equal(vectors[1], vectors[2])


def test_cached_vectors_survive_a_new_instance_and_are_kept_per_model(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.db"
    with Embedder(cache_path=path) as writer:
        written = writer.encode(EN_TEXTS, language="en")
    with Embedder(cache_path=path) as reader:
        read = reader.encode(EN_TEXTS, language="en")
        assert reader.stats.model_calls == 0
        # The same text under another model is a different cache entry.
        reader.encode([EN_TEXTS[0]], language="zh")
        assert reader.stats.model_calls == 1
        assert reader.cached_count() == len(EN_TEXTS) + 1
    np.testing.assert_array_equal(written, read)


def test_encode_raw_always_runs_the_model_and_leaves_the_cache_alone(tmp_path: Path) -> None:
    with Embedder(cache_path=tmp_path / "embeddings.db") as fresh:
        cached = fresh.encode(EN_TEXTS[:1], language="en")
        raw_once = fresh.encode_raw(EN_TEXTS[:1], language="en")
        fresh.encode_raw(EN_TEXTS[:1], language="en")
        assert fresh.stats.model_calls == 3
        assert fresh.cached_count() == 1
    np.testing.assert_allclose(raw_once, cached, atol=1e-6)


def test_forget_drops_the_cached_vector(tmp_path: Path) -> None:
    with Embedder(cache_path=tmp_path / "embeddings.db") as fresh:
        fresh.encode(EN_TEXTS[:2], language="en")
        fresh.forget([EN_TEXTS[0]], language="en")
        assert fresh.cached_count() == 1
        fresh.encode(EN_TEXTS[:2], language="en")
        assert fresh.stats.texts_encoded == 3
