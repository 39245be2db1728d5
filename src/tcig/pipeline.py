"""TCIGPipeline: stage 1 (control) then stage 2 (quality), on components passed in."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F

from tcig.errors import ConfigError, TCIGError
from tcig.io.cache import TensorCache
from tcig.layout import IGNORE, Layout
from tcig.layout.vocabularies import resolve_classes
from tcig.models.clip_scorer import CLIPScorer
from tcig.models.denoising import StepCallback
from tcig.models.devices import BYTES_PER_PIXEL, autocast_dtype, free_memory, refiner_dtype
from tcig.models.model_sets import ModelSet, load_model_set
from tcig.models.photo_layout import unchanged_mask
from tcig.models.refiners import Refiner, load_refiner
from tcig.models.segmenters import Segmenter, load_segmenter
from tcig.settings import Fit, SizeSettings, Stage1Settings, Stage2Settings, check_num_images
from tcig.stage1.optimize import SegTerm, run_stage1, seg_terms_loss
from tcig.stage1.parameterization import PixelPyramid, VAELatent
from tcig.stage1.priors import StartDrawer, initial_images, start_settings

logger = logging.getLogger(__name__)

Parameterization = Literal["pixel", "latent"]


@dataclass
class TCIGOutput:
    """Final and stage-1 images ``[B,3,H,W]`` in [0,1], the layout they were made for, losses, seconds per stage."""

    images: torch.Tensor
    stage1_images: torch.Tensor
    layout: Layout
    history: list[dict]
    timings: dict[str, float]
    settings: dict = field(default_factory=dict)


class TCIGPipeline:
    """Holds a CLIP scorer, guiding segmenters with weights and an optional refiner (None = stage 1 only).

    ``start_cache`` keeps the refiner's start images on disk between processes (see
    :class:`~tcig.stage1.priors.StartDrawer`). Speed switches: ``stage1_autocast`` (mixed precision for stage 1 on
    GPUs, on by default) and ``compile_stage1`` (``torch.compile`` of the stage-1 loss, True or a compile mode; the
    first call pays the compilation)."""

    def __init__(
        self,
        clip: CLIPScorer,
        segmenters: list[tuple[Segmenter, float]],
        refiner: Refiner | None = None,
        resolution: int = 512,
        stage1_size: int | None = None,
        model_set: ModelSet | None = None,
        start_cache: TensorCache | None = None,
    ) -> None:
        if not segmenters:
            raise ConfigError("TCIG needs at least one guiding segmenter")
        self.clip = clip
        self.segmenters = segmenters
        self.refiner = refiner
        self.resolution = resolution
        self.stage1_size = stage1_size
        self.model_set = model_set
        self.device = torch.device("cpu")
        self.stage1_autocast = True
        self.compile_stage1: bool | str = False
        self.start_cache = start_cache
        self._drawer: StartDrawer | None = None

    @classmethod
    def from_model_set(
        cls,
        model_set: str | ModelSet,
        *,
        allow_pickle: bool = False,
        class_names: list[str] | None = None,
        start_cache: TensorCache | None = None,
    ) -> TCIGPipeline:
        """Load every component of a named model set (or a JSON model-set file), on the CPU in float32, in the
        channels-last memory format (see :meth:`set_channels_last`).

        Args:
            model_set: a built-in name (``scenes``, ``sd15`` ...), a model-set JSON file, or a :class:`ModelSet`.
            allow_pickle: allow ``.bin``/``.pt``/``.ckpt`` weights (unpickling runs code).
            class_names: a layout's classes, matched to the segmenters' labels before the other models load, so an
                unknown class fails in seconds.
            start_cache: the on-disk cache of start images (None: none).
        """
        ms = load_model_set(model_set) if isinstance(model_set, str) else model_set
        segmenters = [(load_segmenter(ref, allow_pickle=allow_pickle), w) for ref, w in ms.segmenters]
        if class_names is not None:
            resolve_classes(class_names, _labels_by_key(segmenters))
        clip = CLIPScorer.from_pretrained(ms.clip, allow_pickle=allow_pickle)
        refiner = None
        if ms.refiner:
            refiner = load_refiner(ms.refiner, allow_pickle=allow_pickle, max_sequence_length=ms.max_sequence_length)
        pipe = cls(clip, segmenters, refiner, ms.resolution, ms.stage1_size, ms, start_cache)
        return pipe.set_channels_last()

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TCIGPipeline:
        """Stage-1 models stay float32 (they run under autocast on GPUs); the refiner takes ``dtype`` (None: float32
        on the CPU, else the refiner's own half precision, see :func:`~tcig.models.devices.refiner_dtype`)."""
        self.device = torch.device(device)
        self.clip.to(self.device)
        for seg, _ in self.segmenters:
            seg.to(self.device)
        if self.refiner is not None:
            self.refiner.to(self.device, dtype or refiner_dtype(self.device, self.refiner.preferred_dtype))
        return self

    @property
    def stage2_dtype(self) -> str | None:
        """The refiner's dtype (``float32``, ``bfloat16`` ...), None without a refiner."""
        return str(self.refiner.dtype).removeprefix("torch.") if self.refiner is not None else None

    def modules(self) -> list[torch.nn.Module]:
        """The networks: CLIP, each guiding segmenter, and every network of the refiner."""
        found = [self.clip.model] + [seg.model for seg, _ in self.segmenters]
        return found + (list(self.refiner.networks().values()) if self.refiner is not None else [])

    @property
    def size_multiple(self) -> int:
        """What output sides are rounded to: 8, or the refiner's multiple if larger (16 for FLUX.1 and SD3)."""
        return max(8, self.refiner.size_multiple) if self.refiner is not None else 8

    def set_channels_last(self, enabled: bool = True) -> TCIGPipeline:
        """Channels-last memory format for every network: 1.2× faster end to end on an H200, 1.07× on 2 CPU cores
        (docs/performance.md); :meth:`from_model_set` turns it on."""
        layout = torch.channels_last if enabled else torch.contiguous_format
        for module in self.modules():
            module.to(memory_format=layout)
        return self

    def output_size(self, layout: Layout, height: int | None, width: int | None, long_side: int) -> tuple[int, int]:
        """Explicit sizes win; a missing one follows the layout's aspect ratio with the long side ``long_side``."""
        h, w = layout.size
        if height is None and width is None:
            scale = long_side / max(h, w)
            height, width = h * scale, w * scale
        elif height is None:
            height = width * h / w
        elif width is None:
            width = height * w / h
        return _multiple_of(height, self.size_multiple), _multiple_of(width, self.size_multiple)

    def check_inputs(
        self,
        prompt: str,
        layout: Layout,
        parameterization: str,
        stage2: Stage2Settings | None,
        stage1: Stage1Settings,
        num_images: int,
        has_photo: bool = False,
    ) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("the prompt is empty; describe the image with --prompt")
        layout.check_labelled()
        if parameterization not in ("pixel", "latent"):
            raise ConfigError(f"unknown parameterization '{parameterization}'; use pixel or latent")
        if parameterization == "latent" and (self.refiner is None or self.refiner.vae is None):
            raise ConfigError("the latent parameterization needs a latent-diffusion refiner (its VAE); use pixel")
        stage1.check()
        if stage1.init != "noise" and self.refiner is None and not has_photo:
            raise ConfigError(f"--init {stage1.init} draws from the refiner, and the pipeline has none; use noise")
        if stage2 is not None:
            if self.refiner is None:
                raise ConfigError("stage 2 was asked for but the pipeline has no refiner; give one or skip stage 2")
            self.refiner.check(stage2)
        check_num_images(num_images, "num_images")

    def check_memory(self, num_images: int, size: tuple[int, int], stage1_size: tuple[int, int], stage1) -> None:
        """Refuse, before any work, a call whose working memory clearly exceeds what the device has free.

        The estimate is a floor, :data:`~tcig.models.devices.BYTES_PER_PIXEL` per output pixel and per stage-1
        pixel and view (CLIP crops, segmenter views) of every image, under what was measured, so what it refuses
        cannot fit; what it lets through may still run out, with the usual one-line error."""
        available = free_memory(self.device)
        if available is None:
            return
        views = 1 + stage1.num_crops * (stage1.clip_weight > 0) + stage1.seg_views * len(self.segmenters)
        per_image = BYTES_PER_PIXEL * (size[0] * size[1] + stage1_size[0] * stage1_size[1] * views)
        need = num_images * per_image
        if need > available:
            biggest = "--num-images" if num_images > 1 else "--height/--width or --stage1-size"
            raise ConfigError(
                f"{num_images} image(s) at {size[1]}x{size[0]} need at least {need / 2**30:.1f} GiB of working "
                f"memory and {self.device} has {available / 2**30:.1f} GiB free; lower {biggest} (or --num-crops)"
            )

    def seg_terms(self, layout: Layout, batch: int) -> list[SegTerm]:
        """Map the layout's class names onto each segmenter's labels and build its target label map."""
        labels = _labels_by_key(self.segmenters)
        mapping = resolve_classes(layout.classes, labels)
        terms = []
        for key, (seg, weight) in zip(labels, self.segmenters, strict=True):
            if weight == 0:
                continue
            lookup = torch.tensor([IGNORE if m is None else m for m in mapping[key]] + [IGNORE])
            target = lookup[layout.label_map]  # IGNORE (-1) indexes the appended IGNORE entry
            if (target == IGNORE).all():
                logger.info("segmenter %s knows none of the layout's classes: it does not guide", seg.name)
                continue
            queries = None
            if seg.labels is None:
                queries = [layout.region_texts.get(i, name) for i, name in enumerate(layout.classes)]
            terms.append(SegTerm(seg, weight, target.expand(batch, -1, -1), queries))
        if not terms:
            raise TCIGError("no guiding segmenter has a non-zero weight and knows a class of the layout")
        return terms

    def __call__(
        self,
        prompt: str,
        layout: Layout,
        *,
        height: int | None = None,
        width: int | None = None,
        fit: Fit | None = None,
        stage1_size: int | None = None,
        parameterization: Parameterization = "pixel",
        stage1: Stage1Settings | None = None,
        stage2: Stage2Settings | None = None,
        refine: bool | None = None,
        num_images: int = 1,
        init_image: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
        progress: bool = True,
    ) -> TCIGOutput:
        """Generate ``num_images`` images for ``prompt`` following ``layout``.

        1. check the inputs (values, sizes, and a floor of the memory they need); 2. size the layout; 3. resolve
        class names per segmenter; 4. optimize (stage 1); 5. upsample and refine (stage 2).

        Args:
            prompt: the text prompt.
            layout: the semantic layout (see :mod:`tcig.layout.readers` to read one from a file).
            height, width: output size (default: the layout's aspect ratio with the long side at the model set's
                resolution), rounded to multiples of 8 or of the refiner's size multiple (16 for FLUX.1 and SD3).
            fit: ``stretch``, ``crop`` or ``pad`` when the output's aspect ratio differs from the layout's.
            stage1_size: long side of the stage-1 image (default: the model set's, at most the output's).
            parameterization: ``pixel`` (a pyramid) or ``latent`` (the refiner's VAE latents).
            stage1, stage2: settings (default: the model set's tuned ones; see :mod:`tcig.settings`).
            refine: False stops after stage 1 (default: refine whenever the pipeline has a refiner).
            num_images: images optimized as one batch (1..64).
            init_image: a photo ``[3,H,W]`` or ``[1 or num_images,3,H,W]`` in [0,1] to edit by layout: stage 1
                starts from it (instead of ``stage1.init``) and, where the guides already see in it the class the
                layout asks for, it is pasted back into the stage-1 and final images (``stage1.keep_photo``). It is
                stretched to the output size (a warning says so if its aspect ratio differs).
            generator: the only source of randomness.
            callback: progress events, each a dict with a ``"stage"``: ``"init"`` after every sampling step of the
                start images (``step`` from 1, ``steps``);
                ``"stage1"`` after every stage-1 step (``step`` from 0, ``steps``, the losses, ``images``);
                ``"stage2"`` after every denoising step (``step`` from 1, ``steps``, ``cycle``: 0, then each cycle's
                number); ``"cycle"`` after every polishing step (as ``"stage1"``, with ``cycle``). An exception it
                raises stops the call there (e.g. to cancel).
            progress: show progress bars.

        Returns:
            :class:`TCIGOutput` with the images, the stage-1 images, the sized layout, the loss history, timings
            and every setting that ran.
        """
        defaults = self.model_set
        stage1 = stage1 or (defaults.stage1_settings() if defaults else Stage1Settings())
        if refine is None:
            refine = self.refiner is not None
        stage2 = (stage2 or (defaults.stage2_settings() if defaults else Stage2Settings())) if refine else None
        self.check_inputs(prompt, layout, parameterization, stage2, stage1, num_images, init_image is not None)
        SizeSettings(height, width, fit, stage1_size, parameterization).check()
        derived = height is None and width is None and fit is None
        height, width = self.output_size(layout, height, width, self.resolution)
        try:
            layout = layout.resized(height, width, fit, rounding=self.size_multiple)
        except ConfigError:
            if not derived:
                raise
            (h, w), m = layout.size, self.size_multiple
            raise ConfigError(
                f"the layout is {w}x{h}, a shape that sides rounded to multiples of {m} cannot keep at the model "
                f"set's {self.resolution} pixels (it would be {width}x{height}); give --height/--width and --fit, or "
                "draw a less elongated layout"
            ) from None
        h1, w1 = self.stage1_shape(layout, stage1_size)
        self.check_memory(num_images, (height, width), (h1, w1), stage1)
        timings: dict[str, float] = {}

        start = time.perf_counter()
        photo = keep = None
        if init_image is not None:
            photo = self.photo_at(init_image, layout.size, num_images)
            init = F.interpolate(photo, size=(h1, w1), mode="bilinear", align_corners=False, antialias=True)
            keep = unchanged_mask(self.segmenters, init, layout.resized(h1, w1, "stretch"))  # as the guides see it
            keep = stage1.keep_photo * F.interpolate(keep, size=layout.size, mode="bilinear", align_corners=False)
            keep = keep.to(self.device)
            logger.info("editing the photo: %.0f %% of it is kept", 100 * float(keep.mean()))
        else:
            init = self.initial_images(
                stage1, prompt, layout, (h1, w1), num_images, generator, _step_events(callback, "init"), progress
            )
        if init is not None:
            timings["init_s"] = time.perf_counter() - start
        start = time.perf_counter()
        stage1_events = _optimizer_events(callback, "stage1", stage1.steps)
        stage1_images, history = self.optimize(
            prompt, layout, (h1, w1), stage1, num_images, parameterization, init, generator, stage1_events, progress
        )
        timings["stage1_s"] = time.perf_counter() - start
        if keep is not None:
            stage1_images = keep * photo + (1 - keep) * stage1_images
        images = stage1_images
        if stage2 is not None:
            start = time.perf_counter()
            images = self.refine(
                stage1_images, prompt, layout, stage2, stage1, generator, progress, (h1, w1), callback
            )
            if keep is not None:
                images = keep * photo + (1 - keep) * images
            timings["stage2_s"] = time.perf_counter() - start
        timings["total_s"] = sum(timings.values())
        settings = {
            "prompt": prompt,
            "height": height,
            "width": width,
            "fit": fit,
            "stage1_size": [h1, w1],
            "parameterization": parameterization,
            "num_images": num_images,
            "init_image": None if photo is None else list(init_image.shape[-2:]),
            "stage1": asdict(stage1),
            "stage2": asdict(stage2) if stage2 is not None else None,
            "stage2_noise_levels": self.noise_levels(stage2, (height, width)) if stage2 is not None else None,
            "device": str(self.device),
            "models": self.describe(),
        }
        return TCIGOutput(images.cpu(), stage1_images.cpu(), layout, history, timings, settings)

    def photo_at(self, photo: torch.Tensor, size: tuple[int, int], num_images: int) -> torch.Tensor:
        """An init image checked and stretched to ``size``, one per image ``[B,3,*size]`` on the device."""
        if photo.ndim == 3:
            photo = photo[None]
        if photo.ndim != 4 or photo.shape[1] != 3 or photo.shape[0] not in (1, num_images):
            raise ConfigError(f"an init image must be [3,H,W] or [1 or {num_images},3,H,W], got {tuple(photo.shape)}")
        if not torch.isfinite(photo).all() or photo.min() < 0 or photo.max() > 1:
            raise ConfigError("an init image must hold values in [0, 1]")
        h, w = photo.shape[-2:]
        if abs(math.log((w / h) / (size[1] / size[0]))) > 0.02:
            logger.warning(
                "the init image is %dx%d and the output %dx%d: the photo is stretched to the layout's aspect ratio",
                w, h, size[1], size[0],
            )  # fmt: skip
        photo = F.interpolate(photo.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
        return photo.clamp(0, 1).expand(num_images, -1, -1, -1).to(self.device)

    def stage1_shape(self, layout: Layout, stage1_size: int | None = None) -> tuple[int, int]:
        """Stage 1's (height, width) for a layout already at the output size: the model set's stage-1 size is a
        ceiling (never above the output); an explicit ``stage1_size`` is used as given."""
        long_side = max(layout.size)
        return self.output_size(layout, None, None, stage1_size or min(self.stage1_size or long_side, long_side))

    def optimize(
        self,
        prompt: str,
        layout: Layout,
        size: tuple[int, int],
        stage1: Stage1Settings,
        num_images: int,
        parameterization: Parameterization = "pixel",
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
        progress: bool = True,
    ) -> tuple[torch.Tensor, list[dict]]:
        """Stage 1 at ``size`` from ``init`` (images ``[B,3,*size]``, or None for the parameterization's random
        start); returns images upsampled to the layout's size and the loss history."""
        h1, w1 = size
        terms = self.seg_terms(layout.resized(h1, w1, "stretch"), num_images)
        with torch.no_grad():
            text_embeds = self.clip.encode_text([prompt] * num_images) if stage1.clip_weight > 0 else None
        if parameterization == "latent":
            param = VAELatent(self.refiner.vae, num_images, h1, w1, init=init, generator=generator)
        else:
            param = PixelPyramid(
                num_images,
                h1,
                w1,
                levels=stage1.pyramid_levels,
                finest=stage1.pyramid_finest,
                init_std=stage1.init_noise if init is not None else 0.5,
                init=init,
                generator=generator,
            )
        param.to(self.device)
        images, history = run_stage1(
            param,
            settings=stage1,
            seg_terms=terms,
            clip=self.clip,
            text_embeds=text_embeds,
            generator=generator,
            callback=callback,
            autocast_dtype=autocast_dtype(self.device) if self.stage1_autocast else None,
            compile_step=self.compile_stage1,
            progress=progress,
        )
        _sync(self.device)
        if (h1, w1) != layout.size:
            images = F.interpolate(images, size=layout.size, mode="bicubic", align_corners=False).clamp(0, 1)
        return images, history

    def initial_images(
        self,
        stage1: Stage1Settings,
        prompt: str,
        layout: Layout,
        size: tuple[int, int],
        num_images: int,
        generator: torch.Generator | None,
        callback: StepCallback | None = None,
        progress: bool = False,
    ) -> torch.Tensor | None:
        """Stage 1's starting images ``[B,3,*size]`` for ``stage1.init`` (None for noise), painted from the refiner's
        images drawn at ``size`` with ``stage1.init_steps`` steps; ``callback(step, steps)`` follows each sampling
        step."""
        if stage1.init == "noise":
            return None
        if self._drawer is None:
            template = self.model_set.exemplar_prompt if self.model_set else ModelSet.exemplar_prompt
            guides = [seg for seg, _ in self.segmenters]
            self._drawer = StartDrawer(self.refiner, guides, template)
        self._drawer.cache = self.start_cache
        stage2 = self.model_set.stage2_settings() if self.model_set else Stage2Settings()
        images = initial_images(
            stage1.init,
            layout.resized(*size, "stretch"),
            prompt,
            num_images,
            drawer=self._drawer,
            settings=start_settings(stage2, stage1.init_steps),
            generator=generator,
            progress=progress,
            callback=callback,
        )
        return images.clamp(0, 1).to(self.device)

    def refine(
        self,
        images: torch.Tensor,
        prompt: str,
        layout: Layout,
        stage2: Stage2Settings,
        stage1: Stage1Settings,
        generator: torch.Generator | None = None,
        progress: bool = True,
        stage1_size: tuple[int, int] | None = None,
        callback: Callable[[dict], None] | None = None,
    ) -> torch.Tensor:
        """Stage 2 on ``images`` at the layout's size. With ``stage2.seg_guidance > 0`` the guides' segmentation
        loss steers every denoising step (guided refinement); with ``stage2.cycles`` each cycle polishes the refined
        image with ``cycle_steps`` stage-1 steps (``stage1``'s settings, on the pixel pyramid at ``stage1_size``) and
        refines it again at ``cycle_strength``, so the layout that stage 2 blurred is restored and realism kept.
        ``callback`` gets the ``"stage2"`` and ``"cycle"`` events of :meth:`__call__`."""
        prompts = [prompt] * images.shape[0]
        guidance = None
        if stage2.seg_guidance > 0:
            guidance = seg_terms_loss(self.seg_terms(layout, images.shape[0]), stage1.seg_loss)
        size = stage1_size or self.stage1_shape(layout)
        polish = replace(stage1, steps=stage2.cycle_steps, init_noise=0.0)
        again = stage2.cycle()
        images = self.refiner.refine(
            images,
            prompts,
            stage2,
            generator=generator,
            progress=progress,
            guidance=guidance,
            callback=_step_events(callback, "stage2", cycle=0),
        )
        for cycle in range(1, stage2.cycles + 1):
            start = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
            images, _ = self.optimize(
                prompt,
                layout,
                size,
                polish,
                images.shape[0],
                init=start.clamp(0, 1),
                generator=generator,
                callback=_optimizer_events(callback, "cycle", polish.steps, cycle=cycle),
                progress=progress,
            )
            images = self.refiner.refine(
                images,
                prompts,
                again,
                generator=generator,
                progress=progress,
                guidance=guidance,
                callback=_step_events(callback, "stage2", cycle=cycle),
            )
        _sync(self.device)
        return images

    def noise_levels(self, stage2: Stage2Settings, size: tuple[int, int]) -> dict:
        """The noise levels (flow-matching scale, see ``Stage2Settings.noise_level``) at which the refinement and each
        cycle's refinement start for images of ``size``, and the denoising steps each runs."""
        first = self.refiner.levels(stage2, *size)
        out = {"refine": round(first[0].noise_level, 4), "refine_steps": len(first) - 1}
        if stage2.cycles:
            again = self.refiner.levels(stage2.cycle(), *size)
            out.update(cycle=round(again[0].noise_level, 4), cycle_steps=len(again) - 1)
        return out

    def class_colours(self, layout: Layout):
        """``uint8 [K, 3]`` colours of the layout's classes for pictures: the model set's natural colours where it
        declares them, else the standard dataset palettes (see :func:`tcig.io.pictures.layout_colours`)."""
        from tcig.io.pictures import layout_colours

        return layout_colours(layout.classes, self.model_set.colours() if self.model_set else None)

    def describe(self) -> dict:
        """The model ids or folders in use, for the output sidecar."""
        return {
            "clip": self.clip.name,
            "segmenters": [{"id": seg.name, "weight": w} for seg, w in self.segmenters],
            "refiner": self.refiner.name if self.refiner is not None else None,
            "refiner_kind": self.refiner.describe() if self.refiner is not None else None,
        }


def _labels_by_key(segmenters: list[tuple[Segmenter, float]]) -> dict[str, list[str] | None]:
    """Each segmenter's labels under a unique key (the same model may guide twice)."""
    return {f"{seg.name} (#{i})": seg.labels for i, (seg, _) in enumerate(segmenters)}


def _step_events(callback: Callable[[dict], None] | None, stage: str, **extra) -> StepCallback | None:
    """A sampling-step callback that reports to ``callback`` as ``{"stage": stage, "step", "steps", **extra}``."""
    if callback is None:
        return None
    return lambda step, steps: callback({"stage": stage, "step": step, "steps": steps, **extra})


def _optimizer_events(callback: Callable[[dict], None] | None, stage: str, steps: int, **extra):
    """A stage-1 step callback that reports to ``callback`` as ``{"stage": stage, "steps": steps, **extra}`` and the
    step's record (``step`` from 0, losses, images)."""
    if callback is None:
        return None
    return lambda info: callback({"stage": stage, "steps": steps, **extra, **info})


def _multiple_of(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
