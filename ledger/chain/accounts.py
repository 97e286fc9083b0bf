"""Well-known development accounts, funded on every local chain (embedded tester and anvil).

The keys are anvil's defaults (mnemonic ``test test test test test test test test test test test
junk``, path ``m/44'/60'/0'/0/i``). They are public: use them on local chains only. The embedded
tester chain funds the same accounts in its genesis, so one set of keys works on both local
backends.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount

DEV_PRIVATE_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)

#: Balance of each development account at genesis on the embedded chain (anvil's default).
DEV_BALANCE_WEI = 10_000 * 10**18


@dataclass(frozen=True)
class DevAccounts:
    """Development accounts by role: 0 deploys, 1-3 run the services, 4-9 are institutions."""

    deployer: LocalAccount
    """Deploys the contracts and holds DEFAULT_ADMIN_ROLE on both."""
    submitter: LocalAccount
    """Anchors corpus batches (SUBMITTER_ROLE)."""
    minter: LocalAccount
    """Mints BYR rewards (MINTER_ROLE)."""
    trainer: LocalAccount
    """Anchors training runs (TRAINER_ROLE)."""
    institutions: tuple[LocalAccount, ...]
    """Reward receivers for institutions; they hold no role."""

    @property
    def all(self) -> tuple[LocalAccount, ...]:
        return (self.deployer, self.submitter, self.minter, self.trainer, *self.institutions)


def dev_accounts() -> DevAccounts:
    """The development accounts, with their private keys."""
    accounts = [Account.from_key(key) for key in DEV_PRIVATE_KEYS]
    return DevAccounts(
        deployer=accounts[0],
        submitter=accounts[1],
        minter=accounts[2],
        trainer=accounts[3],
        institutions=tuple(accounts[4:]),
    )
