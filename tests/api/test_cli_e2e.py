"""The ``byr`` command end to end, each command in its own process, as a user runs it.

Every process reopens the embedded event log, state database and persisted chains from BYR_HOME,
so these tests also prove that nothing lives only in one process's memory.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.composition import Parts
from ledger.settings import LedgerSettings
from tests.cli import ROOT, byr, ok_json

EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("byr-home")
    init = ok_json(byr(home, "init", "--json"))
    assert {i["institution_id"] for i in init["institutions"]} >= {"bupt", "xidian"}
    assert init["chains"]["academic"]["chain_id"] != init["chains"]["incentive"]["chain_id"]
    yield home


@pytest.fixture(scope="module")
def submitted(home: Path) -> dict[str, Any]:
    result = byr(
        home, "submit", str(EXAMPLES / "small_batch.json"), "--institution", "bupt", "--wait",
        "--json",
    )  # fmt: skip
    return ok_json(result)


def test_submit_wait_governs_anchors_and_rewards(submitted: dict[str, Any]) -> None:
    assert submitted["recorded"] is True
    assert submitted["tx_hash"] and submitted["block_number"] >= 1
    assert submitted["accepted"] >= 1
    assert submitted["status"] == "rewarded"
    assert int(submitted["reward_wei"]) > 0
    assert all(r.startswith("rec_") for r in submitted["record_ids"])


def test_proof_bundle_verifies_offline_and_online(home: Path, submitted: dict[str, Any]) -> None:
    record_id = submitted["record_ids"][0]
    bundle_path = home / "bundle.json"
    result = byr(home, "proof", record_id, "--output", str(bundle_path))
    assert result.returncode == 0, result.stderr
    bundle = json.loads(bundle_path.read_text())
    assert bundle["tx_hash"] == submitted["tx_hash"]
    assert bundle["root"] == submitted["merkle_root"]

    report = ok_json(byr(home, "verify", str(bundle_path), "--json"))
    assert report["ok"] is True
    names = {c["name"] for c in report["checks"]}
    assert {"record_hash", "leaf", "merkle_proof", "anchor_tx", "verify_record"} <= names


def test_tampered_bundle_fails_with_a_reason(home: Path, submitted: dict[str, Any]) -> None:
    bundle = json.loads(byr(home, "proof", submitted["record_ids"][1]).stdout)
    bundle["record"]["output"] = bundle["record"]["output"] + " Edited."
    path = home / "tampered.json"
    path.write_text(json.dumps(bundle, ensure_ascii=False))
    result = byr(home, "verify", str(path), "--json")
    assert result.returncode == 1
    failed = {c["name"]: c for c in json.loads(result.stdout)["checks"] if not c["ok"]}
    assert set(failed) == {"record_hash"}
    assert "changed" in failed["record_hash"]["reason"]


def test_replay_equals_live_state(home: Path, submitted: dict[str, Any]) -> None:
    report = ok_json(byr(home, "replay", "--json"))
    assert report["equal"] is True
    assert report["integrity"]["ok"] is True
    assert report["tables"]["batches"] >= 1


def test_train_anchors_the_adapter_and_lineage_traces_it_back(
    home: Path, submitted: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    args = ["--recipe", "knowledge_qa", "--max-steps", "2", "--output", str(run_dir)]
    trained = ok_json(byr(home, "train", *args, "--set", "training.val_fraction=0", "--json"))
    assert trained["status"] == "anchored" and trained["anchor_tx_hash"]
    assert len(trained["losses"]) == 2 and trained["records"] >= 1
    assert Path(trained["adapter_dir"]).is_relative_to(run_dir)

    report = ok_json(byr(home, "lineage", trained["adapter_dir"], "--json"))
    assert report["ok"] is True and report["run_id"] == trained["run_id"]
    assert report["records"] == trained["records"] and report["batches"] >= 1
    assert report["institutions"].get("bupt", 0) >= 1

    unknown = byr(home, "train", "--recipe", "no_such_recipe", "--json")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "no_such_recipe" in json.loads(unknown.stdout)["message"]


def test_malformed_lines_are_reported_and_good_ones_recorded(home: Path, tmp_path: Path) -> None:
    batch = tmp_path / "mixed.jsonl"
    good = {
        "instruction": "What does TCP slow start do?",
        "output": "Slow start doubles the congestion window every round trip until a loss or the"
        " threshold, probing the available bandwidth quickly without flooding the network.",
        "discipline": "computer_networks",
    }
    batch.write_text(
        json.dumps(good)
        + "\n"
        + '{"instruction": "broken", \n'
        + json.dumps({"output": "x"})
        + "\n",
        encoding="utf-8",
    )
    result = byr(home, "submit", str(batch), "--institution", "xidian", "--json")
    assert result.returncode == 3, result.stderr + result.stdout
    data = json.loads(result.stdout)
    assert data["recorded"] is True and len(data["record_ids"]) == 1
    codes = {(i["line"], i["code"]) for i in data["issues"]}
    assert (2, "invalid_json") in codes
    assert (3, "missing_field") in codes


def test_bad_requests_exit_non_zero_with_a_clear_message(home: Path, tmp_path: Path) -> None:
    missing = byr(home, "submit", str(tmp_path / "nope.jsonl"), "--institution", "bupt")
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr
    unknown = byr(home, "submit", str(EXAMPLES / "small_batch.json"), "--institution", "nobody")
    assert unknown.returncode == 2 and "institution is not registered" in unknown.stderr
    assert "nobody" not in unknown.stderr  # the message says what is wrong, not what was sent
    not_json = tmp_path / "bundle.json"
    not_json.write_text("{not json")
    bad_bundle = byr(home, "verify", str(not_json))
    assert bad_bundle.returncode == 2 and "JSON" in bad_bundle.stderr


def test_reward_dispatcher_killed_after_mint_pays_exactly_once(home: Path) -> None:
    ok_json(byr(home, "dispatch", "--json"))  # finish work left by earlier tests
    submitted = ok_json(
        byr(
            home,
            "submit",
            str(EXAMPLES / "governance_cases.jsonl"),
            "--institution",
            "uestc",
            "--json",
        )
    )
    batch_id = submitted["batch_id"]

    crashed = byr(home, "dispatch", env={"BYR_CRASH_AT": "reward.after_mint"})
    assert crashed.returncode == -signal.SIGKILL

    status = ok_json(byr(home, "status", "--json"))
    batch = next(b for b in status["batches"] if b["batch_id"] == batch_id)
    assert batch["status"] == "anchored"  # minted on chain, not yet recorded
    supply_before = int(status["rewarded_wei_total"])

    ok_json(byr(home, "dispatch", "--json"))
    status = ok_json(byr(home, "status", "--json"))
    batch = next(b for b in status["batches"] if b["batch_id"] == batch_id)
    assert batch["status"] == "rewarded"

    with Parts(LedgerSettings(home=home)) as parts:
        token = parts.token
        supply = token.total_supply()
        balances = [b.to_dict() for b in parts.ledger.balances()]
        uestc = parts.ledger.institution("uestc").account
        assert token.balance_of(uestc) == int(
            next(b["amount_wei"] for b in balances if b["institution_id"] == "uestc")
        )
        from ledger.ids import id_key

        assert token.rewarded(id_key(batch_id))
    assert supply == sum(int(b["amount_wei"]) for b in balances)
    assert supply > supply_before  # the one mint was recorded, not repeated
    assert int(status["rewarded_wei_total"]) == supply

    # After a replay from the log the projected balances still equal the chain's supply.
    replayed = ok_json(byr(home, "replay", "--json"))
    assert replayed["equal"] is True
    assert int(ok_json(byr(home, "status", "--json"))["rewarded_wei_total"]) == supply
