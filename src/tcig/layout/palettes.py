"""Standard colour palettes of segmentation datasets, and snapping painted colours to them.

- ``ade20k``: the 150 SceneParsing colours as mmsegmentation defines them, which ControlNet's segmentation
  preprocessors paint; black is don't care ("other objects").
- ``coco-stuff``: mmsegmentation's 171 COCO-Stuff-164k colours by class name; white is don't care (tcig's choice:
  that palette has no void colour, and no class is white).

Both published palettes give a few pairs of classes one colour (ADE20K's road and skyscraper; COCO-Stuff's person and
bicycle, truck and traffic light, ...). Such a colour is read as the first class of the pair in the dataset's order
(road, person), with a warning naming both; a legend says otherwise where that is wrong.
- ``voc``: Pascal VOC's 21 colours (the bit-interleaved colour map of its devkit); black is background, and the
  border colour (224, 224, 192) is don't care.

Painted layouts are rarely exact: antialiased edges and JPEG blocks add colours no class has. :func:`snap_colours`
maps every pixel to the nearest colour of the legend when it lies within ``tolerance`` (Euclidean RGB distance), or,
for an edge pixel that mixes two of the image's colours, to the nearer of the two; it refuses in one line when more
than ``max_far`` of the pixels are farther than that from every colour and every mixture.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from tcig.errors import ConfigError, LayoutError

logger = logging.getLogger(__name__)

PALETTE_NAMES: tuple[str, ...] = ("ade20k", "coco-stuff", "voc")
DEFAULT_TOLERANCE = 24.0
"""RGB distance within which a painted colour counts as the palette colour (JPEG quality 75 moves flat regions by
less than about 10; antialiased edges are mixtures, mostly nearer one side)."""
DEFAULT_MAX_FAR = 0.10
"""Largest share of pixels that may lie farther than the tolerance from every colour (they become don't care).
Measured on the 91 real ADE20K and COCO-Stuff maps of the shared data painted in their palettes
(benchmarks/palette_snapping.py): saved as JPEG (quality 90 or 75) at most 7.6 % of the pixels are that far (median
under 1 %); the same maps in another palette have 19-100 %, so 10 % tells a damaged map from a wrong one."""
MAX_MISSING_REGION = 0.01
"""A single colour far from every legend colour that covers more than this share is a region the legend lacks."""
COCO_STUFF_VOID = (255, 255, 255)
"""tcig's don't-care colour in the COCO-Stuff palette, which has none of its own (white: no class has it)."""
VOC_BORDER = (224, 224, 192)


@dataclass(frozen=True)
class Palette:
    """Colours by class name; ``void`` colours are don't care. ``ambiguous`` maps a colour to the names sharing it."""

    name: str
    colours: dict[str, tuple[int, int, int]]
    void: tuple[tuple[int, int, int], ...] = ()

    @property
    def ambiguous(self) -> dict[tuple[int, int, int], list[str]]:
        owners: dict[tuple[int, int, int], list[str]] = {}
        for name, colour in self.colours.items():
            owners.setdefault(colour, []).append(name)
        return {c: names for c, names in owners.items() if len(names) > 1}

    def legend(self) -> dict[int, str | None]:
        """Colour code (0xRRGGBB) → class (None = don't care); a shared colour means the first class that has it."""
        codes: dict[int, str | None] = {colour_code(c): None for c in self.void}
        for name, colour in self.colours.items():
            codes.setdefault(colour_code(colour), name)
        return codes


def colour_code(colour: tuple[int, int, int]) -> int:
    return (colour[0] << 16) | (colour[1] << 8) | colour[2]


def _read_palette_file(file: str) -> dict[str, tuple[int, int, int]]:
    text = (resources.files("tcig") / "data" / "palettes" / file).read_text(encoding="utf-8")
    colours = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            r, g, b, name = line.split(" ", 3)
            colours[name.strip()] = (int(r), int(g), int(b))
    return colours


def voc_colour(index: int) -> tuple[int, int, int]:
    """Pascal VOC's colour of class ``index``: the index's bits spread over the high bits of R, G and B."""
    r = g = b = 0
    for shift in range(8):
        r |= ((index >> 0) & 1) << (7 - shift)
        g |= ((index >> 1) & 1) << (7 - shift)
        b |= ((index >> 2) & 1) << (7 - shift)
        index >>= 3
    return r, g, b


@cache
def load_palette(name: str) -> Palette:
    """The named standard palette: ``ade20k``, ``coco-stuff`` or ``voc`` (the vocabularies' aliases work too)."""
    from tcig.layout.vocabularies import canonical_vocabulary, load_vocabulary

    key = canonical_vocabulary(name, what="palette")
    if key == "ade20k":
        return Palette(key, _read_palette_file("ade20k.txt"), void=((0, 0, 0),))
    if key == "coco-stuff":
        return Palette(key, _read_palette_file("coco_stuff.txt"), void=(COCO_STUFF_VOID,))
    labels = load_vocabulary("voc").labels
    return Palette(key, {label: voc_colour(i) for i, label in enumerate(labels)}, void=(VOC_BORDER,))


@dataclass(frozen=True)
class Snapped:
    """The colour codes after snapping, and how many pixels moved or were too far from every colour."""

    codes: np.ndarray
    snapped: int
    far: int


def snap_colours(
    codes: np.ndarray,
    known: list[int],
    tolerance: float = DEFAULT_TOLERANCE,
    max_far: float = DEFAULT_MAX_FAR,
    source: str = "layout",
) -> Snapped:
    """Replace each colour code that is not in ``known`` by the legend colour it was painted as.

    First the legend colours the image shows are found: those painted as a region, with at least one pixel whose
    four neighbours are, like it, within half the tolerance of that colour (a JPEG keeps flat regions that close;
    an edge is too thin to have such pixels). Every other pixel then takes the nearest of those within
    ``tolerance``, or, on an edge, the nearer end of the closest mixture of two of them. Restricting the targets to
    the colours shown keeps a dense palette (ADE20K's 150 colours) from turning edge pixels into specks of classes
    that are not there.

    Args:
        codes: ``int64 [H, W]`` colour codes 0xRRGGBB; negative codes (transparent pixels) are left alone.
        known: the legend's colour codes.
        tolerance: largest RGB distance that snaps; 0 asks for exact colours.
        max_far: largest share of pixels that may be farther than ``tolerance`` from every colour and mixture;
            those pixels get code -1 (don't care). More is refused: the image was not painted in these colours;
            so is one such colour over :data:`MAX_MISSING_REGION` of the pixels (a region the legend lacks).
        source: the file, for messages.
    """
    if tolerance < 0 or not 0 <= max_far <= 1:
        raise ConfigError("the colour tolerance must be >= 0 and the share of far pixels in [0, 1]")
    uniques, inverse = np.unique(codes, return_inverse=True)
    counts = np.bincount(inverse.ravel(), minlength=len(uniques))
    valid = uniques >= 0
    palette = np.array(sorted(set(known)), dtype=np.int64)
    table = uniques.copy()
    snapped = far = 0
    far_colours: list[tuple[int, int]] = []
    odd = valid & ~np.isin(uniques, palette)
    if odd.any() and len(palette):
        shown = _shown_colours(uniques, inverse.reshape(codes.shape), palette, tolerance)
        target = _nearest_within(uniques[odd], shown, tolerance)
        still = target < 0
        if still.any():
            target[still] = _nearest_mixture(uniques[odd][still], shown, tolerance)
        table[odd] = target
        close = target >= 0
        snapped, far = int(counts[odd][close].sum()), int(counts[odd][~close].sum())
        pairs = zip(counts[odd][~close].tolist(), uniques[odd][~close].tolist(), strict=True)
        far_colours = sorted(pairs, reverse=True)
    elif odd.any():
        table[odd] = -1
        far = int(counts[odd].sum())
        far_colours = sorted(zip(counts[odd].tolist(), uniques[odd].tolist(), strict=True), reverse=True)
    total = max(1, codes.size)
    # JPEG noise spreads over many colours (none over 0.4 % of a real map's pixels, benchmarks/palette_snapping.py);
    # one colour over 1 % is a region the legend forgot
    flat = bool(far_colours) and far_colours[0][0] > MAX_MISSING_REGION * total
    if far > max_far * total or flat:
        listed = ", ".join(f"#{c:06x} ({n:,} px)" for n, c in far_colours[:5])
        more = f" and {len(far_colours) - 5} more" if len(far_colours) > 5 else ""
        raise LayoutError(
            f"{source}: {len(far_colours)} colour(s) not in its legend nor within {tolerance:g} of a legend colour: "
            f'{listed}{more} ({far / total:.1%} of the pixels); add them to the legend (or to "ignore" as don\'t '
            "care), check the palette, or raise --colour-tolerance"
        )
    if snapped or far:
        logger.warning(
            "%s: snapped %.1f%% of the pixels to the nearest legend colour (antialiasing or JPEG); %.2f%% were too "
            "far from every colour and are don't care",
            source, 100 * snapped / total, 100 * far / total,
        )  # fmt: skip
    return Snapped(table[inverse.reshape(codes.shape)], snapped, far)


def _shown_colours(uniques: np.ndarray, index: np.ndarray, palette: np.ndarray, tolerance: float) -> np.ndarray:
    """The palette colours painted as regions: some pixel and its four neighbours all lie within ``tolerance / 2``
    of that colour (its region's interior; antialiased edges and JPEG ringing have none). A colour within
    ``tolerance`` of one with four times its interior is taken for that one."""
    distance = np.sqrt(((_rgb(np.maximum(uniques, 0))[:, None, :] - _rgb(palette)[None, :, :]) ** 2).sum(-1))
    nearest = distance.argmin(1)
    core = (distance[np.arange(len(uniques)), nearest] <= tolerance / 2) & (uniques >= 0)
    label = np.where(core, nearest, -1)[index]
    inner = label[1:-1, 1:-1]
    interior = (inner >= 0) & (inner == label[:-2, 1:-1]) & (inner == label[2:, 1:-1])
    interior &= (inner == label[1:-1, :-2]) & (inner == label[1:-1, 2:])
    picked = inner[interior] if min(label.shape) >= 3 else label[label >= 0]  # tiny images: no interiors
    support = np.bincount(picked, minlength=len(palette))
    shown: list[int] = []
    for candidate in np.argsort(-support):
        if not support[candidate]:
            break
        # a colour that JPEG noise cannot tell from a stronger one (ADE20K's grass and bottle are 6 apart) is that one
        rgb = _rgb(palette[candidate])
        rival = any(
            np.sqrt(((rgb - _rgb(palette[s])) ** 2).sum()) <= tolerance and support[candidate] * 4 < support[s]
            for s in shown
        )
        if not rival:
            shown.append(int(candidate))
    return palette[sorted(shown)]


def _nearest_within(colours: np.ndarray, targets: np.ndarray, tolerance: float) -> np.ndarray:
    if not len(targets):
        return np.full(len(colours), -1, dtype=np.int64)
    distance = np.sqrt(((_rgb(colours)[:, None, :] - _rgb(targets)[None, :, :]) ** 2).sum(-1))
    nearest = distance.argmin(1)
    return np.where(distance[np.arange(len(colours)), nearest] <= tolerance, targets[nearest], -1)


def _rgb(codes: np.ndarray) -> np.ndarray:
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], -1).astype(np.float64)


