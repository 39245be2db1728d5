"""Smoke test of the bundled-model training: every model trains a few steps, resumes, and loads through tcig."""

import json

import pytest
import torch

from tcig import Stage1Settings, Stage2Settings, TCIGPipeline
from tcig.errors import ConfigError
from tcig.evaluation.cases import Case
from tcig.evaluation.methods import Job, MethodSettings, run_controlnet
from tcig.models.control import load_control
from tcig.models.model_sets import load_model_set
from tcig.models.refiners import DiffusersImg2ImgRefiner, PixelSDEditRefiner, load_refiner
from tcig.models.segmenters import MaskClassificationSegmenter, load_segmenter
from tcig.scenes import render_scene, scene_layout
from tcig.scenes.train import train_all


def test_every_model_trains_resumes_and_loads(tmp_path):
    out, work = tmp_path / "models", tmp_path / "work"
    models = ["segformer", "evaluator", "clip", "vae", "unet", "pixel", "flow", "controlnet"]
    record = train_all(out, work, models, scale=0.0001, count=16, progress=False)
    assert set(record) == set(models)
    assert all(r["steps"] >= 1 and r["seconds"] > 0 for r in record.values())
    assert json.loads((out / "TRAINING.json").read_text())["unet"]["hardware"]["torch"] == torch.__version__
    assert all(p.suffix != ".bin" for p in out.rglob("*"))  # safetensors only

    # A rerun resumes from the checkpoint instead of starting again.
    state = torch.load(work / "segformer" / "state.pt", weights_only=True)
    assert state["step"] == record["segformer"]["steps"]

    guiding = load_segmenter(str(out / "segformer"))
    evaluator = load_segmenter(str(out / "evaluator"))
    assert type(guiding).__name__ == "SemanticSegmenter" and not isinstance(evaluator, MaskClassificationSegmenter)
    assert guiding.labels == evaluator.labels and guiding.labels[0] == "sky"
    assert type(guiding.model) is not type(evaluator.model)  # the evaluator is a different architecture
    assert isinstance(load_refiner(str(out / "sd")), DiffusersImg2ImgRefiner)
    pixel = load_refiner(str(out / "pixel"))
    assert isinstance(pixel, PixelSDEditRefiner) and next(pixel.unet.parameters()).dtype == torch.float32
    control = load_control(str(out / "controlnet"), None)  # its palette.json: every scene class, distinct colours
    assert len(control.palette) == 12 and len(set(control.palette.values())) == 12
    assert next(control.controlnet.parameters()).dtype == torch.float32
    flow = load_refiner(str(out / "flow"), max_sequence_length=1)  # an SD3 pipeline folder without T5
    assert flow.describe()["family"] == "Stable Diffusion 3" and flow.pipeline.text_encoder_3 is None
    assert flow.networks()["transformer"].dtype == torch.float32

    spec = {
        "clip": "./models/clip",
        "segmenters": ["./models/segformer"],
        "refiner": "./models/sd",
        "evaluator": "./models/evaluator",
        "resolution": 64,
    }
    (tmp_path / "set.json").write_text(json.dumps(spec))
    (tmp_path / "flow.json").write_text(json.dumps({**spec, "refiner": "./models/flow", "max_sequence_length": 1}))
    layout = scene_layout(render_scene(5))
    for model_set in ("set.json", "flow.json"):
        pipe = TCIGPipeline.from_model_set(load_model_set(str(tmp_path / model_set)))
        stage2 = Stage2Settings(steps=4, cycles=1, cycle_steps=1, cycle_strength=0.5, seg_guidance=1.0)
        out_ = pipe(layout.prompt, layout, stage1=Stage1Settings(steps=2), stage2=stage2, progress=False)
        assert out_.images.shape == (1, 3, 64, 64)
        settings = MethodSettings(Stage1Settings(), Stage2Settings(steps=2))
        job = Job(pipe, Case("scene", layout, layout.prompt), (64, 64), settings, control=control)
        if model_set == "set.json":
            assert run_controlnet(job).images.shape == (1, 3, 64, 64)  # the ControlNet steers the trained UNet
        else:
            with pytest.raises(ConfigError, match="a ControlNet steers a UNet"):
                run_controlnet(job)
