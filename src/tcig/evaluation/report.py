"""Summaries of a report folder: per method and variant, mean, standard deviation and 95 % confidence interval
of every per-case figure, KID (and FID when there are enough samples) against the reference images, and plots."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from tcig.evaluation.methods import METHODS
from tcig.evaluation.metrics import frechet_distance, kernel_inception_distance
from tcig.io.files import write_atomically
from tcig.io.pictures import pil_to_tensor

FIGURES = ("miou", "pixel_accuracy", "clip_score", "seconds_per_image")
MIN_KID_SAMPLES = 20  # fewer images give a KID that is mostly noise
SIZE_BINS = (("<1%", 0.0, 0.01), ("1-5%", 0.01, 0.05), (">5%", 0.05, 1.01))
"""Region sizes as shares of the image: a region is one class's pixels in one case's layout."""


@dataclass
class Stat:
    n: int
    mean: float
    std: float
    ci95: float  # half-width of the 95 % confidence interval of the mean (Student's t)

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} ± {self.ci95:.{digits}f}" if self.n > 1 else f"{self.mean:.{digits}f}"


def stat(values: list[float]) -> Stat | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    if n > 1:
        from scipy.stats import t

        ci = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    else:
        ci = 0.0
    return Stat(n, mean, std, ci)


def pooled_scores(rows: list[dict]) -> dict | None:
    """Dataset-level figures from rows with ``class_counts``: one confusion pooled over all cases (the ADE20K and
    COCO-Stuff convention) gives per-class IoU = Σ intersection / Σ union and their mean; the same pooling within
    each region-size bin of ``SIZE_BINS``; and the mean colour of each class region over the cases."""
    rows = [r for r in rows if r.get("class_counts")]
    if not rows:
        return None
    inter: dict[str, float] = defaultdict(float)
    union: dict[str, float] = defaultdict(float)
    bins = {name: [0.0, 0.0, 0] for name, _, _ in SIZE_BINS}
    colours: dict[str, list[list[float]]] = defaultdict(list)
    for row in rows:
        for name, (i, u, share) in row["class_counts"].items():
            inter[name] += i
            union[name] += u
            for bin_name, low, high in SIZE_BINS:
                if low <= share < high:
                    bins[bin_name][0] += i
                    bins[bin_name][1] += u
                    bins[bin_name][2] += 1
        for name, colour in (row.get("class_colours") or {}).items():
            colours[name].append(colour)
    class_iou = {name: inter[name] / union[name] for name in sorted(union) if union[name] > 0}
    return {
        "dataset_miou": sum(class_iou.values()) / len(class_iou) if class_iou else None,
        "pooled_class_iou": class_iou,
        "size_iou": {name: (i / u if u else None) for name, (i, u, _) in bins.items()},
        "size_regions": {name: n for name, (_, _, n) in bins.items()},
        "class_colours": {
            name: {
                "mean": torch.tensor(c).double().mean(0).tolist(),
                "std": torch.tensor(c).double().std(0).norm().item(),
            }
            for name, c in colours.items()
            if len(c) > 1
        },
    }


def colour_distances(entry: dict, reference: dict | None) -> dict | None:
    """Distance (RGB, 0-255) of each class's mean region colour from the reference images', and the reference's own
    spread over cases: a colour cast shows as distances far above that spread."""
    mine, theirs = (entry.get("pooled") or {}).get("class_colours"), (reference or {}).get("class_colours")
    if not mine or not theirs:
        return None
    distances = {
        name: float(torch.tensor(mine[name]["mean"]).sub(torch.tensor(theirs[name]["mean"])).norm())
        for name in mine
        if name in theirs
    }
    if not distances:
        return None
    within = [d <= theirs[name]["std"] for name, d in distances.items()]
    return {
        "per_class": distances,
        "mean": sum(distances.values()) / len(distances),
        "share_within_spread": sum(within) / len(within),
    }


def group(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["method"], row["variant"]].append(row)
    return dict(groups)


class SegmenterFeatures:
    """Image features from a segmenter's backbone: its deepest hidden state averaged over positions (as FID pools
    Inception's last map), unit-normalized like CLIP embeddings. Used with the evaluator, which never guided, so
    stage 1 cannot have optimized against it, unlike the guiding CLIP."""

    input_size = None  # the images' own size

    def __init__(self, segmenter) -> None:
        self.segmenter = segmenter
        self.device = segmenter.device

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        seg = self.segmenter
        out = seg.model(pixel_values=seg._inputs(images), output_hidden_states=True)
        states = getattr(out, "hidden_states", None) or getattr(out, "encoder_hidden_states", None)
        deepest = (states[-1] if states else out.encoder_last_hidden_state).float()  # Mask2Former: its backbone
        pooled = deepest.mean(dim=(2, 3)) if deepest.ndim == 4 else deepest.mean(dim=1)
        return torch.nn.functional.normalize(pooled, dim=-1)


def image_features(out: Path, rows: list[dict], extractor, batch: int = 64) -> torch.Tensor:
    """Features (``extractor.encode_image``) of every image the rows list, read back from the report folder."""
    paths = [out / p for row in rows for p in row["images"]]
    size = extractor.input_size
    feats = []
    for i in range(0, len(paths), batch):
        images = []
        for path in paths[i : i + batch]:
            with Image.open(path) as image:
                image = image.convert("RGB")
                images.append(pil_to_tensor(image.resize(size[::-1], Image.BICUBIC) if size else image))
        with torch.no_grad():
            feats.append(extractor.encode_image(torch.stack(images).to(extractor.device)).float().cpu())
    return torch.cat(feats) if feats else torch.empty(0)


def summarize(out: Path, rows: list[dict], extractor=None, seed: int = 0) -> list[dict]:
    """One entry per (method, variant): statistics of the figures, and KID/FID against the ``reference`` rows."""
    groups = group(rows)
    reference = groups.get(("reference", ""))
    enough = extractor is not None and reference and sum(len(r["images"]) for r in reference) >= MIN_KID_SAMPLES
    real = image_features(out, reference, extractor) if enough else None
    summary = []
    for (method, variant), members in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        entry = {"method": method, "variant": variant, "cases": len(members)}
        for figure in FIGURES:
            s = stat([m.get(figure) for m in members])
            entry[figure] = vars(s) if s else None
        peaks = [v for m in members for v in (m.get("peak_mb") or {}).values() if v is not None]
        entry["peak_mb"] = max(peaks) if peaks else None
        entry["pooled"] = pooled_scores(members)
        if real is not None:
            fake = image_features(out, members, extractor)
            if len(fake) >= MIN_KID_SAMPLES:
                # subsets of half the images, so that they differ and their spread means something
                subset = min(100, len(real) // 2, len(fake) // 2)
                kid, kid_std = kernel_inception_distance(
                    real, fake, subset_size=subset, generator=torch.Generator().manual_seed(seed)
                )
                entry["kid"] = {"mean": kid, "std": kid_std}
                if min(len(real), len(fake)) > real.shape[1]:
                    entry["fid"] = frechet_distance(real, fake)
        summary.append(entry)
    reference_pooled = next((e["pooled"] for e in summary if e["method"] == "reference"), None)
    for entry in summary:
        if entry["method"] != "reference":
            entry["colour_distance"] = colour_distances(entry, reference_pooled)
    return summary


REPORTED = ("reference", *METHODS)
"""The methods in the order the report shows them: the reference (the ceiling), TCIG, then the baselines."""


def _order(key: tuple[str, str]) -> tuple[int, str]:
    return (REPORTED.index(key[0]) if key[0] in REPORTED else len(REPORTED), key[1])


def markdown_table(summary: list[dict], header: dict) -> str:
    """The summary as a Markdown table, with the models that guided and evaluated above it."""
    lines = [
        f"# tcig eval: {header.get('title', 'report')}",
        "",
        f"- cases: {header.get('cases')} ({header.get('case_sources')}); seed {header.get('seed')}, "
        f"{header.get('size')}, {header.get('num_images')} image(s) per case",
        f"- guiding segmenter(s): {header.get('guides')}",
        f"- evaluator (never guided): {header.get('evaluator')}",
        f"- CLIP score by: {header.get('clip_score_model')}; KID/FID features: {header.get('features')}",
        f"- device: {header.get('device')}; stage-2 dtype: {header.get('dtype', '?')}; memory: "
        f"{header.get('memory_kind')}",
        f"- sampler (every method): {header.get('sampler') or header.get('schedulers', 'not recorded')}",
        "",
        "Mean ± half-width of the 95 % confidence interval over cases (Student's t); KID mean ± std over subsets. "
        "Dataset mIoU: one confusion pooled over all cases (the ADE20K / COCO-Stuff convention); IoU by region size: "
        "pooled over the regions (one class in one case) under 1 %, 1-5 % and over 5 % of the image; colour "
        "distance: RGB distance of each class's mean region colour from the references', averaged over classes "
        "(in brackets: the share of classes within the references' own spread).",
        "",
        "| method | variant | cases | evaluator mIoU | dataset mIoU | IoU <1% / 1-5% / >5% | pixel acc. | CLIP score "
        "| KID ×1e3 | FID | colour dist. | s/image | peak MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(entry: dict, key: str, digits: int = 3) -> str:
        value = entry.get(key)
        return Stat(**value).text(digits) if value else "—"

    for e in summary:
        kid = f"{1000 * e['kid']['mean']:.2f} ± {1000 * e['kid']['std']:.2f}" if e.get("kid") else "—"
        fid = f"{e['fid']:.3f}" if e.get("fid") is not None else "—"
        peak = f"{e['peak_mb']:.0f}" if e.get("peak_mb") is not None else "—"
        pooled = e.get("pooled") or {}
        dataset = f"{pooled['dataset_miou']:.3f}" if pooled.get("dataset_miou") is not None else "—"
        sizes = " / ".join(_number(v) for v in (pooled.get("size_iou") or {}).values()) or "—"
        colour = e.get("colour_distance")
        colour = f"{colour['mean']:.1f} ({colour['share_within_spread']:.0%})" if colour else "—"
        lines.append(
            f"| {e['method']} | {e['variant'] or '—'} | {e['cases']} | {cell(e, 'miou')} | {dataset} | {sizes} | "
            f"{cell(e, 'pixel_accuracy')} | {cell(e, 'clip_score', 1)} | {kid} | {fid} | {colour} | "
            f"{cell(e, 'seconds_per_image', 2)} | {peak} |"
        )
    lines += ["", *class_table(summary)]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def class_table(summary: list[dict]) -> list[str]:
    """Pooled IoU of every class (columns) for every method and variant (rows), as Markdown lines."""
    classes = sorted({c for e in summary for c in ((e.get("pooled") or {}).get("pooled_class_iou") or {})})
    if not classes:
        return []
    lines = [
        "Pooled IoU per class (Σ intersection / Σ union over all cases):",
        "",
        "| method | variant | " + " | ".join(classes) + " |",
        "| --- | --- | " + " | ".join("---" for _ in classes) + " |",
    ]
    for e in summary:
        ious = (e.get("pooled") or {}).get("pooled_class_iou") or {}
        cells = " | ".join(_number(ious.get(c)) for c in classes)
        lines.append(f"| {e['method']} | {e['variant'] or '—'} | {cells} |")
    return lines


def write_plots(out: Path, summary: list[dict]) -> list[Path]:
    """``miou_vs_strength.png`` (TCIG's strength sweep against the other methods), ``miou_vs_steps.png`` (where
    several stage-1 step counts ran, with seconds per image) and ``quality_vs_control.png`` (KID or CLIP score
    against evaluator mIoU, one point per method and variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    tcig = [e for e in summary if e["method"] == "tcig" and e.get("miou")]
    if tcig:
        fig, ax = plt.subplots(figsize=(6, 4))
        by_base = defaultdict(list)
        for e in tcig:
            base, start = _split_start(e["variant"])
            by_base[base].append((start, e["miou"]["mean"], e["miou"]["ci95"]))
        for base, points in by_base.items():
            points.sort()
            xs, ys, cis = zip(*points, strict=True)
            ax.errorbar(xs, ys, yerr=cis, marker="o", capsize=3, label=f"tcig {base}")
        for e in summary:
            if e["method"] != "tcig" and e.get("miou"):
                label = e["method"] + (f" {e['variant']}" if e["variant"] and e["method"] != "stage1" else "")
                ax.axhline(e["miou"]["mean"], linestyle="--", linewidth=1, label=label, color=_colour(e["method"]))
        x_label = "stage-2 strength or noise level"
        written.append(_finish_miou_plot(plt, fig, ax, x_label, out / "miou_vs_strength.png"))
    by_steps = _steps_curves(summary)
    if by_steps:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, points in by_steps.items():
            xs, ys, cis, secs = zip(*points, strict=True)
            ax.errorbar(xs, ys, yerr=cis, marker="o", capsize=3, label=label)
            for x, y, sec in zip(xs, ys, secs, strict=True):
                ax.annotate(f"{sec:.1f} s", (x, y), fontsize=6, xytext=(3, -9), textcoords="offset points")
        written.append(_finish_miou_plot(plt, fig, ax, "stage-1 steps", out / "miou_vs_steps.png"))
    points = [e for e in summary if e.get("miou")]
    use_kid = any(e.get("kid") for e in points)
    if points:
        fig, ax = plt.subplots(figsize=(6, 4))
        for e in points:
            y = 1000 * e["kid"]["mean"] if use_kid and e.get("kid") else (e.get("clip_score") or {}).get("mean")
            if y is None:
                continue
            ax.scatter(e["miou"]["mean"], y, color=_colour(e["method"]))
            label = e["method"] + (f"\n{_split_start(e['variant'])[1]:g}" if e["method"] == "tcig" else "")
            ax.annotate(label, (e["miou"]["mean"], y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("evaluator mIoU (control)")
        ax.set_ylabel("KID ×1000 vs references (lower is better)" if use_kid else "CLIP score")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(save_figure(fig, out / "quality_vs_control.png"))
        plt.close(fig)
    return written


def _finish_miou_plot(plt, fig, ax, xlabel: str, path: Path) -> Path:
    """Labels, legend and grid of an mIoU plot; saved to ``path`` and closed."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("evaluator mIoU")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def _steps_curves(summary: list[dict]) -> dict[str, list[tuple]]:
    """(steps, mIoU, CI, seconds per image) per method and variant-without-steps, where several step counts ran."""
    curves: dict[str, list[tuple]] = defaultdict(list)
    for e in summary:
        parts = e["variant"].split(",")
        steps = [p for p in parts if p.startswith("steps=")]
        if e["method"] not in ("tcig", "stage1") or not steps or not e.get("miou"):
            continue
        label = e["method"] + " " + ",".join(p for p in parts if not p.startswith(("steps=", "guides=", "loss=")))
        seconds = (e.get("seconds_per_image") or {}).get("mean", float("nan"))
        curves[label.strip()].append((int(steps[0][6:]), e["miou"]["mean"], e["miou"]["ci95"], seconds))
    return {k: sorted(v) for k, v in curves.items() if len(v) > 1}


PLOT_COLOURS = ("black", "tab:red", "tab:orange", "tab:gray", "tab:blue", "tab:green", "tab:purple", "tab:cyan",
                "tab:olive", "tab:pink")  # fmt: skip
"""One colour per method of :data:`REPORTED`, in its order (reference black, TCIG red)."""


def _colour(method: str) -> str:
    index = REPORTED.index(method) if method in REPORTED else len(REPORTED)
    return PLOT_COLOURS[index] if index < len(PLOT_COLOURS) else "tab:brown"


def save_figure(fig, path: Path) -> Path:
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    return path


def write_report(out: Path, rows: list[dict], header: dict, extractor=None) -> list[dict]:
    """``summary.json``, ``summary.md`` and the plots; returns the summary."""
    summary = summarize(out, rows, extractor, seed=header.get("seed", 0))
    _write_text(out / "summary.json", json.dumps({"header": header, "summary": summary}, indent=2))
    _write_text(out / "summary.md", markdown_table(summary, header))
    write_plots(out, summary)
    return summary


def _write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _split_start(variant: str) -> tuple[str, float]:
    """A TCIG variant name split into its base and where stage 2 started (``...,strength=0.35`` or ``noise=0.45``)."""
    base, _, start = variant.rpartition(",")
    return base, float(start.partition("=")[2])
