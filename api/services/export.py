"""Exports of the accepted corpus for other trainers: a dataset snapshot (the one ``byr train``
trains on, :func:`trainer.feed.snapshot_from_feed`, with its Merkle dataset root and manifest)
written as a folder in one of the common instruction-tuning layouts, or as an archive of it.

Layouts (every folder also holds ``manifest.json``, the snapshot's manifest):

- ``alpaca``: ``data.json``, rows ``instruction, input, output, system, history, record_id``;
- ``sharegpt``: ``data.json``, rows ``conversations`` (``from``/``value``: an optional
  ``system`` turn, the history's turns, then the record's ``human`` and ``gpt`` turns) and
  ``record_id``;
- ``llamafactory``: ``dataset_info.json`` naming ``byr_corpus.json`` (alpaca rows) with its
  columns, so ``dataset: byr_corpus`` with ``dataset_dir: <folder>`` works in a LLaMA-Factory
  config as it is;
- ``hf``: ``data/train.jsonl`` (every canonical field plus ids and leaf) and a dataset card
  ``README.md`` whose configuration makes ``datasets.load_dataset(<folder>)`` read it.

An export of the same snapshot is the same bytes every time: rows in feed order, JSON with sorted
keys, no time but the snapshot's own, and archives (``.tar.gz``) with sorted members, zero times
and owners, and a gzip header without a name or time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ledger.application import CorpusLedger
from ledger.errors import InvalidRequest, NotFound

EXPORT_SCHEMA_VERSION = 1
LLAMAFACTORY_DATASET = "byr_corpus"
ARCHIVE_MEDIA_TYPE = "application/gzip"


class ExportFormat(StrEnum):
    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"
    LLAMAFACTORY = "llamafactory"
    HF = "hf"


class EmptyExport(NotFound):
    """The selection holds no record of the accepted corpus."""


def parse_format(value: str) -> ExportFormat:
    try:
        return ExportFormat(value)
    except ValueError:
        raise InvalidRequest(
            f"format: expected one of {', '.join(f.value for f in ExportFormat)}"
        ) from None


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export: a format and the feed's filters (empty: everything)."""

    format: ExportFormat
    disciplines: Sequence[str] = field(default_factory=tuple)
    task_types: Sequence[str] = field(default_factory=tuple)
    languages: Sequence[str] = field(default_factory=tuple)
    institutions: Sequence[str] = field(default_factory=tuple)
    limit: int | None = None


def _json(value: object) -> bytes:
    return (json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode()


def _jsonl(rows: Sequence[object]) -> bytes:
    return b"".join(
        (json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n").encode()
        for row in rows
    )


def _turns(record: Mapping[str, Any]) -> list[list[str]]:
    history = record.get("history") or []
    return [[str(user), str(assistant)] for user, assistant in history]


def _prompt(record: Mapping[str, Any]) -> str:
    """The user's turn as LLaMA-Factory builds it from alpaca columns: instruction, then input."""
    return "\n".join(p for p in (record["instruction"], record.get("input") or "") if p)


def alpaca_row(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "instruction": record["instruction"],
        "input": record.get("input") or "",
        "output": record["output"],
        "system": record.get("system") or "",
        "history": _turns(record),
        "record_id": record["record_id"],
    }


def sharegpt_row(record: Mapping[str, Any]) -> dict[str, Any]:
    turns: list[dict[str, str]] = []
    if record.get("system"):
        turns.append({"from": "system", "value": record["system"]})
    for user, assistant in _turns(record):
        turns += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    turns += [
        {"from": "human", "value": _prompt(record)},
        {"from": "gpt", "value": record["output"]},
    ]
    return {"conversations": turns, "record_id": record["record_id"]}


def hf_row(record: Mapping[str, Any]) -> dict[str, Any]:
    return {**record, "system": record.get("system") or "", "history": _turns(record)}


def _dataset_card(manifest: Mapping[str, Any]) -> bytes:
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/train.jsonl",
        "---",
        "",
        "# BYR accepted corpus snapshot",
        "",
        f"- dataset root (Merkle, over record leaves): `{manifest['dataset_root']}`",
        f"- records: {manifest['record_count']}",
        f"- log position of the snapshot: {manifest['feed_position']}",
        "",
        "Accepted, not erased records of anchored batches. `manifest.json` names every record, "
        "its batch, the batch's anchor and its institution; each record's `leaf` proves it is "
        "in its anchored batch and in this dataset's tree.",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("json", data_files="data/train.jsonl", split="train")',
        "```",
        "",
    ]
    return "\n".join(lines).encode()


def export_files(
    fmt: ExportFormat, records: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any]
) -> dict[str, bytes]:
    """The files of an export (relative path -> bytes)."""
    manifest_doc = {
        **manifest,
        "export": {"format": fmt.value, "schema_version": EXPORT_SCHEMA_VERSION},
    }
    files = {"manifest.json": _json(manifest_doc)}
    if fmt is ExportFormat.ALPACA:
        files["data.json"] = _json([alpaca_row(r) for r in records])
    elif fmt is ExportFormat.SHAREGPT:
        files["data.json"] = _json([sharegpt_row(r) for r in records])
    elif fmt is ExportFormat.LLAMAFACTORY:
        data_file = f"{LLAMAFACTORY_DATASET}.json"
        files[data_file] = _json([alpaca_row(r) for r in records])
        files["dataset_info.json"] = _json(
            {
                LLAMAFACTORY_DATASET: {
                    "file_name": data_file,
                    "formatting": "alpaca",
                    "columns": {
                        "prompt": "instruction",
                        "query": "input",
                        "response": "output",
                        "system": "system",
                        "history": "history",
                    },
                }
            }
        )
    else:
        files["data/train.jsonl"] = _jsonl([hf_row(r) for r in records])
        files["README.md"] = _dataset_card(manifest)
    return files


