"""Search quality on a labeled query set, and query latency over a large synthetic corpus.

Run: ``.venv/bin/python bench/search.py [--records 100000] [--out bench/results/search.json]
[--sweep]`` (minutes on 2 cores: governance of the labeled corpus with the real models, then the
large index). ``--records 0`` skips the latency part.

Quality. A fresh home (``byr init``: SQLite log, eth-tester chains) takes
``bench/search_corpus.jsonl`` (214 records, the six disciplines, zh and en) through the real
pipeline: intake and desensitization, governance with its models, anchoring and rewards. The
search service then indexes what governance accepted, as it does on a server, and every query of
``bench/search_queries.jsonl`` runs in each mode (lexical, embedding, hybrid). A query's relevant
records are named by a key, the first 16 hex digits of the SHA-256 of the corpus line's
``instruction``, ``input`` and ``output`` joined by newlines; relevant records governance rejected
are left out of that query's relevant set (and counted). Printed: recall@10 and MRR per mode,
overall and per language. ``--sweep`` also prints hybrid's figures for other fusion weights and for
reciprocal-rank fusion (the figures behind ``ingest.search.fusion.LEXICAL_WEIGHT``).

Latency. An in-memory index holds the labeled documents plus filler up to ``--records``. Filler
documents combine two labeled records: the terms of one's instruction and the other's output, and
the normalized mean of their vectors (embedding 100k texts on 2 cores would take hours; what a
query costs depends on the matrix's size, not on its values). The baseline, measured in the same
run, is the same queries on the labeled documents alone, so the ratios say what 100k records add.
Each query's time includes embedding the query (the model of its language).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

import numpy as np  # noqa: E402

from api.composition import Parts, initialize  # noqa: E402
from ingest.search.index import Fusion, SearchIndex, SearchMode  # noqa: E402
from ingest.search.store import SearchDocument  # noqa: E402
from ingest.search.tokenize import term_list  # noqa: E402
from ledger.settings import LedgerSettings  # noqa: E402

CORPUS = HERE / "search_corpus.jsonl"
QUERIES = HERE / "search_queries.jsonl"
RESULTS = HERE / "results" / "search.json"
SEED = 20261202
K = 10
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
RRF_KS = (5, 10, 20, 60, 100)


def record_key(record: dict[str, Any]) -> str:
    text = "\n".join((record["instruction"], record.get("input", ""), record["output"]))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_queries() -> list[dict[str, Any]]:
    return [json.loads(line) for line in QUERIES.read_text(encoding="utf-8").splitlines() if line]


def score(
    index: SearchIndex,
    queries: Sequence[dict[str, Any]],
    relevant: dict[str, set[str]],
    key_of: dict[str, str],
    mode: SearchMode,
) -> dict[str, Any]:
    """recall@K and MRR (first relevant hit in the first 100) of ``mode``, overall and per
    language."""
    per: dict[str, list[tuple[float, float]]] = {"all": [], "zh": [], "en": []}
    for q in queries:
        wanted = relevant[q["id"]]
        if not wanted:
            continue
        keys = [key_of.get(h.record_id) for h in index.search(q["query"], mode=mode, limit=100)]
        recall = len(wanted & set(keys[:K])) / len(wanted)
        first = next((i for i, k in enumerate(keys, start=1) if k in wanted), None)
        rr = 0.0 if first is None else 1.0 / first
        per["all"].append((recall, rr))
        per[q["language"]].append((recall, rr))
    return {
        name: {
            "queries": len(rows),
            f"recall@{K}": round(statistics.fmean(r for r, _ in rows), 4) if rows else None,
            "mrr": round(statistics.fmean(m for _, m in rows), 4) if rows else None,
        }
        for name, rows in per.items()
    }


def filler(
    labeled: Sequence[SearchDocument], texts: dict[str, tuple[str, str]], n: int, rng: random.Random
) -> list[SearchDocument]:
    """``n`` synthetic documents, each made of two labeled documents of the same model."""
    by_model: dict[str, list[SearchDocument]] = {}
    for doc in labeled:
        by_model.setdefault(doc.model, []).append(doc)
    term_cache: dict[tuple[str, int], tuple[str, ...]] = {}

    def terms_of(doc: SearchDocument, part: int) -> tuple[str, ...]:
        key = (doc.record_id, part)
        if key not in term_cache:
            term_cache[key] = tuple(term_list(texts[doc.record_id][part]))
        return term_cache[key]

    models = sorted(by_model)
    out = []
    for i in range(n):
        pool = by_model[models[i % len(models)]]
        a, b = rng.choice(pool), rng.choice(pool)
        vector = a.vector + b.vector
        vector = (vector / np.linalg.norm(vector)).astype(np.float32)
        out.append(
            SearchDocument(
                record_id=f"filler-{i}",
                batch_id="filler",
                institution_id=a.institution_id,
                discipline=a.discipline,
                task_type=b.task_type,
                language=a.language,
                quality=round(rng.random(), 4),
                model=a.model,
                terms=terms_of(a, 0) + terms_of(b, 1),
                vector=vector,
            )
        )
    return out


def latency(index: SearchIndex, queries: Sequence[str], rounds: int) -> dict[str, dict[str, float]]:
    """p50 and p99 per mode; the modes take turns on each query, so that a slow moment of the
    machine falls on all of them alike."""
    times: dict[str, list[float]] = {m.value: [] for m in SearchMode}
    for _ in range(rounds):
        for q in queries:
            for mode in SearchMode:
                t0 = time.perf_counter()
                index.search(q, mode=mode, limit=10)
                times[mode.value].append(1000 * (time.perf_counter() - t0))
    out: dict[str, dict[str, float]] = {}
    for name, samples in times.items():
        samples.sort()
        out[name] = {
            "p50_ms": round(statistics.median(samples), 2),
            "p99_ms": round(samples[min(len(samples) - 1, int(0.99 * len(samples)))], 2),
            "samples": len(samples),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records for the latency part")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the queries per mode")
    parser.add_argument("--sweep", action="store_true", help="also try other fusion constants")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    lines = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    queries = load_queries()
    result: dict[str, Any] = {"corpus_records": len(lines), "queries": len(queries)}
    with tempfile.TemporaryDirectory(prefix="byr-search-") as tmp:
        settings = LedgerSettings(home=Path(tmp) / "home")
        initialize(settings)
        with Parts(settings) as parts:
            t0 = time.perf_counter()
            outcome = parts.submission.submit_bytes(
                CORPUS.read_bytes(), source_name=CORPUS.name, institution_id="bupt", wait=True
            )
            pipeline_s = time.perf_counter() - t0
            assert outcome.batch is not None
            ledger = parts.ledger
            views = ledger.records(outcome.batch.batch_id)
            key_of = {
                v.record_id: record_key(lines[v.source_line - 1])
                for v in views
                if v.source_line is not None
            }
            accepted = {key_of[v.record_id] for v in views if v.status == "accepted"}
            t0 = time.perf_counter()
            synced = parts.search.sync()
            index_s = time.perf_counter() - t0
            index = parts.search.index
            relevant = {q["id"]: set(q["relevant"]) & accepted for q in queries}
            result |= {
                "accepted_records": len(accepted),
                "relevant_rejected_by_governance": sum(
                    len(set(q["relevant"]) - accepted) for q in queries
                ),
                "pipeline_s": round(pipeline_s, 1),
                "index_s": round(index_s, 2),
                "indexed": synced["added"],
            }
            quality = {m.value: score(index, queries, relevant, key_of, m) for m in SearchMode}
            result["quality"] = quality
            if args.sweep:
                sweep = {}
                chosen = (index.fusion, index.lexical_weight, index.rrf_k)
                for weight in WEIGHTS:
                    index.fusion, index.lexical_weight = Fusion.WEIGHTED, weight
                    figures = score(index, queries, relevant, key_of, SearchMode.HYBRID)
                    sweep[f"weighted w={weight}"] = figures["all"]
                for k in RRF_KS:
                    index.fusion, index.rrf_k = Fusion.RRF, k
                    figures = score(index, queries, relevant, key_of, SearchMode.HYBRID)
                    sweep[f"rrf k={k}"] = figures["all"]
                index.fusion, index.lexical_weight, index.rrf_k = chosen
                result["fusion_sweep"] = sweep

            print(f"{len(lines)} records, {len(accepted)} accepted, {len(queries)} queries")
            print(f"{'mode':<10} {'recall@10':>10} {'MRR':>7}   zh r@10  zh MRR   en r@10  en MRR")
            for mode, figures in quality.items():
                a, z, e = figures["all"], figures["zh"], figures["en"]
                print(
                    f"{mode:<10} {a['recall@10']:>10.3f} {a['mrr']:>7.3f}   {z['recall@10']:>7.3f}"
                    f" {z['mrr']:>7.3f}   {e['recall@10']:>7.3f} {e['mrr']:>7.3f}"
                )
            for name, figures in result.get("fusion_sweep", {}).items():
                print(
                    f"  {name:<26} recall@10 {figures['recall@10']:.3f}  MRR {figures['mrr']:.3f}"
                )

            if args.records > 0:
                labeled = index.indexed()
                texts = {
                    v.record_id: (v.record["instruction"], v.record["output"])
                    for v in views
                    if v.record is not None
                }
                query_texts = [q["query"] for q in queries]
                base = SearchIndex(encoder=index.encoder)
                base.add(labeled)
                base.search("warm up", limit=1)
                baseline = latency(base, query_texts, args.rounds)
                rng = random.Random(SEED)
                t0 = time.perf_counter()
                extra = filler(labeled, texts, max(0, args.records - len(labeled)), rng)
                generate_s = time.perf_counter() - t0
                large = SearchIndex(encoder=index.encoder)
                large.add(labeled)
                large.add(extra)
                t0 = time.perf_counter()
                large.search("warm up", limit=1)  # builds BM25 and the matrices
                build_s = time.perf_counter() - t0
                measured = latency(large, query_texts, args.rounds)
                result["latency"] = {
                    "records": len(large),
                    "generate_s": round(generate_s, 1),
                    "build_s": round(build_s, 2),
                    "baseline_records": len(base),
                    "baseline": baseline,
                    "measured": measured,
                    "ratio_p50": {
                        m: round(measured[m]["p50_ms"] / baseline[m]["p50_ms"], 2) for m in measured
                    },
                    "ratio_p99": {
                        m: round(measured[m]["p99_ms"] / baseline[m]["p99_ms"], 2) for m in measured
                    },
                }
                lat = result["latency"]
                print(
                    f"latency over {lat['records']} records (index build {build_s:.1f} s;"
                    f" baseline {len(base)} records)"
                )
                for m in measured:
                    print(
                        f"  {m:<10} p50 {measured[m]['p50_ms']:7.2f} ms"
                        f"  p99 {measured[m]['p99_ms']:7.2f} ms"
                        f"   ratio p50 {lat['ratio_p50'][m]}  p99 {lat['ratio_p99'][m]}"
                    )

    result["machine"] = {"python": platform.python_version(), "cpu_count": _cpus()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
