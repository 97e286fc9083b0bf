"""The governance engine: all signals of a batch combined into accept/reject decisions and a reward.

For one batch, in order (cheap checks first, so model time is spent only where it can matter):

1. text checks (:mod:`ingest.governance.quality`) and term coverage (:mod:`ingest.governance.terms`)
   on every record;
2. coherence (:mod:`ingest.governance.coherence`) for records no text check rejected, on the
   opening of each output (:func:`coherence_window`): one embedding call per language for the
   whole batch; ``off_topic`` and ``incoherent`` flags;
3. near duplicates (:class:`ingest.governance.dedup.DedupIndex`) for records still standing,
   against the accepted corpus and earlier records of the batch; ``exact_duplicate`` and
   ``near_duplicate`` flags name the record duplicated;
4. the policy sets each flag's severity: a flag whose code the policy rejects is an ``error``,
   any other a ``warning``; a record is accepted when it has no ``error`` flag;
5. novelty, quality and contribution of accepted records, and the batch reward
   (docs/REWARDS.md).

A multi-turn record (a ``system`` prompt, earlier ``history`` turns) is one record: the text checks
read every turn (:mod:`ingest.governance.quality` says which check reads which turn), term
coverage and near duplicates read the whole dialogue, and coherence compares the final output with
its question in context (:func:`~ingest.governance.decisions.question_text`). A flag names the
turn it is in (``history[0][1]``).

Redactions made at intake appear as ``pii_redacted`` flags on the placeholders (``[PHONE]``) and as
the ``pii_redacted`` reason, in whichever turn they are; they never reject. By default, accepted
records are added to the near-duplicate index at the end of :meth:`GovernanceEngine.govern`
(re-governing the same records is harmless: a record never duplicates itself). A service that
records decisions in a log splits the work: :meth:`GovernanceEngine.assess` (steps 1-2) once, then
:meth:`GovernanceEngine.decide` (steps 3-5, no index writes) until its decision is appended
against an unchanged index.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ingest.governance.coherence import CoherenceItem, SentenceSplitter, batch_coherence
from ingest.governance.decisions import (
    Assessment,
    BatchGovernance,
    GovernanceInput,
    RecordDecision,
)
from ingest.governance.dedup import DedupIndex, DedupItem, DuplicateMethod
from ingest.governance.embeddings import Embedder, model_for_language
from ingest.governance.errors import GovernanceInputError
from ingest.governance.flags import FlagCode, FlagSeverity, QualityFlag, field_rank
from ingest.governance.policy import Policy, load_policy
from ingest.governance.quality import QualityChecker
from ingest.governance.storage import DEDUP_FILE, EMBEDDINGS_FILE, load_cache_key
from ingest.governance.terms import LANGUAGES, TermIndex, default_index

__all__ = [
    "REASON_ORDER",
    "SCORE_DIGITS",
    "Assessment",
    "BatchGovernance",
    "GovernanceEngine",
    "GovernanceInput",
    "RecordDecision",
    "coherence_window",
]

SCORE_DIGITS = 6
REASON_ORDER: tuple[FlagCode, ...] = (
    FlagCode.EXACT_DUPLICATE,
    FlagCode.NEAR_DUPLICATE,
    FlagCode.GARBLED,
    FlagCode.TRUNCATED,
    FlagCode.REPETITIVE,
    FlagCode.TOO_SHORT,
    FlagCode.TOO_LONG,
    FlagCode.OFF_TOPIC,
    FlagCode.LOW_TERM_COVERAGE,
    FlagCode.UNBALANCED_MARKUP,
    FlagCode.LOGIC_BREAK,
    FlagCode.INCOHERENT,
    FlagCode.PII_REDACTED,
)
"""Order of reason codes in a decision: the strongest rejection first, ``pii_redacted`` last."""


class GovernanceEngine:
    """Decides batches under one policy. Models, indexes and pipelines are passed in and reused;
    construct once per process (see :meth:`open`)."""

    def __init__(
        self,
        *,
        policy: Policy,
        embedder: Embedder,
        dedup_index: DedupIndex,
        terms: TermIndex | None = None,
        checker: QualityChecker | None = None,
        splitter: SentenceSplitter | None = None,
    ) -> None:
        self.policy = policy
        self.embedder = embedder
        self.dedup_index = dedup_index
        self.terms = terms or default_index()
        self.checker = checker or QualityChecker()
        self.splitter = splitter or SentenceSplitter()

    @classmethod
    def open(cls, *, directory: Path, policy: Policy | None = None) -> GovernanceEngine:
        """An engine whose embedding cache and near-duplicate index live in ``directory``
        (``embeddings.sqlite``, ``dedup.sqlite``, keyed by the folder's ``cache.key``, see
        :mod:`ingest.governance.storage`), the index configured by :meth:`Policy.dedup_config`."""
        policy = policy or load_policy()
        key = load_cache_key(directory)
        embedder = Embedder(cache_path=directory / EMBEDDINGS_FILE, key=key)
        index = DedupIndex(
            directory / DEDUP_FILE, embedder=embedder, config=policy.dedup_config(), key=key
        )
        return cls(policy=policy, embedder=embedder, dedup_index=index)

    def govern(
        self, records: Sequence[GovernanceInput], *, add_accepted: bool = True
    ) -> BatchGovernance:
        """Decide every record of one batch (see the module docstring for the steps)."""
        result = self.decide(self.assess(records))
        if add_accepted and result.accepted_record_ids:
            accepted = set(result.accepted_record_ids)
            self.dedup_index.add([_dedup_item(r) for r in records if r.record_id in accepted])
        return result

    def assess(self, records: Sequence[GovernanceInput]) -> Assessment:
        """Steps 1 and 2, which do not depend on the accepted corpus: text checks, term coverage
        and coherence. The expensive part of governing a batch; :meth:`decide` finishes it."""
        self._check_inputs(records)
        flags: list[list[QualityFlag]] = []
        scores: list[dict[str, float]] = []
        for record in records:
            record_flags, record_scores = self._text_signals(record)
            flags.append(record_flags)
            scores.append(record_scores)
        standing = [i for i in range(len(records)) if not self._rejected(flags[i])]
        self._coherence(records, standing, flags, scores)
        return Assessment(records=tuple(records), flags=flags, scores=scores)

    def decide(self, assessment: Assessment) -> BatchGovernance:
        """Steps 3 to 5 against the near-duplicate index as it is now; nothing is added to it.

        Cheap next to :meth:`assess`, and repeatable: the assessment is not changed, so a caller
        that finds the accepted corpus moved meanwhile decides the same assessment again.
        """
        records = assessment.records
        flags = [list(f) for f in assessment.flags]
        scores = [dict(s) for s in assessment.scores]
        standing = [i for i in range(len(records)) if not self._rejected(flags[i])]
        duplicate_of = self._duplicates(records, standing, flags, scores)

        accepted = [i for i in range(len(records)) if not self._rejected(flags[i])]
        novelty = self._novelty(records, accepted)
        total_micro = 0
        for i in accepted:
            contribution = self._contribution(flags[i], scores[i], novelty[i])
            scores[i]["novelty"] = _round(novelty[i])
            scores[i].update(contribution)
            total_micro += round(contribution["contribution"] * 10**SCORE_DIGITS)

        accepted_set = set(accepted)
        decisions = [
            self._decision(record, flags[i], scores[i], duplicate_of.get(i), i in accepted_set)
            for i, record in enumerate(records)
        ]
        reward = self.policy.reward
        reward_wei = min(
            int(reward.base_per_record_wei) * total_micro // 10**SCORE_DIGITS,
            int(reward.max_batch_reward_wei),
        )
        return BatchGovernance(
            policy_version=self.policy.version,
            policy_digest=self.policy.digest,
            decisions=decisions,
            contribution_score=total_micro / 10**SCORE_DIGITS,
            reward_wei=reward_wei,
        )

    # -- signals -----------------------------------------------------------------------------------

    def _check_inputs(self, records: Sequence[GovernanceInput]) -> None:
        seen: set[str] = set()
        for record in records:
            if record.record_id in seen:
                raise GovernanceInputError(f"record id {record.record_id!r} appears twice")
            seen.add(record.record_id)
            if record.language not in LANGUAGES:
                raise GovernanceInputError(
                    f"record {record.record_id}: unknown language {record.language!r}"
                )
            if record.discipline not in self.terms.disciplines:
                raise GovernanceInputError(
                    f"record {record.record_id}: no glossary for discipline {record.discipline!r}"
                )

    def _text_signals(self, record: GovernanceInput) -> tuple[list[QualityFlag], dict[str, float]]:
        limits = self.policy.quality_limits(record.discipline, record.language)
        thresholds = self.policy.thresholds(record.discipline)
        assessment = self.checker.assess(
            instruction=record.instruction,
            input=record.input,
            output=record.output,
            language=record.language,
            limits=limits,
            system=record.system,
            history=record.history,
        )
        flags = list(assessment.flags)
        matcher = self.terms.matcher(record.discipline)
        coverage = matcher.coverage(record.dialogue(), language=record.language)
        if coverage.score < thresholds.min_term_coverage:
            flags.append(
                _whole_output(
                    record,
                    FlagCode.LOW_TERM_COVERAGE,
                    f"term coverage {coverage.score:.2f} ({coverage.distinct_terms} "
                    f"{record.discipline} terms), minimum {thresholds.min_term_coverage:.2f}",
                )
            )
        flags.extend(_pii_flags(record))
        scores = {
            "length": float(assessment.length),
            "repeat_ratio": _round(assessment.repeat_ratio),
            "term_coverage": coverage.score,
            "distinct_terms": float(coverage.distinct_terms),
        }
        return flags, scores

    def _coherence(
        self,
        records: Sequence[GovernanceInput],
        indices: list[int],
        flags: list[list[QualityFlag]],
        scores: list[dict[str, float]],
    ) -> None:
        items = [
            CoherenceItem(
                instruction=records[i].question,
                output=coherence_window(
                    records[i].output,
                    language=records[i].language,
                    units=self.policy.thresholds(records[i].discipline).coherence_window.get(
                        records[i].language
                    ),
                ),
                language=records[i].language,
            )
            for i in indices
        ]
        results = batch_coherence(
            items,
            embedder=self.embedder,
            splitter=self.splitter,
            owners=[records[i].record_id for i in indices],
        )
        for i, result in zip(indices, results, strict=True):
            t = self.policy.thresholds(records[i].discipline)
            scores[i]["instruction_output"] = _round(result.instruction_output)
            if result.instruction_output < t.min_instruction_output_similarity:
                flags[i].append(
                    _whole_output(
                        records[i],
                        FlagCode.OFF_TOPIC,
                        f"instruction/output similarity {result.instruction_output:.2f}, "
                        f"minimum {t.min_instruction_output_similarity:.2f}",
                    )
                )
            if result.consecutive_sentences is not None:
                scores[i]["consecutive_sentences"] = _round(result.consecutive_sentences)
                if result.consecutive_sentences < t.min_consecutive_sentence_similarity:
                    flags[i].append(
                        _whole_output(
                            records[i],
                            FlagCode.INCOHERENT,
                            f"adjacent sentences similarity {result.consecutive_sentences:.2f}, "
                            f"minimum {t.min_consecutive_sentence_similarity:.2f}",
                        )
                    )

    def _duplicates(
        self,
        records: Sequence[GovernanceInput],
        indices: list[int],
        flags: list[list[QualityFlag]],
        scores: list[dict[str, float]],
    ) -> dict[int, str]:
        matches = self.dedup_index.find_duplicates([_dedup_item(records[i]) for i in indices])
        minhash_at, embedding_at = self.policy.dedup_thresholds()
        found: dict[int, str] = {}
        for i, match in zip(indices, matches, strict=True):
            if match is None:
                continue
            scores[i]["duplicate_similarity"] = _round(match.similarity)
            method = DuplicateMethod(match.method)
            if method is DuplicateMethod.EXACT:
                code = FlagCode.EXACT_DUPLICATE
            elif match.similarity >= (
                minhash_at if method is DuplicateMethod.MINHASH else embedding_at
            ):
                code = FlagCode.NEAR_DUPLICATE
            else:
                continue
            found[i] = match.record_id
            flags[i].append(
                _whole_output(
                    records[i],
                    code,
                    f"duplicates {match.record_id} ({method.value} similarity "
                    f"{match.similarity:.2f})",
                )
            )
        return found

    def _novelty(self, records: Sequence[GovernanceInput], accepted: list[int]) -> dict[int, float]:
        """1 minus how close each accepted record's question is to an earlier accepted question
        of the batch (same embedding model), rescaled between the policy's bounds."""
        bounds = self.policy.reward.novelty
        novelty = {i: 1.0 for i in accepted}
        by_model: dict[str, list[int]] = {}
        for i in accepted:
            by_model.setdefault(model_for_language(records[i].language).name, []).append(i)
        for indices in by_model.values():
            if len(indices) < 2:
                continue
            language = records[indices[0]].language
            # Same texts as the coherence step embedded: served by the embedding cache.
            vectors = self.embedder.encode(
                [records[i].question for i in indices],
                language=language,
                owners=[records[i].record_id for i in indices],
            )
            similarity = self.embedder.calibrate(vectors @ vectors.T, language=language)
            for k in range(1, len(indices)):
                closest = float(np.max(similarity[k, :k]))
                span = bounds.zero_at - bounds.free_below
                novelty[indices[k]] = min(1.0, max(0.0, (bounds.zero_at - closest) / span))
        return novelty

    def _contribution(
        self, flags: list[QualityFlag], scores: dict[str, float], novelty: float
    ) -> dict[str, float]:
        reward = self.policy.reward
        weights = reward.quality_weights
        on_topic = min(1.0, scores.get("instruction_output", 0.0) / reward.on_topic_full)
        consecutive = scores.get("consecutive_sentences")
        flow = 1.0 if consecutive is None else min(1.0, consecutive / reward.flow_full)
        warnings = sum(1 for f in flags if f.code is not FlagCode.PII_REDACTED)
        clean = max(0.0, 1.0 - reward.warning_penalty * warnings)
        quality = _round(weights.on_topic * on_topic + weights.flow * flow + weights.clean * clean)
        coverage_factor = (
            reward.coverage_floor + (1 - reward.coverage_floor) * scores["term_coverage"]
        )
        return {
            "quality": quality,
            "contribution": _round(quality * coverage_factor * _round(novelty)),
        }

    # -- decisions ---------------------------------------------------------------------------------

    def _rejected(self, flags: list[QualityFlag]) -> bool:
        return any(self.policy.rejects(f.code) for f in flags)

    def _decision(
        self,
        record: GovernanceInput,
        flags: list[QualityFlag],
        scores: dict[str, float],
        duplicate_of: str | None,
        accepted: bool,
    ) -> RecordDecision:
        graded = [
            replace(
                f,
                severity=FlagSeverity.ERROR
                if self.policy.rejects(f.code)
                else FlagSeverity.WARNING,
            )
            for f in sorted(flags, key=lambda f: (field_rank(f.field), f.start, f.code.value))
        ]
        codes = {f.code for f in graded if f.severity is FlagSeverity.ERROR}
        if record.redactions and any(record.redactions.values()):
            codes.add(FlagCode.PII_REDACTED)
        return RecordDecision(
            record_id=record.record_id,
            accepted=accepted,
            reasons=[code.value for code in REASON_ORDER if code in codes],
            scores=scores,
            flags=[f.to_dict() for f in graded],
            duplicate_of=duplicate_of,
            redactions={k: v for k, v in sorted(record.redactions.items()) if v},
        )


