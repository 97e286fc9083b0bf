"""The evaluation runner: the base and each adapter answer the benchmark and the control set, and
every answer is scored.

Per model and item: the answer (greedy by default, the base tokenizer's chat template, as
``byr chat`` generates), :meth:`Scorer.score` of it, and the reference log-likelihood of the
item's reference answer after the same prompt (its perplexity). Control items get the text
metrics and the log-likelihood; glossary probes the log-likelihood of each term. Adapters are
swapped on one base (:mod:`trainer.eval.switcher`). Every result goes through the cache
(:mod:`trainer.eval.cache`) first, so a rerun computes only what is missing, and a model whose
results are all cached is not even loaded.

Before an adapter is scored, the texts it was trained on (its manifest names the records; the
caller's ``training_texts`` reads them, e.g. from the ledger's record store) are checked for
13-gram overlap with every item; overlapping items are refused for that adapter and listed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from trainer.eval.benchmark import BenchmarkItem
from trainer.eval.cache import EvalCache, cache_key, item_content_hash
from trainer.eval.contamination import find_contaminated
from trainer.eval.control import ControlItem, score_control
from trainer.eval.errors import EvaluationError
from trainer.eval.glossary import PROBE_VERSION, GlossaryProbe, probes
from trainer.eval.plan import EvaluationPlan
from trainer.eval.results import (
    ContaminationCheck,
    EvaluationResult,
    GlossaryScore,
    ItemResult,
    ModelResult,
    Progress,
    TrainingTextSource,
)
from trainer.eval.scoring import Scorer
from trainer.eval.switcher import ModelSwitcher, ModelUnderTest, shares_base
from trainer.manifest import AdapterManifest

PROMPT_FORMAT = "chat-template-v1"
"""How an item becomes the model's input; part of every generation key."""


def _adapter_lineage(
    model: ModelUnderTest, base_hash: str
) -> tuple[AdapterManifest, dict[str, Any]]:
    from trainer.manifest import adapter_hash, read_manifest

    assert model.adapter_dir is not None
    manifest = read_manifest(model.adapter_dir)
    if manifest.base_model.hash != base_hash:
        raise EvaluationError(
            f"the adapter {model.name} was trained on the base {manifest.base_model.name} "
            f"(hash {manifest.base_model.hash[:16]}…), not on the one evaluated "
            f"(hash {base_hash[:16]}…): pass --base {manifest.base_model.name}"
        )
    actual = adapter_hash(model.adapter_dir)
    return manifest, {
        "name": model.name,
        "kind": "adapter",
        "adapter_dir": str(model.adapter_dir),
        "adapter_hash": actual,
        "adapter_verified": actual == manifest.adapter.hash,
        "run_id": manifest.run_id,
        "method": manifest.method,
        "recipe_hash": manifest.recipe_hash,
        "dataset_root": manifest.dataset.root,
        "train_records": len(manifest.dataset.train_record_ids),
        "validation_records": len(manifest.dataset.validation_record_ids),
        "base_model_hash": manifest.base_model.hash,
        "loaded": "swapped on the shared base" if shares_base(manifest) else "on its own",
    }


