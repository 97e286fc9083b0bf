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

3. **Embedding backends** (``--backend torch,onnx,onnx-int8``; runs this comparison alone and
   writes ``bench/results/governance_backends.json``). Torch is the reference and is added when
   not named. In the same run, for every backend:

   - speed: records/s of ``GovernanceEngine.govern`` (cold embedding cache, models loaded
     beforehand) and of ``Embedder.encode_raw`` on the records' full texts, on the same synthetic
     records for every backend, rounds alternating between backends (median reported);
   - decisions: accept/reject agreement with torch's decisions, record by record, on
     ``examples/governance_cases.jsonl``, every bundled batch in ``examples/`` and the synthetic
     records above; the share of identical reason lists too;
   - planted problems: on the labeled cases (``governance_cases.expected.json``), how many of the
     planted ``off_topic``, ``incoherent`` and ``near_duplicate`` reasons the backend reports, and
     how many cases it decides as labeled;
   - reworded duplicates: recall per kind of the near-duplicate index on a synthetic corpus with
     planted duplicates (``bench/dedup_synth.py``), and false alarms.

   Ratios against torch are printed for records/s and recall.

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
from typing import TYPE_CHECKING, Any

import numpy as np

# ``python bench/governance.py`` puts bench/ first on sys.path, where the generator lives.
from dedup_synth import SynthCorpus, SynthRecord

from ingest.governance.dedup import DedupIndex, DedupItem
from ingest.governance.embeddings import Embedder, EmbeddingBackend

if TYPE_CHECKING:
    from ingest.governance.decisions import BatchGovernance, GovernanceInput
    from ingest.governance.engine import GovernanceEngine

RESULTS = Path(__file__).resolve().parent / "results" / "governance.json"
BACKEND_RESULTS = RESULTS.with_name("governance_backends.json")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Reasons that come from embeddings: what a backend could change.
EMBEDDING_REASONS = ("off_topic", "incoherent", "near_duplicate")
Decided = tuple[bool, tuple[str, ...], dict[str, float]]
"""A record's decision: accepted, its reasons sorted, its scores."""
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


def bench_dedup(
    n: int,
    *,
    seed: int,
    batch_size: int,
    workdir: Path,
    backend: EmbeddingBackend = EmbeddingBackend.ONNX,
    threads: int | None = None,
) -> dict[str, Any]:
    generated_at = time.perf_counter()
    records = SynthCorpus(seed=seed).records(n)
    generate_s = time.perf_counter() - generated_at
    root = {r.record_id: r.duplicate_of or r.record_id for r in records}

    embedder = TimedEmbedder(
        cache_path=workdir / f"embeddings-{n}-{backend.value}.sqlite",
        backend=backend,
        threads=threads,
    )
    for language in ("en", "zh"):
        embedder.warm_up(language=language)
    index_path = workdir / f"dedup-{n}-{backend.value}.sqlite"
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


def open_engine(
    directory: Path, *, backend: EmbeddingBackend, threads: int | None, export_dir: Path
) -> GovernanceEngine:
    """What ``GovernanceEngine.open`` builds, with the embedding backend chosen."""
    from ingest.governance.engine import GovernanceEngine
    from ingest.governance.policy import load_policy
    from ingest.governance.storage import DEDUP_FILE, EMBEDDINGS_FILE, load_cache_key

    policy = load_policy()
    key = load_cache_key(directory)
    embedder = Embedder(
        cache_path=directory / EMBEDDINGS_FILE,
        key=key,
        backend=backend,
        threads=threads,
        export_dir=export_dir,
    )
    index = DedupIndex(
        directory / DEDUP_FILE, embedder=embedder, config=policy.dedup_config(), key=key
    )
    return GovernanceEngine(policy=policy, embedder=embedder, dedup_index=index)


