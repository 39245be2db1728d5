"""Safe loading of model ids and local folders: clear errors, safetensors only unless the user opts in."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tcig.errors import ModelLoadError
from tcig.io.files import not_there

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
"""Checkpoint formats that are unpickled on load, which can run arbitrary code."""

T = TypeVar("T")


def is_local_ref(ref: str) -> bool:
    """True when ``ref`` names a local folder (existing, or written like a path) rather than a hub id."""
    if Path(ref).expanduser().exists():
        return True
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref


def check_model_ref(ref: str, what: str, *, allow_pickle: bool = False) -> str:
    """Validate a model reference before loading it; returns it with ``~`` expanded for local folders."""
    if not is_local_ref(ref):
        return ref
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"the {what} folder '{ref}' {not_there(path)}; check the path, or give a hub id instead")
    if not (path / "config.json").is_file() and not (path / "model_index.json").is_file():
        raise ModelLoadError(
            f"the {what} folder '{ref}' has no config.json or model_index.json; "
            "point to a folder written by save_pretrained"
        )
    files = [p for p in path.rglob("*") if p.is_file()]
    has_safetensors = any(p.suffix == ".safetensors" for p in files)
    pickles = [p.name for p in files if p.suffix in PICKLE_SUFFIXES]
    if not has_safetensors and pickles and not allow_pickle:
        raise ModelLoadError(
            f"the {what} folder '{ref}' holds only pickle weights ({pickles[0]}), which can run code when loaded; "
            "convert them to safetensors, or pass --allow-pickle if you trust the source"
        )
    if not has_safetensors and not pickles:
        raise ModelLoadError(f"the {what} folder '{ref}' holds no weights (.safetensors); is the folder complete?")
    return str(path)


def read_json_config(ref: str, filename: str = "config.json") -> dict[str, Any] | None:
    """A local folder's JSON config, or the cached copy of a hub id's; None when unavailable."""
    path = Path(ref).expanduser() / filename
    if not path.is_file():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(ref, filename))
        except Exception:  # noqa: BLE001 - any failure means "not available here"
            return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"'{path}' is not valid JSON ({err}); the model folder may be corrupt") from err


def load_pretrained(loader: Callable[..., T], ref: str, what: str, *, allow_pickle: bool = False, **kwargs: Any) -> T:
    """Call ``loader(ref, use_safetensors=..., **kwargs)`` (a ``from_pretrained``) and turn failures into one line."""
    ref = check_model_ref(ref, what, allow_pickle=allow_pickle)
    try:
        return loader(ref, use_safetensors=not allow_pickle, **kwargs)
    except ModelLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - safetensors, OSError, ValueError…: all mean "cannot load"
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        hint = (
            "check the id and your network or hub cache (offline runs need the model downloaded beforehand)"
            if not is_local_ref(ref)
            else "the folder may be incomplete or corrupt"
        )
        raise ModelLoadError(f"could not load the {what} from '{ref}': {reason}; {hint}") from err
