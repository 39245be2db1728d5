"""Vocabularies: class lists, label-id decoding conventions and class-name matching."""

from __future__ import annotations

import json
import logging
from importlib import resources

import numpy as np
import pytest
import torch

from tcig.errors import ClassNameError, ConfigError, LayoutError
from tcig.layout.vocabularies import (
    VOCABULARY_NAMES,
    base_name,
    load_vocabulary,
    match_labels,
    nearest_names,
    normalize_name,
    resolve_classes,
)


@pytest.mark.parametrize(
    ("name", "canonical", "size", "first", "last"),
    [
        ("coco-stuff", "coco-stuff", 182, "person", "wood"),
        ("COCO", "coco-stuff", 182, "person", "wood"),
        ("ade20k", "ade20k", 150, "wall", "flag"),
        ("ade", "ade20k", 150, "wall", "flag"),
        ("voc", "voc", 21, "background", "tvmonitor"),
        ("pascal_voc", "voc", 21, "background", "tvmonitor"),
    ],
)
def test_load_vocabulary(name: str, canonical: str, size: int, first: str, last: str) -> None:
    vocab = load_vocabulary(name)
    assert vocab.name == canonical
    assert len(vocab.labels) == size
    assert (vocab.labels[0], vocab.labels[-1]) == (first, last)
    assert len({normalize_name(label) for label in vocab.labels}) == size  # names stay distinct after normalizing


def test_known_label_positions() -> None:
    coco, ade = load_vocabulary("coco-stuff"), load_vocabulary("ade20k")
    assert coco.labels[156] == "sky-other" and coco.labels[171] == "wall-concrete" and coco.labels[8] == "boat"
    assert ade.labels[:5] == ["wall", "building", "sky", "floor", "tree"]
    assert ade.labels[26] == "sea" and ade.labels[46] == "sand" and ade.labels[76] == "boat"


def test_unknown_vocabulary() -> None:
    with pytest.raises(ConfigError, match=r"unknown vocabulary 'cityscapes'.*coco-stuff, ade20k, voc"):
        load_vocabulary("cityscapes")
    assert VOCABULARY_NAMES == ("coco-stuff", "ade20k", "voc")


@pytest.mark.parametrize(
    ("vocab", "values", "expected_map", "expected_classes"),
    [
        ("coco-stuff", [[0, 156], [255, 156]], [[0, 1], [-1, 1]], ["person", "sky-other"]),
        ("ade20k", [[0, 3], [1, 150]], [[-1, 1], [0, 2]], ["wall", "sky", "flag"]),
        ("voc", [[0, 20], [255, 4]], [[0, 2], [-1, 1]], ["background", "boat", "tvmonitor"]),
    ],
)
def test_decode_conventions(vocab: str, values: list, expected_map: list, expected_classes: list) -> None:
    label, classes = load_vocabulary(vocab).decode(np.array(values, dtype=np.uint8))
    assert label.dtype == torch.long
    assert label.tolist() == expected_map
    assert classes == expected_classes


def test_decode_accepts_tensor_and_16_bit() -> None:
    label, classes = load_vocabulary("coco").decode(torch.tensor([[5, 5], [255, 0]], dtype=torch.int32))
    assert classes == ["person", "bus"] and label.tolist() == [[1, 1], [-1, 0]]
    label, classes = load_vocabulary("ade").decode(np.array([[2, 0]], dtype=np.uint16))
    assert classes == ["building"] and label.tolist() == [[0, -1]]


@pytest.mark.parametrize(("vocab", "bad"), [("coco-stuff", 200), ("ade20k", 151), ("ade20k", 255), ("voc", 21)])
def test_decode_unknown_value(vocab: str, bad: int) -> None:
    values = np.zeros((4, 4), dtype=np.uint8) + (1 if vocab == "ade20k" else 0)
    values[0, :3] = bad
    with pytest.raises(LayoutError, match=rf"map.png' has values that are not {vocab} label ids: {bad} \(3 px\)"):
        load_vocabulary(vocab).decode(values, source="'map.png'")


