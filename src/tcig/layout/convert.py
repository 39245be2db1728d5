"""Write a layout in the formats other tools read, so that a layout made anywhere can be carried anywhere.

- **label ids**: a single-channel PNG; with a vocabulary (``coco-stuff``, ``ade20k``, ``voc``) its dataset ids and
  void value, matched by class name; without one, value k is the layout's class k, 255 don't care, and a sidecar
  ``<stem>.json`` lists ``"classes"`` (``tcig`` reads it back).
- **colours**: an RGB PNG in a dataset's standard palette (what ControlNet's segmentation models expect), or in the
  layout's picture colours with a ``<stem>.legend.json`` legend.
- **JSON spec**: rectangles that cover every labelled pixel exactly (runs of a row, merged down the rows), readable
  by :func:`tcig.layout.readers.read_layout`.

The prompt and region texts travel in the sidecar (or the spec).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tcig.errors import ConfigError, LayoutError
from tcig.io.files import write_atomically, write_json_atomically
from tcig.layout import IGNORE, Layout
from tcig.layout.palettes import load_palette
from tcig.layout.readers import OWN_VOID
from tcig.layout.vocabularies import load_vocabulary, match_labels, nearest_names

FORMATS = ("ids", "colour", "json")


def class_areas(layout: Layout) -> list[tuple[str, int, float]]:
    """``(class, pixels, share of the image)`` for every class, then ``don't care``, largest first."""
    label = layout.label_map
    total = max(1, label.numel())
    counts = np.bincount((label[label != IGNORE]).numpy(), minlength=len(layout.classes))
    rows = [(name, int(n), n / total) for name, n in zip(layout.classes, counts, strict=True)]
    rows.sort(key=lambda row: -row[1])
    ignored = int((label == IGNORE).sum())
    return rows + ([("don't care", ignored, ignored / total)] if ignored else [])


def _in_vocabulary(classes: list[str], labels: list[str], what: str) -> list[int]:
    found = match_labels(classes, labels)
    for name, index in zip(classes, found, strict=True):
        if index is None:
            near = nearest_names(name, labels)
            hint = f"; nearest: {', '.join(near)}" if near else ""
            raise LayoutError(f"class '{name}' is not in {what}{hint}; rename it in the layout")
    return [int(i) for i in found]


def label_ids(layout: Layout, vocabulary: str | None = None) -> tuple[np.ndarray, dict]:
    """``(values [H, W] uint8/uint16, sidecar)``: the layout as label ids of ``vocabulary`` or of its own classes."""
    label = layout.label_map.numpy()
    sidecar = _texts(layout)
    if vocabulary is None:
        if len(layout.classes) >= OWN_VOID:
            raise LayoutError(f"the layout has {len(layout.classes)} classes; label ids hold at most {OWN_VOID - 1}")
        values = np.where(label == IGNORE, OWN_VOID, label).astype(np.uint8)
        return values, {"classes": list(layout.classes), **sidecar}
    vocab = load_vocabulary(vocabulary)
    ids = _in_vocabulary(layout.classes, vocab.labels, f"the {vocab.name} vocabulary")
    void = min(vocab.void_values)
    table = np.array([i + vocab.offset for i in ids] + [void])
    values = table[np.where(label == IGNORE, len(ids), label)]
    dtype = np.uint8 if values.max() < 256 else np.uint16
    return values.astype(dtype), {"vocabulary": vocab.name, **_texts(layout, [vocab.labels[i] for i in ids])}


