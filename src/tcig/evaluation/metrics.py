"""Controllability and quality metrics: confusion-matrix IoU, CLIP retrieval, KID and FID on features."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tcig.layout import IGNORE


@torch.no_grad()
def predict_labels(
    segmenter, images: torch.Tensor, size: tuple[int, int] | None = None, queries: list[str] | None = None
) -> torch.Tensor:
    """Arg-max class per pixel ``[B,H,W]`` after bilinear upsampling of the logits to ``size`` (default: input's)."""
    logits = segmenter(images, queries)
    size = size or tuple(images.shape[-2:])
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K,K]`` counts, rows = target class, columns = predicted class; ``IGNORE`` target pixels are skipped."""
    valid = target != IGNORE
    index = target[valid].long() * num_classes + pred[valid].long().clamp(0, num_classes - 1)
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_iou(confusion: torch.Tensor) -> torch.Tensor:
    """IoU per class; NaN for a class absent from both target and prediction."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean IoU over the classes that occur in the target or the prediction."""
    return float(class_iou(confusion).nanmean())


def pixel_accuracy(confusion: torch.Tensor) -> float:
    return float(confusion.diag().sum().double() / confusion.sum().clamp(min=1).double())


def retrieval_accuracy(text_embeds: torch.Tensor, image_embeds: torch.Tensor, k: int = 1) -> float:
    """Text→image retrieval: the fraction of texts whose own image (same row) is among the ``k`` most similar."""
    sims = text_embeds @ image_embeds.T
    topk = sims.topk(k, dim=1).indices
    return float((topk == torch.arange(len(sims))[:, None]).any(1).float().mean())


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 20,
    subset_size: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel ``(x·y/d + 1)^3``, averaged over
    random subsets; returns (mean, std). Works on any features, not only Inception's."""
    real, fake = real.double(), fake.double()
    n = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=generator)[:n]]
        y = fake[torch.randperm(len(fake), generator=generator)[:n]]
        kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        mmd = ((kxx.sum() - kxx.diag().sum()) + (kyy.sum() - kyy.diag().sum())) / (n * (n - 1)) - 2 * kxy.mean()
        values.append(float(mmd))
    t = torch.tensor(values)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID's Fréchet distance between Gaussians fitted to two feature sets (needs more samples than dimensions)."""
    from scipy import linalg

    mu1, mu2 = real.double().mean(0), fake.double().mean(0)
    s1, s2 = torch.cov(real.double().T), torch.cov(fake.double().T)
    covmean = torch.from_numpy(linalg.sqrtm((s1 @ s2).numpy()).real)
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * covmean.trace())


def layout_scores(segmenter, images: torch.Tensor, layout) -> dict:
    """How well ``images[B,3,H,W]`` follow ``layout`` according to ``segmenter`` (use one that did not guide).

    The layout's class names are matched to the segmenter's labels; pixels of a class it lacks are not scored.
    Returns mIoU, pixel accuracy and per-class IoU (by layout class name), over the whole batch; ``class_counts``
    gives each class's intersection and union in pixels and its share of the image (for pooled, dataset-level IoU
    and IoU by region size), and ``class_colours`` the images' mean colour in each class region.
    """
    from tcig.layout.vocabularies import match_labels

    labels = segmenter.labels
    mapping = match_labels(layout.classes, labels)
    lookup = torch.tensor([IGNORE if m is None else m for m in mapping] + [IGNORE])
    h, w = images.shape[-2:]
    target = lookup[layout.resized(h, w, "stretch").label_map].expand(images.shape[0], -1, -1)
    confusion = confusion_matrix(predict_labels(segmenter, images), target, len(labels))
    ious = class_iou(confusion)
    per_class = {name: float(ious[m]) for name, m in zip(layout.classes, mapping, strict=True) if m is not None}
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    area = confusion.sum(1)
    total = int(target.numel())
    counts = {
        name: [int(tp[m]), int(union[m]), float(area[m]) / total]
        for name, m in zip(layout.classes, mapping, strict=True)
        if m is not None and area[m] > 0
    }
    return {
        "miou": mean_iou(confusion),
        "pixel_accuracy": pixel_accuracy(confusion),
        "class_iou": per_class,
        "class_counts": counts,
        "class_colours": region_colours(images, layout),
    }


def region_colours(images: torch.Tensor, layout) -> dict[str, list[float]]:
    """Mean RGB (0-255) of the images over each class region of the layout that has pixels."""
    h, w = images.shape[-2:]
    label_map = layout.resized(h, w, "stretch").label_map
    pixels = images.float().permute(1, 0, 2, 3).reshape(3, -1)
    flat = label_map.expand(images.shape[0], -1, -1).reshape(-1)
    colours = {}
    for k, name in enumerate(layout.classes):
        chosen = flat == k
        if chosen.any():
            colours[name] = [round(float(v) * 255, 2) for v in pixels[:, chosen].mean(dim=1)]
    return colours
