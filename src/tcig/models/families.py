"""The model families tcig samples, each wrapped as a :class:`~tcig.models.denoising.Denoiser`, and the registry
that maps a diffusers pipeline class to its family.

Each family declares what a caller needs to know without looking inside the model: the side multiple of its images,
its preferred half-precision dtype, its latent channels and packing, and its kind of guidance — classifier-free
guidance with a negative prompt (``cfg``), a guidance value distilled into the network (``distilled``, FLUX.1-dev),
or none (``none``, FLUX.1-schnell). The pipelines are used as containers of components and for their prompt
encoders; sampling is tcig's own (:mod:`tcig.models.denoising`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from tcig.errors import ConfigError, ModelLoadError
from tcig.models.denoising import PREDICTIONS, Conditioning, Denoiser, Level, schedule_of

GuidanceKind = Literal["cfg", "distilled", "none"]


class FamilyDenoiser(Denoiser):
    """What every family declares (class attributes a family overrides)."""

    family = "diffusion model"
    preferred_dtype = torch.float16
    """The half precision the model is released in (``--dtype auto`` on a GPU)."""
    guidance: GuidanceKind = "cfg"
    default_guidance = 7.5
    packed = False
    """Whether the network sees 2×2 patches of latents packed into tokens (FLUX)."""
    text_tokens: int | None = None
    """The T5 sequence length the family's pipeline pads prompts to (SD3: 256, FLUX.1: 512); None without a T5 slot.
    A model set may declare another (``max_sequence_length``: FLUX.1-schnell was trained with 256)."""

    def networks(self) -> dict[str, nn.Module]:
        """Every module the model runs, by name (for device moves, compilation and memory formats)."""
        raise NotImplementedError

    @property
    def latent_channels(self) -> int:
        return self.shape(1, self.size_multiple, self.size_multiple)[1]

    def check_guidance(self, negative: str | None) -> None:
        if negative and self.guidance != "cfg":
            raise ConfigError(
                f"{self.family} has {'distilled' if self.guidance == 'distilled' else 'no'} guidance and no negative "
                "prompt; drop --negative-prompt"
            )

    def _cfg(self, conds: list[torch.Tensor], negatives: list[torch.Tensor] | None, scale: float, names: list[str]):
        """Conditioning tensors by name, the negative ones first when classifier-free guidance runs."""
        doubled = negatives is not None
        tensors = {
            name: torch.cat([neg, pos]) if doubled else pos
            for name, pos, neg in zip(names, conds, negatives or conds, strict=True)
        }
        return Conditioning({k: v.to(self.device) for k, v in tensors.items()}, scale, doubled)


def _prediction(config, default: str = "epsilon") -> str:
    prediction = config.get("prediction_type", default) or default
    if prediction not in PREDICTIONS:
        raise ConfigError(f"the scheduler's prediction type '{prediction}' is not one of {', '.join(PREDICTIONS)}")
    return prediction


class PipelineDenoiser(FamilyDenoiser):
    """A family held by a diffusers pipeline: its ``network_name`` network on its VAE's latents; a ``flow`` family
    predicts flow-matching velocities, the others what their scheduler's ``prediction_type`` says."""

    network_name = "unet"
    flow = False
    linear_sigmas = False
    """See :class:`~tcig.models.denoising.FlowSchedule`."""

    def __init__(self, pipe, max_sequence_length: int | None = None) -> None:
        if max_sequence_length is not None:
            if self.text_tokens is None:
                raise ConfigError(f"{self.family} has no T5 encoder; drop max_sequence_length from the model set")
            self.text_tokens = max_sequence_length
        self.pipe = pipe
        self.network = getattr(pipe, self.network_name)
        self.vae = pipe.vae
        self.prediction = "flow" if self.flow else _prediction(pipe.scheduler.config)
        self.schedule = schedule_of(pipe.scheduler, self.prediction, self.linear_sigmas)

    def networks(self) -> dict[str, nn.Module]:
        names = (self.network_name, "vae", "text_encoder", "text_encoder_2", "text_encoder_3")
        return {name: getattr(self.pipe, name) for name in names if getattr(self.pipe, name, None) is not None}


