"""TCIG and its baselines on one case, all at the same size, prompt and seed, each timed per stage.

- ``tcig``: stage 1 then stage 2 (one stage-1 run serves every stage-2 strength of a sweep);
- ``stage1``: the control stage alone;
- ``diffusion``: the refiner's text-to-image with the prompt, no layout;
- ``sdedit-layout``: img2img from the layout painted in class colours (SDEdit with a colour sketch);
- ``regional``: MultiDiffusion-style region-based denoising with one prompt per region (its text, else the set's
  exemplar prompt of its class);
- ``guided``: the guiding segmenters' loss as gradient guidance during sampling (Universal Guidance, FreeDoM).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tcig.errors import ConfigError
from tcig.evaluation.cases import Case
from tcig.evaluation.measure import Measurement, measure
from tcig.io.pictures import layout_colours
from tcig.layout import IGNORE, Layout
from tcig.models.denoising import guided, region_weights, regional, sample
from tcig.models.model_sets import ModelSet
from tcig.models.refiners import SamplingRefiner
from tcig.pipeline import TCIGPipeline
from tcig.settings import Stage1Settings, Stage2Settings
from tcig.stage1.optimize import seg_terms_loss


@dataclass
class MethodSettings:
    """What every method shares (``stage2``: steps, classifier-free guidance) and what each adds."""

    stage1: Stage1Settings
    stage2: Stage2Settings
    sdedit_strength: float = 0.5
    regional_bootstrap: float = 0.2
    guidance_weight: float = 100.0
    class_colours: dict[str, tuple[int, int, int]] | None = None


@dataclass
class Generated:
    images: torch.Tensor
    stages: dict[str, Measurement] = field(default_factory=dict)
    stage1_size: tuple[int, int] | None = None  # TCIG's stage-1 (height, width), for its polish cycles


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run_stage1(
    pipe: TCIGPipeline,
    case: Case,
    size: tuple[int, int],
    settings: Stage1Settings,
    num_images: int,
    seed: int,
    stage1_size: int | None = None,
) -> Generated:
    """Stage 1 at ``size`` (its long side ``stage1_size``, default the set's); the result keeps the stage-1 shape."""
    with measure(pipe.device) as m:
        out = pipe(
            case.prompt,
            case.layout,
            height=size[0],
            width=size[1],
            fit="stretch",
            stage1_size=stage1_size,
            stage1=settings,
            refine=False,
            num_images=num_images,
            generator=_generator(seed),
            progress=False,
        )
    return Generated(out.images, {"stage1": m}, tuple(out.settings["stage1_size"]))


def run_refine(
    pipe: TCIGPipeline, case: Case, stage1: Generated, settings: Stage2Settings, stage1_settings, seed: int
) -> Generated:
    """Stage 2 (with its cycles, if any) on a stage-1 result, its noise drawn from seed + 1 (stage 1 used seed)."""
    layout = case.layout.resized(*stage1.images.shape[-2:], "stretch")
    with measure(pipe.device) as m:
        images = pipe.refine(
            stage1.images, case.prompt, layout, settings, stage1_settings, _generator(seed + 1), False,
            stage1.stage1_size,
        )  # fmt: skip
    return Generated(images, {**stage1.stages, "stage2": m})


def run_diffusion(pipe: TCIGPipeline, case: Case, size, settings: Stage2Settings, num_images: int, seed: int):
    with measure(pipe.device) as m:
        images = pipe.refiner.text_to_image(
            [case.prompt] * num_images, size[0], size[1], settings, _generator(seed), progress=False
        )
    return Generated(images, {"stage2": m})


def painted_layout(layout: Layout, colours: dict[str, tuple[int, int, int]] | None) -> torch.Tensor:
    """The layout as an image ``[3,H,W]`` in [0,1], as a user would paint it: each class in its colour from
    ``colours`` (by class name), else its standard dataset colour (see :func:`tcig.io.pictures.layout_colours`);
    don't-care pixels mid-grey."""
    table = layout_colours(layout.classes, colours).astype(np.float32)
    table = np.concatenate([table, [[128, 128, 128]]]) / 255
    index = layout.label_map.clone()
    index[index == IGNORE] = len(layout.classes)
    return torch.from_numpy(table[index.numpy()]).permute(2, 0, 1).float()


def run_sdedit_layout(pipe, case: Case, size, settings: MethodSettings, num_images: int, seed: int) -> Generated:
    layout = case.layout.resized(*size, "stretch")
    painted = painted_layout(layout, settings.class_colours).expand(num_images, -1, -1, -1)
    stage2 = settings.stage2.at_strength(settings.sdedit_strength)
    with measure(pipe.device) as m:
        images = pipe.refiner.refine(painted, [case.prompt] * num_images, stage2, _generator(seed), progress=False)
    return Generated(images, {"stage2": m})


def run_regional(pipe, case: Case, size, settings: MethodSettings, num_images: int, seed: int) -> Generated:
    """One prompt per class region and the case prompt for don't-care pixels. A region's prompt is its region text,
    else its class in the model set's ``exemplar_prompt`` ("a scene with a boat"): words the model was trained on,
    where a bare class name ("boat") is a prompt it may never have seen."""
    refiner = _sampling_refiner(pipe)
    den = refiner.denoiser()
    layout = case.layout.resized(*size, "stretch")
    present = layout.present_classes()
    lookup = torch.full((len(layout.classes) + 1,), IGNORE, dtype=torch.long)
    lookup[torch.tensor(present)] = torch.arange(len(present))
    regions = lookup[layout.label_map]
    template = pipe.model_set.exemplar_prompt if pipe.model_set else ModelSet.exemplar_prompt
    texts = [layout.region_texts.get(i, template.format(name=layout.classes[i])) for i in present] + [case.prompt]
    stage2 = settings.stage2
    scale = refiner.guidance_scale(stage2)
    generator = _generator(seed)
    with measure(pipe.device) as m, torch.no_grad():
        shape = den.shape(num_images, *size)
        weights = region_weights(regions, len(present), shape[-2:]).to(den.device)
        conds = [den.conditioning([t] * num_images, stage2.negative_prompt, scale, size) for t in texts]
        levels = refiner.levels(stage2.at_strength(1.0), *size)
        colours = torch.rand(len(texts), 3, 1, 1, generator=generator).expand(-1, -1, *size)
        backgrounds = den.encode(colours, generator)[:, None]
        x = den.start(levels, generator, shape=shape)
        predict = regional(
            den,
            conds,
            weights,
            backgrounds=backgrounds,
            bootstrap_steps=round(settings.regional_bootstrap * (len(levels) - 1)),
            generator=generator,
        )
        images = sample(den, x, levels, predict, progress=False, desc="regional")
    return Generated(images, {"stage2": m})


def run_guided(pipe: TCIGPipeline, case: Case, size, settings: MethodSettings, num_images: int, seed: int):
    """Text-to-image whose every step follows the gradient of the guiding segmenters' loss on the predicted image."""
    refiner = _sampling_refiner(pipe)
    den = refiner.denoiser()
    layout = case.layout.resized(*size, "stretch")
    loss_fn = seg_terms_loss(pipe.seg_terms(layout, num_images), settings.stage1.seg_loss)
    stage2 = settings.stage2
    generator = _generator(seed)
    with measure(pipe.device) as m:
        levels = refiner.levels(stage2.at_strength(1.0), *size)
        with torch.no_grad():
            cond = den.conditioning([case.prompt] * num_images, stage2.negative_prompt, refiner.guidance_scale(stage2),
                                    size)  # fmt: skip
            x = den.start(levels, generator, shape=den.shape(num_images, *size))
        predict = guided(den, cond, loss_fn, settings.guidance_weight)
        images = sample(den, x, levels, predict, progress=False, desc="guided")
    return Generated(images, {"stage2": m})


def _sampling_refiner(pipe: TCIGPipeline) -> SamplingRefiner:
    if pipe.refiner is None:
        raise ConfigError("regional and guided sampling need a refiner; the model set has none")
    return pipe.refiner


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if images.shape[-2:] == size:
        return images
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


@dataclass(frozen=True)
class Baseline:
    """A method that runs once per case: ``run(pipe, case, size, settings, num_images, seed)`` and what its result
    row records of the settings (``recorded(settings)``)."""

    run: Callable[..., Generated]
    recorded: Callable[[MethodSettings], dict]


BASELINES: dict[str, Baseline] = {
    "diffusion": Baseline(
        lambda pipe, case, size, s, n, seed: run_diffusion(pipe, case, size, s.stage2, n, seed), lambda s: {}
    ),
    "sdedit-layout": Baseline(run_sdedit_layout, lambda s: {"strength": s.sdedit_strength}),
    "regional": Baseline(run_regional, lambda s: {"bootstrap": s.regional_bootstrap}),
    "guided": Baseline(run_guided, lambda s: {"guidance_weight": s.guidance_weight, "seg_loss": s.stage1.seg_loss}),
}
"""The baselines by name; every one also records the shared stage-2 settings."""

METHODS: tuple[str, ...] = ("tcig", "stage1", *BASELINES)
"""Every method ``tcig eval`` runs: TCIG, its stage 1 alone, and the baselines."""