class _Run:
    """One evaluation in progress: its cache, its switcher, its counters."""

    def __init__(
        self,
        *,
        plan: EvaluationPlan,
        cache: EvalCache,
        switcher: ModelSwitcher,
        scorer: Scorer,
        progress: Callable[[Progress], None] | None,
    ) -> None:
        self.plan = plan
        self.cache = cache
        self.switcher = switcher
        self.scorer = scorer
        self.progress = progress
        self.counts: Counter[str] = Counter()

    def _settings_doc(self) -> dict[str, Any]:
        s = self.plan.settings
        return {
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        }

    def _report(self, model: str, stage: str, done: int, total: int, cached: bool) -> None:
        if self.progress is not None:
            self.progress(Progress(model, stage, done, total, cached))

    def evaluate(
        self,
        model: ModelUnderTest,
        *,
        model_key: str,
        manifest: AdapterManifest | None,
        result: ModelResult,
    ) -> None:
        """Fill ``result`` with the model's scores; loads the model only if something is
        missing from the cache."""
        refused = result.contamination.refused if result.contamination else frozenset()
        with _Lazy(self.switcher, model, manifest) as lazy:
            result.items = self._benchmark(lazy, model.name, model_key, refused)
            result.control = self._control(lazy, model.name, model_key, refused)
            result.glossary = self._glossary(lazy, model.name, model_key)

    def _benchmark(
        self, lazy: _Lazy, name: str, model_key: str, refused: frozenset[str]
    ) -> list[ItemResult]:
        items = [i for i in self.plan.items if i.id not in refused]
        done = []
        for index, item in enumerate(items, start=1):
            answer, cached = self._answer(lazy, model_key, item)
            likelihood = self._likelihood(lazy, model_key, item)
            scored = self.scorer.score(item, answer["text"])
            done.append(
                ItemResult(
                    item_id=item.id,
                    language=item.language.value,
                    metrics=scored.metrics,
                    overall=scored.overall,
                    dimensions=scored.dimensions,
                    discipline=item.discipline.value,
                    task_type=item.task_type.value,
                    checker_outcome=scored.checker_outcome,
                    log_likelihood=likelihood["log_likelihood"],
                    tokens=likelihood["tokens"],
                    completion_tokens=answer["completion_tokens"],
                    finish_reason=answer["finish_reason"],
                    answer=answer["text"],
                    cached=cached,
                )
            )
            self._report(name, "benchmark", index, len(items), cached)
        return done

    def _control(
        self, lazy: _Lazy, name: str, model_key: str, refused: frozenset[str]
    ) -> list[ItemResult]:
        items = [i for i in self.plan.control_items if i.id not in refused]
        done = []
        for index, item in enumerate(items, start=1):
            answer, cached = self._answer(lazy, model_key, item)
            likelihood = self._likelihood(lazy, model_key, item)
            scored = score_control(item, answer["text"])
            done.append(
                ItemResult(
                    item_id=item.id,
                    language=item.language.value,
                    metrics=scored.metrics,
                    overall=scored.overall,
                    log_likelihood=likelihood["log_likelihood"],
                    tokens=likelihood["tokens"],
                    completion_tokens=answer["completion_tokens"],
                    finish_reason=answer["finish_reason"],
                    answer=answer["text"],
                    cached=cached,
                )
            )
            self._report(name, "control", index, len(items), cached)
        return done

    def _glossary(self, lazy: _Lazy, name: str, model_key: str) -> dict[str, GlossaryScore]:
        found = probes(self.plan.glossary, self.plan.languages)
        sums: dict[str, tuple[float, int, int]] = {}
        for index, probe in enumerate(found, start=1):
            scored, cached = self._probe(lazy, model_key, probe)
            ll, tokens, count = sums.get(probe.discipline, (0.0, 0, 0))
            if scored["log_likelihood"] is not None:
                ll, tokens, count = (
                    ll + scored["log_likelihood"],
                    tokens + scored["tokens"],
                    count + 1,
                )
            sums[probe.discipline] = (ll, tokens, count)
            self._report(name, "glossary", index, len(found), cached)
        return {
            d: GlossaryScore(log_likelihood=ll, tokens=tokens, probes=count)
            for d, (ll, tokens, count) in sums.items()
        }

    def _messages(self, item: BenchmarkItem | ControlItem) -> list[dict[str, str]]:
        return [{"role": "user", "content": item.question()}]

    def _answer(
        self, lazy: _Lazy, model_key: str, item: BenchmarkItem | ControlItem
    ) -> tuple[dict[str, Any], bool]:
        from trainer.generate import stream_generate

        key = cache_key(
            "generation",
            model=model_key,
            item=item.id,
            content=item_content_hash(item),
            decoding=self._settings_doc(),
            prompt_format=PROMPT_FORMAT,
        )
        found = self.cache.get(key)
        if found is not None:
            self.counts["cache_hits"] += 1
            return found, True
        model, tokenizer = lazy.get(discipline=_discipline_of(item))
        stream = stream_generate(
            model, tokenizer, messages=self._messages(item), settings=self.plan.settings
        )
        text = "".join(stream)
        answer = {
            "text": text,
            "completion_tokens": stream.completion_tokens,
            "finish_reason": stream.finish_reason,
            "seconds": round(stream.seconds, 4),
        }
        self.cache.put(key, answer)
        self.counts["generated"] += 1
        return answer, False

    def _score_likelihood(
        self, lazy: _Lazy, *, prompt: str, reference: str, discipline: str | None
    ) -> dict[str, Any]:
        from trainer.eval.likelihood import reference_log_likelihood

        model, tokenizer = lazy.get(discipline=discipline)
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        try:
            scored = reference_log_likelihood(
                model, tokenizer, prompt=prompt, reference=reference, max_length=limit
            )
        except EvaluationError:  # the reference alone does not fit the model
            return {"log_likelihood": None, "tokens": None}
        self.counts["likelihoods"] += 1
        return {"log_likelihood": scored.log_likelihood, "tokens": scored.tokens}

    def _likelihood(
        self, lazy: _Lazy, model_key: str, item: BenchmarkItem | ControlItem
    ) -> dict[str, Any]:
        from trainer.generate import prompt_text

        key = cache_key(
            "likelihood",
            model=model_key,
            item=item.id,
            content=item_content_hash(item),
            prompt_format=PROMPT_FORMAT,
        )
        found = self.cache.get(key)
        if found is not None:
            self.counts["cache_hits"] += 1
            return found
        prompt = prompt_text(lazy.tokenizer(), self._messages(item))
        scored = self._score_likelihood(
            lazy, prompt=prompt, reference=item.reference, discipline=_discipline_of(item)
        )
        self.cache.put(key, scored)
        return scored

    def _probe(
        self, lazy: _Lazy, model_key: str, probe: GlossaryProbe
    ) -> tuple[dict[str, Any], bool]:
        key = cache_key(
            "glossary",
            model=model_key,
            discipline=probe.discipline,
            language=probe.language,
            term=probe.term,
            probe_version=PROBE_VERSION,
        )
        found = self.cache.get(key)
        if found is not None:
            self.counts["cache_hits"] += 1
            return found, True
        scored = self._score_likelihood(
            lazy, prompt=probe.prompt, reference=probe.reference, discipline=probe.discipline
        )
        self.cache.put(key, scored)
        return scored, False


