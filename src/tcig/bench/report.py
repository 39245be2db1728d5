"""Markdown tables of ``tcig bench`` results."""

from __future__ import annotations

from pathlib import Path


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def markdown(table: str, rows: list[dict]) -> str:
    if table == "main":
        header = ["method", "seconds", "ratio to the first", "stage 1 s", "stage 2 s", "stage-1 steps", "peak MB"]
        body = [
            [
                r["name"],
                _num(r["seconds"]),
                _num(r["ratio"], 2),
                _num(r.get("stage1_s")),
                _num(r.get("stage2_s")),
                _num(r.get("stage1_steps")),
                _num(r["peak_mb"], 0),
            ]
            for r in rows
        ]
    elif table == "profile":
        header = ["part of a stage-1 step (forward and backward)", "ms per step", "share of a whole step"]
        body = [[r["part"], _num(r["ms_per_step"], 1), f"{100 * r['share']:.0f} %"] for r in rows]
    elif table == "levers":
        header = ["lever", "off: s/image", "on: s/image", "speed-up"]
        body = [
            [
                r["lever"],
                _num(r["before_s_per_image"]),
                _num(r["after_s_per_image"]),
                f"{r['speedup']:.2f}×" if r["speedup"] is not None else "failed",
            ]
            for r in rows
        ]
    else:
        header = ["axis", "value", "seconds", "s/image", "stage 1 s", "stage 2 s", "peak MB"]
        body = [
            [
                r["axis"],
                str(r["value"]),
                _num(r["seconds"]),
                _num(r["seconds_per_image"]),
                _num(r["stage1_s"]),
                _num(r["stage2_s"]),
                _num(r["peak_mb"], 0),
            ]
            for r in rows
        ]
    return _table(header, body)


def plot_scaling(rows: list[dict], path: Path, title: str) -> Path | None:
    """Seconds per image and peak memory against each scaling axis (resolution, segmenters, batch), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tcig.evaluation.report import save_figure

    axes_names = [a for a in ("resolution", "segmenters", "batch") if any(r["axis"] == a for r in rows)]
    if not axes_names:
        return None
    fig, axes = plt.subplots(1, len(axes_names), figsize=(4 * len(axes_names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], axes_names, strict=True):
        points = [r for r in rows if r["axis"] == name and r.get("seconds") is not None]
        xs = [r["value"] for r in points]
        ax.plot(xs, [r["seconds_per_image"] for r in points], "o-", color="tab:red", label="s/image")
        ax.set_xlabel(
            {"resolution": "output size (px)", "segmenters": "guiding segmenters", "batch": "images per call"}[name]
        )
        ax.set_ylabel("seconds per image", color="tab:red")
        ax.set_xticks(xs)
        ax.set_ylim(bottom=0)
        memory = [r["peak_mb"] / 1024 if r.get("peak_mb") else None for r in points]
        if any(m is not None for m in memory):
            twin = ax.twinx()
            twin.plot(xs, memory, "s--", color="tab:blue")
            twin.set_ylabel("peak memory (GiB)", color="tab:blue")
            twin.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
