"""Read a layout file into a :class:`~tcig.layout.core.Layout`; :func:`read_layout` picks the format from the path.

Formats:

- **Colour PNG + legend.** An RGB(A) or palette image whose colours stand for classes. The legend is the ``legend``
  argument or a sidecar ``<stem>.legend.json`` / ``<stem>.json``: ``{"legend": {"#87ceeb": "sky", "#1e90ff": "sea"},
  "ignore": ["#000000"], "region_texts": {"sea": "a calm sea"}, "prompt": "..."}``. The mapping may also run from
  name to colour(s) (``{"sky": "#87ceeb"}``) or be a list ``[{"color": [135, 206, 235], "class": "sky"}]``; a
  class of ``null`` and the ``"ignore"`` colours are don't care, and so are fully transparent pixels. A colour may
  have one name only. Antialiased and JPEG colours snap to the nearest legend colour within ``colour_tolerance``
  (see :func:`tcig.layout.palettes.snap_colours`); the share of snapped pixels is logged.
- **Colour PNG in a standard palette.** ``palette="ade20k"``, ``"coco-stuff"`` or ``"voc"`` reads a map painted in
  that dataset's colours (as ControlNet's segmentation preprocessors write them), with no legend: the class names are
  the vocabulary's (see :mod:`tcig.layout.palettes`).
- **Label-id PNG + vocabulary.** A single-channel image (mode L, P, I;16 …) whose values are class ids of a named
  vocabulary (``coco-stuff``, ``ade20k``, ``voc``; see :mod:`tcig.layout.vocabularies`). The sidecar may carry
  ``"vocabulary"``, ``"prompt"`` and ``"region_texts"``.
- **JSON spec of shapes.** Regions drawn as rectangles, ellipses and polygons; see :mod:`tcig.layout.spec`.
- **Folder of masks.** One ``<class name>.png`` per class (nonzero = in the class; ``_`` in the name reads as a
  space), all of one size, plus an optional ``prompt.txt`` and ``layout.json`` (``prompt``, ``region_texts``).
  Where masks overlap the later one in name order wins, with a warning; pixels in no mask are don't care.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tcig.errors import ConfigError, LayoutError
from tcig.io.files import check_regular_file, not_there, read_json_object
from tcig.io.pictures import open_image
from tcig.layout import IGNORE, Layout
from tcig.layout.common import COMMENT_KEY, check_keys, check_prompt, finish_layout, string_map
from tcig.layout.palettes import DEFAULT_TOLERANCE, Palette, colour_code, load_palette, snap_colours
from tcig.layout.spec import read_spec
from tcig.layout.vocabularies import Vocabulary, load_vocabulary

logger = logging.getLogger(__name__)

_ID_MODES = {"1", "L", "P", "LA", "PA", "I", "I;16", "I;16B", "I;16L", "I;16N"}


def read_layout(
    path: str | Path,
    *,
    vocabulary: str | None = None,
    legend: str | Path | None = None,
    palette: str | None = None,
    colour_tolerance: float = DEFAULT_TOLERANCE,
    max_pixels: int = 64_000_000,
) -> Layout:
    """Read a layout from a colour PNG (+ legend or palette), a label-id PNG (+ vocabulary), a JSON spec or a mask
    folder.

    Args:
        path: the layout file or mask folder.
        vocabulary: the vocabulary of a label-id PNG (``coco-stuff``, ``ade20k``, ``voc``).
        legend: the legend JSON of a colour PNG (default: ``<stem>.legend.json`` beside it).
        palette: read a colour PNG in a standard palette (``ade20k``, ``coco-stuff``, ``voc``), no legend needed.
        colour_tolerance: RGB distance within which a painted colour snaps to a legend colour (0 = exact).
        max_pixels: refuse larger images before decoding them.
    """
    path = Path(path).expanduser()
    if sum(x is not None for x in (vocabulary, legend, palette)) > 1:
        raise ConfigError("give one of a vocabulary (label-id PNG), a legend or a palette (colour PNG), not several")
    if palette is not None:
        load_palette(palette)  # fail early on an unknown name
    if vocabulary is not None:
        load_vocabulary(vocabulary)  # fail early on an unknown name
    if not path.exists():
        raise LayoutError(f"layout '{path}' {not_there(path)}; give a PNG, a JSON spec or a folder of masks")
    if path.is_dir():
        if palette is not None or legend is not None or vocabulary is not None:
            raise ConfigError(f"'{path}' is a folder of masks; a legend, palette or vocabulary is for a PNG layout")
        return _read_mask_folder(path, max_pixels)
    check_regular_file(path, "layout", limit=None, error=LayoutError)
    if path.suffix.lower() == ".json":
        if legend is not None or palette is not None or vocabulary is not None:
            raise ConfigError(
                f"'{path}' is a JSON spec; a legend, palette or vocabulary is for a PNG layout, so leave it out"
            )
        data = _read_json(path)
        if "regions" not in data:
            hint = (
                " (it looks like a legend: pass the image as the layout and this as its legend)"
                if "legend" in data
                else ""
            )
            raise LayoutError(f"JSON layout '{path}' has no 'regions'{hint}; see examples/beach.json for the format")
        return read_spec(path, data, max_pixels)
    return _read_image(path, vocabulary, legend, palette, colour_tolerance, max_pixels)


def read_layout_and_prompt(path: str | Path, prompt: str | None, where: str, **options) -> tuple[Layout, str]:
    """A layout with at least one labelled pixel, and the prompt: ``prompt`` if given, else the layout's own.
    ``where`` says where a prompt can be given, for the error when there is none; ``options`` go to
    :func:`read_layout`."""
    if prompt is not None and not prompt.strip():
        raise ConfigError("the prompt is empty; describe the image, or leave the prompt out to use the layout's own")
    layout = read_layout(path, **options)
    layout.check_labelled()
    prompt = prompt or layout.prompt
    if not prompt:
        own = "a prompt.txt in the mask folder" if Path(path).is_dir() else 'a "prompt" in the layout\'s JSON'
        raise ConfigError(f"no prompt: {where}, or put {own}")
    return layout, prompt


def layout_from_masks(
    masks: Mapping[str, np.ndarray | torch.Tensor],
    *,
    prompt: str | None = None,
    region_texts: Mapping[str, str] | None = None,
    source: str = "masks",
) -> Layout:
    """Build a layout from ``{class name: boolean mask [H, W]}``; later masks win where they overlap (logged)."""
    if not masks:
        raise LayoutError(f"{source}: no masks given; give at least one class mask")
    label: np.ndarray | None = None
    first = ""
    classes = list(masks)
    for index, (name, mask) in enumerate(masks.items()):
        m = (mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)).astype(bool)
        if label is None:
            if m.ndim != 2:
                raise LayoutError(f"{source}: mask '{name}' has shape {m.shape}; masks must be 2-D (H, W)")
            label, first = np.full(m.shape, IGNORE, dtype=np.int64), name
        if m.shape != label.shape:
            raise LayoutError(
                f"{source}: mask '{name}' is {_wxh(m.shape)} but '{first}' is {_wxh(label.shape)}; "
                "all masks must have one size (resize them with nearest neighbour)"
            )
        overlap = m & (label != IGNORE)
        if overlap.any():
            for earlier, count in enumerate(np.bincount(label[overlap], minlength=index)):
                if count:
                    logger.warning(
                        "%s: masks '%s' and '%s' overlap on %d pixels; '%s' (later) wins",
                        source, classes[earlier], name, count, name,
                    )  # fmt: skip
        label[m] = index
    return finish_layout(torch.from_numpy(label), classes, dict(region_texts or {}), prompt, source)


# --- shared helpers -------------------------------------------------------------------------------------------------


def _wxh(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, "layout JSON", LayoutError)


# --- colour and label-id images -------------------------------------------------------------------------------------


def _colour(value: Any) -> int | None:
    """'#rrggbb', '#rgb' or [r, g, b] → 0xRRGGBB; None if the value is no colour."""
    if isinstance(value, str) and re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", value.strip()):
        hexa = value.strip()[1:]
        return int("".join(c * 2 for c in hexa) if len(hexa) == 3 else hexa, 16)
    if isinstance(value, list) and len(value) == 3 and all(type(c) is int and 0 <= c <= 255 for c in value):
        return (value[0] << 16) | (value[1] << 8) | value[2]
    return None


def _is_colour(value: Any) -> bool:
    return _colour(value) is not None


def _parse_legend(data: dict[str, Any], where: str) -> dict[int, str | None]:
    """Colour code → class name (None = don't care)."""
    entries = data.get("legend", data)
    colours: dict[int, str | None] = {}

    def add(colour: Any, name: Any) -> None:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise LayoutError(f"{where}: class name {json.dumps(name)} must be a non-empty string (or null)")
        code = _colour(colour)
        if code is None:
            raise LayoutError(f'{where}: {json.dumps(colour)} is not a colour; write "#rrggbb" or [r, g, b] (0..255)')
        name = name.strip() if isinstance(name, str) else None
        if code in colours and colours[code] != name:
            raise LayoutError(
                f"{where}: colour #{code:06x} is given two meanings, {colours[code]!r} and {name!r}; a colour can "
                "stand for one class only"
            )
        colours[code] = name

    if isinstance(entries, list):
        for i, entry in enumerate(entries, 1):
            if not isinstance(entry, dict) or not ({"color", "colour"} & entry.keys()) or "class" not in entry:
                raise LayoutError(f'{where}: legend entry {i} must look like {{"color": "#rrggbb", "class": "sky"}}')
            add(entry.get("color", entry.get("colour")), entry["class"])
    elif isinstance(entries, dict):
        entries = {k: v for k, v in entries.items() if k not in _LEGEND_KEYS and not COMMENT_KEY.match(k)}
        if all(_is_colour(k) for k in entries):
            for colour, name in entries.items():
                add(colour, name)
        else:
            for name, value in entries.items():
                for colour in _colours_in(value):
                    add(colour, name)
    else:
        raise LayoutError(f'{where}: "legend" must map colours to class names, e.g. {{"#87ceeb": "sky"}}')
    for colour in _colours_in(data.get("ignore", [])):
        add(colour, None)
    if not any(colours.values()):
        raise LayoutError(f'{where}: the legend names no class; map colours to class names, e.g. {{"#87ceeb": "sky"}}')
    return colours


_LEGEND_KEYS = {"legend", "ignore", "region_texts", "prompt", "vocabulary", "classes"}
OWN_VOID = 255
"""Don't-care value of a label-id PNG whose sidecar lists its own ``classes``."""


def _colours_in(value: Any) -> list[Any]:
    """A legend value as a list of colours: one colour, or a list of them."""
    return value if isinstance(value, list) and not _is_colour(value) else [value]


def _is_legend(data: dict[str, Any]) -> bool:
    """Whether a sidecar holds a colour legend: a "legend" key, or a bare colour → name or name → colour mapping."""
    plain = {k: v for k, v in data.items() if k not in _LEGEND_KEYS and not COMMENT_KEY.match(k)}
    by_colour = all(_is_colour(k) for k in plain)
    by_name = all(v is not None and all(_is_colour(c) for c in _colours_in(v)) for v in plain.values())
    return "legend" in data or (bool(plain) and (by_colour or by_name))


def _sidecar(path: Path) -> Path | None:
    for candidate in (path.with_name(path.stem + ".legend.json"), path.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    return None


def _read_image(
    path: Path,
    vocabulary: str | None,
    legend: str | Path | None,
    palette: str | None,
    tolerance: float,
    max_pixels: int,
) -> Layout:
    meta: dict[str, Any] = {}
    meta_path = Path(legend).expanduser() if legend is not None else _sidecar(path)
    if legend is not None and not meta_path.is_file():
        raise LayoutError(f"legend '{meta_path}' does not exist; give the JSON file that maps colours to class names")
    if meta_path is not None:
        meta = _read_json(meta_path)
        if legend is None and ("regions" in meta or (palette is not None and _is_legend(meta))):
            # a JSON spec that happens to share the stem, or a legend that the palette replaces
            meta, meta_path = {}, None
        elif {"legend", "vocabulary", "classes"} & meta.keys():
            check_keys(meta, _LEGEND_KEYS, f"legend '{meta_path}'")
    where = f"legend '{meta_path}'"
    if legend is not None and not _is_legend(meta):
        raise LayoutError(f'{where} maps no colours to class names; write e.g. {{"legend": {{"#87ceeb": "sky"}}}}')
    texts = string_map(meta.get("region_texts"), "region_texts", where)
    prompt = check_prompt(meta.get("prompt"), where)
    img = open_image(path, max_pixels, LayoutError)

    if palette is not None:
        chosen = load_palette(palette)
        return _colour_layout(img, path, chosen.legend(), texts, prompt, tolerance, chosen)
    vocab_name = vocabulary
    if vocab_name is None and legend is None and not _is_legend(meta):
        vocab_name = meta.get("vocabulary")
    if vocab_name is not None:
        if _is_legend(meta):
            logger.info(
                "%s: reading it as %s label ids, so the colour legend in %s is not used", path, vocab_name, meta_path
            )
        vocab = load_vocabulary(str(vocab_name))
    elif legend is None and "classes" in meta:
        vocab = _own_vocabulary(meta["classes"], where)
    if vocab_name is not None or (legend is None and "classes" in meta):
        values = _id_values(img, path, vocab)
        label, classes = vocab.decode(values, source=f"'{path}'")
        for name in texts:
            if name not in vocab.labels:
                raise LayoutError(f"{where}: region text given for '{name}', which is not a {vocab.name} class name")
            if name not in classes:
                logger.info("%s: class '%s' of the region texts is not in the map", path, name)
        return finish_layout(label, classes, {k: v for k, v in texts.items() if k in classes}, prompt, f"'{path}'")
    if not _is_legend(meta):
        if img.mode in _ID_MODES - {"P", "PA"}:
            raise LayoutError(
                f"'{path}' is a single-channel label-id map; pass a vocabulary (--vocabulary coco-stuff, ade20k or "
                f"voc) that says which value is which class, or a colour legend ({path.stem}.legend.json)"
            )
        raise LayoutError(
            f"'{path}' has no legend; write {path.stem}.legend.json mapping its colours to class names "
            '(e.g. {"legend": {"#87ceeb": "sky"}}) or pass --legend; for a map in a dataset\'s colours pass --palette '
            "ade20k, coco-stuff or voc; for a label-id map pass --vocabulary"
        )
    return _colour_layout(img, path, _parse_legend(meta, where), texts, prompt, tolerance)


def _own_vocabulary(classes: Any, where: str) -> Vocabulary:
    """The vocabulary of a label-id PNG whose sidecar lists ``"classes"``: value k is ``classes[k]``, 255 void."""
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c.strip() for c in classes)
        or len(set(classes)) != len(classes)
        or len(classes) > OWN_VOID
    ):
        raise LayoutError(f'{where}: "classes" must list up to 255 distinct class names, value k = classes[k]')
    return Vocabulary(
        "its own classes", list(classes), 0, frozenset({OWN_VOID}), "0..K-1 = the listed classes, 255 = void"
    )


