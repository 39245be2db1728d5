"""Device and dtype choice."""

from __future__ import annotations

import re

import torch

from tcig.errors import ConfigError

_DEVICE = re.compile(r"cpu|mps|cuda(:\d{1,3})?")

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are the others. A device
    that is missing here is an error naming what is available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(name, str) or not _DEVICE.fullmatch(name.strip()):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    device = torch.device(name.strip())
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' was asked for but CUDA is not available here; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device '{name}' does not exist: this machine has {count} GPU(s), cuda:0..cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{name}' was asked for but MPS is not available here; use --device cpu")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The stage-2 dtype asked for; ``auto`` is float32 on CPU and None on a GPU, which leaves the choice to the
    refiner (:func:`refiner_dtype`; stage 1 uses autocast there)."""
    if name == "auto":
        return torch.float32 if device.type == "cpu" else None
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype '{name}'; use auto, float32, float16 or bfloat16")
    dtype = DTYPES[name]
    if device.type == "cpu" and dtype == torch.float16:
        raise ConfigError("float16 is not supported on the CPU; use --dtype float32 or bfloat16")
    return dtype


def refiner_dtype(device: torch.device, preferred: torch.dtype) -> torch.dtype:
    """A refiner's dtype under ``--dtype auto``: float32 on the CPU, else the half precision its family is released
    in (bfloat16 for FLUX.1 and SD3, float16 for the UNet families), float16 where bfloat16 is not supported."""
    if device.type == "cpu":
        return torch.float32
    if preferred == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return preferred


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for stage 1: bfloat16 on CUDA where supported, else float16 on GPUs, none on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


BYTES_PER_PIXEL = 256
"""Floor of the working memory per pixel and view of an image, for :meth:`tcig.pipeline.TCIGPipeline.check_memory`:
below what was measured, about 590 B for SD1.5 on an H200 (+0.5 GiB per image at 512 px, stage 1 at 256 with 8
crops, docs/performance.md) and 1.1 KiB for the bundled 64-px models on a CPU (float32)."""


def free_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device``: the GPU's free memory, the system's available memory for the
    CPU (Linux ``MemAvailable``), or None where it cannot be known."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None
