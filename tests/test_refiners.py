"""Stage 2: diffusers img2img (latent) and image-space SDEdit refiners, loaded from saved folders."""

import pytest
import torch

from tcig.errors import ConfigError, ModelLoadError
from tcig.models.refiners import DiffusersImg2ImgRefiner, PixelSDEditRefiner, load_refiner
from tcig.settings import Stage2Settings


@pytest.fixture(scope="module", params=["latent", "pixel"])
def refiner(request, tiny):
    return load_refiner(str(tiny[request.param]))


def _refine(refiner, seed, images=None, strength=0.6):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(9)) if images is None else images
    settings = Stage2Settings(strength=strength, steps=6, guidance_scale=3.0, negative_prompt="blurry")
    return refiner.refine(images, ["a boat", "a boat"], settings, torch.Generator().manual_seed(seed), progress=False)


def test_loader_picks_the_refiner_kind(tiny):
    assert isinstance(load_refiner(str(tiny["latent"])), DiffusersImg2ImgRefiner)
    pixel = load_refiner(str(tiny["pixel"]))
    assert isinstance(pixel, PixelSDEditRefiner) and pixel.vae is None


def test_refiner_shapes_range_and_seeds(refiner):
    a = _refine(refiner, 0)
    assert a.shape == (2, 3, 64, 64) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, _refine(refiner, 0))
    assert not torch.equal(a, _refine(refiner, 1))


def test_lower_strength_stays_closer_to_the_input(tiny):
    refiner = load_refiner(str(tiny["pixel"]))
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    near = (_refine(refiner, 0, images[:1].expand(2, -1, -1, -1), strength=0.2) - images).abs().mean()
    far = (_refine(refiner, 0, images[:1].expand(2, -1, -1, -1), strength=1.0) - images).abs().mean()
    assert near < far


@pytest.mark.parametrize(("strength", "message"), [(0.0, "in \\(0, 1\\]"), (1.5, "in \\(0, 1\\]")])
def test_bad_strength_is_refused(refiner, strength, message):
    with pytest.raises(ConfigError, match=message):
        _refine(refiner, 0, strength=strength)


def test_a_strength_too_low_for_the_steps_runs_one_step_rather_than_none(refiner):
    """0.1 of 6 steps is 0.6 of a step: one step runs (a user who lowers the steps never meets "no step")."""
    steps = []
    settings = Stage2Settings(strength=0.1, steps=6)
    images = torch.rand(1, 3, 64, 64)
    out = refiner.refine(images, ["a boat"], settings, progress=False, callback=lambda _, total: steps.append(total))
    assert steps == [1] and not torch.equal(out, images)
    assert len(refiner.levels(settings, 64, 64)) == 2


def test_folder_that_is_no_refiner_is_refused(tiny):
    with pytest.raises(ModelLoadError, match="neither a diffusers pipeline"):
        load_refiner(str(tiny["segformer"]))


def test_text_to_image_without_a_layout(refiner):
    settings = Stage2Settings(steps=4, guidance_scale=2.0)
    a = refiner.text_to_image(["a boat"], 32, 48, settings, torch.Generator().manual_seed(0), progress=False)
    b = refiner.text_to_image(["a boat"], 32, 48, settings, torch.Generator().manual_seed(0), progress=False)
    assert a.shape == (1, 3, 32, 48) and torch.equal(a, b)
