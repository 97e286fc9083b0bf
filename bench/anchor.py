"""Benchmark: gas per record when a batch is anchored as one Merkle root, against one tx per record.

For batches of 1, 10, 100 and 1000 records it sends one ``anchorBatch`` transaction (its gas does
not depend on the record count: the records stay off chain behind the root) and compares it with
anchoring every record in its own transaction (``anchorBatch`` with one record, the record's leaf as
root). Every per-record transaction writes the same two fresh storage slots, so its gas is constant;
the baseline is measured on ``--samples`` transactions and multiplied by the batch size. It also
measures the gas of ``verifyRecord`` for a real proof at each batch size. Prints a table and the
ratios, and writes ``bench/results/anchor.json``.

    .venv/bin/python bench/anchor.py [--sizes 1,10,100,1000] [--samples 50] [--backend tester|anvil]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "anchor.json"
INSTITUTION = "bench-institution"


def _connect(backend: str) -> tuple[Any, Any, Any]:
    """(academic chain, incentive chain, cleanup) on the requested backend."""
    sys.path.insert(0, str(ROOT))
    from ledger.chain import ACADEMIC_CHAIN_ID, INCENTIVE_CHAIN_ID, connect_rpc, connect_tester
    from ledger.chain.accounts import DEV_PRIVATE_KEYS
    from ledger.chain.anvil import AnvilNode

    if backend == "tester":
        return (
            connect_tester(chain_id=ACADEMIC_CHAIN_ID),
            connect_tester(chain_id=INCENTIVE_CHAIN_ID),
            lambda: None,
        )
    nodes = [AnvilNode(chain_id=ACADEMIC_CHAIN_ID).start()]
    nodes.append(AnvilNode(chain_id=INCENTIVE_CHAIN_ID).start())
    chains = [connect_rpc(url=n.url, private_key=DEV_PRIVATE_KEYS[0]) for n in nodes]

    def stop_nodes() -> None:
        for node in nodes:
            node.stop()

    return chains[0], chains[1], stop_nodes


def run(sizes: list[int], samples: int, backend: str) -> dict[str, Any]:
    from ledger.chain import ServiceRoles, deploy_contracts, dev_accounts
    from ledger.merkle import StandardMerkleTree

    accounts = dev_accounts()
    academic, incentive, cleanup = _connect(backend)
    try:
        deployments = deploy_contracts(
            academic=academic, incentive=incentive, roles=ServiceRoles.from_dev(accounts)
        )
        admin = deployments.academic_client(academic)
        admin.register_institution(
            institution_id=INSTITUTION, account=accounts.institutions[0].address
        )
        ledger = admin.with_signer(accounts.submitter)

        # Baseline: one transaction per record.
        started = time.perf_counter()
        per_record = [
            ledger.anchor_batch(
                batch_id=f"record-{i}",
                merkle_root=os.urandom(32),
                metadata_hash=os.urandom(32),
                institution_id=INSTITUTION,
                record_count=1,
            ).gas_used
            for i in range(samples)
        ]
        per_record_s = time.perf_counter() - started
        baseline = statistics.mean(per_record)

        rows = []
        for n in sizes:
            tree = StandardMerkleTree.of([(os.urandom(32), os.urandom(32)) for _ in range(n)])
            result = ledger.anchor_batch(
                batch_id=f"batch-{n}",
                merkle_root=tree.root,
                metadata_hash=os.urandom(32),
                institution_id=INSTITUTION,
                record_count=n,
            )
            last = n - 1
            proof = tree.proof(last)
            assert ledger.verify_record(batch_id=f"batch-{n}", leaf=tree.leaf(last), proof=proof)
            verify_gas = _verify_gas(
                ledger, batch_id=f"batch-{n}", leaf=tree.leaf(last), proof=proof
            )
            per_record_total = baseline * n
            rows.append(
                {
                    "records": n,
                    "batch_tx_gas": result.gas_used,
                    "batch_gas_per_record": result.gas_used / n,
                    "per_record_total_gas": per_record_total,
                    "per_record_gas_per_record": baseline,
                    "ratio_per_record_over_batch": per_record_total / result.gas_used,
                    "verify_record_gas": verify_gas,
                    "proof_length": len(proof),
                }
            )
        return {
            "backend": backend,
            "chain_id": academic.chain_id,
            "compiler": _compiler_version(),
            "python": platform.python_version(),
            "per_record_baseline": {
                "samples": samples,
                "mean_gas": baseline,
                "min_gas": min(per_record),
                "max_gas": max(per_record),
                "tx_per_second": samples / per_record_s,
            },
            "rows": rows,
        }
    finally:
        academic.close()
        incentive.close()
        cleanup()


def _verify_gas(ledger: Any, *, batch_id: str, leaf: bytes, proof: list[bytes]) -> int:
    """Gas of a verifyRecord call as a transaction would pay it (eth_estimateGas)."""
    from ledger.ids import id_key

    contract = ledger.chain.w3.eth.contract(address=ledger.address, abi=ledger.artifact.abi_list)
    return int(contract.functions.verifyRecord(id_key(batch_id), leaf, proof).estimate_gas())


def _compiler_version() -> str:
    from contracts import load_artifact

    return load_artifact("AcademicLedger").compiler_version


def print_table(report: dict[str, Any]) -> None:
    base = report["per_record_baseline"]
    print(
        f"backend {report['backend']}, one tx per record: {base['mean_gas']:.0f} gas "
        f"(min {base['min_gas']}, max {base['max_gas']}, {base['samples']} txs, "
        f"{base['tx_per_second']:.0f} tx/s)"
    )
    header = (
        f"{'records':>8} {'batch tx gas':>13} {'gas/record':>11} "
        f"{'per-record total':>17} {'ratio':>8} {'verify gas':>11} {'proof':>6}"
    )
    print(header)
    for row in report["rows"]:
        print(
            f"{row['records']:>8} {row['batch_tx_gas']:>13,} {row['batch_gas_per_record']:>11,.1f} "
            f"{row['per_record_total_gas']:>17,.0f} {row['ratio_per_record_over_batch']:>7,.0f}x "
            f"{row['verify_record_gas']:>11,} {row['proof_length']:>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100,1000", help="comma-separated batch sizes")
    parser.add_argument(
        "--samples", type=int, default=50, help="per-record transactions to measure"
    )
    parser.add_argument("--backend", choices=["tester", "anvil"], default="tester")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON report")
    args = parser.parse_args()
    started = time.perf_counter()
    report = run([int(s) for s in args.sizes.split(",")], args.samples, args.backend)
    report["wall_s"] = time.perf_counter() - started
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
