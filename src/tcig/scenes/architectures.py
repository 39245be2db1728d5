"""Architectures of the bundled scenes models, as configs (sizes chosen to train on 2 CPU cores in minutes and to
fit together in 40 MB of safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

from tcig.scenes.render import SCENE_CLASSES

IMAGE_SIZE = 64
LATENT_CHANNELS = 8
SPECIALIST_SIZE = 128
"""Input size of the object specialist: 64-px images are upsampled to it, so its stride-4 features resolve
objects a few pixels wide."""
SPECIALIST_LABELS = {
    "boat": "ship",
    "house": "house",
    "tree": "tree",
    "rock": "stone",
    "sun": "sun",
    "cloud": "clouds",
}
"""The specialist's vocabulary: the object classes under names of its own (matched to the scenes' names through
the synonym table), after a ``background`` label for everything else."""
NORM = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def _labels(names=SCENE_CLASSES) -> dict:
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def _upernet(backbone, names=SCENE_CLASSES):
    """UperNet (pyramid pooling + FPN head, 64 channels, no auxiliary head) on ``backbone``, labelled ``names``."""
    from transformers import UperNetConfig, UperNetForSemanticSegmentation

    return UperNetForSemanticSegmentation(
        UperNetConfig(backbone_config=backbone, hidden_size=64, use_auxiliary_head=False, **_labels(names))
    )


def guiding_segmenter():
    """SegFormer (transformer encoder, MLP decoder) at stride 2 so a 64-px scene gives 32-px logits."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(
        hidden_sizes=[24, 48, 96, 160],
        depths=[1, 2, 2, 1],
        num_attention_heads=[1, 2, 4, 5],
        patch_sizes=[3, 3, 3, 3],
        strides=[2, 2, 2, 2],
        sr_ratios=[8, 4, 2, 1],
        decoder_hidden_size=96,
        **_labels(),
    )
    return SegformerForSemanticSegmentation(config)


def evaluator_segmenter():
    """UperNet on a ConvNeXt backbone: convolutional where the guiding SegFormer is a transformer."""
    from transformers import ConvNextConfig

    backbone = ConvNextConfig(
        hidden_sizes=[24, 48, 96, 192],
        depths=[1, 1, 2, 1],
        patch_size=2,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return _upernet(backbone)


def swin_segmenter():
    """UperNet on a Swin backbone (shifted-window attention, patches of 2 px): the second full-vocabulary guide, of
    another family than the SegFormer guide and the ConvNeXt evaluator."""
    from transformers import SwinConfig

    backbone = SwinConfig(
        image_size=IMAGE_SIZE,
        patch_size=2,
        embed_dim=24,
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return _upernet(backbone)


def specialist_labels() -> list[str]:
    return ["background", *SPECIALIST_LABELS.values()]


def object_specialist():
    """UperNet on a small ResNet, seen at ``SPECIALIST_SIZE`` px, over the object classes and a background class."""
    from transformers import ResNetConfig

    backbone = ResNetConfig(
        embedding_size=24,
        hidden_sizes=[24, 48, 96, 160],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        downsample_in_first_stage=False,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return _upernet(backbone, specialist_labels())


def text_config(
    tokenizer,
    hidden_size: int = 128,
    intermediate_size: int = 512,
    num_hidden_layers: int = 3,
    num_attention_heads: int = 4,
) -> dict:
    """A CLIP text-transformer config whose vocabulary and special tokens come from ``tokenizer``."""
    return dict(
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def clip_model(tokenizer):
    from transformers import CLIPConfig, CLIPModel

    text = text_config(tokenizer)
    vision = dict(
        image_size=IMAGE_SIZE,
        patch_size=8,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=128))


def autoencoder():
    """A KL autoencoder, 64x64x3 -> 16x16x8, as in Stable Diffusion's VAE but far smaller.

    Eight latent channels rather than SD's four: at 64 px a house is 8 pixels wide, and four channels at 1/4 of the
    resolution lost so much that the evaluator's mIoU on reconstructions fell from 0.91 to 0.62.
    """
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64, 64],
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        latent_channels=LATENT_CHANNELS,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
    )


def latent_unet(cross_attention_dim: int = 128):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def pixel_unet(cross_attention_dim: int = 128):
    """An image-space text-conditioned UNet on 64x64 pixels, with attention only at 16x16 where it is cheap."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def flow_transformer(text_hidden: int = 128, pooled: int = 256):
    """A rectified-flow MMDiT (SD3's ``SD3Transformer2DModel``) on the VAE's 16x16x8 latents in 2x2 patches (64
    image tokens), joint attention with the text tokens of two CLIP text encoders (the bundled one, twice, as SD3's
    pipeline concatenates them: ``2 * text_hidden`` features, ``pooled`` pooled ones)."""
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=IMAGE_SIZE // 4,
        patch_size=2,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=6,
        attention_head_dim=32,
        num_attention_heads=4,
        joint_attention_dim=2 * text_hidden,
        caption_projection_dim=128,
        pooled_projection_dim=pooled,
        pos_embed_max_size=IMAGE_SIZE // 8,
    )


def noise_scheduler_config() -> dict:
    """Stable Diffusion's training schedule (scaled-linear betas, 1000 steps, epsilon prediction)."""
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
    )


def write_preprocessor(folder: Path, processor_type: str, size: int = IMAGE_SIZE, **extra) -> None:
    """A ``preprocessor_config.json`` with the numbers tcig reads (mean, std, size)."""
    config = {
        "image_processor_type": processor_type,
        "do_resize": True,
        "size": {"height": size, "width": size},
        "do_normalize": True,
        **NORM,
        **extra,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
