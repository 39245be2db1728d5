"""Small loss functions that stage 1 composes (TCIG, arXiv 2403.01212, eq. for L_clip and L_seg)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from tcig.layout import IGNORE

SegLoss = Literal["mse", "ce"]


def spherical_dist_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between embeddings (0 when equal), mean over the batch. The half chord is
    clamped to 1: rounding puts antipodal unit vectors a hair over it, where arcsin is NaN."""
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, kind: SegLoss = "mse") -> torch.Tensor:
    """Loss between class logits ``[B,K,h,w]`` and a target label map ``[B,H,W]`` (``IGNORE`` = not scored).

    ``mse`` is the paper's loss: squared error between ``softmax(logits)`` and the one-hot target, summed over
    classes and averaged over labelled pixels (so its scale does not depend on K). ``ce`` is cross-entropy.
    The logits are upsampled bilinearly to the target's size. Returns 0 when no pixel is labelled.
    """
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    valid = target != IGNORE
    if not valid.any():
        return logits.sum() * 0
    if kind == "ce":
        return F.cross_entropy(logits, target, ignore_index=IGNORE)
    if kind != "mse":
        raise ValueError(f"unknown segmentation loss {kind!r}; use 'mse' or 'ce'")
    probs = logits.softmax(dim=1)
    one_hot = F.one_hot(target.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    per_pixel = (probs - one_hot).pow(2).sum(dim=1)
    return per_pixel[valid].mean()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean absolute difference of neighbouring pixels, across and down."""
    return images.diff(dim=-1).abs().mean() + images.diff(dim=-2).abs().mean()