_WORD = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+")
_SENTENCE_END = re.compile(r"[。！？；]|[.!?;](?=\s|$)")
_SENTENCE_SEARCH = 400
"""How far past the window a sentence end is looked for before the text is cut mid-sentence."""


def coherence_window(text: str, *, language: str, units: int) -> str:
    """The opening of ``text`` that coherence is measured on: the first ``units`` length units
    (words for ``en``, non-space characters otherwise), extended to the end of that sentence.

    The embedding models read 256 tokens of a text; past that an answer's topic and flow are
    already established, and embedding every later sentence would cost model time that grows with
    the answer's length.
    """
    if language == "en":
        ends = [m.end() for m in itertools.islice(_WORD.finditer(text), units)]
        reached = len(ends) == units
        cut = ends[-1] if ends else 0
    else:
        count, cut, reached = 0, 0, False
        for index, ch in enumerate(text):
            if not ch.isspace():
                count += 1
                if count == units:
                    cut, reached = index + 1, True
                    break
    if not reached or cut >= len(text):
        return text
    end = _SENTENCE_END.search(text, cut, cut + _SENTENCE_SEARCH)
    return text[: end.end() if end else cut]


def _round(value: float) -> float:
    return round(float(value), SCORE_DIGITS)


def _whole_output(record: GovernanceInput, code: FlagCode, message: str) -> QualityFlag:
    return QualityFlag(code=code, field="output", start=0, end=len(record.output), message=message)


def _pii_flags(record: GovernanceInput) -> list[QualityFlag]:
    """One ``pii_redacted`` flag per placeholder of a redacted type, in every field and turn."""
    types = [t for t, n in record.redactions.items() if n]
    if not types:
        return []
    pattern = re.compile(r"\[(?:" + "|".join(re.escape(t) for t in sorted(types)) + r")\]")
    return [
        QualityFlag(
            code=FlagCode.PII_REDACTED,
            field=name,
            start=m.start(),
            end=m.end(),
            message=f"{m.group()[1:-1]} replaced at intake",
        )
        for name, text in record.texts()
        for m in pattern.finditer(text)
    ]


def _dedup_item(record: GovernanceInput) -> DedupItem:
    # The same rule as an index rebuilt from the ledger's records, so both compare the same text.
    fields = {**record.canonical_texts(), "language": record.language}
    return DedupItem.from_record(record.record_id, fields)