def tar_gz(files: Mapping[str, bytes], *, folder: str) -> bytes:
    """``files`` under ``folder/`` as a deterministic ``.tar.gz``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs = {folder} | {
            f"{folder}/{'/'.join(name.split('/')[:i])}"
            for name in files
            for i in range(1, name.count("/") + 1)
        }
        members = [(d, None) for d in dirs] + [(f"{folder}/{n}", b) for n, b in files.items()]
        for name, data in sorted(members, key=lambda m: m[0]):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Export:
    """An export: its files, and what it holds."""

    format: ExportFormat
    files: dict[str, bytes]
    dataset_root: str
    record_count: int
    feed_position: int

    @property
    def folder_name(self) -> str:
        return f"byr-{self.format.value}-{self.dataset_root[2:14]}"

    def summary(self, **extra: Any) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "dataset_root": self.dataset_root,
            "record_count": self.record_count,
            "feed_position": self.feed_position,
            "files": {
                name: "sha256:" + hashlib.sha256(data).hexdigest()
                for name, data in sorted(self.files.items())
            },
            **extra,
        }

    def archive(self) -> bytes:
        return tar_gz(self.files, folder=self.folder_name)


class ExportService:
    """Build exports of one ledger's accepted corpus."""

    def __init__(self, *, ledger: CorpusLedger) -> None:
        self.ledger = ledger

    def build(self, request: ExportRequest) -> Export:
        """The export of a snapshot of the feed at the log's head now (catches up first).
        Raises :class:`EmptyExport` when the selection holds no record."""
        from trainer.errors import DatasetError
        from trainer.feed import snapshot_from_feed

        try:
            snapshot = snapshot_from_feed(
                self.ledger,
                disciplines=list(request.disciplines) or None,
                languages=list(request.languages) or None,
                institutions=list(request.institutions) or None,
                task_types=list(request.task_types) or None,
                limit=request.limit,
            )
        except DatasetError as exc:
            raise EmptyExport(str(exc)) from exc
        return Export(
            format=request.format,
            files=export_files(request.format, snapshot.records, snapshot.manifest),
            dataset_root=snapshot.dataset_root,
            record_count=len(snapshot.records),
            feed_position=int(snapshot.manifest["feed_position"]),
        )

    def write(self, request: ExportRequest, directory: Path) -> dict[str, Any]:
        """Write the export into ``directory`` (created; it must be empty if it exists) and
        return its summary (format, root, record count, each file's sha256)."""
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise InvalidRequest(f"{directory}: the output folder must be new or empty")
        export = self.build(request)
        for name, data in export.files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return export.summary(directory=str(directory))
