"""The denoiser contract every stage-2 method samples through, in the shape of k-diffusion (Karras et al. 2022).

A diffusion model is wrapped as a :class:`Denoiser`: it predicts the clean sample ``x̂0 = D(x_t, level, cond)`` from
a noisy one, ``x_t = alpha·x0 + sigma·noise``, whatever the network predicts (noise ε, velocity v, the sample, or a
flow-matching velocity) and whatever its schedule (variance preserving, or flow matching with a static shift or a
resolution-dependent μ). Samplers, guidance and region blending are written on ``x̂0`` once, for every model:

- :func:`sample` steps along the model's own schedule with the deterministic first-order step of its family, which
  is DDIM on a variance-preserving schedule (Song et al. 2021) and Euler on a flow-matching one (Lipman et al. 2023):
  both are ``x_next = alpha'·x̂0 + sigma'·ε̂`` with ``ε̂ = (x - alpha·x̂0) / sigma``;
- :func:`guided` follows the gradient of a loss on the decoded ``x̂0`` (Universal Guidance's forward guidance,
  Bansal et al. 2023, written with Tweedie's formula: ``x̂0 -= w·sigma²/alpha·∇_x loss``);
- :func:`regional` blends one prediction per region prompt (MultiDiffusion, Bar-Tal et al. 2023).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tcig.errors import ConfigError

StepCallback = Callable[[int, int], None]
"""Called as ``callback(step, steps)`` after each denoising step (1-based); raising stops the run."""

PREDICTIONS = ("epsilon", "v_prediction", "sample", "flow")
"""What a network may predict: noise, velocity v = alpha·ε − sigma·x0, the clean sample, or a flow-matching
velocity (noise − x0)."""

MIN_ALPHA = 0.05
"""Floor of the signal level in guidance's ``sigma²/alpha`` (about the signal left at the end of Stable Diffusion's
schedule): at pure noise (flow matching's sigma = 1) Tweedie's step would be infinite."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Level:
    """One noise level of a schedule: ``x_t = alpha·x0 + sigma·noise``; ``t`` is the network's timestep input."""

    t: float
    alpha: float
    sigma: float

    @property
    def noise_level(self) -> float:
        """The same level on a flow-matching scale, ``sigma / (alpha + sigma)`` (equal signal-to-noise ratio): 0 is
        the clean image, 1 pure noise, on every model."""
        return self.sigma / (self.alpha + self.sigma)


class _Schedule:
    kind = sampler = ""

    def levels(self, steps: int, tokens: int | None = None) -> list[Level]:
        """``steps + 1`` levels from the noisiest to the last one."""
        raise NotImplementedError

    def strength_index(self, steps: int, strength: float) -> int:
        """Where img2img at ``strength`` starts in a ``steps``-step schedule: it keeps ``int(steps · strength)``
        steps, as diffusers' SD and SDXL img2img pipelines do."""
        return steps - int(steps * strength)

    def start_index(self, levels: list[Level], strength: float, noise_level: float | None = None) -> int:
        """Where img2img starts in ``levels``: at ``strength`` of the schedule as the family's img2img pipeline
        counts it (at least one step before the end), or, given ``noise_level``, at the level nearest to it on the
        flow-matching scale."""
        steps = len(levels) - 1
        if noise_level is not None:
            return min(range(steps), key=lambda i: abs(levels[i].noise_level - noise_level))
        index = self.strength_index(steps, strength)
        if index >= steps:  # a low strength with few steps: one step rather than none
            logger.info("strength %g of %d steps rounds to no denoising step; running one", strength, steps)
            return steps - 1
        return index


class VPSchedule(_Schedule):
    """A variance-preserving schedule read from a diffusers scheduler's config (betas, spacing, final alpha), with
    DDIM's timesteps; ``alpha = sqrt(ᾱ_t)``, ``sigma = sqrt(1 - ᾱ_t)``."""

    kind = "variance preserving"
    sampler = "DDIM"

    def __init__(self, config) -> None:
        from diffusers import DDIMScheduler

        self._scheduler = DDIMScheduler.from_config(config)

    def levels(self, steps: int, tokens: int | None = None) -> list[Level]:
        scheduler = self._scheduler
        scheduler.set_timesteps(steps)
        alphas = scheduler.alphas_cumprod.double()
        out = [_vp_level(int(t), float(alphas[int(t)])) for t in scheduler.timesteps]
        return out + [_vp_level(0, float(scheduler.final_alpha_cumprod))]


def _vp_level(t: int, alpha_bar: float) -> Level:
    return Level(float(t), math.sqrt(alpha_bar), math.sqrt(max(1.0 - alpha_bar, 0.0)))


class FlowSchedule(_Schedule):
    """A flow-matching schedule read from a ``FlowMatchEulerDiscreteScheduler`` config: ``alpha = 1 - sigma``,
    sigmas shifted statically (SD3: ``shift``) or by ``mu`` from the latent's token count (FLUX: dynamic
    shifting, the pipeline's own ``calculate_shift`` line between ``base_shift`` and ``max_shift``).
    ``linear_sigmas``: the unshifted sigmas are ``linspace(1, 1/steps, steps)`` as FLUX's pipelines set them, else
    the scheduler's own spacing (SD3's)."""

    kind = "flow matching"
    sampler = "Euler"

    def __init__(self, config, linear_sigmas: bool = False) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.config = config
        self.linear_sigmas = linear_sigmas
        self._scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)

    def strength_index(self, steps: int, strength: float) -> int:
        """As diffusers' SD3 and FLUX img2img pipelines count it: ``int(steps - steps · strength)``."""
        return int(steps - steps * strength)

    def levels(self, steps: int, tokens: int | None = None) -> list[Level]:
        scheduler, config = self._scheduler, self.config
        given = {"sigmas": np.linspace(1.0, 1 / steps, steps)} if self.linear_sigmas else {}
        if config.get("use_dynamic_shifting"):
            if tokens is None:
                raise ConfigError("a dynamically shifted flow schedule needs the latent's token count")
            base, top = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
            slope = (config.get("max_shift", 1.15) - config.get("base_shift", 0.5)) / (top - base)
            given["mu"] = config.get("base_shift", 0.5) + slope * (tokens - base)
        scheduler.set_timesteps(steps, **given)
        sigmas, times = scheduler.sigmas.double().tolist(), scheduler.timesteps.double().tolist()
        out = [Level(t, 1.0 - s, s) for t, s in zip(times, sigmas, strict=False)]
        return out + [Level(0.0, 1.0 - sigmas[-1], sigmas[-1])]