class StableDiffusion(PipelineDenoiser):
    """Stable Diffusion 1.x/2.x: a ``UNet2DConditionModel`` on VAE latents, ε- or v-prediction (SD 2.x 768-v)."""

    family = "Stable Diffusion"

    def conditioning(self, prompts, negative, guidance_scale, size) -> Conditioning:
        cfg = guidance_scale > 1
        pos, neg = self.pipe.encode_prompt(prompts, self.device, 1, cfg, [negative or ""] * len(prompts))
        return self._cfg([pos], [neg] if cfg else None, guidance_scale, ["encoder_hidden_states"])

    def network_output(self, x, level: Level, tensors) -> torch.Tensor:
        t = torch.tensor(int(level.t), device=x.device)
        return self.network(x, t, encoder_hidden_states=tensors["encoder_hidden_states"]).sample


class StableDiffusionXL(StableDiffusion):
    """SDXL (base or refiner): two text encoders, pooled embeddings and size conditioning."""

    family = "Stable Diffusion XL"
    default_guidance = 5.0

    def conditioning(self, prompts, negative, guidance_scale, size) -> Conditioning:
        cfg = guidance_scale > 1
        pos, neg, pooled, neg_pooled = self.pipe.encode_prompt(
            prompts, None, self.device, 1, cfg, [negative] * len(prompts) if negative else None
        )
        if self.pipe.config.get("requires_aesthetics_score"):  # the SDXL refiner: aesthetic scores, not a size
            ids, neg_ids = [*size, 0, 0, 6.0], [*size, 0, 0, 2.5]
        else:
            ids = neg_ids = [*size, 0, 0, *size]
        time_ids = torch.tensor([ids] * len(prompts), dtype=pos.dtype)
        neg_time_ids = torch.tensor([neg_ids] * len(prompts), dtype=pos.dtype)
        names = ["encoder_hidden_states", "text_embeds", "time_ids"]
        return self._cfg([pos, pooled, time_ids], [neg, neg_pooled, neg_time_ids] if cfg else None, guidance_scale,
                         names)  # fmt: skip

    def network_output(self, x, level: Level, tensors) -> torch.Tensor:
        t = torch.tensor(int(level.t), device=x.device)
        added = {"text_embeds": tensors["text_embeds"], "time_ids": tensors["time_ids"]}
        return self.network(
            x, t, encoder_hidden_states=tensors["encoder_hidden_states"], added_cond_kwargs=added
        ).sample


