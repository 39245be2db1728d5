"""What ``tcig bench`` times: a TCIG pipeline with a layout and a prompt, and the reference methods beside it.

Two kinds of rig: real-size architectures with random weights (``random_rig``: SD1.5 or SDXL, a CLIP, segmenters,
and a ControlNet built from the UNet as the reference), and a model set with its trained weights (``model_set_rig``,
e.g. the bundled ``scenes`` set, with the refiner's own text-to-image as the reference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from tcig.bench import models
from tcig.io.cache import TensorCache
from tcig.io.pictures import colorize
from tcig.layout import Layout
from tcig.models.model_sets import load_model_set
from tcig.models.segmenters import Segmenter
from tcig.pipeline import TCIGPipeline
from tcig.settings import Stage2Settings


@dataclass
class Rig:
    """``references`` are zero-argument runs (name -> run); the first is the yardstick for ratios.
    ``spare_segmenters`` are extra guides for the scaling table."""

    pipe: TCIGPipeline
    prompt: str
    layout: Layout
    size: int
    references: dict[str, Callable[[], object]]
    spare_segmenters: list[Segmenter] = field(default_factory=list)
    description: dict = field(default_factory=dict)
    switches: tuple | None = None  # the speed switches last applied (see suite.apply_switches)
    start_cache: TensorCache | None = None
    """The on-disk cache of start images that the start-cache lever switches on (an empty folder at first)."""


def street_layout(size: int) -> Layout:
    """An ADE20K layout: sky over a building and a tree, grass and a road below."""
    label_map = torch.zeros(size, size, dtype=torch.long)  # sky
    label_map[int(0.35 * size) :, : int(0.55 * size)] = 1  # building
    label_map[int(0.3 * size) :, int(0.6 * size) :] = 2  # tree
    label_map[int(0.75 * size) :] = 3  # grass
    label_map[int(0.85 * size) :, int(0.3 * size) : int(0.7 * size)] = 4  # road
    return Layout(label_map, ["sky", "building", "tree", "grass", "road"])


STREET_PROMPT = "a brick house and a large tree beside a road under a blue sky, photo"


def _reference_image(size: int, device: torch.device) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)


def random_rig(
    arch: str,
    clip: str,
    segmenters: list[str],
    spare: list[str],
    device: torch.device,
    dtype: torch.dtype,
    size: int | None,
    model_set: str,
    reference_steps: int,
    img2img_strength: float,
) -> Rig:
    tokenizer = models.byte_tokenizer()
    diffusion = models.random_diffusion(arch, device, dtype, tokenizer)
    size = size or diffusion["resolution"]
    guides = [(models.random_segmenter(name, device), 1.0) for name in segmenters]
    pipe = TCIGPipeline(
        models.random_clip(clip, device, tokenizer),
        guides,
        models.img2img_refiner(diffusion),
        size,
        model_set=load_model_set(model_set),
    ).to(device, dtype)
    layout = street_layout(size)
    controlnet = models.controlnet_pipeline(diffusion, device, tokenizer)
    controlnet.set_progress_bar_config(disable=True)
    control = torch.from_numpy(np.array(colorize(layout))).permute(2, 0, 1)[None].float().div(255)

    def run_controlnet():
        return controlnet(
            STREET_PROMPT,
            image=control.to(device, controlnet.unet.dtype),
            num_inference_steps=reference_steps,
            height=size,
            width=size,
            output_type="pt",
            generator=torch.Generator().manual_seed(0),
        )

    image = _reference_image(size, device)
    img2img = Stage2Settings(strength=img2img_strength, steps=reference_steps)
    controlled = "ControlNet" if diffusion["family"] not in models.FLOW_FAMILIES else "SD1.5 + ControlNet"
    references = {
        f"{controlled} text-to-image, {reference_steps} steps": run_controlnet,
        f"img2img at strength {img2img_strength:g}, {reference_steps} steps": lambda: pipe.refiner.refine(
            image, [STREET_PROMPT], img2img, torch.Generator().manual_seed(0), progress=False
        ),
    }
    return Rig(
        pipe,
        STREET_PROMPT,
        layout,
        size,
        references,
        [models.random_segmenter(name, device) for name in spare],
        {"weights": "random", "arch": arch, "clip": clip, "segmenters": segmenters, "defaults_from": model_set},
    )


def model_set_rig(
    name: str,
    spare: list[str],
    device: torch.device,
    dtype: torch.dtype,
    size: int | None,
    reference_steps: int,
    img2img_strength: float,
) -> Rig:
    """A model set with its weights; the layout is the set's ``demo_layout``, else the street layout."""
    from tcig.models.segmenters import load_segmenter

    pipe = TCIGPipeline.from_model_set(name).to(device, dtype)
    size = size or pipe.resolution
    if pipe.model_set is not None and pipe.model_set.demo_layout:
        from tcig.layout.readers import read_layout

        layout = read_layout(pipe.model_set.demo_layout)
        prompt = layout.prompt or STREET_PROMPT
    else:
        layout, prompt = street_layout(size), STREET_PROMPT
    t2i = Stage2Settings(steps=reference_steps, **{k: v for k, v in pipe.model_set.stage2.items() if k != "steps"})
    image = _reference_image(size, device)
    img2img = Stage2Settings(strength=img2img_strength, steps=reference_steps, guidance_scale=t2i.guidance_scale)
    references = {
        f"diffusion alone (text-to-image), {reference_steps} steps": lambda: pipe.refiner.text_to_image(
            [prompt], size, size, t2i, torch.Generator().manual_seed(0), progress=False
        ),
        f"img2img at strength {img2img_strength:g}, {reference_steps} steps": lambda: pipe.refiner.refine(
            image, [prompt], img2img, torch.Generator().manual_seed(0), progress=False
        ),
    }
    spares = [load_segmenter(ref).to(device) for ref in spare]
    return Rig(pipe, prompt, layout, size, references, spares, {"weights": "trained", "model_set": name})
