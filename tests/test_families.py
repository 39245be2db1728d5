"""Every model family through every interface: tiny random SD 1.x (ε), SD 2.x-style v-prediction, SDXL, SD3,
FLUX.1 schnell/dev and Chroma pipelines, saved and loaded back through ``from_pretrained`` like the real ones."""

import json

import pytest
import torch
from PIL import Image
from tiny_models import BOAT_SPEC, build_family

from tcig.cli.main import main
from tcig.errors import ConfigError
from tcig.models.refiners import load_refiner
from tcig.settings import Stage2Settings

FAMILIES = ["latent", "sd-v", "sdxl", "sd3", "flux-schnell", "flux-dev", "chroma"]
"""``latent`` is the tiny SD 1.x (ε-prediction, PNDM scheduler) of ``tiny_models.build_all``."""
FAST = ["--steps", "2", "--num-crops", "2", "--stage2-steps", "4", "--no-progress"]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tiny, tmp_path_factory):
    """(name, refiner folder, model-set file) of one family, guided by the tiny SegFormer."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    refiner = tiny["latent"] if name == "latent" else build_family(root, name)
    model_set = {
        "name": f"tiny-{name}",
        "clip": str(tiny["clip"]),
        "segmenters": [str(tiny["segformer"])],
        "refiner": str(refiner),
        "evaluator": str(tiny["mask2former"]),
        "resolution": 64,
        "stage1": {"num_crops": 2},
        "stage2": {"steps": 4, "strength": 0.5},
    }
    path = root / "set.json"
    path.write_text(json.dumps(model_set))
    return name, refiner, path


def test_the_sampler_reproduces_the_families_own_pipelines(family):
    """tcig's sampler and conditioning give what diffusers' text-to-image pipeline of the family gives for the
    same noise (DDIM for VP models, flow-matching Euler for FLUX and SD3): the timestep convention, the packing,
    the latent shift and scale, the distilled guidance and the prediction type are all the model's own."""
    import diffusers
    from diffusers import DDIMScheduler

    name, folder, _ = family
    refiner = load_refiner(str(folder))
    pipe = refiner.pipeline
    if "FlowMatch" not in type(pipe.scheduler).__name__:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="leading")
        refiner = type(refiner)(pipe, name)
    scale = 0.0 if name == "flux-schnell" else 3.0
    generator = torch.Generator().manual_seed(0)
    text_to_image = getattr(diffusers, type(pipe).__name__.replace("Img2Img", ""))
    theirs = text_to_image(**pipe.components)(
        prompt=["a boat"], height=64, width=96, num_inference_steps=5, guidance_scale=scale, generator=generator,
        output_type="pt",
    ).images  # fmt: skip
    settings = Stage2Settings(steps=5, guidance_scale=scale)
    ours = refiner.text_to_image(["a boat"], 64, 96, settings, torch.Generator().manual_seed(0), progress=False)
    assert ours.shape == (1, 3, 64, 96)
    assert (theirs.float() - ours).abs().max() < 1e-4


def test_refine_keeps_the_size_and_refuses_sizes_the_model_cannot_take(family):
    name, folder, _ = family
    refiner = load_refiner(str(folder))
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    settings = Stage2Settings(steps=4, strength=0.5)
    out = refiner.refine(images, ["a boat"] * 2, settings, torch.Generator().manual_seed(0), progress=False)
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
    if refiner.size_multiple > 8:  # FLUX.1 and SD3: 1/8 latents in 2x2 patches
        with pytest.raises(ConfigError, match="multiples of 16"):
            refiner.refine(images[..., :72], ["a boat"] * 2, settings, progress=False)


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_generate_plain_guided_cycles_and_latent_stage1(family, spec, tmp_path):
    name, folder, model_set = family
    base = ["generate", "--models", str(model_set), "--layout", str(spec), *FAST]
    assert main([*base, "--out", str(tmp_path / "plain"), "--width", "100"]) == 0
    multiple = max(8, load_refiner(str(folder)).size_multiple)
    width, height = _png_size(tmp_path / "plain" / "scene_s0.png")
    assert width % multiple == 0 and height % multiple == 0 and abs(width - 100) <= multiple // 2 + 1
    record = json.loads((tmp_path / "plain" / "scene_s0.json").read_text())
    assert (record["settings"]["width"], record["settings"]["height"]) == (width, height)
    levels = record["settings"]["stage2_noise_levels"]
    assert 0 < levels["refine"] < 1 and levels["refine_steps"] == 2  # strength 0.5 of 4 steps

    args = ["--seg-guidance", "2", "--cycles", "1", "--cycle-steps", "1", "--cycle-noise-level", "0.4"]
    assert main([*base, "--out", str(tmp_path / "full"), "--height", "48", "--width", "64", *args,
                 "--parameterization", "latent"]) == 0  # fmt: skip
    assert _png_size(tmp_path / "full" / "scene_s0.png") == (64, 48)
    record = json.loads((tmp_path / "full" / "scene_s0.json").read_text())
    assert record["settings"]["models"]["refiner_kind"]["family"]
    assert abs(record["settings"]["stage2_noise_levels"]["cycle"] - 0.4) < 0.25


