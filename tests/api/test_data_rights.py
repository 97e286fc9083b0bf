"""Data rights on a real embedded home, through the whole pipeline (intake, governance with its
models, anchoring and rewards on eth-tester, a training run on a tiny model):

- personal data planted in every disguise we know never reaches a byte under ``BYR_HOME`` (event
  log, state, record store, governance caches, chain state, runs);
- records erased at different points of the pipeline (before governance, after anchoring, after a
  training snapshot) leave no byte of their text, salt or unsalted hash anywhere under the home,
  while every other record still proves, replay equals the live state and a second erase is a
  no-op; and the two doors (``byr erase``, ``DELETE /v1/records/{id}``) answer as documented.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from api.services.audit import verify_bundle
from api.services.erasure import ErasureRequest
from api.services.training import TrainingRequest
from ledger.application import ErasedRecord
from ledger.audit import verify_offline
from ledger.errors import NotFound
from ledger.settings import LedgerSettings
from tests.cli import byr, ok_json
from tests.homes import initialized_settings, issue_keys
from tests.ingest.governance.test_pii_obfuscation import OBFUSCATED
from trainer.manifest import MANIFEST_NAME

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample_corpus.jsonl"

PLAIN_PII = [
    ("Contact the TA at 13912345678 for the lab key.", "13912345678"),
    ("Send reports to zhang.wei@bupt.edu.cn before Friday.", "zhang.wei@bupt.edu.cn"),
    ("身份证号11010519491231002X已登记。", "11010519491231002X"),
    ("The grader, Li Na, will reply within a week.", "Li Na"),
    ("the grader, wang fang, will reply within a week.", "wang fang"),
    ("学生王芳的实验报告还没有提交。", "王芳"),
    ("学生王\u200b芳缺勤，请联系她。", "王\u200b芳"),
]


def forms(value: str) -> list[bytes]:
    """The byte forms a stored string can take: UTF-8, and JSON with ASCII escapes."""
    return [value.encode("utf-8"), json.dumps(value)[1:-1].encode("ascii")]


def hits(folder: Path, needles: dict[str, list[bytes]]) -> list[str]:
    """``file: needle`` for every file under ``folder`` holding one of ``needles``."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a broker's cleaner replaced the segment meanwhile
            continue
        found += [
            f"{path.relative_to(folder)}: {name}"
            for name, variants in needles.items()
            if any(v in data for v in variants)
        ]
    return found


def sample_records(start: int, n: int) -> list[dict[str, Any]]:
    """``n`` well-formed records of the sample corpus from line ``start`` (0-based)."""
    out = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines()[start:]:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item.get("output"), str) and item["output"].strip():
            out.append({k: v for k, v in item.items() if k != "id"})
        if len(out) == n:
            break
    return out


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> LedgerSettings:
    home = tmp_path_factory.mktemp("byr")
    return initialized_settings(home, model_cache=home / "models")


@pytest.fixture(scope="module")
def parts(settings: LedgerSettings) -> Iterator[Parts]:
    with Parts(settings) as parts:
        yield parts


def test_planted_personal_data_reaches_no_byte_of_the_home(
    parts: Parts, settings: LedgerSettings, tmp_path: Path
) -> None:
    carrier = sample_records(0, len(OBFUSCATED) + len(PLAIN_PII))
    needles: dict[str, list[bytes]] = {}
    items = []
    for i, (form, _, language, template, value, plain) in enumerate(OBFUSCATED):
        item = dict(carrier[i])
        item["output"] = item["output"] + " " + template.format(value)
        item["language"] = language if language != "mixed" else "en"
        items.append(item)
        needles[f"{form} (raw)"] = forms(value)
        if len(plain) >= 6:  # a short normalized form ("an@...") can occur by chance
            needles[f"{form} (normalized)"] = forms(plain)
    for j, (sentence, value) in enumerate(PLAIN_PII):
        item = dict(carrier[len(OBFUSCATED) + j])
        item["output"] = item["output"] + " " + sentence
        items.append(item)
        needles[f"plain {j}"] = forms(value)
    # PII where intake complains: the message must say where, not what.
    items.append({**carrier[0], "discipline": "wu.lei@example.com"})
    items.append({**carrier[1], "contact": "13698765432"})
    needles["rejected discipline"] = forms("wu.lei@example.com")
    needles["rejected extra field"] = forms("13698765432")

    outcome = parts.submission.submit(
        write_jsonl(tmp_path / "planted.jsonl", items), institution_id="bupt", wait=True
    )
    assert outcome.batch is not None
    # The unknown field is dropped with a warning; the bad discipline rejects its line.
    assert len(outcome.intake.records) == len(OBFUSCATED) + len(PLAIN_PII) + 1
    view = parts.ledger.batch(outcome.batch.batch_id)
    assert view.status == "rewarded", view
    assert view.accepted_count, "some redacted records should be accepted and rewarded"
    (tmp_path / "planted.jsonl").unlink()  # the submitter's own file is not ours to scan

    found = hits(settings.home, needles)
    assert found == [], "\n".join(found)


