"""Visualisation helpers: palette, colorize, outlines, contact sheets and tensor/PIL conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tcig.io.pictures import (
    DONT_CARE_COLOUR,
    boundaries,
    colorize,
    contact_sheet,
    draw_outlines,
    layout_colours,
    legend_image,
    palette,
    pil_to_tensor,
    tensor_to_pil,
)
from tcig.layout import IGNORE, Layout


def _layout() -> Layout:
    label = torch.zeros(8, 12, dtype=torch.long)
    label[4:, :] = 1
    label[5:7, 3:6] = 2
    label[0, 0] = IGNORE
    return Layout(label, ["sky", "sea", "boat"])


def test_palette_is_deterministic_and_distinct() -> None:
    colours = palette(40)
    assert colours.shape == (40, 3) and colours.dtype == np.uint8
    assert np.array_equal(colours, palette(40)) and np.array_equal(palette(5), colours[:5])
    distance = np.linalg.norm(colours[:, None].astype(float) - colours[None].astype(float), axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert distance[:12, :12].min() > 60  # the first dozen classes are clearly apart
    assert distance[:20, :20].min() > 50
    assert len({tuple(c) for c in palette(182)}) == 182  # a whole COCO-Stuff map still gets distinct colours
    assert (np.linalg.norm(colours.astype(float) - DONT_CARE_COLOUR, axis=1) > 40).all()
    assert palette(0).shape == (0, 3)


def test_colorize() -> None:
    image = colorize(_layout())
    assert image.size == (12, 8) and image.mode == "RGB"
    pixels = np.asarray(image)
    colours = layout_colours(_layout().classes)  # the classes' standard colours
    assert tuple(pixels[0, 0]) == DONT_CARE_COLOUR
    assert (
        (pixels[0, 1] == colours[0]).all()
        and (pixels[7, 0] == colours[1]).all()
        and (pixels[5, 3] == colours[2]).all()
    )


def test_boundaries_and_outlines() -> None:
    layout = _layout()
    edge = boundaries(layout.label_map)
    assert edge.shape == (8, 12) and edge[3, 8] and not edge[1, 8] and not edge[7, 10]
    assert boundaries(layout.label_map, width=3).sum() > edge.sum()
    photo = Image.new("RGB", (24, 16), (10, 20, 30))  # twice the layout size
    out = draw_outlines(photo, layout, color=(255, 0, 255))
    pixels = np.asarray(out)
    assert out.size == photo.size and np.asarray(photo).max() == 30  # the input is left as it was
    assert (pixels[7, 20] == (255, 0, 255)).all()  # the sky/sea boundary (rows 7|8 at 2x)
    assert (pixels[2, 20] == (10, 20, 30)).all() and (pixels[14, 22] == (10, 20, 30)).all()


def test_contact_sheet_and_legend() -> None:
    panels = [("layout", colorize(_layout())), ("a very long caption " * 5, Image.new("RGB", (64, 32), "white"))]
    sheet = contact_sheet(panels, height=64, gap=4, caption_size=12)
    assert sheet.height == 64 + 12 + 3 * 4
    assert sheet.width == 96 + 128 + 3 * 4  # widths scale with the height: 12x8 → 96x64, 64x32 → 128x64
    caption_band = np.asarray(sheet)[:16, :100]
    assert (caption_band < 128).any()  # some caption text was drawn
    with pytest.raises(ValueError):
        contact_sheet([])
    legend = legend_image(_layout())
    assert legend.height == 20 * 4 + 4 and legend.width > 40


def test_tensor_pil_round_trip() -> None:
    images = torch.rand(2, 3, 5, 7)
    pil = tensor_to_pil(images)
    assert isinstance(pil, list) and pil[0].size == (7, 5) and pil[0].mode == "RGB"
    back = pil_to_tensor(pil[1])
    assert back.shape == (3, 5, 7) and back.dtype == torch.float32
    assert torch.allclose(back, images[1], atol=1 / 255)
    grey = tensor_to_pil(torch.full((1, 2, 2), 2.0))  # clamped to [0, 1]
    assert grey.mode == "L" and np.asarray(grey).max() == 255
    assert tensor_to_pil(torch.zeros(3, 2, 2, dtype=torch.bfloat16)).size == (2, 2)
    with pytest.raises(ValueError, match="expected images"):
        tensor_to_pil(torch.zeros(4, 2, 2))
