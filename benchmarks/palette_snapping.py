"""Real label maps painted in their dataset's palette, as ControlNet's preprocessors paint them, saved as PNG and as
JPEG and read back with ``--palette``: how many pixels keep their class, and how far the pixels that cannot be snapped
run, against maps in another palette and photos (what the refusal threshold must tell apart).

    python benchmarks/palette_snapping.py [--data ../shared/data/real]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from tcig.errors import TCIGError
from tcig.layout.convert import colour_image
from tcig.layout.palettes import load_palette, snap_colours
from tcig.layout.readers import read_layout


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _far_share(rgb: np.ndarray, known: list[int]) -> float:
    a = rgb.astype(np.int64)
    codes = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    return snap_colours(codes, known, max_far=1.0).far / codes.size


def _agreement(rgb: np.ndarray, truth: np.ndarray, palette: str, folder: Path) -> float | None:
    path = folder / "painted.png"
    Image.fromarray(rgb).save(path)
    try:
        back = read_layout(path, palette=palette)
    except TCIGError:
        return None
    return float((np.array(back.classes + ["-"])[back.label_map.numpy()] == truth).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tcig_palette_snapping"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((args.data / "manifest.json").read_text())
    agree: dict[str, list] = {}
    far: dict[str, list] = {}
    skipped: dict[str, int] = {}
    for entry in manifest:
        vocab = "coco-stuff" if entry["dataset"].startswith("coco") else "ade20k"
        layout = read_layout(args.data / entry["label_map"], vocabulary=vocab)
        try:
            rgb, _ = colour_image(layout, palette=vocab)
        except TCIGError:  # two of its classes share a palette colour: no palette picture says which is which
            skipped[vocab] = skipped.get(vocab, 0) + 1
            continue
        truth = np.array(layout.classes + ["-"])[layout.label_map.numpy()]
        known = list(load_palette(vocab).legend())
        versions = {"png": rgb, "jpeg 90": _jpeg(rgb, 90), "jpeg 75": _jpeg(rgb, 75)}
        for name, image in versions.items():
            agree.setdefault(f"{vocab} {name}", []).append(_agreement(image, truth, vocab, args.work))
            far.setdefault(f"{vocab} {name}", []).append(_far_share(image, known))
        # the same map in another dataset's colours (VOC's colours are all in the COCO-Stuff palette: use ADE20K's)
        other_name = "ade20k" if vocab == "coco-stuff" else "voc"
        other = np.array(list(load_palette(other_name).colours.values()), dtype=np.uint8)
        far.setdefault(f"{vocab} map in the {other_name} palette", []).append(
            _far_share(other[layout.label_map.clamp(min=0).numpy() % len(other)], known)
        )
        if entry.get("photo"):
            photo = np.asarray(Image.open(args.data / entry["photo"]).convert("RGB"))
            far.setdefault(f"{vocab} photo", []).append(_far_share(photo, known))
    print("| maps | read | pixels that keep their class (mean / min) |")
    print("| --- | --- | --- |")
    for key, values in agree.items():
        read = [v for v in values if v is not None]
        shown = f"{np.mean(read):.4f} / {np.min(read):.4f}" if read else "—"
        print(f"| {key} | {len(read)} of {len(values)} | {shown} |")
    for vocab, count in skipped.items():
        print(f"\n{count} {vocab} maps skipped: two of their classes share one colour of the palette")
    print("\n| image | n | share of pixels far from every colour: median / 90th pct / max / min |")
    print("| --- | --- | --- |")
    for key, values in far.items():
        v = np.array(values)
        print(f"| {key} | {len(v)} | {np.median(v):.3f} / {np.quantile(v, 0.9):.3f} / {v.max():.3f} / {v.min():.3f} |")


if __name__ == "__main__":
    main()
