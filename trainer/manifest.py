"""The adapter manifest (``byr_manifest.json``) and the adapter hash used for lineage.

``adapter_hash(adapter_dir)`` is sha256 (hex) over the *adapter files*: every regular file under
``adapter_dir``, recursively, except ``byr_manifest.json`` and anything under ``merged/`` (optional
merged weights, derived from the adapter). Files are taken in ascending byte order of their path
relative to ``adapter_dir`` (POSIX separators, UTF-8); for each one the hash is fed the relative
path, ``0x00``, the file size as 8 bytes little-endian, then the file's bytes. For a
LoRA/AdaLoRA/QLoRA run that is ``adapter_config.json`` and ``adapter_model.safetensors``; for
MoE-LoRA also ``experts/<i>/adapter_config.json`` and ``experts/<i>/adapter_model.safetensors``; for
full/partial ``config.json``, ``generation_config.json`` (when written) and ``model*.safetensors``.

The manifest is written last and atomically: an adapter folder is complete iff it has a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from trainer.architecture import ModelFingerprint
from trainer.errors import ManifestError

MANIFEST_NAME = "byr_manifest.json"
MERGED_DIR = "merged"
MANIFEST_SCHEMA_VERSION = 1
_CHUNK = 1 << 24


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BaseModelInfo(_Frozen):
    name: str
    hash: str
    """:func:`trainer.architecture.base_model_hash` of the base checkpoint."""
    fingerprint: ModelFingerprint


class DatasetInfo(_Frozen):
    root: str
    """Dataset root of the snapshot trained on (a Merkle root for feed snapshots)."""
    train_record_ids: list[str]
    validation_record_ids: list[str]
    discipline_counts: dict[str, int]
    snapshot_manifest: dict[str, Any]


class AdapterInfo(_Frozen):
    format: str
    """``peft`` (load with ``PeftModel.from_pretrained``) or ``transformers`` (a whole model)."""
    peft_type: str | None
    hash: str
    files: list[str]
    """The hashed files, in hashing order."""


class AdapterManifest(_Frozen):
    schema_version: int = MANIFEST_SCHEMA_VERSION
    run_id: str
    method: str
    method_config: dict[str, Any]
    method_details: dict[str, Any]
    """Effective settings: target modules, trainable parameter count, quantization, device."""
    recipe: dict[str, Any]
    """The resolved recipe (see :mod:`trainer.recipes`)."""
    recipe_hash: str
    base_model: BaseModelInfo
    dataset: DatasetInfo
    adapter: AdapterInfo
    metrics: dict[str, Any]
    created_at: str
    software: dict[str, str]


def adapter_files(adapter_dir: Path) -> list[str]:
    """Relative POSIX paths of the files :func:`adapter_hash` covers, in hashing order."""
    found: list[str] = []
    for path in adapter_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(adapter_dir).as_posix()
        if relative == MANIFEST_NAME or relative.split("/", 1)[0] == MERGED_DIR:
            continue
        found.append(relative)
    return sorted(found, key=lambda p: p.encode("utf-8"))


def adapter_hash(adapter_dir: Path) -> str:
    """sha256 (hex) over the adapter files of ``adapter_dir`` (see the module docstring)."""
    adapter_dir = Path(adapter_dir)
    files = adapter_files(adapter_dir)
    if not files:
        raise ManifestError(f"{adapter_dir} holds no adapter files")
    digest = hashlib.sha256()
    for relative in files:
        path = adapter_dir / relative
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(struct.pack("<Q", path.stat().st_size))
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def write_manifest(adapter_dir: Path, manifest: AdapterManifest) -> Path:
    """Write ``byr_manifest.json`` atomically (temporary file, fsync, rename)."""
    target = Path(adapter_dir) / MANIFEST_NAME
    staging = target.with_name(f".{MANIFEST_NAME}.tmp-{uuid.uuid4().hex}")
    text = json.dumps(
        manifest.model_dump(mode="json"), indent=2, ensure_ascii=False, sort_keys=True
    )
    with staging.open("w", encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    staging.replace(target)
    return target


def read_manifest(adapter_dir: Path) -> AdapterManifest:
    """The manifest of ``adapter_dir``; raises :class:`ManifestError` if missing or malformed."""
    path = Path(adapter_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{adapter_dir} has no {MANIFEST_NAME}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    try:
        return AdapterManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{path} is not a valid manifest: {exc}") from exc


def verify_adapter(adapter_dir: Path) -> bool:
    """Whether the adapter files still hash to what the manifest records."""
    return read_manifest(adapter_dir).adapter.hash == adapter_hash(adapter_dir)
