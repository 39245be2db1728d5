"""Stage-1 priors: starting images from the refiner's own images, robust segmenter views, total variation, the
background class of a specialist, and guided refinement."""

from __future__ import annotations

import pytest
import torch

from tcig.errors import ClassNameError, ConfigError
from tcig.io.cache import TensorCache
from tcig.layout import IGNORE, Layout
from tcig.layout.vocabularies import resolve_classes
from tcig.models.denoising import Level
from tcig.settings import Stage1Settings, Stage2Settings
from tcig.stage1.losses import total_variation
from tcig.stage1.optimize import ViewDraws, gaussian_blur, segmenter_views
from tcig.stage1.parameterization import PixelPyramid
from tcig.stage1.priors import StartDrawer, initial_images, paint_colours


def _layout() -> Layout:
    label_map = torch.zeros(16, 16, dtype=torch.long)
    label_map[8:] = 1
    label_map[10:13, 4:9] = 2
    label_map[0, 0] = IGNORE
    return Layout(label_map, ["sky", "sea", "boat"])


COLOURS = {"sky": (0.3, 0.5, 0.9), "sea": (0.1, 0.3, 0.6), "boat": (0.8, 0.1, 0.1)}


class ColourRefiner:
    """A stand-in refiner whose image of any prompt naming a class is that class's colour, with a border of grey,
    plus a little noise from each image's generator."""

    vae = None
    name = "colour-refiner"

    def __init__(self) -> None:
        self.calls = 0
        self.prompts: list[str] = []

    def fingerprint(self) -> str:
        return self.name

    def levels(self, settings, height, width):
        return [Level(1.0, 0.0, 1.0), Level(0.0, 1.0, 0.0)]

    def guidance_scale(self, settings):
        return 1.0

    def text_to_image(self, prompts, height, width, settings, generator=None, progress=True, callback=None, desc=""):
        self.calls += 1
        self.prompts += prompts
        generators = generator if isinstance(generator, list) else [generator] * len(prompts)
        images = torch.full((len(prompts), 3, height, width), 0.5)
        for i, prompt in enumerate(prompts):
            for name, colour in COLOURS.items():
                if name in prompt.split():
                    images[i, :, 2:-2, 2:-2] = torch.tensor(colour)[:, None, None]
            images[i] += 0.01 * torch.rand(3, height, width, generator=generators[i])
        return images


def _drawer(refiner, cache=None) -> StartDrawer:
    return StartDrawer(refiner, [ColourSegmenter()], "a photo of a {name}", cache=cache)


class ColourSegmenter(torch.nn.Module):
    """Labels each pixel by its nearest class colour (grey = background)."""

    labels = ["background", *COLOURS]

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, images, queries=None):
        table = torch.tensor([(0.5, 0.5, 0.5), *COLOURS.values()])
        distance = (images[:, None] - table[None, :, :, None, None]).pow(2).sum(2)
        return -distance * 100


def test_paint_colours_gives_each_region_its_colour_and_grey_to_dont_care():
    layout = _layout()
    colours = torch.tensor([COLOURS[n] for n in layout.classes])
    image = paint_colours(layout, colours)
    assert image.shape == (3, 16, 16)
    assert torch.allclose(image[:, 11, 5], colours[2])
    assert torch.allclose(image[:, 3, 3], colours[0])
    assert torch.allclose(image[:, 0, 0], torch.full((3,), 0.5))


def test_exemplar_colours_come_from_the_class_pixels_and_are_drawn_once():
    refiner = ColourRefiner()
    drawer = _drawer(refiner)
    exemplars, prompt_images = drawer.draw(["sea", "boat"], None, 1, (16, 16), Stage2Settings())
    assert refiner.calls == 1 and prompt_images is None
    for exemplar, name in zip(exemplars, ["sea", "boat"], strict=True):
        # the grey border is not the class, so the mean is the class colour itself
        assert torch.allclose(exemplar.colour, torch.tensor(COLOURS[name]), atol=0.01)
    drawer.draw(["boat", "sea"], None, 1, (16, 16), Stage2Settings())
    assert refiner.calls == 1  # kept in memory
    drawer.draw(["boat"], None, 1, (8, 8), Stage2Settings())
    assert refiner.calls == 2  # another size is drawn again


def test_a_class_always_gets_the_same_exemplars_whatever_is_drawn_with_it():
    alone, _ = _drawer(ColourRefiner()).draw(["boat"], None, 1, (16, 16), Stage2Settings())
    together, _ = _drawer(ColourRefiner()).draw(["sea", "boat"], "a sky", 2, (16, 16), Stage2Settings())
    assert torch.equal(alone[0].images, together[1].images)


def test_the_prompt_and_the_exemplars_are_drawn_in_one_batch():
    refiner = ColourRefiner()
    _, images = _drawer(refiner).draw(["sea", "boat"], "a sky", 3, (16, 16), Stage2Settings())
    assert refiner.calls == 1 and images.shape == (3, 3, 16, 16)
    assert refiner.prompts.count("a sky") == 3 and len(refiner.prompts) == 3 + 2 * 2


