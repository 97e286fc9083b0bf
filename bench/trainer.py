"""Benchmark: the trainer's step time against a minimal hand-written torch + peft loop, and the
peak memory of full fine-tuning, LoRA and QLoRA.

Throughput: the same base model, LoRA config (rank 8 on q_proj/v_proj), seed and batches (every
example truncated to exactly ``--seq`` tokens) are trained by ``trainer.run_training`` and by a
bare loop (forward, backward, clip, AdamW step). The two alternate over ``--rounds`` rounds in one
process; the first ``--warmup`` steps of each run are discarded. Our step time is the time between
consecutive ``TrainingProgressed`` events, so it includes everything our loop does per step. The
report gives median seconds per step, tokens per second, the ratio ours / bare (target <= 1.10)
and the largest loss difference between the two (both compute the same thing).

Memory: each method trains ``--memory-steps`` steps in its own subprocess, which reports its peak
resident set size (``VmHWM``) and its peak after imports, before the model is loaded.

Writes ``bench/results/trainer.json``.

    .venv/bin/python bench/trainer.py [--model smollm2-135m|tiny] [--seq 256] [--batch 4]
        [--steps 3] [--warmup 1] [--rounds 2] [--memory-steps 2] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "trainer.json"
TARGET_RATIO = 1.10
TARGET_MODULES = ["q_proj", "v_proj"]
RANK = 8
SEED = 42
LEARNING_RATE = 1e-4

_PARAGRAPH = (
    "Shannon entropy measures the average information produced by a source; the channel capacity "
    "is the largest mutual information between input and output over all input distributions. "
    "A firewall filters packets by rules on addresses, ports and protocols, while TCP sets up a "
    "connection with a three-way handshake before any data flows. "
)


def bench_records(count: int) -> list[dict[str, str]]:
    """Records long enough that every example is cut to exactly the sequence length."""
    return [
        {
            "record_id": f"rec_{i:020x}",
            "instruction": f"Explain topic {i} of the course in detail.",
            "input": "",
            "output": _PARAGRAPH * 12,
            "discipline": "information_theory",
        }
        for i in range(count)
    ]


def rss_mb() -> float:
    """Peak RSS of this process (``VmHWM``, which, unlike ``ru_maxrss``, is not inherited from the
    parent that started this process)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recipe(method: str, *, seq: int, batch: int, steps: int) -> Any:
    from trainer.recipes import load_recipe

    overrides: dict[str, Any] = {
        "method": method,
        "training.batch_size": batch,
        "training.max_seq_length": seq,
        "training.max_steps": steps,
        "training.learning_rate": LEARNING_RATE,
        "training.scheduler": "constant",
        "training.warmup_ratio": 0.0,
        "training.checkpoint_every": 0,
        "training.val_fraction": 0.0,
        "training.seed": SEED,
    }
    if method in ("lora", "qlora"):
        overrides["method_config.target_modules"] = TARGET_MODULES
        overrides["method_config.rank"] = RANK
    return load_recipe("knowledge_qa", overrides)


def run_ours(base: Any, *, seq: int, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """Step times and losses of ``run_training`` (LoRA), measured between progress events."""
    from ledger.events import DomainEvent, TrainingProgressed
    from trainer.job import run_training

    stamps: list[float] = []
    losses: list[float] = []

    def on_event(event: DomainEvent) -> None:
        if isinstance(event, TrainingProgressed):
            stamps.append(time.perf_counter())
            losses.append(event.loss)

    with tempfile.TemporaryDirectory(prefix="byr-bench-") as scratch:
        run_training(
            base=base,
            recipe=recipe("lora", seq=seq, batch=batch, steps=warmup + steps + 1),
            dataset=bench_records(batch * (warmup + steps + 1)),
            output_dir=Path(scratch),
            on_event=on_event,
            progress=False,
        )
    # The step after the last measured one only closes the interval of the one before it.
    times = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :], strict=False)]
    return {"step_times": times[:steps], "losses": losses[: warmup + steps + 1]}


