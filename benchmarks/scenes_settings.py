"""Pick the bundled `scenes` set's stage-1/2 defaults by measurement (not a test: it takes minutes).

For held-out rendered scenes (their label maps as layouts, their captions as prompts) and the example scene layouts,
runs TCIG under a few settings and reports the evaluator's mIoU (UperNet-ConvNeXt, never used for guidance), the
guiding SegFormer's mIoU (to show the gap an adversarial stage 1 would open), CLIP score, and seconds per image;
plus diffusion alone (no layout) with the same prompts and seeds.

    python benchmarks/scenes_settings.py --cases 10 --out docs/scenes_settings.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from tcig import Stage1Settings, TCIGPipeline
from tcig.clip_scorer import CLIPScorer
from tcig.layout_readers import read_layout
from tcig.metrics import layout_scores
from tcig.model_sets import BUILTIN
from tcig.scenes import render_scene, scene_layout
from tcig.scenes.data import SEED_RANGES
from tcig.segmenters import load_segmenter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cases(count: int):
    layouts = [read_layout(EXAMPLES / "scene_beach.json"), read_layout(EXAMPLES / "scene_village.json")]
    layouts += [scene_layout(render_scene(seed)) for seed in SEED_RANGES["heldout"][: max(0, count - 2)]]
    return layouts


def mean(values):
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/scenes_settings.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenes = BUILTIN["scenes"]
    pipe = TCIGPipeline.from_model_set(scenes)
    evaluator = load_segmenter(scenes.evaluator)
    guide = pipe.segmenters[0][0]
    clip = CLIPScorer.from_pretrained(scenes.clip)
    layouts = cases(args.cases)
    grid = {"steps": [60, 100], "seg_noise": [0.0, 0.1], "strength": [0.25, 0.35, 0.5]}
    rows = []

    def record(method, settings, images_per_case, seconds):
        ev = [layout_scores(evaluator, img, lay)["miou"] for img, lay in zip(images_per_case, layouts, strict=True)]
        gd = [layout_scores(guide, img, lay)["miou"] for img, lay in zip(images_per_case, layouts, strict=True)]
        cs = [float(clip.score(img, [lay.prompt])[0]) for img, lay in zip(images_per_case, layouts, strict=True)]
        row = {
            "method": method,
            **settings,
            "evaluator_miou": round(mean(ev), 4),
            "guide_miou": round(mean(gd), 4),
            "clip_score": round(mean(cs), 2),
            "seconds_per_image": round(seconds / len(layouts), 2),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    stage2_base = scenes.stage2_settings()
    start, alone = time.perf_counter(), []
    for i, layout in enumerate(layouts):
        alone.append(
            pipe.refiner.text_to_image(
                [layout.prompt], 64, 64, stage2_base, torch.Generator().manual_seed(i), progress=False
            )
        )
    record("diffusion alone", {"steps": stage2_base.steps}, alone, time.perf_counter() - start)

    for steps, seg_noise in itertools.product(grid["steps"], grid["seg_noise"]):
        stage1 = Stage1Settings(**{**scenes.stage1, "steps": steps, "seg_noise": seg_noise})
        outputs, start = [], time.perf_counter()
        for i, layout in enumerate(layouts):
            outputs.append(
                pipe(
                    layout.prompt,
                    layout,
                    height=64,
                    width=64,
                    stage1=stage1,
                    refine=False,
                    generator=torch.Generator().manual_seed(i),
                    progress=False,
                )
            )
        s1_seconds = time.perf_counter() - start
        record("stage1", {"steps": steps, "seg_noise": seg_noise}, [o.images for o in outputs], s1_seconds)
        for strength in grid["strength"]:
            stage2 = scenes.stage2_settings(strength=strength)
            start, refined = time.perf_counter(), []
            for i, (o, layout) in enumerate(zip(outputs, layouts, strict=True)):
                refined.append(
                    pipe.refiner.refine(
                        o.stage1_images, [layout.prompt], stage2, torch.Generator().manual_seed(i), progress=False
                    )
                )
            record(
                "tcig",
                {"steps": steps, "seg_noise": seg_noise, "strength": strength},
                refined,
                s1_seconds + time.perf_counter() - start,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cases": len(layouts), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