def schedule_of(scheduler, prediction: str, linear_sigmas: bool = False):
    """The schedule of a diffusers scheduler: flow matching for a flow-prediction model (``linear_sigmas``: see
    :class:`FlowSchedule`), else variance preserving (a flow scheduler without a flow model, or the reverse, is
    refused)."""
    is_flow = "FlowMatch" in type(scheduler).__name__
    if is_flow != (prediction == "flow"):
        raise ConfigError(
            f"{type(scheduler).__name__} does not match a model that predicts {prediction}; tcig samples "
            "variance-preserving models (ε, v, sample) and flow-matching models (velocity)"
        )
    if not is_flow and "beta_start" not in scheduler.config and scheduler.config.get("trained_betas") is None:
        raise ConfigError(f"{type(scheduler).__name__} has no beta schedule; tcig cannot read its noise levels")
    return FlowSchedule(scheduler.config, linear_sigmas) if is_flow else VPSchedule(scheduler.config)


@dataclass
class Conditioning:
    """A batch's conditioning: network keyword tensors (batch first; with classifier-free guidance the
    unconditional half first) and the guidance scale to combine the two halves with."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    scale: float = 1.0
    doubled: bool = False


class Denoiser:
    """A diffusion model as ``x̂0 = D(x_t, level, cond)``. Subclasses (one per model family, see
    :mod:`tcig.models.families`) give ``network_output``, the conditioning, and the way between images and the
    model's space; this class does classifier-free guidance and turns any prediction into ``x̂0``.

    Attributes a subclass sets: ``network`` (the UNet or transformer), ``schedule``, ``prediction`` (one of
    :data:`PREDICTIONS`), ``vae`` (None for image-space models)."""

    network: nn.Module
    schedule: VPSchedule | FlowSchedule
    prediction: str
    vae: nn.Module | None = None

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    # -- the model's space ------------------------------------------------------------------------------------
    @property
    def latent_factor(self) -> int:
        """Pixels per latent position (1 for image-space models)."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """What image sides must be a multiple of."""
        return self.latent_factor

    def shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        channels = self.network.config.in_channels if self.vae is None else self.vae.config.latent_channels
        return (batch, channels, height // self.latent_factor, width // self.latent_factor)

    def tokens(self, shape: tuple[int, ...]) -> int:
        """The sequence length a transformer sees for a latent of ``shape`` (for resolution-dependent shifts)."""
        return shape[-2] * shape[-1]

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [0, 1] to the model's space (VAE latents, shifted and scaled as the model was trained)."""
        x = (images * 2 - 1).to(self.device)
        if self.vae is None:
            return x.to(self.dtype)
        vae_dtype = next(self.vae.parameters()).dtype
        latents = self.vae.encode(x.to(vae_dtype)).latent_dist.sample(generator=generator)
        shift = self.vae.config.get("shift_factor") or 0.0
        return ((latents - shift) * self.vae.config.scaling_factor).to(self.dtype)

    def decode(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """The model's space to images in [0, 1]; differentiable (guidance backpropagates through it, unclamped)."""
        if self.vae is not None:
            vae_dtype = next(self.vae.parameters()).dtype
            shift = self.vae.config.get("shift_factor") or 0.0
            x = self.vae.decode((x / self.vae.config.scaling_factor + shift).to(vae_dtype)).sample
        images = (x.float() + 1) / 2
        return images.clamp(0, 1) if clamp else images

    # -- conditioning and prediction --------------------------------------------------------------------------
    def conditioning(
        self, prompts: list[str], negative: str | None, guidance_scale: float, size: tuple[int, int]
    ) -> Conditioning:
        """The conditioning of ``prompts`` for images of ``size`` (height, width)."""
        raise NotImplementedError

    def network_output(self, x: torch.Tensor, level: Level, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The raw network prediction for ``x`` (a batch as large as the tensors')."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, level: Level, cond: Conditioning) -> torch.Tensor:
        """``x̂0`` for ``x`` at ``level`` (float32), classifier-free guided when ``cond`` is doubled."""
        model_in = torch.cat([x, x]) if cond.doubled else x
        out = self.network_output(model_in.to(self.dtype), level, cond.tensors).float()
        if cond.doubled:
            uncond, text = out.chunk(2)
            out = uncond + cond.scale * (text - uncond)
        return clean_from(self.prediction, x.float(), out, level)

    def start(
        self,
        levels: list[Level],
        generator: torch.Generator | list[torch.Generator] | None,
        images: torch.Tensor | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """Pure noise of ``shape`` (text-to-image; ``generator`` may be a list, one per image), or ``images`` encoded
        and noised to ``levels[0]``."""
        if isinstance(generator, list):
            if images is not None or len(generator) != shape[0]:
                raise ValueError("a list of generators needs text-to-image with one generator per image")
            noise = torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in generator]).to(self.device)
            return noise.to(self.dtype)
        x0 = self.encode(images, generator) if images is not None else None
        noise = torch.randn(x0.shape if x0 is not None else shape, generator=generator).to(self.device)
        if x0 is None:
            return noise.to(self.dtype)
        return renoise(x0.float(), noise, levels[0]).to(self.dtype)


def clean_from(prediction: str, x: torch.Tensor, out: torch.Tensor, level: Level) -> torch.Tensor:
    """``x̂0`` from a network's ``out`` for ``x = alpha·x0 + sigma·noise``."""
    a, s = level.alpha, level.sigma
    if prediction == "epsilon":
        return (x - s * out) / a
    if prediction == "v_prediction":  # v = a·ε − s·x0, with a² + s² = 1
        return a * x - s * out
    if prediction == "sample":
        return out
    if prediction == "flow":  # velocity noise − x0, with a + s = 1
        return x - s * out
    raise ConfigError(f"unknown prediction type '{prediction}'; one of {', '.join(PREDICTIONS)}")


def renoise(x0: torch.Tensor, noise: torch.Tensor, level: Level) -> torch.Tensor:
    """``x0`` noised to ``level``."""
    return level.alpha * x0 + level.sigma * noise.to(x0.dtype)


def step(x: torch.Tensor, x0: torch.Tensor, here: Level, there: Level) -> torch.Tensor:
    """One deterministic step from ``here`` to ``there`` (DDIM on VP schedules, Euler on flow matching)."""
    eps = (x.float() - here.alpha * x0) / here.sigma
    return there.alpha * x0 + there.sigma * eps


X0Fn = Callable[[torch.Tensor, Level], torch.Tensor]
"""``x̂0`` of a noisy batch at a level: the plain denoiser, or guided or regional variants of it."""


def plain(den: Denoiser, cond: Conditioning) -> X0Fn:
    return lambda x, level: den(x, level, cond)


def sample(
    den: Denoiser,
    x: torch.Tensor,
    levels: list[Level],
    predict: X0Fn,
    progress: bool = True,
    desc: str = "denoise",
    callback: StepCallback | None = None,
    repeats: int = 1,
    repeat_steps: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """From ``x`` at ``levels[0]`` down the levels with ``predict``; returns images in [0, 1].

    Time travel (Universal Guidance's recurrence, Bansal et al. 2023; FreeDoM, Yu et al. 2023): each of the first
    ``repeat_steps`` steps is taken ``repeats`` times, the result noised back to the step's level between tries
    (with ``generator``), so that a guided prediction can correct itself before the sampler moves on.
    ``callback(step, steps)`` runs after every step (it may raise to stop the loop)."""
    steps = len(levels) - 1
    with torch.no_grad():
        for i in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            tries = repeats if i < repeat_steps else 1
            for attempt in range(tries):
                x0 = predict(x, levels[i])
                x_next = step(x, x0, levels[i], levels[i + 1])
                if attempt + 1 < tries:
                    noise = torch.randn(x.shape, generator=generator).to(x.device)
                    x = noise_back(x_next.float(), levels[i + 1], levels[i], noise).to(den.dtype)
            x = x_next.to(den.dtype)
            if callback is not None:
                callback(i + 1, steps)
        return den.decode(x)


def noise_back(x: torch.Tensor, there: Level, here: Level, noise: torch.Tensor) -> torch.Tensor:
    """A sample at ``there`` moved to the noisier ``here`` along the forward process (``x = alpha·x0 +
    sigma·noise`` on both): ``x·r + sqrt(sigma_here² − r²·sigma_there²)·noise`` with ``r = alpha_here/alpha_there``."""
    ratio = here.alpha / there.alpha
    extra = max(here.sigma**2 - (ratio * there.sigma) ** 2, 0.0) ** 0.5
    return ratio * x + extra * noise.to(x.dtype)


def guided(
    den: Denoiser,
    cond: Conditioning,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    weight: float,
    min_noise_level: float = 0.0,
) -> X0Fn:
    """Forward universal guidance on ``x̂0``: decode it, score it with ``loss_fn`` (images in [0,1] to a scalar) and
    move it along the gradient of that loss w.r.t. ``x_t`` (through the network and the VAE), by Tweedie's formula
    ``x̂0 -= weight·sigma²/alpha·∇``; on a VP schedule this is ``ε̂ += weight·sigma·∇`` as in the paper.
    Levels below ``min_noise_level`` (flow-matching scale) are denoised unguided (the guidance schedule: the layout
    is decided early, the details late)."""

    def predict(x: torch.Tensor, level: Level) -> torch.Tensor:
        if level.noise_level < min_noise_level:
            return den(x, level, cond)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            x0 = den(x, level, cond)
            loss = loss_fn(den.decode(x0.to(den.dtype), clamp=False))
            (grad,) = torch.autograd.grad(loss, x)
        factor = weight * level.sigma**2 / max(level.alpha, MIN_ALPHA)
        return (x0 - factor * grad.float()).detach()

    return predict


def region_weights(label_map: torch.Tensor, num_regions: int, size: tuple[int, int]) -> torch.Tensor:
    """Soft region masks ``[R+1,1,h,w]`` at the model's resolution from a label map ``[H,W]`` (-1 = don't care):
    one per class and a last one for unlabelled pixels; they sum to 1 at every position."""
    one_hot = F.one_hot(label_map.clamp(min=-1) + 1, num_regions + 1).permute(2, 0, 1).float()
    one_hot = torch.cat([one_hot[1:], one_hot[:1]])  # the don't-care channel goes last
    masks = F.interpolate(one_hot[:, None], size=size, mode="area")
    return masks / masks.sum(dim=0, keepdim=True).clamp(min=1e-8)


def regional(
    den: Denoiser,
    region_conds: list[Conditioning],
    weights: torch.Tensor,
    *,
    backgrounds: torch.Tensor | None = None,
    bootstrap_steps: int = 0,
    generator: torch.Generator | None = None,
    base: Conditioning | None = None,
    base_weight: float = 0.0,
    region_steps: int | None = None,
) -> X0Fn:
    """MultiDiffusion with one prompt per region: each region's prompt predicts ``x̂0`` of the whole image and the
    predictions are blended with the region masks (with a deterministic step, the same as blending the updates).
    ``region_conds`` holds one conditioning per region, ``weights`` the masks ``[R,1,h,w]`` of
    :func:`region_weights`.

    Bootstrapping (MultiDiffusion Sec. 4.2): for the first ``bootstrap_steps`` steps each region sees, outside its
    mask, ``backgrounds[k]`` (a constant colour in model space) noised to the current level, which keeps an
    object inside its region instead of spreading over the image.

    ``base`` (the whole image's prompt) keeps the regions one picture: its prediction is mixed in with
    ``base_weight`` at every step (the "base ratio" of regional prompting), and after ``region_steps`` steps (None:
    never) it alone denoises the rest, once the regions have placed their content."""
    calls = [0]

    def predict(x: torch.Tensor, level: Level) -> torch.Tensor:
        bootstrapping = backgrounds is not None and calls[0] < bootstrap_steps
        regions_done = region_steps is not None and calls[0] >= region_steps
        calls[0] += 1
        if base is not None and (regions_done or base_weight >= 1):
            return den(x, level, base)
        whole = den(x, level, base) if base is not None and base_weight > 0 else None
        blended = torch.zeros(x.shape, device=x.device)
        for k, cond in enumerate(region_conds):
            view = x
            if bootstrapping:
                inside = (weights[k] > 0.5).to(x.dtype)
                noise = torch.randn(x.shape, generator=generator).to(x.device)
                background = renoise(backgrounds[k].float().expand(x.shape), noise, level)
                view = inside * x + (1 - inside) * background.to(x.dtype)
            if not weights[k].any():
                continue  # a region that covers nothing (don't care in a fully labelled layout)
            reuse = whole is not None and cond is base and view is x
            blended += weights[k].float() * (whole if reuse else den(view, level, cond))
        if whole is not None:
            blended = base_weight * whole + (1 - base_weight) * blended
        return blended

    return predict
