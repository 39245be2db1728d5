"""What a fresh process pays before its first image, and what a larger output costs, on the bundled scenes set.

``python benchmarks/start_costs.py --out docs/performance/cpu_start_costs.json``

1. Two fresh processes share one new on-disk cache of start images. The first finds it empty (the first run ever of
   this set); the second finds what the first drew. Each makes three images, one call each, with seeds 0, 1, 2 (a
   new seed draws new images of the prompt; the class exemplars are kept). The figure: the first call's seconds
   over the mean of the later calls, in each process.
2. ``tcig generate`` at 256×256 with stage 1 at 64 against the same at 64×64, each in its own process with a warm
   cache, timed by the sidecar's ``total_s`` (loading excluded) and by the wall clock of the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ROOT / "examples" / "scene_beach.json"

IN_PROCESS = """
import json, sys, time, torch
from tcig import TCIGPipeline
from tcig.io.cache import TensorCache
from tcig.layout.readers import read_layout_and_prompt
layout, prompt = read_layout_and_prompt(sys.argv[1], None, "")
pipe = TCIGPipeline.from_model_set("scenes", start_cache=TensorCache(sys.argv[2]))
calls = []
for seed in (0, 1, 2):
    start = time.perf_counter()
    out = pipe(prompt, layout, generator=torch.Generator().manual_seed(seed), progress=False)
    calls.append({"seed": seed, "seconds": time.perf_counter() - start, **out.timings})
print(json.dumps(calls))
"""


def in_process(cache: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(LAYOUT), cache], capture_output=True, text=True, check=True
    )
    calls = json.loads(result.stdout.strip().splitlines()[-1])
    later = sum(c["seconds"] for c in calls[1:]) / len(calls[1:])
    return {"calls": calls, "first_over_later": calls[0]["seconds"] / later}


def generate(size: int, out: Path) -> dict:
    args = ["tcig", "generate", "--models", "scenes", "--layout", str(LAYOUT), "--out", str(out), "--seed", "0",
            "--height", str(size), "--width", str(size), "--stage1-size", "64", "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    wall = time.perf_counter() - start
    timings = json.loads((out / "scene_beach_s0.json").read_text())["timings"]
    return {"size": size, "wall_s": wall, **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        os.environ["TCIG_CACHE_DIR"] = cache  # the generate runs below use it too (its start-images folder)
        starts = str(Path(cache) / "start-images")
        result = {"empty_cache": in_process(starts), "warm_cache": in_process(starts)}
        generate(64, Path(tmp) / "warm")  # fills the command's cache folder for both sizes' stage 1
        small, large = generate(64, Path(tmp) / "g64"), generate(256, Path(tmp) / "g256")
        result["generate"] = {
            "64": small,
            "256": large,
            "ratio_total_s": large["total_s"] / small["total_s"],
            "ratio_wall": large["wall_s"] / small["wall_s"],
        }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v.get("first_over_later") for k, v in result.items() if k != "generate"}))
    sizes = result["generate"]
    print(f"256 over 64: total_s {sizes['ratio_total_s']:.2f}, wall {sizes['ratio_wall']:.2f}")


if __name__ == "__main__":
    main()