def test_decode_rejects_float_or_3d() -> None:
    with pytest.raises(LayoutError, match="2-D integer array"):
        load_vocabulary("voc").decode(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(LayoutError, match="2-D integer array"):
        load_vocabulary("voc").decode(np.zeros((2, 2, 3), dtype=np.uint8))


def test_normalize_and_base_name() -> None:
    assert normalize_name("  Sky_Other ") == "sky other"
    assert normalize_name("Potted   Plant") == "potted plant"
    assert base_name("sky-other-merged") == "sky"
    assert base_name("desk-stuff") == "desk"
    assert base_name("wall-concrete") == "wall concrete"
    assert base_name("other") == "other"


def test_match_exact_case_insensitive_and_suffix() -> None:
    coco = load_vocabulary("coco-stuff").labels
    found = match_labels(["PERSON", "sky", "Sky-Other", "wall", "wall-concrete", "desk", "nothing"], coco)
    assert [coco[i] if i is not None else None for i in found] == [
        "person", "sky-other", "sky-other", "wall-other", "wall-concrete", "desk", None
    ]  # fmt: skip


def test_match_synonyms_across_vocabularies() -> None:
    ade, coco, voc = (load_vocabulary(v).labels for v in ("ade20k", "coco-stuff", "voc"))
    names = ["aeroplane", "motorbike", "tvmonitor", "diningtable", "pottedplant", "sofa", "ocean", "lawn", "people"]

    def names_in(labels: list[str]) -> list[str | None]:
        return [labels[i] if i is not None else None for i in match_labels(names, labels)]

    assert names_in(ade) == ["airplane", "minibike", "television", "table", "plant", "sofa", "sea", "grass", "person"]
    assert names_in(coco) == [
        "airplane", "motorcycle", "tv", "dining table", "potted plant", "couch", "sea", "grass", "person"
    ]  # fmt: skip
    assert match_labels(["airplane", "couch", "tv", "car"], voc) == [1, 18, 20, 7]
    # ADE20K's own synonym rows
    assert [ade[i] for i in match_labels(["edifice", "automobile", "pavement"], ade)] == [
        "building",
        "car",
        "sidewalk",
    ]


def test_exact_beats_synonym_and_distinct_classes_stay_distinct() -> None:
    coco = load_vocabulary("coco-stuff").labels
    table, dining = coco.index("table"), coco.index("dining table")
    assert match_labels(["table", "dining table", "diningtable"], coco) == [table, dining, dining]
    ade = load_vocabulary("ade20k").labels
    assert match_labels(["water", "sea", "river"], ade) == [ade.index("water"), ade.index("sea"), ade.index("river")]
    assert match_labels(["monitor", "television"], ade) == [ade.index("monitor"), ade.index("television")]


def test_coco_stuff_names_into_ade20k() -> None:
    ade = load_vocabulary("ade20k").labels
    names = ["sky-other", "building-other", "wall-concrete", "floor-wood", "window-blind", "plant-other", "clouds"]
    assert [ade[i] if i is not None else None for i in match_labels(names, ade)] == [
        "sky", "building", "wall", "floor", "blind", "plant", None
    ]  # fmt: skip


def test_nearest_names() -> None:
    ade = load_vocabulary("ade20k").labels
    near = nearest_names("skyy", ade)
    assert near[0] == "sky" and len(near) <= 5
    assert nearest_names("Bot", ade, n=2)[0] == "boat"
    assert nearest_names("zzzzzz", ade) == []


def test_resolve_classes_all_known() -> None:
    ade, voc = load_vocabulary("ade20k").labels, load_vocabulary("voc").labels
    out = resolve_classes(["sky", "boat"], {"ade": ade, "voc": voc, "clipseg": None})
    # VOC's "background" stands for every class it lacks, so the sky counts as VOC background
    assert out == {"ade": [2, 76], "voc": [0, 4], "clipseg": [0, 1]}
    no_background = [label for label in voc if label != "background"]
    assert resolve_classes(["sky", "boat"], {"ade": ade, "voc": no_background})["voc"] == [None, 3]
    assert resolve_classes(["sky"], {}) == {}


def test_resolve_classes_partially_known_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ade, voc = load_vocabulary("ade20k").labels, load_vocabulary("voc").labels
    with caplog.at_level(logging.INFO, logger="tcig.layout.vocabularies"):
        resolve_classes(["sky", "sofa", "sky-other"], {"ade": ade, "voc": voc[1:]})
    messages = [r.getMessage() for r in caplog.records]
    assert "class 'sky' is unknown to segmenter voc; left to the others" in messages
    assert any("'sky-other' → 'sky' of segmenter ade (suffix match)" in m for m in messages)


def test_resolve_classes_unknown_everywhere() -> None:
    ade = load_vocabulary("ade20k").labels
    with pytest.raises(ClassNameError) as info:
        resolve_classes(["sky", "skyy"], {"ade": ade, "clipseg_off": ade})
    message = str(info.value)
    assert message.startswith("unknown class 'skyy': no guiding segmenter knows it; nearest known names: sky")
    assert "rename it in the layout or add a segmenter that knows it" in message and "\n" not in message
    with pytest.raises(ClassNameError, match=r"unknown classes 'skyy' .*'bot' \(nearest known names: boat"):
        resolve_classes(["skyy", "bot"], {"ade": ade})


def test_open_vocabulary_knows_everything() -> None:
    assert resolve_classes(["skyy", "a red boat"], {"clipseg": None}) == {"clipseg": [0, 1]}


def test_synonym_groups_are_disjoint() -> None:
    text = (resources.files("tcig") / "data" / "synonyms.json").read_text(encoding="utf-8")
    groups = json.loads(text)["groups"]
    seen: dict[str, int] = {}
    for number, group in enumerate(groups):
        for name in group:
            key = normalize_name(name)
            assert seen.setdefault(key, number) == number, f"'{name}' is in two synonym groups"
    assert "sea" in seen and seen["sea"] == seen["ocean"] and seen.get("water") != seen["sea"]