def _id_values(img: Image.Image, path: Path, vocab: Vocabulary) -> np.ndarray:
    """Single-channel integer values of a label-id image; fully transparent pixels become void."""
    alpha = np.asarray(img.getchannel("A")) if "A" in img.getbands() else None
    if img.mode in _ID_MODES:
        values = np.asarray(img.getchannel(0) if alpha is not None else img).astype(np.int64)
    elif img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
            raise LayoutError(
                f"'{path}' is a colour image but {vocab.name} label ids need a single-channel map; "
                "for a colour layout pass a legend instead of a vocabulary"
            )
        values = rgb[..., 0].astype(np.int64)
    else:
        raise LayoutError(f"'{path}' has image mode {img.mode}; a label-id map must be an 8- or 16-bit integer PNG")
    if alpha is not None:
        values[alpha == 0] = min(vocab.void_values)
    return values


def _colour_layout(
    img: Image.Image,
    path: Path,
    colours: dict[int, str | None],
    texts: dict[str, str],
    prompt: str | None,
    tolerance: float,
    palette: Palette | None = None,
) -> Layout:
    if img.mode not in ("RGB", "RGBA", "P", "PA", "L", "LA", "1"):
        raise LayoutError(f"'{path}' has image mode {img.mode}; a colour layout must be an 8-bit RGB or palette PNG")
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    pixels = np.asarray(img.convert("RGBA" if has_alpha else "RGB")).astype(np.int64)
    codes = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    if has_alpha:
        codes[pixels[..., 3] == 0] = -1
    codes = snap_colours(codes, list(colours), tolerance, source=f"'{path}'").codes
    if palette is not None:
        _warn_ambiguous(codes, palette, path)
    uniques, inverse = np.unique(codes, return_inverse=True)
    if palette is not None:  # class names in vocabulary order
        order = list(palette.colours)
        present = {colours[int(c)] for c in uniques if c >= 0 and colours.get(int(c)) is not None}
        classes = [name for name in order if name in present]
    else:
        classes = list(dict.fromkeys(name for name in colours.values() if name is not None))
    lookup = np.array(
        [IGNORE if c < 0 or colours.get(int(c)) is None else classes.index(colours[int(c)]) for c in uniques]
    )
    label = torch.from_numpy(lookup[inverse.reshape(codes.shape)])
    return finish_layout(label, classes, texts, prompt, f"'{path}'")


