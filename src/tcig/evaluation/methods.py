"""TCIG and its baselines on one case, all at the same size, prompt and seed, each timed per stage.

- ``tcig``: stage 1 then stage 2 (one stage-1 run serves every stage-2 strength of a sweep);
- ``stage1``: the control stage alone;
- ``diffusion``: the refiner's text-to-image with the prompt, no layout;
- ``sdedit-layout``: img2img from the layout painted in class colours (SDEdit with a colour sketch);
- ``regional``: MultiDiffusion-style region-based denoising with one prompt per region (its text, else the set's
  exemplar prompt of its class);
- ``guided``: the guiding segmenters' loss as gradient guidance during sampling (Universal Guidance, FreeDoM);
- ``controlnet``: text-to-image through the model set's segmentation ControlNet (the trained reference).

Each baseline declares its own settings once, with :func:`setting`, in :data:`BASELINES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tcig.errors import ConfigError
from tcig.evaluation.cases import Case
from tcig.evaluation.measure import Measurement, measure
from tcig.io.pictures import layout_colours, layout_tensor
from tcig.layout import IGNORE, Layout
from tcig.models.control import SegmentationControl, controlled
from tcig.models.denoising import guided, plain, region_weights, regional, sample
from tcig.models.model_sets import ModelSet
from tcig.models.refiners import SamplingRefiner
from tcig.pipeline import TCIGPipeline
from tcig.settings import Stage1Settings, Stage2Settings
from tcig.stage1.optimize import seg_terms_loss


@dataclass(frozen=True)
class Setting:
    """A number one baseline reads: its key (``--key-with-dashes`` in ``tcig eval``), default, bounds and help."""

    key: str
    default: float
    help: str
    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    integer: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def check(self, value: float) -> None:
        above = value > self.low if self.low_open else value >= self.low
        if not (math.isfinite(value) and above and value <= self.high):
            bound = f"{'>' if self.low_open else '>='} {self.low:g}" + (
                f" and <= {self.high:g}" if math.isfinite(self.high) else ""
            )
            raise ConfigError(f"{self.flag} must be a finite number {bound}, got {value:g}")
        if self.integer and not float(value).is_integer():
            raise ConfigError(f"{self.flag} must be a whole number, got {value:g}")


def setting(key: str, default: float, help: str, *, low: float = 0.0, high: float = math.inf,
            low_open: bool = False, integer: bool = False) -> Setting:  # fmt: skip
    """Declare a baseline's setting once: ``tcig eval`` gets its flag, the plan checks it, the report records it."""
    return Setting(key, default, help, low, high, low_open, integer)


@dataclass
class MethodSettings:
    """What every method shares (``stage1``; ``stage2``: steps, classifier-free guidance) and each baseline's own
    settings by key (``values``; a key not given takes its declared default)."""

    stage1: Stage1Settings
    stage2: Stage2Settings
    values: dict[str, float] = field(default_factory=dict)
    class_colours: dict[str, tuple[int, int, int]] | None = None

    def __post_init__(self) -> None:
        declared = {s.key: s for s in baseline_settings()}
        unknown = sorted(set(self.values) - set(declared))
        if unknown:
            raise ConfigError(f"unknown baseline setting(s) {', '.join(unknown)}; known: {', '.join(declared)}")
        self.values = {key: float(self.values.get(key, s.default)) for key, s in declared.items()}

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def check(self) -> None:
        for s in baseline_settings():
            s.check(self.values[s.key])
        self.stage1.check()
        self.stage2.check()


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


@dataclass(frozen=True)
class Job:
    """One baseline's run on one case: the models, the case and what every method shares (size, images per case,
    seed, settings). ``control``: the model set's ControlNet, if it declares one."""

    pipe: TCIGPipeline
    case: Case
    size: tuple[int, int]
    settings: MethodSettings
    num_images: int = 1
    seed: int = 0
    control: SegmentationControl | None = None

    def prompts(self, prompt: str | None = None) -> list[str]:
        return [prompt or self.case.prompt] * self.num_images

    def layout(self) -> Layout:
        return self.case.layout.resized(*self.size, "stretch")


