"""A layout from a photo (`tcig layout from-image`) and editing a photo by layout (`--init-image`), on the bundled
scenes models, as a user would: segment the example photo, repaint its layout, generate from the photo."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tcig.cli.main import main
from tcig.layout.readers import read_layout
from tcig.models.photo_layout import layout_from_photo, merge_small_regions
from tcig.scenes.render import SCENE_CLASSES, render_scene

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photos" / "lake.jpg"
PHOTO_SEED = 12_000_007  # examples/make_examples.py renders the photo from this scene


def _from_image(out: Path, *extra) -> int:
    return main(["layout", "from-image", str(PHOTO), str(out), "--models", "scenes", *map(str, extra)])


def test_the_example_photo_is_its_scene():
    photo = np.asarray(Image.open(PHOTO)).astype(float)
    assert np.abs(photo - render_scene(PHOTO_SEED, 64).image).mean() < 4  # up to JPEG's loss


def test_a_photo_becomes_a_layout_that_generate_reads_back(tmp_path, capsys):
    out = tmp_path / "lake_layout.png"
    assert _from_image(out, "--prompt", "a lake") == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_suffix(".json"))]
    layout = read_layout(out)
    assert layout.prompt == "a lake" and layout.size == (64, 64)
    truth = np.array(SCENE_CLASSES)[render_scene(PHOTO_SEED, 64).labels]
    found = np.array(layout.classes)[layout.label_map.numpy()]
    assert (truth == found).mean() > 0.9  # the renderer's own labels
    assert {"sky", "sea", "tree", "grass"} <= set(layout.classes)


def test_small_regions_merge_into_their_surroundings(tmp_path):
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[10:, :] = 1
    labels[3:5, 3:5] = 2  # a 4-pixel speck of class 2 in class 0
    labels[15, 15] = 0  # a 1-pixel speck of class 0 in class 1
    cleaned, merged = merge_small_regions(labels, 5)
    assert merged == 2
    assert (cleaned[:10] == 0).all() and (cleaned[10:] == 1).all()
    kept, none = merge_small_regions(labels, 1)
    assert none == 0 and np.array_equal(kept, labels)
    # the command: a large threshold leaves fewer classes than none at all
    assert _from_image(tmp_path / "all.png", "--min-region", 0) == 0
    assert _from_image(tmp_path / "coarse.png", "--min-region", 0.05) == 0
    assert len(read_layout(tmp_path / "coarse.png").classes) < len(read_layout(tmp_path / "all.png").classes)


def test_only_the_classes_asked_for(tmp_path):
    from tcig.models.segmenters import load_segmenter

    guide = load_segmenter(str(ROOT / "src/tcig/bundled/scenes/segformer"))
    photo = torch.from_numpy(render_scene(PHOTO_SEED, 64).image).permute(2, 0, 1)[None].float() / 255
    layout = layout_from_photo([(guide, 1.0)], photo, classes=["sky", "grass"], min_region=0)
    assert set(layout.classes) <= {"sky", "grass"} and (layout.label_map >= 0).all()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--min-region", "1.5"], "--min-region must be a share of the image in [0, 1)"),
        (["--size", "30"], "--size must be a multiple of 8"),
        (["--prompt", " "], "--prompt is empty"),
    ],
)
def test_bad_from_image_inputs_are_one_line(tmp_path, capsys, extra, message):
    assert _from_image(tmp_path / "x.png", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_photo_that_is_no_image_or_an_output_that_is_no_png(tmp_path, capsys):
    fake = tmp_path / "photo.jpg"
    fake.write_text("not an image")
    assert main(["layout", "from-image", str(fake), str(tmp_path / "x.png"), "--models", "scenes"]) == 2
    assert "is not an image file (PNG, JPEG" in capsys.readouterr().err
    assert _from_image(tmp_path / "x.json") == 2
    assert "must be a .png file" in capsys.readouterr().err


def _edit(layout_png: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lake repainted as meadow and a house added on it: (old labels, new labels, class names)."""
    labels = np.asarray(Image.open(layout_png)).astype(np.int64)
    classes = json.loads(layout_png.with_suffix(".json").read_text())["classes"]
    edited = labels.copy()
    edited[labels == classes.index("sea")] = classes.index("grass")
    edited[44:56, 40:54] = len(classes)
    return labels, edited, [*classes, "house"]


