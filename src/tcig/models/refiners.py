"""Stage 2 (quality): img2img / SDEdit refinement of the stage-1 image (Meng et al. 2022, SDEdit).

A refiner implements ``refine(images in [0,1], prompts, ...) -> images in [0,1]`` (same size out) and
``text_to_image``, both through tcig's own sampler on the model's denoiser (:mod:`tcig.models.denoising`). Two
kinds: diffusers pipelines of the families in :mod:`tcig.models.families` (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1) and
image-space (pixel) diffusion models, a ``UNet2DConditionModel``/``UNet2DModel`` on pixels with a scheduler and an
optional text encoder.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from tcig.errors import ConfigError, ModelLoadError
from tcig.models.denoising import Level, StepCallback, guided, plain, sample
from tcig.models.families import FamilyDenoiser, ImageSpace, denoiser_for, family_of
from tcig.models.loading import check_model_ref, is_local_ref, load_pretrained, read_json_config
from tcig.settings import Stage2Settings

logger = logging.getLogger(__name__)


Guidance = Callable[[torch.Tensor], torch.Tensor]
"""A differentiable loss of images ``[B,3,H,W]`` in [0,1] that guided refinement descends at every step."""


class SamplingRefiner:
    """Stage 2 through tcig's sampler (:mod:`tcig.models.denoising`) on a model family's denoiser: img2img, guided
    img2img and text-to-image all step along the model's own schedule with the same sampler, so methods compared in
    one evaluation differ in what they do, not in how they sample.

    What the model is, is declared by its family (:mod:`tcig.models.families`): ``size_multiple``,
    ``preferred_dtype``, ``guidance`` (``cfg``, ``distilled`` or ``none``) and ``default_guidance`` (used when
    ``Stage2Settings.guidance_scale`` is None)."""

    def __init__(self, den: FamilyDenoiser, name: str = "refiner") -> None:
        self._den = den
        self.name = name
        self._fingerprint: str | None = None

    def denoiser(self) -> FamilyDenoiser:
        """The model as ``x̂0 = D(x_t, level, cond)``, for custom sampling loops (regional prompts, guidance)."""
        return self._den

    @property
    def vae(self) -> nn.Module | None:
        return self._den.vae

    @property
    def size_multiple(self) -> int:
        return self._den.size_multiple

    @property
    def preferred_dtype(self) -> torch.dtype:
        return self._den.preferred_dtype

    @property
    def dtype(self) -> torch.dtype:
        return self._den.dtype

    @property
    def sampler(self) -> str:
        """The sampler every method of this refiner runs, e.g. ``DDIM on the variance preserving schedule``."""
        return f"{self._den.schedule.sampler} on the {self._den.schedule.kind} schedule"

    def describe(self) -> dict:
        """The declarations, for sidecars and reports."""
        den = self._den
        return {
            "family": den.family,
            "prediction": den.prediction,
            "sampler": self.sampler,
            "size_multiple": den.size_multiple,
            "latent_channels": den.latent_channels,
            "packed_latents": den.packed,
            "guidance": den.guidance,
            "default_guidance": den.default_guidance,
        }

    def networks(self) -> dict[str, nn.Module]:
        return self._den.networks()

    def fingerprint(self) -> str:
        """What identifies the images this refiner draws: its family, dtype, device type and memory format, and a
        digest of every weight tensor's name, shape and first and last values (a sample that differs between any
        two trained models, read in milliseconds; kept until :meth:`to`)."""
        if self._fingerprint is None:
            digest = hashlib.sha256(f"{self._den.family}|{self.dtype}|{self._den.device.type}".encode())
            for net_name, module in sorted(self.networks().items()):
                for name, tensor in module.state_dict().items():
                    flat = tensor.detach().reshape(-1)
                    ends = torch.cat([flat[:8], flat[-8:]]).float().cpu()
                    digest.update(f"{net_name}.{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
                    digest.update(ends.numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        convs = (p for m in self.networks().values() for p in m.parameters() if p.dim() == 4)
        first = next(convs, None)
        channels_last = first is not None and first.is_contiguous(memory_format=torch.channels_last)
        return f"{self._fingerprint}|{'channels-last' if channels_last else 'contiguous'}"

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> SamplingRefiner:
        """Move every network; a VAE that declares ``force_upcast`` stays in float32 under float16 (SD-XL's VAE
        overflows in float16)."""
        self._fingerprint = None
        for name, module in self.networks().items():
            keep_fp32 = name == "vae" and dtype == torch.float16 and module.config.get("force_upcast")
            module.to(device, torch.float32 if keep_fp32 else dtype) if dtype is not None else module.to(device)
        return self

    def guidance_scale(self, settings: Stage2Settings) -> float:
        return self._den.default_guidance if settings.guidance_scale is None else settings.guidance_scale

    def check(self, settings: Stage2Settings) -> None:
        """Refuse, before any work, settings this model cannot run (a negative prompt without classifier-free
        guidance)."""
        settings.check()
        self._den.check_guidance(settings.negative_prompt)

    def check_size(self, height: int, width: int) -> None:
        m = self.size_multiple
        if height % m or width % m:
            raise ConfigError(f"{self.name} needs image sides that are multiples of {m}, got {width}x{height}")

    def levels(self, settings: Stage2Settings, height: int, width: int) -> list[Level]:
        """The noise levels an img2img run with ``settings`` goes through for images of that size (the first is
        where it starts: ``noise_level`` when set, else ``strength`` of the schedule)."""
        den = self._den
        levels = den.schedule.levels(settings.steps, den.tokens(den.shape(1, height, width)))
        return levels[den.schedule.start_index(levels, settings.strength, settings.noise_level) :]

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
        """SDEdit: ``images`` ``[B,3,H,W]`` in [0,1] noised to the start level, then denoised with ``prompts``; with
        ``guidance`` and ``settings.seg_guidance > 0`` each step follows the loss's gradient. Same size out."""
        settings.check()
        height, width = images.shape[-2:]
        self.check_size(height, width)
        den = self._den
        levels = self.levels(settings, height, width)
        cond = den.conditioning(prompts, settings.negative_prompt, self.guidance_scale(settings), (height, width))
        x = den.start(levels, generator, images=images)
        if guidance is not None and settings.seg_guidance > 0:
            predict = guided(den, cond, guidance, settings.seg_guidance)
        else:
            predict = plain(den, cond)
        return sample(den, x, levels, predict, progress, "stage 2", callback)

    @torch.no_grad()
    def text_to_image(
        self,
        prompts: list[str],
        height: int,
        width: int,
        settings: Stage2Settings,
        generator: torch.Generator | list[torch.Generator] | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
        desc: str = "text-to-image",
    ) -> torch.Tensor:
        """The same model without a layout: sampling from pure noise over ``settings.steps`` steps (the baseline);
        ``generator`` may be a list with one generator per prompt; ``desc`` names the progress bar."""
        self.check_size(height, width)
        den = self._den
        levels = self.levels(settings.at_strength(1.0), height, width)
        cond = den.conditioning(prompts, settings.negative_prompt, self.guidance_scale(settings), (height, width))
        x = den.start(levels, generator, shape=den.shape(len(prompts), height, width))
        return sample(den, x, levels, plain(den, cond), progress, desc, callback)


