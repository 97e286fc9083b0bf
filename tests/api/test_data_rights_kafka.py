"""Data rights with the Kafka event log and record topic (a real KRaft broker): planted personal
data reaches no byte of the home, the broker's data folder or the chain state; an erased record's
text, salt and unsalted hash leave them too, once the records topic is compacted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.composition import Parts
from api.services.erasure import ErasureRequest
from ledger.audit import verify_offline
from ledger.settings import LedgerSettings
from tests.api.test_data_rights import (
    OBFUSCATED,
    PLAIN_PII,
    forms,
    hits,
    sample_records,
    secrets_of,
    unique_texts,
    write_jsonl,
)
from tests.homes import initialized_settings
from tests.kafka_fixtures import (
    KafkaForTests,
    kafka_broker_fixture,  # noqa: F401 - provides kafka_broker
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

COMPACTION_WAIT_S = 90.0


@pytest.fixture(scope="module")
def broker_data(kafka_broker: KafkaForTests) -> Path:
    if kafka_broker.local is None:
        pytest.skip("the broker named by BYR_TEST_KAFKA keeps its files out of reach")
    return kafka_broker.local.config.data_dir


@pytest.fixture(scope="module")
def parts(kafka_broker: KafkaForTests, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parts]:
    home = tmp_path_factory.mktemp("byr-kafka")
    # Compaction within seconds, not the default 15 minutes: the test waits for the cleaner.
    url = kafka_broker.url(erase_within_s=5)
    settings = initialized_settings(home, event_log=url, model_cache=home / "m")
    with Parts(settings) as parts:
        yield parts


def places(settings: LedgerSettings, broker_data: Path) -> list[Path]:
    return [settings.home, broker_data]


def scan(folders: list[Path], needles: dict[str, list[bytes]]) -> list[str]:
    return [hit for folder in folders for hit in hits(folder, needles)]


def test_planted_pii_reaches_neither_home_nor_broker(
    parts: Parts, broker_data: Path, tmp_path: Path
) -> None:
    carrier = sample_records(0, len(OBFUSCATED) + len(PLAIN_PII))
    items, needles = [], {}
    for i, (form, _, language, template, value, plain) in enumerate(OBFUSCATED):
        items.append(
            {**carrier[i], "output": carrier[i]["output"] + " " + template.format(value)}
            | {"language": language if language != "mixed" else "en"}
        )
        needles[f"{form} (raw)"] = forms(value)
        if len(plain) >= 6:
            needles[f"{form} (normalized)"] = forms(plain)
    for j, (sentence, value) in enumerate(PLAIN_PII):
        item = dict(carrier[len(OBFUSCATED) + j])
        items.append({**item, "output": item["output"] + " " + sentence})
        needles[f"plain {j}"] = forms(value)
    outcome = parts.submission.submit(
        write_jsonl(tmp_path / "planted.jsonl", items), institution_id="bupt", wait=True
    )
    (tmp_path / "planted.jsonl").unlink()
    assert outcome.batch is not None
    assert parts.ledger.batch(outcome.batch.batch_id).status == "rewarded"

    found = scan(places(parts.settings, broker_data), needles)
    assert found == [], "\n".join(found)


def test_erased_records_leave_home_and_broker(
    parts: Parts, broker_data: Path, tmp_path: Path
) -> None:
    """One record erased before governance, one after anchoring and rewarding."""
    early = parts.submission.submit(
        write_jsonl(tmp_path / "early.jsonl", sample_records(60, 4)), institution_id="bupt"
    )
    assert early.batch is not None
    before_governance = unique_texts(parts, early.batch.record_ids)[0]
    secrets = secrets_of(parts, before_governance)
    parts.erasure.erase(ErasureRequest(before_governance, "consent withdrawn", "bupt"))
    parts.pipeline.drain()
    assert parts.ledger.batch(early.batch.batch_id).status == "rewarded"
    assert parts.ledger.record(before_governance).status == "erased"

    late = parts.submission.submit(
        write_jsonl(tmp_path / "late.jsonl", sample_records(100, 5)),
        institution_id="bupt",
        wait=True,
    )
    assert late.batch is not None
    batch_id = late.batch.batch_id
    accepted = [r.record_id for r in parts.ledger.records(batch_id, status="accepted")]
    after_anchor = unique_texts(parts, accepted)[0]
    secrets += secrets_of(parts, after_anchor)
    needles = {f"{i} {name}": variants for i, (name, variants) in enumerate(secrets)}
    folders = places(parts.settings, broker_data)
    assert scan(folders, needles), "the scan must see the second body before its erasure"

    parts.erasure.erase(ErasureRequest(after_anchor, "withdrawn by the author", "bupt"))

    # Two clean scans in a row: a segment the cleaner swaps during one scan can be missed by it.
    deadline = time.monotonic() + COMPACTION_WAIT_S
    clean = 0
    while clean < 2 and time.monotonic() < deadline:
        found = scan(folders, needles)
        clean = clean + 1 if not found else 0
        if clean < 2:
            time.sleep(1.0)
    assert found == [] and clean == 2, "\n".join(found)
    for record_id in accepted:
        if record_id != after_anchor:
            assert verify_offline(parts.ledger.proof(record_id)).ok
    assert parts.ledger.replay().equal
    assert parts.erasure.erase(ErasureRequest(after_anchor, "again", "bupt"))["already_erased"]
