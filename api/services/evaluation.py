"""Evaluating the base and adapters on a benchmark, for ``byr eval`` and ``GET /v1/evaluations``.

:class:`EvaluationService` resolves the models (``base``, a finished run id or an adapter folder,
as ``byr chat --adapter`` does), runs :func:`trainer.eval.runner.run_evaluation` with the
ledger's record store as the source of each adapter's training texts (contaminated items are
refused), writes the report (``BYR_HOME/eval/reports/<id>/`` unless told otherwise) and records
``EvaluationCompleted`` with the report's sha256. Results are cached in ``BYR_HOME/eval/cache``,
so an interrupted evaluation run again resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.services.generation import resolve_adapter_dir
from ledger.application import CorpusLedger
from ledger.errors import Conflict, InvalidRequest, NotFound

#: Keys that could hold corpus text or a model's answer: dropped from a served report wherever
#: they occur (report.json holds ids and numbers only; this keeps it so if that ever changes).
TEXT_KEYS = frozenset(
    {"answer", "answers", "prompt", "reference", "text", "texts", "instruction", "input", "output"}
)
#: Report sections a reader of the scores has no use for: the files beside the report (the
#: answers file among them) and where adapters lie on the evaluating machine.
DROPPED_KEYS = frozenset({"files", "adapter_dir"})

if TYPE_CHECKING:
    from ledger.vocabulary import Discipline, TaskType
    from trainer.eval.results import EvaluationResult, Progress


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate: model names (``base``, run ids, adapter folders) and on what."""

    models: Sequence[str]
    base: str | None = None
    """Base model name or folder; default: the base of the first adapter (``tiny`` without one)."""
    benchmark: Path | None = None
    """A benchmark folder; default: the bundled seed benchmark."""
    cells: Sequence[str] = field(default_factory=list)
    """``discipline:task_type`` pairs (names as intake accepts them); default: every cell."""
    limit: int | None = None
    """At most this many items per cell (and control items)."""
    max_new_tokens: int = 128
    control: Path | None = None
    """A control-set folder; default: the bundled control set."""
    glossary_terms: int = 16
    """Glossary terms per discipline for the knowledge-injection probes (0: none)."""
    languages: Sequence[str] = field(default_factory=list)
    """Only items (and probes) in these languages (``en``, ``zh``); default: both."""
    allow_paths: bool = True
    """Whether a model may name an adapter folder (``byr eval``); HTTP takes run ids only."""


def parse_cells(cells: Sequence[str]) -> list[tuple[Discipline, TaskType]]:
    """``discipline:task_type`` strings as vocabulary members; raises :class:`InvalidRequest`
    naming the position of a bad one."""
    from ledger.vocabulary import Discipline, TaskType

    parsed = []
    for index, cell in enumerate(cells):
        discipline, sep, task = cell.partition(":")
        if not sep:
            raise InvalidRequest(f"cell {index + 1}: expected DISCIPLINE:TASK_TYPE")
        try:
            parsed.append((Discipline.parse(discipline), TaskType.parse(task)))
        except ValueError as exc:
            raise InvalidRequest(f"cell {index + 1}: {exc}") from exc
    return parsed


