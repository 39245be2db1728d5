"""TCIGPipeline end to end on tiny models: sizes, stages, class resolution, determinism."""

import pytest
import torch

from tcig import ClassNameError, ConfigError, Layout, LayoutError, Stage1Settings, Stage2Settings, TCIGPipeline
from tcig.models.model_sets import load_model_set

FAST = Stage1Settings(steps=3, num_crops=2)
STAGE2 = Stage2Settings(strength=0.5, steps=4)


def _layout(h=48, w=64, classes=("sky", "sea", "boat")):
    label = torch.zeros(h, w, dtype=torch.long)
    label[h // 2 :] = 1
    label[h // 2 + 4 : h - 8, w // 4 : 3 * w // 4] = 2
    return Layout(label, list(classes))


@pytest.fixture(scope="module")
def pipe(tiny):
    return TCIGPipeline.from_model_set(str(tiny["model_set"]))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_two_stages_keep_the_layout_aspect_ratio(pipe):
    out = pipe("a boat on the sea", _layout(), stage1=FAST, stage2=STAGE2, generator=_gen(), progress=False)
    assert out.images.shape == (1, 3, 48, 64)  # long side = the model set's resolution (64)
    assert out.stage1_images.shape == out.images.shape
    assert out.layout.size == (48, 64)
    assert len(out.history) == 3 and {"clip", "seg", "loss"} <= set(out.history[0])
    assert set(out.timings) == {"stage1_s", "stage2_s", "total_s"}
    assert not torch.equal(out.images, out.stage1_images)
    assert out.settings["models"]["refiner"].endswith("latent")


def test_stage2_none_returns_the_stage1_image(pipe):
    out = pipe("a boat", _layout(), stage1=FAST, refine=False, generator=_gen(), progress=False)
    assert torch.equal(out.images, out.stage1_images)
    assert "stage2_s" not in out.timings


def test_identical_generators_give_identical_images(pipe):
    a = pipe("a boat", _layout(), stage1=FAST, stage2=STAGE2, generator=_gen(5), progress=False)
    b = pipe("a boat", _layout(), stage1=FAST, stage2=STAGE2, generator=_gen(5), progress=False)
    c = pipe("a boat", _layout(), stage1=FAST, stage2=STAGE2, generator=_gen(6), progress=False)
    assert torch.equal(a.images, b.images) and a.history == b.history
    assert not torch.equal(a.images, c.images)


def test_channels_last_changes_the_memory_format_not_the_images(tiny):
    pipe = TCIGPipeline.from_model_set(str(tiny["model_set"]))
    before = pipe("a boat", _layout(), stage1=FAST, stage2=STAGE2, generator=_gen(5), progress=False)
    pipe.set_channels_last()
    convs = [m.weight for net in pipe.modules() for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    after = pipe("a boat", _layout(), stage1=FAST, stage2=STAGE2, generator=_gen(5), progress=False)
    assert torch.allclose(before.images, after.images, atol=1e-3)
    pipe.set_channels_last(False)
    assert all(w.is_contiguous() for w in convs)


def test_reduced_stage1_size_is_upsampled_into_stage2(pipe):
    out = pipe(
        "a boat", _layout(), stage1=FAST, stage2=STAGE2, stage1_size=32, num_images=2, generator=_gen(), progress=False
    )
    assert out.settings["stage1_size"] == [24, 32]
    assert out.images.shape == (2, 3, 48, 64) and out.stage1_images.shape == (2, 3, 48, 64)


def test_model_set_stage1_size_never_exceeds_the_output(tiny):
    pipe = TCIGPipeline.from_model_set(str(tiny["model_set"]))
    pipe.stage1_size = 256  # like sd15's 256 px stage 1, asked for a 64-px image
    out = pipe("a boat", _layout(), stage1=FAST, refine=False, generator=_gen(), progress=False)
    assert out.settings["stage1_size"] == [48, 64]
    pipe.stage1_size = 32
    out = pipe("a boat", _layout(), stage1=FAST, refine=False, generator=_gen(), progress=False)
    assert out.settings["stage1_size"] == [24, 32]


def test_latent_parameterization(pipe, monkeypatch):
    """Stage 1 must optimize the VAE's latents: the test fails if it fell back to the pixel pyramid."""
    import tcig.pipeline

    made = []

    def latent(*args, **kwargs):
        made.append(real(*args, **kwargs))
        made[-1].start = made[-1].latents.detach().clone()
        return made[-1]

    real = tcig.pipeline.VAELatent
    monkeypatch.setattr(tcig.pipeline, "VAELatent", latent)
    monkeypatch.setattr(tcig.pipeline, "PixelPyramid", lambda *a, **k: pytest.fail("fell back to the pixel pyramid"))
    out = pipe(
        "a boat",
        _layout(64, 64),
        parameterization="latent",
        stage1=FAST,
        stage2=STAGE2,
        generator=_gen(),
        progress=False,
    )
    assert out.images.shape == (1, 3, 64, 64)
    assert len(made) == 1 and not torch.equal(made[0].latents.detach(), made[0].start)  # the latents were optimized


def test_explicit_size_with_other_aspect_needs_fit(pipe):
    with pytest.raises(ConfigError, match="--fit"):
        pipe("a boat", _layout(), height=64, width=64, stage1=FAST, refine=False, progress=False)
    out = pipe("a boat", _layout(), height=64, width=64, fit="pad", stage1=FAST, refine=False, progress=False)
    assert out.layout.size == (64, 64) and (out.layout.label_map == -1).any()


def test_class_known_to_one_segmenter_only_is_left_to_it(tiny, caplog):
    ms = load_model_set(str(tiny["model_set"])).with_overrides(
        segmenters=[(str(tiny["segformer"]), 1.0), (str(tiny["mask2former"]), 0.5)]
    )
    pipe = TCIGPipeline.from_model_set(ms)
    layout = _layout(classes=("sky", "sea", "grass"))  # grass: Mask2Former only; sand would be SegFormer only
    terms = pipe.seg_terms(layout, 1)
    assert len(terms) == 2
    assert (terms[0].target == -1).sum() == (layout.label_map == 2).sum()  # SegFormer ignores grass pixels
    assert (terms[1].target != -1).all()
    assert any("grass" in r.getMessage() for r in caplog.records)


def test_open_vocabulary_segmenter_queries_region_text(tiny):
    ms = load_model_set(str(tiny["model_set"])).with_overrides(segmenters=[(str(tiny["clipseg"]), 1.0)])
    pipe = TCIGPipeline.from_model_set(ms)
    layout = _layout(classes=("sky", "lagoon", "red kayak"))
    layout.region_texts[2] = "a small red kayak"
    (term,) = pipe.seg_terms(layout, 1)
    assert term.queries == ["sky", "lagoon", "a small red kayak"]
    out = pipe("a kayak", layout, stage1=FAST, refine=False, progress=False)
    assert out.images.shape[-2:] == (48, 64)


def test_unknown_class_lists_nearest_names(pipe):
    with pytest.raises(ClassNameError, match="skyy.*sky"):
        pipe("x", _layout(classes=("skyy", "sea", "boat")), stage1=FAST, refine=False, progress=False)


def test_layout_without_labelled_pixel_is_refused(pipe):
    layout = Layout(torch.full((8, 8), -1), ["sky"])
    with pytest.raises(LayoutError, match="no labelled pixel"):
        pipe("x", layout, stage1=FAST, refine=False, progress=False)


def test_empty_prompt_and_bad_settings_are_refused(pipe):
    with pytest.raises(ConfigError, match="prompt is empty"):
        pipe(" ", _layout(), stage1=FAST, refine=False, progress=False)
    with pytest.raises(ConfigError, match="seg_loss"):
        pipe("x", _layout(), stage1=Stage1Settings(seg_loss="l1"), refine=False, progress=False)


def test_defaults_come_from_the_model_set_and_refine_by_default(tiny):
    ms = load_model_set(str(tiny["model_set"]))
    ms = type(ms)(**{**ms.__dict__, "stage1": {"steps": 2, "num_crops": 1}, "stage2": {"steps": 4, "strength": 0.5}})
    pipe = TCIGPipeline.from_model_set(ms)
    out = pipe("a boat", _layout(), progress=False)
    assert len(out.history) == 2 and out.settings["stage2"]["steps"] == 4 and "stage2_s" in out.timings


def test_progress_events_follow_every_step_and_an_exception_stops_the_call(pipe):
    events = []
    stage2 = Stage2Settings(strength=0.5, steps=4, cycles=1, cycle_steps=2, cycle_strength=0.5)
    run = {"stage1": FAST, "generator": _gen(), "progress": False}
    out = pipe("a boat", _layout(), stage2=stage2, callback=events.append, **run)
    steps = [(e["stage"], e.get("cycle"), e["step"], e["steps"]) for e in events]
    assert steps == [
        ("stage1", None, 0, 3), ("stage1", None, 1, 3), ("stage1", None, 2, 3),
        ("stage2", 0, 1, 2), ("stage2", 0, 2, 2),
        ("cycle", 1, 0, 2), ("cycle", 1, 1, 2),
        ("stage2", 1, 1, 2), ("stage2", 1, 2, 2),
    ]  # fmt: skip
    assert events[0]["images"].shape == (1, 3, 48, 64) and out.images.shape == (1, 3, 48, 64)
    plain = pipe("a boat", _layout(), stage2=stage2, **{**run, "generator": _gen()})
    assert torch.equal(plain.images, out.images)  # watching changes nothing

    class Stop(Exception):
        pass

    def stop_in_stage2(event):
        if event["stage"] == "stage2":
            raise Stop

    with pytest.raises(Stop):
        pipe("a boat", _layout(), stage2=STAGE2, callback=stop_in_stage2, **run)


def test_the_image_space_refiner_reports_its_steps_too(tiny):
    ms = load_model_set(str(tiny["model_set"])).with_overrides(refiner=str(tiny["pixel"]))
    pixel = TCIGPipeline.from_model_set(ms)
    events = []
    pixel("a boat", _layout(), stage1=FAST, stage2=STAGE2, generator=_gen(), callback=events.append, progress=False)
    assert [(e["step"], e["steps"]) for e in events if e["stage"] == "stage2"] == [(1, 2), (2, 2)]
