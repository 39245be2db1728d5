"""A segmentation ControlNet (Zhang et al. 2023) beside a UNet refiner: the trained reference a training-free method
is measured against.

ControlNet-seg reads the layout as a picture: every class painted in its colour of a fixed palette (the ADE20K
colours for ``lllyasviel/control_v11p_sd15_seg``; the bundled scenes ControlNet saves its own ``palette.json``), don't
care black. A layout's classes are matched to the palette's names by vocabulary, as the guides match them; a class the
palette lacks is painted black (unconstrained) and named in the log.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tcig.errors import ConfigError
from tcig.io.pictures import layout_tensor
from tcig.layout import Layout
from tcig.models.denoising import Denoiser

logger = logging.getLogger(__name__)

UNPAINTED = (0, 0, 0)
"""The colour of don't care and of classes the palette lacks (ADE20K's "other objects")."""


@dataclass
class SegmentationControl:
    """A ControlNet and the palette its layouts are painted in (class name → RGB)."""

    controlnet: nn.Module
    palette: dict[str, tuple[int, int, int]]
    name: str = "controlnet"

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> SegmentationControl:
        self.controlnet.to(device=device, dtype=dtype)
        return self

    def paint(self, layout: Layout) -> torch.Tensor:
        """The layout as the ControlNet reads it: ``[3,H,W]`` in [0,1], each class in its palette colour."""
        from tcig.layout.vocabularies import match_labels

        names = list(self.palette)
        matched = match_labels(list(layout.classes), names)
        missing = [c for c, m in zip(layout.classes, matched, strict=True) if m is None]
        if missing:
            logger.warning("%s has no colour for %s; painted as don't care", self.name, ", ".join(missing))
        table = np.asarray([self.palette[names[m]] if m is not None else UNPAINTED for m in matched])
        return layout_tensor(layout, table, UNPAINTED)


def load_control(ref: str, palette: str | dict | None, *, allow_pickle: bool = False) -> SegmentationControl:
    """A ``ControlNetModel`` from a hub id or folder, with its palette: a standard palette's name (``ade20k``), a
    mapping or JSON file ``{class: [r, g, b]}``, or None for the folder's own ``palette.json``."""
    from diffusers import ControlNetModel

    from tcig.layout.palettes import PALETTE_NAMES, load_palette
    from tcig.models.loading import load_pretrained
    from tcig.models.model_sets import read_class_colours

    if palette is None:
        own = Path(ref).expanduser() / "palette.json"
        if not own.is_file():
            raise ConfigError(f"the ControlNet '{ref}' has no palette.json; name its palette (e.g. ade20k)")
        palette = str(own)
    if isinstance(palette, str) and palette in PALETTE_NAMES:
        colours = dict(load_palette(palette).colours)
    else:
        colours = read_class_colours(palette, "the ControlNet palette")
    controlnet = load_pretrained(ControlNetModel.from_pretrained, ref, "ControlNet", allow_pickle=allow_pickle)
    return SegmentationControl(controlnet.eval().requires_grad_(False), colours, Path(ref).name or ref)


class _ControlledUNet(nn.Module):
    """A UNet that adds a ControlNet's residuals, called as the UNet is (its ``config`` is the UNet's)."""

    def __init__(self, unet: nn.Module, controlnet: nn.Module, image: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.unet, self.controlnet = unet, controlnet
        self.image, self.scale = image, scale
        self.config = unet.config

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        image = self.image.to(sample.device, sample.dtype).expand(sample.shape[0], -1, -1, -1)
        down, mid = self.controlnet(
            sample, timestep, encoder_hidden_states=encoder_hidden_states, controlnet_cond=image,
            conditioning_scale=self.scale, return_dict=False, **kwargs,
        )  # fmt: skip
        return self.unet(
            sample, timestep, encoder_hidden_states=encoder_hidden_states,
            down_block_additional_residuals=down, mid_block_additional_residual=mid, **kwargs,
        )  # fmt: skip


def controlled(den: Denoiser, control: SegmentationControl, layout: Layout, scale: float) -> Denoiser:
    """``den`` with ``control`` steering it towards ``layout`` (at the image size: ``layout`` is painted at its own
    size, which must be the size sampled), at conditioning scale ``scale``. Only UNet families (SD 1.x/2.x, SDXL)
    take a ControlNet."""
    unet = den.network
    if not hasattr(unet, "down_blocks"):
        raise ConfigError(f"a ControlNet steers a UNet; the refiner's {type(unet).__name__} takes none")
    image = control.paint(layout)[None].to(den.device)
    out = copy.copy(den)
    out.network = _ControlledUNet(unet, control.controlnet, image, scale)
    return out
