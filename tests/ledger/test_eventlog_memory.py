"""The reference (in-memory) backend under the shared suite, and the hash backends seal with."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import pytest

from ledger.eventlog import EventLog, EventLogURLError, open_event_log
from ledger.eventlog.memory import MemoryEventLog
from ledger.eventlog.sealing import fast_envelope_hash, new_event_id
from ledger.events import ZERO_HASH, envelope_hash
from tests.ledger.eventlog_suite import EventLogSuite


class TestMemoryEventLog(EventLogSuite):
    def create_log(self) -> EventLog:
        return open_event_log("memory://")


def test_memory_url_opens_a_fresh_log_each_time() -> None:
    first = open_event_log("memory://")
    second = open_event_log("memory://")
    assert isinstance(first, MemoryEventLog) and first is not second
    with pytest.raises(EventLogURLError):
        open_event_log("memory://somewhere")


# -- the fast envelope hash every backend seals with ---------------------------------------------


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice(
            [0, 1, -1, 2**53 - 1, -(2**53) + 1, 2**53, 10**30, rng.randrange(-1000, 1000)]
        )
    if kind == 2:
        exponent = rng.randrange(-300, 300)
        return rng.choice([1.0, -1.0]) * rng.random() * 10.0**exponent
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.0, 0.5, 1e16, 1e21, 1e-7, 2.0**53, 123.0, 1e300, 5e-324])
    if kind in (4, 5):
        alphabet = 'aZ09 "\\/\x00\x1f\x7f\u00e9\u4e2d\u2028\ud7ff\ue000\uffff\U0001f600'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    if kind in (6, 7):
        keys = ["a", "b", "Z", "é", "\ue000", "\U0001f600", "\ufb01", "key", ""]
        return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_fast_envelope_hash_equals_the_reference_encoder_on_random_payloads() -> None:
    rng = random.Random(8785)
    compared = 0
    for i in range(3000):
        fields = {
            "event_id": f"id-{i}",
            "stream_id": "batch-\u4e2d",
            "sequence": i + 1,
            "event_type": "Anything",
            "schema_version": 1,
            "occurred_at": "2026-01-01T00:00:00+00:00",
            "payload": {"value": _random_value(rng)},
            "prev_hash": ZERO_HASH,
        }
        try:
            expected = envelope_hash(fields)
        except ValueError:
            # Not representable in RFC 8785 (huge ints): the fast path must refuse it too.
            with pytest.raises(ValueError):
                fast_envelope_hash(fields)
            continue
        assert fast_envelope_hash(fields) == expected, fields
        compared += 1
    assert compared > 2000


def test_fast_envelope_hash_refuses_what_the_reference_refuses() -> None:
    for bad in (float("nan"), float("inf"), 2**64, "\ud800"):
        fields = {"payload": {"value": bad}}
        with pytest.raises(ValueError):
            envelope_hash(fields)
        with pytest.raises(ValueError):
            fast_envelope_hash(fields)


def test_event_ids_are_uuid7_stamped_with_their_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(200)]
    after = time.time_ns() // 1_000_000

    assert len(set(ids)) == 200
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert before <= parsed.int >> 80 <= after
