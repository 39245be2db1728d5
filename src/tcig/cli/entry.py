"""The ``tcig`` console script: Ctrl-C while Python is still importing (torch takes seconds) is one line and exit
130, like Ctrl-C at any later moment (see :func:`tcig.cli.main.main`)."""

import sys

INTERRUPTED = "tcig: interrupted; finished files are kept, nothing half-written was left"


def main() -> int:
    try:
        from tcig.cli.main import main as run

        return run()
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
