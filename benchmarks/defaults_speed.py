"""Seconds per image of the scenes set's defaults against the previous defaults, in one run on this machine.

``python benchmarks/defaults_speed.py [--repeats 3] [--layout examples/scene_beach.json]``: both pipelines are
loaded and warmed up first (the exemplar images of the colour start are drawn once per pipeline), then each runs
``--repeats`` times in turn; the ratio of the medians is the figure to quote (absolute times differ between
machines, and these are shared).
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
from tcig.settings import Stage1Settings, Stage2Settings

PREVIOUS = (
    Stage1Settings(steps=100, lr=0.03, seg_noise=0.1, seg_loss="ce"),
    Stage2Settings(strength=0.25, steps=30, guidance_scale=4.0),
)
"""The scenes set's defaults before issue 11 (one guide, noise start, 100 steps, strength 0.25)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="examples/scene_beach.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scenes = BUILTIN["scenes"]
    configs = {
        "previous": (TCIGPipeline.from_model_set(scenes.with_overrides(segmenters=[scenes.segmenters[0]])), *PREVIOUS),
        "new": (TCIGPipeline.from_model_set(scenes), scenes.stage1_settings(), scenes.stage2_settings()),
    }
    layout = read_layout(args.layout)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for pipe, stage1, stage2 in configs.values():  # warm-up
        pipe(layout.prompt, layout, stage1=replace(stage1, steps=2), stage2=stage2, progress=False)
    for repeat in range(args.repeats):
        for name, (pipe, stage1, stage2) in configs.items():
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(repeat)
            pipe(layout.prompt, layout, stage1=stage1, stage2=stage2, generator=generator, progress=False)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "seconds": times,
        "median_s": medians,
        "ratio_new_to_previous": medians["new"] / medians["previous"],
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
