"""Seconds per image of TCIG with the three bundled refiner families, and of each refiner's own text-to-image, in one
run on this machine.

``python benchmarks/refiner_families_speed.py [--repeats 3] [--layout examples/scene_beach.json]``: the pipelines of
``scenes`` (latent UNet), ``scenes-pixel`` (image-space UNet) and ``scenes-flow`` (rectified-flow transformer) are
loaded and warmed up first (the colour start's images are drawn once per pipeline), then each runs ``--repeats``
times in turn with its set's defaults; the medians' ratios to ``scenes`` are the figures to quote (absolute times
differ between machines, and these are shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import replace

import torch

from tcig import TCIGPipeline
from tcig.layout.readers import read_layout
from tcig.models.model_sets import BUILTIN

SETS = ("scenes", "scenes-pixel", "scenes-flow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="examples/scene_beach.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    layout = read_layout(args.layout)
    pipes = {name: TCIGPipeline.from_model_set(BUILTIN[name]) for name in SETS}
    for name, pipe in pipes.items():  # warm-up, and the start images drawn once
        pipe(layout.prompt, layout, stage1=replace(BUILTIN[name].stage1_settings(), steps=2), progress=False)
    tcig: dict[str, list[float]] = {name: [] for name in SETS}
    alone: dict[str, list[float]] = {name: [] for name in SETS}
    stages: dict[str, list[dict]] = {name: [] for name in SETS}
    for repeat in range(args.repeats):
        for name, pipe in pipes.items():
            start = time.perf_counter()
            out = pipe(layout.prompt, layout, generator=torch.Generator().manual_seed(repeat), progress=False)
            tcig[name].append(time.perf_counter() - start)
            stages[name].append({k: round(v, 3) for k, v in out.timings.items()})
            settings = BUILTIN[name].stage2_settings()
            start = time.perf_counter()
            pipe.refiner.text_to_image([layout.prompt], 64, 64, settings, torch.Generator().manual_seed(repeat),
                                       progress=False)  # fmt: skip
            alone[name].append(time.perf_counter() - start)
    tcig_median = {name: statistics.median(t) for name, t in tcig.items()}
    result = {
        "tcig_s": tcig,
        "tcig_median_s": tcig_median,
        "tcig_ratio_to_scenes": {name: tcig_median[name] / tcig_median["scenes"] for name in SETS},
        "text_to_image_median_s": {name: statistics.median(t) for name, t in alone.items()},
        "stages_s": stages,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
