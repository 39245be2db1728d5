"""``tcig models``: the built-in model sets with their components and tuned settings."""

from __future__ import annotations

import argparse

from tcig.cli.common import Command, HelpContext
from tcig.models.model_sets import BUILTIN


def add_arguments(parser: argparse.ArgumentParser, context: HelpContext) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")


def run(args: argparse.Namespace) -> int:
    for name, ms in BUILTIN.items():
        print(f"{name}: {ms.description}")
        print(f"  clip={ms.clip} segmenters={','.join(f'{s}:{w:g}' for s, w in ms.segmenters)} refiner={ms.refiner}")
        if ms.controlnet:
            print(f"  controlnet={ms.controlnet} (palette: {ms.control_palette or 'its own palette.json'})")
        if ms.stage1 or ms.stage2:
            print(f"  tuned settings: stage1={ms.stage1} stage2={ms.stage2}")
        for preset, changes in ms.presets.items():
            print(f"  --preset {preset}: {changes}")
    return 0


COMMAND = Command("models", "list the built-in model sets", add_arguments, run)
