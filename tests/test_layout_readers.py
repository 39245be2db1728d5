"""Layout readers: colour PNG + legend, label-id PNG + vocabulary, JSON spec, folder of masks, and their errors."""

from __future__ import annotations

import json
import logging
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tcig.errors import ConfigError, LayoutError
from tcig.layout import IGNORE
from tcig.layout.readers import layout_from_masks, read_layout

SKY, SEA, BOAT, BLACK = (135, 206, 235), (30, 144, 255), (255, 0, 0), (0, 0, 0)


def _colour_png(path: Path, mode: str = "RGB") -> Path:
    """8x8: sky on top (rows 0-3), sea below, a 2x2 boat at rows 4-5, cols 2-3, a black pixel at (7, 7)."""
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[:4], pixels[4:] = SKY, SEA
    pixels[4:6, 2:4] = BOAT
    pixels[7, 7] = BLACK
    image = Image.fromarray(pixels)
    image = image.convert(mode) if mode != "P" else image.quantize(colors=8)
    image.save(path)
    return path


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def _legend() -> dict[str, Any]:
    return {
        "legend": {"#87ceeb": "sky", "#1e90ff": "sea", "#ff0000": "boat"},
        "ignore": "#000000",
        "region_texts": {"boat": "a red boat"},
        "prompt": "a boat at sea",
    }


# --- colour PNG + legend --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_colour_png_with_sibling_legend(tmp_path: Path, mode: str) -> None:
    png = _colour_png(tmp_path / "scene.png", mode)
    _write_json(tmp_path / "scene.legend.json", _legend())
    layout = read_layout(png)
    assert layout.classes == ["sky", "sea", "boat"]
    assert layout.prompt == "a boat at sea"
    assert layout.region_texts == {2: "a red boat"}
    label = layout.label_map
    assert label[0, 0] == 0 and label[7, 0] == 1 and label[4, 2] == 2 and label[7, 7] == IGNORE
    assert (label == IGNORE).sum() == 1


def test_colour_png_name_to_colour_sidecar_and_rgba(tmp_path: Path) -> None:
    png = tmp_path / "scene.png"
    rgba = np.array(_colour_png(png) and Image.open(png).convert("RGBA"))
    rgba[0, :, 3] = 0  # transparent row: don't care whatever its colour
    rgba[7, 7] = (9, 9, 9, 0)
    Image.fromarray(rgba).save(png)
    _write_json(tmp_path / "scene.json", {"sky": "#87CEEB", "sea": [[30, 144, 255]], "boat": [255, 0, 0]})
    layout = read_layout(png)
    assert layout.classes == ["sky", "sea", "boat"]
    assert (layout.label_map[0] == IGNORE).all() and (layout.label_map == IGNORE).sum() == 9


def test_colour_png_explicit_list_legend(tmp_path: Path) -> None:
    png = _colour_png(tmp_path / "scene.png")
    legend = _write_json(
        tmp_path / "my_legend.json",
        {"legend": [{"color": "#f00", "class": "boat"}, {"colour": [135, 206, 235], "class": "sky"},
                    {"color": "#1e90ff", "class": "sky"}, {"color": "#000", "class": None}]},
    )  # fmt: skip
    layout = read_layout(png, legend=legend)
    assert layout.classes == ["boat", "sky"]  # legend order; two colours may share a class
    assert (layout.label_map == 1).sum() == 59


def test_legend_class_absent_from_image_is_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    png = _colour_png(tmp_path / "scene.png")
    legend = _legend()
    legend["legend"]["#00ff00"] = "tree"
    _write_json(tmp_path / "scene.legend.json", legend)
    with caplog.at_level(logging.WARNING):
        layout = read_layout(png)
    assert layout.classes == ["sky", "sea", "boat"]
    assert "class 'tree' covers no pixel" in caplog.text


def test_colour_missing_from_legend(tmp_path: Path) -> None:
    png = _colour_png(tmp_path / "scene.png")
    legend = _legend()
    del legend["legend"]["#ff0000"], legend["ignore"]
    _write_json(tmp_path / "scene.legend.json", legend)
    with pytest.raises(LayoutError) as info:
        read_layout(png)
    message = str(info.value)
    assert "2 colour(s) not in its legend nor within 24 of a legend colour: #ff0000 (4 px), #000000 (1 px)" in message
    assert "add them to the legend" in message and "--colour-tolerance" in message and "\n" not in message