def run_diffusion(job: Job) -> Generated:
    """The refiner's text-to-image with the case's prompt: what the model does without a layout."""
    with measure(job.pipe.device) as m:
        images = job.pipe.refiner.text_to_image(
            job.prompts(), *job.size, job.settings.stage2, _generator(job.seed), progress=False
        )
    return Generated(images, {"stage2": m})


def painted_layout(layout: Layout, colours: dict[str, tuple[int, int, int]] | None) -> torch.Tensor:
    """The layout as an image ``[3,H,W]`` in [0,1], as a user would paint it: each class in its colour from
    ``colours`` (by class name), else its standard dataset colour (see :func:`tcig.io.pictures.layout_colours`);
    don't-care pixels mid-grey."""
    return layout_tensor(layout, layout_colours(layout.classes, colours))


def run_sdedit_layout(job: Job) -> Generated:
    """SDEdit from the layout painted in the set's class colours (a user's colour sketch)."""
    painted = painted_layout(job.layout(), job.settings.class_colours).expand(job.num_images, -1, -1, -1)
    stage2 = job.settings.stage2.at_strength(job.settings["sdedit_strength"])
    with measure(job.pipe.device) as m:
        images = job.pipe.refiner.refine(painted, job.prompts(), stage2, _generator(job.seed), progress=False)
    return Generated(images, {"stage2": m})


def run_regional(job: Job) -> Generated:
    """One prompt per class region and the case prompt for don't-care pixels. A region's prompt is its region text,
    else its class in the model set's ``exemplar_prompt`` ("a scene with a boat"): words the model was trained on,
    where a bare class name ("boat") is a prompt it may never have seen."""
    pipe, settings = job.pipe, job.settings
    refiner = _sampling_refiner(pipe)
    den = refiner.denoiser()
    layout = job.layout()
    present = layout.present_classes()
    lookup = torch.full((len(layout.classes) + 1,), IGNORE, dtype=torch.long)
    lookup[torch.tensor(present)] = torch.arange(len(present))
    regions = lookup[layout.label_map]
    template = pipe.model_set.exemplar_prompt if pipe.model_set else ModelSet.exemplar_prompt
    texts = [layout.region_texts.get(i, template.format(name=layout.classes[i])) for i in present]
    stage2 = settings.stage2
    scale = refiner.guidance_scale(stage2)
    generator = _generator(job.seed)
    with measure(pipe.device) as m, torch.no_grad():
        shape = den.shape(job.num_images, *job.size)
        weights = region_weights(regions, len(present), shape[-2:]).to(den.device)
        conds = [den.conditioning(job.prompts(t), stage2.negative_prompt, scale, job.size) for t in [*texts, None]]
        levels = refiner.levels(stage2.at_strength(1.0), *job.size)
        colours = torch.rand(len(conds), 3, 1, 1, generator=generator).expand(-1, -1, *job.size)
        backgrounds = den.encode(colours, generator)[:, None]
        x = den.start(levels, generator, shape=shape)
        predict = regional(
            den,
            conds,
            weights,
            backgrounds=backgrounds,
            bootstrap_steps=round(settings["regional_bootstrap"] * (len(levels) - 1)),
            generator=generator,
            base=conds[-1],
            base_weight=settings["regional_base"],
            region_steps=round(settings["regional_steps"] * (len(levels) - 1)),
        )
        images = sample(den, x, levels, predict, progress=False, desc="regional")
    return Generated(images, {"stage2": m})


def run_guided(job: Job) -> Generated:
    """Text-to-image whose every step follows the gradient of the guiding segmenters' loss on the predicted image
    (Universal Guidance's forward guidance, FreeDoM's energy), with their time travel on the early steps and
    unguided steps below a noise level."""
    pipe, settings = job.pipe, job.settings
    refiner = _sampling_refiner(pipe)
    den = refiner.denoiser()
    loss_fn = seg_terms_loss(pipe.seg_terms(job.layout(), job.num_images), settings.stage1.seg_loss)
    stage2 = settings.stage2
    generator = _generator(job.seed)
    with measure(pipe.device) as m:
        levels = refiner.levels(stage2.at_strength(1.0), *job.size)
        with torch.no_grad():
            cond = den.conditioning(job.prompts(), stage2.negative_prompt, refiner.guidance_scale(stage2), job.size)
            x = den.start(levels, generator, shape=den.shape(job.num_images, *job.size))
        predict = guided(den, cond, loss_fn, settings["guidance_weight"], settings["guided_min_noise"])
        repeats = int(settings["guided_repeats"])
        repeat_steps = round(settings["guided_repeat_steps"] * (len(levels) - 1))
        images = sample(den, x, levels, predict, False, "guided", None, repeats, repeat_steps, generator)
    return Generated(images, {"stage2": m})


