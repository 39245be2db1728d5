"""Every setting of a generation, declared once: its type, bounds, help, manifest key and CLI flag.

The fields of :class:`Stage1Settings`, :class:`Stage2Settings` and :class:`SizeSettings` make the ``tcig generate``
flags (``--`` + key, ``_`` → ``-``), the ``tcig batch`` manifest keys and the ``tcig eval --variant`` keys, so each
setting has one spelling everywhere. A key is the field's name except where two stages share a name (stage 2's
``steps`` is ``stage2_steps``). Values from any interface go through :func:`check_value`, which names the key and
the bound in one line. Stage 1 follows the paper's §3 (arXiv 2403.01212); the priors are this project's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Literal

from tcig.errors import ConfigError

Init = Literal["noise", "colours", "collage", "prompt"]
INITS: tuple[str, ...] = ("noise", "colours", "collage", "prompt")
SegLoss = Literal["mse", "ce"]
Fit = Literal["stretch", "crop", "pad"]

MAX_SIDE = 4096
"""Largest output height or width."""
MAX_STAGE1_SIDE = 2048
"""Largest stage-1 long side."""
MAX_IMAGES = 64
"""Most images per call (``--num-images``)."""
MAX_SEED = 2**64 - 1


def setting(
    default: Any,
    help: str,
    *,
    kind: type | None = None,
    key: str | None = None,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
):
    """A dataclass field with what the interfaces need: ``kind`` (default: the default's type), bounds (closed
    unless ``*_open``), ``choices``, ``key`` (default: the field name) and whether ``None`` is allowed."""
    meta = {
        "help": help,
        "kind": kind or type(default),
        "key": key,
        "choices": choices,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "optional": optional or default is None,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One setting as the interfaces see it."""

    key: str
    name: str
    group: type
    kind: type
    help: str
    choices: tuple[str, ...] | None
    low: float | None
    high: float | None
    low_open: bool
    high_open: bool
    optional: bool

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def bounds(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = "an integer" if self.kind is int else "a number" if self.kind is float else "a string"
        if self.low is None and self.high is None:
            return kind
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {_num(self.low)}"
        return f"{kind} {'<' if self.high_open else '<='} {_num(self.high)}"


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value:,}".replace(",", "")


def check_value(option: Option, value: Any, where: str = "") -> Any:
    """``value`` checked against ``option`` (an int is accepted for a float); raises one-line ``ConfigError``.

    Args:
        option: the setting.
        value: the value from a flag, a manifest line, a variant or the Python API.
        where: a prefix naming the source (``"manifest.jsonl:3: "``); the key or flag follows it.
    """
    name = f'{where}"{option.key}"' if where else f"{option.key} ({option.flag})"
    if value is None:
        if option.optional:
            return None
        raise ConfigError(f"{name} must be {option.bounds()}, not null")
    if option.kind is float and type(value) is int:
        value = float(value)
    if type(value) is not option.kind:
        shown = f"{type(value).__name__} {value!r}"[:80]
        raise ConfigError(f"{name} must be {option.bounds()}, got {shown}")
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{name} must be {option.bounds()}, got {value!r}")
    if option.kind in (int, float):
        if option.kind is float and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
        too_low = option.low is not None and (value <= option.low if option.low_open else value < option.low)
        too_high = option.high is not None and (value >= option.high if option.high_open else value > option.high)
        if too_low or too_high:
            raise ConfigError(f"{name} must be {option.bounds()}, got {value:g}")
    return value


class _Checked:
    """Mixin: ``check()`` validates every field against its declaration, then the cross-field rules."""

    def check(self) -> None:
        for option in options_of(type(self)):
            check_value(option, getattr(self, option.name))
        self.check_together()

    def check_together(self) -> None:
        """Rules that involve several fields (none by default)."""