def colour_image(
    layout: Layout, palette: str | None = None, colours: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """``(rgb [H, W, 3] uint8, legend)``: the layout in a standard palette (the legend is then empty: the palette
    says it), or in ``colours`` (default: its picture colours) with a legend that names each colour."""
    from tcig.io.pictures import DONT_CARE_COLOUR, layout_colours

    label = layout.label_map.numpy()
    if palette is not None:
        chosen = load_palette(palette)
        names = list(chosen.colours)
        ids = _in_vocabulary(layout.classes, names, f"the {chosen.name} palette")
        table = [chosen.colours[names[i]] for i in ids]
        for a in range(len(ids)):
            for b in range(a):
                if table[a] == table[b]:
                    raise LayoutError(
                        f"classes '{layout.classes[b]}' and '{layout.classes[a]}' have the same colour in the "
                        f"{chosen.name} palette; write label ids (--to ids) or colours with a legend instead"
                    )
        void = chosen.void[0] if chosen.void else None
        if void is None and (label == IGNORE).any():
            raise LayoutError(
                f"the {chosen.name} palette has no don't-care colour, and the layout has don't-care pixels"
            )
        rgb = np.array(table + [void or (0, 0, 0)], dtype=np.uint8)[np.where(label == IGNORE, len(ids), label)]
        return rgb, _texts(layout, [names[i] for i in ids])
    table = layout_colours(layout.classes) if colours is None else np.asarray(colours, dtype=np.uint8)
    rgb = np.concatenate([table, [DONT_CARE_COLOUR]]).astype(np.uint8)[np.where(label == IGNORE, len(table), label)]
    names = {f"#{r:02x}{g:02x}{b:02x}": name for (r, g, b), name in zip(table.tolist(), layout.classes, strict=True)}
    legend: dict = {"legend": names}
    if (label == IGNORE).any():
        legend["ignore"] = ["#{:02x}{:02x}{:02x}".format(*DONT_CARE_COLOUR)]
    return rgb, {**legend, **_texts(layout)}


def shape_spec(layout: Layout) -> dict:
    """A JSON spec whose rectangles cover the labelled pixels exactly; the largest class is the background."""
    label = layout.label_map.numpy()
    height, width = label.shape
    areas = [row for row in class_areas(layout) if row[0] != "don't care"]
    background = layout.classes.index(areas[0][0]) if areas and not (label == IGNORE).any() else None
    open_boxes: dict[tuple[int, int, int], list[int]] = {}
    boxes: list[tuple[int, list[int]]] = []
    for y in range(height + 1):
        runs = set()
        if y < height:
            row = label[y]
            edges = np.flatnonzero(np.diff(row)) + 1
            starts, ends = np.concatenate([[0], edges]), np.concatenate([edges, [width]])
            pairs = zip(starts, ends, strict=True)
            runs = {(int(row[s]), int(s), int(e)) for s, e in pairs if row[s] not in (IGNORE, background)}
        for key in list(open_boxes):
            if key not in runs:
                boxes.append((key[0], open_boxes.pop(key)))
        for key in runs:
            if key in open_boxes:
                open_boxes[key][3] = y + 1
            else:
                open_boxes[key] = [key[1], y, key[2], y + 1]
    boxes.sort(key=lambda item: (item[1][1], item[1][0]))
    spec: dict = {"size": [width, height]}
    if layout.prompt:
        spec["prompt"] = layout.prompt
    if background is not None:
        spec["background"] = layout.classes[background]
    spec["regions"] = [{"class": layout.classes[c], "shape": "rectangle", "box": box} for c, box in boxes]
    texts = _texts(layout).get("region_texts")
    if texts:
        spec["region_texts"] = texts
    return spec


def _texts(layout: Layout, names: list[str] | None = None) -> dict:
    names = names or layout.classes
    out: dict = {}
    if layout.prompt:
        out["prompt"] = layout.prompt
    if layout.region_texts:
        out["region_texts"] = {names[i]: text for i, text in layout.region_texts.items()}
    return out


def write_layout(
    layout: Layout, out: Path, to: str | None = None, vocabulary: str | None = None, palette: str | None = None
) -> list[Path]:
    """Write ``layout`` to ``out`` (and its sidecar beside it), each file atomically; returns the files written.

    Args:
        layout: the layout.
        out: a ``.png`` (label ids or colours) or ``.json`` (shape spec) path.
        to: ``ids``, ``colour`` or ``json`` (default: ``json`` for a .json path, else ``colour`` with a palette,
            else ``ids``).
        vocabulary: write label ids of this vocabulary.
        palette: write colours of this standard palette.
    """
    to = to or ("json" if out.suffix.lower() == ".json" else "colour" if palette else "ids")
    if to not in FORMATS:
        raise ConfigError(f"unknown format '{to}'; use {', '.join(FORMATS)}")
    expected = ".json" if to == "json" else ".png"
    if out.suffix.lower() != expected:
        raise ConfigError(f"--to {to} writes a {expected} file; name the output '{out.stem}{expected}'")
    if (to == "ids" and palette) or (to == "colour" and vocabulary) or (to == "json" and (palette or vocabulary)):
        raise ConfigError("--vocabulary goes with --to ids and --palette with --to colour")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of '{out}' does not exist; create it first")
    if to == "json":
        write_json_atomically(out, shape_spec(layout))
        return [out]
    if to == "ids":
        values, sidecar = label_ids(layout, vocabulary)
        image = Image.fromarray(values)
        side = out.with_suffix(".json")
    else:
        rgb, sidecar = colour_image(layout, palette)
        image = Image.fromarray(rgb, mode="RGB")
        side = out.with_name(f"{out.stem}.legend.json")
    write_atomically(out, lambda tmp: image.save(tmp, format="PNG"))
    written = [out]
    if sidecar:
        write_json_atomically(side, sidecar)
        written.append(side)
    return written
