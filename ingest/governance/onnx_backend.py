"""ONNX Runtime inference for the governance embedding models.

Governance embeds about five texts per record, and the sentence-transformers (torch) pipeline is
what bounds its throughput on a small CPU machine. The same models, exported once to ONNX and run
by ONNX Runtime, give the same vectors (cosine 1.0000 against torch) several times faster; a
dynamically quantized int8 graph is faster still but moves vectors enough to change decisions, so
it is only ever used when asked for.

Nothing is downloaded. The graph is exported from the local model folder (the one
:func:`ingest.governance.embeddings.model_path` finds) into an owner-only folder next to the
embedding cache, named by the model key and the exporter versions: a new model package, torch,
ONNX or ONNX Runtime version means a new export. An export is written into a scratch folder and
renamed into place in one step, with a manifest holding the file's size and sha256, so that two
processes never read half a file; a folder whose file does not match its manifest (a crash, a disk
error, an edit) is moved aside and exported again.

Encoding repeats what the sentence-transformers pipeline of each model does: the model folder's
own ``tokenizer.json`` truncated to the model's ``max_seq_length`` (its fixed padding removed; each
batch is padded to its longest text and masked), then mean pooling over the real tokens and L2
normalization. Pooling other than mean is refused rather than approximated.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import threading
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.governance.errors import EmbeddingError
from ledger.files import private_dir, private_file

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

OPSET = 17
RECIPE = 1
"""Version of the export recipe below; bumped whenever it changes what is written."""
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
DEFAULT_BATCH_SIZE = 32
"""Texts per ONNX Runtime call: measured faster than 128 on two cores (less padding per batch)."""

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OnnxBackendError(EmbeddingError):
    """Base class of errors raised while exporting or running an ONNX embedding model."""


class UnsupportedPooling(OnnxBackendError):
    """The model folder asks for a pooling other than mean pooling over tokens."""


class ExportFailed(OnnxBackendError):
    """The model could not be exported to ONNX, or the export does not load."""


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX graph on disk whose content matched its manifest when it was found."""

    path: Path
    sha256: str
    exported: bool
    """Whether this call wrote it (``False``: an earlier export was reused)."""


def exporter_versions() -> str:
    """The versions an export depends on, as they appear in its folder name."""
    return (
        "-".join(f"{name}{_version(name)}" for name in ("torch", "onnx", "onnxruntime"))
        + f"-opset{OPSET}-r{RECIPE}"
    )


def export_folder_name(model_key: str, *, quantized: bool) -> str:
    """A file-system-safe folder name for the export of ``model_key``."""
    variant = "int8" if quantized else "fp32"
    # The digest keeps two keys apart that differ only in characters the name had to replace.
    digest = hashlib.sha256(model_key.encode("utf-8")).hexdigest()[:12]
    readable = _UNSAFE.sub("_", model_key).strip("_")
    return f"{readable}-{digest}-{variant}-{exporter_versions()}"


def ensure_export(
    *, model_dir: Path, export_root: Path, model_key: str, quantized: bool = False
) -> ExportedModel:
    """The verified ONNX export of the model in ``model_dir``, exporting it when no valid one
    exists under ``export_root``.

    ``quantized`` asks for dynamic int8 quantization of the fp32 export (made first if needed).
    Safe to call from several processes at once: each exports into its own scratch folder and the
    first rename wins; the others use the winner's files.
    """
    private_dir(export_root)
    target = export_root / export_folder_name(model_key, quantized=quantized)
    found = _verified(target)
    if found is not None:
        return ExportedModel(path=target / MODEL_FILE, sha256=found, exported=False)
    if target.exists():
        logger.warning("replacing the ONNX export in %s: it does not match its manifest", target)
        _discard(target)
    scratch = export_root / f".scratch-{uuid.uuid4().hex}"
    private_dir(scratch)
    try:
        if quantized:
            source = ensure_export(
                model_dir=model_dir, export_root=export_root, model_key=model_key
            )
            _quantize(source.path, scratch / MODEL_FILE)
        else:
            _export(model_dir, scratch / MODEL_FILE)
        digest = _sha256(scratch / MODEL_FILE)
        _write_manifest(scratch, model_key=model_key, quantized=quantized, digest=digest)
        try:
            os.rename(scratch, target)
        except OSError:
            # Another process renamed its export into place first (a non-empty folder cannot be
            # replaced by a rename): use it when it is valid.
            found = _verified(target)
            if found is None:
                raise ExportFailed(f"cannot move the ONNX export into {target}") from None
            return ExportedModel(path=target / MODEL_FILE, sha256=found, exported=False)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return ExportedModel(path=target / MODEL_FILE, sha256=digest, exported=True)


