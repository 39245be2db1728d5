"""TCIG works, not just runs: on the bundled scenes models it follows a layout that diffusion alone ignores.

Controllability is measured by the bundled evaluator (UperNet-ConvNeXt, trained on other seeds), never by the
SegFormer that guides stage 1.
"""

from pathlib import Path

import pytest
import torch

from tcig import TCIGPipeline
from tcig.layout_readers import read_layout
from tcig.metrics import layout_scores
from tcig.model_sets import BUILTIN
from tcig.segmenters import load_segmenter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("model_set", ["scenes", "scenes-pixel"])
def test_tcig_follows_the_layout_where_diffusion_alone_does_not(model_set):
    """The latent set, and the image-space set (stage 2 as SDEdit on pixels, the paper's second refiner)."""
    scenes = BUILTIN[model_set]
    assert scenes.evaluator not in [ref for ref, _ in scenes.segmenters]
    pipe = TCIGPipeline.from_model_set(scenes)
    evaluator = load_segmenter(scenes.evaluator)
    layout = read_layout(EXAMPLES / "scene_village.json")
    out = pipe(layout.prompt, layout, num_images=2, generator=torch.Generator().manual_seed(0), progress=False)
    tcig = layout_scores(evaluator, out.images, out.layout)["miou"]
    alone = pipe.refiner.text_to_image(
        [layout.prompt] * 2, 64, 64, scenes.stage2_settings(), torch.Generator().manual_seed(0), progress=False
    )
    baseline = layout_scores(evaluator, alone, out.layout)["miou"]
    # Measured on 2026-11-26 with the bundled models and the sets' defaults: latent TCIG 0.638, diffusion alone
    # 0.253; image-space TCIG 0.756, its diffusion alone 0.137 (the evaluator's own ceiling on rendered scenes is
    # 0.918). Issue 3 asks for >= 0.6 while diffusion alone stays far below it.
    assert tcig >= 0.6, f"TCIG evaluator mIoU {tcig:.3f}"
    assert baseline <= tcig - 0.25, f"diffusion alone {baseline:.3f} vs TCIG {tcig:.3f}"
