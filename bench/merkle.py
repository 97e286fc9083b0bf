"""Benchmark: build, prove, dump/load and verify OpenZeppelin-compatible Merkle trees.

Runs every size once per keccak backend of eth-hash (each in its own process, because eth-hash picks
its backend at first use), prints medians and the backend ratio, and writes
``bench/results/merkle.json``.

    .venv/bin/python bench/merkle.py [--sizes 1000,10000,100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "merkle.json"
BACKENDS = ("pysha3", "pycryptodome")


def _median_seconds(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    """Timings (median seconds) for each size with the backend of this process."""
    sys.path.insert(0, str(ROOT))
    from ledger.merkle import StandardMerkleTree, verify_proof

    rows = []
    for n in sizes:
        values = [(os.urandom(32), os.urandom(32)) for _ in range(n)]
        tree = StandardMerkleTree.of(values)
        dump = tree.dump()
        # Verification cost grows with n log n; a fixed sample keeps the benchmark short.
        sample = range(0, n, max(1, n // 10_000))
        proofs = [tree.proof(i) for i in sample]
        leaves = [tree.leaf(i) for i in sample]
        rows.append(
            {
                "leaves": n,
                "build_s": _median_seconds(lambda v=values: StandardMerkleTree.of(v), repeat),
                "all_proofs_s": _median_seconds(
                    lambda t=tree, k=n: [t.proof(i) for i in range(k)], repeat
                ),
                "verified_proofs": len(proofs),
                "verify_s": _median_seconds(
                    lambda t=tree, p=proofs, lv=leaves: [
                        verify_proof(root=t.root, leaf=leaf, proof=prf)
                        for leaf, prf in zip(lv, p, strict=True)
                    ],
                    repeat,
                ),
                "load_dump_s": _median_seconds(lambda d=dump: StandardMerkleTree.load(d), repeat),
                "proof_length": len(proofs[0]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        print(json.dumps(measure(sizes, args.repeat)))
        return

    results: dict[str, Any] = {}
    for backend in BACKENDS:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                f"--sizes={args.sizes}",
                f"--repeat={args.repeat}",
            ],
            env={**os.environ, "ETH_HASH_BACKEND": backend},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"{backend}: unavailable ({proc.stderr.strip().splitlines()[-1]})")
            continue
        results[backend] = json.loads(proc.stdout)

    print(f"{'backend':<14}{'leaves':>8}{'build':>9}{'proofs':>9}{'verify*':>9}{'load':>9}  (s)")
    for backend, rows in results.items():
        for row in rows:
            print(
                f"{backend:<14}{row['leaves']:>8}{row['build_s']:>9.3f}{row['all_proofs_s']:>9.3f}"
                f"{row['verify_s']:>9.3f}{row['load_dump_s']:>9.3f}"
            )
    print("* verify: at most 10,000 proofs per size")
    if all(b in results for b in BACKENDS):
        fast, slow = results[BACKENDS[0]][-1], results[BACKENDS[1]][-1]
        print(
            f"build of {fast['leaves']} leaves: {BACKENDS[1]} / {BACKENDS[0]} = "
            f"{slow['build_s'] / fast['build_s']:.1f}x"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "merkle",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "repeat": args.repeat,
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
