"""The internal layout form: a label map with "don't care" pixels, class names and optional region text."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tcig.errors import ConfigError, LayoutError
from tcig.settings import Fit

IGNORE = -1
"""Label-map value of a "don't care" pixel: no loss and no metric looks at it."""


@dataclass
class Layout:
    """A semantic layout.

    ``label_map`` is a ``LongTensor[H, W]`` whose values index ``classes`` (``IGNORE`` = don't care).
    ``region_texts`` maps a class index to a free-text description of its region (used as the query of
    open-vocabulary segmenters and by regional baselines). ``prompt`` is the prompt a layout file may carry.
    """

    label_map: torch.Tensor
    classes: list[str]
    region_texts: dict[int, str] = field(default_factory=dict)
    prompt: str | None = None

    def __post_init__(self) -> None:
        if self.label_map.ndim != 2:
            raise LayoutError(f"a label map must be 2-D (H, W), got shape {tuple(self.label_map.shape)}")
        self.label_map = self.label_map.long()
        if self.label_map.numel() and (self.label_map.max() >= len(self.classes) or self.label_map.min() < IGNORE):
            raise LayoutError(f"label map values must lie in -1..{len(self.classes) - 1} (one per class name)")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return tuple(self.label_map.shape)  # type: ignore[return-value]

    def present_classes(self) -> list[int]:
        """Indices of the classes that label at least one pixel, in ascending order."""
        counts = torch.bincount(self.label_map[self.label_map != IGNORE], minlength=len(self.classes))
        return torch.nonzero(counts).flatten().tolist()

    def check_labelled(self) -> None:
        """Raise if no pixel is labelled: there would be nothing to control."""
        if not self.present_classes():
            raise LayoutError(
                "the layout has no labelled pixel: every pixel is 'don't care'; label at least one region"
            )

    def resized(self, height: int, width: int, fit: Fit | None = None, rounding: int = 8) -> Layout:
        """Nearest-neighbour resize to (height, width).

        An aspect-ratio change must be chosen explicitly with ``fit``: ``stretch`` distorts, ``crop`` keeps the
        centre, ``pad`` adds don't-care borders. Without ``fit`` a change of aspect ratio beyond the rounding of each
        side to a multiple of ``rounding`` (at most half of it, and under 15 %) is an error.
        """
        h, w = self.size
        if (h, w) == (height, width):
            return self
        same_aspect = _within_rounding(h, w, height, width, rounding)
        if fit is None and not same_aspect:
            raise ConfigError(
                f"the layout is {w}x{h} but {width}x{height} was asked for, a different aspect ratio; "
                "choose how to fit it with --fit stretch, crop or pad"
            )
        label = self.label_map
        if fit == "crop" and not same_aspect:
            scale = max(height / h, width / w)
            label = _nearest(label, max(height, round(h * scale)), max(width, round(w * scale)))
            top, left = (label.shape[0] - height) // 2, (label.shape[1] - width) // 2
            label = label[top : top + height, left : left + width]
        elif fit == "pad" and not same_aspect:
            scale = min(height / h, width / w)
            inner = _nearest(label, min(height, round(h * scale)), min(width, round(w * scale)))
            label = torch.full((height, width), IGNORE, dtype=torch.long)
            top, left = (height - inner.shape[0]) // 2, (width - inner.shape[1]) // 2
            label[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
        else:
            label = _nearest(label, height, width)
        return Layout(label.contiguous(), list(self.classes), dict(self.region_texts), self.prompt)

    def one_hot(self) -> torch.Tensor:
        """``FloatTensor[len(classes), H, W]``; don't-care pixels are all zeros."""
        valid = self.label_map != IGNORE
        out = F.one_hot(self.label_map.clamp(min=0), len(self.classes)).permute(2, 0, 1).float()
        return out * valid


def _within_rounding(h: int, w: int, height: int, width: int, rounding: int = 8) -> bool:
    """Whether (height, width) is the (h, w) shape scaled, up to rounding each side to a multiple of ``rounding``."""
    if abs(h * width - w * height) <= max(h, w):  # equal up to one pixel of rounding
        return True
    off_h, off_w, most = abs(height - width * h / w), abs(width - height * w / h), rounding / 2 + 0.5
    return (off_h <= most and off_h < 0.15 * height) or (off_w <= most and off_w < 0.15 * width)


def _nearest(label: torch.Tensor, height: int, width: int) -> torch.Tensor:
    resized = F.interpolate(label[None, None].float(), size=(height, width), mode="nearest-exact")
    return resized[0, 0].long()