@pytest.mark.parametrize(
    ("legend", "match"),
    [
        ({"legend": {"blue": "sky"}}, "is not a colour"),
        ({"legend": {"#87ceeb": 3}}, "class name 3 must be a non-empty string"),
        ({"legend": {"#87ceeb": "sky"}, "colours": {}}, "unknown key 'colours'"),
        ({"legend": {"#87ceeb": "sky", "#1e90ff": "sea", "#ff0000": "boat", "#000000": None},
          "region_texts": {"tree": "a tree"}}, "region text given for 'tree'"),
        ({"legend": [{"class": "sky"}]}, "legend entry 1 must look like"),
        ({"prompt": "hello"}, "maps no colours to class names"),
        ({"legend": {"#87ceeb": None, "#1e90ff": None}}, "the legend names no class"),
    ],
)  # fmt: skip
def test_bad_legends(tmp_path: Path, legend: dict[str, Any], match: str) -> None:
    png = _colour_png(tmp_path / "scene.png")
    with pytest.raises(LayoutError, match=match):
        read_layout(png, legend=_write_json(tmp_path / "legend.json", legend))


def test_colour_png_without_legend(tmp_path: Path) -> None:
    png = _colour_png(tmp_path / "scene.png")
    with pytest.raises(LayoutError, match=r"has no legend; write scene.legend.json"):
        read_layout(png)
    with pytest.raises(LayoutError, match=r"legend '.*nope.json' does not exist"):
        read_layout(png, legend=tmp_path / "nope.json")


def test_only_dont_care_pixels(tmp_path: Path) -> None:
    png = _colour_png(tmp_path / "scene.png")
    legend = {"legend": {"#87ceeb": None, "#1e90ff": None, "#ff0000": None, "#000000": "boat"}}
    _write_json(tmp_path / "scene.legend.json", legend)
    assert read_layout(png).classes == ["boat"]
    legend["legend"]["#000000"] = None
    legend["legend"]["#123456"] = "tree"
    _write_json(tmp_path / "scene.legend.json", legend)
    with pytest.raises(LayoutError, match=r"scene.png': the layout has no labelled pixel"):
        read_layout(png)


def test_legend_and_vocabulary_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not several"):
        read_layout(tmp_path / "x.png", vocabulary="voc", legend=tmp_path / "x.json")


# --- label-id PNG + vocabulary --------------------------------------------------------------------------------------


def _id_png(path: Path, values: np.ndarray, mode: str | None = None) -> Path:
    image = Image.fromarray(values)
    if mode == "P":
        image = image.convert("P")
    image.save(path)
    return path


def test_label_id_png_coco(tmp_path: Path) -> None:
    png = _id_png(tmp_path / "map.png", np.array([[156, 156], [8, 255]], dtype=np.uint8))
    layout = read_layout(png, vocabulary="coco-stuff")
    assert layout.classes == ["boat", "sky-other"] and layout.label_map.tolist() == [[1, 1], [0, -1]]
    assert layout.prompt is None


def test_label_id_png_palette_and_16_bit(tmp_path: Path) -> None:
    voc = _id_png(tmp_path / "voc.png", np.array([[0, 4], [4, 255]], dtype=np.uint8), mode="P")
    assert Image.open(voc).mode == "P"
    assert read_layout(voc, vocabulary="pascal-voc").classes == ["background", "boat"]
    ade = _id_png(tmp_path / "ade.png", np.array([[3, 27], [0, 77]], dtype=np.uint16))
    assert Image.open(ade).mode.startswith("I")
    assert read_layout(ade, vocabulary="ade20k").classes == ["sky", "sea", "boat"]


def test_label_id_png_sidecar_gives_vocabulary_and_prompt(tmp_path: Path) -> None:
    png = _id_png(tmp_path / "map.png", np.array([[3, 27], [0, 77]], dtype=np.uint8))
    _write_json(tmp_path / "map.json", {"vocabulary": "ade20k", "prompt": "a boat", "region_texts": {"boat": "red"}})
    layout = read_layout(png)
    assert layout.classes == ["sky", "sea", "boat"] and layout.prompt == "a boat" and layout.region_texts == {2: "red"}


def test_label_id_png_grey_rgb_ok_colour_rgb_refused(tmp_path: Path) -> None:
    grey = np.stack([np.array([[3, 27]], dtype=np.uint8)] * 3, axis=-1)
    assert read_layout(_id_png(tmp_path / "grey.png", grey), vocabulary="ade").classes == ["sky", "sea"]
    png = _colour_png(tmp_path / "colour.png")
    with pytest.raises(LayoutError, match="is a colour image but ade20k label ids need a single-channel map"):
        read_layout(png, vocabulary="ade20k")


def test_label_id_png_needs_vocabulary(tmp_path: Path) -> None:
    png = _id_png(tmp_path / "map.png", np.array([[1, 2]], dtype=np.uint8))
    with pytest.raises(LayoutError, match=r"single-channel label-id map; pass a vocabulary \(--vocabulary coco-stuff"):
        read_layout(png)


