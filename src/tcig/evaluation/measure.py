"""Seconds and peak memory of one stage: CUDA's allocator peak on a GPU, the process's resident set on a CPU."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_mb: float | None = None
    memory_kind: str = "cpu_rss"


class measure:  # noqa: N801 - used as a context manager, like torch.no_grad
    """``with measure(device) as m: ...`` fills ``m.seconds`` and ``m.peak_mb`` for the block.

    On CUDA the peak is ``max_memory_allocated`` since the block started; on a CPU a thread samples the process's
    resident set every ``interval`` seconds (Linux ``/proc``; None elsewhere), so it includes the loaded models."""

    def __init__(self, device: torch.device | str, interval: float = 0.01) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self.result = Measurement(memory_kind="cuda_allocated" if self.device.type == "cuda" else "cpu_rss")
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes() or 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> Measurement:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif _rss_bytes() is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._start = time.perf_counter()
        return self.result

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.result.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.result.seconds = time.perf_counter() - self._start
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes() or 0)
            self.result.peak_mb = self._peak / 2**20
