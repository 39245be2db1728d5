"""The ``tcig`` console script: Ctrl-C while Python is still importing (torch takes seconds) is one line and exit
130, like Ctrl-C at any later moment (see :func:`tcig.cli.main.main`)."""

import os
import signal
import sys

INTERRUPTED = "tcig: interrupted; finished files are kept, nothing half-written was left"


def _quit_while_importing(signum, frame) -> None:
    """Ctrl-C before the command runs: nothing is written yet, so leave at once. (A KeyboardInterrupt raised there
    could land in one of importlib's callbacks, which prints it as ignored and goes on.)"""
    os.write(2, (INTERRUPTED + "\n").encode())
    os._exit(130)


def main() -> int:
    signal.signal(signal.SIGINT, _quit_while_importing)
    try:
        from tcig.cli.main import main as run
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here, commands clean up after Ctrl-C
    code = run()
    if code == 130:  # interrupted: everything the command writes is settled; skip the interpreter's teardown,
        sys.stdout.flush()  # which a half-finished import can turn into a second KeyboardInterrupt (exit -2)
        sys.stderr.flush()
        os._exit(code)
    return code
