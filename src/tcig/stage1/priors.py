"""Stage-1 starting images that need no training: the layout painted from the refiner's own images.

For each class name the refiner draws a few images of that name (``exemplar_prompt``, e.g. "a photo of a boat"),
and the guiding segmenters find the class in them. The class's *colour* is the mean of those pixels and its
*texture* the pixels themselves. This works for any vocabulary and any refiner (the scenes models as well as
SD 1.5), since the colours come from the generator that stage 2 will use, not from a hand-made palette.

Starting points (``Stage1Settings.init``):

- ``noise``: the smooth random image of the parameterization (the paper's start);
- ``colours``: every region in its class's colour; where the refiner's own image for the prompt shows the class,
  that image's colour wins, so a "sunset" prompt gives an orange sky;
- ``collage``: every region filled with texture of its class from the exemplar images;
- ``prompt``: the refiner's own image for the prompt, ignoring the layout (stage 1 then moves it there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from tcig.layout import IGNORE, Layout
from tcig.layout.vocabularies import match_labels
from tcig.models.denoising import StepCallback
from tcig.models.refiners import Refiner
from tcig.models.segmenters import Segmenter
from tcig.settings import INITS, Init, Stage2Settings

logger = logging.getLogger(__name__)

MIN_PIXELS = 8
"""Fewest pixels of a class in an image for its colour to be taken from there."""


@dataclass
class Exemplar:
    """The refiner's images of one class name ``[N,3,H,W]``, the pixels where a guide sees the class ``[N,H,W]``,
    and their mean colour ``[3]`` (of the whole images when no guide finds the class)."""

    images: torch.Tensor
    mask: torch.Tensor
    colour: torch.Tensor


def class_masks(segmenters: list[Segmenter], images: torch.Tensor, names: list[str]) -> torch.Tensor:
    """``[B,K,H,W]`` booleans: where the first segmenter that knows class name k predicts it on ``images``."""
    b, _, h, w = images.shape
    masks = torch.zeros(b, len(names), h, w, dtype=torch.bool)
    known = torch.zeros(len(names), dtype=torch.bool)
    for seg in segmenters:
        if seg.labels is None or known.all():
            continue
        mapping = match_labels(names, seg.labels)
        with torch.no_grad():
            logits = seg(images.to(seg.device)).float()
            pred = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).argmax(1).cpu()
        for k, label in enumerate(mapping):
            if label is not None and not known[k]:
                masks[:, k] = pred == label
                known[k] = True
    return masks


class ExemplarBank:
    """Exemplars of class names, drawn once by ``refiner`` and kept for later calls.

    Args:
        refiner: the stage-2 model; its ``text_to_image`` draws the exemplars.
        segmenters: guides that find each class in the exemplars (the first that knows a name is used).
        prompt: template with ``{name}``, e.g. ``"a photo of a {name}"``.
        size: (height, width) of the exemplars.
        settings: sampling settings (steps, guidance) of ``text_to_image``.
        count: images per class name.
        seed: their seed, fixed so that a class always gets the same exemplars.
    """

    def __init__(
        self,
        refiner: Refiner,
        segmenters: list[Segmenter],
        prompt: str,
        size: tuple[int, int],
        settings: Stage2Settings,
        count: int = 2,
        seed: int = 0,
    ) -> None:
        self.refiner, self.segmenters, self.prompt = refiner, segmenters, prompt
        self.size, self.settings, self.count, self.seed = size, settings, count, seed
        self._cache: dict[str, Exemplar] = {}

    def get(self, names: list[str], callback: StepCallback | None = None) -> list[Exemplar]:
        """The exemplars of ``names``, drawing the missing ones (``callback(step, steps)`` after each step)."""
        missing = [n for n in dict.fromkeys(names) if n not in self._cache]
        if missing:
            prompts = [self.prompt.format(name=n) for n in missing for _ in range(self.count)]
            generator = torch.Generator().manual_seed(self.seed)
            images = self.refiner.text_to_image(
                prompts, *self.size, self.settings, generator, progress=False, callback=callback
            )
            images = images.float().cpu()
            masks = class_masks(self.segmenters, images, missing)
            for k, name in enumerate(missing):
                rows = slice(k * self.count, (k + 1) * self.count)
                mask = masks[rows, k]
                self._cache[name] = Exemplar(images[rows], mask, _mean_colour(images[rows], mask))
                if mask.sum() < MIN_PIXELS:
                    logger.info("no guide finds '%s' in the refiner's images of it; using their mean colour", name)
        return [self._cache[n] for n in names]


def _mean_colour(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean RGB over ``mask``, or over the whole images when the mask has too few pixels."""
    if mask.sum() < MIN_PIXELS:
        return images.mean(dim=(0, 2, 3))
    return images.permute(1, 0, 2, 3)[:, mask].mean(dim=1)


