"""AdaLoRA: LoRA whose rank budget is re-allocated by importance during training (Zhang et al.,
2023)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trainer.errors import ConfigError
from trainer.methods.base import AdapterMethodConfig, Method


@dataclass(frozen=True)
class AdaLoraConfig(AdapterMethodConfig):
    """AdaLoRA. ``rank`` is the target average rank; every adapter starts at ``init_rank``.

    The schedule is given as fractions of the run's optimizer steps so that one recipe fits any data
    size; :meth:`schedule` turns them into peft's ``tinit``/``tfinal`` once ``total_step`` is known.
    """

    method: ClassVar[Method] = Method.ADALORA

    init_rank: int | None = field(
        default=None,
        metadata={"help": "Initial rank of every adapter (>= rank); null means 1.5 x rank."},
    )
    tinit_fraction: float = field(
        default=0.1,
        metadata={"help": "Fraction of the steps before budget pruning starts."},
    )
    tfinal_fraction: float = field(
        default=0.2,
        metadata={"help": "Fraction of the steps, at the end, trained with the final rank budget."},
    )
    delta_t: int = field(
        default=1,
        metadata={"help": "Steps between two budget re-allocations."},
    )
    beta1: float = field(default=0.85, metadata={"help": "EMA factor of importance smoothing."})
    beta2: float = field(default=0.85, metadata={"help": "EMA factor of uncertainty smoothing."})
    orth_reg_weight: float = field(
        default=0.5,
        metadata={"help": "Weight of the orthogonality penalty added to the loss."},
    )
    total_step: int | None = field(
        default=None,
        metadata={
            "help": "Total optimizer steps; filled in by the job from the recipe and data size "
            "when null."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init_rank is None:
            object.__setattr__(self, "init_rank", (3 * self.rank) // 2)
        assert self.init_rank is not None
        if not self.rank <= self.init_rank <= 2 * 64:
            raise ConfigError(
                f"init_rank must be between rank ({self.rank}) and 128, got {self.init_rank}"
            )
        for name in ("tinit_fraction", "tfinal_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.tinit_fraction + self.tfinal_fraction >= 1.0:
            raise ConfigError(
                "tinit_fraction + tfinal_fraction must be < 1 to leave a budgeting phase, got "
                f"{self.tinit_fraction} + {self.tfinal_fraction}"
            )
        if self.delta_t < 1:
            raise ConfigError(f"delta_t must be >= 1, got {self.delta_t}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{name} must be in (0, 1), got {value}")
        if self.orth_reg_weight < 0:
            raise ConfigError(f"orth_reg_weight must be >= 0, got {self.orth_reg_weight}")
        if self.total_step is not None and self.total_step < 1:
            raise ConfigError(f"total_step must be >= 1, got {self.total_step}")

    def schedule(self, total_step: int) -> tuple[int, int]:
        """``(tinit, tfinal)`` in steps for a run of ``total_step`` optimizer steps."""
        tinit = int(self.tinit_fraction * total_step)
        tfinal = int(self.tfinal_fraction * total_step)
        if tinit >= total_step - tfinal:
            tinit, tfinal = 0, 0
        return tinit, tfinal
