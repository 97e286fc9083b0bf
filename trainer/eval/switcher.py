"""One base model in memory, and the adapters under evaluation swapped on it.

Loading a base costs far more than loading a LoRA adapter (SmolLM2-135M: ~540 MB of weights
against a few MB), so an evaluation of N adapters loads the base once: the first LoRA adapter
wraps it in a ``PeftModel`` under its own adapter name, each further one is added with
``load_adapter`` and chosen with ``set_adapter``; the base itself is evaluated inside
``disable_adapter()``. Outputs are those of the adapter loaded alone with plain peft.

Adapters that cannot share the plain fp32 base load on their own, through
:func:`trainer.loading.load_trained`, one at a time: QLoRA (its base is quantized while
loading), AdaLoRA and MoE-LoRA (other peft tuner types than LoRA, which one ``PeftModel`` cannot
mix), and full or partial fine-tunes (whole models). Discipline experts (``moe_lora_discipline``)
load on their own base too, and the runner picks the expert of each item's discipline
(:meth:`ModelSwitcher.route`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import ModelResolutionError
from trainer.manifest import AdapterManifest
from trainer.models import BaseModelRef

DISCIPLINE_EXPERTS = "moe_lora_discipline"
"""The method whose output is one LoRA expert per discipline, chosen per item (:meth:`route`)."""


@dataclass(frozen=True)
class ModelUnderTest:
    """A model an evaluation scores: the base (``adapter_dir`` ``None``) or an adapter on it."""

    name: str
    adapter_dir: Path | None = None

    @property
    def is_base(self) -> bool:
        return self.adapter_dir is None


def shares_base(manifest: AdapterManifest) -> bool:
    """Whether the adapter can be swapped on the plain fp32 base (a LoRA adapter, not QLoRA)."""
    return (
        manifest.adapter.format == "peft"
        and manifest.adapter.peft_type == "LORA"
        and manifest.method != DISCIPLINE_EXPERTS
        and not manifest.method_details.get("quantization")
    )


@dataclass
class ModelSwitcher:
    """Holds the base (loaded on first need) and swaps adapters on it; counts what it loads
    (``loads``: ``base``, ``adapter``, ``standalone``)."""

    base: BaseModelRef
    device: str | None = None
    loads: Counter[str] = field(default_factory=Counter)
    _model: Any = None
    _peft: Any = None
    _tokenizer: Any = None
    _names: dict[str, str] = field(default_factory=dict)
    """Adapter folder -> its adapter name inside the PeftModel."""
    _experts: Any = None
    """The active discipline experts (``DisciplineExperts``), while such a model is active."""

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from trainer.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.base.path)
        return self._tokenizer

    def _base_model(self) -> Any:
        if self._model is None:
            from trainer.models import load_model

            self._model = load_model(self.base.path, device=self.device)
            self.loads["base"] += 1
        return self._model

    @contextmanager
    def activate(
        self, model: ModelUnderTest, manifest: AdapterManifest | None
    ) -> Iterator[tuple[Any, Any]]:
        """``(model, tokenizer)`` with ``model`` active, for the duration of the block."""
        with ExitStack() as stack:
            yield self._enter(model, manifest, stack), self.tokenizer()

    def _enter(
        self, model: ModelUnderTest, manifest: AdapterManifest | None, stack: ExitStack
    ) -> Any:
        if model.adapter_dir is None:
            base = self._base_model()
            if self._peft is None:
                return base
            stack.enter_context(self._peft.disable_adapter())
            return self._peft
        assert manifest is not None
        if manifest.method == DISCIPLINE_EXPERTS:
            return self._enter_experts(model.adapter_dir, stack)
        if not shares_base(manifest):
            from trainer.loading import load_trained

            self.loads["standalone"] += 1
            loaded, _ = load_trained(model.adapter_dir, base=self.base, device=self.device)
            return loaded
        return self._swap_in(model.adapter_dir)

    def route(self, discipline: str | None) -> None:
        """Activate the expert of ``discipline`` (the fallback when ``None`` or unknown) when
        the active model is a discipline-experts run; nothing otherwise."""
        if self._experts is not None:
            self._experts.use(discipline)

    def _enter_experts(self, adapter_dir: Path, stack: ExitStack) -> Any:
        """Discipline experts load on a fresh base of their own (adding their adapters to the
        shared one would leave them in the swap set), for the duration of the block."""
        from trainer.methods.moe_lora_discipline.inference import DisciplineExperts
        from trainer.models import load_model

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                experts = DisciplineExperts(
                    load_model(self.base.path, device=self.device), adapter_dir
                )
        except Exception as exc:
            raise ModelResolutionError(f"cannot load the experts in {adapter_dir}: {exc}") from exc
        self.loads["standalone"] += 1
        self._experts = experts
        stack.callback(setattr, self, "_experts", None)
        return experts.use(None)

    def _swap_in(self, adapter_dir: Path) -> Any:
        from peft import PeftModel

        key = str(adapter_dir.resolve())
        name = self._names.get(key)
        if name is None:
            name = f"adapter{len(self._names)}"
            base = self._base_model()
            try:
                with warnings.catch_warnings():
                    # peft asks transformers about gradient checkpointing by a deprecated name
                    warnings.simplefilter("ignore", FutureWarning)
                    if self._peft is None:
                        self._peft = PeftModel.from_pretrained(base, key, adapter_name=name)
                    else:
                        self._peft.load_adapter(key, adapter_name=name)
            except Exception as exc:
                raise ModelResolutionError(f"cannot load the adapter in {key}: {exc}") from exc
            self._names[key] = name
            self.loads["adapter"] += 1
        self._peft.set_adapter(name)
        self._peft.eval()
        return self._peft