def example_batches() -> dict[str, list[GovernanceInput]]:
    """The governance inputs of every bundled example batch that intake accepts records from."""
    from ingest.banks import ConversionOptions
    from ingest.governance.decisions import GovernanceInput
    from ingest.governance.pii import PiiRedactor
    from ingest.intake import read_batch
    from ingest.mapping import ColumnMapping

    redactor = PiiRedactor()
    mapping = ColumnMapping.load(EXAMPLES / "question_bank_mapping.yaml")
    batches: dict[str, list[GovernanceInput]] = {}
    for path in sorted(EXAMPLES.iterdir()):
        if path.suffix not in {".jsonl", ".json", ".csv"} or path.name.endswith(".expected.json"):
            continue
        conversion = ConversionOptions(mapping=mapping) if path.suffix == ".csv" else None
        intake = read_batch(
            path, institution_id="bupt", desensitizer=redactor, conversion=conversion
        )
        inputs = [
            GovernanceInput.from_record(f"line{r.line}", r.canonical(), r.redactions)
            for r in intake.records
        ]
        if inputs:
            batches[path.name] = inputs
    return batches


def _decisions(batch: BatchGovernance) -> dict[str, Decided]:
    return {
        d.record_id: (d.accepted, tuple(sorted(d.reasons)), dict(d.scores)) for d in batch.decisions
    }


def _agreement(
    reference: dict[str, Decided],
    other: dict[str, Decided],
) -> dict[str, Any]:
    same_decision = sum(reference[k][0] == other[k][0] for k in reference)
    same_reasons = sum(reference[k][1] == other[k][1] for k in reference)
    # How far each score moved from torch's (scores absent on one side are skipped).
    deltas: dict[str, float] = {}
    for k, (_, _, scores) in reference.items():
        for name, value in scores.items():
            if name in other[k][2]:
                delta = abs(other[k][2][name] - value)
                deltas[name] = max(deltas.get(name, 0.0), delta)
    return {
        "records": len(reference),
        "decision_agreement": round(same_decision / max(1, len(reference)), 4),
        "decisions_differing": len(reference) - same_decision,
        "reasons_agreement": round(same_reasons / max(1, len(reference)), 4),
        "max_score_delta": {name: round(v, 4) for name, v in sorted(deltas.items())},
    }


