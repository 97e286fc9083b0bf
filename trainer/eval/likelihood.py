"""Log-likelihood and perplexity of a reference answer given its prompt, under a causal LM.

The prompt and the reference are tokenized separately and concatenated (prompt with the
tokenizer's special tokens, reference without), so the reference tokens are exactly those a
model would have to generate after the prompt; only reference tokens are scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trainer.eval.errors import EvaluationError


@dataclass(frozen=True)
class ReferenceLikelihood:
    """Sum and mean of the reference tokens' natural-log probabilities, and perplexity
    ``exp(-mean)``."""

    log_likelihood: float
    tokens: int

    @property
    def mean_log_likelihood(self) -> float:
        return self.log_likelihood / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_log_likelihood)


def reference_log_likelihood(
    model: Any,
    tokenizer: Any,
    *,
    prompt: str,
    reference: str,
    max_length: int | None = None,
) -> ReferenceLikelihood:
    """Score ``reference`` after ``prompt`` with ``model`` (no gradients, eval mode kept as
    found). With ``max_length``, the prompt is cut from the left to fit; a reference that alone
    exceeds it raises :class:`EvaluationError`."""
    import torch

    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    reference_ids = list(tokenizer(reference, add_special_tokens=False)["input_ids"])
    if not reference_ids:
        raise EvaluationError("the reference answer has no tokens")
    if not prompt_ids:
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is None:
            raise EvaluationError("the prompt has no tokens and the tokenizer no BOS token")
        prompt_ids = [bos]
    if max_length is not None:
        if len(reference_ids) >= max_length:
            raise EvaluationError("the reference answer is longer than max_length")
        prompt_ids = prompt_ids[-(max_length - len(reference_ids)) :]
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids + reference_ids], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    log_probs = torch.log_softmax(logits[0, :-1], dim=-1)
    targets = ids[0, 1:]
    token_scores = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    reference_scores = token_scores[len(prompt_ids) - 1 :]
    return ReferenceLikelihood(
        log_likelihood=float(reference_scores.sum()), tokens=int(reference_scores.numel())
    )
