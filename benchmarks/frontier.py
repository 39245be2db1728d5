"""The speed/quality frontier: evaluator mIoU against seconds per image for every method and variant of `tcig eval`
reports, with the Pareto front through the TCIG variants and the baselines as points.

``python benchmarks/frontier.py REPORT [REPORT ...] --out docs/performance/frontier_scenes.png [--default NAME]``
writes the plot and a JSON file beside it (one row per method and variant: cases, mean mIoU with its 95 % half-width,
mean seconds per image, and whether the point is on the front). Seconds are comparable only within one report
(one run on one machine); mIoU only over the same cases, so every point is averaged over the cases all share.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from tcig.evaluation.report import save_figure, stat
from tcig.evaluation.runner import read_results


def points(reports: list[Path], paired_with: str | None = None) -> list[dict]:
    """Mean mIoU and seconds per image of each (method, variant) over the cases every one of them ran, and with
    ``paired_with`` (a TCIG variant) the mean paired difference from it with its 95 % half-width."""
    scores: dict[tuple[str, str], dict[str, tuple[float, float | None]]] = defaultdict(dict)
    for report in reports:
        for row in read_results(report):
            if row["method"] == "reference" or row.get("miou") is None:
                continue
            name = row["variant"].split(",")[0] if row["method"] == "tcig" else ""
            scores[(row["method"], name)][row["case"]] = (row["miou"], row.get("seconds_per_image"))
    shared = set.intersection(*(set(cases) for cases in scores.values()))
    cases = sorted(shared)
    anchor = [scores[("tcig", paired_with)][c][0] for c in cases] if paired_with else None
    out = []
    for (method, variant), by_case in sorted(scores.items()):
        values = [by_case[c] for c in cases]
        mious = [m for m, _ in values]
        seconds = [s for _, s in values if s is not None]
        row = {
            "method": method,
            "variant": variant,
            "cases": len(mious),
            "miou": statistics.mean(mious),
            "miou_ci95": stat(mious).ci95,
            "seconds_per_image": statistics.mean(seconds) if seconds else None,
        }
        if anchor:
            diffs = [m - a for m, a in zip(mious, anchor, strict=True)]
            row.update({f"paired_vs_{paired_with}": statistics.mean(diffs), "paired_ci95": stat(diffs).ci95})
        out.append(row)
    tcig = [p for p in out if p["method"] == "tcig" and p["seconds_per_image"] is not None]
    for p in out:
        p["on_front"] = p in tcig and not any(
            q["seconds_per_image"] <= p["seconds_per_image"] and q["miou"] > p["miou"] for q in tcig if q is not p
        )
    return out


def plot(rows: list[dict], path: Path, default: str | None, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6))
    tcig = [r for r in rows if r["method"] == "tcig" and r["seconds_per_image"] is not None]
    front = sorted((r for r in tcig if r["on_front"]), key=lambda r: r["seconds_per_image"])
    ax.plot([r["seconds_per_image"] for r in front], [r["miou"] for r in front], "-", color="tab:red", alpha=0.5)
    for r in tcig:
        marker = "*" if r["variant"] == default else "o"
        ax.errorbar(r["seconds_per_image"], r["miou"], yerr=r["miou_ci95"], fmt=marker, color="tab:red",
                    ms=12 if marker == "*" else 5, alpha=0.9 if r["on_front"] else 0.45, capsize=2)  # fmt: skip
        ax.annotate(r["variant"], (r["seconds_per_image"], r["miou"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    for r in rows:
        if r["method"] != "tcig" and r["seconds_per_image"] is not None:
            ax.errorbar(r["seconds_per_image"], r["miou"], yerr=r["miou_ci95"], fmt="s", color="tab:blue", capsize=2)
            ax.annotate(r["method"], (r["seconds_per_image"], r["miou"]), fontsize=7, color="tab:blue",
                        xytext=(4, -9), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("seconds per image")
    ax.set_ylabel("evaluator mIoU (mean over cases, 95 % CI)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="tcig eval output folders")
    parser.add_argument("--out", type=Path, required=True, help="the plot (.png); the JSON goes beside it")
    parser.add_argument("--default", help="the variant that is the set's defaults (drawn as a star)")
    parser.add_argument("--title", default="speed against control")
    parser.add_argument("--paired", help="a TCIG variant to which every point's paired difference is given")
    args = parser.parse_args()
    rows = points(args.reports, args.paired)
    plot(rows, args.out, args.default, args.title)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    for r in sorted(rows, key=lambda r: r["seconds_per_image"] or 0):
        front = "front" if r["on_front"] else ""
        seconds = f"{r['seconds_per_image']:.2f}" if r["seconds_per_image"] is not None else "—"
        paired = f"  paired {r[f'paired_vs_{args.paired}']:+.3f} ± {r['paired_ci95'] or 0:.3f}" if args.paired else ""
        mean = f"{r['miou']:.3f} ± {r['miou_ci95'] or 0:.3f}"
        print(f"{r['method']:14} {r['variant']:12} {mean}{paired}  {seconds} s  {front}")


if __name__ == "__main__":
    main()
