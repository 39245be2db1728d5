"""Named recipes of models: which CLIP, which guiding segmenters (with weights) and which refiner.

A model set is one of the built-in names or a JSON file
``{"clip": ID, "segmenters": ["ID[:WEIGHT]", ...], "refiner": ID or null, "resolution": 512, "evaluator": ID,
"stage1": {"steps": 100, ...}, "stage2": {"strength": 0.5, ...}}`` whose relative paths are read relative to the
file's folder. ``stage1``/``stage2`` hold the set's tuned defaults (fields of Stage1Settings / Stage2Settings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError
from .refiners import Stage2Settings
from .stage1 import Stage1Settings


@dataclass(frozen=True)
class ModelSet:
    name: str
    clip: str
    segmenters: tuple[tuple[str, float], ...]
    refiner: str | None
    resolution: int = 512
    stage1_size: int | None = None
    description: str = field(default="", compare=False)
    evaluator: str | None = None
    stage1: dict = field(default_factory=dict, compare=False, hash=False)
    stage2: dict = field(default_factory=dict, compare=False, hash=False)
    exemplar_prompt: str = "a photo of a {name}"
    """Prompt with which the refiner draws a class by its name, for the ``colours`` and ``collage`` inits."""

    def with_overrides(
        self, *, clip: str | None = None, segmenters: list[tuple[str, float]] | None = None, refiner: str | None = None
    ) -> ModelSet:
        """Replace components; ``refiner="none"`` removes stage 2."""
        return replace(
            self,
            clip=clip or self.clip,
            segmenters=tuple(segmenters) if segmenters else self.segmenters,
            refiner=None if refiner == "none" else (refiner or self.refiner),
        )

    def stage1_settings(self, **given) -> Stage1Settings:
        """The set's tuned stage-1 settings, overridden by every ``given`` value that is not None."""
        return Stage1Settings(**{**self.stage1, **{k: v for k, v in given.items() if v is not None}})

    def stage2_settings(self, **given) -> Stage2Settings:
        return Stage2Settings(**{**self.stage2, **{k: v for k, v in given.items() if v is not None}})

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "clip": self.clip,
            "segmenters": [f"{s}:{w:g}" for s, w in self.segmenters],
            "refiner": self.refiner,
            "resolution": self.resolution,
            "stage1_size": self.stage1_size,
            "evaluator": self.evaluator,
            "stage1": self.stage1,
            "stage2": self.stage2,
            "exemplar_prompt": self.exemplar_prompt,
        }


BUNDLED = Path(__file__).parent / "bundled" / "scenes"
"""The models trained in the synthetic scenes world (``python -m tcig.scenes.train``), shipped with the package."""

SCENES_STAGE1 = {
    "steps": 30,
    "lr": 0.03,
    "num_crops": 4,
    "seg_noise": 0.1,
    "seg_loss": "ce",
    "init": "colours",
    "init_noise": 0.1,
    "seg_views": 1,
    "seg_shift": 0.06,
    "seg_scale": 0.15,
    "seg_blur": 1.0,
    "tv_weight": 1.0,
}
"""Stage-1 settings of the scenes sets, chosen with `tcig eval --variant` on tuning cases only (6 rendered scenes of
seeds 9,500,000+ and the hand-drawn layouts of examples/unusual/tune): benchmarks/tune_scenes.sh, docs/tuning.md."""

SCENES_STAGE2 = {"strength": 0.35, "steps": 30, "guidance_scale": 4.0, "cycles": 1, "cycle_steps": 10}
"""Stage 2 of the scenes sets: a refinement at 0.35, then one cycle of 10 stage-1 steps and a refinement at 0.15."""

SCENES_GUIDES = ((str(BUNDLED / "segformer"), 1.0), (str(BUNDLED / "swin"), 1.0), (str(BUNDLED / "objects"), 1.0))
"""The scenes sets' guides: SegFormer, UperNet-Swin and the object specialist (UperNet-ResNet at 128 px)."""