def run_bare(base: Any, *, seq: int, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """The same training written as a minimal torch + peft loop."""
    import random

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from trainer.data import BatchStream, collate, tokenize_records
    from trainer.models import load_base

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    base_model, tokenizer = load_base(base)
    model = get_peft_model(
        base_model,
        LoraConfig(
            task_type="CAUSAL_LM",
            r=RANK,
            lora_alpha=2 * RANK,
            lora_dropout=0.05,
            target_modules=TARGET_MODULES,
        ),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE)
    total = warmup + steps + 1
    records = sorted(bench_records(batch * total), key=lambda r: r["record_id"])
    examples = tokenize_records(records, tokenizer, max_seq_length=seq, prompt_format="auto")
    stream = BatchStream(examples, batch_size=batch, seed=SEED)
    batches = [
        collate(stream.next_batch(), pad_token_id=tokenizer.pad_token_id) for _ in range(total)
    ]
    model.train()
    times: list[float] = []
    losses: list[float] = []
    for batch_tensors in batches:
        started = time.perf_counter()
        loss = model(**batch_tensors, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - started)
    return {"step_times": times[warmup : warmup + steps], "losses": losses}


def summarize(times: list[float], tokens_per_step: int) -> dict[str, Any]:
    median = statistics.median(times)
    return {
        "s_per_step_median": round(median, 4),
        "tokens_per_s_median": round(tokens_per_step / median, 1),
        "step_times": [round(t, 4) for t in times],
    }


def throughput(args: argparse.Namespace, base: Any) -> dict[str, Any]:
    ours: list[float] = []
    bare: list[float] = []
    loss_diff = 0.0
    for round_index in range(args.rounds):
        order = ("bare", "ours") if round_index % 2 == 0 else ("ours", "bare")
        results: dict[str, dict[str, Any]] = {}
        for name in order:
            run = run_bare if name == "bare" else run_ours
            results[name] = run(
                base, seq=args.seq, batch=args.batch, steps=args.steps, warmup=args.warmup
            )
            print(f"  round {round_index + 1} {name}: {results[name]['step_times']}", flush=True)
        ours += results["ours"]["step_times"]
        bare += results["bare"]["step_times"]
        pairs = zip(results["ours"]["losses"], results["bare"]["losses"], strict=False)
        loss_diff = max(loss_diff, *(abs(a - b) for a, b in pairs))
    tokens = args.seq * args.batch
    report: dict[str, Any] = {
        "ours": summarize(ours, tokens),
        "bare_loop": summarize(bare, tokens),
    }
    ratio = report["ours"]["s_per_step_median"] / report["bare_loop"]["s_per_step_median"]
    report["ratio_s_per_step"] = round(ratio, 4)
    report["target_ratio"] = TARGET_RATIO
    report["within_target"] = ratio <= TARGET_RATIO
    report["loss_max_abs_diff"] = loss_diff
    return report


def memory_probe(args: argparse.Namespace) -> None:
    """Child mode: train ``args.memory_probe`` for a few steps, print peak RSS as JSON."""
    import torch  # noqa: F401  (counted in the after-imports figure)

    from trainer.job import run_training
    from trainer.models import resolve_base

    after_imports = rss_mb()
    base = resolve_base(args.model)
    with tempfile.TemporaryDirectory(prefix="byr-bench-mem-") as scratch:
        result = run_training(
            base=base,
            recipe=recipe(
                args.memory_probe, seq=args.seq, batch=args.batch, steps=args.memory_steps
            ),
            dataset=bench_records(args.batch * args.memory_steps),
            output_dir=Path(scratch),
            progress=False,
        )
    print(
        json.dumps(
            {
                "peak_rss_mb": round(rss_mb(), 1),
                "rss_after_imports_mb": round(after_imports, 1),
                "trainable_parameters": result.manifest.method_details["trainable_parameters"],
                "train_seconds": result.manifest.metrics["train_seconds"],
            }
        )
    )


def memory(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("full", "lora", "qlora"):
        command = [
            sys.executable, str(Path(__file__).resolve()), "--memory-probe", method,
            "--model", args.model, "--seq", str(args.seq), "--batch", str(args.batch),
            "--memory-steps", str(args.memory_steps),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            out[method] = {"error": done.stderr.strip().splitlines()[-1:]}
        else:
            out[method] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  memory {method}: {out[method]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="smollm2-135m, tiny, tiny-<family>")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="discarded steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ours/bare rounds")
    parser.add_argument("--memory-steps", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--memory-probe", choices=["full", "lora", "qlora"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON report")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.memory_probe:
        memory_probe(args)
        return

    import torch

    from trainer.models import resolve_base

    base = resolve_base(args.model)
    print(f"throughput: {args.model}, seq {args.seq}, batch {args.batch}", flush=True)
    report: dict[str, Any] = {
        "benchmark": "trainer",
        "model": args.model,
        "seq": args.seq,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "method": {"name": "lora", "rank": RANK, "target_modules": TARGET_MODULES},
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
    if not args.skip_throughput:
        report["throughput"] = throughput(args, base)
    if not args.skip_memory:
        print("memory (one subprocess per method):", flush=True)
        report["memory"] = memory(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    t = report.get("throughput")
    if t is None:
        print(f"wrote {args.out}")
        return
    print(
        f"ours {t['ours']['s_per_step_median']} s/step ({t['ours']['tokens_per_s_median']} tok/s), "
        f"bare loop {t['bare_loop']['s_per_step_median']} s/step "
        f"({t['bare_loop']['tokens_per_s_median']} tok/s): ratio {t['ratio_s_per_step']} "
        f"(target <= {TARGET_RATIO}); loss diff {t['loss_max_abs_diff']:.2e}"
    )
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
