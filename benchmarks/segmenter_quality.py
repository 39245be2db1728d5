"""Per-class IoU of bundled segmenters on 300 held-out rendered scenes (seeds 9,100,000+, apart from the 100 eval
scenes): ``python benchmarks/segmenter_quality.py swin objects segformer evaluator``. Classes a specialist lacks
count as its ``background``."""

from __future__ import annotations

import sys

import torch

from tcig.evaluation.metrics import class_iou, confusion_matrix, predict_labels
from tcig.layout.vocabularies import match_labels
from tcig.models.model_sets import BUNDLED
from tcig.models.segmenters import load_segmenter
from tcig.scenes.data import to_tensors
from tcig.scenes.render import SCENE_CLASSES, render_scenes


def main(names: list[str]) -> None:
    images, labels, _ = render_scenes(range(9_100_000, 9_100_300), 64)
    x, y = to_tensors(images, labels)
    for name in names:
        seg = load_segmenter(str(BUNDLED / name))
        background = seg.labels.index("background") if "background" in seg.labels else None
        lookup = torch.tensor([background if m is None else m for m in match_labels(SCENE_CLASSES, seg.labels)])
        confusion = sum(
            confusion_matrix(predict_labels(seg, x[i : i + 50]), lookup[y[i : i + 50]], len(seg.labels))
            for i in range(0, len(x), 50)
        )
        iou = class_iou(confusion)
        per_class = ", ".join(f"{label} {float(v):.3f}" for label, v in zip(seg.labels, iou, strict=True))
        print(f"{name}: mIoU {float(iou.nanmean()):.3f} ({per_class})")


if __name__ == "__main__":
    main(sys.argv[1:] or ["segformer", "swin", "objects", "evaluator"])