def test_erasure_at_every_point_of_the_pipeline_leaves_no_trace(
    parts: Parts, settings: LedgerSettings, tmp_path: Path
) -> None:
    rng = random.Random(20261202)
    ledger = parts.ledger
    submission = parts.submission

    # 1. Erased before governance: submitted, not yet governed.
    early = submission.submit(
        write_jsonl(tmp_path / "early.jsonl", sample_records(60, 6)), institution_id="bupt"
    )
    assert early.batch is not None
    before_governance = rng.choice(unique_texts(parts, early.batch.record_ids))
    erased = {before_governance: secrets_of(parts, before_governance)}
    parts.erasure.erase(ErasureRequest(before_governance, "consent withdrawn", "bupt"))
    parts.pipeline.drain()
    assert ledger.batch(early.batch.batch_id).status == "rewarded"
    assert ledger.record(before_governance).status == "erased"  # governance passed it by

    # 2. Erased after anchoring and rewarding.
    late = submission.submit(
        write_jsonl(tmp_path / "late.jsonl", sample_records(100, 6)),
        institution_id="xidian",
        wait=True,
    )
    assert late.batch is not None and ledger.batch(late.batch.batch_id).status == "rewarded"
    accepted_late = [r.record_id for r in ledger.records(late.batch.batch_id, status="accepted")]
    after_anchor = rng.choice(unique_texts(parts, accepted_late))
    erased[after_anchor] = secrets_of(parts, after_anchor)
    parts.erasure.erase(ErasureRequest(after_anchor, "licence withdrawn", "xidian"))

    # 3. Erased after a training snapshot.
    run = parts.training.train(TrainingRequest(recipe="knowledge_qa", max_steps=1), progress=False)
    manifest = json.loads((Path(run["adapter_dir"]) / MANIFEST_NAME).read_text())
    trained_ids = manifest["dataset"]["train_record_ids"]
    after_training = rng.choice(unique_texts(parts, trained_ids))
    erased[after_training] = secrets_of(parts, after_training)
    first = parts.erasure.erase(ErasureRequest(after_training, "author request"))
    assert first["removed"]["body"] and not first["already_erased"]

    needles = {f"{rid} {name}": variants for rid, s in erased.items() for name, variants in s}
    found = hits(settings.home, needles)
    assert found == [], "\n".join(found)

    for record_id in erased:
        with pytest.raises(ErasedRecord, match="erased at"):
            ledger.proof(record_id)
    feed_ids = {r.record_id for r, _ in ledger.accepted_feed()}
    assert feed_ids and not feed_ids & set(erased)
    for record_id in sorted(feed_ids)[:8]:
        bundle = ledger.proof(record_id)
        assert verify_offline(bundle).ok
        assert verify_bundle(bundle, configured=parts.academic_at).ok
    lineage = parts.training.lineage(Path(run["adapter_dir"]))
    assert lineage.ok, lineage.render()
    assert after_training in {e["record_id"] for e in lineage.erased}
    assert ledger.replay().equal

    again = parts.erasure.erase(ErasureRequest(after_training, "author request, again"))
    assert again["already_erased"] and not again["removed"]["body"]
    assert again["reason"] == "author request"
    with pytest.raises(NotFound):
        parts.erasure.erase(ErasureRequest("rec_" + "0" * 20, "no such record"))


