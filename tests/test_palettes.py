"""Layouts people already have: maps painted in ADE20K / COCO-Stuff / VOC colours, antialiased or saved as JPEG;
`tcig layout show` and `tcig layout convert` carry them between tools."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from tcig.cli.main import main
from tcig.errors import LayoutError
from tcig.io.pictures import layout_colours
from tcig.layout import IGNORE, Layout
from tcig.layout.convert import shape_spec, write_layout
from tcig.layout.palettes import load_palette, snap_colours, voc_colour
from tcig.layout.readers import read_layout

ADE = load_palette("ade20k")


def _painted(classes: list[str], palette=ADE, size=(96, 128)) -> tuple[np.ndarray, np.ndarray]:
    """An RGB map in ``palette``'s colours: horizontal bands, one per class, plus a disc of the last class."""
    h, w = size
    label = np.repeat(np.arange(len(classes) - 1), -(-h // (len(classes) - 1)))[:h, None].repeat(w, 1)
    yy, xx = np.mgrid[:h, :w]
    label[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 < (h // 5) ** 2] = len(classes) - 1
    table = np.array([palette.colours[c] for c in classes], dtype=np.uint8)
    return table[label], label


def test_standard_palettes_have_their_published_colours():
    assert ADE.colours["wall"] == (120, 120, 120) and ADE.colours["sky"] == (6, 230, 230)
    assert len(ADE.colours) == 150 and ADE.void == ((0, 0, 0),)
    coco = load_palette("coco-stuff")
    assert len(coco.colours) == 171 and coco.colours["person"] == (0, 192, 64) and coco.colours["wood"] == (64, 64, 0)
    assert ["person", "bicycle"] in coco.ambiguous.values()
    assert voc_colour(1) == (128, 0, 0) and voc_colour(15) == (192, 128, 128)  # aeroplane, person
    assert load_palette("pascal-voc").colours["tvmonitor"] == (0, 64, 128)


def test_an_ade20k_painted_map_reads_without_a_legend(tmp_path):
    rgb, label = _painted(["sky", "building", "tree", "car"])
    Image.fromarray(rgb).save(tmp_path / "seg.png")
    layout = read_layout(tmp_path / "seg.png", palette="ade20k")
    assert layout.classes == ["building", "sky", "tree", "car"]  # in ADE20K id order
    names = np.array(["sky", "building", "tree", "car"])[label]
    assert (np.array(layout.classes)[layout.label_map.numpy()] == names).all()


def test_jpeg_and_antialiasing_snap_to_the_palette_and_report_the_share(tmp_path, caplog):
    rgb, label = _painted(["sky", "tree", "grass", "person"])
    blurred = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(1))
    buffer = io.BytesIO()
    blurred.save(buffer, format="JPEG", quality=80)
    (tmp_path / "seg.jpg").write_bytes(buffer.getvalue())
    layout = read_layout(tmp_path / "seg.jpg", palette="ade20k")
    assert set(layout.classes) == {"sky", "tree", "grass", "person"}
    names = np.array(["sky", "tree", "grass", "person"])[label]
    got = np.array(layout.classes + ["?"])[layout.label_map.numpy()]
    assert (got == names).mean() > 0.97
    assert "snapped" in caplog.text and "%" in caplog.text


def test_exact_colours_are_asked_for_with_tolerance_zero(tmp_path):
    rgb, _ = _painted(["sky", "tree", "grass"])
    rgb[0, 0] = (10, 228, 228)  # one antialiased pixel
    Image.fromarray(rgb).save(tmp_path / "seg.png")
    layout = read_layout(tmp_path / "seg.png", palette="ade20k", colour_tolerance=0)
    assert layout.label_map[0, 0] == IGNORE  # far from every colour at tolerance 0: don't care (under 10 %)


def test_a_map_in_another_palette_is_refused_in_one_line(tmp_path):
    rgb, _ = _painted(["sky", "tree", "grass"])
    Image.fromarray(255 - rgb).save(tmp_path / "seg.png")
    with pytest.raises(LayoutError) as info:
        read_layout(tmp_path / "seg.png", palette="ade20k")
    message = str(info.value)
    assert "not in its legend nor within" in message and "of the pixels" in message and "\n" not in message


def test_a_shared_palette_colour_reads_as_the_first_class_with_a_warning(tmp_path, caplog):
    coco = load_palette("coco-stuff")
    rgb, _ = _painted(["sky-other", "grass", "person"], palette=coco)
    Image.fromarray(rgb).save(tmp_path / "seg.png")
    layout = read_layout(tmp_path / "seg.png", palette="coco-stuff")
    assert "person" in layout.classes and "bicycle" not in layout.classes
    assert "means person or bicycle in the coco-stuff palette; reading it as person" in caplog.text


def test_a_voc_map_with_its_border_colour(tmp_path):
    voc = load_palette("voc")
    rgb, _ = _painted(["background", "cat", "dog"], palette=voc)
    rgb[:, 60:62] = (224, 224, 192)
    Image.fromarray(rgb).save(tmp_path / "seg.png")
    layout = read_layout(tmp_path / "seg.png", palette="voc")
    assert layout.classes == ["background", "cat", "dog"]
    assert (layout.label_map[:, 60:62] == IGNORE).all()


def test_a_legend_that_gives_one_colour_two_names_is_refused(tmp_path):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "a.png")
    (tmp_path / "a.legend.json").write_text(json.dumps({"legend": [
        {"color": "#010203", "class": "sky"}, {"color": [1, 2, 3], "class": "sea"}]}))  # fmt: skip
    with pytest.raises(LayoutError, match="#010203 is given two meanings, 'sky' and 'sea'"):
        read_layout(tmp_path / "a.png")


def test_snapping_counts_pixels():
    codes = np.array([[0x060606, 0x000000], [0xFFFFFF, 0x050505]])
    result = snap_colours(codes, [0x000000, 0xFFFFFF], tolerance=12, max_far=1)
    assert result.codes.tolist() == [[0, 0], [0xFFFFFF, 0]] and result.snapped == 2 and result.far == 0


def test_pictures_use_standard_and_natural_colours():
    assert tuple(layout_colours(["sky"])[0]) == ADE.colours["sky"]
    natural = {"sky": (135, 206, 235)}
    assert tuple(layout_colours(["sky", "sea"], natural)[0]) == (135, 206, 235)
    clash = layout_colours(["road", "skyscraper"])  # one colour in the ADE20K palette
    assert tuple(clash[0]) != tuple(clash[1])


# --- convert and show ---------------------------------------------------------------------------------------------


def _layout() -> Layout:
    label = torch.full((20, 30), 0)
    label[10:, :] = 1
    label[12:16, 5:12] = 2
    label[0:3, 0:4] = IGNORE
    return Layout(label, ["sky", "sea", "boat"], {2: "a red boat"}, "a boat at sea")


@pytest.mark.parametrize(
    ("name", "options", "read"),
    [
        ("ids.png", {}, {}),
        ("ade.png", {"vocabulary": "ade20k"}, {}),
        ("coco.png", {"vocabulary": "coco-stuff"}, {}),
        ("colour.png", {"to": "colour"}, {}),
        ("spec.json", {}, {}),
    ],
)
def test_convert_round_trips(tmp_path, name, options, read):
    layout = _layout()
    write_layout(layout, tmp_path / name, **options)
    back = read_layout(tmp_path / name, **read)
    names = np.array(layout.classes + ["-"])
    got = np.array(back.classes + ["-"])
    assert (got[back.label_map.numpy()] == names[layout.label_map.numpy()]).all() or options.get("vocabulary")
    if options.get("vocabulary"):  # dataset names: sky-other, sea, boat
        assert len(back.classes) == 3 and (back.label_map == IGNORE).sum() == (layout.label_map == IGNORE).sum()
    assert back.prompt == "a boat at sea"


def test_convert_to_a_palette_and_back(tmp_path):
    label = torch.zeros((16, 16), dtype=torch.long)
    label[8:] = 1
    layout = Layout(label, ["sky", "grass"])
    write_layout(layout, tmp_path / "ade.png", palette="ade20k")
    assert Image.open(tmp_path / "ade.png").getpixel((0, 0)) == ADE.colours["sky"]
    back = read_layout(tmp_path / "ade.png", palette="ade20k")
    assert back.classes == ["sky", "grass"] and torch.equal(back.label_map, label)


def test_the_shape_spec_is_exact_and_compact():
    layout = _layout()
    spec = shape_spec(layout)
    assert len(spec["regions"]) < 12  # merged runs, not one box per row


def test_layout_commands(tmp_path, capsys):
    write_layout(_layout(), tmp_path / "in.json")
    assert main(["layout", "show", str(tmp_path / "in.json"), "--out", str(tmp_path / "show.png")]) == 0
    text = capsys.readouterr().out
    assert "sky" in text and "%" in text and "don't care" in text
    assert Image.open(tmp_path / "show.png").width > 30
    assert main(["layout", "convert", str(tmp_path / "in.json"), str(tmp_path / "out.png"), "--out-palette",
                 "ade20k"]) == 0  # fmt: skip
    assert main(["layout", "convert", str(tmp_path / "in.json"), str(tmp_path / "in.json")]) == 2
    assert "is the input" in capsys.readouterr().err
    assert main(["layout", "convert", str(tmp_path / "in.json"), str(tmp_path / "x.txt")]) == 2
