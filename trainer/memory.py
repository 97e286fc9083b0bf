"""Peak memory of the training process, as reported in progress events and manifests."""

from __future__ import annotations

import resource

import torch


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Read from ``VmHWM`` in ``/proc/self/status`` where available: unlike ``ru_maxrss`` it starts
    afresh at ``exec``, so a process started from a large parent does not inherit its peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(device: str) -> float:
    """Peak memory so far: CUDA allocator peak on a GPU, else the process's peak RSS."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()