def _nearest_mixture(colours: np.ndarray, shown: np.ndarray, tolerance: float) -> np.ndarray:
    """For each colour, the nearer end of the closest segment between two ``shown`` colours if that segment passes
    within ``tolerance``, else -1: an antialiased pixel mixes the colours on either side of its edge."""
    if len(shown) < 2:
        return np.full(len(colours), -1, dtype=np.int64)
    ends = _rgb(shown[:64])
    a, b = np.triu_indices(len(ends), 1)
    start, span = ends[a], ends[b] - ends[a]  # [P, 3]
    c = _rgb(colours)[:, None, :]  # [N, 1, 3]
    weight = np.clip(((c - start) * span).sum(-1) / np.maximum((span**2).sum(-1), 1e-9), 0, 1)  # [N, P]
    gap = np.sqrt(((c - (start + weight[..., None] * span)) ** 2).sum(-1))
    best = gap.argmin(1)
    rows = np.arange(len(colours))
    end = np.where(weight[rows, best] < 0.5, shown[a[best]], shown[b[best]])
    return np.where(gap[rows, best] <= tolerance, end, -1)


def class_colour(name: str, vocabularies: tuple[str, ...] = ("ade20k", "coco-stuff")) -> tuple[int, int, int] | None:
    """The standard colour of a class name: its ADE20K colour, else its COCO-Stuff colour (names matched as the
    guides match them), else None."""
    from tcig.layout.vocabularies import match_labels

    for vocabulary in vocabularies:
        palette = load_palette(vocabulary)
        labels = list(palette.colours)
        found = match_labels([name], labels)[0]
        if found is not None:
            return palette.colours[labels[found]]
    return None