class EvaluationService:
    """Runs evaluations, writes their reports and records them; lists the recorded ones."""

    def __init__(
        self, *, ledger: CorpusLedger, eval_dir: Path, model_cache_dir: Path | None
    ) -> None:
        self.ledger = ledger
        self.eval_dir = eval_dir
        self.model_cache_dir = model_cache_dir

    @property
    def cache_dir(self) -> Path:
        return self.eval_dir / "cache"

    @property
    def reports_dir(self) -> Path:
        return self.eval_dir / "reports"

    def evaluate(
        self,
        request: EvaluationRequest,
        *,
        output_dir: Path | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> dict[str, Any]:
        """Evaluate, write the report and record ``EvaluationCompleted``; returns what
        :meth:`describe` shows plus the report's files, summary and forgetting flags.

        Raises :class:`InvalidRequest` (bad models, cells, limits, benchmark), :class:`NotFound`
        or :class:`Conflict` (a run without a finished adapter)."""
        from trainer.errors import ConfigError, ManifestError, ModelResolutionError
        from trainer.eval import EvaluationError, load_benchmark, load_seed_benchmark
        from trainer.eval.cache import EvalCache
        from trainer.eval.control import load_control_set, load_default_control_set
        from trainer.eval.glossary import load_glossary_terms
        from trainer.eval.plan import plan_evaluation
        from trainer.eval.report import build_report, new_report_id, write_report
        from trainer.eval.runner import run_evaluation
        from trainer.eval.switcher import ModelUnderTest
        from trainer.eval.training_texts import ledger_training_texts
        from trainer.generate import GenerationSettings

        names = self._checked_names(request)
        self.ledger.sync()
        models = [
            ModelUnderTest(
                name=n,
                adapter_dir=resolve_adapter_dir(self.ledger, n, allow_paths=request.allow_paths),
            )
            for n in names
        ]
        try:
            base = request.base or self._default_base(models)
            benchmark = (
                load_benchmark(request.benchmark) if request.benchmark else load_seed_benchmark()
            )
            control = (
                load_control_set(request.control) if request.control else load_default_control_set()
            )
            plan = plan_evaluation(
                benchmark,
                cells=parse_cells(request.cells),
                limit=request.limit,
                control=control,
                glossary=load_glossary_terms(per_discipline=request.glossary_terms),
                settings=GenerationSettings(max_new_tokens=request.max_new_tokens),
                languages=request.languages,
            )
            with EvalCache(self.cache_dir) as cache:
                result = run_evaluation(
                    models=models,
                    plan=plan,
                    base=base,
                    cache=cache,
                    training_texts=ledger_training_texts(self.ledger),
                    model_cache_dir=self.model_cache_dir,
                    progress=progress,
                )
        except (EvaluationError, ModelResolutionError, ManifestError, ConfigError) as exc:
            # a benchmark, cell, base or adapter that cannot be used as given
            raise InvalidRequest(str(exc)) from exc
        report_id = new_report_id()
        report = build_report(result, report_id=report_id)
        files = write_report(report, result, output_dir or self.reports_dir / report_id)
        self._record(report, result, files.sha256, files.directory)
        return {
            **self.describe(report_id),
            "report_json": str(files.json_path),
            "report_html": str(files.html_path),
            "answers": str(files.answers_path),
            "summary": {m["name"]: m["summary"] for m in report["models"]},
            "forgetting": {c["model"]: c["forgetting"] for c in report["comparisons"]},
            "contaminated": {
                m["name"]: [c["item_id"] for c in m["contamination"].get("items", [])]
                for m in report["models"]
                if m["kind"] == "adapter"
            },
            "stats": report["stats"],
        }

    def _checked_names(self, request: EvaluationRequest) -> list[str]:
        names = [n.strip() for n in request.models if n.strip()]
        if not names:
            raise InvalidRequest("--models: name at least one model (base, a run id, a folder)")
        if not 1 <= request.max_new_tokens <= 2048:
            raise InvalidRequest("max_new_tokens must be between 1 and 2048")
        if request.limit is not None and request.limit < 1:
            raise InvalidRequest("limit must be at least 1")
        if request.glossary_terms < 0:
            raise InvalidRequest("glossary_terms must not be negative")
        return names

    def check(self, request: EvaluationRequest) -> None:
        """What can be refused before an evaluation starts (for a request answered ``202``):
        limits, cells, languages and each model (a finished run's adapter, or ``base``).

        Raises :class:`InvalidRequest`, :class:`NotFound` or :class:`Conflict`, naming the
        position of a bad model or cell."""
        names = self._checked_names(request)
        parse_cells(request.cells)
        for index, language in enumerate(request.languages):
            if language not in ("en", "zh"):
                raise InvalidRequest(f"language {index + 1}: expected en or zh")
        self.ledger.sync()
        for index, name in enumerate(names):
            try:
                resolve_adapter_dir(self.ledger, name, allow_paths=request.allow_paths)
            except NotFound as exc:
                raise NotFound(f"model {index + 1}: no such finished training run") from exc
            except Conflict as exc:
                raise Conflict(f"model {index + 1}: the training run has no adapter yet") from exc

    def _default_base(self, models: Sequence[Any]) -> str:
        from trainer.manifest import read_manifest

        for model in models:
            if model.adapter_dir is not None:
                return read_manifest(model.adapter_dir).base_model.name
        return "tiny"

    def _record(
        self, report: dict[str, Any], result: EvaluationResult, sha256: str, directory: Path
    ) -> None:
        from ledger.events import EvaluatedModel, EvaluationCompleted
        from ledger.ids import evaluation_stream

        flags = {c["model"]: len(c["forgetting"]) for c in report["comparisons"]}
        models = [
            EvaluatedModel(
                name=m["name"],
                adapter_hash=m["adapter_hash"],
                run_id=lineage.get("run_id"),
                items_scored=m["summary"]["items_scored"],
                items_refused=len(m["contamination"].get("items", [])),
                overall=m["summary"]["overall"],
                forgetting_flags=flags.get(m["name"], 0),
            )
            for m, lineage in zip(report["models"], report["lineage"]["models"], strict=True)
        ]
        self.ledger.append(
            evaluation_stream(report["report_id"]),
            [
                EvaluationCompleted(
                    report_id=report["report_id"],
                    report_sha256=sha256,
                    report_dir=str(directory.resolve()),
                    base_model=result.base_model["name"],
                    base_model_hash=result.base_model["hash"],
                    models=models,
                    benchmark_name=result.plan.benchmark_name,
                    benchmark_version=result.plan.benchmark_version,
                    benchmark_hash=result.plan.benchmark_hash,
                    items=len(result.plan.items),
                    cells=len(result.plan.cells),
                    control_items=len(result.plan.control_items),
                    started_at=result.started_at,
                    seconds=round(result.seconds, 3),
                )
            ],
            expected_version=0,
        )

    def list_evaluations(self) -> list[dict[str, Any]]:
        """Every recorded evaluation, oldest first."""
        return [view.to_dict() for view in self.ledger.evaluations()]

    def describe(self, report_id: str) -> dict[str, Any]:
        """One recorded evaluation; raises :class:`NotFound`."""
        return self.ledger.evaluation(report_id).to_dict()

    def report(self, report_id: str) -> dict[str, Any]:
        """The recorded evaluation's ``report.json``, checked against the sha256 the ledger
        recorded, without anything that could hold text; raises :class:`NotFound` (no such
        evaluation, or its report file is not on this server) or :class:`Conflict` (the file's
        hash differs from the recorded one)."""
        recorded = self.describe(report_id)
        path = Path(recorded["report_dir"]) / "report.json"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NotFound(f"evaluation {report_id}: report not on this server") from exc
        if hashlib.sha256(data).hexdigest() != recorded["report_sha256"]:
            raise Conflict(
                f"evaluation {report_id}: report.json differs from the one recorded (sha256)"
            )
        try:
            document = json.loads(data)
        except ValueError as exc:  # cannot happen for the recorded bytes, kept for mypy's sake
            raise Conflict(f"evaluation {report_id}: report.json is not JSON") from exc
        cleaned = _without_text(document)
        return cleaned if isinstance(cleaned, dict) else {}


def _without_text(value: Any) -> Any:
    """``value`` without any :data:`TEXT_KEYS` or :data:`DROPPED_KEYS` entry, at any depth."""
    if isinstance(value, dict):
        return {
            k: _without_text(v)
            for k, v in value.items()
            if k not in TEXT_KEYS and k not in DROPPED_KEYS
        }
    if isinstance(value, list):
        return [_without_text(v) for v in value]
    return value
