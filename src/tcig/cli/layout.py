"""``tcig layout show``, ``convert`` and ``from-image``: check a layout made anywhere, carry it to other tools, or
make one from a photo."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tcig.cli.common import Command, HelpContext, add_device_arguments, word_list
from tcig.cli.generate import add_layout_arguments, layout_options
from tcig.errors import ConfigError
from tcig.io.names import check_name
from tcig.layout.convert import FORMATS, class_areas, write_layout
from tcig.layout.palettes import PALETTE_NAMES
from tcig.models.model_sets import BUILTIN
from tcig.models.photo_layout import DEFAULT_MIN_REGION, check_min_region

logger = logging.getLogger("tcig")


def add_arguments(parser: argparse.ArgumentParser, context: HelpContext) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser(
        "show",
        help="print each class's area and write a picture of the layout with its legend",
        description="Reads FILE as tcig generate would and prints each class with its share of the image; writes "
        "the layout in its classes' standard colours beside a legend with the areas.",
    )
    show.add_argument("file", help="the layout: colour PNG, label-id PNG, JSON spec or mask folder")
    add_layout_arguments(show)
    show.add_argument("--out", type=Path, help="picture to write (default: ./<name>_layout.png)")
    show.add_argument("-v", "--verbose", action="store_true", help="log details")
    convert = sub.add_parser(
        "convert",
        help="write a layout as label ids, colours in a palette, or a JSON spec",
        description="Reads FILE as tcig generate would and writes OUT: a label-id PNG (--to ids; in a dataset's ids "
        "with --out-vocabulary, else its own ids with a classes sidecar), a colour PNG (--to colour; in a dataset's "
        "palette with --out-palette, else with a legend), or a JSON spec of rectangles (--to json, or OUT.json).",
    )
    convert.add_argument("file", help="the layout to read")
    convert.add_argument("out", type=Path, help="the file to write (.png or .json)")
    add_layout_arguments(convert)
    convert.add_argument("--to", choices=FORMATS, help="output format (default: from OUT and the options)")
    convert.add_argument("--out-vocabulary", help="write label ids of this vocabulary: coco-stuff, ade20k or voc")
    convert.add_argument("--out-palette", help=f"write colours of this palette: {', '.join(PALETTE_NAMES)}")
    convert.add_argument("-v", "--verbose", action="store_true", help="log details")
    photo = sub.add_parser(
        "from-image",
        help="segment a photo into a layout to repaint and generate from",
        description="Segments PHOTO with the model set's guides (their probabilities averaged over the guides that "
        "know each class) or the segmenters given, merges regions under --min-region of the image into their "
        "surroundings, and writes OUT: a label-id PNG with its classes JSON beside it, which tcig generate reads "
        "back (and --init-image PHOTO keeps the photo's look where the layout is unchanged).",
    )
    photo.add_argument("photo", help="the photo: PNG, JPEG, WebP, BMP or TIFF")
    photo.add_argument("out", type=Path, help="the label-id PNG to write (OUT.json gets the class names)")
    photo.add_argument(
        "--models", default="sd15", help=f"whose guides segment: {', '.join(BUILTIN)} or a model-set JSON file"
    )
    photo.add_argument(
        "--segmenter", action="append", metavar="ID[:WEIGHT]", help="segment with this model instead (repeatable)"
    )
    photo.add_argument("--classes", type=word_list, help="comma list of the classes to choose from (default: all)")
    photo.add_argument(
        "--min-region",
        type=float,
        default=DEFAULT_MIN_REGION,
        help=f"merge regions under this share of the image into their surroundings (default {DEFAULT_MIN_REGION}; 0 "
        "keeps every speck)",
    )
    photo.add_argument(
        "--size", type=int, help="long side of the layout, a multiple of 8 (default: the model set's resolution)"
    )
    photo.add_argument("--prompt", help="a prompt to store with the layout")
    add_device_arguments(photo)
    photo.add_argument("--allow-pickle", action="store_true", help="allow pickle checkpoints (.bin/.pt/.ckpt)")
    photo.add_argument("-v", "--verbose", action="store_true", help="log details")


def run(args: argparse.Namespace) -> int:
    from tcig.io.files import write_atomically
    from tcig.io.pictures import colorize, contact_sheet, layout_colours, legend_image
    from tcig.layout import Layout
    from tcig.layout.readers import read_layout

    if args.action == "from-image":
        return _from_image(args)
    layout = read_layout(args.file, **layout_options(args))
    if args.action == "convert":
        if Path(args.file).expanduser().resolve() == args.out.expanduser().resolve():
            raise ConfigError(f"'{args.out}' is the input; give another output file")
        for path in write_layout(layout, args.out.expanduser(), args.to, args.out_vocabulary, args.out_palette):
            print(path)
        return 0
    areas = class_areas(layout)
    height, width = layout.size
    prompt = f"; prompt: {layout.prompt}" if layout.prompt else ""
    print(f"{args.file}: {width}x{height}, {len(layout.classes)} classes{prompt}")
    for name, pixels, share in areas:
        print(f"  {name:<24} {pixels:>10,} px  {100 * share:6.2f} %")
    out = args.out or Path(f"{check_name(Path(str(args.file).rstrip('/')).stem, 'the layout name')}_layout.png")
    if out.suffix.lower() != ".png" or not out.expanduser().parent.is_dir():
        raise ConfigError(f"--out '{out}' must be a .png file in an existing folder")
    share = {name: s for name, _, s in areas}
    labelled = Layout(layout.label_map, [f"{n} ({100 * share[n]:.1f} %)" for n in layout.classes])
    colours = layout_colours(layout.classes)
    picture = contact_sheet(
        [("layout", colorize(layout, colours)), ("classes", legend_image(labelled, colours, row=20))],
        height=max(256, 22 * (len(layout.classes) + 1)),
    )
    write_atomically(out.expanduser(), lambda tmp: picture.save(tmp, format="PNG"))
    print(out)
    return 0


def _from_image(args: argparse.Namespace) -> int:
    from tcig.io.pictures import read_photo
    from tcig.models.devices import resolve_device
    from tcig.models.model_sets import load_model_set, parse_segmenter_arg
    from tcig.models.photo_layout import layout_from_photo, photo_at_long_side
    from tcig.models.segmenters import load_segmenter
    from tcig.settings import MAX_SIDE

    out = args.out.expanduser()
    if out.suffix.lower() != ".png":
        raise ConfigError(f"'{args.out}' must be a .png file (the label ids; the class names go beside it as .json)")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of '{args.out}' does not exist; create it first")
    photo_file = Path(args.photo).expanduser().resolve()
    if photo_file in (out.resolve(), out.with_suffix(".json").resolve()):
        raise ConfigError(f"'{args.out}' would overwrite the photo; give another output file")
    if args.size is not None and not (8 <= args.size <= MAX_SIDE and args.size % 8 == 0):
        raise ConfigError(f"--size must be a multiple of 8 from 8 to {MAX_SIDE}, got {args.size}")
    check_min_region(args.min_region)  # before any model loads
    if args.prompt is not None and not args.prompt.strip():
        raise ConfigError("--prompt is empty; describe the image or leave --prompt out")
    photo = read_photo(args.photo)
    model_set = load_model_set(args.models)
    refs = [parse_segmenter_arg(s) for s in args.segmenter] if args.segmenter else list(model_set.segmenters)
    device = resolve_device(args.device)
    segmenters = [(load_segmenter(ref, allow_pickle=args.allow_pickle).to(device), w) for ref, w in refs]
    photo = photo_at_long_side(photo, args.size or model_set.resolution)
    layout = layout_from_photo(segmenters, photo, classes=args.classes, min_region=args.min_region)
    layout.prompt = args.prompt.strip() if args.prompt else None
    shares = ", ".join(f"{name} {100 * share:.0f} %" for name, _, share in class_areas(layout))
    logger.info("%s: %dx%d, %s", args.photo, layout.size[1], layout.size[0], shares)
    for path in write_layout(layout, out, "ids"):
        print(path)
    return 0


COMMAND = Command(
    "layout",
    "check a layout (show), convert it for other tools (convert) or make one from a photo (from-image)",
    add_arguments,
    run,
)
