"""How much of the image a class's region prompt fills (issue 21): MultiDiffusion assumes that a region's prompt,
given the whole canvas, draws its class there; with masks it keeps only the region. This draws N images of the set's
exemplar prompt of every class ("a scene with a boat") and reports the share of pixels the evaluator gives that
class, beside the share the class covers in the held-out rendered scenes where it appears.

    python benchmarks/region_prompt_fill.py [--models scenes] [--images 8]
"""

from __future__ import annotations

import argparse
import json

import torch

from tcig.evaluation.cases import load_cases
from tcig.evaluation.metrics import predict_labels
from tcig.models.model_sets import load_model_set
from tcig.models.segmenters import load_segmenter
from tcig.pipeline import TCIGPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="scenes")
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    model_set = load_model_set(args.models)
    pipe = TCIGPipeline.from_model_set(model_set)
    evaluator = load_segmenter(model_set.evaluator)
    cases = load_cases("scenes:100")
    names = list(evaluator.labels)
    stage2 = model_set.stage2_settings()
    rows = {}
    for index, name in enumerate(names):
        prompt = model_set.exemplar_prompt.format(name=name)
        generators = [torch.Generator().manual_seed(i) for i in range(args.images)]
        images = pipe.refiner.text_to_image([prompt] * args.images, 64, 64, stage2, generators, progress=False)
        predicted = predict_labels(evaluator, images)
        masks = [c.layout.label_map == c.layout.classes.index(name) for c in cases if name in c.layout.classes]
        shares = [float(m.float().mean()) for m in masks if m.any()]
        rows[name] = {
            "prompt": prompt,
            "share_drawn": round(float((predicted == index).float().mean()), 3),
            "share_in_scenes": round(sum(shares) / len(shares), 3) if shares else None,
        }
        print(f"{name:10s} {rows[name]['share_drawn']:.3f} (in scenes where present: {rows[name]['share_in_scenes']})")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
