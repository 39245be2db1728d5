"""Retrain every bundled scenes model from its seeds: ``python -m tcig.scenes.train --out DIR``.

Each model trains on rendered scenes from its own seed range (see ``data.SEED_RANGES``), checkpoints as it goes
(stop and rerun to resume), and is saved with ``save_pretrained`` in safetensors, in the folder layout the hub
models have, so tcig loads it through the same code. ``TRAINING.json`` records steps, seconds and hardware.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tcig.scenes import architectures as arch
from tcig.scenes.data import SEED_RANGES, scene_set
from tcig.scenes.tokenizer import build_tokenizer
from tcig.scenes.train_loop import train

logger = logging.getLogger(__name__)

MODELS = ("segformer", "evaluator", "swin", "objects", "clip", "vae", "unet", "pixel", "flow", "controlnet")
DEFAULT_STEPS = {
    "segformer": 1500,
    "evaluator": 1500,
    "swin": 1500,
    "objects": 1500,
    "clip": 800,
    "vae": 3000,
    "unet": 4000,
    "pixel": 4000,
    "flow": 4000,
    "controlnet": 3000,
}
BATCH = {
    "segformer": 32, "evaluator": 32, "swin": 16, "objects": 16, "clip": 128, "vae": 16, "unet": 32, "pixel": 16,
    "flow": 32, "controlnet": 32,
}  # fmt: skip
FLOW_TEXT_TOKENS = 1
"""The flow model's T5 slot is empty: SD3's pipeline pads it with this many zero tokens (its default, 256, would
make every step four times slower for nothing); ``scenes-flow`` declares it as ``max_sequence_length``."""
REFINER_OPTIONS = {"flow": {"max_sequence_length": FLOW_TEXT_TOKENS}}
"""How each bundled refiner folder loads (``load_refiner`` keywords), as its model set declares it."""
SCENES_PER_MODEL = 20_000


@dataclass(frozen=True)
class SegmenterRecipe:
    """How one bundled segmenter trains: its seed range, architecture, input size and label space.

    ``labels`` maps scene class ids to the model's (None: the scene classes themselves); ``degrade`` trains half
    of the batch on scenes rendered at 64 px and upsampled, which is what a model seen at a larger input size gets
    from 64-px images."""

    purpose: str
    build: Callable[[], torch.nn.Module]
    size: int = arch.IMAGE_SIZE
    labels: Callable[[], torch.Tensor] | None = None
    degrade: bool = False
    scenes: int = SCENES_PER_MODEL


def _specialist_lookup() -> torch.Tensor:
    from tcig.scenes.render import SCENE_CLASSES

    names = arch.specialist_labels()
    return torch.tensor([names.index(arch.SPECIALIST_LABELS.get(c, "background")) for c in SCENE_CLASSES])


SEGMENTERS = {
    "segformer": SegmenterRecipe("segmenter", arch.guiding_segmenter),
    "evaluator": SegmenterRecipe("evaluator", arch.evaluator_segmenter),
    "swin": SegmenterRecipe("guide-swin", arch.swin_segmenter),
    "objects": SegmenterRecipe(
        "specialist", arch.object_specialist, arch.SPECIALIST_SIZE, _specialist_lookup, degrade=True, scenes=10_000
    ),
}
"""Every bundled segmenter: the guiding SegFormer, the evaluator (never guides), a second full-vocabulary guide
and the object specialist; each on a seed range of its own."""
CONTEXT_LENGTH = 40  # captions are at most 20 words; a shorter context makes the UNet's cross-attention cheaper


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Photometric jitter only (brightness, contrast, Gaussian noise per image), so that segmenters are robust to the
    imperfect images they see in stage 1 and evaluation; geometric flips are applied to images and labels together."""
    b = images.shape[0]
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    shift = 0.1 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    noise = 0.08 * torch.rand(b, 1, 1, 1, generator=generator) * torch.randn(images.shape, generator=generator)
    return ((images - 0.5) * gain + 0.5 + shift + noise).clamp(0, 1)


def _flip_labels(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return (
        torch.where(flip[:, None, None, None], images.flip(-1), images),
        torch.where(flip[:, None, None], labels.flip(-1), labels),
    )


def train_segmenter(name: str, out: Path, work: Path, steps: int, count: int, progress: bool = True) -> dict:
    """One of ``SEGMENTERS``, on its own seed range; cross-entropy with photometric jitter and flips."""
    recipe = SEGMENTERS[name]
    count = min(count, recipe.scenes)
    data = scene_set(recipe.purpose, count, recipe.size, work / "cache")
    model = recipe.build()
    lookup = recipe.labels() if recipe.labels is not None else None

    def loss_fn(g: torch.Generator) -> torch.Tensor:
        images, labels, _ = data.batch(BATCH[name], g)
        images, labels = _flip_labels(images, labels, g)
        if recipe.degrade:
            small = F.interpolate(images, size=(arch.IMAGE_SIZE,) * 2, mode="area")
            blurred = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
            pick = torch.rand(images.shape[0], 1, 1, 1, generator=g) < 0.5
            images = torch.where(pick, blurred, images)
        if lookup is not None:
            labels = lookup[labels]
        logits = model(pixel_values=(augment(images, g) - 0.5) / 0.5).logits
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(logits, labels)

    stats = train(name, {"model": model}, loss_fn, steps=steps, lr=2e-3, work_dir=work, seed=1, progress=progress)
    model.save_pretrained(out / name)
    # UperNet checkpoints use the same processor as SegFormer's
    arch.write_preprocessor(out / name, "SegformerImageProcessor", size=recipe.size)
    seeds = SEED_RANGES[recipe.purpose]
    stats["seeds"] = [seeds.start, seeds.start + count - 1]
    return stats


def train_clip(out: Path, work: Path, steps: int, count: int, progress: bool = True) -> dict:
    """A CLIP trained contrastively on scenes and their captions, with random crops like stage 1's."""
    from tcig.stage1.optimize import CropDraws, crop_views

    data = scene_set("clip", count, arch.IMAGE_SIZE, work / "cache")
    tokenizer = build_tokenizer(work / "tokenizer", data.captions, context_length=CONTEXT_LENGTH)
    model = arch.clip_model(tokenizer)
    size = (arch.IMAGE_SIZE, arch.IMAGE_SIZE)

    def loss_fn(g: torch.Generator) -> torch.Tensor:
        images, _, captions = data.batch(BATCH["clip"], g)
        views = crop_views(augment(images, g), 1, size, 0.6, CropDraws.sample(len(images), size, 0.0, g, "cpu"))
        text = tokenizer(captions, padding=True, return_tensors="pt")
        out_ = model(
            input_ids=text.input_ids,
            attention_mask=text.attention_mask,
            pixel_values=(views - 0.5) / 0.5,
            return_loss=True,
        )
        return out_.loss

    stats = train("clip", {"model": model}, loss_fn, steps=steps, lr=1e-3, work_dir=work, seed=2, progress=progress)
    model.save_pretrained(out / "clip")
    tokenizer.save_pretrained(out / "clip")
    arch.write_preprocessor(
        out / "clip",
        "CLIPImageProcessor",
        do_center_crop=True,
        crop_size={"height": arch.IMAGE_SIZE, "width": arch.IMAGE_SIZE},
    )
    return stats


def train_vae(out: Path, work: Path, steps: int, count: int, progress: bool = True) -> dict:
    """The autoencoder: L1 + MSE reconstruction, L1 on image gradients (keeps the edges of small objects that a plain
    pixel loss blurs) and a small KL term; scaling factor set to 1 / latent std."""
    data = scene_set("diffusion", count, arch.IMAGE_SIZE, work / "cache")
    vae = arch.autoencoder()

    def loss_fn(g: torch.Generator) -> torch.Tensor:
        images, _, _ = data.batch(BATCH["vae"], g)
        x = images * 2 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        error = recon - x
        edges = (error.diff(dim=-1).abs().mean() + error.diff(dim=-2).abs().mean()) / 2
        return error.abs().mean() + error.pow(2).mean() + edges + 1e-6 * posterior.kl().mean()

    stats = train("vae", {"vae": vae}, loss_fn, steps=steps, lr=1e-3, work_dir=work, seed=3, progress=progress)
    with torch.no_grad():
        images, _, _ = data.batch(256, torch.Generator().manual_seed(0))
        std = vae.encode(images * 2 - 1).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1 / std)
    vae.save_pretrained(work / "vae_final")
    stats["scaling_factor"] = 1 / std
    return stats


