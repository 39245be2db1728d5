"""Writing a generation's files: final image, stage-1 image, contact sheet and a JSON sidecar, atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from tcig.io.lock import make_staging
from tcig.io.pictures import colorize, contact_sheet, draw_outlines, legend_image, tensor_to_pil
from tcig.pipeline import TCIGOutput

SHEET_HEIGHT = 256


FILE_SUFFIXES = ("", "_stage1", "_sheet")
"""The images of one output: ``{name}.png``, ``{name}_stage1.png``, ``{name}_sheet.png``; then ``{name}.json``."""


def output_names(stem: str, num_images: int) -> list[str]:
    """The per-image names of a generation: ``stem``, or ``stem_0`` … for several images."""
    return [stem] if num_images == 1 else [f"{stem}_{i}" for i in range(num_images)]


def output_files(stem: str, num_images: int, extra: tuple[str, ...] = ()) -> list[str]:
    """Every file a generation of ``num_images`` images named ``stem`` writes (``extra``: more suffixes, e.g. the
    batch's ``.error.json``)."""
    files = []
    for name in output_names(stem, num_images):
        files += [f"{name}{suffix}.png" for suffix in FILE_SUFFIXES] + [f"{name}.json"]
        files += [f"{name}{suffix}" for suffix in extra]
    return files


def write_outputs(
    output: TCIGOutput, out_dir: Path, stem: str, record: dict, colours: np.ndarray | None = None
) -> list[Path]:
    """Write ``{stem}.png``, ``{stem}_stage1.png``, ``{stem}_sheet.png`` and ``{stem}.json`` per image.

    Everything is written into a staging folder of this process inside ``out_dir`` first and moved into place
    afterwards, the sidecar last, so an interrupted run leaves no half-written file.

    Args:
        output: what the pipeline returned.
        out_dir: the (locked) output folder.
        stem: the checked file-name stem (see :func:`tcig.io.names.check_name`).
        record: what the sidecar records besides the output's settings.
        colours: ``uint8 [K, 3]`` colours of the layout's classes in the pictures (default: the standard palette).
    """
    n = output.images.shape[0]
    layout_image = colorize(output.layout, colours)
    row = min(40, max(12, SHEET_HEIGHT // (len(output.layout.classes) + 1)))
    legend = legend_image(output.layout, row=row, colours=colours)
    staging = make_staging(out_dir)
    written: list[Path] = []
    try:
        files: list[str] = []
        for i, name in enumerate(output_names(stem, n)):
            final = tensor_to_pil(output.images[i])
            stage1 = tensor_to_pil(output.stage1_images[i])
            sheet = contact_sheet(
                [
                    ("layout", layout_image),
                    ("stage 1", stage1),
                    ("final", final),
                    ("layout over final", draw_outlines(final, output.layout)),
                    ("classes", legend),
                ],
                height=SHEET_HEIGHT,
            )
            for suffix, image in (("", final), ("_stage1", stage1), ("_sheet", sheet)):
                image.save(staging / f"{name}{suffix}.png")
                files.append(f"{name}{suffix}.png")
            sidecar = {
                **record,
                "index": i,
                "files": {"image": f"{name}.png", "stage1": f"{name}_stage1.png", "sheet": f"{name}_sheet.png"},
                "settings": output.settings,
                "timings": output.timings,
                "classes": output.layout.classes,
                "history": output.history,
            }
            (staging / f"{name}.json").write_text(json.dumps(sidecar, indent=2, default=str))
            files.append(f"{name}.json")
        for name in sorted(files, key=lambda f: f.endswith(".json")):
            os.replace(staging / name, out_dir / name)
            written.append(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