def bench_backends(
    backends: Sequence[EmbeddingBackend],
    *,
    records: int,
    rounds: int,
    dedup_records: int,
    seed: int,
    threads: int | None,
    workdir: Path,
) -> dict[str, Any]:
    """Speed and quality of each backend against torch, measured in one run (see section 3)."""
    from ingest.governance.decisions import GovernanceInput

    backends = [EmbeddingBackend.TORCH, *(b for b in backends if b is not EmbeddingBackend.TORCH)]
    labels = json.loads((EXAMPLES / "governance_cases.expected.json").read_text("utf-8"))["cases"]
    examples = example_batches()
    out: dict[str, Any] = {"backends": [b.value for b in backends], "threads": threads}
    # One export per model and variant for the whole run, as a governance folder keeps.
    exports = workdir / "onnx"

    # Decisions on the bundled examples: one fresh engine per backend and file.
    decisions: dict[str, dict[str, dict[str, Decided]]] = {}
    for backend in backends:
        decisions[backend.value] = {}
        for name, inputs in examples.items():
            engine = open_engine(
                workdir / f"examples-{backend.value}-{name}",
                backend=backend,
                threads=threads,
                export_dir=exports,
            )
            decisions[backend.value][name] = _decisions(engine.govern(inputs))
            engine.embedder.close()
    labeled = "governance_cases.jsonl"
    quality: dict[str, Any] = {}
    for backend in backends:
        mine = decisions[backend.value]
        planted: Counter[str] = Counter()
        found: Counter[str] = Counter()
        as_labeled = 0
        for record_id, (accepted, reasons, _) in mine[labeled].items():
            case = labels[record_id.removeprefix("line")]
            as_labeled += accepted == (case["expect"] == "accept")
            for reason in EMBEDDING_REASONS:
                if reason in case["reasons"]:
                    planted[reason] += 1
                    found[reason] += reason in reasons
        quality[backend.value] = {
            "examples": {
                name: _agreement(decisions["torch"][name], mine[name]) for name in examples
            },
            "labeled_cases_decided_as_labeled": f"{as_labeled}/{len(mine[labeled])}",
            "planted_found": {r: f"{found[r]}/{planted[r]}" for r in EMBEDDING_REASONS},
        }

    # Speed, and agreement on synthetic records: the same records for every backend, rounds
    # alternating between backends so that machine noise hits them alike.
    corpus = SynthCorpus(seed=seed, duplicate_share=0.0)
    warm = [
        GovernanceInput(r.record_id, r.instruction, "", r.output, r.discipline, r.language)
        for r in corpus.records(20)
    ]
    raws = {b: Embedder(backend=b, threads=threads, export_dir=exports) for b in backends}
    engines = {
        b: open_engine(workdir / f"speed-{b.value}", backend=b, threads=threads, export_dir=exports)
        for b in backends
    }
    for backend in backends:
        for language in ("en", "zh"):
            raws[backend].warm_up(language=language)
            engines[backend].embedder.warm_up(language=language)
        engines[backend].govern(warm)
    speed: dict[str, list[dict[str, float]]] = {b.value: [] for b in backends}
    synthetic: dict[str, dict[str, Decided]] = {b.value: {} for b in backends}
    for round_index in range(rounds):
        sample = corpus.records(records)
        inputs = [
            GovernanceInput(r.record_id, r.instruction, "", r.output, r.discipline, r.language)
            for r in sample
        ]
        by_language: dict[str, list[str]] = {}
        for r in sample:
            by_language.setdefault(r.language, []).append(r.text)
        order = backends if round_index % 2 == 0 else list(reversed(backends))
        for backend in order:
            wall, cpu = time.perf_counter(), time.process_time()
            for language, texts in by_language.items():
                raws[backend].encode_raw(texts, language=language)
            raw_s, raw_cpu = time.perf_counter() - wall, time.process_time() - cpu
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(inputs), 100):
                synthetic[backend.value].update(
                    _decisions(engines[backend].govern(inputs[start : start + 100]))
                )
            governed_s, governed_cpu = time.perf_counter() - wall, time.process_time() - cpu
            # Per CPU second too: on a shared machine wall time mostly measures the neighbours.
            speed[backend.value].append(
                {
                    "raw_records_per_s": round(records / raw_s, 1),
                    "governed_records_per_s": round(records / governed_s, 1),
                    "raw_records_per_cpu_s": round(records / raw_cpu, 1),
                    "governed_records_per_cpu_s": round(records / governed_cpu, 1),
                }
            )
            print(f"  round {round_index} {backend.value}: {speed[backend.value][-1]}", flush=True)
    for backend in backends:
        raws[backend].close()
        engines[backend].embedder.close()
        runs = speed[backend.value]
        quality[backend.value]["synthetic"] = _agreement(
            synthetic["torch"], synthetic[backend.value]
        )
        quality[backend.value]["speed"] = {"rounds": runs} | {
            f"{name}_median": statistics.median(r[name] for r in runs)
            for name in (
                "raw_records_per_s",
                "governed_records_per_s",
                "raw_records_per_cpu_s",
                "governed_records_per_cpu_s",
            )
        }

    # Reworded (and other) planted duplicates caught by the near-duplicate index.
    for backend in backends:
        dedup = bench_dedup(
            dedup_records,
            seed=seed,
            batch_size=min(1000, dedup_records),
            workdir=workdir,
            backend=backend,
            threads=threads,
        )
        quality[backend.value]["dedup"] = {
            k: dedup[k] for k in ("records", "planted", "recall", "recall_all", "false_alarms")
        }

    reference = quality["torch"]
    for backend in backends:
        mine = quality[backend.value]
        mine["vs_torch"] = {
            "governed_records_per_s": _ratio(
                mine["speed"]["governed_records_per_s_median"],
                reference["speed"]["governed_records_per_s_median"],
            ),
            "raw_records_per_s": _ratio(
                mine["speed"]["raw_records_per_s_median"],
                reference["speed"]["raw_records_per_s_median"],
            ),
            "governed_records_per_cpu_s": _ratio(
                mine["speed"]["governed_records_per_cpu_s_median"],
                reference["speed"]["governed_records_per_cpu_s_median"],
            ),
            "raw_records_per_cpu_s": _ratio(
                mine["speed"]["raw_records_per_cpu_s_median"],
                reference["speed"]["raw_records_per_cpu_s_median"],
            ),
            "reworded_recall": _ratio(
                mine["dedup"]["recall"].get("reworded", 0.0),
                reference["dedup"]["recall"].get("reworded", 0.0),
            ),
            "recall_all": _ratio(mine["dedup"]["recall_all"], reference["dedup"]["recall_all"]),
        }
    out["results"] = quality
    out["peak_rss_gb"] = round(peak_rss_gb(), 2)
    return out


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None


