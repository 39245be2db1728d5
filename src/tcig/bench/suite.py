"""The tables of ``tcig bench``: end to end against the references, each speed lever off and on, and scaling.

Every figure is the median of ``repeats`` timed runs after ``warmup`` untimed ones, with the peak memory of the
timed runs (CUDA allocator peak on a GPU; the process's resident set on a CPU, models included).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from tcig.bench.rigs import Rig
from tcig.evaluation.measure import measure
from tcig.pipeline import TCIGOutput
from tcig.settings import Stage1Settings, Stage2Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One way to run TCIG on a rig: its settings and the speed switches."""

    stage1: Stage1Settings
    stage2: Stage2Settings
    stage1_size: int | None
    batch: int = 1
    calls: int = 1
    autocast: bool = True
    channels_last: bool = True
    attention: str = "sdpa"
    compile: bool | str = False
    sync_every_step: bool = False
    start_cache: bool = False


@dataclass
class Timing:
    seconds: float
    peak_mb: float | None
    runs: list[float]


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> tuple[Timing, object]:
    """Median seconds and peak memory of ``fn`` over ``repeats`` runs after ``warmup`` runs; the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    runs, peaks = [], []
    for _ in range(repeats):
        with measure(device) as m:
            result = fn()
        runs.append(m.seconds)
        peaks.append(m.peak_mb)
    peak = max((p for p in peaks if p is not None), default=None)
    return Timing(statistics.median(runs), peak, runs), result


def default_spec(rig: Rig, stage1_steps: int | None, stage2_steps: int | None) -> RunSpec:
    """The rig's model-set defaults, with the step counts overridden when given."""
    ms = rig.pipe.model_set
    return RunSpec(ms.stage1_settings(steps=stage1_steps), ms.stage2_settings(steps=stage2_steps), ms.stage1_size)


def apply_switches(rig: Rig, spec: RunSpec) -> None:
    """Set the pipeline's speed switches (memory format, attention kernels, autocast, compile) to ``spec``'s."""
    pipe = rig.pipe
    pipe.stage1_autocast = spec.autocast
    pipe.compile_stage1 = spec.compile
    pipe.start_cache = rig.start_cache if spec.start_cache else None
    switches = (spec.channels_last, spec.attention, tuple(id(seg) for seg, _ in pipe.segmenters))
    if rig.switches == switches:  # the scaling table swaps segmenters in: they get the switches then
        return
    pipe.set_channels_last(spec.channels_last)
    for module in pipe.modules():
        set_attention(module, spec.attention)
    rig.switches = switches


def set_attention(module: torch.nn.Module, kind: str) -> None:
    """``sdpa`` (PyTorch's fused scaled-dot-product attention) or ``eager`` (matmul, softmax, matmul), where the
    model supports the choice; SegFormer and Mask2Former have their own attention code either way."""
    if hasattr(module, "set_attn_processor"):  # diffusers
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        now, wanted = (AttnProcessor, AttnProcessor2_0) if kind == "sdpa" else (AttnProcessor2_0, AttnProcessor)
        if all(type(p) is now for p in module.attn_processors.values()):  # UNets and VAEs, not MMDiT or FLUX
            module.set_attn_processor(wanted())
        elif not all(type(p) is wanted for p in module.attn_processors.values()):
            logger.debug("%s keeps its own attention processors", type(module).__name__)
    elif hasattr(module, "set_attn_implementation"):  # transformers
        try:
            module.set_attn_implementation(kind)
        except (ValueError, ImportError, NotImplementedError) as err:
            logger.debug("%s keeps its attention: %s", type(module).__name__, err)


def run_tcig(rig: Rig, spec: RunSpec) -> Callable[[], list[TCIGOutput]]:
    """A zero-argument run of ``spec.calls`` TCIG calls of ``spec.batch`` images each."""

    def run() -> list[TCIGOutput]:
        apply_switches(rig, spec)
        generator = torch.Generator().manual_seed(0)
        return [
            rig.pipe(
                rig.prompt,
                rig.layout,
                height=rig.size,
                width=rig.size,
                stage1=replace(spec.stage1),
                stage2=spec.stage2,
                stage1_size=min(spec.stage1_size or rig.size, rig.size),  # never above the output, as in TCIG
                num_images=spec.batch,
                generator=generator,
                callback=(lambda record: None) if spec.sync_every_step else None,
                progress=False,
            )
            for _ in range(spec.calls)
        ]

    return run


def tcig_row(name: str, rig: Rig, spec: RunSpec, repeats: int, warmup: int, device: torch.device) -> dict:
    """One timed TCIG configuration; a failure (out of memory, a compiler error) becomes the row's ``error``."""
    try:
        timing, outputs = timed(run_tcig(rig, spec), device, repeats, warmup)
    except Exception as err:  # noqa: BLE001 - a benchmark reports every failure and goes on
        logger.warning("%s failed: %s", name or "run", err)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {
            "name": name,
            "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
            "seconds": None,
            "seconds_per_image": None,
            "stage1_s": None,
            "stage2_s": None,
            "peak_mb": None,
        }
    images = spec.batch * spec.calls
    last = outputs[-1]
    return {
        "name": name,
        "seconds": timing.seconds,
        "seconds_per_image": timing.seconds / images,
        "stage1_s": sum(o.timings["stage1_s"] for o in outputs),
        "stage2_s": sum(o.timings.get("stage2_s", 0.0) for o in outputs),
        "stage1_steps": len(last.history),
        "stage1_size": last.settings["stage1_size"],
        "images": images,
        "peak_mb": timing.peak_mb,
        "runs": timing.runs,
    }


