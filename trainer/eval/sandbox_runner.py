"""Runs an answer's code, then the item's tests, inside the sandbox child process.

Invoked by :mod:`trainer.eval.sandbox` as ``python -I sandbox_runner.py`` in a fresh temporary
folder holding ``solution.py`` and ``tests.py``. Standalone on purpose (no project imports).
The exit status is the verdict: 0 pass, 1 a test failed, 2 the answer's code raised, 3 memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

PASS, FAIL, ERROR, MEMORY = 0, 1, 2, 3


def main() -> int:
    namespace: dict[str, object] = {"__name__": "solution"}
    try:
        source = Path("solution.py").read_text(encoding="utf-8")
        exec(compile(source, "solution.py", "exec"), namespace)
    except MemoryError:
        return MEMORY
    except BaseException as e:  # SystemExit included: the answer must not choose the verdict
        print(f"solution: {type(e).__name__}", file=sys.stderr)
        return ERROR
    try:
        tests = Path("tests.py").read_text(encoding="utf-8")
        exec(compile(tests, "tests.py", "exec"), namespace)
    except MemoryError:
        return MEMORY
    except BaseException as e:
        print(f"tests: {type(e).__name__}", file=sys.stderr)
        return FAIL
    return PASS


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    import os

    os._exit(code)  # no atexit handlers or finalizers from the answer's code