def run_controlnet(job: Job) -> Generated:
    """Text-to-image through the model set's segmentation ControlNet, given the layout painted in its palette: the
    trained reference (ControlNet-seg), sampled like every other method."""
    if job.control is None:
        raise ConfigError("the controlnet method needs a model set that declares a ControlNet")
    refiner = _sampling_refiner(job.pipe)
    stage2 = job.settings.stage2
    generator = _generator(job.seed)
    with measure(job.pipe.device) as m, torch.no_grad():
        den = controlled(refiner.denoiser(), job.control, job.layout(), job.settings["controlnet_scale"])
        levels = refiner.levels(stage2.at_strength(1.0), *job.size)
        cond = den.conditioning(job.prompts(), stage2.negative_prompt, refiner.guidance_scale(stage2), job.size)
        x = den.start(levels, generator, shape=den.shape(job.num_images, *job.size))
        images = sample(den, x, levels, plain(den, cond), progress=False, desc="controlnet")
    return Generated(images, {"stage2": m})


def _sampling_refiner(pipe: TCIGPipeline) -> SamplingRefiner:
    if pipe.refiner is None:
        raise ConfigError("the baselines sample with a refiner; the model set has none")
    return pipe.refiner


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if images.shape[-2:] == size:
        return images
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


@dataclass(frozen=True)
class Baseline:
    """A method that runs once per case: ``run(job)``, the settings it reads (declared with :func:`setting`), and
    what else its result row records (``records(settings)``). ``needs_control``: it runs only where the model set
    declares a ControlNet."""

    run: Callable[[Job], Generated]
    settings: tuple[Setting, ...] = ()
    records: Callable[[MethodSettings], dict] = lambda settings: {}
    needs_control: bool = False

    def recorded(self, settings: MethodSettings) -> dict:
        """What a result row records of the settings besides the shared stage-2 ones."""
        return {**{s.key: settings[s.key] for s in self.settings}, **self.records(settings)}


BASELINES: dict[str, Baseline] = {
    "diffusion": Baseline(run_diffusion),
    "sdedit-layout": Baseline(
        run_sdedit_layout,
        (setting("sdedit_strength", 0.5, "img2img strength from the painted layout", low=0, low_open=True, high=1),),
    ),
    "regional": Baseline(
        run_regional,
        (
            setting("regional_bootstrap", 0.2, "fraction of the steps with bootstrapping", high=1),
            setting("regional_base", 0.5, "weight of the whole prompt's prediction in every blend", high=1),
            setting("regional_steps", 1.0, "fraction of the steps with region prompts, then the whole one", high=1),
        ),
    ),
    "guided": Baseline(
        run_guided,
        (
            setting("guidance_weight", 100.0, "gradient scale of the guides' loss"),
            setting("guided_min_noise", 0.0, "noise level (0..1) below which steps are unguided", high=1),
            setting("guided_repeats", 3, "tries of each early step (time travel)", low=1, high=9, integer=True),
            setting("guided_repeat_steps", 0.5, "fraction of the steps that time-travel", high=1),
        ),
        records=lambda settings: {"seg_loss": settings.stage1.seg_loss},
    ),
    "controlnet": Baseline(
        run_controlnet,
        (setting("controlnet_scale", 1.0, "the ControlNet's conditioning scale"),),
        needs_control=True,
    ),
}
"""The baselines by name; every one also records the shared stage-2 settings. A baseline is added here only."""

METHODS: tuple[str, ...] = ("tcig", "stage1", *BASELINES)
"""Every method ``tcig eval`` runs: TCIG, its stage 1 alone, and the baselines."""


def baseline_settings() -> list[Setting]:
    """Every baseline's settings, in the order of :data:`BASELINES`."""
    return [s for baseline in BASELINES.values() for s in baseline.settings]
