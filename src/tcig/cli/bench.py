"""``tcig bench``: time TCIG against ControlNet and img2img with real-size architectures and random weights."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch

from tcig import __version__
from tcig.bench.suite import LEVERS
from tcig.cli.common import Command, HelpContext, int_list, word_list
from tcig.errors import ConfigError
from tcig.io.cache import TensorCache
from tcig.io.files import write_atomically
from tcig.models.devices import resolve_device, resolve_dtype
from tcig.models.model_sets import BUILTIN
from tcig.settings import MAX_SIDE

logger = logging.getLogger("tcig")

TABLES = ("main", "profile", "levers", "scaling")


def add_arguments(bench: argparse.ArgumentParser, context: HelpContext) -> None:
    what = bench.add_argument_group("what to time")
    what.add_argument(
        "--arch",
        default="sd15",
        help="diffusion architecture: sd15, sdxl, sd35, flux-dev, flux-schnell or a JSON config",
    )
    what.add_argument("--clip", default="clip-vit-b32", help="CLIP: clip-vit-b32, clip-vit-l14 or a JSON config")
    what.add_argument(
        "--segmenters", default="segformer-b0", type=word_list, help="guiding segmenters, comma-separated"
    )
    what.add_argument(
        "--spare-segmenters",
        type=word_list,
        help="extra guides for the scaling table (default mask2former-swin-t,segformer-b5; with --models: model "
        "ids or folders, default none)",
    )
    what.add_argument(
        "--models",
        help="time a model set with its trained weights instead (e.g. scenes); the reference is its refiner's "
        "text-to-image",
    )
    what.add_argument("--defaults-from", help="model set whose tuned settings are the defaults (default: --arch's)")
    what.add_argument("--size", type=int, help="output size (default: the architecture's resolution)")
    what.add_argument("--stage1-steps", type=int, help="override the default stage-1 step budget")
    what.add_argument("--stage2-steps", type=int, help="override the default stage-2 scheduler steps")
    what.add_argument("--reference-steps", type=int, default=50, help="steps of the references (default 50)")
    what.add_argument("--img2img-strength", type=float, default=0.6, help="strength of the img2img reference")
    what.add_argument(
        "--tables", default="main", type=word_list, help=f"which tables: any of {','.join(TABLES)} (default main)"
    )
    what.add_argument(
        "--compile",
        nargs="?",
        const="default",
        metavar="MODE",
        help="add the torch.compile lever, with a compile mode (default, reduce-overhead, max-autotune); slow to "
        "compile",
    )
    what.add_argument("--levers", type=word_list, help="only these levers (default all): " + ",".join(LEVERS))
    what.add_argument("--resolutions", default="256,512,768,1024", type=int_list, help="scaling: output sizes")
    what.add_argument("--segmenter-counts", default="1,2,3", type=int_list, help="scaling: numbers of guides")
    what.add_argument("--batches", default="1,2,4", type=int_list, help="scaling: images per call")
    run = bench.add_argument_group("run")
    run.add_argument("--repeats", type=int, default=3, help="timed runs per figure; the median is reported")
    run.add_argument("--warmup", type=int, default=1, help="untimed runs before them")
    run.add_argument("--device", default="auto")
    run.add_argument(
        "--dtype",
        default="auto",
        help="diffusion dtype: auto (fp32 on CPUs; on GPUs the model's own: bf16 for FLUX.1 and SD3, fp16 for SD), "
        "float32, float16, bfloat16",
    )
    run.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON file to write (default bench.json)")
    run.add_argument("-v", "--verbose", action="store_true", help="log details")


def cpu_name() -> str:
    """The processor's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, dtype: str | None) -> dict:
    import diffusers
    import transformers

    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "dtype": dtype,
        "stage1_autocast": "bf16/fp16 on CUDA, none on CPU",
        "platform": platform.platform(),
        "versions": {
            "tcig": __version__,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }
    return env


