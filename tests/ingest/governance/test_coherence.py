"""Coherence scores: on-topic answers beat off-topic ones, coherent answers beat spliced ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.governance.coherence import (
    CoherenceItem,
    SentenceSplitter,
    batch_coherence,
    coherence_scores,
)
from ingest.governance.embeddings import Embedder

EN_QA = [
    (
        "Explain the TCP three-way handshake.",
        "The client sends a SYN segment carrying its initial sequence number. The server answers "
        "with a SYN-ACK segment that acknowledges the client's number and announces its own. "
        "Finally the client sends an ACK, and the connection is established.",
    ),
    (
        "What is Shannon entropy?",
        "Shannon entropy measures the average uncertainty of a random variable. For a discrete "
        "source it is the sum over all symbols of minus p times the logarithm of p. It is maximal "
        "when all symbols are equally likely.",
    ),
    (
        "What does the Nyquist sampling theorem state?",
        "A band-limited signal can be reconstructed exactly from its samples if the sampling rate "
        "is more than twice its highest frequency. Sampling below that rate causes aliasing.",
    ),
    (
        "How does a Diffie-Hellman key exchange work?",
        "Both parties agree on a prime modulus and a generator. Each picks a secret exponent and "
        "sends the generator raised to it. Each side then raises the received value to its own "
        "secret, and both obtain the same shared key.",
    ),
    (
        "What is overfitting in machine learning?",
        "Overfitting happens when a model learns noise in the training data instead of the "
        "underlying pattern. It performs well on the training set but poorly on new data. "
        "Regularization and more data reduce it.",
    ),
    (
        "What is quadrature amplitude modulation?",
        "QAM transmits two carriers of the same frequency that are ninety degrees out of phase. "
        "Each carrier is amplitude modulated, so every symbol encodes several bits as a point in "
        "the constellation.",
    ),
]
ZH_QA = [
    (
        "什么是香农熵？",
        "香农熵衡量随机变量的平均不确定性。对离散信源，它等于各符号概率与其对数乘积之和的相反数。"
        "当所有符号等概率出现时熵最大。",
    ),
    (
        "奈奎斯特采样定理的内容是什么？",
        "如果采样频率高于带限信号最高频率的两倍，就可以由采样值无失真地恢复原信号。"
        "采样频率过低会产生混叠。",
    ),
    (
        "迪菲-赫尔曼密钥交换是如何工作的？",
        "双方先约定一个大素数和一个生成元。每一方选择一个秘密指数，并把生成元的该次幂发送给对方。"
        "双方再用自己的秘密指数对收到的值求幂，得到相同的共享密钥。",
    ),
    (
        "机器学习中的过拟合是什么？",
        "过拟合是指模型学到了训练数据中的噪声而不是规律。模型在训练集上表现很好，"
        "但在新数据上表现很差。正则化和增加数据可以缓解过拟合。",
    ),
    (
        "什么是正交幅度调制？",
        "正交幅度调制使用两个频率相同、相位相差九十度的载波。两个载波分别进行幅度调制，"
        "每个符号在星座图上对应一个点，可以携带多个比特。",
    ),
    (
        "为什么线性时不变系统要用卷积来描述？",
        "线性时不变系统的输出等于输入与冲激响应的卷积。因此只要知道冲激响应，就完全确定了这个系统。",
    ),
]
QA = {"en": EN_QA, "zh": ZH_QA}


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    with Embedder() as shared:
        # Loading here keeps the one-off library import out of the first test's own timing.
        shared.warm_up(language="en")
        yield shared


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_on_topic_answers_score_higher_than_answers_to_another_question(
    embedder: Embedder, language: str
) -> None:
    pairs = QA[language]
    on_topic = [CoherenceItem(q, a, language) for q, a in pairs]
    # Every instruction paired with the answer to a question from another discipline.
    off_topic = [
        CoherenceItem(pairs[i][0], pairs[(i + 3) % len(pairs)][1], language)
        for i in range(len(pairs))
    ]
    on_scores = [s.instruction_output for s in batch_coherence(on_topic, embedder=embedder)]
    off_scores = [s.instruction_output for s in batch_coherence(off_topic, embedder=embedder)]

    assert all(0.0 <= s <= 1.0 for s in on_scores + off_scores)
    assert _mean(on_scores) > _mean(off_scores) + 0.15
    wins = sum(on > off for on, off in zip(on_scores, off_scores, strict=True))
    assert wins >= len(pairs) - 1


@pytest.mark.parametrize("language", ["en", "zh"])
def test_answers_spliced_from_different_topics_are_less_consecutive(
    embedder: Embedder, language: str
) -> None:
    pairs = QA[language]
    splitter = SentenceSplitter()
    sentences = splitter.split([a for _, a in pairs], language=language)
    coherent = [CoherenceItem(q, a, language) for q, a in pairs]
    joiner = " " if language == "en" else ""
    # Each answer's first sentence followed by first sentences of unrelated answers.
    spliced = [
        CoherenceItem(
            pairs[i][0],
            joiner.join(sentences[(i + k) % len(pairs)][0] for k in (0, 2, 4)),
            language,
        )
        for i in range(len(pairs))
    ]
    coherent_scores = batch_coherence(coherent, embedder=embedder)
    spliced_scores = batch_coherence(spliced, embedder=embedder)

    coherent_values = [s.consecutive_sentences for s in coherent_scores]
    spliced_values = [s.consecutive_sentences for s in spliced_scores]
    assert all(v is not None for v in coherent_values + spliced_values)
    assert _mean([v for v in coherent_values if v is not None]) > _mean(
        [v for v in spliced_values if v is not None]
    )


def test_single_sentence_and_empty_outputs(embedder: Embedder) -> None:
    one = coherence_scores(
        instruction="What is a MAC address?",
        output="A MAC address is the hardware address of a network interface.",
        language="en",
        embedder=embedder,
    )
    empty = coherence_scores(
        instruction="什么是MAC地址？", output="", language="zh", embedder=embedder
    )
    assert one.consecutive_sentences is None
    assert one.instruction_output > 0.3
    assert (empty.instruction_output, empty.consecutive_sentences) == (0.0, None)


def test_batch_scores_match_single_scores_and_use_one_model_call_per_language() -> None:
    items = [CoherenceItem(q, a, "en") for q, a in EN_QA[:3]] + [
        CoherenceItem(q, a, "zh") for q, a in ZH_QA[:3]
    ]
    with Embedder() as fresh:
        batch = batch_coherence(items, embedder=fresh)
        assert fresh.stats.model_calls == 2
        singles = [
            coherence_scores(
                instruction=i.instruction, output=i.output, language=i.language, embedder=fresh
            )
            for i in items
        ]
        assert fresh.stats.model_calls == 2  # every single call was served from the cache
    for together, alone in zip(batch, singles, strict=True):
        assert together.instruction_output == pytest.approx(alone.instruction_output, abs=1e-6)


def test_sentence_splitter_handles_chinese_and_english() -> None:
    splitter = SentenceSplitter()
    zh = splitter.split(["首先发送SYN。然后回复ACK！最后连接建立？"], language="zh")
    en = splitter.split(["The client sends SYN. The server replies. Done!"], language="en")
    mixed = splitter.split(["先发送 SYN segment。Then the server replies."], language="mixed")
    assert zh == [["首先发送SYN。", "然后回复ACK！", "最后连接建立？"]]
    assert en == [["The client sends SYN.", "The server replies.", "Done!"]]
    assert len(mixed[0]) == 2
