"""The versioned decision policy: thresholds, which flags reject, and reward parameters.

The policy is data (``ingest/governance/policy.yaml`` by default) validated into a frozen
:class:`Policy`. Every governance decision records the policy ``version`` it was made under, so
a changed threshold must come with a new version (``YYYY.MM-N``, e.g. ``2026.11-1``);
:attr:`Policy.digest` fingerprints the exact content for audits.

Layout of the file::

    version: "2026.11-1"
    defaults:                 # Thresholds, every key required
      length: {min_output: {zh: .., en: .., mixed: ..}, max_output: {...}}
      ...
    disciplines:              # optional partial overrides of `defaults`, deep-merged
      network_security: {min_term_coverage: 0.3}
    reject: [garbled, ...]    # flag codes that reject a record
    reward: {...}

Validation is strict (no unknown keys, no type coercion); a :class:`PolicyError` names the YAML key
at fault, e.g. ``disciplines.data_science.repetition.max_ratio: Input should be less than or
equal to 1``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ingest.governance.dedup import DedupConfig
from ingest.governance.errors import PolicyError
from ingest.governance.flags import FlagCode
from ingest.governance.quality import QualityLimits
from ingest.records import Discipline

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policy.yaml"

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[int, Field(ge=1)]
WeiAmount = Annotated[str, Field(pattern=r"^[0-9]{1,78}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PerLanguage(_Strict):
    """One integer per record language."""

    zh: Positive
    en: Positive
    mixed: Positive

    def get(self, language: str) -> int:
        value: int = getattr(self, language)
        return value


class LengthLimits(_Strict):
    min_output: PerLanguage = Field(
        description="Minimum output length: characters (zh), words (en), CJK chars + words (mixed)."
    )
    max_output: PerLanguage = Field(description="Maximum output length in the same units.")


class RepetitionLimits(_Strict):
    ngram: PerLanguage = Field(description="n of the n-grams: characters (zh), words (en, mixed).")
    max_ratio: Ratio = Field(description="Largest share of n-grams that may repeat an earlier one.")
    min_tokens: Positive = Field(description="Outputs with fewer tokens are never repetitive.")


class DuplicateLimits(_Strict):
    """Near-duplicate thresholds; they configure the one corpus-wide index, so they are global."""

    minhash_jaccard: Ratio = Field(
        description="Estimated Jaccard similarity of shingles at or above which a match rejects."
    )
    embedding_similarity: Ratio = Field(
        description="Calibrated embedding similarity at or above which a match rejects."
    )
    embedding_candidate_jaccard: Ratio = Field(
        description="LSH candidates below this estimated Jaccard similarity are not embedded."
    )
    lsh_bands: Positive = Field(description="LSH bands of the MinHash index.")
    lsh_rows: Positive = Field(
        description="Signature rows per band: fewer rows find reworded duplicates with less "
        "shared wording, at the cost of more candidates."
    )

    @model_validator(mode="after")
    def _candidates_below_rejection(self) -> DuplicateLimits:
        if self.embedding_candidate_jaccard > self.minhash_jaccard:
            raise ValueError("embedding_candidate_jaccard must not exceed minhash_jaccard")
        return self


class Thresholds(_Strict):
    """Everything a decision compares against, for one discipline."""

    length: LengthLimits
    repetition: RepetitionLimits
    max_unusual_symbol_ratio: Ratio = Field(
        description="Largest share of unusual symbols (emoji, private use, unassigned) in a field."
    )
    min_term_coverage: Ratio = Field(description="Smallest term coverage score of the record.")
    min_instruction_output_similarity: Ratio = Field(
        description="Smallest calibrated instruction/output similarity (below: off_topic)."
    )
    min_consecutive_sentence_similarity: Ratio = Field(
        description="Smallest mean calibrated similarity of adjacent sentences (below: incoherent)."
    )
    coherence_window: PerLanguage = Field(
        description="Output length (words for en, characters otherwise) that coherence reads, "
        "extended to the end of the sentence."
    )
    duplicates: DuplicateLimits


class QualityWeights(_Strict):
    on_topic: Ratio
    flow: Ratio
    clean: Ratio

    @model_validator(mode="after")
    def _sum_to_one(self) -> QualityWeights:
        if abs(self.on_topic + self.flow + self.clean - 1.0) > 1e-9:
            raise ValueError("on_topic + flow + clean must equal 1")
        return self


class NoveltyPolicy(_Strict):
    free_below: Ratio = Field(
        description="Calibrated similarity to an earlier accepted instruction of the batch below "
        "which novelty is 1."
    )
    zero_at: Ratio = Field(description="Similarity at which novelty reaches 0.")

    @model_validator(mode="after")
    def _ordered(self) -> NoveltyPolicy:
        if self.zero_at <= self.free_below:
            raise ValueError("zero_at must be greater than free_below")
        return self


class RewardPolicy(_Strict):
    """Parameters of the contribution formula (docs/REWARDS.md)."""

    base_per_record_wei: WeiAmount
    max_batch_reward_wei: WeiAmount
    coverage_floor: Ratio = Field(description="Multiplier of a record with zero coverage.")
    quality_weights: QualityWeights
    on_topic_full: Annotated[float, Field(gt=0.0, le=1.0)]
    flow_full: Annotated[float, Field(gt=0.0, le=1.0)]
    warning_penalty: Ratio = Field(description="Clean-score lost per warning flag.")
    novelty: NoveltyPolicy


_REJECTABLE = frozenset(FlagCode) - {FlagCode.PII_REDACTED}


class Policy(_Strict):
    """A validated decision policy. Use :meth:`thresholds` for the values of one discipline."""

    version: Annotated[str, Field(pattern=r"^[0-9]{4}\.[0-9]{2}-[0-9]+$")]
    description: str = ""
    defaults: Thresholds
    disciplines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    reject: list[FlagCode]
    reward: RewardPolicy

    _resolved: dict[str, Thresholds] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _codes_from_strings(cls, data: Any) -> Any:
        # Strict mode refuses plain strings for enums; the YAML naturally holds strings.
        if isinstance(data, dict) and isinstance(data.get("reject"), list):
            data = dict(data)
            data["reject"] = [_flag_code(i, c) for i, c in enumerate(data["reject"])]
        return data

    @model_validator(mode="after")
    def _resolve(self) -> Policy:
        for code in self.reject:
            if code not in _REJECTABLE:
                raise ValueError(f"reject: {code.value!r} never rejects a record")
        base = self.defaults.model_dump()
        for name, override in self.disciplines.items():
            if Discipline.lookup(name) is None or Discipline(name).value != name:
                raise ValueError(f"disciplines.{name}: unknown discipline")
            if "duplicates" in override:
                raise ValueError(
                    f"disciplines.{name}.duplicates: duplicate thresholds are global (one index)"
                )
            merged = _deep_merge(base, override)
            try:
                self._resolved[name] = Thresholds.model_validate(merged)
            except ValidationError as exc:
                raise ValueError(_describe(exc, prefix=f"disciplines.{name}")) from None
        return self

    def thresholds(self, discipline: str) -> Thresholds:
        """The thresholds of ``discipline``: the defaults with its overrides applied."""
        return self._resolved.get(discipline, self.defaults)

    def quality_limits(self, discipline: str, language: str) -> QualityLimits:
        """What :class:`ingest.governance.quality.QualityChecker` needs for one record."""
        t = self.thresholds(discipline)
        return QualityLimits(
            min_length=t.length.min_output.get(language),
            max_length=t.length.max_output.get(language),
            max_repeat_ratio=t.repetition.max_ratio,
            repeat_ngram=t.repetition.ngram.get(language),
            max_unusual_symbol_ratio=t.max_unusual_symbol_ratio,
            min_repeat_tokens=t.repetition.min_tokens,
        )

    def rejects(self, code: FlagCode) -> bool:
        return code in self.reject

    @property
    def digest(self) -> str:
        """sha256 (hex) of the policy's canonical JSON: two policies with one version but a
        different digest were edited without a version bump."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def dedup_thresholds(self) -> tuple[float, float]:
        """``(minhash_jaccard, embedding_similarity)`` at or above which a match rejects."""
        d = self.defaults.duplicates
        return d.minhash_jaccard, d.embedding_similarity

    def dedup_config(self) -> DedupConfig:
        """The configuration of the near-duplicate index that this policy's decisions assume."""
        d = self.defaults.duplicates
        return DedupConfig(
            lsh_bands=d.lsh_bands,
            lsh_rows=d.lsh_rows,
            minhash_threshold=d.minhash_jaccard,
            embedding_min_jaccard=d.embedding_candidate_jaccard,
            embedding_threshold=d.embedding_similarity,
        )


def _flag_code(index: int, value: object) -> object:
    if isinstance(value, str):
        try:
            return FlagCode(value)
        except ValueError:
            known = ", ".join(sorted(c.value for c in _REJECTABLE))
            raise ValueError(f"reject.{index}: unknown flag {value!r}; known: {known}") from None
    return value


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, *, prefix: str = "") -> str:
    """One line per problem, each starting with the dotted YAML key."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        key = ".".join(p for p in (prefix, loc) if p)
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {message}" if key and not message.startswith(key) else message)
    return "; ".join(lines)


def parse_policy(data: object, *, source: str = "<policy>") -> Policy:
    """Validate already-parsed YAML; raises :class:`PolicyError` naming the key at fault."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the policy must be a mapping, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {_describe(exc)}") from None
    except ValueError as exc:
        raise PolicyError(f"{source}: {exc}") from None


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file (default: the bundled ``policy.yaml``)."""
    path = path or DEFAULT_POLICY_PATH
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_policy(data, source=str(path))
