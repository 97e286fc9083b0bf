"""Local anvil nodes for single-machine deployments: ``byr chains up`` / ``byr chains down``.

The nodes run detached (they outlive the command) with ``--state`` files under
``BYR_HOME/chains/``, so their chains survive restarts. Their process ids and URLs are kept in
``BYR_HOME/chains/nodes.json``. The settings printed by ``up`` use anvil's public development keys:
for local use only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.chain.accounts import DEV_PRIVATE_KEYS
from ledger.chain.anvil import AnvilNode, rpc_chain_id, stop_pid, tighten_state_file
from ledger.files import private_dir, private_file
from ledger.settings import LedgerSettings

ACADEMIC_PORT = 18545
INCENTIVE_PORT = 18546


def _nodes_file(settings: LedgerSettings) -> Path:
    return settings.chains_dir / "nodes.json"


def _state_file(settings: LedgerSettings, name: str) -> Path:
    return (settings.chains_dir / f"anvil-{name}.json").resolve()


def chains_up(
    settings: LedgerSettings,
    *,
    academic_port: int = ACADEMIC_PORT,
    incentive_port: int = INCENTIVE_PORT,
) -> dict[str, Any]:
    """Start both nodes unless they already answer; returns their URLs, pids and the settings."""
    path = _nodes_file(settings)
    private_dir(path.parent)
    known: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    nodes: dict[str, Any] = {}
    for name, chain_id, port in (
        ("academic", settings.academic_chain_id, academic_port),
        ("incentive", settings.incentive_chain_id, incentive_port),
    ):
        previous = known.get(name)
        if previous and rpc_chain_id(previous["url"]) == chain_id:
            nodes[name] = previous
            continue
        node = AnvilNode(
            chain_id=chain_id,
            port=port,
            state_path=_state_file(settings, name),
            log_path=(settings.chains_dir / f"anvil-{name}.log").resolve(),
        ).start(detach=True)
        nodes[name] = {"url": node.url, "pid": node.pid, "chain_id": chain_id}
    private_file(path).write_text(json.dumps(nodes, indent=2) + "\n")
    env = {
        "BYR_CHAIN_BACKEND": "rpc",
        "BYR_ACADEMIC_RPC_URL": nodes["academic"]["url"],
        "BYR_INCENTIVE_RPC_URL": nodes["incentive"]["url"],
        "BYR_ACADEMIC_PRIVATE_KEY": DEV_PRIVATE_KEYS[0],
        "BYR_INCENTIVE_PRIVATE_KEY": DEV_PRIVATE_KEYS[0],
    }
    return {"nodes": nodes, "env": env}


def chains_down(settings: LedgerSettings) -> list[str]:
    """Stop the nodes recorded by :func:`chains_up`; returns the names of those stopped."""
    path = _nodes_file(settings)
    if not path.exists():
        return []
    stopped = [
        name for name, node in json.loads(path.read_text()).items() if stop_pid(int(node["pid"]))
    ]
    for name in stopped:
        # A detached node writes its state file with the umask of the command that started it.
        tighten_state_file(_state_file(settings, name))
    path.unlink()
    return stopped
