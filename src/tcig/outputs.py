"""Writing a generation's files: final image, stage-1 image, contact sheet and a JSON sidecar, atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .pipeline import TCIGOutput
from .visualize import colorize, contact_sheet, draw_outlines, legend_image, tensor_to_pil

SHEET_HEIGHT = 256


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a hidden temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def prepare_out_dir(path: str | Path) -> Path:
    """Create the output folder (before any model loads) and check that it can be written."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise ConfigError(f"cannot write to the output folder '{out}': {err.strerror}") from err
    return out


def write_outputs(output: TCIGOutput, out_dir: Path, stem: str, record: dict) -> list[Path]:
    """Write ``{stem}.png``, ``{stem}_stage1.png``, ``{stem}_sheet.png`` and ``{stem}.json`` per image.

    Everything is written into a temporary folder inside ``out_dir`` first and moved into place afterwards,
    the sidecar last, so an interrupted run leaves no half-written file.
    """
    n = output.images.shape[0]
    layout_image = colorize(output.layout)
    legend = legend_image(output.layout, row=min(40, max(12, SHEET_HEIGHT // (len(output.layout.classes) + 1))))
    staging = Path(tempfile.mkdtemp(prefix=".tcig-", dir=out_dir))
    written: list[Path] = []
    try:
        files: list[str] = []
        for i in range(n):
            name = stem if n == 1 else f"{stem}_{i}"
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