def main_table(rig: Rig, spec: RunSpec, repeats: int, warmup: int, device: torch.device) -> list[dict]:
    """The references, then TCIG at ``spec``; every row also as a ratio to the first reference."""
    rows = []
    for name, fn in rig.references.items():
        timing, _ = timed(fn, device, repeats, warmup)
        rows.append({"name": name, "seconds": timing.seconds, "peak_mb": timing.peak_mb, "runs": timing.runs})
        logger.info("%s: %.3f s", name, timing.seconds)
    rows.append(tcig_row("TCIG, default settings", rig, spec, repeats, warmup, device))
    logger.info("TCIG: %.3f s", rows[-1]["seconds"])
    yardstick = rows[0]["seconds"]
    for row in rows:
        row["ratio"] = row["seconds"] / yardstick
    return rows


LeverBuilder = Callable[[Rig, RunSpec, torch.device, "str | None"], "tuple[str, RunSpec, RunSpec] | None"]
_LEVERS: dict[str, LeverBuilder] = {}
CROPS_LEVER = "crops"
"""The one lever that is timed on its own (CLIP's crops batched against one by one), not as a whole run."""


def lever(key: str) -> Callable[[LeverBuilder], LeverBuilder]:
    """Register a speed lever: ``build(rig, spec, device, compile_mode)`` returns ``(what, off, on)`` (the defaults
    with the lever switched off and on) or None where the lever does not apply."""

    def register(build: LeverBuilder) -> LeverBuilder:
        _LEVERS[key] = build
        return build

    return register


@lever("resolution")
def _resolution(rig, spec, device, compile_mode):
    reduced = spec.stage1_size if spec.stage1_size and spec.stage1_size < rig.size else rig.size // 2
    return (
        f"stage 1 at {reduced} px instead of {rig.size}",
        replace(spec, stage1_size=rig.size),
        replace(spec, stage1_size=reduced),
    )


@lever("early-stop")
def _early_stop(rig, spec, device, compile_mode):
    patience = spec.stage1.patience or 10
    off, on = replace(spec.stage1, patience=0), replace(spec.stage1, patience=patience)
    return f"early stopping of stage 1 (patience {patience})", replace(spec, stage1=off), replace(spec, stage1=on)


@lever("guides-per-step")
def _guides_per_step(rig, spec, device, compile_mode):
    count = len(rig.pipe.segmenters)
    if count < 2:
        return None
    fewer = spec.stage1.guides_per_step or 1
    off, on = replace(spec.stage1, guides_per_step=0), replace(spec.stage1, guides_per_step=fewer)
    return (
        f"{fewer} of the {count} guides scored per stage-1 step",
        replace(spec, stage1=off),
        replace(spec, stage1=on),
    )


@lever("init-steps")
def _init_steps(rig, spec, device, compile_mode):
    if spec.stage1.init == "noise":
        return None
    fewer = min(spec.stage1.init_steps, 10)
    off, on = replace(spec.stage1, init_steps=30), replace(spec.stage1, init_steps=fewer)
    return f"start images drawn in {fewer} steps instead of 30", replace(spec, stage1=off), replace(spec, stage1=on)


@lever("start-cache")
def _start_cache(rig, spec, device, compile_mode):
    if spec.stage1.init == "noise" or rig.start_cache is None:
        return None
    return "start images read from the on-disk cache", spec, replace(spec, start_cache=True)


@lever("stage2-steps")
def _stage2_steps(rig, spec, device, compile_mode):
    more = max(50, spec.stage2.steps + 20)
    return (
        f"fewer stage-2 steps ({more} -> {spec.stage2.steps})",
        replace(spec, stage2=replace(spec.stage2, steps=more)),
        spec,
    )


@lever("batch")
def _batch(rig, spec, device, compile_mode):
    return "4 images per call (per image)", replace(spec, batch=1, calls=4), replace(spec, batch=4, calls=1)


@lever("sync")
def _sync(rig, spec, device, compile_mode):
    return "losses read back every 10 steps", replace(spec, sync_every_step=True), spec


@lever("channels-last")
def _channels_last(rig, spec, device, compile_mode):
    return "channels-last memory format", replace(spec, channels_last=False), replace(spec, channels_last=True)


@lever("sdpa")
def _sdpa(rig, spec, device, compile_mode):
    return "fused attention (SDPA)", replace(spec, attention="eager"), replace(spec, attention="sdpa")