def unique_texts(parts: Parts, record_ids: list[str]) -> list[str]:
    """Those of ``record_ids`` whose instruction and output no other record of the home contains
    (a copy held by another record is that record's text, not a trace of an erasure)."""
    bodies = {
        r.record_id: r.record
        for batch in parts.ledger.batches()
        for r in parts.ledger.records(batch.batch_id)
        if r.record is not None
    }
    unique = []
    for record_id in record_ids:
        mine = bodies.get(record_id)
        if mine is None:
            continue
        others = [b for i, b in bodies.items() if i != record_id]
        if not any(
            mine[f] in other[g]
            for other in others
            for f in ("instruction", "output")
            for g in ("instruction", "output")
        ):
            unique.append(record_id)
    assert unique, "every candidate shares its text with another record"
    return unique


def secrets_of(parts: Parts, record_id: str) -> list[tuple[str, list[bytes]]]:
    """What an erasure must remove, as the byte forms it could be stored in."""
    view = parts.ledger.record(record_id)
    assert view.record is not None and view.salt is not None and view.record_hash is not None
    out = [(name, forms(view.record[name])) for name in ("instruction", "output")]
    for name, value in (("salt", view.salt), ("record_hash", view.record_hash)):
        out.append((name, [value.encode(), value[2:].encode(), bytes.fromhex(value[2:])]))
    return out


def test_the_doors_erase_as_documented(settings: LedgerSettings, tmp_path: Path) -> None:
    with Parts(settings) as parts:
        outcome = parts.submission.submit(
            write_jsonl(tmp_path / "doors.jsonl", sample_records(150, 3)), institution_id="bupt"
        )
        assert outcome.batch is not None
        by_cli, by_http = outcome.batch.record_ids[:2]

    unknown = byr(settings.home, "erase", "rec_" + "0" * 20, "--reason", "x", "--json")
    assert unknown.returncode == 2 and "not in the ledger" in unknown.stdout
    erased = ok_json(byr(settings.home, "erase", by_cli, "--reason", "withdrawn", "--json"))
    assert erased["removed"]["body"] and erased["requested_by"] == "operator"
    again = ok_json(byr(settings.home, "erase", by_cli, "--reason", "withdrawn", "--json"))
    assert again["already_erased"]
    proof = byr(settings.home, "proof", by_cli)
    assert proof.returncode == 2 and "was erased at" in proof.stderr
    wrong_owner = byr(
        settings.home, "erase", by_http, "--reason", "x", "--institution", "xidian", "--json"
    )
    assert wrong_owner.returncode == 2 and "only the institution" in wrong_owner.stdout

    keys = issue_keys(settings)
    auth = keys.bupt
    app = create_app(settings=settings, api_settings=ApiSettings())
    with TestClient(app) as client:
        body = {"reason": "withdrawn", "institution_id": "bupt"}
        assert client.request("DELETE", f"/v1/records/{by_http}", json=body).status_code == 401
        for other in (keys.xidian, keys.auditor, keys.trainer):
            refused = client.request("DELETE", f"/v1/records/{by_http}", json=body, headers=other)
            assert refused.status_code == 403, refused.text
        missing = client.request("DELETE", "/v1/records/rec_nope", json=body, headers=auth)
        assert missing.status_code == 404
        blank = client.request(
            "DELETE", f"/v1/records/{by_http}", json={"reason": ""}, headers=auth
        )
        assert blank.status_code == 422
        done = client.request("DELETE", f"/v1/records/{by_http}", json=body, headers=auth)
        assert done.status_code == 200, done.text
        assert done.json()["requested_by"] == "bupt" and not done.json()["already_erased"]
        assert done.json()["key_id"] == keys.ids["bupt"]
        repeat = client.request("DELETE", f"/v1/records/{by_http}", json=body, headers=auth)
        assert repeat.status_code == 200 and repeat.json()["already_erased"]
        proof_http = client.get(f"/v1/records/{by_http}/proof", headers=auth)
        assert proof_http.status_code == 404 and "erased" in proof_http.text
        record = client.get(f"/v1/records/{by_http}", headers=auth).json()
        assert record["status"] == "erased" and record["record"] is None and record["erased_at"]
