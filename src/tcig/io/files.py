"""Reading what users and earlier runs left: bounded inputs, atomic writes, JSON lines that survive a torn line.

- :func:`read_input_text` refuses FIFOs, devices and folders, and files over a size limit, before reading them.
- :func:`write_atomically` writes beside the target and renames over it, so a file is whole or absent.
- :func:`read_json_lines` / :func:`append_json_line`: a resumable log of one JSON object per line. A corrupt line is
  moved aside to ``<file>.corrupt`` and reported with its number; it never costs another line. An append after a
  torn last line starts a new line, so the torn fragment stays one bad line instead of swallowing the next good one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from tcig.errors import ConfigError, TCIGError

logger = logging.getLogger(__name__)

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Largest JSON input (manifest, model set, layout spec, legend, resumable logs) tcig reads."""


def not_there(path: Path) -> str:
    """Why ``path`` cannot be opened, for a message after its name: "does not exist", or what is wrong with the
    symbolic link it is."""
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return "is a loop of symbolic links; point the link at a file"
        return f"is a symbolic link to '{os.readlink(path)}', which does not exist"
    return "does not exist"


def check_regular_file(
    path: Path, what: str, limit: int | None = MAX_JSON_BYTES, error: type[TCIGError] = ConfigError
) -> None:
    """Raise ``error`` unless ``path`` is an existing regular file of at most ``limit`` bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} '{path}' {not_there(path)}") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{what} '{path}' {not_there(path)}") from None
        raise error(f"cannot read {what} '{path}': {err.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} '{path}' is a folder; give a file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} '{path}' is not a regular file (a pipe or device); save it to a file first")
    if limit is not None and info.st_size > limit:
        raise error(f"{what} '{path}' is {info.st_size:,} bytes, over the {limit:,}-byte limit; split or shrink it")


def read_input_text(
    path: str | Path, what: str, limit: int = MAX_JSON_BYTES, error: type[TCIGError] = ConfigError
) -> str:
    """The UTF-8 text of a user's input file, refused in one line (``error``) if it is no regular file, too large
    or not text."""
    path = Path(path).expanduser()
    check_regular_file(path, what, limit, error)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{what} '{path}' {not_there(path)}") from None
        raise error(f"cannot read {what} '{path}': {err.strerror}") from None
    if len(data) > limit:  # grew while we looked, or a /proc-like file that reports no size
        raise error(f"{what} '{path}' is over the {limit:,}-byte limit; split or shrink it")
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (some Windows editors write one) is not content
    except UnicodeDecodeError as err:
        raise error(f"{what} '{path}' is not UTF-8 text (byte {err.start}); save it as UTF-8") from None


def read_json_object(path: str | Path, what: str, error: type[TCIGError] = ConfigError) -> dict:
    """A user's JSON file that must hold one object: bounded, UTF-8, every mistake one line naming the file."""
    try:
        data = json.loads(read_input_text(path, what, error=error))
    except json.JSONDecodeError as err:
        raise error(
            f"{what} '{path}' is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); fix it"
        ) from None
    if not isinstance(data, dict):
        raise error(f"{what} '{path}' must hold a JSON object {{...}}, not a {type(data).__name__}")
    return data


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a hidden temporary file beside ``path``, then rename it over ``path``; the temporary file
    is removed if ``write`` fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomically(path: Path, data: object, indent: int | None = 2) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    text = json.dumps(data, indent=indent, default=str)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json_lines(path: Path, what: str = "") -> list[dict]:
    """The JSON-object lines of ``path`` (none if it does not exist). Bad lines (a torn line, a bad edit) are moved
    aside, appended to ``<path>.corrupt``, and ``path`` is rewritten without them, so that it stays JSON lines for
    other tools; the warning says how many and where they went.

    Args:
        path: a file of one JSON object per line.
        what: how to name the file in warnings (default: its path).
    """
    if not path.exists():
        return []
    check_regular_file(path, what or "the file", limit=None)
    rows: list[dict] = []
    good: list[bytes] = []
    bad: list[tuple[int, bytes]] = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                row = None
            if isinstance(row, dict):
                rows.append(row)
                good.append(line if line.endswith(b"\n") else line + b"\n")
            else:
                bad.append((number, line if line.endswith(b"\n") else line + b"\n"))
    if bad:
        aside = path.with_name(path.name + CORRUPT_SUFFIX)
        with open(aside, "ab") as f:  # first kept aside, synced, and only then removed from the file
            f.writelines(line for _, line in bad)
            f.flush()
            os.fsync(f.fileno())
        write_atomically(path, lambda tmp: tmp.write_bytes(b"".join(good)))
        numbers = [n for n, _ in bad]
        shown = ", ".join(map(str, numbers[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        message = "%s: %d corrupt line(s) (line %s) moved to %s; their entries will be redone"
        logger.warning(message, what or path, len(bad), shown, aside)
    return rows


CORRUPT_SUFFIX = ".corrupt"
"""What :func:`read_json_lines` appends to a file's name for the lines it moves aside."""


def append_json_line(path: Path, row: dict) -> None:
    """Append ``row`` as one line, flushed and synced; a torn last line (a killed run) is closed first."""
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(json.dumps(row).encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())
