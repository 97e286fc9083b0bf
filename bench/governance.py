"""Governance benchmark: the near-duplicate index at scale, and the whole governance step against
raw embedding throughput.

Run: ``.venv/bin/python bench/governance.py`` (about 5 minutes on 2 cores). Prints each figure with
its target and writes ``bench/results/governance.json``.

1. **Near-duplicate index at scale** (10k and 100k synthetic records, ``bench/dedup_synth.py``,
   with ~3% planted duplicates: exact, sentence-reordered and reworded). Records arrive in batches
   of 1000; each batch is checked with ``DedupIndex.find_duplicates`` and its non-duplicates are
   added, as governance does. Measured, for a fresh index and a cold embedding cache:

   - ``index_s``: everything the index does (normalization, exact keys, MinHash signatures, LSH
     lookups, candidate verification, SQLite writes, cache lookups) = ``total_s - embed_s``;
   - ``embed_s``: time inside the embedding model, which runs only on LSH candidates that need the
     embedding stage (the number of texts is reported);
   - recall on planted duplicates per kind, and false alarms among the originals.

   Targets: ``index_s`` <= 120 s for 100k and ``index_s(100k) / index_s(10k)`` <= 15.

2. **Governance throughput**: records/s of ``GovernanceEngine.govern`` (text checks, term
   coverage, coherence, near duplicates, novelty, rewards; cold embedding cache, models loaded
   beforehand) against records/s of ``Embedder.encode_raw`` on the same records' full texts
   (instruction + output, one text per record) in the same run. Target ratio >= 0.7. Rounds
   alternate raw and governed runs on fresh records; the median ratio is reported.

Peak memory is the process's peak resident set (models included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# ``python bench/governance.py`` puts bench/ first on sys.path, where the generator lives.
from dedup_synth import SynthCorpus, SynthRecord

from ingest.governance.dedup import DedupIndex, DedupItem
from ingest.governance.embeddings import Embedder

RESULTS = Path(__file__).resolve().parent / "results" / "governance.json"
TARGETS = {
    "dedup_100k_index_s": 120.0,
    "dedup_scaling_100k_over_10k": 15.0,
    "throughput_ratio": 0.7,
    "peak_rss_gb": 4.0,
}


class TimedEmbedder(Embedder):
    """An :class:`Embedder` that also accumulates the time spent in :meth:`encode`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encode_s = 0.0

    def encode(
        self, texts: Sequence[str], *, language: str, owners: Sequence[str] | None = None
    ) -> np.ndarray:
        start = time.perf_counter()
        try:
            return super().encode(texts, language=language, owners=owners)
        finally:
            self.encode_s += time.perf_counter() - start


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _item(record: SynthRecord) -> DedupItem:
    return DedupItem(record.record_id, record.text, record.language)


