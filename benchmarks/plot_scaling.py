"""Merge the scaling tables of several ``tcig bench`` JSON files into one plot (rows that failed are left out).

    python benchmarks/plot_scaling.py docs/performance/h200_sd15_scaling.json \
        docs/performance/h200_sd15_segmenters.json --out docs/performance/h200_sd15_scaling.png
"""

import argparse
import json
from pathlib import Path

from tcig.bench.report import plot_scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows, titles = [], set()
    for path in args.files:
        result = json.loads(path.read_text())
        # a later file's rows replace an earlier file's rows on the same axis (e.g. a rerun after a failure)
        axes = {r["axis"] for r in result["scaling"] if r.get("seconds") is not None}
        rows = [r for r in rows if r["axis"] not in axes] + [r for r in result["scaling"] if r["axis"] in axes]
        env = result["environment"]
        titles.add(
            f"{result['rig'].get('arch', result['rig'].get('model_set'))} on {env['device_name']}, {env['dtype']}"
        )
    plot_scaling(rows, args.out, "; ".join(sorted(titles)))


if __name__ == "__main__":
    main()
