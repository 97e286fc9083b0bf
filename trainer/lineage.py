"""Lineage: adapter -> run anchor -> dataset root -> records -> batches -> institutions.

Each link is checked against something the adapter's owner cannot change: the adapter bytes are
re-hashed, the run's hashes are compared with the ``TrainingRunAnchored`` record on the academic
chain, the dataset root is recomputed from the record leaves, every leaf is proven against its
batch root and every batch root is compared with its on-chain anchor. A modified adapter, manifest
or dataset list breaks a link and the report says which.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledger.application import CorpusLedger, NotFound
from ledger.merkle import StandardMerkleTree, verify_proof
from trainer.errors import DatasetError, ManifestError
from trainer.feed import dataset_tree
from trainer.manifest import AdapterManifest, adapter_hash, read_manifest
from trainer.recipes import recipe_hash


class AcademicRunView(Protocol):
    """What lineage reads from the academic chain (``AcademicLedgerClient``)."""

    def find_training_run(self, run_id: str) -> Any: ...

    def find_batch_anchor(self, batch_id: str) -> Any: ...

    def institution(self, institution_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class LineageCheck:
    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class LineageReport:
    adapter_dir: str
    run_id: str | None = None
    checks: list[LineageCheck] = field(default_factory=list)
    institutions: dict[str, int] = field(default_factory=dict)
    """Institution id -> records of the dataset it contributed."""
    batches: int = 0
    records: int = 0
    erased: list[dict[str, str]] = field(default_factory=list)
    """Records of the dataset erased since the run (id, batch and when): their leaves still
    prove membership, their text is gone."""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(LineageCheck(name, ok, detail))
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter_dir": self.adapter_dir,
            "run_id": self.run_id,
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "institutions": self.institutions,
            "batches": self.batches,
            "records": self.records,
            "erased": self.erased,
        }

    def render(self) -> str:
        lines = [f"lineage of {self.adapter_dir} (run {self.run_id})"]
        for c in self.checks:
            lines.append(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if self.institutions:
            shares = ", ".join(f"{k} {v}" for k, v in self.institutions.items())
            lines.append(f"  {self.records} records from {self.batches} batches: {shares}")
        if self.erased:
            lines.append(
                f"  {len(self.erased)} record(s) erased since this run (their leaves still "
                "prove they were trained on; their text is gone): "
                + ", ".join(f"{e['record_id']} at {e['erased_at']}" for e in self.erased[:5])
                + (f" (+{len(self.erased) - 5} more)" if len(self.erased) > 5 else "")
            )
        lines.append("VALID" if self.ok else "INVALID")
        return "\n".join(lines)


def _b32(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(raw) != 32:
        raise ValueError(f"not a 32-byte hash: {value!r}")
    return raw


def verify_lineage(
    adapter_dir: Path, *, ledger: CorpusLedger, academic: AcademicRunView
) -> LineageReport:
    """Check every link from ``adapter_dir`` back to the institutions behind its data."""
    report = LineageReport(adapter_dir=str(adapter_dir))
    try:
        manifest = read_manifest(adapter_dir)
    except ManifestError as exc:
        report.add("manifest", False, str(exc))
        return report
    report.run_id = manifest.run_id
    report.add("manifest", True, f"{manifest.method} run {manifest.run_id}")
    _check_files(report, adapter_dir, manifest)
    _check_recipe(report, manifest)
    _check_run_anchor(report, manifest, academic)
    records = _check_dataset(report, manifest)
    if records is not None:
        _check_records(report, records, ledger=ledger, academic=academic)
    return report


def _check_files(report: LineageReport, adapter_dir: Path, manifest: AdapterManifest) -> None:
    try:
        actual = adapter_hash(adapter_dir)
    except ManifestError as exc:
        report.add("adapter_hash", False, str(exc))
        return
    if actual == manifest.adapter.hash:
        report.add("adapter_hash", True, f"adapter files hash to {actual[:16]}… as recorded")
    else:
        report.add(
            "adapter_hash",
            False,
            f"adapter files hash to {actual[:16]}…, the manifest records "
            f"{manifest.adapter.hash[:16]}…: the adapter was modified",
        )


def _check_recipe(report: LineageReport, manifest: AdapterManifest) -> None:
    actual = recipe_hash(manifest.recipe)
    report.add(
        "recipe_hash",
        actual == manifest.recipe_hash,
        "the recorded recipe hashes to its recorded hash"
        if actual == manifest.recipe_hash
        else f"the recorded recipe hashes to {actual[:16]}…, not {manifest.recipe_hash[:16]}…",
    )


def _check_run_anchor(
    report: LineageReport, manifest: AdapterManifest, academic: AcademicRunView
) -> None:
    anchor = academic.find_training_run(manifest.run_id)
    if anchor is None:
        report.add("run_anchor", False, f"run {manifest.run_id} is not anchored on the chain")
        return
    expected = {
        "adapter_hash": manifest.adapter.hash,
        "dataset_root": manifest.dataset.root,
        "recipe_hash": manifest.recipe_hash,
        "base_model_hash": manifest.base_model.hash,
    }
    wrong = [name for name, value in expected.items() if getattr(anchor, name) != _b32(value)]
    if wrong:
        report.add(
            "run_anchor",
            False,
            f"the chain's anchor of run {manifest.run_id} (tx {anchor.tx_hash}) differs in: "
            + ", ".join(wrong),
        )
    else:
        report.add(
            "run_anchor",
            True,
            f"anchored in tx {anchor.tx_hash} (block {anchor.block_number}) with these hashes",
        )


def _check_dataset(report: LineageReport, manifest: AdapterManifest) -> list[dict[str, Any]] | None:
    snapshot = manifest.dataset.snapshot_manifest
    records = list(snapshot.get("records", []))
    try:
        root = dataset_tree([r["leaf"] for r in records]).root_hex
    except (DatasetError, KeyError, ValueError) as exc:
        report.add("dataset_root", False, f"the dataset list is unusable: {exc}")
        return None
    if root != manifest.dataset.root:
        report.add(
            "dataset_root",
            False,
            f"the {len(records)} listed leaves give root {root[:18]}…, the run trained on "
            f"{manifest.dataset.root[:18]}…: the dataset list was modified",
        )
        return None
    trained = set(manifest.dataset.train_record_ids) | set(manifest.dataset.validation_record_ids)
    listed = {r["record_id"] for r in records}
    if not trained <= listed:
        report.add(
            "dataset_root",
            False,
            f"{len(trained - listed)} trained record ids are not in the dataset list",
        )
        return None
    report.add("dataset_root", True, f"{len(records)} leaves give the dataset root {root[:18]}…")
    return records


def _check_records(
    report: LineageReport,
    records: list[dict[str, Any]],
    *,
    ledger: CorpusLedger,
    academic: AcademicRunView,
) -> None:
    by_batch: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_batch.setdefault(r["batch_id"], []).append(r)
    problems: list[str] = []
    institutions: Counter[str] = Counter()
    for batch_id, items in sorted(by_batch.items()):
        try:
            batch = ledger.batch(batch_id)
            tree = ledger.batch_tree(batch_id)
        except NotFound:
            problems.append(f"batch {batch_id} is not in the ledger")
            continue
        anchor = academic.find_batch_anchor(batch_id)
        if anchor is None or anchor.merkle_root != _b32(batch.merkle_root):
            problems.append(f"batch {batch_id} is not anchored with root {batch.merkle_root}")
            continue
        if academic.institution(batch.institution_id) is None:
            problems.append(f"institution {batch.institution_id} is not registered on chain")
        for item in items:
            if not _leaf_in_tree(tree, item["leaf"]):
                problems.append(f"record {item['record_id']} is not a leaf of batch {batch_id}")
            erasure = ledger.erasure(item["record_id"])
            if erasure is not None:
                report.erased.append(
                    {
                        "record_id": item["record_id"],
                        "batch_id": batch_id,
                        "erased_at": str(erasure["erased_at"]),
                    }
                )
        institutions[batch.institution_id] += len(items)
    report.batches = len(by_batch)
    report.records = len(records)
    report.institutions = dict(sorted(institutions.items()))
    if problems:
        shown = "; ".join(problems[:5]) + (
            f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        report.add("records_and_batches", False, shown)
    else:
        report.add(
            "records_and_batches",
            True,
            f"every record is a leaf of an anchored batch of a registered institution "
            f"({len(records)} records, {len(by_batch)} batches)",
        )


def _leaf_in_tree(tree: StandardMerkleTree, leaf_hex: str) -> bool:
    leaf = _b32(leaf_hex)
    try:
        index = tree.index_of_leaf(leaf)
    except Exception:
        return False
    return verify_proof(root=tree.root, leaf=leaf, proof=tree.proof(index))
