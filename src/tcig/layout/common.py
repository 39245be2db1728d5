"""Helpers shared by the layout readers (:mod:`tcig.layout.readers`, :mod:`tcig.layout.spec`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch

from tcig.errors import LayoutError
from tcig.layout import IGNORE, Layout

logger = logging.getLogger(__name__)

COMMENT_KEY = re.compile(r"^(_.*|comment|description)$")


def check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = [k for k in data if k not in allowed and not COMMENT_KEY.match(k)]
    if unknown:
        raise LayoutError(f"{where} has unknown key '{unknown[0]}'; allowed keys: {', '.join(sorted(allowed))}")


def string_map(value: Any, key: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise LayoutError(f'{where}: "{key}" must map class names to texts, e.g. {{"sea": "a calm sea"}}')
    return dict(value)


def check_prompt(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise LayoutError(f'{where}: "prompt" must be a string')
    return value


def finish_layout(
    label: torch.Tensor, classes: list[str], texts: dict[str, str], prompt: str | None, source: str
) -> Layout:
    """Drop classes with no pixel, index region texts by class and check that some pixel is labelled."""
    counts = torch.bincount(label[label != IGNORE].flatten(), minlength=len(classes))
    keep = [i for i, c in enumerate(counts.tolist()) if c]
    for i in sorted(set(range(len(classes))) - set(keep)):
        logger.warning("%s: class '%s' covers no pixel; it is left out", source, classes[i])
    remap = torch.full((len(classes) + 1,), IGNORE, dtype=torch.long)
    remap[torch.tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
    label = remap[label]  # IGNORE (-1) indexes the last entry, which stays IGNORE
    names = [classes[i] for i in keep]
    region_texts: dict[int, str] = {}
    for name, text in texts.items():
        if name not in classes:
            raise LayoutError(f"{source}: region text given for '{name}', which is not a class of the layout")
        if name in names:
            region_texts[names.index(name)] = text
    layout = Layout(label, names, region_texts, prompt)
    try:
        layout.check_labelled()
    except LayoutError as e:
        raise LayoutError(f"{source}: {e}") from None
    return layout
