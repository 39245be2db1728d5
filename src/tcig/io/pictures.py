"""Pictures of layouts and results: colour-coded label maps, region outlines over images, captioned contact sheets."""

from __future__ import annotations

import colorsys
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from tcig.errors import TCIGError
from tcig.layout import IGNORE, Layout

DONT_CARE_COLOUR = (128, 128, 128)
"""Colour of "don't care" pixels in :func:`colorize`."""

_GOLDEN = (5**0.5 - 1) / 2


def palette(n: int) -> np.ndarray:
    """``uint8 [n, 3]`` well-separated colours, the same for every call: golden-ratio hue steps, cycling through
    three saturation/value levels so that neighbouring classes also differ in brightness."""
    levels = ((0.85, 0.95), (0.55, 0.75), (0.95, 0.6))
    colours = []
    for i in range(n):
        saturation, value = levels[i % len(levels)]
        colours.append(colorsys.hsv_to_rgb((i * _GOLDEN) % 1.0, saturation, value))
    return np.rint(np.asarray(colours, dtype=np.float64).reshape(n, 3) * 255).astype(np.uint8)


def layout_colours(classes: Sequence[str], chosen: Mapping[str, Sequence[int]] | None = None) -> np.ndarray:
    """``uint8 [K, 3]`` colours for pictures of a layout: a class's colour in ``chosen`` (a model set's natural
    colours; names matched as the guides match them, "sky-other" ~ "sky"), else its standard dataset colour
    (ADE20K's, then COCO-Stuff's), else one of :func:`palette`; a colour already taken by an earlier class is
    replaced by a palette colour, so that every class stays distinguishable."""
    from tcig.layout.palettes import class_colour
    from tcig.layout.vocabularies import match_labels

    names = list(chosen or {})
    matched = match_labels(list(classes), names) if names else [None] * len(classes)
    spare = iter(palette(2 * len(classes) + 16))
    taken: set[tuple[int, int, int]] = {DONT_CARE_COLOUR}
    out = []
    for name, found in zip(classes, matched, strict=True):
        colour = tuple(chosen[names[found]]) if found is not None else class_colour(name)
        while colour is None or tuple(colour) in taken:
            colour = tuple(int(c) for c in next(spare))
        taken.add(tuple(colour))
        out.append(colour)
    return np.asarray(out, dtype=np.uint8).reshape(-1, 3)


def colorize(layout: Layout, colours: np.ndarray | None = None) -> Image.Image:
    """RGB picture of the label map: class k in ``colours[k]`` (default :func:`layout_colours`), don't care mid
    grey."""
    colours = layout_colours(layout.classes) if colours is None else np.asarray(colours, dtype=np.uint8)
    table = np.concatenate([colours.reshape(-1, 3), np.array([DONT_CARE_COLOUR], dtype=np.uint8)])
    label = layout.label_map.cpu().numpy()
    return Image.fromarray(table[np.where(label == IGNORE, len(table) - 1, label)], mode="RGB")


def layout_tensor(layout: Layout, colours: np.ndarray, dont_care: Sequence[int] = DONT_CARE_COLOUR) -> torch.Tensor:
    """The layout as an image ``[3,H,W]`` in [0,1]: class k in ``colours[k]`` (RGB 0..255), don't care in
    ``dont_care``."""
    table = np.concatenate([np.asarray(colours, dtype=np.float32).reshape(-1, 3), [dont_care]]) / 255
    index = layout.label_map.clone()
    index[index == IGNORE] = len(table) - 1
    return torch.from_numpy(table[index.numpy()].astype(np.float32)).permute(2, 0, 1).contiguous()


