"""``tcig app``: the painter in a local web page (paint or load a layout, generate, keep the results)."""

from __future__ import annotations

import argparse
import errno
import logging
import webbrowser
from pathlib import Path

from tcig.cli.common import (
    Command,
    HelpContext,
    add_device_arguments,
    add_model_arguments,
    add_output_arguments,
    chosen_model_set,
    output_folder,
    start_cache,
    wait_seconds,
)
from tcig.errors import ConfigError

logger = logging.getLogger("tcig")

DEFAULT_PORT = 7860
DEFAULT_OUT = "tcig-app"


def add_arguments(parser: argparse.ArgumentParser, context: HelpContext) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="needed to listen on a non-local --host: anyone who can reach it may run the models and read the results",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)"
    )
    add_output_arguments(
        parser, f"folder the results are written to (default ./{DEFAULT_OUT}; created if missing)", DEFAULT_OUT
    )
    parser.add_argument(
        "--examples",
        default="examples",
        help="folder of example layouts for the gallery (default ./examples, else the project's)",
    )
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser")
    add_model_arguments(parser, "scenes", ": the bundled offline models")
    add_device_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")


def run(args: argparse.Namespace) -> int:
    from tcig.app.server import LOCAL_HOSTS, AppServer
    from tcig.app.studio import Studio
    from tcig.models.devices import resolve_device, resolve_dtype
    from tcig.pipeline import TCIGPipeline

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    local = args.host in LOCAL_HOSTS
    if not local and not args.allow_remote:
        raise ConfigError(
            f"--host {args.host} lets other machines use the app; add --allow-remote if that is what you want"
        )
    examples = _examples_folder(args.examples)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model_set = chosen_model_set(args)
    with output_folder(args.out, wait=wait_seconds(args)) as out_dir:
        try:  # before the models load, so that a busy port fails at once
            server = AppServer((args.host, args.port), local_only=not args.allow_remote)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {args.port} is in use; pick another --port (0 picks a free one)") from None
            raise ConfigError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
        try:
            logger.info("loading models of '%s' on %s", model_set.name, device)
            pipe = TCIGPipeline.from_model_set(
                model_set, allow_pickle=args.allow_pickle, start_cache=start_cache(args)
            ).to(device, dtype)
            server.studio = studio = Studio(pipe, out_dir, examples)
            if not local:
                logger.warning("tcig app listens on %s: anyone who can reach it can use it", args.host)
            shown = f"models '{model_set.name}', results in {out_dir}; Ctrl-C stops"
            print(f"tcig app: {server.url} ({shown})", flush=True)
            if args.open:
                webbrowser.open(server.url)
            try:
                server.serve_forever()
            finally:
                studio.queue.close()
        finally:
            server.server_close()
    return 0


def _examples_folder(given: str) -> Path | None:
    """The gallery's folder: the one given if it exists; for the default, the project's examples as a fallback."""
    folder = Path(given).expanduser()
    if folder.is_dir():
        return folder
    project = Path(__file__).resolve().parents[3] / "examples"
    if given == "examples" and project.is_dir():
        return project
    if given != "examples":
        raise ConfigError(f"--examples '{given}' is not a folder")
    return None


COMMAND = Command(
    "app",
    "paint a layout in the browser and generate from it",
    add_arguments,
    run,
    "A local web page: paint a layout (or load a layout file or an example), type a prompt, watch stage 1 form and "
    "stage 2 refine, download the results. Results are written to --out with the names tcig generate uses.",
)
