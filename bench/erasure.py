"""The cost of erasure on an embedded home, against the cost of recording the same records.

Run: ``.venv/bin/python bench/erasure.py [--records 1000] [--batch-size 100] [--governed 200]``
(a few minutes on 2 cores). Writes ``bench/results/erasure.json``.

A fresh home (``byr init``: SQLite log, eth-tester chains) records ``--records`` synthetic records
(``bench/dedup_synth.py``) in batches; the first ``--governed`` of them are also carried through
governance (real models: their near-duplicate index entries and cached embeddings exist, so their
erasure purges those too), anchoring and rewards. Then every record is erased through
``ErasureService`` (what ``byr erase`` and ``DELETE /v1/records/{id}`` call), one request each:
``RecordErased`` appended, the body deleted from the record store with secure delete and a WAL
truncation, the governance copies purged. The baseline, measured in the same run, is the cost of
recording a record (``CorpusLedger.submit_batch``, per record), so the printed ratio says how many
submissions of a record one erasure costs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

from api.composition import Parts, initialize  # noqa: E402
from api.services.erasure import ErasureRequest  # noqa: E402
from bench.dedup_synth import SynthCorpus  # noqa: E402
from ledger.batching import RecordInput  # noqa: E402
from ledger.settings import LedgerSettings  # noqa: E402

RESULTS = HERE / "results" / "erasure.json"
SEED = 20261202


def canonical(record: Any) -> dict[str, str]:
    return {
        "instruction": record.instruction,
        "input": "",
        "output": record.output,
        "discipline": record.discipline,
        "task_type": "knowledge_qa",
        "language": record.language,
        "license": "CC-BY-4.0",
        "institution_id": "bupt",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--governed", type=int, default=200, help="records also governed")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    corpus = SynthCorpus(seed=SEED, duplicate_share=0.0)
    records = corpus.records(args.records)
    with tempfile.TemporaryDirectory(prefix="byr-erasure-") as tmp:
        settings = LedgerSettings(home=Path(tmp) / "home")
        initialize(settings)
        with Parts(settings) as parts:
            ledger = parts.ledger
            record_ids: list[str] = []
            submit_s = governance_s = 0.0
            for start in range(0, len(records), args.batch_size):
                chunk = records[start : start + args.batch_size]
                t0 = time.perf_counter()
                submitted = ledger.submit_batch(
                    institution_id="bupt",
                    source_name=f"bench-{start}.json",
                    records=[RecordInput(canonical=canonical(r)) for r in chunk],
                    policy_version="bench",
                )
                submit_s += time.perf_counter() - t0
                record_ids += submitted.record_ids
                if start + len(chunk) <= args.governed:
                    # Governed, anchored and rewarded now; later batches stay pending.
                    t0 = time.perf_counter()
                    parts.pipeline.drain()
                    governance_s += time.perf_counter() - t0
            status = ledger.status()

            latencies: list[float] = []
            removed = {"body": 0, "near_duplicate_index_entries": 0, "cached_embeddings": 0}
            erase_started = time.perf_counter()
            for record_id in record_ids:
                t0 = time.perf_counter()
                result = parts.erasure.erase(ErasureRequest(record_id, "benchmark", "bupt"))
                latencies.append(time.perf_counter() - t0)
                removed["body"] += int(result["removed"]["body"])
                removed["near_duplicate_index_entries"] += result["removed"][
                    "near_duplicate_index_entries"
                ]
                removed["cached_embeddings"] += result["removed"]["cached_embeddings"]
            erase_s = time.perf_counter() - erase_started
            replay_equal = ledger.replay().equal

    n = len(record_ids)
    submit_ms = 1000 * submit_s / n
    erase_ms = 1000 * erase_s / n
    latencies_ms = sorted(1000 * x for x in latencies)
    result: dict[str, Any] = {
        "records": n,
        "governed_records": status.records_by_status.get("accepted", 0)
        + status.records_by_status.get("rejected", 0),
        "baseline_submit_ms_per_record": round(submit_ms, 3),
        "erase_ms_per_record": round(erase_ms, 3),
        "erase_total_s": round(erase_s, 2),
        "erase_latency_ms": {
            "median": round(statistics.median(latencies_ms), 2),
            "p95": round(latencies_ms[int(0.95 * (n - 1))], 2),
            "max": round(latencies_ms[-1], 2),
        },
        "ratio_erase_to_submit": round(erase_ms / submit_ms, 2),
        "removed": removed,
        "governance_s": round(governance_s, 1),
        "replay_equal": replay_equal,
        "machine": {"python": platform.python_version(), "cpu_count": _cpus()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{n} records ({result['governed_records']} governed)")
    print(f"baseline: record a record      {submit_ms:8.3f} ms")
    print(
        f"erase one record (each alone)  {erase_ms:8.3f} ms   ratio "
        f"{result['ratio_erase_to_submit']}   median {result['erase_latency_ms']['median']} ms, "
        f"p95 {result['erase_latency_ms']['p95']} ms"
    )
    print(f"erase all {n}: {erase_s:.2f} s; removed {removed}; replay equal: {replay_equal}")
    print(f"wrote {args.output}")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