def print_backends(report: dict[str, Any]) -> None:
    """One line per backend: speed and quality, with the ratios to torch."""
    print("== backends (ratios vs torch)")
    for name, r in report["results"].items():
        examples = r["examples"]
        agreement = min(e["decision_agreement"] for e in examples.values())
        differing = sum(e["decisions_differing"] for e in examples.values())
        print(
            f"  {name:10s} governed {r['speed']['governed_records_per_s_median']:>7} rec/s"
            f" (x{r['vs_torch']['governed_records_per_s']})"
            f"  raw {r['speed']['raw_records_per_s_median']:>7} rec/s"
            f" (x{r['vs_torch']['raw_records_per_s']})"
        )
        print(
            f"  {'':10s} per CPU second: governed"
            f" {r['speed']['governed_records_per_cpu_s_median']:>7}"
            f" (x{r['vs_torch']['governed_records_per_cpu_s']})"
            f"  raw {r['speed']['raw_records_per_cpu_s_median']:>7}"
            f" (x{r['vs_torch']['raw_records_per_cpu_s']})"
        )
        print(
            f"  {'':10s} decisions vs torch: examples min {agreement} ({differing} differ),"
            f" synthetic {r['synthetic']['decision_agreement']}"
            f" ({r['synthetic']['decisions_differing']} differ);"
            f" labeled {r['labeled_cases_decided_as_labeled']}; planted {r['planted_found']}"
        )
        worst: dict[str, float] = {}
        for e in [*examples.values(), r["synthetic"]]:
            for name, v in e["max_score_delta"].items():
                worst[name] = max(worst.get(name, 0.0), v)
        print(f"  {'':10s} largest score change vs torch: {worst}")
        print(
            f"  {'':10s} dedup recall {r['dedup']['recall']} (reworded x"
            f"{r['vs_torch']['reworded_recall']}), false alarms {r['dedup']['false_alarms']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--throughput-records", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON")
    parser.add_argument(
        "--backend",
        type=_backends,
        default=None,
        help="compare these embedding backends against torch (comma-separated:"
        " torch,onnx,onnx-int8) and do nothing else",
    )
    parser.add_argument("--backend-records", type=int, default=200, help="records per round")
    parser.add_argument("--backend-rounds", type=int, default=3)
    parser.add_argument(
        "--dedup-records", type=int, default=2000, help="synthetic corpus for duplicate recall"
    )
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    machine = {
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    if args.backend is not None:
        with tempfile.TemporaryDirectory(prefix="byr-bench-backends-") as tmp:
            backends = {
                "benchmark": "governance-backends",
                "machine": machine,
                **bench_backends(
                    args.backend,
                    records=args.backend_records,
                    rounds=args.backend_rounds,
                    dedup_records=args.dedup_records,
                    seed=7,
                    threads=args.threads,
                    workdir=Path(tmp),
                ),
            }
        print_backends(backends)
        output = args.output or BACKEND_RESULTS
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(backends, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}")
        return 0

    report: dict[str, Any] = {
        "benchmark": "governance",
        "machine": machine,
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

    output = args.output or RESULTS
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0


def _backends(value: str) -> list[EmbeddingBackend]:
    try:
        return [EmbeddingBackend.parse(name.strip()) for name in value.split(",") if name.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


if __name__ == "__main__":
    sys.exit(main())
