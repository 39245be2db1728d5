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

import hashlib
import logging
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from tcig.io.cache import TensorCache, cache_key
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


class StartDrawer:
    """The refiner's images that stage 1 starts from, drawn in one batch: ``count`` images of each class name (its
    ``template``, with noise fixed per name so that a class always gets the same images) and the images of the
    prompt (noise from the caller's generator). Exemplars are kept in memory for the process; with a ``cache``,
    everything drawn is also kept on disk between processes, keyed by the refiner's :meth:`fingerprint
    <tcig.models.refiners.SamplingRefiner.fingerprint>`, the text, the size, the noise levels and guidance, and the
    noise's origin (the per-name seed, or the caller's generator state, which moves on as if the images had been
    drawn, so a cached run gives the images an uncached one would).

    Args:
        refiner: the stage-2 model; its ``text_to_image`` draws the images.
        segmenters: guides that find each class in the exemplars (the first that knows a name is used).
        template: the exemplar prompt with ``{name}``, e.g. ``"a photo of a {name}"``.
        count: images per class name.
        seed: the exemplars' seed.
        cache: the on-disk cache (None: draw in every new process).
    """

    def __init__(
        self,
        refiner: Refiner,
        segmenters: list[Segmenter],
        template: str,
        count: int = 2,
        seed: int = 0,
        cache: TensorCache | None = None,
    ) -> None:
        self.refiner, self.segmenters, self.template = refiner, segmenters, template
        self.count, self.seed, self.cache = count, seed, cache
        self._exemplars: dict[str, Exemplar] = {}

    def draw(
        self,
        names: list[str],
        prompt: str | None,
        num_images: int,
        size: tuple[int, int],
        settings: Stage2Settings,
        generator: torch.Generator | None = None,
        progress: bool = False,
        callback: StepCallback | None = None,
    ) -> tuple[list[Exemplar], torch.Tensor | None]:
        """The exemplars of ``names`` and, with a ``prompt``, ``num_images`` images of it ``[N,3,*size]`` (None
        without), at ``size`` with the text-to-image ``settings``; what is neither in memory nor on disk is drawn in
        one batch (``callback(step, steps)`` after each sampling step; a bar with ``progress``)."""
        base = self._base_key(size, settings)
        keys = {n: cache_key("class", base, self.template.format(name=n), self.seed, self.count) for n in names}
        missing = [n for n in dict.fromkeys(names) if keys[n] not in self._exemplars]
        loaded = {n: self._load(keys[n]) for n in missing}
        to_draw = [n for n in missing if loaded[n] is None]
        prompt_key = prompt_images = None
        if prompt is not None:
            state = generator.get_state() if generator is not None else None
            prompt_key = cache_key("prompt", base, prompt, num_images, None if state is None else _digest(state))
            entry = self._load(prompt_key) if state is not None else None
            if entry is not None:
                prompt_images = entry["images"]
                generator.set_state(entry["state"])
        texts, generators = [], []
        for name in to_draw:
            texts += [self.template.format(name=name)] * self.count
            generators += [self._name_generator(name)] * self.count
        if prompt is not None and prompt_images is None:
            texts += [prompt] * num_images
            generators += [generator or torch.Generator()] * num_images
        if texts:
            drawn = self.refiner.text_to_image(texts, *size, settings, generators, progress, callback, "start images")
            drawn = drawn.float().cpu()
            for k, name in enumerate(to_draw):
                loaded[name] = {"images": drawn[k * self.count : (k + 1) * self.count]}
                self._store(keys[name], loaded[name])
            if prompt is not None and prompt_images is None:
                prompt_images = drawn[len(to_draw) * self.count :]
                if generator is not None:
                    self._store(prompt_key, {"images": prompt_images, "state": generator.get_state()})
        if missing:
            images = torch.cat([loaded[n]["images"] for n in missing])
            masks = class_masks(self.segmenters, images, missing)
            for k, name in enumerate(missing):
                rows = slice(k * self.count, (k + 1) * self.count)
                mask = masks[rows, k]
                self._exemplars[keys[name]] = Exemplar(images[rows], mask, _mean_colour(images[rows], mask))
                if mask.sum() < MIN_PIXELS:
                    logger.info("no guide finds '%s' in the refiner's images of it; using their mean colour", name)
        return [self._exemplars[keys[n]] for n in names], prompt_images

    def _base_key(self, size: tuple[int, int], settings: Stage2Settings) -> list:
        """What every image depends on besides its text and noise."""
        levels = self.refiner.levels(settings.at_strength(1.0), *size)
        return [
            self.refiner.fingerprint(),
            list(size),
            [(round(v.alpha, 7), round(v.sigma, 7)) for v in levels],
            self.refiner.guidance_scale(settings),
            settings.negative_prompt,
        ]

    def _name_generator(self, name: str) -> torch.Generator:
        return torch.Generator().manual_seed(int(cache_key(self.seed, self.template.format(name=name))[:15], 16))

    def _load(self, key: str) -> dict[str, torch.Tensor] | None:
        return self.cache.get(key) if self.cache is not None else None

    def _store(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        if self.cache is not None:
            self.cache.put(key, tensors)


def _digest(state: torch.Tensor) -> str:
    return hashlib.sha256(state.numpy().tobytes()).hexdigest()


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
    drawer: StartDrawer,
    settings: Stage2Settings,
    generator: torch.Generator | None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> torch.Tensor | None:
    """Starting images ``[B,3,H,W]`` in [0,1] at the layout's size for ``init`` (None for ``noise``), from the
    ``drawer``'s images drawn at that size with the text-to-image ``settings``.

    ``colours`` and ``prompt`` use the refiner's images of the prompt, drawn from ``generator`` (``colours`` only to
    read the colours of its classes); ``callback(step, steps)`` follows every sampling step."""
    if init == "noise":
        return None
    if init not in INITS:
        raise ValueError(f"unknown init '{init}'; use one of {', '.join(INITS)}")
    present = layout.present_classes()
    names = [layout.classes[k] for k in present] if init != "prompt" else []
    with_prompt = prompt if init in ("colours", "prompt") else None
    found, drawn = drawer.draw(
        names, with_prompt, num_images, layout.size, settings, generator, progress=progress, callback=callback
    )
    if init == "prompt":
        return drawn
    exemplars = dict(zip(present, found, strict=True))
    if init == "collage":
        return torch.stack([paint_collage(layout, exemplars, generator) for _ in range(num_images)])
    colours = exemplar_colours(layout, exemplars)
    masks = class_masks(drawer.segmenters, drawn, layout.classes)
    painted = []
    for image, mask in zip(drawn, masks, strict=True):
        own = colours.clone()
        for k in present:
            if mask[k].sum() >= MIN_PIXELS:
                own[k] = image[:, mask[k]].mean(dim=1)
        painted.append(paint_colours(layout, own))
    return torch.stack(painted)


def start_settings(stage2: Stage2Settings, steps: int) -> Stage2Settings:
    """Text-to-image settings of the start images: stage 2's guidance and negative prompt, ``steps`` steps."""
    return replace(stage2, strength=1.0, noise_level=None, steps=steps, cycles=0)
