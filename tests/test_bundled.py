"""The bundled scenes models: within the size budget, complete, loaded in float32 though some are stored in fp16."""

import json

import torch

from tcig.model_sets import BUILTIN, BUNDLED
from tcig.refiners import load_refiner


def test_bundle_fits_the_budget_and_holds_safetensors_only():
    files = [p for p in BUNDLED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 40 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".ckpt", ".pth")]
    record = json.loads((BUNDLED / "TRAINING.json").read_text())
    for name in ("segformer", "evaluator", "clip", "vae", "unet", "pixel"):
        assert record[name]["steps"] > 0 and record[name]["seconds"] > 0 and "hardware" in record[name]


def test_half_precision_unets_load_as_float32():
    for name in ("scenes", "scenes-pixel"):
        refiner = load_refiner(BUILTIN[name].refiner)
        unet = refiner.pipeline.unet if hasattr(refiner, "pipeline") else refiner.unet
        assert unet.dtype == torch.float32, name
