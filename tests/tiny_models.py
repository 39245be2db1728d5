"""Tiny random models saved with ``save_pretrained``, so tests load them through the real ``from_pretrained`` paths.

Nothing here downloads: configs are built in code, and the CLIP tokenizer gets a byte-level vocabulary
written on the spot (DESIGN.md §5).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SEG_LABELS = ["wall", "building", "sky", "floor", "tree", "sea", "boat", "sand"]
M2F_LABELS = ["sky", "sea", "boat", "tree", "grass"]
BOAT_SPEC = {
    "prompt": "a boat on the sea under the sky",
    "size": [64, 48],
    "background": "sky",
    "regions": [
        {"class": "sea", "shape": "rectangle", "box": [0, 24, 64, 48]},
        {"class": "boat", "shape": "ellipse", "box": [16, 28, 48, 40], "text": "a red boat"},
    ],
}
"""A JSON layout spec in the tiny models' classes."""


def byte_level_tokenizer(folder: Path):
    """A CLIPTokenizer over the 256 byte symbols (+ ``</w>`` forms) with no merges."""
    from transformers import CLIPTokenizer

    from tcig.scenes.tokenizer import write_tokenizer_files

    write_tokenizer_files(folder, merges=[])
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def text_config(tokenizer) -> dict:
    from tcig.scenes.architectures import text_config as scenes_text_config

    return scenes_text_config(tokenizer, hidden_size=32, intermediate_size=37, num_hidden_layers=2)


def vision_config(image_size: int = 32) -> dict:
    return dict(
        image_size=image_size,
        patch_size=4,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
    )


