"""The painter's classes and colours, and the conversions between a painted canvas and a :class:`Layout`.

A painting is an RGBA image: a class is painted in its colour, "don't care" is transparent. The server reads
every painting through the same colour snapping as a colour PNG layout (:func:`tcig.layout.palettes.snap_colours`),
so a blended or slightly shifted colour becomes the class it was painted as, never a class of its own.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from tcig.errors import LayoutError
from tcig.io.pictures import layout_colours, palette
from tcig.layout import IGNORE, Layout
from tcig.layout.convert import class_areas
from tcig.layout.palettes import DEFAULT_TOLERANCE, colour_code, snap_colours
from tcig.layout.vocabularies import match_labels, nearest_names

MIN_SEPARATION = 48.0
"""RGB distance the painter keeps between any two class colours where the vocabulary allows it."""

MIN_STAGE1_AREA = 16
"""A painted region smaller than this many pixels at the stage-1 resolution (4 x 4) gets a warning."""

OPAQUE = 128
"""Pixels with a lower alpha are unpainted (don't care)."""


def merged_labels(label_lists: Sequence[Sequence[str] | None]) -> list[str]:
    """The guiding segmenters' labels as one list: each segmenter's labels in order, a label that the guides would
    match to one already listed ("sky-other" after "sky") left out. Open-vocabulary guides (None) add none."""
    merged: list[str] = []
    for labels in label_lists:
        if labels is None:
            continue
        found = match_labels(list(labels), merged) if merged else [None] * len(labels)
        merged += [label for label, match in zip(labels, found, strict=True) if match is None]
    return merged


def paint_colours(
    classes: Sequence[str], natural: Mapping[str, Sequence[int]] | None = None, taken: np.ndarray | None = None
) -> np.ndarray:
    """``uint8 [K, 3]``: one fixed colour per class, kept at least :data:`MIN_SEPARATION` from every other and from
    the colours already ``taken`` (``[N, 3]``, classes painted before these).

    A class keeps its natural colour (the model set's, else its dataset colour; see
    :func:`tcig.io.pictures.layout_colours`) when that is far enough from the colours taken before it; otherwise it
    takes the well-separated colour nearest to it (from a fixed grid and palette), or, in a vocabulary too large for
    the separation, the candidate farthest from those taken."""
    preferred = layout_colours(classes, natural).astype(np.float64)
    levels = np.rint(np.linspace(0, 255, 9))  # whole numbers: rounding at the end must not bring colours closer
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    spare = np.concatenate([grid, palette(max(256, 2 * len(classes))).astype(np.float64)])
    before = 0 if taken is None else len(taken)
    taken = np.zeros((0, 3)) if taken is None else taken.astype(np.float64)
    for colour in preferred:
        if len(taken):
            candidates = np.concatenate([colour[None], spare])
            gaps = np.linalg.norm(candidates[:, None] - taken[None], axis=-1).min(1)
            far = np.flatnonzero(gaps >= MIN_SEPARATION)
            if len(far):  # the separated colour nearest to the natural one
                colour = candidates[far[np.linalg.norm(candidates[far] - colour, axis=-1).argmin()]]
            else:
                colour = candidates[int(gaps.argmax())]
        taken = np.concatenate([taken, colour[None]])
    return taken[before:].astype(np.uint8)


def snap_tolerance(colours: np.ndarray) -> float:
    """The snapping tolerance for these colours: the layout readers' default, or less than half the closest pair's
    distance, so that no painted colour can snap to two classes."""
    if len(colours) < 2:
        return DEFAULT_TOLERANCE
    c = colours.astype(np.float64)
    gaps = np.linalg.norm(c[:, None] - c[None], axis=-1)
    closest = gaps[~np.eye(len(c), dtype=bool)].min()
    return float(min(DEFAULT_TOLERANCE, max(0.0, closest / 2 - 1)))


@dataclass(frozen=True)
class Painter:
    """The classes a person can paint, with their colours (``uint8 [K, 3]``), and whether new class names may be
    added (some guide is open-vocabulary)."""

    classes: tuple[str, ...]
    colours: np.ndarray
    open_vocabulary: bool = False

    @classmethod
    def create(
        cls, classes: Sequence[str], natural: Mapping[str, Sequence[int]] | None = None, open_vocabulary=False
    ) -> Painter:
        return cls(tuple(classes), paint_colours(list(classes), natural), open_vocabulary)

    def with_class(self, name: str, natural: Mapping[str, Sequence[int]] | None = None) -> Painter:
        """A painter with ``name`` added (open-vocabulary guides only); the colours already given stay."""
        if not self.open_vocabulary:
            raise LayoutError("the guides of this model set have a fixed vocabulary; pick one of its classes")
        name = " ".join(str(name).split())
        if not name or len(name) > 64:
            raise LayoutError("a class name needs 1 to 64 characters")
        if name in self.classes:
            return self
        if len(self.classes) >= 254:
            raise LayoutError("the painter holds at most 254 classes")
        colour = paint_colours([name], natural, taken=self.colours)
        return Painter((*self.classes, name), np.concatenate([self.colours, colour]), True)

    def describe(self) -> list[dict]:
        return [
            {"name": name, "colour": "#{:02x}{:02x}{:02x}".format(*colour)}
            for name, colour in zip(self.classes, self.colours.tolist(), strict=True)
        ]

    def layout(self, rgba: np.ndarray, region_texts: Mapping[str, str] | None = None) -> Layout:
        """The layout of a painting (``uint8 [H, W, 4]``): its colours snapped to the class colours, transparent
        pixels don't care; the layout lists the painted classes only, in the painter's order.

        Args:
            rgba: the painted canvas.
            region_texts: optional free text per class name (queries of open-vocabulary guides).
        """
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise LayoutError("a painting must be an RGBA image")
        rgb = rgba[..., :3].astype(np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        codes[rgba[..., 3] < OPAQUE] = -1
        known = [colour_code(tuple(c)) for c in self.colours.tolist()]
        snapped = snap_colours(codes, known, snap_tolerance(self.colours), source="the painting").codes
        table = {code: i for i, code in enumerate(known)}
        uniques, inverse = np.unique(snapped, return_inverse=True)
        ids = np.array([table.get(int(u), IGNORE) for u in uniques], dtype=np.int64)[inverse.reshape(codes.shape)]
        present = sorted(set(np.unique(ids).tolist()) - {IGNORE})
        remap = np.full(len(self.classes) + 1, IGNORE, dtype=np.int64)
        remap[present] = np.arange(len(present))
        label = remap[np.where(ids == IGNORE, len(self.classes), ids)]
        classes = [self.classes[i] for i in present]
        texts = {}
        for name, text in (region_texts or {}).items():
            text = " ".join(str(text).split())
            if text and name in classes:
                texts[classes.index(name)] = text
        return Layout(torch.from_numpy(label), classes, texts)

    def painting(self, layout: Layout, height: int, width: int) -> tuple[np.ndarray, Painter]:
        """``(rgba [height, width, 4], painter)``: ``layout`` resized (nearest) and painted in the class colours.

        A class the painter lacks is added (the painter that comes back has it) when the guides are
        open-vocabulary, and is an error otherwise."""
        found = match_labels(layout.classes, list(self.classes))
        unknown = [name for name, index in zip(layout.classes, found, strict=True) if index is None]
        if unknown and not self.open_vocabulary:
            near = nearest_names(unknown[0], list(self.classes))
            hint = f" (nearest: {', '.join(near)})" if near else ""
            raise LayoutError(
                f"class '{unknown[0]}' of the layout is unknown to the guides{hint}; rename it or load another layout"
            )
        painter = self
        for name in unknown:
            painter = painter.with_class(name)
        found = match_labels(layout.classes, list(painter.classes))
        table = np.concatenate([painter.colours[[int(i) for i in found]], np.zeros((1, 3), np.uint8)])
        label = layout.resized(height, width, "stretch").label_map.numpy()
        index = np.where(label == IGNORE, len(found), label)
        rgba = np.concatenate([table[index], np.where(label == IGNORE, 0, 255)[..., None]], axis=-1)
        return rgba.astype(np.uint8), painter


def region_report(layout: Layout, stage1_shape: tuple[int, int]) -> dict:
    """The area of each painted class and a warning for each region (connected, 8-neighbour) too small to be
    controlled at the stage-1 resolution ``stage1_shape``."""
    from scipy import ndimage

    h, w = layout.size
    scale = stage1_shape[0] * stage1_shape[1] / max(1, h * w)
    areas = [{"class": name, "pixels": n, "share": share} for name, n, share in class_areas(layout)]
    warnings = []
    label = layout.label_map.numpy()
    for k, name in enumerate(layout.classes):
        regions, count = ndimage.label(label == k, structure=np.ones((3, 3)))
        sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
        small = sizes[sizes * scale < MIN_STAGE1_AREA]
        if len(small):
            least = int(small.min())
            warnings.append(
                f"{len(small)} '{name}' region(s) too small for stage 1 (the smallest, {least} px, is "
                f"{least * scale:.0f} px at {stage1_shape[1]}x{stage1_shape[0]}; {MIN_STAGE1_AREA} needed): paint "
                "them larger or they may vanish"
            )
    return {"areas": areas, "warnings": warnings}


def decode_png(data: bytes, max_pixels: int, what: str = "painting") -> np.ndarray:
    """``uint8 [H, W, 4]`` from PNG bytes, refusing more than ``max_pixels`` before decoding."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.format != "PNG":
            raise LayoutError(f"the {what} must be a PNG image")
        if image.width * image.height > max_pixels:
            raise LayoutError(
                f"the {what} is {image.width}x{image.height}, over the {max_pixels:,}-pixel limit; paint a smaller one"
            )
        return np.asarray(image.convert("RGBA"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise LayoutError(f"the {what} is not a readable PNG image ({err})"[:300]) from err


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
