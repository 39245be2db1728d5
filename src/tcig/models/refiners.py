"""Stage 2 (quality): img2img / SDEdit refinement of the stage-1 image (Meng et al. 2022, SDEdit).

A refiner implements ``refine(images in [0,1], prompts, ...) -> images in [0,1]``. Two implementations:
any diffusers image-to-image pipeline (latent models: SD 1.x/2.x, SDXL, …) and an image-space (pixel) diffusion
model, a ``UNet2DConditionModel``/``UNet2DModel`` on pixels with a scheduler and an optional text encoder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from tcig.errors import ConfigError, ModelLoadError
from tcig.models.denoising import Denoiser, StepCallback, denoise, guided_noise, plain_noise
from tcig.models.loading import check_model_ref, is_local_ref, load_pretrained, read_json_config
from tcig.settings import Stage2Settings

logger = logging.getLogger(__name__)


Guidance = Callable[[torch.Tensor], torch.Tensor]
"""A differentiable loss of images ``[B,3,H,W]`` in [0,1] that guided refinement descends at every step."""


class Refiner(Protocol):
    """What stage 2 needs; ``vae`` is the latent model's autoencoder (None for image-space models). ``refine`` with a
    ``guidance`` loss follows its gradient at every denoising step, weighted by ``settings.seg_guidance``."""

    vae: nn.Module | None
    name: str

    def refine(
        self,
        images: torch.Tensor,
        prompts: list[str],
        settings: Stage2Settings,
        generator: torch.Generator | None = None,
        progress: bool = True,
        guidance: Guidance | None = None,
        callback: StepCallback | None = None,
    ) -> torch.Tensor: ...

    def text_to_image(
        self,
        prompts: list[str],
        height: int,
        width: int,
        settings: Stage2Settings,
        generator: torch.Generator | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
    ) -> torch.Tensor: ...

    def to(self, device: torch.device, dtype: torch.dtype | None = None): ...


class DiffusersImg2ImgRefiner:
    """Wraps any diffusers image-to-image pipeline, e.g. from ``AutoPipelineForImage2Image.from_pretrained``."""

    def __init__(self, pipeline, name: str = "refiner") -> None:
        self.pipeline = pipeline
        self.name = name
        self._text2image = None

    @classmethod
    def from_pretrained(cls, ref: str, *, allow_pickle: bool = False) -> DiffusersImg2ImgRefiner:
        from diffusers import AutoPipelineForImage2Image

        pipe = load_pretrained(AutoPipelineForImage2Image.from_pretrained, ref, "refiner", allow_pickle=allow_pickle)
        return cls(pipe, name=ref)

    @property
    def vae(self) -> nn.Module | None:
        return getattr(self.pipeline, "vae", None)

    def denoiser(self) -> Denoiser:
        """The pipeline's UNet, VAE and text encoder with a DDIM copy of its scheduler, for custom sampling loops
        (regional prompts, guidance). Stable Diffusion 1.x/2.x layout (one text encoder) only."""
        from diffusers import DDIMScheduler

        pipe = self.pipeline
        if getattr(pipe, "text_encoder_2", None) is not None or not hasattr(pipe, "encode_prompt"):
            raise ConfigError(
                f"{type(pipe).__name__} has no single text encoder; regional and guided sampling support "
                "Stable Diffusion 1.x/2.x-layout pipelines and image-space models"
            )
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)

        def embed(texts: list[str]) -> torch.Tensor:
            return pipe.encode_prompt(texts, pipe.device, 1, False)[0]

        return Denoiser(pipe.unet, scheduler, embed, pipe.vae)

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> DiffusersImg2ImgRefiner:
        self.pipeline.to(device, dtype) if dtype is not None else self.pipeline.to(device)
        return self

    @torch.no_grad()
    def refine(
        self,
        images: torch.Tensor,
        prompts: list[str],
        settings: Stage2Settings,
        generator: torch.Generator | None = None,
        progress: bool = True,
        guidance: Guidance | None = None,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        settings.check()
        if guidance is not None and settings.seg_guidance > 0:
            return sdedit(self.denoiser(), images, prompts, settings, generator, progress, guidance, callback=callback)
        dtype = self.vae.dtype if self.vae is not None else images.dtype
        image = images.to(self.pipeline.device, dtype)
        return _run(
            self.pipeline,
            "stage 2",
            prompts,
            settings,
            generator,
            progress,
            callback,
            image=image,
            strength=settings.strength,
        )

    @torch.no_grad()
    def text_to_image(
        self,
        prompts: list[str],
        height: int,
        width: int,
        settings: Stage2Settings,
        generator: torch.Generator | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """The same model without a layout: plain text-to-image with ``settings.steps`` steps (the baseline)."""
        from diffusers import AutoPipelineForText2Image

        if self._text2image is None:
            self._text2image = AutoPipelineForText2Image.from_pipe(self.pipeline)
        return _run(
            self._text2image,
            "text-to-image",
            prompts,
            settings,
            generator,
            progress,
            callback,
            height=height,
            width=width,
        )


def _run(
    pipeline,
    desc: str,
    prompts: list[str],
    settings: Stage2Settings,
    generator,
    progress: bool,
    callback: StepCallback | None = None,
    **inputs,
):
    """Call a diffusers pipeline with the shared settings; images ``[B,3,H,W]`` in [0,1], float32."""
    pipeline.set_progress_bar_config(disable=not progress, desc=desc, leave=False)
    negative = [settings.negative_prompt] * len(prompts) if settings.negative_prompt else None
    if callback is not None:

        def on_step_end(pipe, step: int, _t, tensors: dict) -> dict:
            callback(step + 1, getattr(pipe, "num_timesteps", None) or settings.steps)
            return tensors

        inputs["callback_on_step_end"] = on_step_end
    out = pipeline(
        prompt=prompts,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        negative_prompt=negative,
        generator=generator,
        output_type="pt",
        **inputs,
    )
    return out.images.float().clamp(0, 1)


class PixelSDEditRefiner:
    """SDEdit with an image-space diffusion model: noise the image to ``strength``, then denoise with the prompt."""

    vae = None

    def __init__(
        self, unet: nn.Module, scheduler, text_encoder: nn.Module | None = None, tokenizer=None, name: str = "refiner"
    ) -> None:
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.text_encoder = text_encoder.eval() if text_encoder is not None else None
        self.tokenizer = tokenizer
        self.name = name

    @classmethod
    def from_pretrained(cls, ref: str, *, allow_pickle: bool = False) -> PixelSDEditRefiner:
        """A folder with ``unet/`` and ``scheduler/``, and ``text_encoder/`` + ``tokenizer/`` when text-conditioned."""
        import diffusers
        from diffusers import UNet2DConditionModel, UNet2DModel
        from transformers import AutoTokenizer, CLIPTextModel

        unet_config = read_json_config(ref, "unet/config.json") or {}
        unet_class = UNet2DConditionModel if unet_config.get("_class_name") == "UNet2DConditionModel" else UNet2DModel
        unet = load_pretrained(
            unet_class.from_pretrained, ref, "refiner UNet", allow_pickle=allow_pickle, subfolder="unet"
        )
        scheduler_name = (read_json_config(ref, "scheduler/scheduler_config.json") or {}).get("_class_name", "")
        try:
            scheduler = getattr(diffusers, scheduler_name).from_pretrained(ref, subfolder="scheduler")
        except (AttributeError, OSError, ValueError) as err:
            raise ModelLoadError(f"could not load the refiner scheduler from '{ref}/scheduler': {err}") from err
        text_encoder = tokenizer = None
        if read_json_config(ref, "text_encoder/config.json") is not None:
            text_encoder = load_pretrained(
                CLIPTextModel.from_pretrained,
                ref,
                "refiner text encoder",
                allow_pickle=allow_pickle,
                subfolder="text_encoder",
            )
            tokenizer = AutoTokenizer.from_pretrained(ref, subfolder="tokenizer")
        return cls(unet, scheduler, text_encoder, tokenizer, name=ref)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the folder layout that ``from_pretrained`` reads (and ``model_index.json`` naming the parts)."""
        folder = Path(folder)
        parts = {
            "unet": self.unet,
            "scheduler": self.scheduler,
            "text_encoder": self.text_encoder,
            "tokenizer": self.tokenizer,
        }
        index = {"_class_name": "PixelSDEditRefiner"}
        for key, part in parts.items():
            if part is not None:
                part.save_pretrained(folder / key)
                index[key] = [type(part).__module__.split(".")[0], type(part).__name__]
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> PixelSDEditRefiner:
        for module in (self.unet, self.text_encoder):
            if module is not None:
                module.to(device, dtype) if dtype is not None else module.to(device)
        return self

    def _embed(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids.to(self.unet.device)
        return self.text_encoder(ids).last_hidden_state.to(self.unet.dtype)

    @torch.no_grad()
    def refine(
        self,
        images: torch.Tensor,
        prompts: list[str],
        settings: Stage2Settings,
        generator: torch.Generator | None = None,
        progress: bool = True,
        guidance: Guidance | None = None,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        settings.check()
        return sdedit(self.denoiser(), images, prompts, settings, generator, progress, guidance, callback=callback)

    @torch.no_grad()
    def text_to_image(
        self,
        prompts: list[str],
        height: int,
        width: int,
        settings: Stage2Settings,
        generator: torch.Generator | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """Sampling from pure noise with the whole schedule: the model alone, without a layout."""
        noise_only = replace(settings, strength=1.0)
        shape = (len(prompts), 3, height, width)
        return sdedit(self.denoiser(), None, prompts, noise_only, generator, progress, shape=shape, callback=callback)

    def denoiser(self) -> Denoiser:
        return Denoiser(self.unet, self.scheduler, self._embed if self.text_encoder is not None else None)


def sdedit(
    den: Denoiser,
    images: torch.Tensor | None,
    prompts: list[str],
    settings: Stage2Settings,
    generator: torch.Generator | None,
    progress: bool,
    guidance: Guidance | None = None,
    shape: tuple[int, ...] | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """SDEdit through the shared loop: ``images`` noised to ``settings.strength`` (or pure noise of ``shape``), then
    denoised with the prompts; with ``guidance``, each step follows its gradient (``settings.seg_guidance``)."""
    timesteps = den.timesteps(settings.steps, settings.strength)
    x = den.start(timesteps, generator, images=images, shape=shape)
    cond = den.conditioning(prompts, settings.negative_prompt, settings.guidance_scale)
    if guidance is not None and settings.seg_guidance > 0:
        noise_fn = guided_noise(den, cond, settings.guidance_scale, guidance, settings.seg_guidance)
    else:
        noise_fn = plain_noise(den, cond, settings.guidance_scale)
    return denoise(den, x, timesteps, noise_fn, generator, progress, desc="stage 2", callback=callback)


def load_refiner(ref: str, *, allow_pickle: bool = False) -> Refiner:
    """A diffusers img2img pipeline (folder with ``model_index.json`` and a VAE) or an image-space model folder."""
    ref = check_model_ref(ref, "refiner", allow_pickle=allow_pickle)
    index = read_json_config(ref, "model_index.json")
    if index is not None and "vae" in index:
        return DiffusersImg2ImgRefiner.from_pretrained(ref, allow_pickle=allow_pickle)
    if read_json_config(ref, "unet/config.json") is not None:
        return PixelSDEditRefiner.from_pretrained(ref, allow_pickle=allow_pickle)
    if is_local_ref(ref) and not (Path(ref) / "unet").is_dir():
        raise ModelLoadError(
            f"the refiner folder '{ref}' is neither a diffusers pipeline (model_index.json with a "
            "vae) nor an image-space model (unet/ and scheduler/)"
        )
    return DiffusersImg2ImgRefiner.from_pretrained(ref, allow_pickle=allow_pickle)