@dataclass
class Stage1Settings(_Checked):
    """Stage-1 optimization settings (the paper's §3: a CLIP loss on random crops plus the guides' segmentation loss
    against the layout). With ``patience > 0`` the loop stops early once the smoothed loss has not fallen by
    ``min_improvement`` (relative) for ``patience`` steps; ``steps`` is then the upper bound.

    Priors against adversarial solutions: ``init`` (the starting image, see :mod:`tcig.stage1.priors`) with
    ``init_noise`` on top of it; the segmenters see ``seg_views`` randomly transformed views per image (shifted by
    up to ``seg_shift`` of the side, scaled by up to ``1 ± seg_scale``, blurred with a Gaussian of up to
    ``seg_blur`` pixels, plus ``seg_noise``), each scored against the layout moved with it, so that no pixel-exact
    pattern can satisfy them (expectation over transformations); ``tv_weight`` weighs a total-variation prior.
    ``guides_per_step`` scores a random subset of the guides at each step (an expectation over the guides, at a
    fraction of the cost)."""

    steps: int = setting(150, "Adam steps of stage 1", low=0, high=100_000)
    lr: float = setting(0.05, "learning rate", low=0, high=100, low_open=True)
    clip_weight: float = setting(1.0, "weight of the CLIP loss (0 disables it)", low=0)
    num_crops: int = setting(8, "random crops per image for the CLIP loss", low=1, high=256)
    crop_min: float = setting(0.6, "smallest crop side, as a fraction of the short side", low=0, high=1, low_open=True)
    crop_noise: float = setting(0.02, "std of the Gaussian noise added to each crop", low=0)
    seg_noise: float = setting(0.0, "std of the Gaussian noise on the segmenters' view of the image", low=0)
    seg_loss: SegLoss = setting(
        "mse", "segmentation loss: mse (the paper's) or ce (cross-entropy)", choices=("mse", "ce")
    )
    pyramid_levels: int = setting(4, "levels of the pixel pyramid", low=1, high=12)
    pyramid_finest: int = setting(0, "finest pyramid level: 0 = full resolution, 1 = half, ...", low=0, high=11)
    patience: int = setting(0, "stop once the smoothed loss has not improved for this many steps (0 = off)", low=0)
    min_improvement: float = setting(
        0.01, "relative fall of the smoothed loss that counts as improving", low=0, high=1, high_open=True
    )
    init: Init = setting(
        "noise",
        "stage 1's start: noise, colours (the layout in its classes' colours, read from the refiner's own images), "
        "collage (regions filled with the refiner's texture of each class) or prompt (the refiner's image)",
        choices=INITS,
    )
    init_noise: float = setting(0.5, "std of the random pyramid levels added to a non-noise init", low=0)
    init_steps: int = setting(
        10, "sampling steps of the refiner's images that a non-noise init starts from (drawn at the stage-1 size)",
        low=1, high=1000,
    )  # fmt: skip
    keep_photo: float = setting(
        1.0, "with an init image: how much of the photo is pasted back where its segmentation already matches the "
        "layout, feathered at the edges (1 = kept as it is, 0 = every pixel redrawn)", low=0, high=1,
    )  # fmt: skip
    seg_views: int = setting(1, "transformed views per image that each segmenter scores", low=1, high=32)
    seg_shift: float = setting(0.0, "largest shift of a segmenter view, as a fraction of the side", low=0, high=0.5,
                               high_open=True)  # fmt: skip
    seg_scale: float = setting(0.0, "largest relative zoom in or out of a segmenter view", low=0, high=0.5,
                               high_open=True)  # fmt: skip
    seg_blur: float = setting(0.0, "largest Gaussian blur (pixels) of a segmenter view", low=0, high=64)
    tv_weight: float = setting(0.0, "weight of the total-variation (smoothness) prior", low=0)
    guides_per_step: int = setting(
        0, "guiding segmenters scored at each step, drawn at random and weighted up to keep their sum (0 = all)",
        low=0, high=64,
    )  # fmt: skip

    @property
    def robust_views(self) -> bool:
        return self.seg_views > 1 or self.seg_shift > 0 or self.seg_scale > 0 or self.seg_blur > 0


@dataclass
class Stage2Settings(_Checked):
    """img2img settings (SDEdit): noise to ``strength`` of the schedule, then ``int(steps * strength)`` denoising
    steps; or, with ``noise_level``, start at the level of the ``steps``-step schedule nearest to it (model- and
    resolution-independent: on flow-matching schedules ``strength`` starts far higher, e.g. FLUX at 1024² turns 0.3
    into sigma 0.60). ``seg_guidance`` > 0 steers each of those steps with the guiding segmenters' gradient (guided
    refinement). ``cycles`` > 0 alternates, after the first refinement, ``cycle_steps`` stage-1 steps from the
    refined image and a refinement at ``cycle_strength`` (see ``TCIGPipeline.refine``)."""

    strength: float = setting(0.6, "img2img noise strength", low=0, high=1, low_open=True)
    steps: int = setting(30, "scheduler steps of stage 2 before strength", key="stage2_steps", low=1, high=10_000)
    noise_level: float | None = setting(
        None, "starting noise level of stage 2 on a scale that means the same on every model and size: the fraction "
        "of noise sigma in x = (1 - sigma)·image + sigma·noise (flow matching; other models start at the step of "
        "equal signal-to-noise ratio); overrides --strength", kind=float, low=0, high=1, low_open=True,
    )  # fmt: skip
    guidance_scale: float | None = setting(
        None, "guidance scale of stage 2: classifier-free, or FLUX.1-dev's distilled guidance (default: the model's "
        "own, 7.5 for SD 1.x/2.x, 5 for SDXL and Chroma, 7 for SD3, 3.5 for FLUX.1-dev)", kind=float, low=0, high=100,
    )  # fmt: skip
    negative_prompt: str | None = setting(None, "negative prompt for stage 2", kind=str)
    seg_guidance: float = setting(0.0, "weight of the guides' segmentation gradient at each stage-2 step", low=0)
    cycles: int = setting(0, "polish-and-refine cycles after stage 2 (0 = none)", low=0, high=20)
    cycle_steps: int = setting(20, "stage-1 steps of each cycle's polish", low=0, high=100_000)
    cycle_strength: float = setting(0.15, "img2img strength of each cycle's refinement", low=0, high=1, low_open=True)
    cycle_noise_level: float | None = setting(
        None, "starting noise level of each cycle's refinement (see --noise-level); overrides --cycle-strength",
        kind=float, low=0, high=1, low_open=True,
    )  # fmt: skip

    def overridden(self, **given) -> Stage2Settings:
        """These settings with the ``given`` fields replaced; a strength given without a noise level drops the noise
        level (it would win), and likewise for the cycles."""
        for strength, level in (("strength", "noise_level"), ("cycle_strength", "cycle_noise_level")):
            if strength in given and level not in given:
                given[level] = None
        return replace(self, **given)

    def at_strength(self, strength: float) -> Stage2Settings:
        """The same settings starting at ``strength`` (an explicit strength drops ``noise_level``)."""
        return self.overridden(strength=strength)

    @property
    def start_label(self) -> str:
        """Where the refinement starts, as eval variant names show it: ``strength=0.35`` or ``noise=0.45``."""
        return f"strength={self.strength:g}" if self.noise_level is None else f"noise={self.noise_level:g}"

    def cycle(self) -> Stage2Settings:
        """The settings of a cycle's refinement: its strength or noise level, no cycles of its own."""
        return replace(self, strength=self.cycle_strength, noise_level=self.cycle_noise_level, cycles=0)


