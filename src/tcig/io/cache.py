"""A bounded on-disk cache of tensors, shared by every tcig process of a user (the start images of stage 1).

One ``safetensors`` file per entry, named by the SHA-256 of its key. Writes go to a temporary file in the same
folder and are renamed into place, so a reader sees a whole entry or none, and two runs writing the same entry at
once both succeed. A read refreshes the entry's modification time; when the folder grows past ``max_bytes`` the
least recently used entries are deleted. A cache that cannot be read or written is skipped with one warning: it
never fails a generation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

CACHE_ENV = "TCIG_CACHE_DIR"
"""Environment variable naming the cache folder (default ``$XDG_CACHE_HOME/tcig`` or ``~/.cache/tcig``)."""
DEFAULT_MAX_BYTES = 512 * 2**20
SUFFIX = ".safetensors"
STALE_TEMP_SECONDS = 3600
"""Age after which a temporary file left by a killed writer is removed."""


def default_cache_folder() -> Path:
    """``$TCIG_CACHE_DIR``, else ``$XDG_CACHE_HOME/tcig``, else ``~/.cache/tcig``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tcig"


def cache_key(*parts) -> str:
    """A SHA-256 hex digest of ``parts`` (JSON-serializable values) in a stable form."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class TensorCache:
    """Entries of named CPU tensors on disk, by key (see :func:`cache_key`).

    Args:
        folder: where the entries live (created on first write).
        max_bytes: the folder's bound; least recently used entries go first.
    """

    def __init__(self, folder: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._warned = False

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        """The entry's tensors, or None when absent or unreadable (an unreadable entry is deleted)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self._path(key)
        try:
            tensors = load_file(path)
            os.utime(path)
        except FileNotFoundError:
            return None
        except (OSError, SafetensorError, ValueError) as err:
            logger.warning("cache entry %s is unreadable (%s); drawing it again", path.name, err)
            path.unlink(missing_ok=True)
            return None
        return tensors

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store an entry (atomically), then trim the folder to its bound."""
        from safetensors.torch import save_file

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.folder)
            os.close(handle)
            try:
                save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, temp)
                os.replace(temp, self._path(key))
            finally:
                Path(temp).unlink(missing_ok=True)
            self.trim()
        except OSError as err:
            if not self._warned:
                logger.warning("cannot write the cache in %s (%s); going on without it", self.folder, err)
                self._warned = True

    def trim(self) -> None:
        """Delete the least recently used entries until the folder holds at most ``max_bytes``, and temporary files
        of writers that died."""
        entries = []
        now = time.time()
        for path in self.folder.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:  # another run removed it
                continue
            if path.name.startswith(".tmp-"):
                if now - stat.st_mtime > STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)
            elif path.suffix == SUFFIX:
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def size_bytes(self) -> int:
        """Bytes the entries take now."""
        if not self.folder.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.folder.glob(f"*{SUFFIX}"))
