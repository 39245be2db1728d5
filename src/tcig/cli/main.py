"""The ``tcig`` command line: the root parser, the registered commands and how errors become exit codes.

Every command is a :class:`~tcig.cli.common.Command` in its own module, listed once in :data:`COMMANDS`. Errors that
the user can fix (:class:`~tcig.errors.TCIGError`) print one line and exit 2; Ctrl-C prints one line and exits 130; a
closed output pipe (``tcig models | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from tcig import __version__
from tcig.cli import app, batch, bench, generate, layout, models
from tcig.cli import eval as eval_command
from tcig.cli.common import Command, HelpContext
from tcig.cli.entry import INTERRUPTED
from tcig.errors import TCIGError

logger = logging.getLogger("tcig")

COMMANDS: tuple[Command, ...] = (
    generate.COMMAND,
    batch.COMMAND,
    eval_command.COMMAND,
    bench.COMMAND,
    layout.COMMAND,
    models.COMMAND,
    app.COMMAND,
)


def help_context(argv: list[str]) -> HelpContext:
    """The model set named by ``--models`` (or ``--models=``) in ``argv``, or generate's default, for ``--help``."""
    from tcig.models.model_sets import load_model_set

    name = "sd15"
    for i, arg in enumerate(argv):
        if arg == "--models" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--models="):
            name = arg.partition("=")[2]
    try:
        return HelpContext(load_model_set(name), name)
    except TCIGError:  # reported properly when the command runs
        return HelpContext()


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, like every other tcig error, and exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The root parser with every registered command; ``argv`` picks the model set whose defaults help shows."""
    context = help_context(list(argv or []))
    parser = OneLineParser(prog="tcig", description="Layout-controlled text-to-image generation (TCIG).")
    parser.add_argument("--version", action="version", version=f"tcig {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.description or command.help)
        command.add_arguments(child, context)
        child.set_defaults(run=command.run)
    return parser


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
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(argv).parse_args(argv)
        _configure_logging(getattr(args, "verbose", False))
        if threading.current_thread() is threading.main_thread():  # from here Ctrl-C lets the command clean up
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return args.run(args)
    except TCIGError as err:
        print(f"tcig: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as err:  # the system refused (disk full, permissions): what and where, in one line
        where = f": {err.filename}" if err.filename else ""
        print(f"tcig: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if _caused_by_interrupt(err):  # a library turned the KeyboardInterrupt into its own error
            print(INTERRUPTED, file=sys.stderr)
            return 130
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            print("tcig: error: out of GPU memory; lower --num-images, --num-crops or the image size", file=sys.stderr)
            return 2
        if isinstance(err, MemoryError):
            print("tcig: error: out of memory; lower --num-images, --num-crops or the image size", file=sys.stderr)
            return 2
        raise


def _caused_by_interrupt(err: BaseException) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
