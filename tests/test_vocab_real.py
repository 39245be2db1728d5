"""Decoding real COCO-Stuff and ADE20K label maps against the independently verified manifest of the shared data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from tcig.layout import IGNORE
from tcig.layout.readers import read_layout

HERE = Path(__file__).parent / "data" / "real"
SHARED = Path(os.environ.get("TCIG_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))
EXPECTED: dict[str, Any] = json.loads((HERE / "expected.json").read_text())["maps"]


def _check(path: Path, entry: dict[str, Any]) -> None:
    """The decoded layout lists exactly the manifest's classes (void left out) with their pixel shares."""
    coco = entry["dataset"].startswith("coco")
    layout = read_layout(path, vocabulary="coco-stuff" if coco else "ade20k")
    void_id = 255 if coco else 0
    expected = [c for c in entry["classes"] if c["id"] != void_id]
    # manifest ADE names are whole objectInfo150 rows ("building, edifice"); the label is the first name
    assert layout.classes == [c["name"] if coco else c["name"].split(",")[0].strip() for c in expected]
    assert layout.size == (entry["height"], entry["width"])
    total = layout.label_map.numel()
    for index, c in enumerate(expected):
        pct = 100 * (layout.label_map == index).sum().item() / total
        assert abs(pct - c["pixel_pct"]) <= 0.051, (path.name, c)
    void_pct = next((c["pixel_pct"] for c in entry["classes"] if c["id"] == void_id), 0.0)
    assert abs(100 * (layout.label_map == IGNORE).sum().item() / total - void_pct) <= 0.051
    assert layout.label_map.dtype == torch.long


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_real_maps(name: str) -> None:
    _check(HERE / name, EXPECTED[name])


def test_bundled_maps_void_becomes_ignore() -> None:
    coco = read_layout(HERE / "000000064898.png", vocabulary="coco-stuff")
    assert (coco.label_map == IGNORE).any() and "unlabeled" not in coco.classes
    ade = read_layout(HERE / "ADE_val_00001412.png", vocabulary="ade20k")
    assert (ade.label_map == IGNORE).float().mean().item() == pytest.approx(0.107, abs=0.001)


@pytest.mark.skipif(not (SHARED / "manifest.json").is_file(), reason="shared real data not available")
def test_all_shared_real_maps() -> None:
    manifest = json.loads((SHARED / "manifest.json").read_text())
    assert len(manifest) == 93
    for entry in manifest:
        _check(SHARED / entry["label_map"], entry)
