"""The governance engine with the real embedder and near-duplicate index: decisions on crafted
records, the reward formula, and the bundled governance cases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.governance.batch_report import render_text, report_from_governance
from ingest.governance.dedup import DedupIndex
from ingest.governance.embeddings import Embedder
from ingest.governance.engine import (
    BatchGovernance,
    GovernanceEngine,
    GovernanceInput,
    RecordDecision,
    coherence_window,
)
from ingest.governance.errors import GovernanceInputError
from ingest.governance.policy import load_policy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

CLEAN_ZH = GovernanceInput(
    record_id="rec_clean_zh",
    instruction="什么是奈奎斯特采样定理？",
    input="",
    output=(
        "奈奎斯特采样定理指出，对带宽有限、最高频率为 fmax 的信号，只要采样频率大于 2fmax，"
        "就能由采样值无失真地重建原信号。采样频率不足时，高频分量会折叠到低频，产生混叠。"
        "因此实际系统在采样前要先用抗混叠滤波器限制信号带宽。"
    ),
    discipline="signal_processing",
    language="zh",
)
CLEAN_EN = GovernanceInput(
    record_id="rec_clean_en",
    instruction="Why does TCP use a three-way handshake to open a connection?",
    input="",
    output=(
        "The three-way handshake lets both ends agree on initial sequence numbers before data "
        "flows. The client sends a SYN with its sequence number, the server answers with a "
        "SYN-ACK that acknowledges it and carries its own, and the client acknowledges that in "
        "turn. Two messages would not let the server confirm that the client received its "
        "sequence number, and old duplicate SYN segments could open stale connections."
    ),
    discipline="computer_networks",
    language="en",
)
PII = GovernanceInput(
    record_id="rec_pii",
    instruction="我的手机号 [PHONE] 收到冒充银行的短信，要求点击链接更新账户，这属于什么攻击？",
    input="",
    output=(
        "这是典型的短信钓鱼攻击，攻击者冒充银行诱导你打开仿冒网站，骗取账号、口令或验证码。"
        "不要点击短信中的链接，应通过官方渠道核实，并为账户开启多因素认证。"
    ),
    discipline="network_security",
    language="zh",
    redactions={"PHONE": 1},
)
GARBLED = GovernanceInput(
    record_id="rec_garbled",
    instruction="什么是误码率？",
    input="",
    output="误码率锟斤拷锟斤拷是指传输中出错的码元数与传输总码元数之比，是衡量可靠性的指标。",
    discipline="communication_principles",
    language="zh",
)
TRUNCATED = GovernanceInput(
    record_id="rec_truncated",
    instruction="How does the TCP sliding window improve throughput?",
    input="",
    output=(
        "The sliding window lets the sender transmit several segments before it must wait for "
        "an acknowledgement, so the link stays busy during the round-trip time, and the"
    ),
    discipline="computer_networks",
    language="en",
)
REPETITIVE = GovernanceInput(
    record_id="rec_repetitive",
    instruction="What is entropy in information theory?",
    input="",
    output="Entropy is a measure of uncertainty. " * 12,
    discipline="information_theory",
    language="en",
)
OFF_TOPIC = GovernanceInput(
    record_id="rec_off_topic",
    instruction="Define the entropy of a discrete random variable.",
    input="",
    output=(
        "To make a good cup of green tea, heat the water to about 80 degrees rather than boiling "
        "it, and steep the leaves for two to three minutes. Water that is too hot makes it bitter."
    ),
    discipline="information_theory",
    language="en",
)
DUPLICATE = GovernanceInput(
    record_id="rec_duplicate",
    instruction=CLEAN_EN.instruction,
    input="",
    output=CLEAN_EN.output,
    discipline="computer_networks",
    language="en",
)
BATCH = [CLEAN_ZH, CLEAN_EN, PII, GARBLED, TRUNCATED, REPETITIVE, OFF_TOPIC, DUPLICATE]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovernanceEngine]:
    policy = load_policy()
    embedder = Embedder()
    index = DedupIndex(
        tmp_path_factory.mktemp("dedup") / "dedup.sqlite",
        embedder=embedder,
        config=policy.dedup_config(),
    )
    yield GovernanceEngine(policy=policy, embedder=embedder, dedup_index=index)
    index.close()
    embedder.close()


@pytest.fixture(scope="module")
def governed(engine: GovernanceEngine) -> BatchGovernance:
    return engine.govern(BATCH)


def decision(batch: BatchGovernance, record_id: str) -> RecordDecision:
    (found,) = [d for d in batch.decisions if d.record_id == record_id]
    return found


def test_clean_records_are_accepted_with_scores(governed: BatchGovernance) -> None:
    for record in (CLEAN_ZH, CLEAN_EN):
        d = decision(governed, record.record_id)
        assert d.accepted is True, d
        assert d.reasons == []
        scores = d.scores
        assert scores["term_coverage"] > 0.3
        assert scores["instruction_output"] > 0.3
        assert 0 < scores["contribution"] <= 1
    assert governed.policy_version == load_policy().version


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (GARBLED, "garbled"),
        (TRUNCATED, "truncated"),
        (REPETITIVE, "repetitive"),
        (OFF_TOPIC, "off_topic"),
        (DUPLICATE, "exact_duplicate"),
    ],
)
def test_bad_records_are_rejected_with_their_reason(
    governed: BatchGovernance, record: GovernanceInput, reason: str
) -> None:
    d = decision(governed, record.record_id)
    assert d.accepted is False
    assert reason in d.reasons
    assert governed.rejected[record.record_id] == d.reasons
    flags = [f for f in d.flags if f["code"] == reason]
    assert flags and all(f["severity"] == "error" for f in flags)


def test_flags_carry_spans_into_the_field(governed: BatchGovernance) -> None:
    garbled = decision(governed, GARBLED.record_id)
    (flag,) = [f for f in garbled.flags if f["code"] == "garbled"]
    assert GARBLED.output[flag["start"] : flag["end"]] == "锟斤拷锟斤拷"
    truncated = decision(governed, TRUNCATED.record_id)
    (flag,) = [f for f in truncated.flags if f["code"] == "truncated"]
    assert flag["end"] == len(TRUNCATED.output)


def test_a_duplicate_names_the_record_it_duplicates(governed: BatchGovernance) -> None:
    d = decision(governed, DUPLICATE.record_id)
    assert d.duplicate_of == CLEAN_EN.record_id
    assert CLEAN_EN.record_id in json.dumps(d.flags)


def test_redactions_are_reported_but_do_not_reject(governed: BatchGovernance) -> None:
    d = decision(governed, PII.record_id)
    assert d.accepted is True
    assert d.reasons == ["pii_redacted"]
    assert d.redactions == {"PHONE": 1}
    (flag,) = d.flags
    assert flag["code"] == "pii_redacted" and flag["severity"] == "warning"
    assert PII.instruction[flag["start"] : flag["end"]] == "[PHONE]"


def test_reward_follows_the_documented_formula(governed: BatchGovernance) -> None:
    reward = load_policy().reward
    accepted = [d for d in governed.decisions if d.accepted]
    assert [d.record_id for d in accepted] == governed.accepted_record_ids
    for d in accepted:
        s = d.scores
        coverage_factor = reward.coverage_floor + (1 - reward.coverage_floor) * s["term_coverage"]
        assert s["contribution"] == pytest.approx(
            s["quality"] * coverage_factor * s["novelty"], abs=2e-6
        )
    micro = sum(round(d.scores["contribution"] * 10**6) for d in accepted)
    assert governed.contribution_score == micro / 10**6
    assert governed.reward_wei == int(reward.base_per_record_wei) * micro // 10**6
    assert all("contribution" not in d.scores for d in governed.decisions if not d.accepted)


def test_event_fields_match_batch_governed(governed: BatchGovernance) -> None:
    from ledger.events import BatchGoverned

    event = BatchGoverned(batch_id="b" * 32, institution_id="bupt", **governed.event_fields())
    assert event.reward_wei == str(governed.reward_wei)
    assert event.rejected == governed.rejected
    assert len(event.decisions) == len(BATCH)


def test_accepted_records_join_the_corpus_and_later_copies_are_duplicates(
    engine: GovernanceEngine, governed: BatchGovernance
) -> None:
    reworded = GovernanceInput(
        record_id="rec_later_copy",
        instruction=CLEAN_ZH.instruction,
        input="",
        output=CLEAN_ZH.output.replace("因此实际系统", "所以实际系统"),
        discipline="signal_processing",
        language="zh",
    )
    later = engine.govern([reworded], add_accepted=False)
    (d,) = later.decisions
    assert d.accepted is False
    assert d.reasons == ["near_duplicate"]
    assert d.duplicate_of == CLEAN_ZH.record_id


def test_governing_the_same_records_again_gives_the_same_decisions(
    engine: GovernanceEngine, governed: BatchGovernance
) -> None:
    again = engine.govern(BATCH, add_accepted=False)
    assert [d.to_dict() for d in again.decisions] == [d.to_dict() for d in governed.decisions]
    assert again.reward_wei == governed.reward_wei


def test_report_marks_flagged_spans(governed: BatchGovernance) -> None:
    records = {
        r.record_id: {"instruction": r.instruction, "input": r.input, "output": r.output}
        for r in BATCH
    }
    report = report_from_governance(governed, records, batch_id="demo")
    json.dumps(report)
    assert report["accepted"] == len(governed.accepted_record_ids)
    assert report["redactions"] == {"PHONE": 1}
    garbled = next(d for d in report["decisions"] if d["record_id"] == GARBLED.record_id)
    assert "«锟斤拷锟斤拷»" in garbled["flags"][0]["excerpt"]
    text = render_text(report)
    assert f"{GARBLED.record_id}  REJECT  garbled" in text
    assert "«[PHONE]»" in text


def test_invalid_inputs_are_refused(engine: GovernanceEngine) -> None:
    with pytest.raises(GovernanceInputError, match="appears twice"):
        engine.govern([CLEAN_EN, CLEAN_EN])
    with pytest.raises(GovernanceInputError, match="unknown language 'fr'"):
        engine.govern([GovernanceInput("r1", "q", "", "a", "data_science", "fr")])
    with pytest.raises(GovernanceInputError, match="no glossary for discipline 'astrology'"):
        engine.govern([GovernanceInput("r1", "q", "", "a", "astrology", "en")])


def test_coherence_window_ends_at_a_sentence_boundary() -> None:
    zh = "第一句比较长一些。第二句。第三句。"
    assert coherence_window(zh, language="zh", units=5) == "第一句比较长一些。"
    assert coherence_window(zh, language="zh", units=100) == zh
    en = "One two three. Four five six seven. Eight nine."
    assert coherence_window(en, language="en", units=4) == "One two three. Four five six seven."
    assert coherence_window(en, language="en", units=3) == "One two three."
    assert coherence_window(en, language="en", units=9) == en


@pytest.mark.slow
def test_bundled_governance_cases_are_decided_as_expected(tmp_path: Path) -> None:
    from ingest.governance.pii import PiiRedactor
    from ingest.intake import read_batch

    expected = json.loads((EXAMPLES / "governance_cases.expected.json").read_text())["cases"]
    intake = read_batch(
        EXAMPLES / "governance_cases.jsonl", institution_id="bupt", desensitizer=PiiRedactor()
    )
    assert len(intake.records) == len(expected)
    inputs = [
        GovernanceInput.from_record(f"line{r.line}", r.canonical(), r.redactions)
        for r in intake.records
    ]
    engine = GovernanceEngine.open(directory=tmp_path)
    batch = engine.govern(inputs)
    problems = []
    for record, d in zip(intake.records, batch.decisions, strict=True):
        case = expected[str(record.line)]
        if d.accepted != (case["expect"] == "accept"):
            problems.append(f"line {record.line}: accepted={d.accepted}, reasons {d.reasons}")
        missing = set(case["reasons"]) - set(d.reasons)
        if missing:
            problems.append(f"line {record.line}: missing reasons {sorted(missing)}: {d.reasons}")
        if (
            case["duplicate_of_line"] is not None
            and d.duplicate_of != f"line{case['duplicate_of_line']}"
        ):
            problems.append(f"line {record.line}: duplicate_of {d.duplicate_of}")
    assert problems == []


# ---------------------------------------------------------------------------------------------
# Multi-turn records
# ---------------------------------------------------------------------------------------------

DIALOGUE = GovernanceInput(
    record_id="rec_dialogue",
    system="You are a teaching assistant for a computer networks course.",
    history=(
        (
            "How does TCP flow control work?",
            "The receiver advertises a receive window in every acknowledgement: the number of "
            "bytes it can still buffer. The sender keeps its unacknowledged data below that "
            "window, so a slow receiver is never overrun.",
        ),
    ),
    instruction="How is that different from congestion control?",
    input="",
    output=(
        "Flow control protects the receiver, while congestion control protects the network. "
        "The sender also keeps a congestion window that grows with slow start and shrinks when "
        "packet loss signals congestion, and it sends no more than the smaller of the congestion "
        "window and the receive window."
    ),
    discipline="computer_networks",
    language="en",
)


def test_a_dialogue_is_decided_on_all_its_turns(engine: GovernanceEngine) -> None:
    (user, answer) = DIALOGUE.history[0]
    garbled = replace(
        DIALOGUE,
        record_id="rec_dialogue_garbled",
        history=((user, answer.replace("acknowledgement", "acknowledgementÃ©Ã©Ã©")),),
    )
    truncated = replace(
        DIALOGUE,
        record_id="rec_dialogue_truncated",
        history=((user, "The receiver advertises a receive window in every acknowledgement, and"),),
    )
    pii = replace(
        DIALOGUE,
        record_id="rec_dialogue_pii",
        history=((f"My phone is [PHONE]. {user}", answer),),
        redactions={"PHONE": 1},
    )
    batch = engine.govern([DIALOGUE, garbled, truncated], add_accepted=False)
    # Alone in its batch: with the clean dialogue it would be a near duplicate of it.
    alone = engine.govern([pii], add_accepted=False)
    clean = decision(batch, DIALOGUE.record_id)
    assert clean.accepted is True and clean.reasons == []
    # The follow-up ("that") is compared with its answer together with the question before it.
    assert (
        clean.scores["instruction_output"]
        > load_policy().thresholds("computer_networks").min_instruction_output_similarity
    )
    assert clean.scores["term_coverage"] > 0.3

    bad = decision(batch, garbled.record_id)
    assert bad.accepted is False and bad.reasons == ["garbled"]
    (flag,) = [f for f in bad.flags if f["code"] == "garbled"]
    assert (flag["field"], flag["severity"]) == ("history[0][1]", "error")
    assert garbled.history[0][1][flag["start"] : flag["end"]] == "Ã©Ã©Ã©"

    cut = decision(batch, truncated.record_id)
    assert cut.accepted is False and cut.reasons == ["truncated"]
    assert [f["field"] for f in cut.flags] == ["history[0][1]"]

    redacted = decision(alone, pii.record_id)
    assert redacted.accepted is True and redacted.reasons == ["pii_redacted"]
    (flag,) = redacted.flags
    assert flag["field"] == "history[0][0]"
    assert pii.history[0][0][flag["start"] : flag["end"]] == "[PHONE]"

    texts = {r.record_id: r.canonical_texts() for r in (garbled, pii)}
    excerpts = [
        f["excerpt"]
        for governed in (batch, alone)
        for d in report_from_governance(governed, texts)["decisions"]
        for f in d["flags"]
        if "excerpt" in f
    ]
    assert any("«Ã©Ã©Ã©»" in e for e in excerpts) and any("«[PHONE]»" in e for e in excerpts)


def test_a_dialogue_is_one_text_for_near_duplicates(engine: GovernanceEngine) -> None:
    again = replace(DIALOGUE, record_id="rec_dialogue_again", system="Answer in one paragraph.")
    other_history = replace(
        DIALOGUE,
        record_id="rec_dialogue_other_history",
        history=(
            (
                "What does the IP layer promise?",
                "Best-effort delivery of datagrams between hosts: packets may be lost, duplicated "
                "or reordered, and the layers above must cope with that.",
            ),
            (
                "So where does reliability come from?",
                "From TCP, which numbers the bytes, acknowledges them and resends what is lost.",
            ),
        ),
    )
    batch = engine.govern([DIALOGUE, again, other_history], add_accepted=False)
    repeated = decision(batch, again.record_id)
    # The system prompt says how to answer, not what is taught: the same turns repeat the record.
    assert repeated.reasons == ["exact_duplicate"] and repeated.duplicate_of == DIALOGUE.record_id
    continued = decision(batch, other_history.record_id)
    assert "exact_duplicate" not in continued.reasons


def test_the_bundled_dialogues_are_accepted(engine: GovernanceEngine) -> None:
    from ingest.governance.pii import PiiConfig, PiiRedactor
    from ingest.intake import read_batch

    intake = read_batch(
        EXAMPLES / "multiturn_sharegpt.jsonl",
        institution_id="bupt",
        desensitizer=PiiRedactor(PiiConfig(ner_model=None)),
    )
    assert intake.issues == () and len(intake.records) == 10
    assert all(r.fields.history for r in intake.records)
    inputs = [
        GovernanceInput.from_record(f"dialogue{r.line}", r.canonical(), r.redactions)
        for r in intake.records
    ]
    batch = engine.govern(inputs, add_accepted=False)
    assert [(d.record_id, d.reasons) for d in batch.decisions if not d.accepted] == []
