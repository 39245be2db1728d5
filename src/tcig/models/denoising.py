"""One denoising loop for every refiner, and the two baselines that change it: regional prompts and guidance.

A ``Denoiser`` hides whether the model works on pixels or on a VAE's latents: ``encode``/``decode`` move between
images in [0, 1] and the model's space, ``embed`` turns prompts into the UNet's conditioning and ``predict`` gives
the classifier-free-guided noise prediction. ``denoise`` runs a schedule from a starting point; ``regional_noise``
(MultiDiffusion, Bar-Tal et al. 2023) and ``guided_noise`` (Universal Guidance's forward guidance, Bansal et al.
2023) are noise predictions that plug into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tcig.errors import ConfigError

NoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, int], None]
"""Called as ``callback(step, steps)`` after each denoising step (1-based); raising stops the run."""


@dataclass
class Denoiser:
    """A conditional UNet predicting noise (epsilon), its scheduler, a prompt embedder and an optional VAE."""

    unet: nn.Module
    scheduler: object
    embed: Callable[[list[str]], torch.Tensor] | None
    vae: nn.Module | None = None

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        if self.vae is None:
            return (batch, self.unet.config.in_channels, height, width)
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return (batch, self.vae.config.latent_channels, height // factor, width // factor)

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = (images * 2 - 1).to(self.device, self.dtype)
        if self.vae is None:
            return x
        vae_dtype = next(self.vae.parameters()).dtype
        latents = self.vae.encode(x.to(vae_dtype)).latent_dist.sample(generator=generator)
        return (latents * self.vae.config.scaling_factor).to(self.dtype)

    def decode(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Model space to images in [0, 1]; differentiable (guidance backpropagates through it, unclamped)."""
        if self.vae is not None:
            vae_dtype = next(self.vae.parameters()).dtype
            x = self.vae.decode((x / self.vae.config.scaling_factor).to(vae_dtype)).sample
        images = (x.float() + 1) / 2
        return images.clamp(0, 1) if clamp else images

    def conditioning(self, prompts: list[str], negative: str | None, guidance_scale: float) -> torch.Tensor | None:
        """Prompt embeddings, with the unconditional ones first when classifier-free guidance is on."""
        if self.embed is None:
            return None
        cond = self.embed(prompts)
        if guidance_scale > 1:
            cond = torch.cat([self.embed([negative or ""] * len(prompts)), cond])
        return cond.to(self.dtype)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, guidance_scale: float):
        """Noise prediction for ``x``; ``cond`` from ``conditioning`` (twice the batch when guided)."""
        guided = cond is not None and cond.shape[0] == 2 * x.shape[0]
        model_in = torch.cat([x, x]) if guided else x
        if cond is None:
            pred = self.unet(model_in, t).sample
        else:
            pred = self.unet(model_in, t, encoder_hidden_states=cond).sample
        if guided:
            uncond, text = pred.chunk(2)
            pred = uncond + guidance_scale * (text - uncond)
        return pred

    def timesteps(self, steps: int, strength: float) -> torch.Tensor:
        """The last ``int(steps * strength)`` timesteps of a ``steps``-step schedule (SDEdit's start point)."""
        self.scheduler.set_timesteps(steps, device=self.device)
        return self.scheduler.timesteps[steps - int(steps * strength) :]

    def start(
        self,
        timesteps: torch.Tensor,
        generator: torch.Generator | None,
        images: torch.Tensor | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """Pure noise of ``shape`` (text-to-image), or ``images`` encoded and noised to the first timestep."""
        x0 = self.encode(images, generator) if images is not None else None
        noise = torch.randn(x0.shape if x0 is not None else shape, generator=generator).to(self.device)
        if x0 is None:
            return (noise * self.scheduler.init_noise_sigma).to(self.dtype)
        return self.scheduler.add_noise(x0, noise.to(x0.dtype), timesteps[:1]).to(self.dtype)


def plain_noise(denoiser: Denoiser, cond: torch.Tensor | None, guidance_scale: float) -> NoiseFn:
    """The model's own (classifier-free-guided) noise prediction."""
    return lambda x, t: denoiser.predict(x, t, cond, guidance_scale)


def denoise(
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    noise_fn: NoiseFn,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "denoise",
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Run the scheduler over ``timesteps`` with ``noise_fn(x, t)`` as the model; returns images in [0, 1].

    The loop follows the scheduler's interface: ``scale_model_input`` before every model call, then ``step``. It
    supports first-order schedulers of the variance-preserving family (DDIM, DDPM, PNDM's PLMS steps, ...), since
    the guidance and region blending read ``alphas_cumprod``; others are refused (see :func:`check_scheduler`).
    ``callback(step, steps)`` runs after every step (it may raise to stop the loop)."""
    scheduler = denoiser.scheduler
    check_scheduler(scheduler)
    with torch.no_grad():
        for i, t in enumerate(tqdm(timesteps, desc=desc, disable=not progress, leave=False)):
            eps = noise_fn(scheduler.scale_model_input(x, t), t)
            x = scheduler.step(eps, t, x, generator=generator).prev_sample.to(denoiser.dtype)
            if callback is not None:
                callback(i + 1, len(timesteps))
        return denoiser.decode(x)


def check_scheduler(scheduler) -> None:
    """Refuse a scheduler that tcig's own sampling loop would run wrongly: one of order > 1 (Heun, DPM-Solver-2),
    which calls the model several times per step, or one that does not start from unit-variance noise (Euler and
    other sigma-parameterized schedulers), whose inputs and x0 estimates the guidance does not model."""
    name = type(scheduler).__name__
    if getattr(scheduler, "order", 1) != 1:
        raise ConfigError(
            f"{name} is a scheduler of order {scheduler.order}; tcig's sampling loop (guided refinement, regional "
            "and guided baselines) needs a first-order one such as DDIMScheduler"
        )
    if float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0 or not hasattr(scheduler, "alphas_cumprod"):
        raise ConfigError(
            f"{name} is not a variance-preserving scheduler (init_noise_sigma "
            f"{float(getattr(scheduler, 'init_noise_sigma', 1.0)):g}); use one such as DDIMScheduler or DDPMScheduler"
        )


def region_weights(label_map: torch.Tensor, num_regions: int, size: tuple[int, int]) -> torch.Tensor:
    """Soft region masks ``[R+1,1,h,w]`` at the model's resolution from a label map ``[H,W]`` (-1 = don't care):
    one per class and a last one for unlabelled pixels; they sum to 1 at every position."""
    one_hot = F.one_hot(label_map.clamp(min=-1) + 1, num_regions + 1).permute(2, 0, 1).float()
    one_hot = torch.cat([one_hot[1:], one_hot[:1]])  # the don't-care channel goes last
    masks = F.interpolate(one_hot[:, None], size=size, mode="area")
    return masks / masks.sum(dim=0, keepdim=True).clamp(min=1e-8)


def regional_noise(
    denoiser: Denoiser,
    region_conds: list[torch.Tensor | None],
    weights: torch.Tensor,
    guidance_scale: float,
    *,
    backgrounds: torch.Tensor | None = None,
    bootstrap_steps: int = 0,
    generator: torch.Generator | None = None,
) -> NoiseFn:
    """MultiDiffusion with one prompt per region: each region's prompt predicts the noise of the whole image and
    the predictions are blended with the region masks. With a deterministic sampler (DDIM) blending the noise is
    the same as blending MultiDiffusion's per-region updates. ``region_conds`` holds one conditioning per region
    (from ``conditioning``), ``weights`` the region masks ``[R,1,h,w]`` from ``region_weights``.

    Bootstrapping (MultiDiffusion Sec. 4.2): for the first ``bootstrap_steps`` steps each region sees, outside its
    mask, ``backgrounds[k]`` (a constant colour in model space) noised to the current level, which keeps an
    object inside its region instead of spreading over the image."""
    calls = [0]

    def noise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        bootstrapping = backgrounds is not None and calls[0] < bootstrap_steps
        calls[0] += 1
        blended = torch.zeros_like(x)
        for k, cond in enumerate(region_conds):
            view = x
            if bootstrapping:
                inside = (weights[k] > 0.5).to(x.dtype)
                bg_noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
                background = denoiser.scheduler.add_noise(backgrounds[k].expand_as(x), bg_noise, t.reshape(1))
                view = inside * x + (1 - inside) * background.to(x.dtype)
            blended += weights[k].to(x.dtype) * denoiser.predict(view, t, cond, guidance_scale)
        return blended

    return noise


def guided_noise(
    denoiser: Denoiser,
    cond: torch.Tensor | None,
    guidance_scale: float,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    scale: float,
) -> NoiseFn:
    """Forward universal guidance: predict the clean image from ``x_t``, decode it, score it with ``loss_fn``
    (images in [0,1] to a scalar) and move the noise prediction along the loss gradient w.r.t. ``x_t`` (through
    the UNet and the VAE): ``eps += scale * sqrt(1 - alpha_bar_t) * grad``."""
    alphas = denoiser.scheduler.alphas_cumprod

    def noise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            eps = denoiser.predict(x, t, cond, guidance_scale)
            alpha = alphas[int(t)].to(x.device, torch.float32)
            x0 = (x.float() - (1 - alpha).sqrt() * eps.float()) / alpha.sqrt()
            loss = loss_fn(denoiser.decode(x0.to(x.dtype), clamp=False))
            (grad,) = torch.autograd.grad(loss, x)
        return (eps.float() + scale * (1 - alpha).sqrt() * grad.float()).to(eps.dtype).detach()

    return noise
