"""Solidity contracts of the ledger and their committed build artifacts.

Artifacts are produced by ``python -m contracts.compile`` and committed under ``contracts/build/``,
so loading them needs neither Node nor a compiler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

BUILD_DIR = Path(__file__).resolve().parent / "build"


class ArtifactNotFound(LookupError):
    """No committed artifact exists for the requested contract name."""


@dataclass(frozen=True)
class ContractArtifact:
    """Compiled contract: ABI, creation and runtime bytecode, and how it was built."""

    name: str
    abi: tuple[dict[str, Any], ...] = field(repr=False, hash=False)
    bytecode: str = field(repr=False)
    """0x-prefixed creation bytecode."""
    deployed_bytecode: str = field(repr=False)
    """0x-prefixed runtime bytecode."""
    compiler_version: str
    settings: dict[str, Any] = field(repr=False, hash=False)
    source_hashes: dict[str, str] = field(repr=False, hash=False)
    """Source unit name -> sha256 of its text, for every source that went into the build."""

    @property
    def abi_list(self) -> list[dict[str, Any]]:
        """The ABI as the mutable list web3 expects."""
        return list(self.abi)


@cache
def load_artifact(name: str) -> ContractArtifact:
    """The committed artifact of contract ``name`` (e.g. ``"AcademicLedger"``).

    Raises :class:`ArtifactNotFound` when ``contracts/build/<name>.json`` does not exist.
    """
    path = BUILD_DIR / f"{name}.json"
    if not path.is_file():
        raise ArtifactNotFound(f"no artifact for contract {name!r} at {path}")
    data = json.loads(path.read_text(encoding="utf-8"))
    return ContractArtifact(
        name=data["contractName"],
        abi=tuple(data["abi"]),
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler_version=data["compiler"]["version"],
        settings=data["settings"],
        source_hashes=data["sources"],
    )
