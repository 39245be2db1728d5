"""What ``tcig app`` adds to a generation: a run through the app's queue (progress after every step, a stage-1
preview every 3 steps, the files written as ``tcig generate`` writes them) against the same pipeline call alone.

``python benchmarks/app_overhead.py [--repeats 3] [--layout examples/scene_beach.json]``: one pipeline serves
both, warmed up first (the colour start's exemplars are drawn once); then the two run in turn ``--repeats`` times
and the ratio of the medians is the figure to quote (absolute times differ between machines, and these are shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tcig import TCIGPipeline
from tcig.app.painting import encode_png
from tcig.app.studio import Studio, data_url
from tcig.layout.readers import read_layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="examples/scene_beach.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pipe = TCIGPipeline.from_model_set("scenes")
    layout = read_layout(args.layout)
    with tempfile.TemporaryDirectory() as out:
        studio = Studio(pipe, Path(out))
        rgba, _ = studio.painter.painting(layout, *pipe.output_size(layout, None, None, pipe.resolution))
        body = {
            "client": "bench",
            "painting": data_url(encode_png(rgba)),
            "prompt": layout.prompt,
            "seed": 0,
        }
        painted = studio.painted_layout(body)  # what the app generates for: the same layout, read from its painting

        def alone() -> None:
            pipe(layout.prompt, painted, generator=torch.Generator().manual_seed(0), progress=False)

        def through_app() -> None:
            job = studio.queue.submit("bench", studio.request(body))
            while not job.finished:
                time.sleep(0.02)
            assert job.state == "done", job.error

        alone()  # warm-up: the exemplar images
        seconds: dict[str, list[float]] = {"pipeline alone": [], "through tcig app": []}
        for _ in range(args.repeats):
            for name, run in (("pipeline alone", alone), ("through tcig app", through_app)):
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
        studio.queue.close()
    medians = {name: statistics.median(times) for name, times in seconds.items()}
    ratio = medians["through tcig app"] / medians["pipeline alone"]
    print(json.dumps({"seconds": seconds, "median_s": medians, "app_over_alone": round(ratio, 3)}, indent=2))


if __name__ == "__main__":
    main()
