"""The procedural scene renderer: determinism, shapes, class statistics, arrangement rules and captions."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tcig.errors import ConfigError
from tcig.layout.readers import read_layout
from tcig.scenes import SCENE_CLASSES, Scene, render_scene, render_scenes, scene_layout

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEA, BOAT = SCENE_CLASSES.index("sea"), SCENE_CLASSES.index("boat")
OCCLUDERS = [SCENE_CLASSES.index(n) for n in ("tree", "house", "rock", "boat")]
# A caption word that names (or implies) a class may only appear when the class has pixels.
WORDS = {
    "boat": {"boat", "boats", "sailboat", "sailboats"},
    "house": {"house", "houses", "village", "roof", "roofs"},
    "tree": {"tree", "trees", "palm", "pine", "leafy"},
    "road": {"road"},
    "rock": {"rock", "rocks", "rocky"},
    "mountain": {"mountain", "mountains", "snowy"},
    "cloud": {"cloud", "clouds", "cloudy"},
    "sun": {"sun", "sunny", "sunshine", "sunset"},
    "sea": {"sea", "beach", "lake", "coast"},
    "sand": {"sand", "sandy", "beach"},
    "grass": {"grass", "grassy", "meadow", "field", "countryside", "village"},
}


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray, list[str]]:
    return render_scenes(range(300), 64)


def test_deterministic_by_seed() -> None:
    a, b, c = render_scene(7), render_scene(7), render_scene(8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels) and a.caption == b.caption
    assert not np.array_equal(a.labels, c.labels) and not np.array_equal(a.image, c.image)
    assert a.seed == 7 and isinstance(a, Scene)


@pytest.mark.parametrize("size", [32, 64, 96, 128])
def test_shapes_and_dtypes(size: int) -> None:
    scene = render_scene(3, size)
    assert scene.image.shape == (size, size, 3) and scene.image.dtype == np.uint8
    assert scene.labels.shape == (size, size) and scene.labels.dtype == np.uint8
    assert scene.labels.max() < len(SCENE_CLASSES)


def test_bad_size_is_refused() -> None:
    with pytest.raises(ConfigError, match=">= 32"):
        render_scene(0, 16)


def test_same_scene_at_every_size() -> None:
    agree, same_caption = [], 0
    for seed in range(20):
        small, large = render_scene(seed, 64), render_scene(seed, 128)
        agree.append((large.labels[::2, ::2] == small.labels).mean())
        same_caption += small.caption == large.caption
    assert min(agree) > 0.9 and np.mean(agree) > 0.95
    assert same_caption >= 16


def test_render_scenes_matches_render_scene(batch) -> None:
    images, labels, captions = batch
    assert images.shape == (300, 64, 64, 3) and labels.shape == (300, 64, 64) and len(captions) == 300
    scene = render_scene(42)
    assert np.array_equal(images[42], scene.image) and np.array_equal(labels[42], scene.labels)
    assert captions[42] == scene.caption
    empty = render_scenes([], 32)
    assert empty[0].shape == (0, 32, 32, 3) and empty[1].shape == (0, 32, 32) and empty[2] == []


def test_class_frequencies(batch) -> None:
    _, labels, _ = batch
    present = np.stack([np.bincount(lab.ravel(), minlength=len(SCENE_CLASSES)) > 0 for lab in labels]).mean(0)
    assert present[SCENE_CLASSES.index("sky")] >= 0.99
    for name, fraction in zip(SCENE_CLASSES, present, strict=True):
        assert fraction >= 0.05, f"{name} appears in only {fraction:.1%} of the scenes"


def test_boats_lie_on_the_sea(batch) -> None:
    """Under the lowest boat pixel of each column lies sea (3 rows, ±1 column) unless a nearer object hides it."""
    _, labels, _ = batch
    checked = 0
    for lab in labels:
        boat = lab == BOAT
        if not boat.any():
            continue
        assert (lab == SEA).any()
        for col in np.nonzero(boat.any(0))[0]:
            row = np.nonzero(boat[:, col])[0].max()
            if row + 1 >= lab.shape[0] or lab[row + 1, col] in OCCLUDERS:
                continue
            assert (lab[row + 1 : row + 4, max(0, col - 1) : col + 2] == SEA).any()
            checked += 1
    assert checked > 100


def test_captions(batch) -> None:
    _, labels, captions = batch
    vocabulary: set[str] = set()
    for lab, caption in zip(labels, captions, strict=True):
        assert re.fullmatch(r"[a-z ,]+", caption), caption
        words = caption.replace(",", "").split()
        assert 3 <= len(words) <= 20, caption
        vocabulary |= set(words)
        counts = np.bincount(lab.ravel(), minlength=len(SCENE_CLASSES))
        for name, names in WORDS.items():
            if names & set(words):
                assert counts[SCENE_CLASSES.index(name)], f"'{caption}' names {name}, which has no pixel"
    assert len(vocabulary) <= 150
    assert len(set(captions)) > 250  # varied


def test_salient_objects_are_named(batch) -> None:
    """Boats and houses covering at least 1 % of the image are (nearly) always in the caption."""
    _, labels, captions = batch
    missed = 0
    for lab, caption in zip(labels, captions, strict=True):
        share = np.bincount(lab.ravel(), minlength=len(SCENE_CLASSES)) / lab.size
        words = set(caption.replace(",", "").split())
        for name in ("boat", "house"):
            missed += share[SCENE_CLASSES.index(name)] >= 0.01 and not WORDS[name] & words
    assert missed <= 5


def test_scene_layout() -> None:
    scene = render_scene(11)
    layout = scene_layout(scene)
    assert layout.classes == list(SCENE_CLASSES) and layout.prompt == scene.caption
    assert layout.size == (64, 64) and torch.equal(layout.label_map, torch.from_numpy(scene.labels).long())
    layout.check_labelled()


@pytest.mark.parametrize("name", ["scene_beach.json", "scene_village.json"])
def test_example_layouts(name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        layout = read_layout(EXAMPLES / name)
    assert not caplog.records, "examples must read without warnings"
    assert set(layout.classes) <= set(SCENE_CLASSES) and layout.size == (128, 128)
    assert layout.prompt and len(layout.prompt.split()) <= 20 and layout.prompt == layout.prompt.lower()
