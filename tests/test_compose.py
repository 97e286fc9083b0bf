"""docker-compose.yml describes a deployment that our code can actually run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from api.cli import app
from ledger.settings import LedgerSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _cli() -> Any:
    return typer.main.get_command(app)


def _resolve(group: Any, args: list[str]) -> Any:
    """The CLI command ``args`` names (following sub-groups); fails on an unknown command."""
    command = group
    rest = list(args)
    while hasattr(command, "get_command") and rest:
        name = rest.pop(0)
        sub = command.get_command(command.context_class(command), name)
        assert sub is not None, f"`byr {' '.join(args)}`: no command {name!r}"
        command = sub
    return command


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "kafka", "academic-chain", "incentive-chain", "deploy", "api",
        "governance-1", "governance-2", "anchor", "rewards", "feed", "trainer",
    }  # fmt: skip
    assert expected <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    chain_ids = set()
    for name in ("academic-chain", "incentive-chain"):
        command = services[name]["command"]
        assert "--state" in command, f"{name} must persist its state"
        chain_ids.add(command[command.index("--chain-id") + 1])
        assert services[name]["volumes"], f"{name} needs a volume for its state"
    assert len(chain_ids) == 2


def test_every_ledger_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    group = _cli()
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("byr-corpus-ledger"):
            command = _resolve(group, list(service["command"]))
            params = {opt for p in command.params for opt in getattr(p, "opts", [])}
            flags = [a for a in service["command"] if a.startswith("--")]
            assert set(flags) <= params, f"{name}: unknown options {set(flags) - params}"


def test_worker_kinds_exist(compose: dict[str, Any]) -> None:
    from api.workers import WorkerKind

    kinds = {
        s["command"][1]
        for s in compose["services"].values()
        if s.get("command", [""])[0] == "worker"
    }
    assert kinds == {k.value for k in WorkerKind}


def test_environment_names_real_settings(compose: dict[str, Any]) -> None:
    fields = {f"BYR_{name.upper()}" for name in LedgerSettings.model_fields}
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            if key.startswith("BYR_"):
                assert key in fields, f"{name}: {key} is not a LedgerSettings field"


def test_health_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "academic-chain", "incentive-chain", "api"):
        assert "healthcheck" in services[name], f"{name} needs a healthcheck"
    deploy_deps = services["deploy"]["depends_on"]
    assert all(d["condition"] == "service_healthy" for d in deploy_deps.values())
    for name in ("api", "governance-1", "governance-2", "anchor", "rewards", "feed", "trainer"):
        deps = services[name]["depends_on"]
        assert deps["deploy"]["condition"] == "service_completed_successfully"
        assert deps["kafka"]["condition"] == "service_healthy"


def test_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"{name}: volume {source} is not declared"


def test_no_secret_in_the_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80" not in text
    assert "${BYR_ACADEMIC_PRIVATE_KEY:?" in text


def test_only_the_api_leaves_the_internal_network(compose: dict[str, Any]) -> None:
    networks = compose["networks"]
    assert networks["internal"]["internal"] is True
    for name, service in compose["services"].items():
        joined = set(service.get("networks", []))
        if name == "api":
            assert joined == {"internal", "edge"}
            assert all(p.startswith("127.0.0.1:") for p in service["ports"])
        else:
            assert joined == {"internal"}, f"{name} must be on the internal network only"
            assert "ports" not in service, f"{name} must not publish a port"


def test_the_first_admin_key_comes_from_the_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["deploy"]["environment"]["BYR_ADMIN_KEY"].startswith("${BYR_ADMIN_KEY:?")
    for name, service in services.items():
        if name != "deploy":
            assert "BYR_ADMIN_KEY" not in service.get("environment", {}), name
