"""``tcig layout show`` and ``tcig layout convert``: check a layout made anywhere, and carry it to other tools."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tcig.cli.common import Command, HelpContext
from tcig.cli.generate import add_layout_arguments, layout_options
from tcig.errors import ConfigError
from tcig.io.names import check_name
from tcig.layout.convert import FORMATS, class_areas, write_layout
from tcig.layout.palettes import PALETTE_NAMES

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


def run(args: argparse.Namespace) -> int:
    from tcig.io.files import write_atomically
    from tcig.io.pictures import colorize, contact_sheet, layout_colours, legend_image
    from tcig.layout import Layout
    from tcig.layout.readers import read_layout

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


COMMAND = Command("layout", "check a layout (show) or convert it for other tools (convert)", add_arguments, run)