class _Lazy:
    """A model activated on the switcher on first use only (nothing is loaded while every
    result comes from the cache)."""

    def __init__(
        self, switcher: ModelSwitcher, model: ModelUnderTest, manifest: AdapterManifest | None
    ) -> None:
        self._switcher = switcher
        self._model = model
        self._manifest = manifest
        self._context: Any = None
        self._loaded: tuple[Any, Any] | None = None

    def __enter__(self) -> _Lazy:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None
            self._loaded = None

    def tokenizer(self) -> Any:
        return self._switcher.tokenizer()

    def get(self, *, discipline: str | None = None) -> tuple[Any, Any]:
        """The active model and tokenizer; a discipline-experts model answers with the expert
        of ``discipline`` (its fallback for ``None``)."""
        if self._loaded is None:
            self._context = self._switcher.activate(self._model, self._manifest)
            self._loaded = self._context.__enter__()
        self._switcher.route(discipline)
        return self._loaded


def _discipline_of(item: BenchmarkItem | ControlItem) -> str | None:
    """The item's discipline (control items have none)."""
    discipline = getattr(item, "discipline", None)
    return None if discipline is None else str(discipline.value)


def run_evaluation(
    *,
    models: Sequence[ModelUnderTest],
    plan: EvaluationPlan,
    base: str,
    cache: EvalCache,
    training_texts: TrainingTextSource | None = None,
    model_cache_dir: Any = None,
    device: str | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``models`` (the base and adapters trained on it) on ``plan``.

    ``base`` is a base model name or folder (:func:`trainer.models.resolve_base`); every adapter
    must have been trained on exactly that base (same weights hash), else
    :class:`EvaluationError`. With ``training_texts``, each adapter's training texts are checked
    for contamination and overlapping items are refused for it.
    """
    from trainer.architecture import base_model_hash
    from trainer.models import resolve_base

    if not models:
        raise EvaluationError("nothing to evaluate: name the base and/or adapters")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise EvaluationError("each model may be named once")
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    ref = resolve_base(base, cache_dir=model_cache_dir)
    base_hash = base_model_hash(ref.path)
    prepared: list[tuple[ModelUnderTest, AdapterManifest | None, str, ModelResult]] = []
    for model in models:
        if model.adapter_dir is None:
            lineage = {"name": model.name, "kind": "base", "base_model_hash": base_hash}
            prepared.append((model, None, base_hash, ModelResult(model=model, lineage=lineage)))
            continue
        manifest, adapter_lineage = _adapter_lineage(model, base_hash)
        result = ModelResult(model=model, lineage=adapter_lineage)
        if training_texts is not None:
            texts = training_texts(manifest)
            checked: list[BenchmarkItem | ControlItem] = [*plan.items, *plan.control_items]
            result.contamination = ContaminationCheck(
                training_records=texts.records,
                texts_available=texts.available,
                contaminated=tuple(find_contaminated(checked, texts.texts)),
            )
        key = f"{base_hash}+{adapter_lineage['adapter_hash']}"
        prepared.append((model, manifest, key, result))
    switcher = ModelSwitcher(base=ref, device=device)
    with Scorer() as scorer:
        run = _Run(plan=plan, cache=cache, switcher=switcher, scorer=scorer, progress=progress)
        for model, adapter_manifest, key, result in prepared:
            run.evaluate(model, model_key=key, manifest=adapter_manifest, result=result)
    return EvaluationResult(
        plan=plan,
        base_model={"name": ref.name, "hash": base_hash, "path": str(ref.path)},
        models=[result for *_, result in prepared],
        started_at=started_at,
        seconds=time.perf_counter() - started,
        stats={
            "loads": dict(switcher.loads),
            "generated": run.counts["generated"],
            "likelihoods": run.counts["likelihoods"],
            "cache_hits": run.counts["cache_hits"],
        },
    )
