"""Talking to trained adapters: generation for ``POST /v1/models/{adapter}/generate`` and ``byr
chat``.

An adapter is named by the run that trained it (its adapter folder comes from the ledger), by
``base`` (the base model alone) or, from the CLI only, by a folder. Loaded models stay in a small
LRU cache, and one generation runs at a time (a lock held until its thread ends), so a second
request waits its turn in a worker thread while the server keeps answering everything else.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.application import CorpusLedger
from ledger.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from ledger.views import TrainingRunView
    from trainer.generate import GenerationStream

BASE = "base"
FINISHED = ("completed", "anchored")


def resolve_adapter_dir(
    ledger: CorpusLedger, adapter: str, *, allow_paths: bool = False
) -> Path | None:
    """The adapter folder ``adapter`` names: ``None`` for ``base``; the adapter of a finished run
    (by run id or request id); with ``allow_paths`` also a folder. Raises :class:`NotFound` or
    :class:`Conflict` (the run has no adapter yet)."""
    if adapter == BASE:
        return None
    if allow_paths and Path(adapter).is_dir():
        return Path(adapter)
    run: TrainingRunView | None = None
    try:
        run = ledger.training_run(adapter)
    except NotFound:
        with contextlib.suppress(NotFound):
            run = ledger.training_run_for_request(ledger.training_request(adapter).request_id)
    if run is None:
        raise NotFound(f"no finished training run {adapter!r} (or use 'base')")
    if run.status not in FINISHED or not run.adapter_dir:
        raise Conflict(f"training run {run.run_id!r} is {run.status}: it has no adapter yet")
    return Path(run.adapter_dir)


class GenerationService:
    """Loads base models and adapters (cached) and streams their answers, one at a time."""

    def __init__(
        self,
        *,
        ledger: CorpusLedger,
        model_cache_dir: Path | None,
        max_new_tokens: int = 512,
        cache_size: int = 2,
        default_base: str = "tiny",
    ) -> None:
        self.ledger = ledger
        self.model_cache_dir = model_cache_dir
        self.max_new_tokens = max_new_tokens
        self.default_base = default_base
        self._cache_size = cache_size
        self._models: OrderedDict[tuple[str | None, str | None], tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def adapter_dir(self, adapter: str, *, allow_paths: bool = False) -> Path | None:
        """The adapter folder ``adapter`` names (see :func:`resolve_adapter_dir`)."""
        return resolve_adapter_dir(self.ledger, adapter, allow_paths=allow_paths)

    def base_of(self, adapter_dir: Path | None, base: str | None) -> str:
        """The base model a generation uses: ``base`` when given, else the one the adapter's
        manifest names, else the default."""
        if base:
            return base
        if adapter_dir is not None:
            from trainer.manifest import read_manifest

            return read_manifest(adapter_dir).base_model.name
        return self.default_base

    def stream(
        self,
        *,
        adapter: str,
        messages: Sequence[Mapping[str, str]],
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        base: str | None = None,
        allow_paths: bool = False,
    ) -> GenerationStream:
        """Start the answer to ``messages``; iterate the result for its text pieces.

        Blocks while another generation runs. Raises :class:`InvalidRequest` (a field out of
        range, a bad message), :class:`NotFound` or :class:`Conflict` (no finished adapter)."""
        from trainer.errors import ConfigError, TrainerError
        from trainer.generate import GenerationSettings, stream_generate

        if not 1 <= max_new_tokens <= self.max_new_tokens:
            raise InvalidRequest(f"max_new_tokens must be between 1 and {self.max_new_tokens}")
        if not 0.0 <= temperature <= 2.0:
            raise InvalidRequest("temperature must be between 0 and 2")
        if not 0.0 < top_p <= 1.0:
            raise InvalidRequest("top_p must be in (0, 1]")
        folder = self.adapter_dir(adapter, allow_paths=allow_paths)
        settings = GenerationSettings(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
        )
        self._lock.acquire()
        try:
            model, tokenizer = self._load(folder, base)
            return stream_generate(
                model, tokenizer, messages=messages, settings=settings, on_done=self._lock.release
            )
        except ConfigError as exc:
            self._lock.release()
            raise InvalidRequest(str(exc)) from exc
        except TrainerError as exc:
            self._lock.release()
            raise Conflict(f"cannot load adapter {adapter!r}: {type(exc).__name__}") from exc
        except BaseException:
            self._lock.release()
            raise

    def _load(self, folder: Path | None, base: str | None) -> tuple[Any, Any]:
        from trainer.generate import load_generator

        key = (str(folder.resolve()) if folder is not None else None, base)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        loaded = load_generator(
            adapter_dir=folder,
            base=base or (None if folder is not None else self.default_base),
            cache_dir=self.model_cache_dir,
        )
        self._models[key] = loaded
        while len(self._models) > self._cache_size:
            self._models.popitem(last=False)
        return loaded


def as_messages(
    *, messages: Sequence[Mapping[str, str]] | None, prompt: str | None
) -> list[dict[str, str]]:
    """The conversation of a request: its messages, or one user turn holding ``prompt``."""
    if messages:
        return [dict(m) for m in messages]
    if prompt:
        return [{"role": "user", "content": prompt}]
    raise InvalidRequest("give messages or a prompt")