@lever("autocast")
def _autocast(rig, spec, device, compile_mode):
    if device.type != "cuda":
        return None
    return "bf16 autocast in stage 1", replace(spec, autocast=False), replace(spec, autocast=True)


@lever("compile")
def _compile(rig, spec, device, compile_mode):
    if not compile_mode:
        return None
    return (
        f"torch.compile ({compile_mode}) of the stage-1 loss",
        replace(spec, compile=False),
        replace(spec, compile=compile_mode),
    )


LEVERS: tuple[str, ...] = (*_LEVERS, CROPS_LEVER)
"""Keys of the speed levers, for ``--levers``."""


def levers(
    rig: Rig, spec: RunSpec, device: torch.device, compile_mode: str | None
) -> dict[str, tuple[str, RunSpec, RunSpec]]:
    """key -> (lever, off, on): each registered lever that applies here, switched off and on from the defaults."""
    found = {key: build(rig, spec, device, compile_mode) for key, build in _LEVERS.items()}
    return {key: value for key, value in found.items() if value is not None}


def lever_table(
    rig: Rig,
    spec: RunSpec,
    repeats: int,
    warmup: int,
    device: torch.device,
    compile_mode: str | None,
    only: list[str] | None = None,
) -> list[dict]:
    rows = []
    for key, (name, off, on) in levers(rig, spec, device, compile_mode).items():
        if only and key not in only:
            continue
        before = tcig_row(f"{name} (off)", rig, off, repeats, warmup, device)
        after = tcig_row(f"{name} (on)", rig, on, repeats, warmup, device)
        ok = before["seconds"] is not None and after["seconds"] is not None
        rows.append(
            {
                "lever": name,
                "key": key,
                "before_s_per_image": before["seconds_per_image"],
                "after_s_per_image": after["seconds_per_image"],
                "speedup": before["seconds_per_image"] / after["seconds_per_image"] if ok else None,
                "before": before,
                "after": after,
            }
        )
        logger.info("%s: %s -> %s s/image", name, before["seconds_per_image"], after["seconds_per_image"])
    if not only or CROPS_LEVER in only:
        rows.append(crop_batching_row(rig, spec, device, repeats))
    return rows


def crop_batching_row(rig: Rig, spec: RunSpec, device: torch.device, repeats: int) -> dict:
    """CLIP forward and backward on the step's crops: one batched call against one call per crop."""
    from tcig.stage1.optimize import CropDraws, crop_views

    clip, n = rig.pipe.clip, spec.stage1.num_crops
    size = spec.stage1_size or rig.size
    image = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    draws = CropDraws.sample(n, clip.input_size, 0.0, torch.Generator().manual_seed(0), device)

    def batched():
        clip.encode_image(crop_views(image, n, clip.input_size, spec.stage1.crop_min, draws)).sum().backward()

    def one_by_one():
        for i in range(n):
            single = CropDraws(draws.uniform[i : i + 1], None)
            clip.encode_image(crop_views(image, 1, clip.input_size, spec.stage1.crop_min, single)).sum().backward()

    steps = 10
    before, _ = timed(lambda: [one_by_one() for _ in range(steps)], device, repeats, 1)
    after, _ = timed(lambda: [batched() for _ in range(steps)], device, repeats, 1)
    return {
        "lever": f"{n} CLIP crops in one forward (CLIP forward+backward per stage-1 step)",
        "key": CROPS_LEVER,
        "before_s_per_image": before.seconds / steps,
        "after_s_per_image": after.seconds / steps,
        "speedup": before.seconds / after.seconds,
        "unit": "seconds per step",
    }


def scaling_table(
    rig: Rig,
    spec: RunSpec,
    repeats: int,
    warmup: int,
    device: torch.device,
    resolutions: list[int],
    segmenter_counts: list[int],
    batches: list[int],
) -> list[dict]:
    """Time and memory against output resolution (stage 1 at the default fraction of it), number of guiding
    segmenters (the rig's, then its spares) and images per call."""
    rows = []
    fraction = (spec.stage1_size or rig.size) / rig.size
    base_size = rig.size
    for resolution in resolutions:
        rig.size = resolution
        run = replace(spec, stage1_size=max(8, round(resolution * fraction / 8) * 8))
        rows.append({"axis": "resolution", "value": resolution, **tcig_row("", rig, run, repeats, warmup, device)})
    rig.size = base_size
    guides = list(rig.pipe.segmenters)
    pool = guides + [(seg, 1.0) for seg in rig.spare_segmenters]
    for count in segmenter_counts:
        if count > len(pool):
            logger.warning("only %d segmenters to scale over; skipping %d", len(pool), count)
            continue
        rig.pipe.segmenters = pool[:count]
        row = tcig_row("", rig, spec, repeats, warmup, device)
        rows.append({"axis": "segmenters", "value": count, "names": [s.name for s, _ in pool[:count]], **row})
    rig.pipe.segmenters = guides
    for batch in batches:
        rows.append(
            {"axis": "batch", "value": batch, **tcig_row("", rig, replace(spec, batch=batch), repeats, warmup, device)}
        )
    for row in rows:
        row.pop("name", None)
    return rows
