"""The texts an adapter was trained on, read back from the ledger for the contamination check.

An adapter's manifest names every record it trained on (and validated with); their text lives
in the ledger's record store (:mod:`ledger.recordstore`), the same bodies the feed snapshot was
built from (:mod:`trainer.feed`). A record erased since the run has no text any more and cannot
be checked; the count of readable texts says how much of the training set the check covered.
"""

from __future__ import annotations

from ledger.application import CorpusLedger
from ledger.errors import NotFound
from trainer.eval.contamination import record_text
from trainer.eval.results import TrainingTexts, TrainingTextSource
from trainer.manifest import AdapterManifest


def ledger_training_texts(ledger: CorpusLedger) -> TrainingTextSource:
    """A source of each adapter's training texts from ``ledger`` (record bodies by id)."""

    def texts(manifest: AdapterManifest) -> TrainingTexts:
        dataset = manifest.dataset
        record_ids = list(
            dict.fromkeys([*dataset.train_record_ids, *dataset.validation_record_ids])
        )
        found: list[tuple[str, str]] = []
        for record_id in record_ids:
            try:
                view = ledger.record(record_id)
            except NotFound:  # not a record of this ledger (trained on another home or a list)
                continue
            if view.record is not None:  # None once erased
                found.append((record_id, record_text(view.record)))
        return TrainingTexts(texts=tuple(found), records=len(record_ids), available=len(found))

    return texts