def _warn_ambiguous(codes: np.ndarray, palette: Palette, path: Path) -> None:
    for colour, names in palette.ambiguous.items():
        count = int((codes == colour_code(colour)).sum())
        if count:
            logger.warning(
                "%s: colour #%06x (%d px) means %s in the %s palette; reading it as %s (write a legend, "
                "%s.legend.json, if it is another)",
                path, colour_code(colour), count, " or ".join(names), palette.name, names[0], path.stem,
            )  # fmt: skip


# --- mask folder ----------------------------------------------------------------------------------------------------


def _mask_array(img: Image.Image) -> np.ndarray:
    """Nonzero (and not fully transparent) pixels of a mask image."""
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    values = np.asarray(img.convert("L")) > 0 if img.mode not in ("I", "I;16", "F") else np.asarray(img) != 0
    if "A" in img.getbands():
        values &= np.asarray(img.getchannel("A")) > 0
    return values


def _read_mask_folder(folder: Path, max_pixels: int) -> Layout:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not files:
        raise LayoutError(f"mask folder '{folder}' has no .png masks; put one '<class name>.png' per class in it")
    others = [p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".bmp", ".tif", ".webp")]
    if others:
        logger.warning("%s: only .png masks are read; ignoring %s", folder, ", ".join(sorted(others)))
    masks: dict[str, np.ndarray] = {}
    for file in files:
        name = re.sub(r"\s+", " ", file.stem.replace("_", " ")).strip()
        mask = _mask_array(open_image(file, max_pixels, LayoutError))
        if name in masks and masks[name].shape == mask.shape:
            mask = mask | masks.pop(name)
        masks[name] = mask
    meta_path, prompt_path = folder / "layout.json", folder / "prompt.txt"
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    check_keys(meta, {"prompt", "region_texts"}, f"'{meta_path}'")
    prompt = check_prompt(meta.get("prompt"), f"'{meta_path}'")
    if prompt_path.is_file():
        try:
            text = prompt_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise LayoutError(f"cannot read '{prompt_path}' ({e}); save it as UTF-8 text") from None
        if prompt is not None and text != prompt:
            logger.warning("%s: layout.json and prompt.txt both give a prompt; using layout.json's", folder)
        prompt = prompt if prompt is not None else text or None
    texts = string_map(meta.get("region_texts"), "region_texts", f"'{meta_path}'")
    return layout_from_masks(masks, prompt=prompt, region_texts=texts, source=f"'{folder}'")