def test_a_second_process_reads_the_start_images_from_disk_and_the_generator_moves_on_the_same(tmp_path):
    def run(cache):
        refiner = ColourRefiner()
        generator = torch.Generator().manual_seed(5)
        exemplars, images = _drawer(refiner, cache).draw(["sea"], "a sky", 2, (16, 16), Stage2Settings(), generator)
        return refiner.calls, exemplars[0].images, images, torch.rand(4, generator=generator)

    calls, exemplars, images, after = run(None)
    first = run(TensorCache(tmp_path))
    second = run(TensorCache(tmp_path))  # a new drawer, as in a new process
    assert first[0] == 1 and second[0] == 0
    for got in (first, second):
        assert torch.equal(got[1], exemplars) and torch.equal(got[2], images) and torch.equal(got[3], after)
    refiner = ColourRefiner()
    _drawer(refiner, TensorCache(tmp_path)).draw(["sea"], "a sky", 2, (16, 16), Stage2Settings(),
                                                 torch.Generator().manual_seed(6))  # fmt: skip
    assert refiner.prompts == ["a sky", "a sky"]  # another seed draws the prompt again, not the class


@pytest.mark.parametrize("init", ["colours", "collage", "prompt"])
def test_initial_images_follow_the_layout(init):
    layout = _layout()
    images = initial_images(
        init,
        layout,
        "a sky",
        2,
        drawer=_drawer(ColourRefiner()),
        settings=Stage2Settings(),
        generator=torch.Generator().manual_seed(0),
    )
    assert images.shape == (2, 3, 16, 16)
    if init == "prompt":  # the refiner's own image for the prompt, ignoring the layout
        assert torch.allclose(images[0, :, 11, 5], torch.tensor(COLOURS["sky"]), atol=0.01)
        return
    predicted = ColourSegmenter()(images).argmax(1)
    labelled = layout.label_map != IGNORE
    target = layout.label_map + 1  # segmenter label 0 is background
    assert (predicted[0][labelled] == target[labelled]).float().mean() > 0.9


def test_pixel_pyramid_starts_from_the_initial_image():
    coarse = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    init = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    pyramid = PixelPyramid(1, 16, 16, levels=3, init=init, init_std=0.0)
    assert torch.allclose(pyramid(), init, atol=1e-5)
    half = PixelPyramid(1, 16, 16, levels=3, finest=1, init=init, init_std=0.0)
    assert (half() - init).abs().mean() < 0.03  # a half-resolution start of a smooth image is close to it


def test_views_without_transformations_are_the_image_and_its_target():
    images = torch.rand(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    settings = Stage1Settings(seg_views=3)
    draws = ViewDraws.sample(6, (8, 8), settings, torch.Generator().manual_seed(0), "cpu")
    views, (moved,) = segmenter_views(images, [target], 3, draws)
    assert views.shape == (6, 3, 8, 8)
    assert torch.allclose(views, images.repeat_interleave(3, dim=0), atol=1e-5)
    assert torch.equal(moved, target.repeat_interleave(3, dim=0))


def test_a_shifted_view_moves_its_target_with_it():
    """Pixels keep their label under a shift; those moved in from outside the image are not scored."""
    target = torch.randint(0, 4, (1, 16, 16))
    images = (target[:, None].float() / 3).expand(-1, 3, -1, -1)  # the label is readable from the pixel
    theta = torch.tensor([[[1.0, 0.0, 2 * 3 / 16], [0.0, 1.0, -2 * 2 / 16]]])  # 3 px left, 2 px down
    views, (moved,) = segmenter_views(images, [target], 1, ViewDraws(theta, torch.zeros(1), None))
    scored = moved != IGNORE
    assert scored.float().mean() > 0.6 and (~scored).any()
    assert torch.equal((views[:, 0] * 3).round().long()[scored], moved[scored])
    assert torch.equal(moved[0, 2:, :13], target[0, :14, 3:])


def test_gaussian_blur_keeps_flat_images_and_smooths_noise():
    flat = torch.full((2, 3, 8, 8), 0.4)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.0, 1.5])), flat, atol=1e-6)
    noise = torch.rand(2, 3, 16, 16)
    blurred = gaussian_blur(noise, torch.tensor([0.0, 1.5]))
    assert torch.allclose(blurred[0], noise[0], atol=1e-5)
    assert total_variation(blurred[1:]) < 0.5 * total_variation(noise[1:])


def test_stage1_settings_refuse_bad_priors():
    for bad in (
        {"init": "paint"},
        {"seg_views": 0},
        {"seg_shift": 0.6},
        {"seg_blur": -1.0},
        {"tv_weight": float("nan")},
    ):
        with pytest.raises(ConfigError):
            Stage1Settings(**bad).check()
    with pytest.raises(ConfigError):
        Stage2Settings(seg_guidance=-1.0).check()


def test_a_specialist_maps_the_classes_it_lacks_to_its_background():
    labels = {"general": ["sky", "sea", "boat"], "specialist": ["background", "ship"]}
    mapping = resolve_classes(["sky", "sea", "boat"], labels)
    assert mapping["specialist"] == [0, 0, 1]  # boat ~ ship by synonym; sky and sea are its background
    assert mapping["general"] == [0, 1, 2]
    with pytest.raises(ClassNameError):  # a background label does not make a class known
        resolve_classes(["sky", "castle"], labels)