def test_editing_a_photo_by_layout_keeps_what_did_not_change(tmp_path):
    from tcig.evaluation.metrics import predict_labels
    from tcig.models.model_sets import load_model_set
    from tcig.models.segmenters import load_segmenter

    assert _from_image(tmp_path / "lake.png") == 0
    before, after, classes = _edit(tmp_path / "lake.png")
    Image.fromarray(after.astype(np.uint8)).save(tmp_path / "edit.png")
    prompt = "a house in a green meadow with trees, a large rock and mountains at dusk with clouds"
    (tmp_path / "edit.json").write_text(json.dumps({"classes": classes, "prompt": prompt}))
    common = ["generate", "--models", "scenes", "--layout", str(tmp_path / "edit.png"), "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "edited"), "--init-image", str(PHOTO)]) == 0
    assert main([*common, "--out", str(tmp_path / "fresh")]) == 0
    meta = json.loads((tmp_path / "edited" / "edit_s0.json").read_text())
    assert meta["init_image"] == str(PHOTO)

    photo = np.asarray(Image.open(PHOTO)).astype(np.float32) / 255

    def image(run):
        return np.asarray(Image.open(tmp_path / run / "edit_s0.png")).astype(np.float32) / 255

    same = torch.from_numpy(before == after)
    same = ~torch.nn.functional.max_pool2d((~same).float()[None, None], 9, 1, 4)[0, 0].bool()  # away from edits
    gap_edit = np.abs(image("edited") - photo)[same.numpy()].mean()
    gap_fresh = np.abs(image("fresh") - photo)[same.numpy()].mean()
    assert gap_edit < 0.02 < gap_fresh  # the photo where the layout kept it; a new image without --init-image

    evaluator = load_segmenter(load_model_set("scenes").evaluator)
    labels = list(evaluator.labels)
    edited = torch.from_numpy(image("edited")).permute(2, 0, 1)[None]
    seen = predict_labels(evaluator, edited)[0].numpy()
    was_lake = before == classes.index("sea")
    was_lake[44:56, 40:54] = False
    house = after == classes.index("house")
    assert (seen[was_lake] == labels.index("grass")).mean() > 0.5  # the lake became meadow
    inter = ((seen == labels.index("house")) & house).sum()
    assert inter / ((seen == labels.index("house")) | house).sum() > 0.3  # and a house stands where it was painted


def test_an_init_image_of_the_wrong_shape_or_range_is_refused():
    from tcig.pipeline import TCIGPipeline

    pipe = TCIGPipeline.__new__(TCIGPipeline)
    pipe.device = torch.device("cpu")
    with pytest.raises(Exception, match=r"an init image must be \[3,H,W\]"):
        pipe.photo_at(torch.rand(2, 3, 8, 8), (8, 8), 3)
    with pytest.raises(Exception, match=r"values in \[0, 1\]"):
        pipe.photo_at(torch.rand(3, 8, 8) * 2, (8, 8), 1)
    assert pipe.photo_at(torch.rand(3, 8, 16), (16, 32), 2).shape == (2, 3, 16, 32)


def test_a_16_bit_photo_reads_like_its_8_bit_self_and_the_photo_is_never_overwritten(tmp_path, capsys):
    grey = np.asarray(Image.open(PHOTO).convert("L"))
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")  # 16-bit, the full range
    for name in ("grey8", "grey16"):
        args = ["layout", "from-image", str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}_layout.png")]
        assert main([*args, "--models", "scenes"]) == 0
    a, b = (read_layout(tmp_path / f"{n}_layout.png") for n in ("grey8", "grey16"))
    assert a.classes == b.classes and (a.label_map == b.label_map).float().mean() > 0.99
    capsys.readouterr()
    before = (tmp_path / "grey8.png").read_bytes()
    assert main(["layout", "from-image", str(tmp_path / "grey8.png"), str(tmp_path / "grey8.png")]) == 2
    assert "would overwrite the photo" in capsys.readouterr().err
    assert (tmp_path / "grey8.png").read_bytes() == before


def test_the_guides_vocabularies_merge_by_name_and_synonym():
    """The bundled guides: two with the 12 scene classes, a specialist with background, ship, stone and clouds."""
    from tcig.models.model_sets import load_model_set
    from tcig.models.photo_layout import class_probabilities
    from tcig.models.segmenters import load_segmenter

    guides = [(load_segmenter(ref), w) for ref, w in load_model_set("scenes").segmenters]
    assert "ship" in guides[2][0].labels and "background" in guides[2][0].labels
    probs, names = class_probabilities(guides, torch.rand(1, 3, 32, 32))
    assert names == list(SCENE_CLASSES) and probs.shape == (1, 12, 32, 32)
    assert torch.allclose(probs.sum(1), torch.ones(1, 32, 32), atol=0.35)  # averaged per class, not summed
