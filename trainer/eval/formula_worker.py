"""The formula-check worker process (run as a script by :mod:`trainer.eval.formulas`).

Protocol: one JSON line in, ``{"expected": ..., "answer": ...}``; one JSON line out,
``{"outcome": ...}``. A first line ``{"ready": true}`` is written once math-verify is imported.
Standalone on purpose (no project imports), so it starts the same way from any process.
"""

from __future__ import annotations

import json
import logging
import resource
import sys


def _as_latex(expression: str) -> str:
    text = expression.strip()
    if any(mark in text for mark in ("$", "\\(", "\\[", "\\boxed")):
        return text
    return f"${text}$"


def main() -> None:
    memory_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    logging.disable(logging.WARNING)  # math-verify warns that the timeout is ours to enforce
    from math_verify import parse, verify

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            gold = parse(_as_latex(request["expected"]), parsing_timeout=None)
            target = parse(request["answer"], parsing_timeout=None)
            if not target:
                outcome = "no_expression"
            elif verify(gold, target, timeout_seconds=None):
                outcome = "equivalent"
            else:
                outcome = "not_equivalent"
        except Exception:  # MemoryError included: report, keep serving
            outcome = "error"
        out.write(json.dumps({"outcome": outcome}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
