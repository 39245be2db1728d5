"""Real-size architectures with random weights, built from the JSON configs in ``configs/``: no download needed.

Each config holds the published hyper-parameters of one model (layer counts and widths), so its compute and memory
match the pre-trained model's; only the weights are random. A config is a built-in name (``sd15``, ``sdxl``,
``clip-vit-b32``, ``clip-vit-l14``, ``segformer-b0``, ``segformer-b5``, ``mask2former-swin-t``) or a JSON path.
"""

from __future__ import annotations

import json
import tempfile
from importlib import resources
from pathlib import Path

import torch

from tcig.errors import ConfigError
from tcig.io.files import read_json_object
from tcig.layout.vocabularies import load_vocabulary
from tcig.models.clip_scorer import CLIPScorer
from tcig.models.preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ImageNorm
from tcig.models.refiners import DiffusersImg2ImgRefiner
from tcig.models.segmenters import UNIVERSAL_TYPES, MaskClassificationSegmenter, Segmenter, SemanticSegmenter

BUILTIN_CONFIGS = tuple(
    sorted(
        f.name[: -len(".json")]
        for f in (resources.files("tcig.bench") / "configs").iterdir()
        if f.name.endswith(".json")
    )
)
"""The architecture configs shipped in ``tcig/bench/configs`` (one JSON file each), by name."""


def read_config(name_or_path: str) -> dict:
    """A built-in config by name, or a JSON file (bounded, one-line errors)."""
    if name_or_path in BUILTIN_CONFIGS:
        text = (resources.files("tcig.bench") / "configs" / f"{name_or_path}.json").read_text(encoding="utf-8")
        return {"name": name_or_path, **json.loads(text)}
    if not Path(name_or_path).exists():
        raise ConfigError(
            f"unknown architecture '{name_or_path}': give a JSON config or one of {', '.join(BUILTIN_CONFIGS)}"
        )
    return {"name": Path(name_or_path).stem, **read_json_object(name_or_path, "architecture config")}


def byte_tokenizer(max_length: int = 77):
    """A CLIP tokenizer over the 256 byte symbols, no merges: every id is below 600, so it drives any CLIP text
    encoder; token counts differ from OpenAI's BPE, but prompts are padded to ``max_length`` either way."""
    from transformers import CLIPTokenizer

    from tcig.scenes.tokenizer import write_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_tokenizer_files(Path(tmp), [])
        return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)


def _labels(config: dict) -> list[str]:
    labels = config.get("labels", "ade20k")
    return list(load_vocabulary(labels).labels) if isinstance(labels, str) else list(labels)


def _transformers_config(config: dict):
    from transformers import AutoConfig

    fields = {k: v for k, v in config.items() if k not in ("name", "description", "labels", "model_type")}
    return AutoConfig.for_model(config["model_type"], **fields)


def random_clip(name: str, device: torch.device, tokenizer=None) -> CLIPScorer:
    from transformers import CLIPModel

    config = read_config(name)
    with torch.device(device):
        model = CLIPModel(_transformers_config(config)).to(device)
    size = model.config.vision_config.image_size
    return CLIPScorer(model, tokenizer or byte_tokenizer(), ImageNorm(CLIP_MEAN, CLIP_STD, (size, size)), name)


def random_segmenter(name: str, device: torch.device) -> Segmenter:
    """SegFormer-style semantic heads or Mask2Former-style mask classifiers, with the config's label set."""
    from transformers import AutoModelForSemanticSegmentation, AutoModelForUniversalSegmentation

    config = read_config(name)
    labels = _labels(config)
    hf_config = _transformers_config(config)
    hf_config.id2label = dict(enumerate(labels))
    hf_config.label2id = {label: i for i, label in enumerate(labels)}
    universal = config["model_type"] in UNIVERSAL_TYPES
    auto = AutoModelForUniversalSegmentation if universal else AutoModelForSemanticSegmentation
    with torch.device(device):
        model = auto.from_config(hf_config).to(device)  # Mask2Former makes some buffers on the CPU regardless
    wrapper = MaskClassificationSegmenter if universal else SemanticSegmenter
    return wrapper(model, ImageNorm(IMAGENET_MEAN, IMAGENET_STD, None), labels, name)


def random_diffusion(name: str, device: torch.device, dtype: torch.dtype, tokenizer=None) -> dict:
    """The components of a Stable Diffusion pipeline (``unet``, ``vae``, ``text_encoder[_2]``, ``tokenizer[_2]``,
    ``scheduler``) as ``StableDiffusion*Pipeline(**components)`` takes them, plus the config's ``resolution``."""
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = read_config(name)
    tokenizer = tokenizer or byte_tokenizer()
    with torch.device(device):
        components = {
            "unet": UNet2DConditionModel.from_config(config["unet"]),
            "vae": AutoencoderKL.from_config(config["vae"]),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**config["text_encoder"])),
            "tokenizer": tokenizer,
        }
        if "text_encoder_2" in config:
            components["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**config["text_encoder_2"]))
            components["tokenizer_2"] = tokenizer
    for key, module in components.items():
        if isinstance(module, torch.nn.Module):
            components[key] = module.to(dtype).eval().requires_grad_(False)
    scheduler_config = dict(config["scheduler"])
    components["scheduler"] = getattr(diffusers, scheduler_config.pop("_class_name")).from_config(scheduler_config)
    return {"components": components, "resolution": config.get("resolution", 512), "name": config["name"]}


def img2img_refiner(diffusion: dict) -> DiffusersImg2ImgRefiner:
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    parts = diffusion["components"]
    if "text_encoder_2" in parts:
        pipe = StableDiffusionXLImg2ImgPipeline(**parts, requires_aesthetics_score=False)
    else:
        pipe = StableDiffusionImg2ImgPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    return DiffusersImg2ImgRefiner(pipe, name=f"{diffusion['name']} (random weights)")


def controlnet_pipeline(diffusion: dict):
    """Text-to-image with a ControlNet built from the UNet (the layout of lllyasviel's SD1.5 ControlNets)."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

    parts = diffusion["components"]
    unet = parts["unet"]
    with torch.device(unet.device):
        controlnet = ControlNetModel.from_unet(unet).to(unet.dtype).eval().requires_grad_(False)
    if "text_encoder_2" in parts:
        return StableDiffusionXLControlNetPipeline(**parts, controlnet=controlnet)
    return StableDiffusionControlNetPipeline(
        **parts, controlnet=controlnet, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
