"""Output names: every file a run writes stays inside the folder the user gave, and no two names of one run collide.

A name is one file-name stem: any letters (accents and other scripts included), digits, spaces and ``. _ - + ( ) ,``
that is not empty, not ``.``/``..``, does not start with ``.`` (hidden files are the runs' own staging) and does not
end with a space or a dot. Path separators, control characters and the characters Windows forbids are refused, so a
name means the same file on every system.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from tcig.errors import ConfigError

MAX_NAME_BYTES = 200
_FORBIDDEN = re.compile(r'[/\\<>:"|?*\x00-\x1f\x7f]')
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def check_name(name: object, what: str) -> str:
    """Return ``name`` (NFC-normalized) if it is a safe file-name stem, else raise one clear ``ConfigError``.

    Args:
        name: the proposed stem.
        what: how the user gave it, for the message (``"--name"``, ``"manifest line 3: name"``).
    """
    if not isinstance(name, str):
        raise ConfigError(f"{what} must be a string, not {type(name).__name__}")
    text = unicodedata.normalize("NFC", name)
    bad = _FORBIDDEN.search(text)
    reason = None
    if not text.strip():
        reason = "is empty"
    elif bad:
        shown = repr(bad.group(0)) if bad.group(0).isprintable() else f"U+{ord(bad.group(0)):04X}"
        reason = f"contains {shown}, so it would not stay one file in the output folder"
    elif text.startswith("."):
        reason = "starts with '.' (hidden files and '..' are reserved)"
    elif text != text.rstrip(" ."):
        reason = "ends with a space or a dot"
    elif text.split(".")[0].lower() in _WINDOWS_DEVICES:
        reason = "is a reserved device name on Windows"
    elif len(text.encode("utf-8")) > MAX_NAME_BYTES:
        reason = f"is longer than {MAX_NAME_BYTES} bytes"
    if reason:
        raise ConfigError(
            f"{what} {name!r} {reason}; use a plain file name (letters, digits, spaces, '.', '_', '-'), no folders"
        )
    return text


def check_distinct(files: Iterable[tuple[str, str]], reserved: Iterable[str] = ()) -> None:
    """Refuse two outputs of one run that would be the same file (compared without case, as macOS and Windows do)
    or that would overwrite a file the run keeps for itself.

    Args:
        files: ``(file name, who writes it)`` pairs, e.g. ``("a_sheet.png", "manifest line 4")``.
        reserved: file names the run writes itself (summaries, plans, locks).
    """
    owner: dict[str, str] = {name.casefold(): "the run itself" for name in reserved}
    for name, who in files:
        key = unicodedata.normalize("NFC", name).casefold()
        if key in owner and owner[key] != who:
            raise ConfigError(
                f"{who} would write '{name}', which {owner[key]} also writes; give one of them another name"
            )
        owner[key] = who
