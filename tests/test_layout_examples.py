"""The example layouts in examples/ read cleanly and every class is known to the ADE20K vocabulary."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tcig.layout.readers import read_layout
from tcig.layout.vocabularies import load_vocabulary, resolve_classes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("name", "classes", "size"),
    [
        ("beach.json", ["sky", "sea", "sand", "boat", "rock", "tree"], (512, 512)),
        ("street.png", ["sky", "building", "road", "sidewalk", "tree", "car"], (384, 512)),
        ("masks_lake", ["mountain", "sky", "tree", "water"], (256, 256)),
        ("coco_000000335529.png",
         ["boat", "bench", "grass", "house", "rock", "sand", "sea", "sky-other", "wall-stone"], (480, 640)),
    ],
)  # fmt: skip
def test_example(name: str, classes: list[str], size: tuple[int, int], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        layout = read_layout(EXAMPLES / name)
    assert not caplog.records, "examples must read without warnings"
    assert layout.classes == classes and layout.size == size and layout.prompt
    mapping = resolve_classes(layout.classes, {"ade20k": load_vocabulary("ade20k").labels})
    assert None not in mapping["ade20k"]


def test_coco_example_with_explicit_vocabulary() -> None:
    layout = read_layout(EXAMPLES / "coco_000000335529.png", vocabulary="coco-stuff")
    assert layout.prompt == "A wooden bench sitting next to a large body of water."
