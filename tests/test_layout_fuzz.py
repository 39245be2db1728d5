"""Property-based tests: random and malformed files thrown at every layout reader.

Whatever the bytes, ``read_layout`` returns a valid Layout or raises a TCIGError (one actionable line); never any
other exception.
"""

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tcig.errors import TCIGError
from tcig.layout import IGNORE
from tcig.layout.readers import read_layout

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _check(path: Path, **kwargs) -> None:
    try:
        layout = read_layout(path, max_pixels=4096, **kwargs)
    except TCIGError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message
        return
    assert layout.label_map.ndim == 2 and layout.label_map.min() >= IGNORE
    assert layout.label_map.max() < len(layout.classes)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _in_tmp(name: str, data: bytes, check) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        check(path)


@SETTINGS
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".png", ".json", ".jpg", ""]))
def test_random_bytes_never_crash_a_reader(data, suffix):
    _in_tmp(f"layout{suffix}", data, _check)


@SETTINGS
@given(size=st.tuples(st.integers(1, 24), st.integers(1, 24)), cut=st.floats(0.0, 0.99), seed=st.integers(0, 2**16))
def test_truncated_label_id_pngs_are_refused_cleanly(size, cut, seed):
    array = np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)
    data = _png(array)
    _in_tmp("labels.png", data[: int(len(data) * cut)], lambda p: _check(p, vocabulary="coco-stuff"))


@SETTINGS
@given(seed=st.integers(0, 2**16), size=st.tuples(st.integers(1, 80), st.integers(1, 80)))
def test_random_label_id_pngs_in_every_vocabulary(seed, size):
    rng = np.random.default_rng(seed)
    array = rng.choice([0, 1, 2, 149, 150, 181, 182, 200, 255], size=size).astype(np.uint8)
    for vocabulary in ("coco-stuff", "ade20k", "voc"):
        _in_tmp("labels.png", _png(array), lambda p, v=vocabulary: _check(p, vocabulary=v))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
REGION = st.fixed_dictionaries(
    {},
    optional={
        "class": st.text(max_size=8) | st.sampled_from(["sky", "sea", "boat"]) | JSON_VALUES,
        "shape": st.sampled_from(["rectangle", "ellipse", "polygon", "circle"]) | JSON_VALUES,
        "box": st.lists(st.integers(-10, 80) | st.floats(allow_nan=True), max_size=5) | JSON_VALUES,
        "points": st.lists(st.lists(st.integers(-10, 80), max_size=3), max_size=5) | JSON_VALUES,
        "text": JSON_VALUES,
    },
)
SPEC = st.fixed_dictionaries(
    {"regions": st.lists(REGION, max_size=4) | JSON_VALUES},
    optional={
        "size": st.lists(st.integers(-4, 70), max_size=3) | JSON_VALUES,
        "background": st.sampled_from(["sky", "don't care"]) | JSON_VALUES,
        "prompt": JSON_VALUES,
    },
)


@SETTINGS
@given(spec=SPEC)
def test_random_json_specs_never_crash(spec):
    _in_tmp("spec.json", json.dumps(spec).encode(), _check)


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    legend=st.dictionaries(
        st.sampled_from(["#000000", "#ff0000", "#00ff00", "0,0,255", "red", "#12", "#zzzzzz"]),
        st.sampled_from(["sky", "sea", "boat", "", "no such class"]) | JSON_VALUES,
        max_size=4,
    ),
)
def test_colour_pngs_with_random_legends(seed, legend):
    rng = np.random.default_rng(seed)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    array = palette[rng.integers(0, 4, size=(12, 16))]
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "layout.png"
        image.write_bytes(_png(array))
        legend_path = Path(tmp) / "layout.legend.json"
        legend_path.write_text(json.dumps({"legend": legend}))
        _check(image, legend=legend_path)


@SETTINGS
@given(
    files=st.dictionaries(
        st.sampled_from(["sky.png", "sea.png", "boat.png", "prompt.txt", "notes.md", "Sea.PNG"]),
        st.binary(max_size=300) | st.integers(1, 30).map(lambda n: _png(np.full((n, n), 255, dtype=np.uint8))),
        max_size=4,
    )
)
def test_mask_folders_with_random_files(files):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "masks"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        _check(folder)
