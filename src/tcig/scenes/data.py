"""Rendered scene datasets for training and evaluation: disjoint seed ranges, cached as ``.npz``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

SEED_RANGES = {
    "segmenter": range(0, 1_000_000),
    "evaluator": range(1_000_000, 2_000_000),
    "clip": range(2_000_000, 3_000_000),
    "diffusion": range(3_000_000, 4_000_000),
    "guide-swin": range(4_000_000, 5_000_000),
    "specialist": range(5_000_000, 6_000_000),
    "flow": range(6_000_000, 7_000_000),
    "controlnet": range(7_000_000, 8_000_000),
    "heldout": range(9_000_000, 10_000_000),
}
"""Each bundled model trains on its own seed range; figures are measured on ``heldout`` scenes no model saw."""


@dataclass
class SceneSet:
    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray  # uint8 [N, H, W]
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """A random batch: images ``[B,3,H,W]`` in [0,1], labels ``[B,H,W]`` (long), captions."""
        idx = torch.randint(len(self), (size,), generator=generator).numpy()
        return to_tensors(self.images[idx], self.labels[idx]) + ([self.captions[i] for i in idx],)


def to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    return x, torch.from_numpy(np.ascontiguousarray(labels)).long()


def scene_set(purpose: str, count: int, size: int = 64, cache_dir: Path | None = None) -> SceneSet:
    """The first ``count`` scenes of ``purpose``'s seed range, rendered once and cached in ``cache_dir``."""
    from tcig.scenes.render import render_scenes

    seeds = SEED_RANGES[purpose][:count]
    path = cache_dir / f"{purpose}_{count}_{size}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        data = np.load(path)
        return SceneSet(data["images"], data["labels"], [str(c) for c in data["captions"]])
    logger.info("rendering %d %s scenes at %d px", count, purpose, size)
    images, labels, captions = render_scenes(seeds, size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels, captions=np.array(captions))
        tmp.replace(path)
    return SceneSet(images, labels, list(captions))


def class_colours(count: int = 200, size: int = 64) -> dict[str, tuple[int, int, int]]:
    """Mean RGB of each scene class over ``count`` scenes of the diffusion model's training range: the natural
    colours a user would paint a layout with (the ``sdedit-layout`` baseline)."""
    from tcig.scenes.render import SCENE_CLASSES, render_scenes

    images, labels, _ = render_scenes(SEED_RANGES["diffusion"][:count], size)
    pixels, classes = images.reshape(-1, 3).astype(np.float64), labels.reshape(-1)
    colours = {}
    for index, name in enumerate(SCENE_CLASSES):
        chosen = pixels[classes == index]
        if len(chosen):
            colours[name] = tuple(int(round(v)) for v in chosen.mean(0))
    return colours
