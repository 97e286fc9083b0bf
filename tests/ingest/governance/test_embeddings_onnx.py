"""The ONNX Runtime backends: the same vectors as torch, their own cache keys, exports made once
and replaced when damaged."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.governance.embeddings import (
    MINILM,
    Embedder,
    EmbeddingBackend,
    EmbeddingError,
    UnsupportedBackend,
    model_key,
)
from ingest.governance.onnx_backend import (
    MANIFEST_FILE,
    MODEL_FILE,
    UnsupportedPooling,
    check_pooling,
)

EN_SENTENCE = "Shannon entropy measures the average uncertainty of a discrete memoryless source."
ZH_SENTENCE = "香农熵衡量离散无记忆信源的平均不确定性，信道容量给出可靠传输速率的上限。"
# Far past 256 tokens: both backends must truncate at the model's max_seq_length (not at the 128
# that MiniLM's tokenizer.json fixes).
EN_LONG = " ".join([EN_SENTENCE] * 30)
ZH_LONG = ZH_SENTENCE * 12
# Around 200 tokens: truncating at 128 would change this vector.
EN_MEDIUM = " ".join([EN_SENTENCE] * 14) + " The router forwards packets by its table."
ZH_MEDIUM = ZH_SENTENCE * 5 + "路由器根据路由表转发数据包。"

EN_TEXTS = [
    "Hi.",
    EN_SENTENCE,
    "A router forwards packets according to its routing table.",
    "  Leading and trailing spaces, UPPER case and naïve accents. ",
    "Gradient descent updates the weights against the gradient of the loss.",
    EN_MEDIUM,
    EN_LONG,
]
ZH_TEXTS = [
    "熵",
    ZH_SENTENCE,
    "路由器根据路由表转发数据包。",
    "TCP 使用三次握手建立连接，UDP 则不需要。",
    "ＡＢＣ全角字符与半角 abc 混排。",
    ZH_MEDIUM,
    ZH_LONG,
]


def _mixed_batch(texts: list[str]) -> list[str]:
    # More texts than one ONNX batch (32), lengths from one word to past the truncation, shuffled
    # so that sorting by length and restoring the order is exercised.
    batch = [f"{t} {i}" for i in range(6) for t in texts]
    order = np.random.default_rng(7).permutation(len(batch))
    return [batch[i] for i in order]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-exports")


@pytest.fixture(scope="module")
def torch_embedder() -> Iterator[Embedder]:
    with Embedder(backend="torch") as embedder:
        yield embedder


@pytest.fixture(scope="module")
def onnx_embedder(export_dir: Path) -> Iterator[Embedder]:
    with Embedder(export_dir=export_dir) as embedder:
        yield embedder


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


def test_onnx_is_the_default_backend(onnx_embedder: Embedder) -> None:
    assert onnx_embedder.backend is EmbeddingBackend.ONNX


@pytest.mark.parametrize(("language", "texts"), [("en", EN_TEXTS), ("zh", ZH_TEXTS)])
def test_onnx_vectors_equal_torch_vectors(
    torch_embedder: Embedder, onnx_embedder: Embedder, language: str, texts: list[str]
) -> None:
    expected = torch_embedder.encode_raw(texts, language=language)
    got = onnx_embedder.encode_raw(texts, language=language)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert _cosines(got, expected).min() > 0.9999
    # One text at a time (no padding at all) gives the same vectors as the padded batch.
    singles = np.concatenate([onnx_embedder.encode_raw([t], language=language) for t in texts])
    assert _cosines(singles, got).min() > 0.9999


@pytest.mark.parametrize(("language", "texts"), [("en", EN_TEXTS), ("zh", ZH_TEXTS)])
def test_a_batch_of_mixed_lengths_keeps_order_and_matches_torch(
    torch_embedder: Embedder, onnx_embedder: Embedder, language: str, texts: list[str]
) -> None:
    batch = _mixed_batch(texts)
    expected = torch_embedder.encode_raw(batch, language=language)
    got = onnx_embedder.encode_raw(batch, language=language)
    assert _cosines(got, expected).min() > 0.9999


@pytest.mark.parametrize(("language", "long"), [("en", EN_LONG), ("zh", ZH_LONG)])
def test_text_past_the_truncation_length_is_cut_like_torch(
    onnx_embedder: Embedder, language: str, long: str
) -> None:
    # Words added after the first 256 tokens change nothing; words at the start do.
    base, tail, head = onnx_embedder.encode_raw(
        [long, long + " extra words at the end", "different words first " + long],
        language=language,
    )
    assert float(base @ tail) > 0.99999
    assert float(base @ head) < 0.9999


def test_each_backend_has_its_own_cache_namespace(tmp_path: Path, export_dir: Path) -> None:
    keys = {backend: model_key(MINILM, backend=backend) for backend in EmbeddingBackend}
    assert len(set(keys.values())) == len(EmbeddingBackend)
    assert keys[EmbeddingBackend.ONNX].endswith("|onnx")

    path = tmp_path / "embeddings.db"
    with Embedder(cache_path=path, backend="torch") as writer:
        writer.encode(EN_TEXTS[:3], language="en")
    with Embedder(cache_path=path, export_dir=export_dir) as reader:
        # torch's entries are not served to the ONNX backend: it embeds the texts itself.
        reader.encode(EN_TEXTS[:3], language="en")
        assert (reader.stats.cache_hits, reader.stats.texts_encoded) == (0, 3)
        assert reader.cached_count() == 6
        reader.encode(EN_TEXTS[:3], language="en")
        assert reader.stats.cache_hits == 3


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(UnsupportedBackend) as caught:
        Embedder(backend="tensorrt")
    assert isinstance(caught.value, EmbeddingError)
    assert isinstance(caught.value, ValueError)


def test_without_onnxruntime_onnx_falls_back_to_torch_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A None entry in sys.modules is how Python marks a module that cannot be imported.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level(logging.WARNING, logger="ingest.governance.embeddings"):
        embedder = Embedder(backend="onnx")
    assert embedder.backend is EmbeddingBackend.TORCH
    assert embedder.model_key("en") == model_key(MINILM, backend=EmbeddingBackend.TORCH)
    embedder.close()
    assert any("onnxruntime" in record.getMessage() for record in caplog.records)


def _export_folder(root: Path) -> Path:
    (folder,) = [p for p in (root / "onnx").iterdir() if p.name.startswith("all-MiniLM")]
    return folder


def test_export_is_made_once_next_to_the_cache_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.db"
    with Embedder(cache_path=path) as first:
        vectors = first.encode_raw(EN_TEXTS[:2], language="en")
        assert first.stats.onnx_exports == 1
    folder = _export_folder(tmp_path)
    assert folder.stat().st_mode & 0o077 == 0
    assert (folder / MODEL_FILE).stat().st_mode & 0o077 == 0
    before = (folder / MODEL_FILE).stat()
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["size"] == before.st_size

    with Embedder(cache_path=path) as second:
        again = second.encode_raw(EN_TEXTS[:2], language="en")
        assert second.stats.onnx_exports == 0
    after = (folder / MODEL_FILE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    np.testing.assert_array_equal(vectors, again)
    # No scratch folder is left behind.
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [folder.name]


@pytest.mark.parametrize("damage", ["half", "garbage", "no-manifest"])
def test_damaged_export_is_replaced_not_crashed_on(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "embeddings.db"
    with Embedder(cache_path=path) as first:
        vectors = first.encode_raw(EN_TEXTS[:2], language="en")
    folder = _export_folder(tmp_path)
    model = folder / MODEL_FILE
    if damage == "half":
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        size = model.stat().st_size
        model.write_bytes(b"\x00not an onnx graph" * (size // 18) + b"\x00" * (size % 18))
    else:
        (folder / MANIFEST_FILE).unlink()
    # A scratch folder left by a process that died while exporting is ignored.
    (tmp_path / "onnx" / ".scratch-dead").mkdir()
    (tmp_path / "onnx" / ".scratch-dead" / MODEL_FILE).write_bytes(b"half")

    with Embedder(cache_path=path) as second:
        again = second.encode_raw(EN_TEXTS[:2], language="en")
        assert second.stats.onnx_exports == 1
    np.testing.assert_array_equal(vectors, again)
    assert model.stat().st_size > 1_000_000


def test_int8_is_opt_in_close_to_fp32_and_cached_apart(export_dir: Path) -> None:
    with (
        Embedder(export_dir=export_dir) as fp32,
        Embedder(backend="onnx-int8", export_dir=export_dir) as int8,
    ):
        exact = fp32.encode_raw(EN_TEXTS, language="en")
        quantized = int8.encode_raw(EN_TEXTS, language="en")
        assert int8.model_key("en") != fp32.model_key("en")
    cosines = _cosines(quantized, exact)
    # Close, but not the same vectors: the reason int8 is never the default.
    assert cosines.min() > 0.8
    assert cosines.min() < 0.9999
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    # The int8 graph is quantized from the fp32 export, each in its own folder.
    minilm = [p.name for p in export_dir.iterdir() if p.name.startswith("all-MiniLM")]
    assert sorted("-int8-" in name for name in minilm) == [False, True]


def test_pooling_other_than_mean_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        ),
        encoding="utf-8",
    )
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}),
        encoding="utf-8",
    )
    with pytest.raises(UnsupportedPooling) as caught:
        check_pooling(tmp_path)
    assert isinstance(caught.value, EmbeddingError)
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}),
        encoding="utf-8",
    )
    check_pooling(tmp_path)