def save_clip(folder: Path, tokenizer) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text_config(tokenizer), vision_config=vision_config(), projection_dim=16))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_segformer(folder: Path, labels: list[str] = SEG_LABELS, input_size: int = 64) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(
        depths=[1, 1, 1, 1],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 16, 16, 16],
        num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16,
        num_labels=len(labels),
        initializer_range=0.3,
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    processor = {
        "image_processor_type": "SegformerImageProcessor",
        "do_resize": True,
        "size": {"height": input_size, "width": input_size},
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def save_mask2former(folder: Path, labels: list[str] = M2F_LABELS) -> Path:
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

    torch.manual_seed(0)
    backbone = dict(
        model_type="swin",
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        image_size=64,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone,
        hidden_dim=32,
        feature_size=32,
        mask_feature_size=32,
        encoder_feedforward_dim=32,
        dim_feedforward=32,
        num_queries=6,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        use_pretrained_backbone=False,
    )
    Mask2FormerForUniversalSegmentation(config).save_pretrained(folder)
    return folder


def save_clipseg(folder: Path, tokenizer) -> Path:
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    torch.manual_seed(0)
    config = CLIPSegConfig(
        text_config=text_config(tokenizer),
        vision_config=vision_config(),
        projection_dim=16,
        extract_layers=[0, 1],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _unet(in_channels: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )


def _text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    return CLIPTextModel(CLIPTextConfig(**text_config(tokenizer)))


def _scheduler(prediction_type: str = "epsilon", cls: str = "DDIMScheduler"):
    import diffusers

    config = dict(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )
    return getattr(diffusers, cls).from_config(config)  # keys a scheduler does not take are left out


def _vae(latent_channels: int = 4, blocks: int = 2, **extra):
    """A tiny ``AutoencoderKL``: 2 blocks (latents at 1/2 of the image) or 4 (1/8, as the real ones)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=[32, 64] if blocks == 2 else [8, 16, 16, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * blocks,
        up_block_types=["UpDecoderBlock2D"] * blocks,
        latent_channels=latent_channels,
        norm_num_groups=32 if blocks == 2 else 8,
        **extra,
    )


def save_latent_diffusion(folder: Path, tokenizer, prediction_type: str = "epsilon") -> Path:
    """A Stable-Diffusion-layout img2img pipeline (VAE, UNet, text encoder, tokenizer, scheduler); ε- or
    v-prediction (SD 2.x 768-v) by the scheduler's ``prediction_type``."""
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline(
        vae=_vae(),
        unet=_unet(4),
        text_encoder=_text_encoder(tokenizer),
        tokenizer=tokenizer,
        scheduler=_scheduler(prediction_type, "PNDMScheduler" if prediction_type == "epsilon" else "DDIMScheduler"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def _text_encoder_with_projection(tokenizer, projection_dim: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    return CLIPTextModelWithProjection(CLIPTextConfig(**text_config(tokenizer), projection_dim=projection_dim))


def _t5(tokenizer):
    """A tiny T5 encoder (DESIGN.md §5); the byte-level CLIP tokenizer fills its tokenizer slot."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(
        d_model=32,
        d_kv=4,
        d_ff=16,
        num_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        vocab_size=len(tokenizer),
        feed_forward_proj="gated-gelu",
    )
    return T5EncoderModel(config)


def save_sdxl(folder: Path, tokenizer) -> Path:
    """An SDXL img2img pipeline: two text encoders (the second with a projection), size conditioning."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
    )
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=_vae(),
        unet=unet,
        text_encoder=_text_encoder(tokenizer),
        text_encoder_2=_text_encoder_with_projection(tokenizer),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=_scheduler(cls="EulerDiscreteScheduler"),
        requires_aesthetics_score=False,
    )
    pipe.save_pretrained(folder)
    return folder


def save_sd3(folder: Path, tokenizer) -> Path:
    """An SD3 img2img pipeline: MMDiT with 2×2 patches on 16 latent channels (``shift_factor`` as SD3's), a VAE at
    1/8, two CLIP encoders and a T5, flow matching with shift 3."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Img2ImgPipeline

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        out_channels=16,
    )
    vae = _vae(16, 4, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5305)
    pipe = StableDiffusion3Img2ImgPipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=_text_encoder_with_projection(tokenizer),
        text_encoder_2=_text_encoder_with_projection(tokenizer),
        text_encoder_3=_t5(tokenizer),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        tokenizer_3=tokenizer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    pipe.save_pretrained(folder)
    return folder


FLUX_TINY = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    axes_dims_rope=[4, 4, 8],
)
"""FLUX's transformer at tiny size (diffusers' test rules: ``sum(axes_dims_rope) == attention_head_dim``,
``in_channels`` = 4 × the VAE's 16 channels for the 2×2 packing); Chroma shares it."""


def _flux_vae():
    return _vae(16, 4, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)


def save_flux(folder: Path, tokenizer, dev: bool = False) -> Path:
    """A FLUX.1 img2img pipeline: 2×2-packed 16-channel latents of a VAE at 1/8 (FLUX's ``shift_factor``), CLIP and
    T5; ``dev``: a distilled guidance embedding and the resolution-dependent shift, else schnell's static one."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxImg2ImgPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(**FLUX_TINY, pooled_projection_dim=32, guidance_embeds=dev)
    if dev:
        scheduler = FlowMatchEulerDiscreteScheduler(
            use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096
        )
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    pipe = FluxImg2ImgPipeline(
        transformer=transformer,
        vae=_flux_vae(),
        text_encoder=_text_encoder(tokenizer),
        text_encoder_2=_t5(tokenizer),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(folder)
    return folder


def save_chroma(folder: Path, tokenizer) -> Path:
    """A Chroma img2img pipeline: FLUX's packed latents and schedule, a T5 encoder only, classifier-free guidance."""
    from diffusers import ChromaImg2ImgPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    torch.manual_seed(0)
    transformer = ChromaTransformer2DModel(
        **FLUX_TINY, approximator_hidden_dim=32, approximator_layers=1, approximator_num_channels=16
    )
    pipe = ChromaImg2ImgPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=_flux_vae(),
        text_encoder=_t5(tokenizer),
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return folder


FAMILY_BUILDERS = {
    "sd-v": lambda folder, tok: save_latent_diffusion(folder, tok, "v_prediction"),
    "sdxl": save_sdxl,
    "sd3": save_sd3,
    "flux-schnell": save_flux,
    "flux-dev": lambda folder, tok: save_flux(folder, tok, dev=True),
    "chroma": save_chroma,
}
"""The tiny models of the other families (``latent`` is SD 1.x with ε-prediction), built on demand."""


def build_family(root: Path, family: str) -> Path:
    """The tiny refiner of ``family`` (a key of :data:`FAMILY_BUILDERS`) saved under ``root``."""
    tokenizer = byte_level_tokenizer(root / f"tokenizer_{family}")
    return FAMILY_BUILDERS[family](root / family, tokenizer)


def save_pixel_diffusion(folder: Path, tokenizer) -> Path:
    """An image-space text-conditioned diffusion model in the folder layout PixelSDEditRefiner reads."""
    from tcig.models.refiners import PixelSDEditRefiner

    PixelSDEditRefiner(_unet(3), _scheduler(), _text_encoder(tokenizer), tokenizer).save_pretrained(folder)
    return folder


def build_all(root: Path) -> dict[str, Path]:
    """Every tiny model, plus a model-set JSON ``tiny.json`` that uses the SegFormer and the latent refiner."""
    tokenizer = byte_level_tokenizer(root / "tokenizer_src")
    paths = {
        "clip": save_clip(root / "clip", tokenizer),
        "segformer": save_segformer(root / "segformer"),
        "mask2former": save_mask2former(root / "mask2former"),
        "clipseg": save_clipseg(root / "clipseg", tokenizer),
        "latent": save_latent_diffusion(root / "latent", tokenizer),
        "pixel": save_pixel_diffusion(root / "pixel", tokenizer),
    }
    model_set = {
        "name": "tiny",
        "clip": "./clip",
        "segmenters": ["./segformer:1.0"],
        "refiner": "./latent",
        "resolution": 64,
    }
    paths["model_set"] = root / "tiny.json"
    paths["model_set"].write_text(json.dumps(model_set))
    return paths


def save_controlnet(folder: Path, unet_folder: Path, palette: dict[str, list[int]] | None = None) -> Path:
    """A ControlNet of a tiny UNet (``from_unet``, conditioning downsampled to the UNet's latent size: 2x for the
    2-block VAE), its zero convolutions filled with small random weights so that it steers from the start, and
    ``palette.json`` when ``palette`` is given."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(unet_folder)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in controlnet.named_parameters():
            zero_initialized = ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
            if name.startswith(zero_initialized):
                param.normal_(0, 0.05)
    controlnet.save_pretrained(folder)
    if palette is not None:
        (folder / "palette.json").write_text(json.dumps(palette))
    return folder