def _text_conditioning(out: Path):
    """The bundled CLIP's tokenizer and frozen text encoder, and ``embed(captions, g)`` that drops 10 % of the
    captions (for classifier-free guidance) and returns the encoder's hidden states."""
    from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

    clip = CLIPModel.from_pretrained(out / "clip")
    tokenizer = CLIPTokenizer.from_pretrained(out / "clip")
    text_encoder = CLIPTextModel(clip.config.text_config).eval().requires_grad_(False)
    text_encoder.load_state_dict(clip.text_model.state_dict())

    def embed(captions: list[str], g: torch.Generator) -> torch.Tensor:
        drop = torch.rand(len(captions), generator=g) < 0.1
        captions = ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]
        with torch.no_grad():
            ids = tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt")
            return text_encoder(ids.input_ids).last_hidden_state

    return tokenizer, text_encoder, embed


def _noise_loss(unet, x0: torch.Tensor, cond: torch.Tensor, noise_scheduler, g: torch.Generator) -> torch.Tensor:
    """Epsilon-prediction loss at a uniformly drawn timestep."""
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), generator=g)
    return F.mse_loss(unet(noise_scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=cond).sample, noise)


def _ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**arch.noise_scheduler_config(), clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def train_unet(out: Path, work: Path, steps: int, count: int, progress: bool = True) -> dict:
    """The latent text-to-image UNet, conditioned on the bundled CLIP's text encoder (frozen); saved with the VAE as
    a Stable-Diffusion-layout img2img pipeline, the UNet in float16 (it loads as float32) to fit the bundle."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionImg2ImgPipeline

    data = scene_set("diffusion", count, arch.IMAGE_SIZE, work / "cache")
    tokenizer, text_encoder, embed = _text_conditioning(out)
    vae = AutoencoderKL.from_pretrained(work / "vae_final").eval().requires_grad_(False)
    unet = arch.latent_unet(text_encoder.config.hidden_size)
    noise_scheduler = DDPMScheduler(**arch.noise_scheduler_config())
    scale = vae.config.scaling_factor

    def loss_fn(g: torch.Generator) -> torch.Tensor:
        images, _, captions = data.batch(BATCH["unet"], g)
        with torch.no_grad():
            latents = vae.encode(images * 2 - 1).latent_dist.sample(generator=g) * scale
        return _noise_loss(unet, latents, embed(captions, g), noise_scheduler, g)

    stats = train("unet", {"unet": unet}, loss_fn, steps=steps, lr=5e-4, work_dir=work, seed=4, progress=progress)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet.half(),
        scheduler=_ddim(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out / "sd")
    return stats


def train_pixel(out: Path, work: Path, steps: int, count: int, progress: bool = True) -> dict:
    """The image-space text-to-image UNet (pixels in [-1, 1]), same text conditioning as the latent one; saved in
    the folder layout ``PixelSDEditRefiner`` reads, the UNet in float16 (it loads as float32) to fit the bundle."""
    from diffusers import DDPMScheduler

    from tcig.models.refiners import PixelSDEditRefiner

    data = scene_set("diffusion", count, arch.IMAGE_SIZE, work / "cache")
    tokenizer, text_encoder, embed = _text_conditioning(out)
    unet = arch.pixel_unet(text_encoder.config.hidden_size)
    noise_scheduler = DDPMScheduler(**arch.noise_scheduler_config())

    def loss_fn(g: torch.Generator) -> torch.Tensor:
        images, _, captions = data.batch(BATCH["pixel"], g)
        return _noise_loss(unet, images * 2 - 1, embed(captions, g), noise_scheduler, g)

    stats = train("pixel", {"unet": unet}, loss_fn, steps=steps, lr=5e-4, work_dir=work, seed=5, progress=progress)
    PixelSDEditRefiner(unet.half(), _ddim(), text_encoder, tokenizer).save_pretrained(out / "pixel")
    return stats


def _projected_text_encoder(out: Path):
    """The bundled CLIP's text tower with its trained projection, as the ``CLIPTextModelWithProjection`` that SD3's
    pipeline takes (pooled embeddings from the projection)."""
    from transformers import CLIPModel, CLIPTextConfig, CLIPTextModelWithProjection

    clip = CLIPModel.from_pretrained(out / "clip")
    config = CLIPTextConfig(**{**clip.config.text_config.to_dict(), "projection_dim": clip.config.projection_dim})
    encoder = CLIPTextModelWithProjection(config).eval().requires_grad_(False)
    encoder.text_model.load_state_dict(clip.text_model.state_dict())
    encoder.text_projection.load_state_dict(clip.text_projection.state_dict())
    return encoder


def train_flow(out: Path, work: Path, steps: int, count: int, progress: bool = True) -> dict:
    """The rectified-flow transformer (SD3's MMDiT) on the bundled VAE's latents, conditioned through SD3's own
    prompt encoding on the bundled CLIP text tower (frozen, in both CLIP slots; no T5): velocity ``noise - x0`` at
    ``x_t = (1 - s)·x0 + s·noise``, ``s`` logit-normal (Esser et al. 2024), 10 % of captions dropped for guidance.
    Saved as an SD3 img2img pipeline folder, the transformer in float16 (it loads as float32)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Img2ImgPipeline
    from transformers import CLIPTokenizer

    data = scene_set("flow", count, arch.IMAGE_SIZE, work / "cache")
    tokenizer = CLIPTokenizer.from_pretrained(out / "clip")
    text_encoder = _projected_text_encoder(out)
    vae = _bundled_vae(out)
    transformer = arch.flow_transformer(text_encoder.config.hidden_size, 2 * text_encoder.config.projection_dim)
    pipe = StableDiffusion3Img2ImgPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder,
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    scale, shift = vae.config.scaling_factor, vae.config.shift_factor or 0.0

    def loss_fn(g: torch.Generator) -> torch.Tensor:
        images, _, captions = data.batch(BATCH["flow"], g)
        drop = torch.rand(len(captions), generator=g) < 0.1
        captions = ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]
        with torch.no_grad():
            x0 = (vae.encode(images * 2 - 1).latent_dist.sample(generator=g) - shift) * scale
            text, _, pooled, _ = pipe.encode_prompt(
                captions, None, None, "cpu", 1, False, max_sequence_length=FLOW_TEXT_TOKENS
            )
        noise = torch.randn(x0.shape, generator=g)
        sigma = torch.sigmoid(torch.randn(x0.shape[0], generator=g))[:, None, None, None]
        x_t = (1 - sigma) * x0 + sigma * noise
        velocity = transformer(
            hidden_states=x_t,
            timestep=sigma.flatten() * 1000,
            encoder_hidden_states=text,
            pooled_projections=pooled,
        ).sample
        return F.mse_loss(velocity, noise - x0)

    stats = train("flow", {"transformer": transformer}, loss_fn, steps=steps, lr=5e-4, work_dir=work, seed=6,
                  progress=progress)  # fmt: skip
    pipe.transformer = transformer.half()
    pipe.save_pretrained(out / "flow")
    return stats


