"""``tcig batch``: many generations from a JSONL manifest, resumable, split across processes.

Each manifest line is a JSON object: ``{"layout": PATH, "prompt": TEXT, "seed": N, "name": NAME, ...settings}``
(``layout`` required; ``init_image``: a photo to edit by layout, as ``tcig generate --init-image``; relative paths
are read from the manifest's folder; ``name`` defaults to
``LAYOUT-STEM_sSEED``). Settings are any of :mod:`tcig.settings` by key (``steps``, ``stage2_steps``, ``height``
...), checked with the line number before any model loads. Every item writes its files with
:func:`~tcig.io.outputs.write_outputs` (staged, then moved into place, the JSON sidecar last); the sidecar records the
item's inputs, so a rerun skips the items whose sidecar matches and redoes the rest. A failed item, whatever the
failure, is written as ``NAME.error.json`` and the run goes on. Under ``accelerate launch`` the items are dealt
round-robin to the processes by manifest order, so every item gets the same generator seed, and the same image, as in
a single run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tcig.errors import ConfigError, TCIGError
from tcig.io.files import read_input_text, write_json_atomically
from tcig.io.names import check_distinct, check_name
from tcig.io.outputs import output_files, write_outputs
from tcig.settings import OPTIONS, SizeSettings, Stage1Settings, Stage2Settings, check_seed, split_settings

logger = logging.getLogger(__name__)

PATH_KEYS = ("layout", "legend", "init_image")
"""Keys whose value is a file, read from the manifest's folder when relative."""
ITEM_KEYS = {"prompt", "seed", "name", "vocabulary", "palette", *PATH_KEYS} | set(OPTIONS)
RESERVED = ("batch_summary.json",)
"""Files of the run itself; no item may be named so that it writes one."""
ERROR_SUFFIX = ".error.json"


@dataclass
class BatchItem:
    line: int
    layout: Path
    seed: int
    name: str
    prompt: str | None = None
    vocabulary: str | None = None
    legend: Path | None = None
    palette: str | None = None
    overrides: dict = field(default_factory=dict)
    init_image: Path | None = None

    def inputs(self, model_set: dict) -> dict:
        """What the item's result depends on: a rerun skips the item when its sidecar holds the same record."""
        return {
            "layout": str(self.layout),
            "layout_sha256": _digest(self.layout),
            "legend_sha256": _digest(self.legend) if self.legend else None,
            "vocabulary": self.vocabulary,
            "palette": self.palette,
            "init_image_sha256": _digest(self.init_image) if self.init_image else None,
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
    """Parse and check every line first, so a bad manifest fails before any model loads: keys, value types and
    bounds (named by key and line), seeds, names that stay in the output folder and do not collide."""
    text = read_input_text(path, "manifest")
    items: list[BatchItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            items.append(_read_item(path, number, line))
    if not items:
        raise ConfigError(f"the manifest '{path}' has no item; write one JSON object per line")
    files = [
        (file, f"manifest line {item.line} (name '{item.name}')")
        for item in items
        for file in output_files(item.name, 1, (ERROR_SUFFIX,))
    ]
    check_distinct(files, reserved=RESERVED)
    return items


def _read_item(path: Path, number: int, text: str) -> BatchItem:
    where = f"{path}:{number}: "
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{where}not valid JSON ({err.msg}); each line must be one JSON object") from err
    if not isinstance(entry, dict):
        raise ConfigError(f'{where}each line must be a JSON object with at least a "layout"')
    unknown = sorted(set(entry) - ITEM_KEYS)
    if unknown:
        raise ConfigError(f"{where}unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ITEM_KEYS))}")
    for key in ("prompt", "name", "vocabulary", "palette", *PATH_KEYS):
        if key in entry and not (isinstance(entry[key], str) or (entry[key] is None and key != "layout")):
            raise ConfigError(f'{where}"{key}" must be a string, got {type(entry[key]).__name__}')
    if not isinstance(entry.get("layout"), str) or not entry["layout"].strip():
        raise ConfigError(f'{where}"layout" (a path) is required')
    seed = check_seed(entry.get("seed", 0), f'{where}"seed"')
    overrides = {k: v for k, v in entry.items() if k in OPTIONS}
    split_settings(overrides, where)  # types and bounds, named by key
    files = {key: (path.parent / entry[key]).expanduser() if entry.get(key) else None for key in PATH_KEYS}
    name = check_name(entry.get("name") or f"{files['layout'].stem}_s{seed}", f'{where}"name"')
    return BatchItem(
        number, files["layout"], seed, name, entry.get("prompt"), entry.get("vocabulary"), files["legend"],
        entry.get("palette"), overrides, files["init_image"],
    )  # fmt: skip


@dataclass
class BatchSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def is_finished(item: BatchItem, out_dir: Path, inputs: dict) -> bool:
    """Whether the item's sidecar records the same inputs and its image exists; a damaged sidecar is reported and
    the item redone."""
    sidecar = out_dir / f"{item.name}.json"
    if not sidecar.is_file():
        return False
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning("%s is damaged (%s); item %s (line %d) will be redone", sidecar, err, item.name, item.line)
        return False
    same = isinstance(recorded, dict) and recorded.get("batch_inputs") == inputs
    return same and (out_dir / f"{item.name}.png").is_file()


def run_item(pipe, item: BatchItem, out_dir: Path, inputs: dict, record: dict) -> None:
    """Generate one item and write its files; raises TCIGError for anything the item's inputs caused."""
    from tcig.io.pictures import read_photo
    from tcig.layout.readers import read_layout_and_prompt

    layout, prompt = read_layout_and_prompt(
        item.layout, item.prompt, 'give "prompt" on the manifest line', vocabulary=item.vocabulary,
        legend=item.legend, palette=item.palette,
    )  # fmt: skip
    photo = read_photo(item.init_image) if item.init_image is not None else None
    given = split_settings(item.overrides)
    ms = pipe.model_set
    stage1 = ms.stage1_settings(**given[Stage1Settings])
    stage2 = ms.stage2_settings(**given[Stage2Settings])
    sizes = SizeSettings(**given[SizeSettings])
    try:
        output = pipe(
            prompt,
            layout,
            **vars(sizes),
            stage1=stage1,
            stage2=stage2 if pipe.refiner is not None else None,
            init_image=photo,
            generator=torch.Generator().manual_seed(item.seed),
            progress=False,
        )
    except torch.cuda.OutOfMemoryError as err:
        raise TCIGError("out of GPU memory; lower the size, stage1_size or num_crops of this item") from err
    record = {**record, "seed": item.seed, "layout": str(item.layout), "batch_inputs": inputs}
    if item.init_image is not None:
        record["init_image"] = str(item.init_image)
    write_outputs(output, out_dir, item.name, record, colours=pipe.class_colours(output.layout))


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
        error_file = out_dir / f"{item.name}{ERROR_SUFFIX}"
        try:
            run_item(pipe, item, out_dir, inputs, record)
        except Exception as err:  # noqa: BLE001 - one item's failure, of any kind, must not stop the others
            message = str(err) if isinstance(err, TCIGError) else f"{type(err).__name__}: {err}"
            if not isinstance(err, TCIGError):
                logger.debug("item %s failed", item.name, exc_info=True)
            summary.failed[item.name] = message
            logger.warning("item %s (line %d) failed: %s", item.name, item.line, message)
            write_json_atomically(error_file, {"line": item.line, "error": message, "batch_inputs": inputs})
            continue
        error_file.unlink(missing_ok=True)
        summary.done.append(item.name)
    summary.seconds = time.perf_counter() - start
    return summary