class StableDiffusion3(PipelineDenoiser):
    """SD3 / SD3.5: an MMDiT (``SD3Transformer2DModel``) on 16-channel latents with ``shift_factor``, rectified flow
    with a static shift, three text encoders (T5 optional)."""

    family = "Stable Diffusion 3"
    network_name = "transformer"
    flow = True
    preferred_dtype = torch.bfloat16
    default_guidance = 7.0
    text_tokens = 256

    @property
    def size_multiple(self) -> int:
        return self.latent_factor * self.network.config.patch_size

    def tokens(self, shape) -> int:
        p = self.network.config.patch_size
        return (shape[-2] // p) * (shape[-1] // p)

    def conditioning(self, prompts, negative, guidance_scale, size) -> Conditioning:
        cfg = guidance_scale > 1
        pos, neg, pooled, neg_pooled = self.pipe.encode_prompt(
            prompts, None, None, self.device, 1, cfg, [negative or ""] * len(prompts),
            max_sequence_length=self.text_tokens,
        )  # fmt: skip
        names = ["encoder_hidden_states", "pooled_projections"]
        return self._cfg([pos, pooled], [neg, neg_pooled] if cfg else None, guidance_scale, names)

    def network_output(self, x, level: Level, tensors) -> torch.Tensor:
        t = torch.full((x.shape[0],), level.t, device=x.device)  # float32, as SD3's pipeline passes it
        return self.network(hidden_states=x, timestep=t, **tensors).sample


class Flux(PipelineDenoiser):
    """FLUX.1 (schnell and dev): a ``FluxTransformer2DModel`` on 2×2-packed 16-channel latents, rectified flow with
    a resolution-dependent shift, CLIP + T5 text encoders; dev takes a distilled guidance value, schnell none."""

    family = "FLUX.1"
    network_name = "transformer"
    flow = True
    linear_sigmas = True
    preferred_dtype = torch.bfloat16
    packed = True
    text_tokens = 512

    def __init__(self, pipe, max_sequence_length: int | None = None) -> None:
        super().__init__(pipe, max_sequence_length)
        distilled = bool(self.network.config.get("guidance_embeds"))
        self.guidance = "distilled" if distilled else "none"
        self.default_guidance = 3.5 if distilled else 0.0
        self.family = "FLUX.1-dev" if distilled else "FLUX.1-schnell"

    @property
    def size_multiple(self) -> int:
        return self.latent_factor * 2

    def tokens(self, shape) -> int:
        return (shape[-2] // 2) * (shape[-1] // 2)

    def conditioning(self, prompts, negative, guidance_scale, size) -> Conditioning:
        self.check_guidance(negative)
        pos, pooled, _ = self.pipe.encode_prompt(prompts, None, self.device, 1, max_sequence_length=self.text_tokens)
        tensors = {"encoder_hidden_states": pos, "pooled_projections": pooled}
        if self.guidance == "distilled":
            tensors["guidance"] = torch.full((len(prompts),), float(guidance_scale))
        return Conditioning({k: v.to(self.device) for k, v in tensors.items()})

    def network_output(self, x, level: Level, tensors) -> torch.Tensor:
        packed, img_ids = _pack(x)
        text = tensors["encoder_hidden_states"]
        out = self.network(
            hidden_states=packed,
            timestep=torch.full((x.shape[0],), level.t / 1000, device=x.device, dtype=x.dtype),
            encoder_hidden_states=text,
            txt_ids=torch.zeros(text.shape[1], 3, device=x.device, dtype=x.dtype),
            img_ids=img_ids,
            **self._text_inputs(tensors, packed.shape[1]),
        ).sample
        return _unpack(out, x.shape)

    def _text_inputs(self, tensors: dict[str, torch.Tensor], image_tokens: int) -> dict:
        """The transformer's inputs besides the tokens: the pooled CLIP embedding and the distilled guidance."""
        return {"guidance": tensors.get("guidance"), "pooled_projections": tensors["pooled_projections"]}


class Chroma(Flux):
    """Chroma: FLUX.1-schnell's architecture re-trained with a T5 encoder only (``ChromaTransformer2DModel``),
    classifier-free guidance with a negative prompt and a text attention mask."""

    family = "Chroma"
    default_guidance = 5.0

    def __init__(self, pipe, max_sequence_length: int | None = None) -> None:
        PipelineDenoiser.__init__(self, pipe, max_sequence_length)  # not FLUX.1's: Chroma has no distilled guidance

    def conditioning(self, prompts, negative, guidance_scale, size) -> Conditioning:
        cfg = guidance_scale > 1
        pos, _, mask, neg, _, neg_mask = self.pipe.encode_prompt(
            prompts, [negative or ""] * len(prompts), self.device, 1, do_classifier_free_guidance=cfg,
            max_sequence_length=self.text_tokens,
        )  # fmt: skip
        names = ["encoder_hidden_states", "attention_mask"]
        return self._cfg([pos, mask], [neg, neg_mask] if cfg else None, guidance_scale, names)

    def _text_inputs(self, tensors: dict[str, torch.Tensor], image_tokens: int) -> dict:
        """The text attention mask, extended over the image tokens (always attended)."""
        mask = tensors["attention_mask"]
        image = torch.ones(mask.shape[0], image_tokens, device=mask.device, dtype=mask.dtype)
        return {"attention_mask": torch.cat([mask, image], dim=1).to(self.dtype)}


def _pack(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents ``[B,C,h,w]`` as FLUX's tokens ``[B, h·w/4, 4C]`` (2×2 patches) and their position ids."""
    b, c, h, w = x.shape
    packed = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w // 4, c * 4)
    ids = torch.zeros(h // 2, w // 2, 3, device=x.device, dtype=x.dtype)
    ids[..., 1] += torch.arange(h // 2, device=x.device, dtype=x.dtype)[:, None]
    ids[..., 2] += torch.arange(w // 2, device=x.device, dtype=x.dtype)[None, :]
    return packed, ids.reshape(-1, 3)


def _unpack(tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    b, c, h, w = shape
    return tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


class ImageSpace(FamilyDenoiser):
    """An image-space (pixel) diffusion model: a ``UNet2DConditionModel`` with its own text encoder, or an
    unconditional ``UNet2DModel``, on a variance-preserving schedule."""

    family = "image-space diffusion"

    def __init__(self, unet: nn.Module, scheduler, text_encoder: nn.Module | None = None, tokenizer=None) -> None:
        self.network = unet
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.prediction = _prediction(scheduler.config)
        self.schedule = schedule_of(scheduler, self.prediction)
        if text_encoder is None:
            self.guidance = "none"

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.network.config.block_out_channels) - 1)

    def networks(self) -> dict[str, nn.Module]:
        return {k: m for k, m in (("unet", self.network), ("text_encoder", self.text_encoder)) if m is not None}

    def _embed(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids.to(self.device)
        return self.text_encoder(ids).last_hidden_state.to(self.dtype)

    def conditioning(self, prompts, negative, guidance_scale, size) -> Conditioning:
        if self.text_encoder is None:
            self.check_guidance(negative)
            return Conditioning()
        cfg = guidance_scale > 1
        neg = self._embed([negative or ""] * len(prompts)) if cfg else None
        return self._cfg([self._embed(prompts)], [neg] if cfg else None, guidance_scale, ["encoder_hidden_states"])

    def network_output(self, x, level: Level, tensors) -> torch.Tensor:
        t = torch.tensor(int(level.t), device=x.device)
        if "encoder_hidden_states" in tensors:
            return self.network(x, t, encoder_hidden_states=tensors["encoder_hidden_states"]).sample
        return self.network(x, t).sample


FAMILIES: dict[str, type[FamilyDenoiser]] = {
    "StableDiffusionImg2ImgPipeline": StableDiffusion,
    "StableDiffusionPipeline": StableDiffusion,
    "StableDiffusionXLImg2ImgPipeline": StableDiffusionXL,
    "StableDiffusionXLPipeline": StableDiffusionXL,
    "StableDiffusion3Img2ImgPipeline": StableDiffusion3,
    "StableDiffusion3Pipeline": StableDiffusion3,
    "FluxImg2ImgPipeline": Flux,
    "FluxPipeline": Flux,
    "ChromaImg2ImgPipeline": Chroma,
    "ChromaPipeline": Chroma,
}
"""The diffusers pipeline classes tcig samples, by class name, and the family that wraps each."""


def family_of(pipeline_class: str, name: str) -> type[FamilyDenoiser]:
    """The family of a diffusers pipeline class (by name); another class is refused in one line."""
    family = FAMILIES.get(pipeline_class)
    if family is None:
        known = ", ".join(dict.fromkeys(f.family for f in FAMILIES.values()))
        raise ModelLoadError(
            f"the refiner '{name}' is a {pipeline_class}, which tcig cannot sample: it wraps {known} pipelines and "
            "image-space models"
        )
    return family


def denoiser_for(pipe, name: str, max_sequence_length: int | None = None) -> FamilyDenoiser:
    """The family wrapper of a diffusers pipeline (see :func:`family_of`); ``max_sequence_length`` replaces the
    family's T5 prompt length."""
    return family_of(type(pipe).__name__, name)(pipe, max_sequence_length)
