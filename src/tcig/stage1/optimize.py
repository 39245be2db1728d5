"""Stage 1 (control): optimize an image so CLIP matches the prompt and each segmenter predicts the layout.

``L = α_c · L_clip(x, prompt) + Σ_i α_i · L_seg_i(S_i(x), layout)`` minimized with Adam
(TCIG, arXiv 2403.01212, Sec. 3.1). A plain function of tensors with a per-step callback.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tcig.errors import TCIGError
from tcig.models.clip_scorer import CLIPScorer
from tcig.models.segmenters import Segmenter
from tcig.settings import Stage1Settings
from tcig.stage1.losses import SegLoss, segmentation_loss, spherical_dist_loss, total_variation

logger = logging.getLogger(__name__)


@dataclass
class SegTerm:
    """One guiding segmenter with its weight, its target ``[B,H,W]`` in its own label space, and its queries."""

    segmenter: Segmenter
    weight: float
    target: torch.Tensor
    queries: list[str] | None = None


@dataclass
class CropDraws:
    """The randomness of one step's crops: ``[B*n, 4]`` uniform draws (side, x, y, flip) and the pixel noise."""

    uniform: torch.Tensor
    noise: torch.Tensor | None

    @classmethod
    def sample(
        cls, count: int, size: tuple[int, int], noise: float, generator: torch.Generator | None, device
    ) -> CropDraws:
        uniform = torch.rand(count, 4, generator=generator).to(device)
        pixels = noise * torch.randn(count, 3, *size, generator=generator).to(device) if noise > 0 else None
        return cls(uniform, pixels)


