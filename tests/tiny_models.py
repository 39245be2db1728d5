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


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def save_latent_diffusion(folder: Path, tokenizer) -> Path:
    """A Stable-Diffusion-layout img2img pipeline (VAE, UNet, text encoder, tokenizer, scheduler)."""
    from diffusers import AutoencoderKL, StableDiffusionImg2ImgPipeline

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
    )
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae,
        unet=_unet(4),
        text_encoder=_text_encoder(tokenizer),
        tokenizer=tokenizer,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


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