def test_label_id_png_unknown_value(tmp_path: Path) -> None:
    png = _id_png(tmp_path / "map.png", np.array([[200, 0]], dtype=np.uint8))
    with pytest.raises(LayoutError, match=r"map.png' has values that are not coco-stuff label ids: 200 \(1 px\)"):
        read_layout(png, vocabulary="coco-stuff")


def test_label_id_png_all_void(tmp_path: Path) -> None:
    png = _id_png(tmp_path / "map.png", np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(LayoutError, match="no labelled pixel"):
        read_layout(png, vocabulary="ade20k")


# --- file-level errors ----------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"layout '.*nothing.png' does not exist"):
        read_layout(tmp_path / "nothing.png")


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_text("hello, I am not a PNG")
    with pytest.raises(LayoutError, match=r"fake.png' is not an image file \(PNG, JPEG"):
        read_layout(path, vocabulary="voc")


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 21, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(LayoutError, match=r"cannot decode '.*cut.png': the file is damaged or incomplete"):
        read_layout(path, vocabulary="voc")


def test_pixel_limit(tmp_path: Path) -> None:
    png = _id_png(tmp_path / "map.png", np.zeros((10, 20), dtype=np.uint8))
    with pytest.raises(LayoutError, match=r"is 20x10 = 200 pixels, over the limit of 100"):
        read_layout(png, vocabulary="voc", max_pixels=100)


def test_decompression_bomb_header(tmp_path: Path) -> None:
    """A PNG header claiming 30000x30000 pixels: Pillow refuses it at open, and so do we, in one line."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(LayoutError, match=r"bomb.png' is too large \(900,000,000 pixels\) to open safely"):
        read_layout(path, vocabulary="voc", max_pixels=10**10)


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"size": [4, 4], "regions": [}')
    with pytest.raises(LayoutError, match=r"spec.json' is not valid JSON \(line 1, column"):
        read_layout(path)


# --- JSON spec ------------------------------------------------------------------------------------------------------


def _spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "prompt": "a boat at sea",
        "size": [10, 8],
        "background": "sky",
        "regions": [
            {"class": "sea", "shape": "rectangle", "box": [0, 4, 10, 8], "text": "a calm sea"},
            {"class": "boat", "shape": "ellipse", "box": [2, 3, 6, 6], "text": "a red boat"},
            {"class": "rock", "points": [[7, 7], [9, 7], [9, 5]]},
        ],
    }
    spec.update(overrides)
    return spec


def test_json_spec(tmp_path: Path) -> None:
    layout = read_layout(_write_json(tmp_path / "scene.json", _spec()))
    assert layout.classes == ["sky", "sea", "boat", "rock"]
    assert layout.size == (8, 10) and layout.prompt == "a boat at sea"
    assert layout.region_texts == {1: "a calm sea", 2: "a red boat"}
    label = layout.label_map
    assert label[0, 0] == 0 and label[7, 0] == 1  # background, then the sea rectangle (rows 4..7)
    assert label[4, 3] == 2 and label[4, 6] != 2  # the ellipse spans columns 2..5 and paints over the sea
    assert label[7, 8] == 3 and (label == IGNORE).sum() == 0
    assert (label[:, :] == 1).sum() > 0 and label[3, 9] == 0


def test_json_spec_fraction_units_and_no_background(tmp_path: Path) -> None:
    spec = _spec(units="fraction", background=None, size=[100, 50])
    spec["regions"] = [{"class": "sea", "box": [0, 0.5, 1, 1]}, {"class": "boat", "box": [0.25, 0.5, 0.5, 0.8]}]
    layout = read_layout(_write_json(tmp_path / "scene.json", spec))
    assert layout.classes == ["sea", "boat"]
    assert (layout.label_map[:25] == IGNORE).all() and (layout.label_map[25:] != IGNORE).all()
    assert (layout.label_map == 1).sum() == 25 * 15


def test_json_spec_same_class_texts_joined(tmp_path: Path) -> None:
    spec = _spec(regions=[{"class": "boat", "box": [0, 0, 2, 2], "text": "a red boat"},
                          {"class": "boat", "box": [5, 5, 7, 7], "text": "a blue boat"}])  # fmt: skip
    layout = read_layout(_write_json(tmp_path / "scene.json", spec))
    assert layout.classes == ["sky", "boat"] and layout.region_texts == {1: "a red boat; a blue boat"}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"size": None}, r'"size" must be \[width, height\]'),
        ({"size": [10.5, 8]}, r'"size" must be \[width, height\]'),
        ({"regions": {"class": "sea"}}, r'"regions" must be a list'),
        ({"units": "cm"}, r'"units" must be "pixels" or "fraction"'),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"background": 3}, '"background" must be a class name'),
        ({"regions": [{"class": "sea", "box": [0, 0, 4, 4]}, {"shape": "ellipse", "box": [0, 0, 4, 4]}]},
         "region 2 has no 'class'"),
        ({"regions": [{"class": "sea", "shape": "star", "box": [0, 0, 4, 4]}]}, r"\('sea'\) has unknown shape"),
        ({"regions": [{"class": "sea", "shape": "rectangle"}]}, "region 1 \\('sea'\\) needs \"box\""),
        ({"regions": [{"class": "sea", "box": [4, 0, 2, 4]}]}, "x1 <= x0 or y1 <= y0"),
        ({"regions": [{"class": "sea", "points": [[0, 0], [1, 1]]}]}, "at least 3 points"),
        ({"regions": [{"class": "sea", "box": [0, 0, 4, 4], "clas": "x"}]}, "region 1 has unknown key 'clas'"),
        ({"regions": [{"class": "sea", "box": [0, 0, 4, 4], "text": 5}]}, '"text" must be a string'),
        ({"regions": [{"class": "sea", "box": [0, 0.5, 1, 1]}]}, 'add "units": "fraction"'),
        ({"regions": ["sea"]}, "region 1 must be an object"),
        ({"background": None, "regions": [{"class": "sea", "box": [20, 20, 30, 30]}]}, "no labelled pixel"),
    ],
)  # fmt: skip
def test_json_spec_errors(tmp_path: Path, changes: dict[str, Any], match: str) -> None:
    spec = _spec(**changes)
    spec = {k: v for k, v in spec.items() if v is not None or k == "background"}
    with pytest.raises(LayoutError, match=match):
        read_layout(_write_json(tmp_path / "scene.json", spec))


def test_json_spec_limits_and_wrong_json(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="over the limit of 50 pixels"):
        read_layout(_write_json(tmp_path / "scene.json", _spec()), max_pixels=50)
    with pytest.raises(LayoutError, match="has no 'regions' \\(it looks like a legend"):
        read_layout(_write_json(tmp_path / "legend.json", _legend()))


# --- folder of masks ------------------------------------------------------------------------------------------------


def _mask(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (8, 8), value: int = 255) -> None:
    array = np.zeros(size, dtype=np.uint8)
    array[box[0] : box[1], box[2] : box[3]] = value
    Image.fromarray(array).save(path)


def test_mask_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    _mask(folder / "sky.png", (0, 4, 0, 8))
    _mask(folder / "water.png", (3, 7, 0, 8), value=1)  # any nonzero value counts; overlaps sky on row 3
    _mask(folder / "potted_plant.png", (6, 8, 0, 2))
    (folder / "prompt.txt").write_text("a lake\n")
    _write_json(folder / "layout.json", {"region_texts": {"water": "a calm lake"}})
    with caplog.at_level(logging.WARNING):
        layout = read_layout(folder)
    assert layout.classes == ["potted plant", "sky", "water"]
    assert layout.prompt == "a lake" and layout.region_texts == {2: "a calm lake"}
    label = layout.label_map
    assert label[3, 5] == 2  # water (later by name) wins over sky
    assert "masks 'sky' and 'water' overlap on 8 pixels" in caplog.text
    assert label[6, 0] == 2 and label[7, 0] == 0  # water overlaps the plant on row 6 only
    assert (label[7, 2:] == IGNORE).all()


def test_mask_folder_errors(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    (folder / "prompt.txt").write_text("nothing")
    with pytest.raises(LayoutError, match="has no .png masks; put one '<class name>.png' per class"):
        read_layout(folder)
    _mask(folder / "sky.png", (0, 4, 0, 8))
    _mask(folder / "tree.png", (0, 2, 0, 2), size=(4, 4))
    with pytest.raises(LayoutError, match="mask 'tree' is 4x4 but 'sky' is 8x8; all masks must have one size"):
        read_layout(folder)
    _mask(folder / "tree.png", (0, 0, 0, 0))
    assert read_layout(folder).classes == ["sky"]  # an empty mask is left out (with a warning)
    _mask(folder / "sky.png", (0, 0, 0, 0))
    with pytest.raises(LayoutError, match="no labelled pixel"):
        read_layout(folder)


def test_layout_from_masks_tensors() -> None:
    sky = torch.zeros(4, 4, dtype=torch.bool)
    sky[:2] = True
    layout = layout_from_masks({"sky": sky, "sea": ~sky}, prompt="p", region_texts={"sea": "blue"})
    assert layout.classes == ["sky", "sea"] and layout.region_texts == {1: "blue"}
    assert layout.label_map.tolist() == [[0] * 4, [0] * 4, [1] * 4, [1] * 4]
    with pytest.raises(LayoutError, match="no masks given"):
        layout_from_masks({})