def _check(args: argparse.Namespace) -> None:
    unknown = sorted(set(args.tables) - set(TABLES))
    if unknown:
        raise ConfigError(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    unknown = sorted(set(args.levers or []) - set(LEVERS))
    if unknown:
        raise ConfigError(f"unknown lever(s) {', '.join(unknown)}; choose from {', '.join(LEVERS)}")
    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError("--repeats must be >= 1 and --warmup >= 0")
    if args.reference_steps < 1 or not 0 < args.img2img_strength <= 1:
        raise ConfigError("--reference-steps must be >= 1 and --img2img-strength in (0, 1]")
    if args.size is not None and not 8 <= args.size <= MAX_SIDE:
        raise ConfigError(f"--size must be in 8..{MAX_SIDE}, got {args.size}")
    for flag, value in (("--stage1-steps", args.stage1_steps), ("--stage2-steps", args.stage2_steps)):
        if value is not None and not 1 <= value <= 100_000:
            raise ConfigError(f"{flag} must be in 1..100000, got {value}")
    for flag, values in (("--resolutions", args.resolutions), ("--batches", args.batches)):
        if not values or not all(1 <= v <= MAX_SIDE for v in values):
            raise ConfigError(f"{flag} must list integers in 1..{MAX_SIDE}")
    if args.out.is_dir():
        raise ConfigError(f"--out '{args.out}' is a folder; give a JSON file name")
    if not args.out.parent.is_dir():
        raise ConfigError(f"the folder of --out '{args.out}' does not exist; create it or give another path")


def run(args: argparse.Namespace) -> int:
    from tcig.bench import rigs

    _check(args)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    scaling = "scaling" in args.tables
    if args.models:
        spare = (args.spare_segmenters or []) if scaling else []
        rig = rigs.model_set_rig(
            args.models, spare, device, dtype, args.size, args.reference_steps, args.img2img_strength
        )
    else:
        spare = (args.spare_segmenters or ["mask2former-swin-t", "segformer-b5"]) if scaling else []
        rig = rigs.random_rig(
            args.arch,
            args.clip,
            args.segmenters,
            spare,
            device,
            dtype,
            args.size,
            args.defaults_from or (args.arch if args.arch in BUILTIN else "sd15"),
            args.reference_steps,
            args.img2img_strength,
        )
    with tempfile.TemporaryDirectory(prefix="tcig-bench-cache-") as cache_folder:
        rig.start_cache = TensorCache(cache_folder)
        _run_tables(args, rig, device)
    logger.info("wrote %s", args.out)
    return 0


def _run_tables(args: argparse.Namespace, rig, device: torch.device) -> None:
    from tcig.bench import report, suite
    from tcig.bench.profile import profile_table

    spec = suite.default_spec(rig, args.stage1_steps, args.stage2_steps)
    if not args.models:  # random weights make the loss curve meaningless: always run the whole step budget
        spec = replace(spec, stage1=replace(spec.stage1, patience=0))
    result = {
        "environment": environment(device, rig.pipe.stage2_dtype),
        "rig": rig.description,
        "size": rig.size,
        "defaults": asdict(spec),
        "repeats": args.repeats,
        "warmup": args.warmup,
    }

    def save() -> None:
        write_atomically(args.out, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))

    for table in TABLES:
        if table not in args.tables:
            continue
        if table == "main":
            result["main"] = suite.main_table(rig, spec, args.repeats, args.warmup, device)
        elif table == "profile":
            result["profile"] = profile_table(rig, spec, args.repeats, device)
        elif table == "levers":
            result["levers"] = suite.lever_table(
                rig, spec, args.repeats, args.warmup, device, args.compile, args.levers
            )
        else:
            result["scaling"] = suite.scaling_table(
                rig, spec, args.repeats, args.warmup, device, args.resolutions, args.segmenter_counts, args.batches
            )
        save()
        print(report.markdown(table, result[table]), flush=True)
        if table == "scaling":
            env = result["environment"]
            title = f"{rig.description.get('arch') or args.models} on {env['device_name']}, {env['dtype']}"
            report.plot_scaling(result["scaling"], args.out.with_name(f"{args.out.stem}_scaling.png"), title)


COMMAND = Command(
    "bench",
    "time TCIG against ControlNet and img2img (real-size architectures, random weights; no download)",
    add_arguments,
    run,
    "Times stage 1, stage 2 and TCIG end to end beside ControlNet text-to-image and plain img2img, with "
    "architectures built from the JSON configs shipped in tcig/bench/configs and random weights (or a model set with "
    "its trained weights, --models). Prints tables and writes a JSON file.",
)
