"""The live metrics of a run: one JSON line per logged step, evaluation and lifecycle moment, in
``<run folder>/metrics.jsonl``.

The file is the stream: the trainer appends to it whoever started the run (``byr train``, a
trainer worker, the API's own trainer thread), and readers (the SSE endpoint, a dashboard) tail it.
A line's number (1-based) is its event id, so a reader that saw line N resumes after it. Lines are
appended whole, with one ``write`` each, and a reader only takes lines that end in a newline, so a
line being written is never read half.

Kinds of line (``event``): ``start`` (also after a resume, with ``resumed_from_step``), ``step``,
``eval``, ``checkpoint``, ``early_stop``, then ``end`` with ``status`` ``completed``, ``stopped``
or ``failed``. A resumed run appends after the ``end`` line of its stop.

Importing this module is cheap (no torch): the API reads metrics files through it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
END = "end"


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_FILE


class MetricsLog:
    """Appends metric lines to a run's ``metrics.jsonl`` (created with mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": round(time.time(), 3), **fields})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class MetricLine:
    """One complete line of a metrics file."""

    number: int
    """1-based line number: the event id."""
    data: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.data.get("event", "message"))


def read_metrics(path: Path, *, after: int = 0) -> list[MetricLine]:
    """The complete lines of ``path`` after line ``after`` (none when the file does not exist).

    A line that is not valid JSON (a file damaged by hand) is skipped, keeping its number."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    lines: list[MetricLine] = []
    complete = raw[: raw.rfind(b"\n") + 1]
    for number, text in enumerate(complete.splitlines(), start=1):
        if number <= after:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict):
            lines.append(MetricLine(number=number, data=data))
    return lines


def iter_until_end(lines: list[MetricLine]) -> Iterator[MetricLine]:
    """``lines`` up to and including the first ``end`` line."""
    for line in lines:
        yield line
        if line.event == END:
            return


class SystemSampler:
    """CPU (and, on a CUDA device, GPU) figures for step lines.

    CPU: resident set size and utilisation of this process (psutil; utilisation since the
    previous sample, in percent of one core). GPU: memory the torch allocator holds and the
    device's utilisation from NVML (``nvidia-ml-py``, imported on first use; left out when NVML is
    unavailable). On a CPU device no GPU field is written.
    """

    def __init__(self, device: str) -> None:
        import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading only starts the interval
        self._device = device
        self._nvml: Any = None
        self._handle: Any = None
        if device.startswith("cuda"):
            self._open_nvml()

    def _open_nvml(self) -> None:
        try:
            import pynvml
            import torch

            pynvml.nvmlInit()
            index = torch.cuda.current_device()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except Exception:  # no NVML (driver, container): GPU fields from torch only
            self._nvml = None

    def sample(self) -> dict[str, Any]:
        memory = self._process.memory_info()
        out: dict[str, Any] = {
            "cpu_rss_mb": round(memory.rss / 2**20, 1),
            "cpu_percent": round(self._process.cpu_percent(None), 1),
        }
        if self._device.startswith("cuda"):
            import torch

            out["gpu_memory_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
            out["gpu_peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if self._nvml is not None:
                try:
                    rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
                    out["gpu_utilization"] = float(rates.gpu)
                    info = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
                    out["gpu_memory_used_mb"] = round(info.used / 2**20, 1)
                except Exception:  # a failed NVML read drops only those fields
                    pass
        return out


__all__ = [
    "END",
    "METRICS_FILE",
    "MetricLine",
    "MetricsLog",
    "SystemSampler",
    "iter_until_end",
    "metrics_path",
    "read_metrics",
]
