"""The decision policy: the bundled file, discipline overrides, and errors naming the YAML key."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.governance.errors import GovernanceError, PolicyError
from ingest.governance.flags import FlagCode
from ingest.governance.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from ingest.governance.quality import QualityLimits


@pytest.fixture
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    return data


def test_bundled_policy_loads_with_a_version(raw: dict[str, Any]) -> None:
    policy = load_policy()
    assert policy.version == raw["version"]
    assert FlagCode.GARBLED in policy.reject
    assert not policy.rejects(FlagCode.PII_REDACTED)
    assert len(policy.digest) == 64


def test_discipline_overrides_are_deep_merged(raw: dict[str, Any]) -> None:
    raw["disciplines"] = {
        "network_security": {"min_term_coverage": 0.3, "length": {"min_output": {"zh": 40}}}
    }
    policy = parse_policy(raw)
    own = policy.thresholds("network_security")
    other = policy.thresholds("data_science")
    assert own.min_term_coverage == 0.3
    assert own.length.min_output.zh == 40
    # Keys the override does not name keep their default values.
    assert own.length.min_output.en == other.length.min_output.en
    assert own.length.max_output == other.length.max_output
    assert other.min_term_coverage == raw["defaults"]["min_term_coverage"]


def test_quality_limits_resolve_language_units(raw: dict[str, Any]) -> None:
    policy = parse_policy(raw)
    zh = policy.quality_limits("signal_processing", "zh")
    en = policy.quality_limits("signal_processing", "en")
    assert zh == QualityLimits(
        min_length=raw["defaults"]["length"]["min_output"]["zh"],
        max_length=raw["defaults"]["length"]["max_output"]["zh"],
        max_repeat_ratio=raw["defaults"]["repetition"]["max_ratio"],
        repeat_ngram=raw["defaults"]["repetition"]["ngram"]["zh"],
        max_unusual_symbol_ratio=raw["defaults"]["max_unusual_symbol_ratio"],
        min_repeat_tokens=raw["defaults"]["repetition"]["min_tokens"],
    )
    assert en.min_length == raw["defaults"]["length"]["min_output"]["en"]


def test_dedup_config_follows_the_duplicate_thresholds(raw: dict[str, Any]) -> None:
    config = parse_policy(raw).dedup_config()
    duplicates = raw["defaults"]["duplicates"]
    assert config.minhash_threshold == duplicates["minhash_jaccard"]
    assert config.embedding_threshold == duplicates["embedding_similarity"]
    assert config.embedding_min_jaccard == duplicates["embedding_candidate_jaccard"]
    assert (config.lsh_bands, config.lsh_rows) == (duplicates["lsh_bands"], duplicates["lsh_rows"])


def test_digest_changes_with_any_value(raw: dict[str, Any]) -> None:
    changed = copy.deepcopy(raw)
    changed["defaults"]["min_term_coverage"] = 0.2
    assert parse_policy(raw).digest != parse_policy(changed).digest
    assert parse_policy(raw).digest == parse_policy(copy.deepcopy(raw)).digest


Mutation = Callable[[dict[str, Any]], None]

BAD_POLICIES: list[tuple[str, Mutation, str]] = [
    (
        "override out of range",
        lambda d: d["disciplines"].update({"data_science": {"repetition": {"max_ratio": 1.5}}}),
        "disciplines.data_science.repetition.max_ratio: Input should be less than or equal to 1",
    ),
    (
        "override of the wrong type",
        lambda d: d["disciplines"].update(
            {"data_science": {"length": {"min_output": {"zh": "ten"}}}}
        ),
        "disciplines.data_science.length.min_output.zh: Input should be a valid integer",
    ),
    (
        "unknown discipline",
        lambda d: d["disciplines"].update({"astrology": {}}),
        "disciplines.astrology: unknown discipline",
    ),
    (
        "duplicates overridden per discipline",
        lambda d: d["disciplines"].update({"data_science": {"duplicates": {"lsh_rows": 3}}}),
        "disciplines.data_science.duplicates: duplicate thresholds are global",
    ),
    (
        "missing default",
        lambda d: d["defaults"].pop("min_term_coverage"),
        "defaults.min_term_coverage: Field required",
    ),
    (
        "string instead of a number",
        lambda d: d["defaults"].update({"min_term_coverage": "0.1"}),
        "defaults.min_term_coverage: Input should be a valid number",
    ),
    ("unknown flag", lambda d: d["reject"].append("sleepy"), "unknown flag 'sleepy'"),
    (
        "pii_redacted cannot reject",
        lambda d: d["reject"].append("pii_redacted"),
        "reject: 'pii_redacted' never rejects a record",
    ),
    ("bad version", lambda d: d.update({"version": "v1"}), "version: String should match"),
    ("unknown key", lambda d: d.update({"extras": 1}), "extras: Extra inputs are not permitted"),
    (
        "weights not summing to one",
        lambda d: d["reward"]["quality_weights"].update({"clean": 0.9}),
        "reward.quality_weights: on_topic + flow + clean must equal 1",
    ),
    (
        "reward amount not an integer string",
        lambda d: d["reward"].update({"base_per_record_wei": "1e18"}),
        "reward.base_per_record_wei: String should match pattern",
    ),
    (
        "novelty bounds reversed",
        lambda d: d["reward"]["novelty"].update({"zero_at": 0.1}),
        "reward.novelty: zero_at must be greater than free_below",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(m, msg) for _, m, msg in BAD_POLICIES],
    ids=[name for name, _, _ in BAD_POLICIES],
)
def test_bad_policies_name_the_yaml_key(
    raw: dict[str, Any], mutate: Mutation, message: str
) -> None:
    mutate(raw)
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw, source="policy.yaml")
    assert str(caught.value).startswith("policy.yaml: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, GovernanceError)


def test_unreadable_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(scalar)


def test_a_policy_file_on_disk_round_trips(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["version"] = "2027.01-2"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    assert load_policy(path).version == "2027.01-2"