def bench_dedup(n: int, *, seed: int, batch_size: int, workdir: Path) -> dict[str, Any]:
    generated_at = time.perf_counter()
    records = SynthCorpus(seed=seed).records(n)
    generate_s = time.perf_counter() - generated_at
    root = {r.record_id: r.duplicate_of or r.record_id for r in records}

    embedder = TimedEmbedder(cache_path=workdir / f"embeddings-{n}.sqlite")
    for language in ("en", "zh"):
        embedder.warm_up(language=language)
    index_path = workdir / f"dedup-{n}.sqlite"
    index = DedupIndex(index_path, embedder=embedder)
    matches: dict[str, Any] = {}
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for start in range(0, n, batch_size):
        items = [_item(r) for r in records[start : start + batch_size]]
        found = index.find_duplicates(items)
        index.add([item for item, match in zip(items, found, strict=True) if match is None])
        matches.update(
            (item.record_id, match) for item, match in zip(items, found, strict=True) if match
        )
    total_s = time.perf_counter() - wall_start
    cpu_s = time.process_time() - cpu_start
    stored = len(index)
    index.close()

    reopened_at = time.perf_counter()
    with DedupIndex(index_path, embedder=None) as reopened:
        assert len(reopened) == stored
    reopen_s = time.perf_counter() - reopened_at

    planted: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    false_alarms = 0
    for record in records:
        match = matches.get(record.record_id)
        if record.duplicate_of is None:
            false_alarms += match is not None
            continue
        planted[record.kind] += 1
        if match is not None and root[match.record_id] == record.duplicate_of:
            caught[record.kind] += 1
            methods[f"{record.kind}->{match.method}"] += 1
    originals = sum(1 for r in records if r.duplicate_of is None)
    embed_s = embedder.encode_s
    result = {
        "records": n,
        "batch_size": batch_size,
        "generate_s": round(generate_s, 2),
        "total_s": round(total_s, 2),
        "cpu_s": round(cpu_s, 2),
        "embed_s": round(embed_s, 2),
        "index_s": round(total_s - embed_s, 2),
        "texts_embedded": embedder.stats.texts_encoded,
        "reopen_s": round(reopen_s, 2),
        "stored": stored,
        "index_file_mb": round(index_path.stat().st_size / 1e6, 1),
        "planted": dict(planted),
        "recall": {k: round(caught[k] / planted[k], 3) for k in sorted(planted)},
        "recall_all": round(sum(caught.values()) / max(1, sum(planted.values())), 3),
        "methods": dict(sorted(methods.items())),
        "false_alarms": false_alarms,
        "false_alarm_rate": round(false_alarms / originals, 5),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    embedder.close()
    return result


def bench_throughput(
    *, records: int, rounds: int, seed: int, batch_size: int, workdir: Path
) -> dict[str, Any]:
    from ingest.governance.engine import GovernanceEngine, GovernanceInput

    corpus = SynthCorpus(seed=seed, duplicate_share=0.0)

    def inputs(batch: list[SynthRecord]) -> list[GovernanceInput]:
        return [
            GovernanceInput(
                record_id=r.record_id,
                instruction=r.instruction,
                input="",
                output=r.output,
                discipline=r.discipline,
                language=r.language,
            )
            for r in batch
        ]

    raw = Embedder()
    engine = GovernanceEngine.open(directory=workdir / "engine")
    for language in ("en", "zh"):
        raw.warm_up(language=language)
        engine.embedder.warm_up(language=language)
    # Builds the spaCy pipelines, jieba's dictionary and the glossary matchers once.
    engine.govern(inputs(corpus.records(20)))

    runs: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    for _ in range(rounds):
        sample = corpus.records(records)
        by_language: dict[str, list[str]] = {}
        for r in sample:
            by_language.setdefault(r.language, []).append(r.text)
        wall, cpu = time.perf_counter(), time.process_time()
        for language, texts in by_language.items():
            raw.encode_raw(texts, language=language)
        raw_wall, raw_cpu = time.perf_counter() - wall, time.process_time() - cpu

        before = engine.embedder.stats.texts_encoded
        wall, cpu = time.perf_counter(), time.process_time()
        accepted = 0
        for start in range(0, len(sample), batch_size):
            outcome = engine.govern(inputs(sample[start : start + batch_size]))
            accepted += len(outcome.accepted_record_ids)
            for decision in outcome.decisions:
                reasons.update(decision.reasons)
        gov_wall, gov_cpu = time.perf_counter() - wall, time.process_time() - cpu
        runs.append(
            {
                "raw_records_per_s": round(records / raw_wall, 1),
                "governed_records_per_s": round(records / gov_wall, 1),
                "ratio": round(raw_wall / gov_wall, 3),
                "ratio_cpu": round(raw_cpu / gov_cpu, 3),
                "accepted": accepted,
                "texts_embedded_by_governance": engine.embedder.stats.texts_encoded - before,
            }
        )
        print(f"  throughput round: {runs[-1]}", flush=True)
    return {
        "records_per_round": records,
        "rounds": runs,
        "ratio_median": statistics.median(r["ratio"] for r in runs),
        "ratio_cpu_median": statistics.median(r["ratio_cpu"] for r in runs),
        "raw_records_per_s_median": statistics.median(r["raw_records_per_s"] for r in runs),
        "governed_records_per_s_median": statistics.median(
            r["governed_records_per_s"] for r in runs
        ),
        "rejection_reasons": dict(reasons.most_common()),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--throughput-records", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    report: dict[str, Any] = {
        "benchmark": "governance",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "targets": TARGETS,
        "dedup": {},
    }
    with tempfile.TemporaryDirectory(prefix="byr-bench-governance-") as tmp:
        workdir = Path(tmp)
        for n in args.sizes:
            print(f"== near-duplicate index, {n} records", flush=True)
            result = bench_dedup(n, seed=n, batch_size=args.batch_size, workdir=workdir)
            report["dedup"][str(n)] = result
            print(f"  {json.dumps(result)}", flush=True)
        if not args.skip_throughput:
            print("== governance step vs raw embedding", flush=True)
            report["throughput"] = bench_throughput(
                records=args.throughput_records,
                rounds=args.rounds,
                seed=7,
                batch_size=100,
                workdir=workdir,
            )

    summary: dict[str, Any] = {}
    dedup = report["dedup"]
    if "100000" in dedup:
        summary["dedup_100k_index_s"] = dedup["100000"]["index_s"]
    if "10000" in dedup and "100000" in dedup:
        summary["dedup_scaling_100k_over_10k"] = round(
            dedup["100000"]["index_s"] / dedup["10000"]["index_s"], 2
        )
    if "throughput" in report:
        summary["throughput_ratio"] = report["throughput"]["ratio_median"]
    summary["peak_rss_gb"] = round(peak_rss_gb(), 2)
    report["summary"] = summary
    print("== summary (value / target)")
    for key, value in summary.items():
        target = TARGETS[key]
        ok = value >= target if key == "throughput_ratio" else value <= target
        print(f"  {key:32s} {value:>10} / {target:<8} {'ok' if ok else 'MISSED'}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
