"""The ``tcig`` console script: Ctrl-C at any moment is one line and exit 130 (see :func:`tcig.cli.main.main`), from
the first import (torch takes seconds) to the interpreter's teardown."""

import _signal  # the C module: ``signal`` itself builds enums on import, a window where Ctrl-C would be a traceback
import os
import sys

INTERRUPTED = "tcig: interrupted; finished files are kept, nothing half-written was left"


def _quit_while_importing(signum, frame) -> None:
    """Ctrl-C before the command runs (imports, parsing): nothing is written yet, so leave at once. (A
    KeyboardInterrupt raised there could land in one of importlib's callbacks, which prints it as ignored and goes
    on, or in a library's import guard, which turns it into another error.)"""
    os.write(2, (INTERRUPTED + "\n").encode())
    os._exit(130)


def main() -> int:
    _signal.signal(_signal.SIGINT, _quit_while_importing)  # tcig.cli.main puts Python's own back for the command
    from tcig.cli.main import main as run

    code = run()
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the command is over: a late Ctrl-C must not kill the teardown
    if code == 130:  # interrupted: everything the command writes is settled; skip the interpreter's teardown,
        sys.stdout.flush()  # which a half-finished import can turn into a second KeyboardInterrupt (exit -2)
        sys.stderr.flush()
        os._exit(code)
    return code