@dataclass
class SizeSettings(_Checked):
    """Output size and what stage 1 optimizes. Without ``height``/``width`` the output keeps the layout's aspect
    ratio with the model set's long side, rounded to multiples of 8."""

    height: int | None = setting(
        None, "output height (default: the layout's aspect ratio, long side the model set's resolution); rounded to "
        "a multiple of 8", kind=int, low=8, high=MAX_SIDE,
    )  # fmt: skip
    width: int | None = setting(None, "output width (see --height)", kind=int, low=8, high=MAX_SIDE)
    fit: Fit | None = setting(
        None, "how to fit a layout of another aspect ratio: stretch, crop or pad", kind=str,
        choices=("stretch", "crop", "pad"),
    )  # fmt: skip
    stage1_size: int | None = setting(
        None, "long side of the stage-1 image (default: the model set's, else the output's)", kind=int, low=8,
        high=MAX_STAGE1_SIDE,
    )  # fmt: skip
    parameterization: str = setting(
        "pixel", "what stage 1 optimizes: a pixel pyramid or the latents of the refiner's VAE",
        choices=("pixel", "latent"),
    )  # fmt: skip


SETTING_GROUPS: tuple[type, ...] = (Stage1Settings, Stage2Settings, SizeSettings)


def options_of(group: type) -> list[Option]:
    """The options of one settings class, in field order."""
    out = []
    for f in fields(group):
        m = f.metadata
        out.append(
            Option(
                m["key"] or f.name,
                f.name,
                group,
                m["kind"],
                m["help"],
                m["choices"],
                m["low"],
                m["high"],
                m["low_open"],
                m["high_open"],
                m["optional"],
            )  # fmt: skip
        )
    return out


OPTIONS: Mapping[str, Option] = {o.key: o for g in SETTING_GROUPS for o in options_of(g)}
"""Every setting by its key."""


def default_of(option: Option) -> Any:
    f = next(f for f in fields(option.group) if f.name == option.name)
    return f.default if f.default is not MISSING else None


def split_settings(values: Mapping[str, Any], where: str = "") -> dict[type, dict[str, Any]]:
    """Check ``{key: value}`` (manifest line, variant) and split it into field values per settings class.

    Args:
        values: settings by key; an unknown key is an error that lists the known ones.
        where: a prefix naming the source, for the messages.
    """
    out: dict[type, dict[str, Any]] = {g: {} for g in SETTING_GROUPS}
    for key, value in values.items():
        option = OPTIONS.get(key)
        if option is None:
            raise ConfigError(f"{where}unknown setting '{key}'; known: {', '.join(sorted(OPTIONS))}")
        out[option.group][option.name] = check_value(option, value, where)
    return out


def check_seed(seed: Any, where: str = "--seed") -> int:
    """A seed for ``torch.Generator.manual_seed``: an integer in 0..2**64-1."""
    if type(seed) is not int or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{where} must be an integer in 0..{MAX_SEED} (2**64-1), got {seed!r}"[:200])
    return seed


def check_num_images(count: Any, where: str = "--num-images") -> int:
    if type(count) is not int or not 1 <= count <= MAX_IMAGES:
        raise ConfigError(
            f"{where} must be an integer in 1..{MAX_IMAGES}, got {count!r}; for more images run several seeds "
            "(tcig batch)"
        )
    return count
