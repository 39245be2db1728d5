"""Draw docs/scenes_tcig.png: TCIG on the example scene layouts with the bundled models, beside diffusion alone.

Run from the repository root: ``python docs/make_scenes_figure.py`` (about a minute on 2 CPU cores).
"""

from pathlib import Path

import torch
from PIL import Image

from tcig import TCIGPipeline
from tcig.evaluation.metrics import layout_scores
from tcig.io.pictures import colorize, contact_sheet, draw_outlines, tensor_to_pil
from tcig.layout.readers import read_layout
from tcig.models.model_sets import BUILTIN
from tcig.models.segmenters import load_segmenter

LAYOUTS = ["examples/scene_beach.json", "examples/scene_village.json"]


def main() -> None:
    scenes = BUILTIN["scenes"]
    pipe = TCIGPipeline.from_model_set(scenes)
    evaluator = load_segmenter(scenes.evaluator)
    rows = []
    for path in LAYOUTS:
        layout = read_layout(path)
        out = pipe(layout.prompt, layout, generator=torch.Generator().manual_seed(0), progress=False)
        alone = pipe.refiner.text_to_image(
            [layout.prompt], 64, 64, scenes.stage2_settings(), torch.Generator().manual_seed(0), progress=False
        )
        tcig = layout_scores(evaluator, out.images, out.layout)["miou"]
        base = layout_scores(evaluator, alone, out.layout)["miou"]
        final = tensor_to_pil(out.images[0])
        rows.append(
            contact_sheet(
                [
                    (Path(path).name, colorize(out.layout)),
                    ("stage 1", tensor_to_pil(out.stage1_images[0])),
                    (f"TCIG (mIoU {tcig:.2f})", final),
                    ("layout over TCIG", draw_outlines(final, out.layout)),
                    (f"diffusion alone ({base:.2f})", tensor_to_pil(alone[0])),
                ],
                height=192,
            )
        )
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    sheet.save("docs/scenes_tcig.png")


if __name__ == "__main__":
    main()
