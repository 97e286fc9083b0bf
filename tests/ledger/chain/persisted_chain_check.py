"""Run in a separate process by test_persistence.py: reopen persisted tester chains and check them.

Usage: python -m tests.ledger.chain.persisted_chain_check <academic.db> <incentive.db>
<deployments.json> Prints one JSON object with what it found, after anchoring one more batch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eth_utils import keccak

from ledger.chain import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    Deployments,
    connect_tester,
    dev_accounts,
)


def main(academic_path: str, incentive_path: str, deployments_path: str) -> None:
    accounts = dev_accounts()
    academic = connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=Path(academic_path))
    incentive = connect_tester(chain_id=INCENTIVE_CHAIN_ID, state_path=Path(incentive_path))
    deployments = Deployments.load(Path(deployments_path))
    ledger = deployments.academic_client(academic)
    token = deployments.token_client(incentive)
    anchor = ledger.find_batch_anchor("batch-1")
    reward = token.find_reward(keccak(text="contribution-1"))
    receipt = academic.receipt(anchor.tx_hash) if anchor else None
    nonce_before = academic.w3.eth.get_transaction_count(accounts.submitter.address)
    second = ledger.with_signer(accounts.submitter).anchor_batch(
        batch_id="batch-2",
        merkle_root=keccak(text="root-2"),
        metadata_hash=keccak(text="meta-2"),
        institution_id="bupt",
        record_count=7,
    )
    print(
        json.dumps(
            {
                "block_number": academic.block_number(),
                "anchor_tx": anchor.tx_hash if anchor else None,
                "anchor_block": anchor.block_number if anchor else None,
                "anchor_root": anchor.merkle_root.hex() if anchor else None,
                "receipt_status": receipt["status"] if receipt else None,
                "reward_tx": reward.tx_hash if reward else None,
                "balance": token.balance_of(accounts.institutions[0].address),
                "deployer_balance": academic.balance(accounts.deployer.address),
                "nonce_before": nonce_before,
                "second_tx": second.tx_hash,
            }
        )
    )
    academic.close()
    incentive.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
