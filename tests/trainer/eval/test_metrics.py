"""Each metric against values computed by hand, the formula checker, the dimension formulas and
the reference log-likelihood on a tiny real model."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from trainer.eval import Scorer, item_from_dict, reference_log_likelihood
from trainer.eval.formulas import FormulaChecker, FormulaOutcome
from trainer.eval.metrics import bleu, exact_match, extract_choice, key_term_recall, rouge_l
from trainer.eval.scoring import combine
from trainer.eval.text import jieba_tokens
from trainer.models import build_tiny_model


def test_rouge_l_chinese_over_jieba_words() -> None:
    hyp, ref = "香农公式给出信道容量", "香农公式给出了信道的容量上限"
    assert jieba_tokens(hyp) == ["香农", "公式", "给出", "信道容量"]
    assert jieba_tokens(ref) == ["香农", "公式", "给出", "了", "信道", "的", "容量", "上限"]
    # LCS = 香农 公式 给出 (3): P = 3/4, R = 3/8, F = 2PR/(P+R) = 1/2
    assert rouge_l(hyp, ref, language="zh") == pytest.approx(0.5, abs=1e-6)


def test_rouge_l_english() -> None:
    # LCS = "the cat on the mat" (5 of 6 words each side): P = R = F = 5/6
    score = rouge_l("the cat sat on the mat", "the cat is on the mat", language="en")
    assert score == pytest.approx(5 / 6)


def test_rouge_l_empty_answer_is_zero() -> None:
    assert rouge_l("", "信道容量", language="zh") == 0.0
    assert rouge_l("   ", "capacity", language="en") == 0.0


def test_bleu_english_13a() -> None:
    # n-gram precisions 5/6, 3/5, 1/4 and 0/3 (smoothed 'exp': 1/(2*3)); hyp_len = ref_len, BP = 1
    expected = (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    score = bleu("the cat sat on the mat", "the cat is on the mat", language="en")
    assert score == pytest.approx(expected, abs=1e-4)


def test_bleu_chinese_character_tokens() -> None:
    # tokenize="zh" splits CJK characters: precisions 6/7, 4/6, 2/5, 1/4; hyp longer, BP = 1
    expected = (6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    score = bleu("信道容量的上限", "信道容量上限", language="zh")
    assert score == pytest.approx(expected, abs=1e-4)
    assert bleu("信道容量上限", "信道容量上限", language="zh") == pytest.approx(1.0)


def test_key_term_recall_normalises_case_width_and_dashes() -> None:
    answer = "ＴＣＰ uses a three-way handshake; 拥塞窗口 grows in Slow Start."
    terms = ["tcp", "three way handshake", "拥塞窗口", "slow start", "ssthresh"]
    assert key_term_recall(answer, terms) == pytest.approx(4 / 5)
    assert key_term_recall("奈奎斯特速率是 2B", ["Nyquist|奈奎斯特"]) == 1.0
    assert key_term_recall("anything", []) is None


@pytest.mark.parametrize(
    ("answer", "letters"),
    [
        ("答案：B", {"B"}),
        ("答案：Ｂ", {"B"}),
        ("正确答案是 B、D。", {"B", "D"}),
        ("The answer is (b)", {"B"}),
        ("Answer: A and C", {"A", "C"}),
        ("I think the answer is B because TLS encrypts the channel.", {"B"}),
        ("First I thought A. But the correct option is D", {"D"}),
        ("C.", {"C"}),
        ("选C", {"C"}),
    ],
)
def test_extract_choice(answer: str, letters: set[str]) -> None:
    assert extract_choice(answer, n_choices=4) == frozenset(letters)


@pytest.mark.parametrize(
    "answer", ["the answer is a firewall", "This is a good question.", "答案：E", "Answer: Bob"]
)
def test_extract_choice_finds_nothing(answer: str) -> None:
    assert extract_choice(answer, n_choices=4) is None


def test_exact_match() -> None:
    assert exact_match("答案：B", frozenset("B"), n_choices=4) == 1.0
    assert exact_match("答案：B、D", frozenset("B"), n_choices=4) == 0.0
    assert exact_match("The answers are B and D", frozenset("BD"), n_choices=4) == 1.0
    assert exact_match("no idea", frozenset("B"), n_choices=4) == 0.0


@pytest.fixture(scope="module")
def formulas() -> Iterator[FormulaChecker]:
    with FormulaChecker(timeout_s=3.0) as checker:
        yield checker


def test_equivalent_formula(formulas: FormulaChecker) -> None:
    answer = r"由香农公式，\boxed{C = B\log_2\left(1+\frac{S}{N}\right)}"
    result = formulas.check(expected=r"B\log_2(1+S/N)", answer=answer)
    assert result.outcome is FormulaOutcome.EQUIVALENT
    assert formulas.check(expected=r"\frac{2PR}{P+R}", answer=r"$\frac{2}{1/P+1/R}$").passed


def test_non_equivalent_formula(formulas: FormulaChecker) -> None:
    result = formulas.check(expected="2B", answer=r"The Nyquist rate is $f_s = B$.")
    assert result.outcome is FormulaOutcome.NOT_EQUIVALENT
    no_math = formulas.check(expected="2B", answer="twice the bandwidth")
    assert no_math.outcome is FormulaOutcome.NO_EXPRESSION


def test_hanging_formula_check_is_cut_by_the_time_limit(formulas: FormulaChecker) -> None:
    # sympy expands (x+1)^(9^9) while comparing: minutes of work without an outside limit
    result = formulas.check(expected=r"(x+1)^{9^{9}}", answer=r"$(x+1)^{9^{9}}(x+1)$")
    assert result.outcome is FormulaOutcome.TIMEOUT
    assert result.seconds < 3.0 + 1.0
    # the killed worker is replaced: the next check works
    assert formulas.check(expected="2B", answer="$2B$").passed


def _item(**overrides: object) -> dict[str, object]:
    return {
        "id": "t-1",
        "discipline": "information_theory",
        "task_type": "knowledge_qa",
        "language": "en",
        "prompt": "Which quantity measures uncertainty?",
        "reference": "Entropy measures the average uncertainty of a source.",
        "key_terms": ["entropy", "uncertainty"],
    } | overrides


def test_dimension_formulas_for_a_choice_item() -> None:
    item = item_from_dict(
        _item(choices=["Entropy", "Bandwidth"], answer_key="A", weights=_weights(2, 1, 1))
    )
    metrics = {
        "rouge_l": 0.4,
        "bleu": 0.2,
        "key_term_recall": 0.5,
        "exact_match": 1.0,
        "checker": None,
    }
    dimensions, overall = combine(item, metrics)
    assert dimensions == pytest.approx(
        {"knowledge": (0.5 + 1.0) / 2, "teaching": (0.4 + 0.2) / 2, "application": 1.0}
    )
    assert overall == pytest.approx((2 * 0.75 + 1 * 0.3 + 1 * 1.0) / 4)


def test_dimension_formulas_without_checker_fall_back_to_rouge() -> None:
    item = item_from_dict(_item(task_type="case_analysis"))
    metrics = {"rouge_l": 0.6, "bleu": 0.2, "key_term_recall": 1.0, "exact_match": None}
    dimensions, overall = combine(item, metrics | {"checker": None})
    assert dimensions == pytest.approx({"knowledge": 1.0, "teaching": 0.4, "application": 0.6})
    # case_analysis defaults: knowledge 0.3, teaching 0.3, application 0.4
    assert overall == pytest.approx(0.3 * 1.0 + 0.3 * 0.4 + 0.4 * 0.6)


def _weights(k: float, t: float, a: float) -> dict[str, float]:
    return {"knowledge": k, "teaching": t, "application": a}


def test_scorer_scores_a_formula_item_end_to_end() -> None:
    item = item_from_dict(
        _item(
            task_type="formula_derivation",
            prompt="Derive the entropy of a fair eight-sided die. Put it in \\boxed{}.",
            reference="Each face has probability 1/8, so H = log2 8 = \\boxed{3} bits.",
            key_terms=["1/8", "log2 8"],
            checker={"kind": "expression", "expected": "3"},
        )
    )
    with Scorer(formula_timeout_s=5) as scorer:
        right = scorer.score(item, "Uniform: p = 1/8, so H = log2 8 = \\boxed{3} bits.")
        wrong = scorer.score(item, "H = \\boxed{8} bits.")
    assert right.checker_outcome == "equivalent" and right.metrics["checker"] == 1.0
    assert right.dimensions["application"] == 1.0 and right.metrics["key_term_recall"] == 1.0
    assert wrong.checker_outcome == "not_equivalent" and wrong.dimensions["application"] == 0.0
    assert right.overall > wrong.overall
    assert right.as_dict()["item_id"] == "t-1"


def test_reference_log_likelihood_matches_the_model_loss() -> None:
    model, tokenizer = build_tiny_model("llama", seed=0)
    prompt, reference = "What is entropy?", " Average information."
    result = reference_log_likelihood(model, tokenizer, prompt=prompt, reference=reference)

    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    reference_ids = tokenizer(reference, add_special_tokens=False)["input_ids"]
    assert result.tokens == len(reference_ids)
    ids = torch.tensor([prompt_ids + reference_ids])
    labels = ids.clone()
    labels[0, : len(prompt_ids)] = -100
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss  # mean NLL of the reference tokens
    assert result.mean_log_likelihood == pytest.approx(-float(loss), abs=1e-5)
    assert result.perplexity == pytest.approx(math.exp(float(loss)), rel=1e-5)

    # token by token, from prefixes: the same sum
    total = 0.0
    with torch.no_grad():
        for i, token in enumerate(reference_ids):
            prefix = torch.tensor([prompt_ids + reference_ids[:i]])
            logits = model(input_ids=prefix).logits[0, -1]
            total += float(torch.log_softmax(logits, dim=-1)[token])
    assert result.log_likelihood == pytest.approx(total, abs=1e-4)