def test_batch_and_eval_run_every_method_at_the_case_size(family, tmp_path):
    name, _, model_set = family
    (tmp_path / "scene.json").write_text(json.dumps(BOAT_SPEC))
    manifest = tmp_path / "runs.jsonl"
    manifest.write_text(json.dumps({"layout": "scene.json", "steps": 2, "height": 32, "width": 48}) + "\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "batch"), "--models", str(model_set),
                 "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    assert _png_size(tmp_path / "batch" / "scene_s0.png") == (48, 32)

    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "boat.json").write_text(json.dumps(BOAT_SPEC))
    methods = "tcig,stage1,diffusion,sdedit-layout,regional,guided"
    out = tmp_path / "report"
    code = main(["eval", "--models", str(model_set), "--cases", f"folder:{cases}", "--out", str(out), "--size", "64",
                 "--methods", methods, "--stage1-steps", "2", "--no-progress"])  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} == set(methods.split(","))
    for row in rows:
        assert row["size"] == [64, 64] and 0 <= row["miou"] <= 1
        assert all(_png_size(out / f) == (64, 64) for f in row["images"])
    summary = (out / "summary.md").read_text()
    flow = name in ("sd3", "flux-schnell", "flux-dev", "chroma")
    assert "sampler (every method): " + ("Euler" if flow else "DDIM") in summary


def test_a_distilled_model_refuses_a_negative_prompt(family, spec, tmp_path, capsys):
    name, _, model_set = family
    if not name.startswith("flux"):
        pytest.skip("classifier-free guidance takes a negative prompt")
    out = tmp_path / "o"
    code = main(["generate", "--models", str(model_set), "--layout", str(spec), "--out", str(out), *FAST,
                 "--negative-prompt", "blurry"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "negative prompt" in err and "\n" not in err
    assert not out.exists()  # refused before any work: the folder the run made is gone


def test_a_pipeline_of_another_family_is_refused_before_it_loads(tiny, tmp_path):
    from tcig.errors import ModelLoadError

    folder = tmp_path / "kandinsky"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Img2ImgPipeline",
                                                          "vae": ["diffusers", "VQModel"]}))  # fmt: skip
    (folder / "weights.safetensors").write_bytes(b"")  # never read: the class is refused first
    with pytest.raises(ModelLoadError, match="KandinskyV22Img2ImgPipeline, which tcig cannot sample.*FLUX.1"):
        load_refiner(str(folder))


def test_eval_refuses_to_score_images_of_another_size(family, tmp_path, capsys, monkeypatch):
    """A method whose images do not have the case's size stops the evaluation instead of being scored."""
    from tcig.evaluation import methods
    from tcig.evaluation.methods import Baseline, Generated

    name, _, model_set = family
    if name != "flux-dev":
        pytest.skip("one family is enough: the check is the runner's")
    wrong = Baseline(lambda job: Generated(torch.rand(job.num_images, 3, 48, 64)))
    monkeypatch.setitem(methods.BASELINES, "diffusion", wrong)  # the runner's registry is the same dict
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "boat.json").write_text(json.dumps(BOAT_SPEC))
    code = main(["eval", "--models", str(model_set), "--cases", f"folder:{cases}", "--out", str(tmp_path / "r"),
                 "--size", "64", "--methods", "diffusion", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code != 0 and "diffusion made 64x48 images for the 64x64 case 'boat'" in err and "\n" not in err
    results = tmp_path / "r" / "results.jsonl"
    assert not results.exists() or '"diffusion"' not in results.read_text()


def test_a_model_set_sets_the_t5_prompt_length(family):
    """SD3 and FLUX.1 pad prompts for T5 to 256 and 512 tokens unless the set says otherwise; others refuse it."""
    name, folder, _ = family
    if name in ("latent", "sd-v", "sdxl"):
        with pytest.raises(ConfigError, match="has no T5 encoder"):
            load_refiner(str(folder), max_sequence_length=8)
        return
    if name not in ("sd3", "flux-schnell"):
        pytest.skip("FLUX.1-dev and Chroma pad as FLUX.1-schnell does")
    default = {"sd3": 256, "flux-schnell": 512}[name]
    for tokens, expected in ((None, default), (8, 8)):
        den = load_refiner(str(folder), max_sequence_length=tokens).denoiser()
        text = den.conditioning(["a boat"], None, 0.0, (64, 64)).tensors["encoder_hidden_states"]
        clip_tokens = 0 if name == "flux-schnell" else 77  # SD3 puts its CLIP tokens before T5's
        assert text.shape[1] == clip_tokens + expected


def test_eval_variants_start_where_their_noise_level_or_strength_says(family, tmp_path):
    """A set that starts at a noise level keeps it in eval; a variant's strength replaces it, its noise level too."""
    name, _, model_set = family
    if name != "flux-dev":
        pytest.skip("one family is enough: the rule is the settings'")
    spec = json.loads(model_set.read_text())
    spec["stage2"] = {"steps": 4, "noise_level": 0.6}
    leveled = tmp_path / "set.json"
    leveled.write_text(json.dumps(spec))
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "boat.json").write_text(json.dumps(BOAT_SPEC))
    out = tmp_path / "report"
    variants = ["--variant", "set:steps=1", "--variant", "nl:noise_level=0.3", "--variant", "st:strength=0.25"]
    code = main(["eval", "--models", str(leveled), "--cases", f"folder:{cases}", "--out", str(out), "--size", "64",
                 "--methods", "tcig", "--stage1-steps", "1", "--no-progress", *variants])  # fmt: skip
    assert code == 0
    rows = {r["variant"].split(",")[0]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert rows["set"]["variant"].endswith(",noise=0.6") and rows["set"]["settings"]["stage2"]["noise_level"] == 0.6
    assert rows["nl"]["variant"].endswith(",noise=0.3") and rows["nl"]["settings"]["stage2"]["noise_level"] == 0.3
    assert rows["st"]["variant"].endswith(",strength=0.25") and rows["st"]["settings"]["stage2"]["noise_level"] is None
    assert (out / "miou_vs_strength.png").is_file()
