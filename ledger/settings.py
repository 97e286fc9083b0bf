"""Settings of the ledger services, read once from the environment (prefix ``BYR_``).

Validated at start: a missing RPC URL or key fails before anything runs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ACADEMIC_CHAIN_ID = 31337001
INCENTIVE_CHAIN_ID = 31337002


class ChainBackend(StrEnum):
    TESTER = "tester"
    """eth-tester in process, persisted under ``BYR_HOME/chains``: the embedded default."""
    RPC = "rpc"
    """Any EVM JSON-RPC node (anvil locally, geth or Besu in production)."""


class LedgerSettings(BaseSettings):
    """Where the ledger keeps its state and which event log and chains it talks to."""

    model_config = SettingsConfigDict(env_prefix="BYR_", env_file=".env", extra="ignore")

    home: Path = Field(Path("var"), description="Folder for the embedded log, state and chains.")
    event_log: str | None = Field(
        None,
        description="Event log URL: sqlite:///path/events.db (default under home) or kafka://host:port.",
    )
    chain_backend: ChainBackend = ChainBackend.TESTER
    academic_chain_id: int = ACADEMIC_CHAIN_ID
    incentive_chain_id: int = INCENTIVE_CHAIN_ID
    academic_rpc_url: str | None = None
    incentive_rpc_url: str | None = None
    academic_private_key: SecretStr | None = Field(
        None, description="Key of the service account on the academic chain (rpc backend only)."
    )
    incentive_private_key: SecretStr | None = Field(
        None, description="Key of the service account on the incentive chain (rpc backend only)."
    )
    admin_key: SecretStr | None = Field(
        None,
        description="The first admin API key `byr init` issues (from `byr keys generate`), for "
        "deployments that hand it in through their environment; without it init draws one and "
        "writes it to home/admin.key.",
    )
    deployments_file: Path | None = Field(
        None, description="Where contract addresses are recorded (default: home/deployments.json)."
    )
    model_cache: Path | None = Field(
        None, description="Converted base models (default: ~/.cache/byr/models)."
    )
    intake_processes: int = Field(
        1,
        ge=0,
        le=16,
        description="Worker processes the HTTP server reads submissions in (0: its own threads).",
    )
    max_field_chars: int = Field(8_000, gt=0)
    max_record_chars: int = Field(16_000, gt=0)
    max_turns: int = Field(
        64, ge=2, description="Most user and assistant turns in one multi-turn record."
    )

    @model_validator(mode="after")
    def _rpc_needs_urls_and_keys(self) -> Self:
        if self.chain_backend is ChainBackend.RPC:
            missing = [
                name
                for name, value in (
                    ("BYR_ACADEMIC_RPC_URL", self.academic_rpc_url),
                    ("BYR_INCENTIVE_RPC_URL", self.incentive_rpc_url),
                    ("BYR_ACADEMIC_PRIVATE_KEY", self.academic_private_key),
                    ("BYR_INCENTIVE_PRIVATE_KEY", self.incentive_private_key),
                )
                if not value
            ]
            if missing:
                raise ValueError("BYR_CHAIN_BACKEND=rpc needs " + ", ".join(missing) + " to be set")
        if self.academic_chain_id == self.incentive_chain_id:
            raise ValueError("the academic and incentive chains must have different chain ids")
        return self

    @property
    def event_log_url(self) -> str:
        return self.event_log or f"sqlite:///{(self.home / 'events.db').resolve()}"

    @property
    def state_path(self) -> Path:
        return self.home / "state.db"

    @property
    def chains_dir(self) -> Path:
        return self.home / "chains"

    @property
    def deployments_path(self) -> Path:
        return self.deployments_file or self.home / "deployments.json"

    @property
    def model_cache_dir(self) -> Path | None:
        return self.model_cache

    @property
    def governance_dir(self) -> Path:
        """Embedding cache and near-duplicate index of the governance step."""
        return self.home / "governance"
