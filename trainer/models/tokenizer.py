"""A tiny byte-level BPE tokenizer built in code (no download), for the tiny test models.

Byte-level pre-tokenization means every string, Chinese or English, is representable; the merges are
learned from a fixed bilingual sample so the result is identical on every machine. The chat template
is ChatML, the format SmolLM2-Instruct uses, so both kinds of base model format prompts the same
way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<|endoftext|>"
BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN)
"""In id order: pad = 0, bos = 1, eos = 2 (the tiny model configs rely on these ids)."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_SAMPLE = (
    "Shannon entropy measures the average information content of a source.",
    "The channel capacity is the maximum mutual information over input distributions.",
    "TCP establishes a connection with a three-way handshake: SYN, SYN-ACK, ACK.",
    "The Fourier transform maps a time-domain signal to the frequency domain.",
    "A firewall filters packets according to rules on addresses, ports and protocols.",
    "Explain the difference between symmetric and asymmetric encryption.",
    "Derive the Nyquist sampling theorem from the spectrum of a sampled signal.",
    "Gradient descent updates the parameters against the gradient of the loss.",
    "def entropy(p):\n    return -sum(x * math.log2(x) for x in p if x > 0)",
    "Instruction: Input: Response: question answer formula derivation step",
    "信息论中的熵衡量信源的平均信息量。",
    "信道容量是输入分布上互信息的最大值。",
    "TCP 通过三次握手建立连接：SYN、SYN-ACK、ACK。",
    "傅里叶变换把时域信号映射到频域。",
    "防火墙根据地址、端口和协议的规则过滤数据包。",
    "请解释对称加密和非对称加密的区别。",
    "从采样信号的频谱推导奈奎斯特采样定理。",
    "梯度下降沿损失函数梯度的反方向更新参数。",
    "通信原理 网络安全 信息论 信号处理 计算机网络 数据科学",
    "问题 答案 公式 推导 步骤 概念 解释 教学 对话 代码",
)


def build_tiny_tokenizer(*, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A deterministic byte-level BPE tokenizer with ChatML specials and chat template.

    Ids 0, 1, 2 are :data:`SPECIAL_TOKENS`; the vocabulary has at most ``vocab_size`` entries
    (fewer when the sample runs out of merges) — size models with ``len(tokenizer)``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(_SAMPLE) * 2, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=PAD_TOKEN,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer
