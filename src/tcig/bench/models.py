"""Real-size architectures with random weights, built from the JSON configs in ``configs/``: no download needed.

Each config holds the published hyper-parameters of one model (layer counts and widths), so its compute and memory
match the pre-trained model's; only the weights are random. A config is a built-in name (``sd15``, ``sdxl``,
``sd35``, ``flux-dev``, ``flux-schnell``, ``clip-vit-b32``, ``clip-vit-l14``, ``segformer-b0``, ``segformer-b5``,
``mask2former-swin-t``) or a JSON path. A diffusion config with ``"family": "sd3"`` or ``"flux"`` holds a
``transformer`` instead of a ``unet``, and T5 configs among its text encoders.
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
from tcig.models.devices import free_memory, refiner_dtype
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


FLOW_FAMILIES = ("sd3", "flux")
"""Config ``family`` values of the flow-matching transformers (a config without one is a Stable Diffusion UNet)."""

TEXT_ENCODERS = {
    "sd": ("clip", "clip-projected"),
    "sd3": ("clip-projected", "clip-projected", "t5"),
    "flux": ("clip", "t5"),
}
"""The kinds of ``text_encoder``, ``text_encoder_2`` ... of each family (SDXL's second is projected, SD1.5 has one)."""


def _text_encoder(kind: str, config: dict) -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    if kind == "t5":
        return T5EncoderModel(T5Config(**config))
    return (CLIPTextModelWithProjection if kind == "clip-projected" else CLIPTextModel)(CLIPTextConfig(**config))


def random_diffusion(name: str, device: torch.device, dtype: torch.dtype | None, tokenizer=None) -> dict:
    """The components of a diffusers pipeline as its class takes them (``unet`` or ``transformer``, ``vae``,
    ``text_encoder[_2|_3]``, ``tokenizer[_2|_3]``, ``scheduler``), plus the config's ``resolution``, ``family``
    (``sd``, ``sd3`` or ``flux``) and ``name``. ``dtype`` None is the family's own half precision on a GPU."""
    import diffusers
    from diffusers import AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel

    config = read_config(name)
    family = config.get("family", "sd")
    if dtype is None:
        dtype = refiner_dtype(device, torch.bfloat16 if family in FLOW_FAMILIES else torch.float16)
    tokenizer = tokenizer or byte_tokenizer()
    if device.type != "meta":
        _check_weights_fit(name, device, dtype, tokenizer)
    with torch.device(device):
        if family == "sd":
            components = {"unet": UNet2DConditionModel.from_config(config["unet"])}
        else:
            transformer = SD3Transformer2DModel if family == "sd3" else FluxTransformer2DModel
            components = {"transformer": transformer.from_config(config["transformer"])}
        components["vae"] = AutoencoderKL.from_config(config["vae"])
        for i, kind in enumerate(TEXT_ENCODERS[family]):
            suffix = "" if i == 0 else f"_{i + 1}"
            if f"text_encoder{suffix}" in config:
                components[f"text_encoder{suffix}"] = _text_encoder(kind, config[f"text_encoder{suffix}"])
                components[f"tokenizer{suffix}"] = tokenizer
    for key, module in components.items():
        if isinstance(module, torch.nn.Module):
            components[key] = module.to(dtype).eval().requires_grad_(False)
    scheduler_config = dict(config["scheduler"])
    components["scheduler"] = getattr(diffusers, scheduler_config.pop("_class_name")).from_config(scheduler_config)
    return {
        "components": components,
        "resolution": config.get("resolution", 512),
        "name": config["name"],
        "family": family,
        "controlnet_from": config.get("controlnet_from", "sd15"),
    }


def _check_weights_fit(name: str, device: torch.device, dtype: torch.dtype, tokenizer) -> None:
    """Refuse in one line an architecture whose weights alone exceed what ``device`` has free (FLUX.1 in float32
    needs 63 GiB), counted on the meta device before anything is allocated."""
    available = free_memory(device)
    if available is None:
        return
    parts = random_diffusion(name, torch.device("meta"), dtype, tokenizer)["components"]
    need = sum(p.numel() for m in parts.values() if isinstance(m, torch.nn.Module) for p in m.parameters())
    need *= dtype.itemsize
    if need > available:
        raise ConfigError(
            f"the weights of {name} need {need / 2**30:.1f} GiB in {str(dtype).removeprefix('torch.')} and {device} "
            f"has {available / 2**30:.1f} GiB free; run it on a larger device (--device cuda) or a smaller --arch"
        )


def img2img_refiner(diffusion: dict) -> DiffusersImg2ImgRefiner:
    import diffusers

    parts = diffusion["components"]
    if diffusion["family"] == "sd3":
        pipe = diffusers.StableDiffusion3Img2ImgPipeline(**parts)
    elif diffusion["family"] == "flux":
        pipe = diffusers.FluxImg2ImgPipeline(**parts)
    elif "text_encoder_2" in parts:
        pipe = diffusers.StableDiffusionXLImg2ImgPipeline(**parts, requires_aesthetics_score=False)
    else:
        pipe = diffusers.StableDiffusionImg2ImgPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    return DiffusersImg2ImgRefiner(pipe, name=f"{diffusion['name']} (random weights)")


def controlnet_pipeline(diffusion: dict, device: torch.device, tokenizer=None):
    """Text-to-image with a ControlNet built from the UNet (the layout of lllyasviel's SD1.5 ControlNets); for a
    flow-matching transformer, for which no segmentation ControlNet exists, the UNet of its config's
    ``controlnet_from`` architecture (default: SD1.5)."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

    if diffusion["family"] in FLOW_FAMILIES:
        diffusion = random_diffusion(diffusion["controlnet_from"], device, None, tokenizer)
    parts = diffusion["components"]
    unet = parts["unet"]
    with torch.device(unet.device):
        controlnet = ControlNetModel.from_unet(unet).to(unet.dtype).eval().requires_grad_(False)
    if "text_encoder_2" in parts:
        return StableDiffusionXLControlNetPipeline(**parts, controlnet=controlnet)
    return StableDiffusionControlNetPipeline(
        **parts, controlnet=controlnet, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