def boundaries(label_map: torch.Tensor, width: int = 1) -> torch.Tensor:
    """``BoolTensor[H, W]``: pixels whose right or lower neighbour has another label, thickened to ``width`` pixels."""
    edge = torch.zeros(label_map.shape, dtype=torch.bool)
    edge[:, :-1] |= label_map[:, 1:] != label_map[:, :-1]
    edge[:-1, :] |= label_map[1:, :] != label_map[:-1, :]
    if width > 1:
        grown = F.max_pool2d(edge[None, None].float(), kernel_size=width, stride=1, padding=width // 2)
        edge = grown[0, 0, : edge.shape[0], : edge.shape[1]] > 0
    return edge


def draw_outlines(
    image: Image.Image, layout: Layout, color: tuple[int, int, int] = (255, 255, 255), width: int = 1
) -> Image.Image:
    """A copy of ``image`` with the layout's region boundaries drawn in ``color`` (layout resized to the image)."""
    out = image.convert("RGB")
    label = layout.resized(out.height, out.width, fit="stretch").label_map
    pixels = np.array(out)
    pixels[boundaries(label, width).numpy()] = color
    return Image.fromarray(pixels, mode="RGB")


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(
    panels: Sequence[tuple[str, Image.Image]], height: int = 256, gap: int = 4, caption_size: int = 14
) -> Image.Image:
    """Panels side by side, each scaled to ``height`` (aspect kept), with its caption above it (cut to fit)."""
    if not panels:
        raise ValueError("contact_sheet needs at least one panel")
    font = ImageFont.load_default(size=caption_size)
    caption_h = caption_size + 2 * gap
    scaled = [img.convert("RGB").resize((max(1, round(img.width * height / img.height)), height)) for _, img in panels]
    total_w = sum(img.width for img in scaled) + gap * (len(scaled) + 1)
    sheet = Image.new("RGB", (total_w, height + caption_h + gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x = gap
    for (caption, _), img in zip(panels, scaled, strict=True):
        draw.text((x, gap), _fit_text(draw, caption, font, img.width), fill=(0, 0, 0), font=font)
        sheet.paste(img, (x, caption_h))
        x += img.width + gap
    return sheet


def legend_image(layout: Layout, colours: np.ndarray | None = None, row: int = 20) -> Image.Image:
    """A swatch and the name of every class (and of don't care), one per row, in the :func:`colorize` colours."""
    colours = layout_colours(layout.classes) if colours is None else np.asarray(colours, dtype=np.uint8)
    font = ImageFont.load_default(size=max(8, row - 6))
    entries = [(tuple(int(c) for c in colours[i]), name) for i, name in enumerate(layout.classes)]
    entries.append((DONT_CARE_COLOUR, "don't care"))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(int(probe.textlength(name, font=font)) for _, name in entries)
    sheet = Image.new("RGB", (row + 12 + text_w, row * len(entries) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (colour, name) in enumerate(entries):
        top = 2 + i * row
        draw.rectangle([2, top + 2, row - 2, top + row - 2], fill=colour, outline=(0, 0, 0))
        draw.text((row + 6, top + 3), name, fill=(0, 0, 0), font=font)
    return sheet


def tensor_to_pil(images: torch.Tensor) -> Image.Image | list[Image.Image]:
    """``[C, H, W]`` in [0, 1] (C = 1 or 3) → one PIL image; ``[B, C, H, W]`` → a list of them."""
    if images.ndim == 4:
        return [tensor_to_pil(image) for image in images]  # type: ignore[misc]
    if images.ndim != 3 or images.shape[0] not in (1, 3):
        raise ValueError(f"expected images [C, H, W] or [B, C, H, W] with C = 1 or 3, got {tuple(images.shape)}")
    array = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0], mode="L") if array.shape[2] == 1 else Image.fromarray(array, mode="RGB")


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image → ``FloatTensor[3, H, W]`` in [0, 1] (converted to RGB)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def open_image(
    path: Path | BinaryIO, max_pixels: int, error: type[TCIGError] = TCIGError, name: str | None = None
) -> Image.Image:
    """Open and fully decode an image file (or bytes in a file object), refusing one over ``max_pixels``; every
    failure is one ``error`` line that names the file (``name``, default the path)."""
    shown = name or str(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise error(
                    f"'{shown}' is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}; "
                    "downscale it"
                )
            img.load()
            return img
    except UnidentifiedImageError:
        raise error(f"'{shown}' is not an image file (PNG, JPEG, WebP, BMP or TIFF)") from None
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        count = f" ({int(found.group(1)):,} pixels)" if found else ""
        raise error(f"'{shown}' is too large{count} to open safely; downscale it") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise error(f"cannot decode '{shown}': the file is damaged or incomplete; export it again") from None


MAX_PHOTO_PIXELS = 8192 * 8192
"""Largest photo ``--init-image`` and ``tcig layout from-image`` open."""


def read_photo(path: str | Path, max_pixels: int = MAX_PHOTO_PIXELS) -> torch.Tensor:
    """A photo file as ``FloatTensor[1, 3, H, W]`` in [0, 1] (transparency dropped, EXIF rotation applied)."""
    from tcig.io.files import check_regular_file

    file = Path(path).expanduser()
    check_regular_file(file, "photo", limit=None)
    return photo_tensor(open_image(file, max_pixels))


def photo_tensor(image: Image.Image) -> torch.Tensor:
    """A decoded photo as ``FloatTensor[1, 3, H, W]`` in [0, 1], turned as its EXIF says; 16-bit and float grey
    images are scaled by their own range (PIL's RGB conversion would clip them to white)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(grey.max()), 1e-6)
        grey = torch.from_numpy(np.clip(grey / top, 0, 1))
        return grey.expand(3, -1, -1)[None].contiguous()
    return pil_to_tensor(image)[None]