CONTROL_BLANK = 0.25
"""Share of training layouts in which one class present is painted black (don't care), so that the ControlNet
learns that black constrains nothing, as in the ADE20K palette that ControlNet-seg reads."""


def control_palette() -> dict[str, tuple[int, int, int]]:
    """The bundled ControlNet's colours of the scene classes: each class's ADE20K (else COCO-Stuff) colour, the
    ones those palettes lack from tcig's distinct palette; fixed at training time and saved beside the model."""
    from tcig.io.pictures import layout_colours
    from tcig.scenes.render import SCENE_CLASSES

    table = layout_colours(list(SCENE_CLASSES))
    return {name: tuple(int(v) for v in table[i]) for i, name in enumerate(SCENE_CLASSES)}


def _paint(labels: torch.Tensor, table: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Label maps ``[B,H,W]`` as control images ``[B,3,H,W]`` in [0,1]; in ``CONTROL_BLANK`` of them one class
    present is black."""
    images = table[labels].permute(0, 3, 1, 2)
    for i in torch.nonzero(torch.rand(len(labels), generator=g) < CONTROL_BLANK).flatten().tolist():
        present = labels[i].unique()
        blank = present[torch.randint(len(present), (1,), generator=g)]
        images[i] *= (labels[i] != blank).to(images.dtype)
    return images


def train_controlnet(out: Path, work: Path, steps: int, count: int, progress: bool = True) -> dict:
    """A segmentation ControlNet (Zhang et al. 2023) on the bundled latent UNet (frozen), as ControlNet-seg is
    conditioned: the layout painted in a fixed palette (``control_palette``, saved as ``palette.json``), don't care
    black. Copied from the UNet's encoder (``ControlNetModel.from_unet``) with a conditioning encoder that
    downsamples 4× (the bundled VAE's factor; SD's is 8×); ε-prediction loss, 10 % of captions dropped as for the
    UNet. Saved in float16 (it loads as float32)."""
    from diffusers import ControlNetModel, DDPMScheduler, UNet2DConditionModel

    from tcig.io.files import write_json_atomically

    data = scene_set("controlnet", count, arch.IMAGE_SIZE, work / "cache")
    _, _, embed = _text_conditioning(out)
    vae = _bundled_vae(out)
    unet = UNet2DConditionModel.from_pretrained(out / "sd" / "unet", torch_dtype=torch.float32)
    unet.eval().requires_grad_(False)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 64))
    noise_scheduler = DDPMScheduler(**arch.noise_scheduler_config())
    palette = control_palette()
    table = torch.tensor(list(palette.values()), dtype=torch.float32) / 255
    scale = vae.config.scaling_factor

    def loss_fn(g: torch.Generator) -> torch.Tensor:
        images, labels, captions = data.batch(BATCH["controlnet"], g)
        images, labels = _flip_labels(images, labels, g)
        with torch.no_grad():
            x0 = vae.encode(images * 2 - 1).latent_dist.sample(generator=g) * scale
        cond = embed(captions, g)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), generator=g)
        x_t = noise_scheduler.add_noise(x0, noise, t)
        down, mid = controlnet(x_t, t, encoder_hidden_states=cond, controlnet_cond=_paint(labels, table, g),
                               return_dict=False)  # fmt: skip
        predicted = unet(x_t, t, encoder_hidden_states=cond, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample  # fmt: skip
        return F.mse_loss(predicted, noise)

    stats = train("controlnet", {"controlnet": controlnet}, loss_fn, steps=steps, lr=3e-4, work_dir=work, seed=7,
                  progress=progress)  # fmt: skip
    controlnet.half().save_pretrained(out / "controlnet")
    write_json_atomically(out / "controlnet" / "palette.json", palette)
    seeds = SEED_RANGES["controlnet"]
    stats["seeds"] = [seeds.start, seeds.start + count - 1]
    return stats


def _bundled_vae(out: Path):
    """The bundled latent refiner's autoencoder, frozen."""
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(out / "sd" / "vae").eval().requires_grad_(False)


def hardware() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


TRAINERS = {
    "clip": train_clip, "vae": train_vae, "unet": train_unet, "pixel": train_pixel, "flow": train_flow,
    "controlnet": train_controlnet,
}  # fmt: skip
"""The trainers of the models that are not segmenters, by name."""


def train_all(
    out: Path, work: Path, only: list[str], scale: float = 1.0, count: int = SCENES_PER_MODEL, progress: bool = True
) -> dict:
    """Train the ``only`` models in dependency order; merge their records into ``out/TRAINING.json``."""
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "TRAINING.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for name in MODELS:
        if name not in only:
            continue
        steps = max(1, round(DEFAULT_STEPS[name] * scale))
        if name in SEGMENTERS:
            stats = train_segmenter(name, out, work, steps, count, progress)
        else:
            trainer = TRAINERS[name]
            stats = trainer(out, work, steps, count, progress)
        record[name] = {
            **stats,
            "batch": BATCH[name],
            "hardware": hardware(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        record_path.write_text(json.dumps(record, indent=2))
        logger.info("%s: %s", name, stats)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcig.scenes.train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the trained models (e.g. src/tcig/bundled/scenes)"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(".cache/scenes-train"),
        help="checkpoints and rendered-scene caches (rerun to resume)",
    )
    parser.add_argument("--only", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every model's step count (smoke tests)")
    parser.add_argument("--scenes", type=int, default=SCENES_PER_MODEL, help="rendered scenes per model")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(only) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    train_all(args.out, args.work, only, args.scale, args.scenes, not args.no_progress)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
