"""TCIG works, not just runs: on the bundled scenes models it follows a layout that diffusion alone ignores, and its
ensemble of guides does better than one guide.

Controllability is measured by the bundled evaluator (UperNet-ConvNeXt, trained on other seeds), which never guides.
"""

import functools
from pathlib import Path

import pytest
import torch

from tcig import TCIGPipeline
from tcig.evaluation.metrics import layout_scores
from tcig.layout.readers import read_layout
from tcig.models.model_sets import BUILTIN
from tcig.models.segmenters import load_segmenter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MEASURED = {"scenes": 0.895, "scenes-pixel": 0.919, "scenes-flow": 0.912}
"""Evaluator mIoU on examples/scene_village.json (seed 0, two images) with the sets' defaults, measured on 2026-12-01
(issue 11; before it: 0.638 and 0.756) and, for the flow transformer, on 2026-12-05 (issue 19). Diffusion alone:
0.253, 0.137 and 0.303. The tests allow 0.05 for other machines."""
ENSEMBLE_MARGIN = 0.03
"""Measured the same day on both example scene layouts: three guides 0.863, the SegFormer alone 0.804 (+0.059)."""


@functools.cache
def _pipeline(model_set: str, single_guide: bool = False) -> TCIGPipeline:
    scenes = BUILTIN[model_set]
    if single_guide:
        scenes = scenes.with_overrides(segmenters=[scenes.segmenters[0]])
    return TCIGPipeline.from_model_set(scenes)


@functools.cache
def _evaluator(model_set: str):
    return load_segmenter(BUILTIN[model_set].evaluator)


@functools.cache
def _miou(model_set: str, layout_name: str, single_guide: bool = False) -> float:
    """Evaluator mIoU of TCIG (seed 0, two images) on an example layout; each run once for all the tests here."""
    pipe = _pipeline(model_set, single_guide)
    layout = read_layout(EXAMPLES / layout_name)
    out = pipe(layout.prompt, layout, num_images=2, generator=torch.Generator().manual_seed(0), progress=False)
    return layout_scores(_evaluator(model_set), out.images, out.layout)["miou"]


@pytest.mark.parametrize("model_set", ["scenes", "scenes-pixel", "scenes-flow"])
def test_tcig_follows_the_layout_where_diffusion_alone_does_not(model_set):
    """The latent set, the image-space set (stage 2 as SDEdit on pixels, the paper's second refiner) and the
    rectified-flow transformer (SD3's MMDiT, through the flow-matching sampler)."""
    scenes = BUILTIN[model_set]
    assert scenes.evaluator not in [ref for ref, _ in scenes.segmenters]
    layout = read_layout(EXAMPLES / "scene_village.json")
    tcig = _miou(model_set, "scene_village.json")
    alone = _pipeline(model_set).refiner.text_to_image(
        [layout.prompt] * 2, 64, 64, scenes.stage2_settings(), torch.Generator().manual_seed(0), progress=False
    )
    baseline = layout_scores(_evaluator(model_set), alone, layout.resized(64, 64, "stretch"))["miou"]
    assert tcig >= MEASURED[model_set] - 0.05, f"TCIG evaluator mIoU {tcig:.3f}"
    assert baseline <= tcig - 0.3, f"diffusion alone {baseline:.3f} vs TCIG {tcig:.3f}"


def test_the_ensemble_of_guides_beats_the_single_guide_on_the_example_layouts():
    """The three bundled guides (SegFormer, UperNet-Swin, the object specialist) against the SegFormer alone, with
    every other setting the same, on both example scene layouts."""
    layouts = ("scene_village.json", "scene_beach.json")
    both = [sum(_miou("scenes", name, single) for name in layouts) / 2 for single in (False, True)]
    assert both[0] >= both[1] + ENSEMBLE_MARGIN, f"ensemble {both[0]:.3f} vs single guide {both[1]:.3f}"
