"""Seconds per image of the scenes set's defaults against its defaults before issue 20 and its own text-to-image,
in one run on this machine.

``python benchmarks/defaults_speed.py [--repeats 3] [--layout examples/scene_beach.json] [--out FILE.json]``: both
settings run on one pipeline (no on-disk cache: every call draws the images of the prompt for its seed, and the
class exemplars once per process), after a warm-up; then each runs ``--repeats`` times in turn, beside the refiner's
text-to-image with 50 steps (the yardstick of ``tcig bench --models scenes``). The ratios of the medians are the
figures to quote (absolute times differ between machines, and these are shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from tcig import TCIGPipeline
from tcig.layout.readers import read_layout
from tcig.models.model_sets import BUILTIN

PREVIOUS = {"steps": 30, "init_steps": 30, "guides_per_step": 0}
"""The stage-1 settings of the scenes set before issue 20 that its new defaults change (the start images were then
drawn at the output size, which is the stage-1 size at the scenes' 64 px)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="examples/scene_beach.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scenes = BUILTIN["scenes"]
    pipe = TCIGPipeline.from_model_set(scenes)
    layout = read_layout(args.layout)
    stage2 = scenes.stage2_settings()
    t2i = replace(stage2, steps=50)
    runs = {
        "previous": lambda g: pipe(layout.prompt, layout, stage1=scenes.stage1_settings(**PREVIOUS), generator=g,
                                   progress=False),
        "new": lambda g: pipe(layout.prompt, layout, generator=g, progress=False),
        "text-to-image, 50 steps": lambda g: pipe.refiner.text_to_image([layout.prompt], 64, 64, t2i, g, False),
    }  # fmt: skip
    for run in runs.values():  # warm-up; draws the class exemplars of both settings
        run(torch.Generator().manual_seed(10_000))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(torch.Generator().manual_seed(repeat))
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    yardstick = medians["text-to-image, 50 steps"]
    result = {
        "seconds": times,
        "median_s": medians,
        "ratio_to_text_to_image": {name: m / yardstick for name, m in medians.items()},
        "ratio_new_to_previous": medians["new"] / medians["previous"],
        "threads": torch.get_num_threads(),
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
