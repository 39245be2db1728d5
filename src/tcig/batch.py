"""``tcig batch``: many generations from a JSONL manifest, resumable, split across processes.

Each manifest line is a JSON object: ``{"layout": PATH, "prompt": TEXT, "seed": N, "name": NAME, ...overrides}``
(``layout`` required; relative paths are read from the manifest's folder; ``name`` defaults to
``LAYOUT-STEM_sSEED``). Overrides are stage-1/stage-2 settings and sizes (see ``OVERRIDES``). Every item writes its
files with :func:`~tcig.outputs.write_outputs` (staged, then moved into place, the JSON sidecar last); the sidecar
records the item's inputs, so a rerun skips the items whose sidecar matches and redoes the rest. A failed item is
written as ``NAME.error.json`` and the run goes on. Under ``accelerate launch`` the items are dealt round-robin to
the processes by manifest order, so every item gets the same generator seed, and the same image, as in a single run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .errors import ConfigError, TCIGError
from .outputs import write_atomically, write_outputs
from .refiners import Stage2Settings
from .stage1 import Stage1Settings

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STAGE1_KEYS = {f.name for f in fields(Stage1Settings)}
STAGE2_KEYS = {"stage2_steps" if f.name == "steps" else f.name for f in fields(Stage2Settings)}
SIZE_KEYS = {"height", "width", "fit", "stage1_size", "parameterization"}
OVERRIDES = STAGE1_KEYS | STAGE2_KEYS | SIZE_KEYS
ITEM_KEYS = {"layout", "prompt", "seed", "name", "vocabulary", "legend"} | OVERRIDES


@dataclass
class BatchItem:
    line: int
    layout: Path
    seed: int
    name: str
    prompt: str | None = None
    vocabulary: str | None = None
    legend: Path | None = None
    overrides: dict = field(default_factory=dict)

    def inputs(self, model_set: dict) -> dict:
        """What the item's result depends on: a rerun skips the item when its sidecar holds the same record."""
        return {
            "layout": str(self.layout),
            "layout_sha256": _digest(self.layout),
            "legend_sha256": _digest(self.legend) if self.legend else None,
            "vocabulary": self.vocabulary,
            "prompt": self.prompt,
            "seed": self.seed,
            "overrides": self.overrides,
            "model_set": model_set,
        }


def _digest(path: Path) -> str | None:
    """SHA-256 of a file, or of a folder's files (names and contents); None if unreadable."""
    h = hashlib.sha256()
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in files:
            h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
            h.update(p.read_bytes())
    except OSError:
        return None
    return h.hexdigest()


def read_manifest(path: Path) -> list[BatchItem]:
    """Parse and check every line first, so a bad manifest fails before any model loads."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the manifest '{path}': {err}") from err
    items: list[BatchItem] = []
    names: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: not valid JSON ({err.msg}); each line must be one JSON object") from err
        if not isinstance(entry, dict):
            raise ConfigError(f'{where}: each line must be a JSON object with at least a "layout"')
        unknown = sorted(set(entry) - ITEM_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ITEM_KEYS))}")
        if not isinstance(entry.get("layout"), str):
            raise ConfigError(f'{where}: "layout" (a path) is required')
        seed = entry.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f'{where}: "seed" must be a non-negative integer')
        layout = (path.parent / entry["layout"]).expanduser()
        name = entry.get("name", f"{layout.stem}_s{seed}")
        if not isinstance(name, str) or not NAME.match(name) or name.endswith(".json"):
            raise ConfigError(
                f"{where}: name {name!r} would write outside the output folder or hide a file; use letters, "
                "digits, '.', '_' and '-' only, not starting with '.'"
            )
        if name in names:
            raise ConfigError(f"{where}: name '{name}' is already used on line {names[name]}; give each item a name")
        names[name] = number
        legend = entry.get("legend")
        items.append(
            BatchItem(
                number,
                layout,
                seed,
                name,
                entry.get("prompt"),
                entry.get("vocabulary"),
                (path.parent / legend) if isinstance(legend, str) else None,
                {k: v for k, v in entry.items() if k in OVERRIDES},
            )
        )
    if not items:
        raise ConfigError(f"the manifest '{path}' has no item; write one JSON object per line")
    return items


@dataclass
class BatchSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def is_finished(item: BatchItem, out_dir: Path, inputs: dict) -> bool:
    sidecar = out_dir / f"{item.name}.json"
    try:
        return (
            json.loads(sidecar.read_text()).get("batch_inputs") == inputs and (out_dir / f"{item.name}.png").is_file()
        )
    except (OSError, ValueError, AttributeError):
        return False


def run_item(pipe, item: BatchItem, out_dir: Path, inputs: dict, record: dict) -> None:
    """Generate one item and write its files; raises TCIGError for anything the item's inputs caused."""
    from .layout_readers import read_layout_and_prompt

    layout, prompt = read_layout_and_prompt(
        item.layout, item.prompt, 'give "prompt" on the manifest line', vocabulary=item.vocabulary, legend=item.legend
    )
    o = item.overrides
    ms = pipe.model_set
    stage1 = ms.stage1_settings(**{k: v for k, v in o.items() if k in STAGE1_KEYS})
    stage2 = ms.stage2_settings(
        **{("steps" if k == "stage2_steps" else k): v for k, v in o.items() if k in STAGE2_KEYS}
    )
    try:
        output = pipe(
            prompt,
            layout,
            height=o.get("height"),
            width=o.get("width"),
            fit=o.get("fit"),
            stage1_size=o.get("stage1_size"),
            parameterization=o.get("parameterization", "pixel"),
            stage1=stage1,
            stage2=stage2 if pipe.refiner is not None else None,
            generator=torch.Generator().manual_seed(item.seed),
            progress=False,
        )
    except TypeError as err:  # a wrongly typed override reaching the settings
        raise ConfigError(f"a setting has the wrong type: {err}") from err
    except torch.cuda.OutOfMemoryError as err:
        raise TCIGError("out of GPU memory; lower the size, stage1_size or crops of this item") from err
    write_outputs(
        output, out_dir, item.name, {**record, "seed": item.seed, "layout": str(item.layout), "batch_inputs": inputs}
    )


def run_batch(
    pipe, items: list[BatchItem], out_dir: Path, record: dict, rank: int = 0, world: int = 1, progress: bool = True
) -> BatchSummary:
    """Run this process's share of ``items`` (every ``world``-th from ``rank``), skipping finished ones."""
    summary = BatchSummary()
    start = time.perf_counter()
    mine = items[rank::world]
    bar = tqdm(mine, desc=f"batch {rank + 1}/{world}" if world > 1 else "batch", disable=not progress, unit="item")
    for item in bar:
        inputs = item.inputs(record["model_set"])
        if is_finished(item, out_dir, inputs):
            summary.skipped.append(item.name)
            continue
        error_file = out_dir / f"{item.name}.error.json"
        try:
            run_item(pipe, item, out_dir, inputs, record)
        except TCIGError as err:
            summary.failed[item.name] = str(err)
            logger.warning("item %s (line %d) failed: %s", item.name, item.line, err)
            payload = {"line": item.line, "error": str(err), "batch_inputs": inputs}
            write_atomically(error_file, lambda tmp, p=payload: tmp.write_text(json.dumps(p, indent=2)))
            continue
        error_file.unlink(missing_ok=True)
        summary.done.append(item.name)
    summary.seconds = time.perf_counter() - start
    return summary


def remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of a run that was killed hold no finished output: remove them."""
    for stale in out_dir.glob(".tcig-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
