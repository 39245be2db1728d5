"""A layout from a photo: the guides' merged prediction, cleaned of specks, as a :class:`~tcig.layout.Layout`.

What a segmentation preprocessor does for ControlNet users, with the segmenters tcig already loads: each guide's
per-pixel class probabilities are averaged over the guides that know the class (names matched across their label
sets as layouts are matched, so ``ship`` and ``boat`` are one class), the arg-max is taken, and connected regions
under ``min_region`` of the image are given the class that surrounds them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tcig.errors import ConfigError
from tcig.layout import IGNORE, Layout
from tcig.layout.vocabularies import BACKGROUND_NAMES, match_labels, normalize_name
from tcig.models.segmenters import Segmenter

logger = logging.getLogger(__name__)

DEFAULT_MIN_REGION = 0.002
"""Connected regions under this share of the image are merged into their surroundings (0.2 %: 8 px at 64², 524 px at
512²)."""


@torch.no_grad()
def class_probabilities(
    segmenters: Sequence[tuple[Segmenter, float]], images: torch.Tensor, classes: Sequence[str] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """``[B,K,H,W]`` probabilities of ``K`` class names on ``images[B,3,H,W]`` in [0,1], and the names.

    Args:
        segmenters: ``(segmenter, weight)``; weight 0 leaves one out.
        images: the photos.
        classes: the names to choose from (an open-vocabulary segmenter needs them); default: every label of the
            segmenters with a fixed label set, less their ``background``.
    """
    guides = [(seg, w) for seg, w in segmenters if w > 0 and (seg.labels is not None or classes)]
    if not guides:
        raise ConfigError("no segmenter can name the photo's regions: an open-vocabulary one needs --classes")
    names = list(classes) if classes else _union_of_labels([seg.labels for seg, _ in guides])
    h, w = images.shape[-2:]
    total = images.new_zeros(images.shape[0], len(names), h, w, dtype=torch.float32)
    weights = torch.zeros(len(names))
    for seg, weight in guides:
        logits = seg(images.to(seg.device), list(names) if seg.labels is None else None).float()
        probs = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).softmax(1).cpu()
        mapping = list(range(len(names))) if seg.labels is None else match_labels(names, seg.labels)
        for k, label in enumerate(mapping):
            if label is not None:
                total[:, k] += weight * probs[:, label]
                weights[k] += weight
    known = weights > 0
    if not known.any():
        raise ConfigError(f"no guide knows any of the classes {', '.join(names)}")
    for name in (n for n, k in zip(names, known.tolist(), strict=True) if not k):
        logger.warning("no guide knows the class '%s'; it is left out", name)
    total[:, known] /= weights[known][:, None, None]
    return total[:, known], [n for n, k in zip(names, known.tolist(), strict=True) if k]


def _union_of_labels(label_sets: Sequence[Sequence[str]]) -> list[str]:
    """Every label once, in the guides' order; a label that matches one already taken (a synonym) is not added."""
    names: list[str] = []
    for labels in label_sets:
        taken = match_labels(labels, names) if names else [None] * len(labels)
        names += [lab for lab, t in zip(labels, taken, strict=True) if t is None and not _is_background(lab)]
    return names


def _is_background(label: str) -> bool:
    return normalize_name(label) in BACKGROUND_NAMES


def merge_small_regions(labels: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """``labels[H,W]`` with every 4-connected region of fewer than ``min_pixels`` pixels given the class most common
    on its border; returns the cleaned map and how many regions were merged."""
    from scipy import ndimage  # here: the command line imports this module for its defaults

    labels = labels.copy()
    merged = 0
    for _ in range(4):  # a speck inside a speck is settled on the next pass
        small = np.zeros(labels.shape, dtype=bool)
        regions = []
        for value in np.unique(labels):
            parts, count = ndimage.label(labels == value)
            if count == 0:
                continue
            sizes = np.bincount(parts.ravel())
            for part in np.flatnonzero(sizes < min_pixels):
                if part == 0:
                    continue
                mask = parts == part
                small |= mask
                regions.append(mask)
        if not regions or small.all():
            break
        for mask in regions:
            ring = ndimage.binary_dilation(mask) & ~mask & ~small
            if ring.any():
                labels[mask] = np.bincount(labels[ring]).argmax()
                merged += 1
    return labels, merged


def check_min_region(min_region: float) -> None:
    if not 0 <= min_region < 1:
        raise ConfigError(f"--min-region must be a share of the image in [0, 1), got {min_region:g}")


def photo_at_long_side(photo: torch.Tensor, long_side: int) -> torch.Tensor:
    """``photo[B,3,H,W]`` resized (antialiased) so that its long side is ``long_side``, sides multiples of 8."""
    h, w = photo.shape[-2:]
    scale = long_side / max(h, w)
    size = (max(8, round(h * scale / 8) * 8), max(8, round(w * scale / 8) * 8))
    return F.interpolate(photo, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def layout_from_photo(
    segmenters: Sequence[tuple[Segmenter, float]],
    photo: torch.Tensor,
    *,
    classes: Sequence[str] | None = None,
    min_region: float = DEFAULT_MIN_REGION,
) -> Layout:
    """The layout of ``photo[1,3,H,W]`` (in [0,1]) at its own size, every pixel labelled.

    Args:
        segmenters: the guides and their weights (see :func:`class_probabilities`).
        photo: one image.
        classes: the class names to choose from (default: every class the guides know).
        min_region: regions under this share of the image are merged into their surroundings (0 keeps all).
    """
    check_min_region(min_region)
    probs, names = class_probabilities(segmenters, photo, classes)
    labels = probs[0].argmax(0).numpy()
    min_pixels = int(np.ceil(min_region * labels.size))
    if min_pixels > 1:
        labels, merged = merge_small_regions(labels, min_pixels)
        if merged:
            logger.info("merged %d region(s) under %d px (--min-region %g) into their surroundings", merged,
                        min_pixels, min_region)  # fmt: skip
    present = np.unique(labels)
    compact = np.searchsorted(present, labels)
    return Layout(torch.from_numpy(compact), [names[i] for i in present])


def unchanged_mask(
    segmenters: Sequence[tuple[Segmenter, float]], photos: torch.Tensor, layout: Layout, feather: float = 0.03
) -> torch.Tensor:
    """``[B,1,H,W]`` in [0,1]: 1 where the guides already see in ``photos[B,3,H,W]`` the class ``layout`` asks
    for (or the layout does not care), shrunk and feathered by ``feather`` of the long side so that the regions
    that change get a margin to blend in. ``layout`` must be at the photos' size."""
    names = None if all(seg.labels is not None for seg, _ in segmenters) else list(layout.classes)
    probs, found = class_probabilities(segmenters, photos, names)
    predicted = probs.argmax(1)  # [B,H,W] into found
    lookup = torch.tensor([IGNORE if m is None else m for m in match_labels(layout.classes, found)] + [IGNORE])
    target = lookup[layout.label_map]
    keep = ((predicted == target) | (layout.label_map == IGNORE)).float()[:, None]
    radius = max(1, round(feather * max(layout.size)))
    keep = -F.max_pool2d(-keep, 2 * radius + 1, stride=1, padding=radius)  # erode
    for _ in range(2):  # two box blurs: a soft edge about a radius wide
        keep = F.avg_pool2d(F.pad(keep, (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)
    return keep.clamp(0, 1)
