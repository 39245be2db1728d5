"""Quality figures of the bundled scenes models, on held-out scenes no model trained on.

``python -m tcig.scenes.quality --models DIR`` prints and writes (JSON):
- guiding and evaluator segmenter mIoU on freshly rendered scenes (the ceiling of any controllability figure);
- CLIP text→image retrieval accuracy (top-1 / top-5 among groups of 100 held-out scenes);
- KID of text-to-image samples of the latent UNet (`sd/`), the image-space UNet (`pixel/`) and the rectified-flow
  transformer (`flow/`) against rendered scenes, in the bundled CLIP's image-feature space;
- a grid of rendered scenes above diffusion samples for the same captions.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from tcig.evaluation.metrics import (
    class_iou,
    confusion_matrix,
    kernel_inception_distance,
    mean_iou,
    pixel_accuracy,
    predict_labels,
    retrieval_accuracy,
)
from tcig.io.pictures import tensor_to_pil
from tcig.models.clip_scorer import CLIPScorer
from tcig.models.segmenters import load_segmenter
from tcig.scenes.data import SceneSet, scene_set, to_tensors
from tcig.scenes.render import SCENE_CLASSES

logger = logging.getLogger(__name__)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def segmenter_quality(folder: Path, scenes: SceneSet) -> dict:
    seg = load_segmenter(str(folder))
    k = len(SCENE_CLASSES)
    confusion = torch.zeros(k, k, dtype=torch.long)
    for part in _chunks(len(scenes), 64):
        images, labels = to_tensors(scenes.images[part], scenes.labels[part])
        confusion += confusion_matrix(predict_labels(seg, images), labels, k)
    per_class = {name: round(float(v), 4) for name, v in zip(SCENE_CLASSES, class_iou(confusion), strict=True)}
    return {
        "miou": round(mean_iou(confusion), 4),
        "pixel_accuracy": round(pixel_accuracy(confusion), 4),
        "class_iou": per_class,
        "scenes": len(scenes),
    }


@torch.no_grad()
def clip_features(clip: CLIPScorer, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([clip.encode_image(images[part]) for part in _chunks(len(images), 128)])


@torch.no_grad()
def clip_quality(folder: Path, scenes: SceneSet, group: int = 100) -> dict:
    clip = CLIPScorer.from_pretrained(str(folder))
    images, _ = to_tensors(scenes.images, scenes.labels)
    image_embeds = clip_features(clip, images)
    text_embeds = torch.cat([clip.encode_text(scenes.captions[part]) for part in _chunks(len(scenes), 128)])
    top1, top5 = [], []
    for part in _chunks(len(scenes) - len(scenes) % group, group):
        top1.append(retrieval_accuracy(text_embeds[part], image_embeds[part], 1))
        top5.append(retrieval_accuracy(text_embeds[part], image_embeds[part], 5))
    return {
        "text_to_image_top1": round(sum(top1) / len(top1), 4),
        "text_to_image_top5": round(sum(top5) / len(top5), 4),
        "group": group,
        "chance_top1": 1 / group,
        "groups": len(top1),
    }


@torch.no_grad()
def diffusion_samples(folder: Path, captions: list[str], steps: int, guidance: float, seed: int) -> torch.Tensor:
    """Text-to-image samples of a refiner folder (``sd/``, ``pixel/`` or ``flow/``), loaded as its model set does."""
    from tcig.models.refiners import load_refiner
    from tcig.scenes.train import REFINER_OPTIONS
    from tcig.settings import Stage2Settings

    refiner = load_refiner(str(folder), **REFINER_OPTIONS.get(folder.name, {}))
    settings = Stage2Settings(steps=steps, guidance_scale=guidance)
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            refiner.text_to_image(captions[part], 64, 64, settings, generator=generator, progress=False)
            for part in _chunks(len(captions), 32)
        ]
    )


def diffusion_quality(
    models: Path, name: str, scenes: SceneSet, count: int, steps: int, guidance: float
) -> tuple[dict, torch.Tensor]:
    """KID (in the bundled CLIP's image features) and CLIP score of ``models/name``'s samples for held-out
    captions, against the rendered scenes of those captions."""
    clip = CLIPScorer.from_pretrained(str(models / "clip"))
    real, _ = to_tensors(scenes.images[:count], scenes.labels[:count])
    fake = diffusion_samples(models / name, scenes.captions[:count], steps, guidance, seed=0)
    g = torch.Generator().manual_seed(0)
    kid, kid_std = kernel_inception_distance(clip_features(clip, real), clip_features(clip, fake), generator=g)
    # Reference: KID between two disjoint sets of real scenes, the floor a perfect generator would reach.
    other, _ = to_tensors(scenes.images[count : 2 * count], scenes.labels[count : 2 * count])
    floor, _ = kernel_inception_distance(clip_features(clip, real), clip_features(clip, other), generator=g)
    clip_score = float(clip.score(fake, scenes.captions[:count]).mean())
    result = {
        "kid_clip_features": round(kid, 5),
        "kid_std": round(kid_std, 5),
        "kid_real_vs_real": round(floor, 5),
        "clip_score": round(clip_score, 2),
        "samples": count,
        "steps": steps,
        "guidance_scale": guidance,
    }
    return result, fake


def sample_grid(real: torch.Tensor, fake: torch.Tensor, path: Path, columns: int = 8) -> None:
    """Rows of rendered scenes, each followed by a row of diffusion samples for the same captions."""
    from PIL import Image

    n = min(len(real), len(fake), 4 * columns)
    tiles = []
    for row in range(0, n, columns):
        tiles += [real[row : row + columns], fake[row : row + columns]]
    h, w = real.shape[-2:]
    grid = Image.new("RGB", (columns * (w + 2), len(tiles) * (h + 2)), "white")
    for r, row in enumerate(tiles):
        for c, image in enumerate(row):
            grid.paste(tensor_to_pil(image), (c * (w + 2), r * (h + 2)))
    grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcig.scenes.quality", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", type=Path, required=True, help="folder of segformer/ evaluator/ clip/ sd/ pixel/ flow/"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/scenes_quality.json"))
    parser.add_argument("--grid", type=Path, default=Path("docs/scenes_samples.png"))
    parser.add_argument("--pixel-grid", type=Path, default=Path("docs/scenes_samples_pixel.png"))
    parser.add_argument("--flow-grid", type=Path, default=Path("docs/scenes_samples_flow.png"))
    parser.add_argument("--scenes", type=int, default=1000, help="held-out scenes for mIoU and retrieval")
    parser.add_argument("--samples", type=int, default=200, help="diffusion samples for KID")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance-scale", type=float, default=4.0)
    parser.add_argument(
        "--only",
        default="segformer,evaluator,clip,sd,pixel,flow",
        help="comma-separated models to measure; the others keep their figures in --out",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    only = {m.strip() for m in args.only.split(",")}
    scenes = scene_set("heldout", max(args.scenes, 2 * args.samples))
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report["heldout_seeds"] = "9000000+"
    for name in ("segformer", "evaluator"):
        if name in only and (args.models / name).is_dir():
            report[name] = segmenter_quality(args.models / name, scenes)
    if "clip" in only and (args.models / "clip").is_dir():
        report["clip"] = clip_quality(args.models / "clip", scenes)
    real = to_tensors(scenes.images[:32], scenes.labels[:32])[0]
    refiners = (
        ("sd", "diffusion", args.grid),
        ("pixel", "pixel_diffusion", args.pixel_grid),
        ("flow", "flow_diffusion", args.flow_grid),
    )
    for name, key, grid in refiners:
        if name in only and (args.models / name).is_dir():
            report[key], fake = diffusion_quality(
                args.models, name, scenes, args.samples, args.steps, args.guidance_scale
            )
            sample_grid(real, fake[:32], grid)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