class DiffusersImg2ImgRefiner(SamplingRefiner):
    """A diffusers pipeline (text-to-image or image-to-image: only its components and prompt encoders are used) of a
    family in :data:`~tcig.models.families.FAMILIES`: SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1, Chroma."""

    def __init__(self, pipeline, name: str = "refiner", max_sequence_length: int | None = None) -> None:
        super().__init__(denoiser_for(pipeline, name, max_sequence_length), name)
        self.pipeline = pipeline

    @classmethod
    def from_pretrained(
        cls, ref: str, *, allow_pickle: bool = False, max_sequence_length: int | None = None
    ) -> DiffusersImg2ImgRefiner:
        """The pipeline a hub id or folder holds (its ``model_index.json`` class), refused before anything loads
        when tcig has no wrapper for that class; ``max_sequence_length``: the T5 prompt length (SD3, FLUX.1)."""
        from diffusers import DiffusionPipeline

        index = read_json_config(ref, "model_index.json") or {}
        absent = {}
        if index.get("_class_name"):
            family_of(index["_class_name"], ref)
            required = _required_components(index["_class_name"])
            absent = {name: None for name in required if (index.get(name) or [None])[0] is None}
        pipe = load_pretrained(DiffusionPipeline.from_pretrained, ref, "refiner", allow_pickle=allow_pickle, **absent)
        return cls(pipe, name=ref, max_sequence_length=max_sequence_length)


def _required_components(pipeline_class: str) -> list[str]:
    """The components a diffusers pipeline class takes without a default. A folder that leaves one out (SD3 without
    its T5 encoder, as the bundled flow model) loads without it, as ``from_pretrained(..., text_encoder_3=None)``."""
    import diffusers

    signature = inspect.signature(getattr(diffusers, pipeline_class).__init__)
    return [n for n, p in signature.parameters.items() if n != "self" and p.default is inspect.Parameter.empty]


class PixelSDEditRefiner(SamplingRefiner):
    """SDEdit with an image-space diffusion model: noise the image to ``strength``, then denoise with the prompt."""

    def __init__(
        self, unet: nn.Module, scheduler, text_encoder: nn.Module | None = None, tokenizer=None, name: str = "refiner"
    ) -> None:
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.text_encoder = text_encoder.eval() if text_encoder is not None else None
        self.tokenizer = tokenizer
        super().__init__(ImageSpace(self.unet, scheduler, self.text_encoder, tokenizer), name)

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


Refiner = SamplingRefiner
"""What stage 2 needs (``vae`` is None for image-space models)."""


def load_refiner(ref: str, *, allow_pickle: bool = False, max_sequence_length: int | None = None) -> Refiner:
    """A diffusers pipeline (folder with ``model_index.json`` and a VAE, or a hub id) or an image-space model folder;
    ``max_sequence_length``: the T5 prompt length of SD3 and FLUX.1 pipelines (None: the family's)."""
    ref = check_model_ref(ref, "refiner", allow_pickle=allow_pickle)
    index = read_json_config(ref, "model_index.json")
    diffusers_options = {"allow_pickle": allow_pickle, "max_sequence_length": max_sequence_length}
    if index is not None and "vae" in index:
        return DiffusersImg2ImgRefiner.from_pretrained(ref, **diffusers_options)
    if read_json_config(ref, "unet/config.json") is not None:
        if max_sequence_length is not None:
            raise ConfigError(f"the image-space refiner '{ref}' has no T5 encoder; drop max_sequence_length")
        return PixelSDEditRefiner.from_pretrained(ref, allow_pickle=allow_pickle)
    if is_local_ref(ref) and not (Path(ref) / "unet").is_dir():
        raise ModelLoadError(
            f"the refiner folder '{ref}' is neither a diffusers pipeline (model_index.json with a "
            "vae) nor an image-space model (unet/ and scheduler/)"
        )
    return DiffusersImg2ImgRefiner.from_pretrained(ref, **diffusers_options)
