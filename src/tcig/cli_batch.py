"""``tcig batch``: generate every item of a JSONL manifest; rerun to finish; ``accelerate launch`` to scale out."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from . import __version__
from .devices import resolve_device, resolve_dtype
from .outputs import prepare_out_dir, write_atomically

logger = logging.getLogger("tcig")


def add_batch_parser(sub) -> None:
    batch = sub.add_parser(
        "batch",
        help="generate every item of a JSONL manifest (resumable; accelerate launch -m tcig batch for several GPUs)",
        description="Each line of MANIFEST is a JSON object: layout (required), prompt, seed, name, vocabulary, "
        "legend, and stage-1/stage-2/size overrides (steps, lr, strength, stage2_steps, guidance_scale, height, "
        "width, ...). Finished items are skipped on a rerun; failed items are written as NAME.error.json.",
    )
    batch.add_argument("manifest", type=Path, help="JSONL file, one generation per line")
    batch.add_argument("--out", required=True, help="output folder")
    batch.add_argument("--models", default="sd15", help="a built-in model set or a model-set JSON file")
    batch.add_argument("--device", default="auto", help="auto (each process's accelerate device), cpu, cuda, ...")
    batch.add_argument("--dtype", default="auto", help="stage-2 dtype: auto, float32, float16, bfloat16")
    batch.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt/.ckpt checkpoints (runs code)")
    batch.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    batch.add_argument("-v", "--verbose", action="store_true", help="log details")


def cmd_batch(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from .batch import read_manifest, remove_stale_staging, run_batch
    from .model_sets import load_model_set
    from .pipeline import TCIGPipeline

    items = read_manifest(args.manifest)
    out_dir = prepare_out_dir(args.out)
    model_set = load_model_set(args.models)
    state = PartialState(cpu=args.device == "cpu")
    device = resolve_device(args.device)  # an unavailable device fails here
    if args.device in ("auto", "cuda"):
        device = state.device  # each process's own GPU under accelerate launch
    dtype = resolve_dtype(args.dtype, device)
    if state.is_main_process:
        remove_stale_staging(out_dir)
    state.wait_for_everyone()
    pipe = TCIGPipeline.from_model_set(model_set, allow_pickle=args.allow_pickle).to(device, dtype)
    record = {
        "tcig_version": __version__,
        "model_set": model_set.to_dict(),
        "dtype": str(dtype),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rank, world = state.process_index, state.num_processes
    summary = run_batch(pipe, items, out_dir, record, rank, world, progress=not args.no_progress)
    part = {"done": summary.done, "skipped": summary.skipped, "failed": summary.failed, "seconds": summary.seconds}
    part_path = out_dir / f".batch_summary.{rank}.json"
    write_atomically(part_path, lambda tmp: tmp.write_text(json.dumps(part)))
    state.wait_for_everyone()
    failed = 0
    if state.is_main_process:
        parts = [json.loads((out_dir / f".batch_summary.{r}.json").read_text()) for r in range(world)]
        total = {
            "manifest": str(args.manifest),
            "items": len(items),
            "processes": world,
            "done": sorted(n for p in parts for n in p["done"]),
            "skipped": sorted(n for p in parts for n in p["skipped"]),
            "failed": {n: e for p in parts for n, e in p["failed"].items()},
            "seconds": max(p["seconds"] for p in parts),
        }
        write_atomically(out_dir / "batch_summary.json", lambda tmp: tmp.write_text(json.dumps(total, indent=2)))
        for r in range(world):
            (out_dir / f".batch_summary.{r}.json").unlink(missing_ok=True)
        failed = len(total["failed"])
        print(
            f"batch: {len(total['done'])} done, {len(total['skipped'])} skipped, {failed} failed of {len(items)} "
            f"in {total['seconds']:.1f} s; summary in {out_dir / 'batch_summary.json'}"
        )
    return 1 if failed else 0
