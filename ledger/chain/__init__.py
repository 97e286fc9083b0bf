"""Chain adapters: connections (embedded tester, JSON-RPC), typed contract clients, deployments.

``backends`` connects (:func:`connect_tester`, :func:`connect_rpc`), ``clients`` talks to the
contracts, ``deploy`` deploys them and records where, ``errors`` holds the typed errors, ``anvil``
runs local nodes.
"""

from ledger.chain.accounts import DevAccounts, dev_accounts
from ledger.chain.backends import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    BackendKind,
    Chain,
    TxResult,
    connect_rpc,
    connect_tester,
)
from ledger.chain.clients import (
    AcademicLedgerClient,
    BatchAnchorRecord,
    BYRTokenClient,
    InstitutionOnChain,
    RewardRecord,
    Role,
    TrainingRunRecord,
)
from ledger.chain.deploy import (
    ContractDeployment,
    Deployments,
    DeploymentsError,
    ServiceRoles,
    deploy_contracts,
)
from ledger.chain.errors import (
    ChainError,
    ChainUnavailable,
    TransactionRejected,
    TransactionReverted,
)

__all__ = [
    "ACADEMIC_CHAIN_ID",
    "INCENTIVE_CHAIN_ID",
    "AcademicLedgerClient",
    "BYRTokenClient",
    "BackendKind",
    "BatchAnchorRecord",
    "Chain",
    "ChainError",
    "ChainUnavailable",
    "ContractDeployment",
    "Deployments",
    "DeploymentsError",
    "DevAccounts",
    "InstitutionOnChain",
    "RewardRecord",
    "Role",
    "ServiceRoles",
    "TrainingRunRecord",
    "TransactionRejected",
    "TransactionReverted",
    "TxResult",
    "connect_rpc",
    "connect_tester",
    "deploy_contracts",
    "dev_accounts",
]
