"""The bundled scenes models: within the size budget, complete, loaded in float32 though some are stored in fp16."""

import json

import torch

from tcig.models.model_sets import BUILTIN, BUNDLED
from tcig.models.refiners import load_refiner


def test_bundle_fits_the_budget_and_holds_safetensors_only():
    files = [p for p in BUNDLED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 70 * 2**20  # issue 19: 70 MB in all
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".ckpt", ".pth")]
    record = json.loads((BUNDLED / "TRAINING.json").read_text())
    for name in ("segformer", "evaluator", "swin", "objects", "clip", "vae", "unet", "pixel", "flow"):
        assert record[name]["steps"] > 0 and record[name]["seconds"] > 0 and "hardware" in record[name]


def test_half_precision_unets_load_as_float32():
    for name, network in (("scenes", "unet"), ("scenes-pixel", "unet"), ("scenes-flow", "transformer")):
        model_set = BUILTIN[name]
        refiner = load_refiner(model_set.refiner, max_sequence_length=model_set.max_sequence_length)
        assert refiner.networks()[network].dtype == torch.float32, name


def test_each_bundled_model_trained_on_a_seed_range_of_its_own():
    """No two models share training scenes, and none overlaps the held-out or tuning scenes."""
    from tcig.scenes.data import SEED_RANGES

    ranges = list(SEED_RANGES.values())
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert a.stop <= b.start or b.stop <= a.start, (a, b)
    record = json.loads((BUNDLED / "TRAINING.json").read_text())
    for name in ("swin", "objects"):
        first, last = record[name]["seeds"]
        assert SEED_RANGES["heldout"].start > last and first not in SEED_RANGES["segmenter"]


def test_the_specialist_names_its_classes_its_own_way_and_sees_a_larger_input():
    from tcig.models.segmenters import load_segmenter

    specialist = load_segmenter(str(BUNDLED / "objects"))
    assert specialist.labels == ["background", "ship", "house", "tree", "stone", "sun", "clouds"]
    assert specialist.norm.size == (128, 128)
