"""PII detection benchmark: precision and recall on the labeled set, and throughput.

Run ``python -m bench.pii``. Prints a per-type table, recall per obfuscation form, and writes
``bench/results/pii.json``.

Matching rule (see :mod:`ingest.governance.pii_eval.scoring`): a prediction is a true positive when
it has the same type as a gold span and overlaps it, one-to-one per case; the *exact* columns
require identical offsets as well. The targets (recall >= 0.98, precision >= 0.98) apply to the
structured types, pooled; PERSON relies on cue rules and an optional small NER model and is reported
apart. The obfuscated cases (values disguised with invisible characters, other digits, spelled-out
e-mail addresses, lower-case names...; ``EvalCase.obfuscation``) are also scored on their own, all
types pooled, with a recall target of 0.98; "plain" is the rest of the set.

Throughput is measured on record-sized texts (four labeled cases of one language joined, about
150-250 characters) in batches of 200 through ``PiiRedactor.redact_many``, after the pipelines are
built; the figure is the median of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ingest.governance.pii import STRUCTURED_TYPES, PiiMatch, PiiRedactor, PiiType
from ingest.governance.pii_eval import EvalCase, load_cases
from ingest.governance.pii_eval.scoring import Score, score

RESULTS_PATH = Path(__file__).with_name("results") / "pii.json"
TARGET_RECALL = 0.98
TARGET_PRECISION = 0.98
TARGET_OBFUSCATED_RECALL = 0.98
BATCH_SIZE = 200
CASES_PER_RECORD = 4


def predict(redactor: PiiRedactor, cases: list[EvalCase]) -> dict[str, list[PiiMatch]]:
    """The matches of ``redactor`` in each case, by case id."""
    predicted: dict[str, list[PiiMatch]] = {}
    for language in ("zh", "en", "mixed"):
        group = [c for c in cases if c.language == language]
        found = redactor.detect_many([c.text for c in group], language=language)
        predicted.update({c.id: m for c, m in zip(group, found, strict=True)})
    return predicted


def evaluate(
    cases: list[EvalCase], predicted: dict[str, list[PiiMatch]], *, exact: bool = False
) -> Score:
    """Score of the predictions on ``cases`` (overlap rule, or the exact rule)."""
    return score([c.spans for c in cases], [predicted[c.id] for c in cases], exact=exact)


def obfuscation_report(
    cases: list[EvalCase], predicted: dict[str, list[PiiMatch]]
) -> dict[str, Any]:
    """Overlap-rule tallies of the obfuscated cases, all types pooled: per form, in total, and for
    the structured types and PERSON apart."""
    obfuscated = [c for c in cases if c.obfuscation is not None]
    forms = sorted({c.obfuscation for c in obfuscated if c.obfuscation is not None})
    per_form = {}
    for form in forms:
        group = [c for c in obfuscated if c.obfuscation == form]
        per_form[form] = {
            "cases": len(group),
            **evaluate(group, predicted).total(PiiType).as_dict(),
        }
    pooled = evaluate(obfuscated, predicted)
    return {
        "cases": len(obfuscated),
        "all": pooled.total(PiiType).as_dict(),
        "structured": pooled.structured.as_dict(),
        "person": pooled.total([PiiType.PERSON]).as_dict(),
        "per_form": per_form,
    }


def throughput(redactor: PiiRedactor, cases: list[EvalCase], *, runs: int) -> dict[str, Any]:
    """Texts per second for a batch of :data:`BATCH_SIZE` record-sized texts, per language."""
    rng = random.Random(7)
    out: dict[str, Any] = {}
    for language in ("zh", "en", "mixed"):
        pool = [c.text for c in cases if c.language == language]
        batch = [
            " ".join(rng.choice(pool) for _ in range(CASES_PER_RECORD)) for _ in range(BATCH_SIZE)
        ]
        redactor.redact_many(batch[:8], language=language)  # pipelines built and warm
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            redactor.redact_many(batch, language=language)
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        out[language] = {
            "batch": BATCH_SIZE,
            "mean_chars": round(sum(map(len, batch)) / len(batch), 1),
            "batch_seconds_median": round(median, 4),
            "texts_per_second": round(BATCH_SIZE / median, 1),
        }
    return out


def _row(name: str, overlap: dict[str, Any], exact: dict[str, Any]) -> str:
    return (
        f"{name:<16}{overlap['tp']:>5}{overlap['fp']:>5}{overlap['fn']:>5}"
        f"{overlap['precision']:>8.3f}{overlap['recall']:>8.3f}"
        f"{exact['precision']:>9.3f}{exact['recall']:>9.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per language")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)

    cases = load_cases()
    redactor = PiiRedactor()
    start = time.perf_counter()
    for language in ("zh", "en", "mixed"):
        redactor.pipeline(language)
    build_seconds = time.perf_counter() - start

    predicted = predict(redactor, cases)
    overlap, exact = evaluate(cases, predicted), evaluate(cases, predicted, exact=True)
    plain = evaluate([c for c in cases if c.obfuscation is None], predicted)
    obfuscated = obfuscation_report(cases, predicted)
    speed = throughput(redactor, cases, runs=args.runs)

    structured = overlap.structured
    obfuscated_recall = obfuscated["all"]["recall"]
    passed = (
        structured.recall >= TARGET_RECALL
        and structured.precision >= TARGET_PRECISION
        and obfuscated_recall >= TARGET_OBFUSCATED_RECALL
    )
    result: dict[str, Any] = {
        "dataset": {
            "cases": len(cases),
            "hard_negatives": sum(c.hard_negative for c in cases),
            "languages": {
                lang: sum(c.language == lang for c in cases) for lang in ("zh", "en", "mixed")
            },
            "gold_spans": sum(len(c.spans) for c in cases),
        },
        "matching_rule": "same type and overlapping character ranges, one-to-one per case; "
        "'exact' also requires identical offsets",
        "ner_model": redactor.ner_model,
        "overlap": overlap.as_dict(),
        "exact": exact.as_dict(),
        "plain": plain.as_dict(),
        "obfuscated": obfuscated,
        "targets": {
            "types": [t.value for t in STRUCTURED_TYPES],
            "recall": TARGET_RECALL,
            "precision": TARGET_PRECISION,
            "obfuscated_recall": TARGET_OBFUSCATED_RECALL,
            "met": passed,
        },
        "pipeline_build_seconds": round(build_seconds, 2),
        "throughput": speed,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }

    header = f"{'type':<16}{'tp':>5}{'fp':>5}{'fn':>5}{'prec':>8}{'recall':>8}"
    print(
        f"{len(cases)} cases ({result['dataset']['hard_negatives']} hard negatives), "
        f"NER model: {redactor.ner_model or 'none'}"
    )
    print(header + f"{'ex.prec':>9}{'ex.rec':>9}")
    ov, ex = result["overlap"], result["exact"]
    for pii_type in PiiType:
        if pii_type.value in ov["per_type"]:
            print(
                _row(pii_type.value, ov["per_type"][pii_type.value], ex["per_type"][pii_type.value])
            )
    print(_row("structured", ov["structured"], ex["structured"]))
    print(_row("all", ov["all"], ex["all"]))
    pl = result["plain"]
    print(
        f"plain cases:      structured precision {pl['structured']['precision']:.3f} "
        f"recall {pl['structured']['recall']:.3f}; all types precision "
        f"{pl['all']['precision']:.3f} recall {pl['all']['recall']:.3f}"
    )
    print(f"obfuscated cases ({obfuscated['cases']}), all types pooled:")
    print(f"{'form':<22}{'cases':>6}{'tp':>5}{'fn':>5}{'fp':>5}{'recall':>8}")
    rows = [*obfuscated["per_form"].items(), ("all obfuscated", obfuscated["all"])]
    for form, t in rows:
        print(
            f"{form:<22}{t.get('cases', obfuscated['cases']):>6}{t['tp']:>5}{t['fn']:>5}"
            f"{t['fp']:>5}{t['recall']:>8.3f}"
        )
    print(
        f"obfuscated: structured recall {obfuscated['structured']['recall']:.3f}, "
        f"PERSON recall {obfuscated['person']['recall']:.3f}"
    )
    verdict = "met" if passed else "NOT met"
    print(
        f"targets (structured: recall >= {TARGET_RECALL}, precision >= {TARGET_PRECISION}; "
        f"obfuscated: recall >= {TARGET_OBFUSCATED_RECALL}): {verdict}"
    )
    print(f"pipelines built in {build_seconds:.1f} s")
    for language, s in speed.items():
        print(
            f"throughput {language:<6} {s['texts_per_second']:>8.1f} texts/s "
            f"(batch of {s['batch']}, {s['mean_chars']} chars avg, "
            f"{s['batch_seconds_median']:.3f} s per batch)"
        )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.output}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
