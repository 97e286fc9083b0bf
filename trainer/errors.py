"""Errors raised by the trainer package.

Library errors (torch, transformers, peft, bitsandbytes, safetensors) are translated at the boundary
into one of these, so callers only ever need to catch :class:`TrainerError`.
"""

from __future__ import annotations


class TrainerError(Exception):
    """Base class of every error raised by :mod:`trainer`."""


class ConfigError(TrainerError, ValueError):
    """A method config, training config or recipe is invalid; the message names the bad field."""


class RecipeNotFound(ConfigError):
    """No recipe preset has the requested name."""


class ModelResolutionError(TrainerError):
    """A base model name cannot be resolved, built or loaded."""


class DatasetError(TrainerError):
    """The training data is unusable (missing fields, empty split, nothing to learn from)."""


class CheckpointError(TrainerError):
    """A checkpoint cannot be written or read back."""


class ResumeMismatch(CheckpointError):
    """An output folder belongs to a run whose recipe, method, base model or data differ."""


class TrainingFailed(TrainerError):
    """Training stopped on an error; the original exception is chained as ``__cause__``."""


class TrainingStopped(TrainerError):
    """A run stopped on request at a step boundary; its state is in ``checkpoint``."""

    def __init__(self, message: str, *, run_id: str, step: int, checkpoint: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step = step
        self.checkpoint = checkpoint


class ManifestError(TrainerError):
    """An adapter folder lacks a readable, well-formed ``byr_manifest.json``."""
