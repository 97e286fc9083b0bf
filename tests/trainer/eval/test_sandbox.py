"""Answer code runs against item tests in a child with time, memory and network limits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from trainer.eval import Scorer, item_from_dict
from trainer.eval.sandbox import (
    SandboxLimits,
    SandboxOutcome,
    extract_code,
    network_isolation_prefix,
    run_python_tests,
)

LIMITS = SandboxLimits(wall_s=3.0, cpu_s=2, memory_bytes=256 * 1024**2)
DOUBLE = "def double(x):\n    return 2 * x\n"
TESTS = "assert double(2) == 4\nassert double(-1) == -2\n"


def test_passing_code() -> None:
    result = run_python_tests(code=DOUBLE, tests=TESTS, limits=LIMITS)
    assert result.outcome is SandboxOutcome.PASS and result.passed


def test_failing_code() -> None:
    result = run_python_tests(code="def double(x):\n    return x + 2\n", tests=TESTS, limits=LIMITS)
    assert result.outcome is SandboxOutcome.FAIL
    assert "AssertionError" in result.stderr_tail


def test_code_that_does_not_run_is_an_error() -> None:
    assert run_python_tests(code="def double(:", tests=TESTS, limits=LIMITS).outcome is (
        SandboxOutcome.ERROR
    )
    exits = run_python_tests(code="raise SystemExit(0)", tests=TESTS, limits=LIMITS)
    assert exits.outcome is SandboxOutcome.ERROR  # the answer cannot choose its own verdict


def test_looping_code_hits_the_time_limit() -> None:
    result = run_python_tests(code="while True:\n    pass\n", tests=TESTS, limits=LIMITS)
    assert result.outcome is SandboxOutcome.TIMEOUT
    assert result.seconds < LIMITS.wall_s + 2


def test_sleeping_code_hits_the_wall_clock_limit() -> None:
    limits = SandboxLimits(wall_s=1.0, cpu_s=5)
    result = run_python_tests(code="import time\ntime.sleep(60)\n", tests="", limits=limits)
    assert result.outcome is SandboxOutcome.TIMEOUT and result.seconds < 3


def test_memory_hungry_code_hits_the_memory_limit() -> None:
    result = run_python_tests(code="blob = bytearray(2 * 1024**3)\n", tests="", limits=LIMITS)
    assert result.outcome is SandboxOutcome.MEMORY_EXCEEDED


def test_child_runs_in_a_clean_folder_with_a_minimal_environment() -> None:
    tests = (
        "import os\n"
        "assert os.environ['HOME'] == os.getcwd()\n"
        "assert sorted(os.listdir('.')) == ['solution.py', 'tests.py']\n"
        "assert 'VIRTUAL_ENV' not in os.environ and 'BYR_SECRET' not in os.environ\n"
    )
    assert run_python_tests(code="", tests=tests, limits=LIMITS).passed


@pytest.fixture()
def local_server() -> Iterator[int]:
    """A TCP server on the host's loopback that answers b"ok" to every connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(timeout=5)


def test_code_that_uses_the_network_fails(local_server: int) -> None:
    code = (
        "import socket\n"
        f"with socket.create_connection(('127.0.0.1', {local_server}), timeout=2) as s:\n"
        "    reply = s.recv(2)\n"
    )
    tests = "assert reply == b'ok'\n"
    if network_isolation_prefix() is None:
        pytest.skip("this host allows no network namespace; sandboxed code has network access")
    result = run_python_tests(code=code, tests=tests, limits=LIMITS)
    assert result.network_isolated
    assert result.outcome is SandboxOutcome.ERROR
    assert "OSError" in result.stderr_tail or "Error" in result.stderr_tail
    # without isolation the same code reaches the server: the isolation is what stops it
    open_run = run_python_tests(code=code, tests=tests, limits=LIMITS, isolate_network=False)
    assert open_run.passed and not open_run.network_isolated


def test_extract_code_takes_fenced_blocks() -> None:
    answer = (
        "Explanation first.\n```python\ndef f():\n    return 1\n```\nMore text.\n```\nx = f()\n```"
    )
    assert extract_code(answer) == "def f():\n    return 1\n\nx = f()"
    assert extract_code("x = 1") == "x = 1"


def test_scorer_runs_code_items_in_the_sandbox() -> None:
    item = item_from_dict(
        {
            "id": "code-1",
            "discipline": "computer_networks",
            "task_type": "code_explanation",
            "language": "en",
            "prompt": "Explain and write double(x).",
            "reference": "It doubles x.\n```python\ndef double(x):\n    return 2 * x\n```",
            "key_terms": ["doubles"],
            "checker": {"kind": "code", "language": "python", "tests": TESTS},
        }
    )
    with Scorer(sandbox_limits=LIMITS) as scorer:
        good = scorer.score(item, "It doubles its input.\n```python\n" + DOUBLE + "```")
        bad = scorer.score(item, "```python\ndef double(x):\n    return x\n```")
    assert (good.checker_outcome, good.dimensions["application"]) == ("pass", 1.0)
    assert (bad.checker_outcome, bad.dimensions["application"]) == ("fail", 0.0)