def paint_colours(layout: Layout, colours: torch.Tensor) -> torch.Tensor:
    """The layout ``[H,W]`` as an image ``[3,H,W]``: class k in ``colours[k]``; don't-care pixels mid-grey."""
    table = torch.cat([colours.float(), torch.full((1, 3), 0.5)])
    index = layout.label_map.clone()
    index[index == IGNORE] = len(colours)
    return table[index].permute(2, 0, 1)


def paint_collage(layout: Layout, exemplars: dict[int, Exemplar], generator: torch.Generator | None) -> torch.Tensor:
    """Each region filled with pixels of its class from its exemplars: the exemplar image whose class pixels cover
    the region best is laid in place, and region pixels where it does not show the class take pixels of the class
    drawn at random from the exemplars (a texture of the right colours), then a 3×3 box blur smooths the seams."""
    h, w = layout.size
    out = paint_colours(layout, exemplar_colours(layout, exemplars))
    for k, exemplar in exemplars.items():
        region = layout.label_map == k
        images = _resize(exemplar.images, (h, w))
        masks = F.interpolate(exemplar.mask[:, None].float(), size=(h, w), mode="nearest")[:, 0] > 0.5
        overlap = (masks & region).flatten(1).sum(1)
        best = int(overlap.argmax())
        covered = masks[best] & region
        out[:, covered] = images[best][:, covered]
        rest = region & ~covered
        pool = images.permute(1, 0, 2, 3)[:, masks] if masks.sum() >= MIN_PIXELS else None
        if rest.any() and pool is not None:
            pick = torch.randint(pool.shape[1], (int(rest.sum()),), generator=generator)
            out[:, rest] = pool[:, pick]
    smooth = F.avg_pool2d(F.pad(out[None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0]
    return torch.where(layout.label_map[None] == IGNORE, out, smooth)


def exemplar_colours(layout: Layout, exemplars: dict[int, Exemplar]) -> torch.Tensor:
    """``[K,3]`` colours of the layout's classes (grey for a class with no exemplar)."""
    colours = torch.full((len(layout.classes), 3), 0.5)
    for k, exemplar in exemplars.items():
        colours[k] = exemplar.colour
    return colours


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if images.shape[-2:] == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def initial_images(
    init: Init,
    layout: Layout,
    prompt: str,
    num_images: int,
    *,
    bank: ExemplarBank | None,
    refiner: Refiner | None,
    segmenters: list[Segmenter],
    settings: Stage2Settings,
    generator: torch.Generator | None,
    callback: StepCallback | None = None,
) -> torch.Tensor | None:
    """Starting images ``[B,3,H,W]`` in [0,1] at the layout's size for ``init`` (None for ``noise``).

    ``colours`` and ``prompt`` draw the refiner's image for the prompt with ``settings`` and ``generator``
    (``colours`` only to read the colours of its classes); ``callback(step, steps)`` follows every sampling step."""
    if init == "noise":
        return None
    if refiner is None or bank is None:
        raise ValueError(f"init '{init}' needs a refiner to draw from")
    size = layout.size
    present = layout.present_classes()
    exemplars = {}
    if init in ("colours", "collage"):
        exemplars = dict(zip(present, bank.get([layout.classes[k] for k in present], callback), strict=True))
    if init in ("colours", "prompt"):
        drawn = (
            refiner.text_to_image([prompt] * num_images, *size, settings, generator, progress=False, callback=callback)
            .float()
            .cpu()
        )
        if init == "prompt":
            return drawn
        colours = exemplar_colours(layout, exemplars)
        masks = class_masks(segmenters, drawn, layout.classes)
        painted = []
        for image, mask in zip(drawn, masks, strict=True):
            own = colours.clone()
            for k in present:
                if mask[k].sum() >= MIN_PIXELS:
                    own[k] = image[:, mask[k]].mean(dim=1)
            painted.append(paint_colours(layout, own))
        return torch.stack(painted)
    if init == "collage":
        return torch.stack([paint_collage(layout, exemplars, generator) for _ in range(num_images)])
    raise ValueError(f"unknown init '{init}'; use one of {', '.join(INITS)}")


def exemplar_settings(settings: Stage2Settings) -> Stage2Settings:
    """Text-to-image settings for exemplars and prompt images: the stage-2 settings at full strength."""
    return replace(settings, strength=1.0)
