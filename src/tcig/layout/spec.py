"""Read a JSON spec of shapes into a :class:`~tcig.layout.Layout` (called by :func:`tcig.layout.readers.read_layout`).

Format: ``{"prompt": "...", "size": [width, height], "background": "sky", "regions": [{"class": "boat", "shape":
"rectangle" | "ellipse" | "polygon", "box": [x0, y0, x1, y1] | "points": [[x, y], ...], "text": "a red boat"}]}``.
Coordinates are pixels with ``x1``/``y1`` exclusive, or fractions of the size with ``"units": "fraction"`` (never
guessed: a spec in pixels whose coordinates all lie in [0, 1] is an error). Later regions paint over earlier ones;
without ``background`` unpainted pixels are don't care.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from tcig.errors import LayoutError
from tcig.layout import IGNORE, Layout
from tcig.layout.common import check_keys, check_prompt, finish_layout, string_map

logger = logging.getLogger(__name__)

_SPEC_KEYS = {"prompt", "size", "background", "regions", "units", "region_texts"}
_REGION_KEYS = {"class", "shape", "box", "points", "text"}
_SHAPES = {"rectangle": "rectangle", "rect": "rectangle", "box": "rectangle", "ellipse": "ellipse"}
_SHAPES |= {"oval": "ellipse", "circle": "ellipse", "polygon": "polygon", "poly": "polygon"}


FAR_SIDES = 64
"""Coordinates beyond this many image sides from the origin are clamped there (a box may reach past the image)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_spec(path: Path, data: dict[str, Any], max_pixels: int) -> Layout:
    where = f"'{path}'"
    check_keys(data, _SPEC_KEYS, where)
    size = data.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise LayoutError(f'{where}: "size" must be [width, height] in whole pixels, e.g. "size": [512, 512]')
    width, height = size
    if width * height > max_pixels:
        raise LayoutError(
            f"{where}: size {width}x{height} is over the limit of {max_pixels:,} pixels; make it smaller"
        )
    units = data.get("units", "pixels")
    if units not in ("pixels", "fraction"):
        raise LayoutError(f'{where}: "units" must be "pixels" or "fraction", not {json.dumps(units)}')
    regions = data["regions"]
    if not isinstance(regions, list):
        raise LayoutError(f'{where}: "regions" must be a list of region objects')

    classes: list[str] = []
    texts = string_map(data.get("region_texts"), "region_texts", where)
    label = np.full((height, width), IGNORE, dtype=np.int64)
    background = data.get("background")
    if background is not None:
        if not isinstance(background, str) or not background.strip():
            raise LayoutError(f'{where}: "background" must be a class name (or left out for don\'t care)')
        classes.append(background.strip())
        label[:] = 0
    shapes = [_parse_region(region, i, where) for i, region in enumerate(regions, 1)]
    numbers = [v for _, shape, coords, _ in shapes for v in np.ravel(coords)]
    if units == "pixels" and numbers and all(0 <= v <= 1 for v in numbers) and any(v != int(v) for v in numbers):
        raise LayoutError(
            f'{where}: all coordinates lie in [0, 1]; if they are fractions of the size add "units": "fraction"'
        )
    scale = np.array([width, height], dtype=float) if units == "fraction" else np.ones(2)
    for i, (name, shape, coords, text) in enumerate(shapes, 1):
        if name not in classes:
            classes.append(name)
        if text is not None:
            old = texts.get(name)
            texts[name] = text if old is None or old == text else f"{old}; {text}"
        xy = np.asarray(coords, dtype=float) * scale
        reach = FAR_SIDES * max(width, height)  # far enough to change no pixel inside, near enough for integers
        if np.abs(xy).max() > reach:
            logger.info("%s: region %d reaches far past the image; clamped to ±%d", where, i, reach)
            xy = xy.clip(-reach, reach)
        xy = np.rint(xy).astype(int)
        canvas = Image.new("1", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        if shape == "polygon":
            draw.polygon([tuple(p) for p in xy.tolist()], fill=1)
        else:
            x0, y0, x1, y1 = xy.ravel().tolist()
            if x1 > x0 and y1 > y0:
                (draw.rectangle if shape == "rectangle" else draw.ellipse)([x0, y0, x1 - 1, y1 - 1], fill=1)
        mask = np.asarray(canvas, dtype=bool)
        if not mask.any():
            logger.warning("%s: region %d ('%s') covers no pixel of the %dx%d image", where, i, name, width, height)
        label[mask] = classes.index(name)
    return finish_layout(torch.from_numpy(label), classes, texts, check_prompt(data.get("prompt"), where), where)


def _parse_region(region: Any, i: int, where: str) -> tuple[str, str, list[Any], str | None]:
    """Validate one region → (class name, shape, coordinates [[x, y], ...], text)."""
    if not isinstance(region, dict):
        raise LayoutError(f'{where}: region {i} must be an object like {{"class": "boat", "box": [x0, y0, x1, y1]}}')
    check_keys(region, _REGION_KEYS, f"{where}: region {i}")
    name = region.get("class")
    if not isinstance(name, str) or not name.strip():
        raise LayoutError(f'{where}: region {i} has no \'class\'; give each region a class name, e.g. "class": "boat"')
    name = name.strip()
    label = f"{where}: region {i} ('{name}')"
    shape = region.get("shape", "polygon" if "points" in region else "rectangle")
    if shape not in _SHAPES:
        raise LayoutError(f"{label} has unknown shape {json.dumps(shape)}; use rectangle, ellipse or polygon")
    shape = _SHAPES[shape]
    text = region.get("text")
    if text is not None and not isinstance(text, str):
        raise LayoutError(f'{label}: "text" must be a string')
    if shape == "polygon":
        points = region.get("points")
        pairs = isinstance(points, list) and all(isinstance(p, list) and len(p) == 2 for p in points)
        if not (pairs and len(points) >= 3 and all(_is_number(v) for p in points for v in p)):
            raise LayoutError(f'{label} needs "points": [[x, y], [x, y], [x, y], ...] with at least 3 points')
        return name, shape, points, text
    box = region.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise LayoutError(f'{label} needs "box": [x0, y0, x1, y1] (left, top, right, bottom)')
    if box[2] <= box[0] or box[3] <= box[1]:
        raise LayoutError(f"{label} has box {box} with x1 <= x0 or y1 <= y0; write it as [left, top, right, bottom]")
    return name, shape, [box[:2], box[2:]], text
