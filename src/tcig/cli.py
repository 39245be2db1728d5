"""The ``tcig`` command line: ``tcig generate``, ``tcig batch``, ``tcig eval``, ``tcig bench`` and ``tcig models``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from . import __version__
from .cli_batch import add_batch_parser, cmd_batch
from .cli_bench import add_bench_parser, cmd_bench
from .cli_eval import add_eval_parser, cmd_eval
from .devices import resolve_device, resolve_dtype
from .errors import TCIGError
from .model_sets import BUILTIN, load_model_set, parse_segmenter_arg
from .priors import INITS
from .refiners import Stage2Settings
from .stage1 import Stage1Settings

logger = logging.getLogger("tcig")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tcig", description="Layout-controlled text-to-image generation (TCIG).")
    parser.add_argument("--version", action="version", version=f"tcig {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate",
        help="generate images from a prompt and a layout",
        description="Stage 1 optimizes an image to follow the layout under CLIP and segmentation "
        "losses; stage 2 refines it with a diffusion model (img2img).",
    )
    io = gen.add_argument_group("inputs and outputs")
    io.add_argument("--prompt", help="text prompt (default: the prompt stored in a JSON layout)")
    io.add_argument(
        "--layout",
        required=True,
        help="layout file: colour PNG (+ legend JSON), label-id PNG "
        "(+ --vocabulary), JSON spec, or a folder of per-class masks",
    )
    io.add_argument("--vocabulary", help="vocabulary of a label-id PNG: coco-stuff, ade20k or voc")
    io.add_argument("--legend", help="legend JSON of a colour PNG (default: <layout>.legend.json beside it)")
    io.add_argument("--out", required=True, help="output folder (created if missing)")
    io.add_argument("--name", help="file name stem (default: the layout's name and the seed)")
    io.add_argument("--num-images", type=int, default=1, help="images per call, optimized as one batch (default 1)")

    models = gen.add_argument_group("models")
    models.add_argument(
        "--models", default="sd15", help=f"model set: {', '.join(BUILTIN)} or a model-set JSON file (default sd15)"
    )
    models.add_argument("--clip", help="override the CLIP model (hub id or folder)")
    models.add_argument(
        "--segmenter",
        action="append",
        metavar="ID[:WEIGHT]",
        help="guiding segmenter with its loss weight (default 1); repeat for several; "
        "replaces the model set's segmenters",
    )
    models.add_argument(
        "--refiner", help="override the stage-2 model (diffusers img2img id/folder, or an image-space model folder)"
    )
    models.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow pickle checkpoints (.bin/.pt/.ckpt); unpickling can run code",
    )

    size = gen.add_argument_group("size")
    size.add_argument(
        "--height",
        type=int,
        help="output height (default: the layout's aspect ratio, long side "
        "the model set's resolution); rounded to a multiple of 8",
    )
    size.add_argument("--width", type=int, help="output width (see --height)")
    size.add_argument(
        "--fit",
        choices=["stretch", "crop", "pad"],
        help="how to fit a layout of another aspect ratio (required when the aspect changes)",
    )
    size.add_argument(
        "--stage1-size",
        type=int,
        help="long side of the stage-1 image (default: the model set's, else the output's); upsampled into stage 2",
    )

    s1 = gen.add_argument_group("stage 1 (control); unset options take the model set's tuned value, else the default")
    s1_defaults, s2_defaults = Stage1Settings(), Stage2Settings()
    s1.add_argument(
        "--parameterization",
        choices=["pixel", "latent"],
        default="pixel",
        help="optimize a pixel pyramid, or the latents of the refiner's VAE (default pixel)",
    )
    stage1_options = [
        ("--steps", "steps", int, "Adam steps"),
        ("--lr", "lr", float, "learning rate"),
        ("--clip-weight", "clip_weight", float, "weight of the CLIP loss (0 disables it)"),
        ("--crops", "num_crops", int, "random crops per image for the CLIP loss"),
        ("--crop-min", "crop_min", float, "smallest crop side as a fraction of the image's short side"),
        ("--crop-noise", "crop_noise", float, "std of the Gaussian noise added to each crop"),
        ("--seg-noise", "seg_noise", float, "std of the Gaussian noise on the segmenters' view of the image"),
        ("--pyramid-levels", "pyramid_levels", int, "levels of the pixel pyramid"),
        ("--pyramid-finest", "pyramid_finest", int, "finest pyramid level: 0 = full resolution, 1 = half, ..."),
        ("--patience", "patience", int, "stop once the smoothed loss has not improved for this many steps (0 = off)"),
        ("--min-improvement", "min_improvement", float, "relative fall of the smoothed loss that counts as improving"),
        ("--init-noise", "init_noise", float, "std of the random pyramid levels added to a non-noise --init"),
        ("--seg-views", "seg_views", int, "transformed views per image that each segmenter scores"),
        ("--seg-shift", "seg_shift", float, "largest shift of a segmenter view, as a fraction of the side"),
        ("--seg-scale", "seg_scale", float, "largest relative zoom in or out of a segmenter view"),
        ("--seg-blur", "seg_blur", float, "largest Gaussian blur (pixels) of a segmenter view"),
        ("--tv-weight", "tv_weight", float, "weight of the total-variation (smoothness) prior"),
    ]
    for flag, field, kind, text in stage1_options:
        s1.add_argument(flag, dest=f"s1_{field}", type=kind, help=f"{text} (default {getattr(s1_defaults, field)})")
    s1.add_argument(
        "--init",
        dest="s1_init",
        choices=list(INITS),
        help="stage 1's start: noise, colours (the layout in its classes' colours, read from the refiner's own "
        "images), collage (regions filled with the refiner's texture of each class) or prompt (the refiner's image "
        f"for the prompt) (default {s1_defaults.init})",
    )
    s1.add_argument(
        "--seg-loss",
        dest="s1_seg_loss",
        choices=["mse", "ce"],
        help="segmentation loss: mse (the paper's) or cross-entropy (default mse)",
    )

    s2 = gen.add_argument_group("stage 2 (quality); unset options take the model set's tuned value, else the default")
    s2.add_argument(
        "--stage2", choices=["refine", "none"], default="refine", help="'none' stops after stage 1 (default refine)"
    )
    stage2_options = [
        ("--strength", "strength", float, "img2img noise strength in (0, 1]"),
        ("--stage2-steps", "steps", int, "scheduler steps before strength"),
        ("--guidance-scale", "guidance_scale", float, "classifier-free guidance"),
        ("--seg-guidance", "seg_guidance", float, "weight of the guides' segmentation gradient at each stage-2 step"),
        ("--cycles", "cycles", int, "polish-and-refine cycles after stage 2 (0 = none)"),
        ("--cycle-steps", "cycle_steps", int, "stage-1 steps of each cycle's polish"),
        ("--cycle-strength", "cycle_strength", float, "img2img strength of each cycle's refinement"),
    ]
    for flag, field, kind, text in stage2_options:
        s2.add_argument(flag, dest=f"s2_{field}", type=kind, help=f"{text} (default {getattr(s2_defaults, field)})")
    s2.add_argument("--negative-prompt", dest="s2_negative_prompt", help="negative prompt for stage 2")

    run = gen.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    run.add_argument(
        "--dtype",
        default="auto",
        help="stage-2 dtype: auto (float32 on CPU, float16 on GPU), "
        "float32, float16, bfloat16; stage 1 uses mixed precision on GPUs",
    )
    run.add_argument(
        "--compile",
        nargs="?",
        const="reduce-overhead",
        metavar="MODE",
        help="torch.compile the stage-1 loss (default mode reduce-overhead: CUDA graphs); pays off for several "
        "images or a long run, since the first call compiles (docs/performance.md)",
    )
    run.add_argument(
        "--channels-last", action="store_true", help="channels-last memory format (1.2x faster on an H200)"
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("-v", "--verbose", action="store_true", help="log details")

    add_eval_parser(sub)
    add_bench_parser(sub)
    add_batch_parser(sub)
    sub.add_parser("models", help="list the built-in model sets")
    return parser


def cmd_models() -> int:
    for name, ms in BUILTIN.items():
        print(f"{name}: {ms.description}")
        print(f"  clip={ms.clip} segmenters={','.join(f'{s}:{w:g}' for s, w in ms.segmenters)} refiner={ms.refiner}")
        if ms.stage1 or ms.stage2:
            print(f"  tuned settings: stage1={ms.stage1} stage2={ms.stage2}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .layout_readers import read_layout_and_prompt
    from .outputs import prepare_out_dir, write_outputs
    from .pipeline import TCIGPipeline

    layout, prompt = read_layout_and_prompt(
        args.layout, args.prompt, "pass --prompt", vocabulary=args.vocabulary, legend=args.legend
    )
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    segmenters = [parse_segmenter_arg(s) for s in args.segmenter] if args.segmenter else None
    refiner = "none" if args.stage2 == "none" else args.refiner
    model_set = load_model_set(args.models).with_overrides(clip=args.clip, segmenters=segmenters, refiner=refiner)
    stage1 = model_set.stage1_settings(**_prefixed(args, "s1_"))
    stage2 = None if args.stage2 == "none" else model_set.stage2_settings(**_prefixed(args, "s2_"))
    stage1.check()
    if stage2 is not None:
        stage2.check()
    out_dir = prepare_out_dir(args.out)
    stem = args.name or f"{Path(args.layout.rstrip('/')).stem}_s{args.seed}"

    logger.info("loading models of '%s' on %s", model_set.name, device)
    pipe = TCIGPipeline.from_model_set(model_set, allow_pickle=args.allow_pickle, class_names=layout.classes)
    pipe.to(device, dtype)
    pipe.compile_stage1 = args.compile or False
    if args.channels_last:
        pipe.set_channels_last()
    generator = torch.Generator().manual_seed(args.seed)
    try:
        output = pipe(
            prompt,
            layout,
            height=args.height,
            width=args.width,
            fit=args.fit,
            stage1_size=args.stage1_size,
            parameterization=args.parameterization,
            stage1=stage1,
            stage2=stage2,
            refine=stage2 is not None,
            num_images=args.num_images,
            generator=generator,
            progress=not args.no_progress,
        )
    except torch.cuda.OutOfMemoryError as err:
        raise TCIGError("out of GPU memory; lower --num-images, --stage1-size, --crops or --height/--width") from err
    record = {
        "tcig_version": __version__,
        "seed": args.seed,
        "layout": str(args.layout),
        "vocabulary": args.vocabulary,
        "model_set": model_set.to_dict(),
        "dtype": str(dtype),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for path in write_outputs(output, out_dir, stem, record):
        logger.info("wrote %s", path)
    print(out_dir / f"{stem}.png" if args.num_images == 1 else out_dir)
    return 0


def _prefixed(args: argparse.Namespace, prefix: str) -> dict:
    return {k.removeprefix(prefix): v for k, v in vars(args).items() if k.startswith(prefix)}


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        import diffusers
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        diffusers.logging.set_verbosity_error()
        diffusers.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "models":
        return cmd_models()
    _configure_logging(args.verbose)
    try:
        commands = {"eval": cmd_eval, "bench": cmd_bench, "batch": cmd_batch, "generate": cmd_generate}
        return commands[args.command](args)
    except torch.cuda.OutOfMemoryError:
        print("tcig: error: out of GPU memory; lower --num-images or the image size", file=sys.stderr)
        return 2
    except TCIGError as err:
        print(f"tcig: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tcig: interrupted; no output was written for the unfinished image", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
