"""``tcig generate``: images from a prompt and a layout, with their stage-1 image, contact sheet and sidecar."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from tcig import __version__
from tcig.cli.common import (
    Command,
    HelpContext,
    add_model_arguments,
    add_output_arguments,
    add_run_arguments,
    add_setting_arguments,
    add_speed_arguments,
    apply_speed,
    chosen_model_set,
    given_settings,
    output_folder,
    start_cache,
    wait_seconds,
)
from tcig.errors import TCIGError
from tcig.io.names import check_name
from tcig.layout.palettes import DEFAULT_TOLERANCE, PALETTE_NAMES
from tcig.models.devices import resolve_device, resolve_dtype
from tcig.settings import MAX_IMAGES, SizeSettings, Stage1Settings, Stage2Settings, check_num_images, check_seed

logger = logging.getLogger("tcig")


def add_layout_arguments(group) -> None:
    """The flags that say how to read a layout file (shared with ``tcig layout``)."""
    group.add_argument(
        "--vocabulary", help="vocabulary of a label-id PNG: coco-stuff, ade20k or voc (which value is which class)"
    )
    group.add_argument("--legend", help="legend JSON of a colour PNG (default: <layout>.legend.json beside it)")
    group.add_argument(
        "--palette",
        help="read a colour PNG painted in a dataset's standard colours (no legend): " + ", ".join(PALETTE_NAMES),
    )
    group.add_argument(
        "--colour-tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="RGB distance within which antialiased or JPEG colours snap to the legend's or palette's "
        f"(default {DEFAULT_TOLERANCE:g}; 0 = exact)",
    )


def layout_options(args: argparse.Namespace) -> dict:
    return {
        "vocabulary": args.vocabulary,
        "legend": args.legend,
        "palette": args.palette,
        "colour_tolerance": args.colour_tolerance,
    }


def add_arguments(gen: argparse.ArgumentParser, context: HelpContext) -> None:
    io = gen.add_argument_group("inputs and outputs")
    io.add_argument("--prompt", help="text prompt (default: the prompt stored in a JSON layout)")
    io.add_argument(
        "--layout",
        required=True,
        help="layout file: colour PNG (+ legend JSON or --palette), label-id PNG (+ --vocabulary), JSON spec, or a "
        "folder of per-class masks",
    )
    add_layout_arguments(io)
    io.add_argument(
        "--init-image",
        metavar="PHOTO",
        help="edit this photo by layout: stage 1 starts from it, and where its segmentation already matches the "
        "layout it is kept (--keep-photo); make the layout with `tcig layout from-image PHOTO` and repaint it",
    )
    add_output_arguments(io, "output folder (created if missing)")
    io.add_argument("--name", help="file name stem (default: the layout's name and the seed)")
    io.add_argument(
        "--num-images",
        type=int,
        default=1,
        help=f"images per call, optimized as one batch (1..{MAX_IMAGES}; default 1)",
    )

    add_model_arguments(gen.add_argument_group("models"))

    add_setting_arguments(gen.add_argument_group("size"), SizeSettings, context)
    add_setting_arguments(
        gen.add_argument_group("stage 1 (control); defaults are the model set's tuned values"), Stage1Settings, context
    )
    s2 = gen.add_argument_group("stage 2 (quality); defaults are the model set's tuned values")
    s2.add_argument(
        "--stage2", choices=["refine", "none"], default="refine", help="'none' stops after stage 1 (default refine)"
    )
    add_setting_arguments(s2, Stage2Settings, context)

    run = gen.add_argument_group("run")
    add_run_arguments(run)
    add_speed_arguments(run)


def run(args: argparse.Namespace) -> int:
    from tcig.io.outputs import write_outputs
    from tcig.io.pictures import read_photo
    from tcig.layout.readers import read_layout_and_prompt
    from tcig.pipeline import TCIGPipeline

    check_seed(args.seed)
    check_num_images(args.num_images)
    if args.name is not None:
        stem = check_name(args.name, "--name")
    else:
        stem = check_name(f"{Path(args.layout.rstrip('/')).stem}_s{args.seed}", "the layout's file name (give --name)")
    layout, prompt = read_layout_and_prompt(args.layout, args.prompt, "pass --prompt", **layout_options(args))
    photo = read_photo(args.init_image) if args.init_image is not None else None
    if photo is None and args.keep_photo is not None:
        logger.warning("--keep-photo has no effect without --init-image")
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model_set = chosen_model_set(args)
    stage1 = model_set.stage1_settings(**given_settings(args, Stage1Settings))
    refine = args.stage2 != "none"
    stage2 = model_set.stage2_settings(**given_settings(args, Stage2Settings)) if refine else None
    sizes = SizeSettings(**given_settings(args, SizeSettings))
    sizes.check()
    stage1.check()
    if stage2 is not None:
        stage2.check()
    if not refine and (stage1.init == "noise" or photo is not None):
        model_set = model_set.with_overrides(refiner="none")  # the refiner is needed only to refine or to start

    with output_folder(args.out, wait=wait_seconds(args)) as out_dir:
        logger.info("loading models of '%s' on %s", model_set.name, device)
        pipe = TCIGPipeline.from_model_set(
            model_set, allow_pickle=args.allow_pickle, class_names=layout.classes, start_cache=start_cache(args)
        )
        pipe.to(device, dtype)
        apply_speed(pipe, args)
        generator = torch.Generator().manual_seed(args.seed)
        try:
            output = pipe(
                prompt,
                layout,
                **vars(sizes),
                stage1=stage1,
                stage2=stage2,
                refine=refine,
                num_images=args.num_images,
                init_image=photo,
                generator=generator,
                progress=not args.no_progress,
            )
        except torch.cuda.OutOfMemoryError as err:
            raise TCIGError(
                "out of GPU memory; lower --num-images, --stage1-size, --num-crops or --height/--width"
            ) from err
        record = {
            "tcig_version": __version__,
            "seed": args.seed,
            "layout": str(args.layout),
            "init_image": args.init_image,
            "vocabulary": args.vocabulary,
            "palette": args.palette,
            "model_set": model_set.to_dict(),
            "dtype": pipe.stage2_dtype,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for path in write_outputs(output, out_dir, stem, record, colours=pipe.class_colours(output.layout)):
            logger.info("wrote %s", path)
    print(out_dir / f"{stem}.png" if args.num_images == 1 else out_dir)
    return 0


COMMAND = Command(
    "generate",
    "generate images from a prompt and a layout",
    add_arguments,
    run,
    "Stage 1 optimizes an image to follow the layout under CLIP and segmentation losses; stage 2 refines it with a "
    "diffusion model (img2img). Unset settings take the model set's tuned values; `tcig generate --models NAME "
    "--help` shows that set's.",
)
