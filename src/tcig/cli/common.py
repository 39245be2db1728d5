"""What the commands share: how a command registers, the settings flags, and the output folder of a run."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcig.errors import ConfigError
from tcig.io.cache import CACHE_ENV, DEFAULT_MAX_BYTES, TensorCache, default_cache_folder
from tcig.io.lock import FolderLock, remove_stale_staging
from tcig.settings import Option, Stage1Settings, Stage2Settings, options_of

logger = logging.getLogger("tcig")


@dataclass(frozen=True)
class Command:
    """A ``tcig`` sub-command: ``add_arguments(parser, context)`` fills its parser, ``run(args)`` returns the exit
    code. ``context`` carries what the parser's help may show (the model set named on the command line)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser, HelpContext], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


@dataclass(frozen=True)
class HelpContext:
    """The model set whose tuned settings ``--help`` shows as the defaults (None: the dataclass defaults)."""

    model_set: Any = None
    model_set_name: str | None = None

    def default(self, option: Option) -> Any:
        if self.model_set is not None and option.group is Stage1Settings:
            return getattr(self.model_set.stage1_settings(), option.name)
        if self.model_set is not None and option.group is Stage2Settings:
            return getattr(self.model_set.stage2_settings(), option.name)
        return getattr(option.group(), option.name)


def add_setting_arguments(group, settings_class: type, context: HelpContext, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of ``settings_class`` (``--`` + key), unset by default so that the model set's tuned value
    applies; the help names the value that will run."""
    tuned = context.model_set_name and settings_class in (Stage1Settings, Stage2Settings)
    source = f" for '{context.model_set_name}'" if tuned else ""
    for option in options_of(settings_class):
        if option.key in skip:
            continue
        default = context.default(option)
        shown = "" if default is None else f" (default {default}{source})"
        kwargs: dict[str, Any] = {"dest": option.key, "default": None, "help": f"{option.help}{shown}"}
        if option.choices:
            kwargs["choices"] = list(option.choices)
        else:
            kwargs["type"] = option.kind
        group.add_argument(option.flag, **kwargs)


def given_settings(args: argparse.Namespace, settings_class: type) -> dict[str, Any]:
    """The fields of ``settings_class`` the user set on the command line."""
    return {o.name: getattr(args, o.key) for o in options_of(settings_class) if getattr(args, o.key, None) is not None}


def add_output_arguments(group, help: str, default: str | None = None) -> None:
    """``--out`` (required unless it has a ``default``) and ``--wait``."""
    group.add_argument("--out", required=default is None, default=default, help=help)
    group.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=math.inf,
        metavar="SECONDS",
        help="if another tcig run uses --out, wait for it (for ever, or at most SECONDS) instead of refusing",
    )


def wait_seconds(args: argparse.Namespace) -> float | None:
    """``--wait`` as FolderLock's ``wait``: absent → 0 (refuse), bare → None (for ever), N → N seconds."""
    value = getattr(args, "wait", None)
    if value is None:
        return 0.0
    if not value >= 0:
        raise ConfigError(f"--wait takes a number of seconds >= 0 (or nothing: for ever), got {value}")
    return None if math.isinf(value) else value


@contextlib.contextmanager
def output_folder(path: str | Path, *, wait: float | None = 0.0, lock: bool = True) -> Iterator[Path]:
    """Create (if missing), check and lock the output folder for the ``with`` block; clean this run's staging.

    If this run created the folder and leaves nothing in it (it failed before writing), the folder is removed.

    Args:
        path: the folder the user gave.
        wait: seconds to wait for another run's lock (0 refuses, None waits for ever).
        lock: False for the helper processes of a run that already holds the lock (accelerate ranks).
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file; give a folder")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise ConfigError(f"cannot write to the output folder '{out}': {err.strerror}") from err
    try:
        with FolderLock(out, wait=wait) if lock else contextlib.nullcontext():
            if lock:
                remove_stale_staging(out)
            yield out
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out)  # only succeeds if empty


def add_run_arguments(run) -> None:
    """Seed, device, dtype, progress and verbosity, as ``tcig generate`` and ``tcig eval`` take them."""
    run.add_argument("--seed", type=int, default=0, help="random seed, 0..2**64-1 (default 0)")
    add_device_arguments(run)
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("-v", "--verbose", action="store_true", help="log details")


def add_device_arguments(group) -> None:
    """``--device`` and ``--dtype``."""
    group.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    group.add_argument(
        "--dtype",
        default="auto",
        help="stage-2 dtype: auto (float32 on CPU; on a GPU the refiner's own, bfloat16 for FLUX.1 and SD3, float16 "
        "for SD), float32, float16, bfloat16; stage 1 uses mixed precision on GPUs",
    )


def add_preset_argument(group) -> None:
    """``--preset``: a named speed/quality point of the model set."""
    group.add_argument(
        "--preset",
        help="a named point of the model set's speed/quality trade-off, e.g. fast or best (default: the set's own "
        "settings; `tcig models` lists each set's presets); explicit settings still win",
    )


def add_model_arguments(group, default: str = "sd15", why: str = "") -> None:
    """``--models`` (``default``, with ``why`` in its help) and the components that replace the set's (``--clip``,
    ``--segmenter``, ``--refiner``), with ``--allow-pickle``, ``--no-cache`` and ``--preset``: what ``tcig generate``,
    ``tcig batch`` and ``tcig app`` load."""
    from tcig.models.model_sets import BUILTIN

    group.add_argument(
        "--models",
        default=default,
        help=f"model set: {', '.join(BUILTIN)} or a model-set JSON file (default {default}{why})",
    )
    group.add_argument("--clip", help="override the CLIP model (hub id or folder)")
    group.add_argument(
        "--segmenter",
        action="append",
        metavar="ID[:WEIGHT]",
        help="guiding segmenter with its loss weight (default 1); repeat for several; replaces the model set's",
    )
    group.add_argument(
        "--refiner", help="override the stage-2 model (diffusers img2img id/folder, or an image-space model folder)"
    )
    add_loading_arguments(group)
    add_preset_argument(group)


def chosen_model_set(args: argparse.Namespace):
    """The model set of :func:`add_model_arguments`' flags: the named set, its preset, the components given."""
    from tcig.models.model_sets import load_model_set, parse_segmenter_arg

    segmenters = [parse_segmenter_arg(s) for s in args.segmenter] if args.segmenter else None
    model_set = load_model_set(args.models).with_preset(args.preset)
    return model_set.with_overrides(clip=args.clip, segmenters=segmenters, refiner=args.refiner)