def crop_views(images: torch.Tensor, n: int, size: tuple[int, int], crop_min: float, draws: CropDraws) -> torch.Tensor:
    """``n`` random square crops per image (side in [crop_min, 1] of the short side), each resized to ``size``,
    flipped at random and given Gaussian pixel noise, stacked into one batch ``[B*n,3,*size]`` for a single CLIP
    forward. Augmenting the views keeps CLIP from being satisfied by one adversarial pattern.

    All crops come from one ``grid_sample`` with fixed output shapes (no per-crop kernels and no shape changes,
    so the step can be compiled). An image much larger than ``size`` is first shrunk with antialiasing so that the
    average crop maps to ``size`` without aliasing."""
    b, _, h, w = images.shape
    mean_side = round(size[0] / ((1 + crop_min) / 2))
    if min(h, w) > mean_side:
        scale = mean_side / min(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
        images = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    u = draws.uniform.to(images.dtype)
    side = (crop_min + (1 - crop_min) * u[:, 0]) * min(h, w)
    half_x, half_y = side / w, side / h  # half-extents in grid_sample's [-1, 1] coordinates
    centre_x = (u[:, 1] * 2 - 1) * (1 - half_x)
    centre_y = (u[:, 2] * 2 - 1) * (1 - half_y)
    flip = torch.where(u[:, 3] < 0.5, -1.0, 1.0).to(u.dtype)
    zero = torch.zeros_like(side)
    theta = torch.stack([flip * half_x, zero, centre_x, zero, half_y, centre_y], dim=1).view(-1, 2, 3)
    grid = F.affine_grid(theta, [b * n, images.shape[1], *size], align_corners=False)
    batch = F.grid_sample(images.repeat_interleave(n, dim=0), grid, mode="bilinear", align_corners=False)
    return batch if draws.noise is None else batch + draws.noise.to(batch.dtype)


@dataclass
class ViewDraws:
    """The randomness of one step's segmenter views: an affine map ``[N,2,3]`` (shift and scale) per view, a blur
    width ``[N]`` in pixels, and pixel noise ``[N,3,H,W]`` (or None); ``N`` = images × views."""

    theta: torch.Tensor
    blur: torch.Tensor
    noise: torch.Tensor | None

    @classmethod
    def sample(
        cls, count: int, size: tuple[int, int], settings: Stage1Settings, generator: torch.Generator | None, device
    ) -> ViewDraws:
        u = torch.rand(count, 4, generator=generator) * 2 - 1
        zoom = 1 / (1 + settings.seg_scale * u[:, 0])
        shift = 2 * settings.seg_shift * u[:, 1:3]  # grid_sample's [-1, 1] spans the whole side
        zero = torch.zeros(count)
        theta = torch.stack([zoom, zero, shift[:, 0], zero, zoom, shift[:, 1]], dim=1).view(-1, 2, 3)
        blur = settings.seg_blur * (u[:, 3] + 1) / 2
        noise = None
        if settings.seg_noise > 0:
            noise = settings.seg_noise * torch.randn(count, 3, *size, generator=generator)
        return cls(theta.to(device), blur.to(device), None if noise is None else noise.to(device))


BLUR_RADIUS = 2


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image ``[N,C,H,W]`` with its own Gaussian width ``sigma[N]`` (pixels; 0 leaves it unchanged), with
    a separable kernel of radius ``BLUR_RADIUS`` and reflected borders. Fixed shapes, so it compiles."""
    n, c, h, w = images.shape
    x = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma.to(images.dtype)[:, None] ** 2 + 1e-6))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [N*C, K]
    flat = F.pad(images.reshape(1, n * c, h, w), (BLUR_RADIUS,) * 4, mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def segmenter_views(
    images: torch.Tensor, targets: list[torch.Tensor], views: int, draws: ViewDraws
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``views`` transformed copies of each image ``[B*views,3,H,W]`` and of each target label map, moved with them
    (nearest neighbour; pixels moved in from outside are ``IGNORE``), for an expectation over transformations."""
    b = images.shape[0]
    batch = images.repeat_interleave(views, dim=0)
    grid = F.affine_grid(draws.theta.to(images.dtype), list(batch.shape), align_corners=False)
    batch = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    batch = gaussian_blur(batch, draws.blur)
    if draws.noise is not None:
        batch = batch + draws.noise.to(batch.dtype)
    moved = []
    for target in targets:
        shifted = (target.expand(b, -1, -1).repeat_interleave(views, dim=0)[:, None] + 1).to(grid.dtype)
        shifted = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        moved.append(shifted[:, 0].round().long() - 1)  # 0 (outside) becomes IGNORE
    return batch, moved


def seg_terms_loss(terms: list[SegTerm], kind: SegLoss) -> Callable[[torch.Tensor], torch.Tensor]:
    """The guides' weighted segmentation loss of images ``[B,3,H,W]`` (at the targets' size) as one function, summed
    over the batch so that each image gets its own gradient: what guided sampling follows."""

    def loss(images: torch.Tensor) -> torch.Tensor:
        total = images.new_zeros(())
        for term in terms:
            logits = term.segmenter(images, term.queries)
            total = total + term.weight * segmentation_loss(logits, term.target.to(images.device), kind)
        return total * images.shape[0]

    return loss


class EarlyStop:
    """Tracks an exponential moving average of the loss (the crops make single steps noisy) and says when it has
    not improved by the relative ``min_improvement`` over the best so far for ``patience`` steps."""

    def __init__(self, patience: int, min_improvement: float, smoothing: float = 0.9) -> None:
        self.patience, self.min_improvement, self.smoothing = patience, min_improvement, smoothing
        self.average: float | None = None
        self.best: float | None = None
        self.since_best = 0

    def should_stop(self, loss: float) -> bool:
        if self.patience <= 0:
            return False
        a = self.smoothing
        self.average = loss if self.average is None else a * self.average + (1 - a) * loss
        if self.best is None or self.average < self.best - self.min_improvement * abs(self.best):
            self.best, self.since_best = self.average, 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience


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
    compile_step: bool | str = False,
    progress: bool = True,
) -> tuple[torch.Tensor, list[dict]]:
    """Optimize ``param`` (its ``forward()`` gives images in [0,1]); returns the final images and the loss history.

    ``text_embeds[B,D]`` are CLIP's unit-norm prompt embeddings (one per image). All randomness (crops, noise) is
    drawn from ``generator`` outside the loss function, so an identical generator gives identical results on the
    same device and ``compile_step`` (``torch.compile`` of the loss; True or a compile mode such as
    ``"reduce-overhead"``) sees fixed shapes. Without a ``callback`` the losses are read back from the device every
    ``SYNC_EVERY`` steps only, so the host can queue work ahead; the finiteness and early-stopping checks then run
    at those points (a non-finite loss is reported with the step where it first appeared).
    """
    device = next(param.parameters()).device
    params = [p for p in param.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, fused=device.type == "cuda")
    use_clip = clip is not None and text_embeds is not None and settings.clip_weight > 0
    targets = [term.target.to(device) for term in seg_terms]
    keys = [f"seg{i}" if len(seg_terms) > 1 else "seg" for i in range(len(seg_terms))]
    clip_targets = text_embeds.repeat_interleave(settings.num_crops, dim=0) if use_clip else None
    amp = (
        (lambda: torch.autocast(device.type, dtype=autocast_dtype))
        if autocast_dtype is not None
        else contextlib.nullcontext
    )

    def losses(draws: CropDraws | None, views: ViewDraws | None, seg_noise: torch.Tensor | None, chosen: tuple):
        with amp():
            images = param()
            terms: dict[str, torch.Tensor] = {}
            if draws is not None:
                crops = crop_views(images, settings.num_crops, clip.input_size, settings.crop_min, draws)
                embeds = clip.encode_image(crops)
                terms["clip"] = settings.clip_weight * spherical_dist_loss(embeds, clip_targets)
            if views is not None:  # expectation over shifts, scales, blur and noise
                seg_view, seg_targets = segmenter_views(images, targets, settings.seg_views, views)
            else:  # the image itself, optionally noisy
                seg_view = images if seg_noise is None else images + settings.seg_noise * seg_noise
                seg_targets = targets
            for i in chosen:
                term = seg_terms[i]
                terms[keys[i]] = (
                    (len(seg_terms) / len(chosen))
                    * term.weight
                    * segmentation_loss(term.segmenter(seg_view, term.queries), seg_targets[i], settings.seg_loss)
                )
            if settings.tv_weight > 0:
                terms["tv"] = settings.tv_weight * total_variation(images)
        return images, terms

    if compile_step:
        losses = torch.compile(losses, mode=compile_step if isinstance(compile_step, str) else None)
    with torch.no_grad():
        shape = param().shape
    early_stop = EarlyStop(settings.patience, settings.min_improvement)
    names = ["clip"] * use_clip + keys + ["tv"] * (settings.tv_weight > 0)
    per_step = settings.guides_per_step or len(seg_terms)
    skipped = torch.tensor(math.nan, device=device)  # the record of a guide a step did not score
    history: list[dict] = []
    pending: list[tuple[int, torch.Tensor]] = []
    bar = tqdm(range(settings.steps), desc="stage 1", disable=not progress, leave=False)
    with torch.enable_grad():
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            draws = None
            if use_clip:
                count = shape[0] * settings.num_crops
                draws = CropDraws.sample(count, clip.input_size, settings.crop_noise, generator, device)
            seg_noise = views = None
            if settings.robust_views and seg_terms:
                views = ViewDraws.sample(shape[0] * settings.seg_views, shape[-2:], settings, generator, device)
            elif settings.seg_noise > 0 and seg_terms:
                seg_noise = torch.randn(shape, generator=generator).to(device)
            chosen = tuple(range(len(seg_terms)))
            if per_step < len(seg_terms):
                chosen = tuple(sorted(torch.randperm(len(seg_terms), generator=generator)[:per_step].tolist()))
            images, terms = losses(draws, views, seg_noise, chosen)
            loss = sum(terms.values())
            loss.backward()
            optimizer.step()
            # one new tensor per step: outputs of a CUDA-graph-compiled loss are overwritten by the next replay
            row = [terms.get(name, skipped) for name in names]
            pending.append((step, torch.stack([loss, *row]).detach().float()))
            if callback is None and (step + 1) % SYNC_EVERY and step + 1 < settings.steps:
                continue
            stop = False
            for record in _read_back(pending, ["loss", *names]):
                history.append(record)
                stop = stop or early_stop.should_stop(record["loss"])
            pending.clear()
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
            if callback is not None:
                callback({**history[-1], "images": images.detach()})
            if stop:
                logger.info(
                    "stage 1: the loss stopped improving; stopping after %d of %d steps", step + 1, settings.steps
                )
                break
    with torch.no_grad():
        final = param().float().clamp(0, 1)
    if history:
        logger.info("stage 1: %d steps, loss %.4f -> %.4f", len(history), history[0]["loss"], history[-1]["loss"])
    return final, history


SYNC_EVERY = 10
"""Steps between reads of the losses back to the host when no callback asks for every step."""


def _read_back(pending: list[tuple[int, torch.Tensor]], names: list[str]) -> list[dict]:
    """One device-to-host copy for all pending steps' losses (None for a guide the step did not use); raises at the
    first non-finite loss."""
    values = torch.stack([row for _, row in pending]).tolist()
    records = []
    for (step, _), row in zip(pending, values, strict=True):
        if not math.isfinite(row[0]):
            raise TCIGError(f"the stage-1 loss became {row[0]} at step {step}; lower --lr or the loss weights")
        record = {"step": step, **{n: None if math.isnan(v) else v for n, v in zip(names, row, strict=True)}}
        records.append(record)
    return records
