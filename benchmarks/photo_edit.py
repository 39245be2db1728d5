"""Editing a photo by layout on the bundled models: how much of the photo stays, how well the edit follows.

The example photo (examples/photos/lake.jpg) is segmented with ``tcig layout from-image``, its lake repainted as
meadow and a house added, and generated with and without ``--init-image``; printed: agreement of the photo's layout
with the renderer's own labels, the mean absolute difference to the photo where the layout did not change (away
from the edits), and the evaluator's view of the edited regions. Run from the repository root:

    python benchmarks/photo_edit.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tcig.cli.main import main
from tcig.evaluation.metrics import predict_labels
from tcig.models.model_sets import load_model_set
from tcig.models.segmenters import load_segmenter
from tcig.scenes.render import SCENE_CLASSES, render_scene

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photos" / "lake.jpg"
PHOTO_SEED = 12_000_007
HOUSE = (slice(44, 56), slice(40, 54))
PROMPT = "a house in a green meadow with trees, a large rock and mountains at dusk with clouds"


def run(seeds: list[int]) -> None:
    evaluator = load_segmenter(load_model_set("scenes").evaluator)
    labels = list(evaluator.labels)
    photo = np.asarray(Image.open(PHOTO)).astype(np.float32) / 255
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        assert main(["layout", "from-image", str(PHOTO), str(work / "lake.png"), "--models", "scenes"]) == 0
        before = np.asarray(Image.open(work / "lake.png")).astype(np.int64)
        classes = json.loads((work / "lake.json").read_text())["classes"]
        truth = np.array(SCENE_CLASSES)[render_scene(PHOTO_SEED, 64).labels]
        print(f"from-image: {100 * (np.array(classes)[before] == truth).mean():.1f} % of pixels as the renderer's")
        after = before.copy()
        after[before == classes.index("sea")] = classes.index("grass")
        after[HOUSE] = len(classes)
        Image.fromarray(after.astype(np.uint8)).save(work / "edit.png")
        (work / "edit.json").write_text(json.dumps({"classes": [*classes, "house"], "prompt": PROMPT}))
        same = torch.from_numpy(before == after)
        same = ~F.max_pool2d((~same).float()[None, None], 9, 1, 4)[0, 0].bool().numpy()  # away from the edits
        was_lake = before == classes.index("sea")
        was_lake[HOUSE] = False
        house = after == len(classes)
        for seed in seeds:
            for name, extra in (("edited", ["--init-image", str(PHOTO)]), ("fresh", [])):
                out = work / f"{name}_{seed}"
                args = ["generate", "--models", "scenes", "--layout", str(work / "edit.png"), "--out", str(out)]
                assert main([*args, "--seed", str(seed), "--no-progress", *extra]) == 0
                image = np.asarray(Image.open(out / f"edit_s{seed}.png")).astype(np.float32) / 255
                seen = predict_labels(evaluator, torch.from_numpy(image).permute(2, 0, 1)[None])[0].numpy()
                is_house = seen == labels.index("house")
                print(
                    f"seed {seed} {name:>6}: unchanged regions differ from the photo by "
                    f"{np.abs(image - photo)[same].mean():.3f}; meadow on "
                    f"{100 * (seen[was_lake] == labels.index('grass')).mean():.0f} % of the former lake; house IoU "
                    f"{(is_house & house).sum() / (is_house | house).sum():.2f}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    run([int(s) for s in parser.parse_args().seeds.split(",")])