class OnnxEncoder:
    """Sentence embeddings of one model through ONNX Runtime: float32 rows, L2-normalized.

    ``intra_op_threads`` is ONNX Runtime's thread count within an operator (``None``: its default,
    one per physical core). Calls are serialized by a lock: the session is shared.
    """

    def __init__(
        self,
        *,
        model_file: Path,
        model_dir: Path,
        max_seq_length: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
        intra_op_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError("intra_op_threads must be at least 1")
        check_pooling(model_dir)
        self._lowercase = _lowercases(model_dir)
        self._tokenizer, self._pad_id = _load_tokenizer(model_dir, max_seq_length=max_seq_length)
        self._session = _open_session(model_file, intra_op_threads=intra_op_threads)
        self._inputs = [i.name for i in self._session.get_inputs()]
        unknown = sorted(set(self._inputs) - set(_INPUTS))
        if unknown:
            raise ExportFailed(f"{model_file}: unexpected graph inputs {unknown}")
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape ``(len(texts), dim)``, in the order given."""
        if self._lowercase:
            texts = [text.lower() for text in texts]
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
            # Longest first, as sentence-transformers does: batches of similar lengths pad less.
            order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
            rows: list[np.ndarray | None] = [None] * len(encodings)
            for start in range(0, len(order), self._batch_size):
                chunk = order[start : start + self._batch_size]
                pooled = self._run([encodings[i] for i in chunk])
                for i, row in zip(chunk, pooled, strict=True):
                    rows[i] = row
        return np.stack([r for r in rows if r is not None]).astype(np.float32, copy=False)

    def _run(self, encodings: Sequence[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        feeds = {
            "input_ids": np.full((len(encodings), width), self._pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            feeds["input_ids"][row, :n] = encoding.ids
            feeds["attention_mask"][row, :n] = 1
            feeds["token_type_ids"][row, :n] = encoding.type_ids
        (hidden,) = self._session.run(
            ["last_hidden_state"], {name: feeds[name] for name in self._inputs}
        )
        mask = feeds["attention_mask"][:, :, None].astype(np.float32)
        # Mean over real tokens, then L2 with the epsilons of sentence-transformers and torch.
        summed = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)


def check_pooling(model_dir: Path) -> None:
    """Raise :class:`UnsupportedPooling` unless the folder's sentence-transformers pipeline is
    mean pooling over tokens (also what the library builds for a folder without ``modules.json``).

    A ``Normalize`` module may be present or not: governance always asks for normalized vectors.
    """
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    for index, module in enumerate(modules):
        kind = str(module.get("type", ""))
        if kind.endswith(".Transformer") or kind.endswith(".Normalize"):
            continue
        if not kind.endswith(".Pooling"):
            raise UnsupportedPooling(f"{modules_file}: module {index} has an unsupported type")
        config_file = model_dir / str(module.get("path", "")) / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        modes = {k for k, v in config.items() if k.startswith("pooling_mode_") and v is True}
        if modes != {"pooling_mode_mean_tokens"}:
            raise UnsupportedPooling(f"{config_file}: only mean pooling over tokens is supported")


# -- export ----------------------------------------------------------------------------------------


def _export(model_dir: Path, destination: Path) -> None:
    # Must be set before the Hugging Face libraries are first imported: they read it once.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    class _Hidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    try:
        model = AutoModel.from_pretrained(
            str(model_dir), attn_implementation="eager", dtype=torch.float32
        )
    except (OSError, ValueError) as error:
        raise ExportFailed(f"cannot load the model in {model_dir}") from error
    model.eval()
    # Two rows of different lengths, so that padding and the mask are traced as dynamic.
    ids = torch.tensor([[101, 2000, 2001, 2002, 102], [101, 2003, 102, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    axes = {0: "batch", 1: "sequence"}
    try:
        # The tracer warns about shapes it records as constants (the padding offset of a model
        # without a key/value cache, always 0 here) and about index operators it rewrites.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Hidden(model),
                (ids, mask, types),
                str(destination),
                input_names=list(_INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes={**{name: axes for name in _INPUTS}, "last_hidden_state": axes},
                opset_version=OPSET,
                dynamo=False,
                external_data=False,
            )
    except Exception as error:  # the exporter raises many unrelated types
        raise ExportFailed(f"cannot export the model in {model_dir} to ONNX") from error
    private_file(destination)


def _quantize(source: Path, destination: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    advice = _DropAdvice()
    # The quantizer logs, on the root logger, advice to pre-process the graph first: the recipe
    # measured here quantizes the exported graph as it is.
    root.addFilter(advice)
    try:
        quantize_dynamic(str(source), str(destination), weight_type=QuantType.QInt8)
    except Exception as error:  # onnxruntime raises plain RuntimeErrors and more
        raise ExportFailed(f"cannot quantize {source}") from error
    finally:
        root.removeFilter(advice)
    private_file(destination)


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


def _write_manifest(folder: Path, *, model_key: str, quantized: bool, digest: str) -> None:
    manifest = {
        "model_key": model_key,
        "variant": "int8" if quantized else "fp32",
        "exporter": exporter_versions(),
        "file": MODEL_FILE,
        "size": (folder / MODEL_FILE).stat().st_size,
        "sha256": digest,
    }
    path = private_file(folder / MANIFEST_FILE)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _verified(folder: Path) -> str | None:
    """The sha256 of ``folder``'s model file when it matches the manifest; ``None`` otherwise."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        model = folder / MODEL_FILE
        if not isinstance(manifest, dict) or model.stat().st_size != manifest.get("size"):
            return None
        digest = _sha256(model)
    except (OSError, ValueError):
        return None
    return digest if digest == manifest.get("sha256") else None


def _discard(folder: Path) -> None:
    # Moved aside first: a reader never sees a folder half deleted under the expected name.
    aside = folder.with_name(f".discarded-{uuid.uuid4().hex}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return  # another process discarded it already
    shutil.rmtree(aside, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


# -- inference -------------------------------------------------------------------------------------


def _open_session(
    model_file: Path, *, intra_op_threads: int | None
) -> onnxruntime.InferenceSession:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime's own exception types are not importable stably
        raise ExportFailed(f"{model_file}: ONNX Runtime cannot load the exported model") from error


def _load_tokenizer(model_dir: Path, *, max_seq_length: int) -> tuple[Tokenizer, int]:
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception on a bad file
        raise ExportFailed(f"{path}: cannot read the tokenizer") from error
    # Some folders fix padding (MiniLM: 128) and truncation in the file; batches are padded here.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    pad_token = _pad_token(model_dir)
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ExportFailed(f"{path}: the padding token is not in the vocabulary")
    return tokenizer, pad_id


def _pad_token(model_dir: Path) -> str:
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = model_dir / name
        if path.is_file():
            token = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
            if isinstance(token, dict):
                token = token.get("content")
            if isinstance(token, str):
                return token
    return "[PAD]"


def _lowercases(model_dir: Path) -> bool:
    """Whether sentence-transformers lowercases texts before its tokenizer for this folder."""
    path = model_dir / "sentence_bert_config.json"
    if not path.is_file():
        return False
    return bool(json.loads(path.read_text(encoding="utf-8")).get("do_lower_case", False))
