"""``tcig batch``: generate every item of a JSONL manifest; rerun to finish; ``accelerate launch`` to scale out."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from pathlib import Path

from tcig import __version__
from tcig.cli.common import (
    Command,
    HelpContext,
    add_model_arguments,
    add_output_arguments,
    add_speed_arguments,
    apply_speed,
    chosen_model_set,
    output_folder,
    start_cache,
    wait_seconds,
)
from tcig.io.files import write_json_atomically
from tcig.models.devices import resolve_device, resolve_dtype
from tcig.settings import OPTIONS

logger = logging.getLogger("tcig")


def add_arguments(batch: argparse.ArgumentParser, context: HelpContext) -> None:
    batch.add_argument("manifest", type=Path, help="JSONL file, one generation per line")
    add_output_arguments(batch, "output folder (created if missing; a rerun into it resumes)")
    add_model_arguments(batch)
    batch.add_argument("--device", default="auto", help="auto (each process's accelerate device), cpu, cuda, ...")
    batch.add_argument("--dtype", default="auto", help="stage-2 dtype: auto, float32, float16, bfloat16")
    add_speed_arguments(batch)
    batch.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    batch.add_argument("-v", "--verbose", action="store_true", help="log details")


def run(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from tcig.batch import read_manifest, run_batch
    from tcig.pipeline import TCIGPipeline

    items = read_manifest(args.manifest)
    model_set = chosen_model_set(args)
    device = resolve_device(args.device)  # an unavailable device fails here
    state = PartialState(cpu=args.device == "cpu")
    if args.device in ("auto", "cuda"):
        device = state.device  # each process's own GPU under accelerate launch
    dtype = resolve_dtype(args.dtype, device)
    rank, world = state.process_index, state.num_processes
    # the main process holds the folder's lock for the whole run; the other processes of the run work under it
    with output_folder(args.out, wait=wait_seconds(args), lock=state.is_main_process) as out_dir:
        state.wait_for_everyone()
        pipe = TCIGPipeline.from_model_set(
            model_set, allow_pickle=args.allow_pickle, start_cache=start_cache(args)
        ).to(device, dtype)
        apply_speed(pipe, args)
        record = {
            "tcig_version": __version__,
            "model_set": model_set.to_dict(),
            "dtype": pipe.stage2_dtype,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        summary = run_batch(pipe, items, out_dir, record, rank, world, progress=not args.no_progress)
        part = {"done": summary.done, "skipped": summary.skipped, "failed": summary.failed, "seconds": summary.seconds}
        write_json_atomically(out_dir / f".batch_summary.{rank}.json", part, indent=None)
        state.wait_for_everyone()
        if not state.is_main_process:
            return 0
        total = _merge_parts(out_dir, world, items, args.manifest)
    failed = len(total["failed"])
    print(
        f"batch: {len(total['done'])} done, {len(total['skipped'])} skipped, {failed} failed of {len(items)} "
        f"in {total['seconds']:.1f} s; summary in {out_dir / 'batch_summary.json'}"
    )
    return 1 if failed else 0


def _merge_parts(out_dir: Path, world: int, items: list, manifest: Path) -> dict:
    """One ``batch_summary.json`` from every process's part; a missing part (a process that died) is reported as
    its items failing, so the summary is always written."""
    parts = []
    for r in range(world):
        path = out_dir / f".batch_summary.{r}.json"
        try:
            parts.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            lost = {item.name: "its process ended without a summary" for item in items[r::world]}
            parts.append({"done": [], "skipped": [], "failed": lost, "seconds": 0.0})
        with contextlib.suppress(OSError):
            path.unlink()
    total = {
        "manifest": str(manifest),
        "items": len(items),
        "processes": world,
        "done": sorted(n for p in parts for n in p["done"]),
        "skipped": sorted(n for p in parts for n in p["skipped"]),
        "failed": {n: e for p in parts for n, e in p["failed"].items()},
        "seconds": max(p["seconds"] for p in parts),
    }
    write_json_atomically(out_dir / "batch_summary.json", total)
    return total


COMMAND = Command(
    "batch",
    "generate every item of a JSONL manifest (resumable; accelerate launch -m tcig batch for several GPUs)",
    add_arguments,
    run,
    "Each line of MANIFEST is a JSON object: layout (required), prompt, seed, name, vocabulary, legend, palette, "
    "init_image (a photo to edit by layout, as tcig generate --init-image) and "
    f"any setting of tcig generate by its key ({', '.join(sorted(OPTIONS))}). Finished items are skipped on a "
    "rerun; failed items are written as NAME.error.json and the others go on.",
)