BUILTIN = {
    "scenes": ModelSet(
        "scenes",
        str(BUNDLED / "clip"),
        SCENES_GUIDES,
        str(BUNDLED / "sd"),
        64,
        description="bundled offline models of the synthetic scenes world (12 classes, 64 px): CLIP; guides "
        "SegFormer, UperNet-Swin and an object specialist; latent diffusion; evaluator UperNet-ConvNeXt",
        evaluator=str(BUNDLED / "evaluator"),
        stage1=SCENES_STAGE1,
        exemplar_prompt="a scene with a {name}",
        stage2=SCENES_STAGE2,
    ),
    "scenes-pixel": ModelSet(
        "scenes-pixel",
        str(BUNDLED / "clip"),
        SCENES_GUIDES,
        str(BUNDLED / "pixel"),
        64,
        description="the bundled scenes models with the image-space diffusion model as stage 2 (SDEdit on pixels)",
        evaluator=str(BUNDLED / "evaluator"),
        stage1=SCENES_STAGE1,
        exemplar_prompt="a scene with a {name}",
        # strength 0.15 / 0.25 / 0.35 gave 0.626 / 0.616 / 0.594 on the tuning cases (docs/tuning.md)
        stage2={**SCENES_STAGE2, "strength": 0.15},
    ),
    "sd15": ModelSet(
        "sd15",
        "openai/clip-vit-base-patch32",
        (("nvidia/segformer-b0-finetuned-ade-512-512", 1.0),),
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        512,
        stage1_size=256,
        description="CLIP ViT-B/32, SegFormer-B0 (ADE20K, 150 classes), Stable Diffusion 1.5 img2img at 512 "
        "(stage 1 at 256)",
        # 100 stage-1 steps (not 150) at 256 px: stage 1 is launch-bound on GPUs, so its time follows the step
        # count, not the size (docs/performance.md); 256 px also halves stage 1's memory and its CPU time.
        stage1={"steps": 100},
        stage2={"strength": 0.6, "steps": 30},
    ),
    "sdxl": ModelSet(
        "sdxl",
        "openai/clip-vit-large-patch14",
        (("nvidia/segformer-b5-finetuned-ade-640-640", 1.0),),
        "stabilityai/stable-diffusion-xl-base-1.0",
        1024,
        stage1_size=512,
        description="CLIP ViT-L/14, SegFormer-B5 (ADE20K), SDXL base img2img at 1024 (stage 1 at 512)",
    ),
}


def parse_segmenter_arg(text: str) -> tuple[str, float]:
    """``ID[:WEIGHT]`` → (id, weight); the weight defaults to 1."""
    ref, sep, weight = text.rpartition(":")
    if sep and ref:
        try:
            value = float(weight)
        except ValueError:
            return text, 1.0
        if value < 0:
            raise ConfigError(f"segmenter weight must be >= 0 in '{text}'")
        return ref, value
    return text, 1.0


def load_model_set(name_or_path: str) -> ModelSet:
    """A built-in name or a model-set JSON file."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"unknown model set '{name_or_path}'; use one of {', '.join(BUILTIN)} or a JSON file")
    try:
        spec = json.loads(path.read_text())
        base = path.parent

        def resolve(ref: str) -> str:
            return str((base / ref).resolve()) if ref.startswith(".") else ref

        segmenters = [
            parse_segmenter_arg(s) if isinstance(s, str) else (s["id"], float(s.get("weight", 1.0)))
            for s in spec["segmenters"]
        ]
        return ModelSet(
            name=spec.get("name", path.stem),
            clip=resolve(spec["clip"]),
            segmenters=tuple((resolve(ref), w) for ref, w in segmenters),
            refiner=resolve(spec["refiner"]) if spec.get("refiner") else None,
            resolution=int(spec.get("resolution", 512)),
            stage1_size=spec.get("stage1_size"),
            description=spec.get("description", ""),
            evaluator=resolve(spec["evaluator"]) if spec.get("evaluator") else None,
            stage1=dict(spec.get("stage1", {})),
            stage2=dict(spec.get("stage2", {})),
            exemplar_prompt=str(spec.get("exemplar_prompt", ModelSet.exemplar_prompt)),
        )
    except (OSError, ValueError) as err:
        raise ConfigError(f"model set file '{path}' is not valid JSON: {err}") from err
    except (KeyError, TypeError) as err:
        raise ConfigError(
            f"model set file '{path}' lacks or misuses the field {err}; it needs 'clip', 'segmenters' and 'refiner'"
        ) from err