def add_speed_arguments(group) -> None:
    """``--compile`` and ``--channels-last``; :func:`apply_speed` sets them on a pipeline."""
    group.add_argument(
        "--compile",
        nargs="?",
        const="reduce-overhead",
        metavar="MODE",
        help="torch.compile the stage-1 loss (default mode reduce-overhead: CUDA graphs); pays off for several "
        "images or a long run, since the first call compiles (docs/performance.md)",
    )
    group.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels-last memory format for every network (default on: 1.07x faster end to end on 2 CPU cores, "
        "1.2x on an H200)",
    )


def apply_speed(pipe, args: argparse.Namespace) -> None:
    pipe.compile_stage1 = args.compile or False
    pipe.set_channels_last(args.channels_last)


START_IMAGES = "start-images"
"""The cache's subfolder of start images."""


def add_loading_arguments(group) -> None:
    """``--allow-pickle`` and ``--no-cache``, for the commands that load models."""
    help = "allow pickle checkpoints (.bin/.pt/.ckpt); unpickling can run code"
    group.add_argument("--allow-pickle", action="store_true", help=help)
    group.add_argument(
        "--no-cache",
        action="store_true",
        help=f"do not keep the refiner's start images on disk between runs (kept in ${CACHE_ENV}, default "
        f"~/.cache/tcig, at most {DEFAULT_MAX_BYTES // 2**20} MiB)",
    )


def start_cache(args: argparse.Namespace) -> TensorCache | None:
    """The on-disk cache of start images, None with ``--no-cache``."""
    return None if args.no_cache else TensorCache(default_cache_folder() / START_IMAGES)


# --- comma lists on the command line ---------------------------------------------------------------------------


def float_list(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def word_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def assignments(text: str) -> dict:
    """``key=value,key=value`` with JSON-like values (numbers, true/false, strings)."""
    values = {}
    for part in word_list(text):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"'{part}' is not KEY=VALUE")
        try:
            values[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            values[key.strip()] = value.strip()
    return values
