"""Where a stage-1 step's time goes: CLIP on its crops, the segmenter views, each guide, and the rest (optimizer,
Python, the parameterization), each timed on its own at the rig's stage-1 size and batch, against whole steps."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import torch

from tcig.bench.rigs import Rig
from tcig.bench.suite import RunSpec, timed
from tcig.models.devices import autocast_dtype
from tcig.stage1.losses import segmentation_loss, spherical_dist_loss
from tcig.stage1.optimize import CropDraws, ViewDraws, crop_views, segmenter_views

STEPS = 20
"""Steps per timed run of a part (and of whole steps)."""


def profile_table(rig: Rig, spec: RunSpec, repeats: int, device: torch.device) -> list[dict]:
    """Milliseconds per stage-1 step of each part (forward and backward), and its share of a whole step with every
    guide scored; the last rows are whole steps with every guide and as the defaults run them."""
    pipe, s1, batch = rig.pipe, spec.stage1, spec.batch
    side = min(spec.stage1_size or rig.size, rig.size)
    layout = rig.layout.resized(side, side, "stretch")
    terms = pipe.seg_terms(layout, batch)
    targets = [term.target.to(device) for term in terms]
    images = torch.rand(batch, 3, side, side, device=device, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    amp_dtype = autocast_dtype(device) if pipe.stage1_autocast else None

    def amp():
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()

    with torch.no_grad():
        text = pipe.clip.encode_text([rig.prompt] * batch).repeat_interleave(s1.num_crops, dim=0)

    def clip_part():
        draws = CropDraws.sample(batch * s1.num_crops, pipe.clip.input_size, s1.crop_noise, generator, device)
        with amp():
            crops = crop_views(images, s1.num_crops, pipe.clip.input_size, s1.crop_min, draws)
            loss = spherical_dist_loss(pipe.clip.encode_image(crops), text)
        loss.backward()

    def views():
        draws = ViewDraws.sample(batch * s1.seg_views, (side, side), s1, generator, device)
        return segmenter_views(images, targets, s1.seg_views, draws)

    def views_part():
        with amp():
            seen, _ = views()
        seen.float().sum().backward()

    def guide_part(index: int):
        def run():
            seen, moved = views() if s1.robust_views else (images, targets)
            with amp():
                logits = terms[index].segmenter(seen, terms[index].queries)
                loss = segmentation_loss(logits, moved[index], s1.seg_loss)
            loss.backward()

        return run

    def whole(settings):
        def run():
            pipe.optimize(rig.prompt, layout, (side, side), settings, batch, progress=False)

        return run

    parts = [(f"CLIP, {s1.num_crops} crops per image", clip_part)]
    if s1.robust_views:
        parts.append((f"segmenter views ({s1.seg_views} per image: shift, scale, blur, noise)", views_part))
    parts += [(f"guide {term.segmenter.name}", guide_part(i)) for i, term in enumerate(terms)]
    every_guide = replace(s1, steps=STEPS, patience=0, guides_per_step=0)
    as_run = replace(s1, steps=STEPS, patience=0)
    rows = []
    views_ms = 0.0
    for name, fn in parts:
        timing, _ = timed(lambda fn=fn: [fn() for _ in range(STEPS)], device, repeats, 1)
        ms = 1000 * timing.seconds / STEPS
        if name.startswith("segmenter views"):
            views_ms = ms
        elif name.startswith("guide"):  # each guide's run made its own views: count them once, in their row
            ms = max(ms - views_ms, 0.0)
        rows.append({"part": name, "ms_per_step": ms})
    full, _ = timed(whole(every_guide), device, repeats, 1)
    full_ms = 1000 * full.seconds / STEPS
    counted = sum(r["ms_per_step"] for r in rows)
    rows.append({"part": "the rest: optimizer, parameterization, Python", "ms_per_step": max(full_ms - counted, 0.0)})
    rows.append({"part": "whole step, every guide scored", "ms_per_step": full_ms})
    if s1.guides_per_step and s1.guides_per_step < len(terms):
        defaults, _ = timed(whole(as_run), device, repeats, 1)
        name = f"whole step, {s1.guides_per_step} of {len(terms)} guides scored (the defaults)"
        rows.append({"part": name, "ms_per_step": 1000 * defaults.seconds / STEPS})
    for row in rows:
        row["share"] = row["ms_per_step"] / full_ms
    return rows
