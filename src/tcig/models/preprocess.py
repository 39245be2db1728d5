"""Differentiable resize + normalize, read from a model's preprocessor config.

The image processors of transformers work on PIL images and numpy arrays, which breaks the gradient
that stage 1 needs, so we read their numbers (mean, std, size) and apply them in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tcig.models.loading import read_json_config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageNorm:
    """What a model expects: per-channel mean and std, and an input size (None keeps the image's own)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: tuple[int, int] | None

    def __call__(self, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Map ``images[B,3,H,W]`` in [0, 1] to the model's input, keeping the autograd graph."""
        size = size or self.size
        if size is not None and tuple(images.shape[-2:]) != tuple(size):
            shrink = size[0] < images.shape[-2] or size[1] < images.shape[-1]
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrink)
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std


def image_norm_from_config(
    ref: str, mean: tuple[float, ...], std: tuple[float, ...], size: tuple[int, int] | None
) -> ImageNorm:
    """Read ``preprocessor_config.json`` of ``ref``; the given defaults fill what it lacks."""
    cfg = read_json_config(ref, "preprocessor_config.json") or {}
    mean = tuple(cfg.get("image_mean", mean))
    std = tuple(cfg.get("image_std", std))
    if cfg.get("do_resize", True) is False:
        size = None
    else:
        size = _size_from(cfg.get("crop_size") if cfg.get("do_center_crop") else cfg.get("size")) or size
    return ImageNorm(mean, std, size)


def _size_from(value: object) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return (int(value["height"]), int(value["width"]))
        if "shortest_edge" in value:
            return (int(value["shortest_edge"]),) * 2
    return None
