"""TCIG's defaults and the refiner's text-to-image (50 steps) with the channels-last memory format off, on for every
network, and on for the stage-1 networks only, interleaved in one process on the bundled scenes set.

``python benchmarks/channels_last_speed.py [--rounds 5]`` prints the medians and the ratio to text-to-image of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tcig import TCIGPipeline
from tcig.layout.readers import read_layout
from tcig.settings import Stage2Settings

MODES = {"off": (False, False), "every network": (True, True), "stage-1 networks": (True, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pipe = TCIGPipeline.from_model_set("scenes")
    layout = read_layout(pipe.model_set.demo_layout)
    t2i = Stage2Settings(steps=50, guidance_scale=4.0)

    def seconds(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def tcig():
        pipe(layout.prompt, layout, generator=torch.Generator().manual_seed(0), progress=False)

    def reference():
        pipe.refiner.text_to_image([layout.prompt], 64, 64, t2i, torch.Generator().manual_seed(0), False)

    def use(stage1: bool, refiner: bool) -> None:
        for module in [pipe.clip.model] + [seg.model for seg, _ in pipe.segmenters]:
            module.to(memory_format=torch.channels_last if stage1 else torch.contiguous_format)
        for module in pipe.refiner.networks().values():
            module.to(memory_format=torch.channels_last if refiner else torch.contiguous_format)

    tcig(), reference()  # warm-up
    times = {mode: {"tcig": [], "text-to-image": []} for mode in MODES}
    for _ in range(args.rounds):
        for mode, switches in MODES.items():
            use(*switches)
            times[mode]["tcig"].append(seconds(tcig))
            times[mode]["text-to-image"].append(seconds(reference))
    for mode, runs in times.items():
        a, b = statistics.median(runs["tcig"]), statistics.median(runs["text-to-image"])
        print(f"channels-last {mode}: TCIG {a:.3f} s, text-to-image {b:.3f} s, ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
