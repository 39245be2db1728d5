"""One run per output folder: an exclusive lock file, and staging folders that say which process owns them.

The lock is an ``flock`` on ``OUT/.tcig.lock``: the kernel releases it when its process ends, however it ends, so a
killed run never leaves a folder locked. The file holds the owner's pid and command, for the message a second run
prints. Staging folders are named ``.tcig-PID-*``; a run removes only its own and those whose process is gone.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tcig.errors import ConfigError

logger = logging.getLogger(__name__)

LOCK_FILE = ".tcig.lock"
STAGING_PREFIX = ".tcig-"

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock degrades to a warning
    fcntl = None


class FolderLock:
    """Hold ``folder``'s lock while the ``with`` block runs.

    Args:
        folder: the output folder (it must exist).
        wait: seconds to wait for a lock held by another run; 0 refuses at once, ``None`` waits for ever.
        option: the option that names the folder, for the message (``--out``).
    """

    def __init__(self, folder: Path, wait: float | None = 0.0, option: str = "--out") -> None:
        self.folder, self.wait, self.option = Path(folder), wait, option
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        if fcntl is None:
            logger.warning("no file locking on this system; do not run two tcig commands into '%s'", self.folder)
            return self
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise ConfigError(f"cannot lock the output folder '{self.folder}': {err.strerror}") from err
                if deadline is not None and time.monotonic() >= deadline:
                    raise ConfigError(self._busy_message()) from None
                time.sleep(0.2)
                continue
            try:  # the holder before us may have removed the file: then lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv), "since": time.time()}).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(self._fd)
                self._fd = None

    def _busy_message(self) -> str:
        try:
            owner = json.loads(self.path.read_text())
            since = time.strftime("%H:%M:%S", time.localtime(owner["since"]))
            who = f" (pid {owner['pid']}, since {since}: {owner['command'][:80]})"
        except (OSError, ValueError, KeyError, TypeError):
            who = ""
        return (
            f"the output folder '{self.folder}' is in use by another tcig run{who}; wait for it to finish, "
            f"give another {self.option}, or pass --wait to queue behind it"
        )


def make_staging(folder: Path) -> Path:
    """A fresh hidden staging folder inside ``folder``, named after this process."""
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=folder))


def _owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging folders whose process is gone (never a live run's); returns what was removed."""
    removed = []
    for entry in Path(folder).glob(f"{STAGING_PREFIX}*"):
        pid_text = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if not entry.is_dir() or (pid_text.isdigit() and _owner_alive(int(pid_text))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        logger.info("removed %d staging folder(s) left by killed runs in %s", len(removed), folder)
    return removed
