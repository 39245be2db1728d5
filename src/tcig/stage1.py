"""Stage 1 (control): optimize an image so CLIP matches the prompt and each segmenter predicts the layout.

``L = α_c · L_clip(x, prompt) + Σ_i α_i · L_seg_i(S_i(x), layout)`` minimized with Adam
(TCIG, arXiv 2403.01212, Sec. 3.1). A plain function of tensors with a per-step callback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .clip_scorer import CLIPScorer
from .errors import ConfigError, TCIGError
from .losses import SegLoss, segmentation_loss, spherical_dist_loss
from .segmenters import Segmenter

logger = logging.getLogger(__name__)


@dataclass
class SegTerm:
    """One guiding segmenter with its weight, its target ``[B,H,W]`` in its own label space, and its queries."""

    segmenter: Segmenter
    weight: float
    target: torch.Tensor
    queries: list[str] | None = None


@dataclass
class Stage1Settings:
    steps: int = 150
    lr: float = 0.05
    clip_weight: float = 1.0
    num_crops: int = 8
    crop_min: float = 0.6
    crop_noise: float = 0.02
    seg_noise: float = 0.0
    seg_loss: SegLoss = "mse"
    pyramid_levels: int = 4
    pyramid_finest: int = 0

    def check(self) -> None:
        if self.steps < 0 or self.lr <= 0 or self.num_crops < 1 or not 0 < self.crop_min <= 1:
            raise ConfigError("stage 1 needs --steps >= 0, --lr > 0, --crops >= 1 and --crop-min in (0, 1]")
        if self.crop_noise < 0 or self.seg_noise < 0 or self.pyramid_levels < 1 or self.pyramid_finest < 0:
            raise ConfigError(
                "stage 1 needs --crop-noise, --seg-noise, --pyramid-finest >= 0 and --pyramid-levels >= 1"
            )
        if self.seg_loss not in ("mse", "ce"):
            raise ConfigError(f"unknown segmentation loss '{self.seg_loss}'; use mse or ce")


def random_crops(
    images: torch.Tensor,
    n: int,
    size: tuple[int, int],
    crop_min: float,
    generator: torch.Generator | None,
    noise: float = 0.0,
) -> torch.Tensor:
    """``n`` random square crops per image (side in [crop_min, 1] of the short side), each resized to ``size``,
    flipped at random and given Gaussian pixel noise of std ``noise``, stacked into one batch ``[B*n,3,*size]``
    for a single CLIP forward. Augmenting the views keeps CLIP from being satisfied by one adversarial pattern."""
    b, _, h, w = images.shape
    short = min(h, w)
    draws = torch.rand(b * n, 4, generator=generator).tolist()
    crops = []
    for i, (r_side, r_top, r_left, r_flip) in enumerate(draws):
        side = max(1, round(short * (crop_min + (1 - crop_min) * r_side)))
        top, left = int(r_top * (h - side + 1)), int(r_left * (w - side + 1))
        crop = images[i // n : i // n + 1, :, top : top + side, left : left + side]
        crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=side > size[0])
        crops.append(crop.flip(-1) if r_flip < 0.5 else crop)
    batch = torch.cat(crops)
    if noise > 0:
        batch = batch + noise * torch.randn(batch.shape, generator=generator).to(batch.device, batch.dtype)
    return batch


def run_stage1(
    param: nn.Module,
    *,
    settings: Stage1Settings,
    seg_terms: list[SegTerm],
    clip: CLIPScorer | None = None,
    text_embeds: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, list[dict]]:
    """Optimize ``param`` (its ``forward()`` gives images in [0,1]); returns the final images and the loss history.

    ``text_embeds[B,D]`` are CLIP's unit-norm prompt embeddings (one per image). All randomness (crops) comes
    from ``generator``, so an identical generator gives identical results on the same device.
    """
    device = next(param.parameters()).device
    optimizer = torch.optim.Adam([p for p in param.parameters() if p.requires_grad], lr=settings.lr)
    history: list[dict] = []
    use_clip = clip is not None and text_embeds is not None and settings.clip_weight > 0
    bar = tqdm(range(settings.steps), desc="stage 1", disable=not progress, leave=False)
    with torch.enable_grad():
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            amp = (
                torch.autocast(device.type, dtype=autocast_dtype)
                if autocast_dtype is not None
                else contextlib.nullcontext()
            )
            with amp:
                images = param()
                terms: dict[str, torch.Tensor] = {}
                if use_clip:
                    crops = random_crops(
                        images, settings.num_crops, clip.input_size, settings.crop_min, generator, settings.crop_noise
                    )
                    embeds = clip.encode_image(crops)
                    targets = text_embeds.repeat_interleave(settings.num_crops, dim=0)
                    terms["clip"] = settings.clip_weight * spherical_dist_loss(embeds, targets)
                seg_view = images
                if settings.seg_noise > 0 and seg_terms:
                    noise = torch.randn(images.shape, generator=generator).to(images.device, images.dtype)
                    seg_view = images + settings.seg_noise * noise  # the segmenters see a noisy view (EOT)
                for i, term in enumerate(seg_terms):
                    logits = term.segmenter(seg_view, term.queries)
                    key = f"seg{i}" if len(seg_terms) > 1 else "seg"
                    terms[key] = term.weight * segmentation_loss(logits, term.target.to(device), settings.seg_loss)
                loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise TCIGError(
                    f"the stage-1 loss became {loss.item()} at step {step}; lower --lr or the loss weights"
                )
            loss.backward()
            optimizer.step()
            record = {"step": step, "loss": loss.item(), **{k: v.item() for k, v in terms.items()}}
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if callback is not None:
                callback({**record, "images": images.detach()})
    with torch.no_grad():
        final = param().float().clamp(0, 1)
    if history:
        logger.info("stage 1: %d steps, loss %.4f -> %.4f", len(history), history[0]["loss"], history[-1]["loss"])
    return final, history
