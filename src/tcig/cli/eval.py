"""``tcig eval``: TCIG and its baselines on the same cases, scored by a segmenter that never guided."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace

import torch

from tcig import __version__
from tcig.cli.common import (
    Command,
    HelpContext,
    add_loading_arguments,
    add_output_arguments,
    add_preset_argument,
    add_run_arguments,
    assignments,
    float_list,
    int_list,
    output_folder,
    start_cache,
    wait_seconds,
    word_list,
)
from tcig.errors import ConfigError
from tcig.models.devices import resolve_device, resolve_dtype
from tcig.models.model_sets import BUILTIN, load_model_set, parse_segmenter_arg, read_class_colours
from tcig.settings import Stage1Settings, Stage2Settings, check_num_images, check_seed, split_settings

logger = logging.getLogger("tcig")


def add_arguments(ev: argparse.ArgumentParser, context: HelpContext) -> None:
    from tcig.evaluation.methods import BASELINES, METHODS

    io = ev.add_argument_group("cases and report")
    io.add_argument(
        "--cases",
        action="append",
        metavar="SOURCE",
        help="folder:DIR (layouts with prompts), real:DIR (COCO-Stuff/ADE20K maps with photos, as in "
        "shared/data/real), scenes:N[:FIRST_SEED] (rendered scenes); repeatable (default scenes:100)",
    )
    io.add_argument(
        "--coco-protocol",
        action="store_true",
        help="keep layouts with 2-4 Pascal VOC classes, no person, each >= 5 %% of the image; other classes "
        "become don't care (the paper's COCO test)",
    )
    io.add_argument("--limit", type=int, help="use at most this many cases (after filtering)")
    add_output_arguments(io, "report folder (created; an existing one is resumed)")
    io.add_argument("--title", default="report", help="title of summary.md")

    models = ev.add_argument_group("models")
    models.add_argument("--models", default="scenes", help=f"model set: {', '.join(BUILTIN)} or a JSON file")
    models.add_argument(
        "--segmenter", action="append", metavar="ID[:WEIGHT]", help="guiding segmenter(s), replacing the set's"
    )
    models.add_argument(
        "--extra-segmenter",
        action="append",
        metavar="ID[:WEIGHT]",
        help="adds a guiding segmenter in a second sweep arm, to compare one with several guides",
    )
    models.add_argument("--evaluator", help="segmenter that scores control; must not guide (default: the set's)")
    models.add_argument("--clip-score-model", help="CLIP for CLIP scores (default: the guiding CLIP)")
    models.add_argument(
        "--features",
        default="evaluator",
        help="KID/FID features: 'evaluator' (its backbone; default, since stage 1 optimizes the guiding CLIP and "
        "would fool its features) or a CLIP id or folder",
    )
    add_loading_arguments(models)
    add_preset_argument(models)

    methods = ev.add_argument_group("methods and sweeps")
    methods.add_argument(
        "--methods",
        help=f"comma list of {', '.join(METHODS)} (default: all that the model set can run; controlnet needs a set "
        "that declares a ControlNet)",
    )
    methods.add_argument(
        "--settings",
        type=assignments,
        default={},
        metavar="KEY=VALUE,...",
        help="settings over the set's for every method, by the keys of tcig batch, e.g. lr=0.03,stage2_steps=50",
    )
    methods.add_argument(
        "--variant",
        action="append",
        metavar="NAME:KEY=VALUE,...",
        help="a named TCIG variant with its own settings (stage-1 and stage-2 fields as in tcig batch, e.g. "
        "no-tv:tv_weight=0 or single:weights=1/0/0 for the guides' weights); repeat for several (an ablation)",
    )
    methods.add_argument("--strengths", type=float_list, help="TCIG stage-2 strengths to sweep (default: the set's)")
    methods.add_argument("--stage1-steps", type=int_list, help="stage-1 step counts to sweep (default: the set's)")
    methods.add_argument(
        "--seg-losses", type=word_list, help="segmentation losses to sweep: mse,ce (default: the set's)"
    )
    methods.add_argument(
        "--class-colours",
        help="JSON {class: [r,g,b]} to paint layouts for sdedit-layout (default: the model set's class colours, "
        "else the standard dataset palettes)",
    )
    for method, baseline in BASELINES.items():
        for s in baseline.settings:
            methods.add_argument(
                s.flag, dest=s.key, type=float, metavar="X", help=f"{method}: {s.help} (default {s.default:g})"
            )

    run = ev.add_argument_group("run")
    run.add_argument("--size", type=int, help="square output size (default: the set's resolution)")
    run.add_argument("--num-images", type=int, default=1, help="images per case and method (default 1)")
    add_run_arguments(run)  # the same seed (shared by every method), device, dtype, progress and -v


def _variants(texts: list[str]) -> dict[str, dict]:
    """``NAME:KEY=VALUE,...`` arguments as {name: overrides}; a repeated name is an error."""
    variants: dict[str, dict] = {}
    for text in texts:
        name, sep, values = text.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--variant '{text}' is not NAME:KEY=VALUE,...")
        if name.strip() in variants:
            raise ConfigError(f"--variant '{name.strip()}' is given twice")
        try:
            variants[name.strip()] = assignments(values) if values.strip() else {}
        except argparse.ArgumentTypeError as err:
            raise ConfigError(f"--variant '{text}': {err}") from err
    return variants


def _class_colours(arg: str | None, model_set) -> dict | None:
    if arg:
        return read_class_colours(arg, "--class-colours")
    return model_set.colours() or None


def _model_set(args: argparse.Namespace):
    """The model set with the preset and guides asked for, its extra guides and its evaluator, checked."""
    from tcig.evaluation.runner import check_evaluator

    segmenters = [parse_segmenter_arg(s) for s in args.segmenter] if args.segmenter else None
    model_set = load_model_set(args.models).with_preset(args.preset).with_overrides(segmenters=segmenters)
    extras = [parse_segmenter_arg(s) for s in args.extra_segmenter or []]
    evaluator_ref = args.evaluator or model_set.evaluator
    if not evaluator_ref:
        raise ConfigError(f"the model set '{model_set.name}' names no evaluator; give --evaluator")
    check_evaluator(evaluator_ref, [ref for ref, _ in model_set.segmenters] + [ref for ref, _ in extras])
    if model_set.refiner is None:
        raise ConfigError("tcig eval compares refined images; the model set needs a refiner")
    return model_set, extras, evaluator_ref


def _cases(args: argparse.Namespace) -> list:
    from tcig.evaluation.cases import coco_protocol, load_cases

    cases = [case for spec in args.cases or ["scenes:100"] for case in load_cases(spec)]
    if args.coco_protocol:
        cases = coco_protocol(cases)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    return cases[: args.limit] if args.limit else cases


def _plan(args: argparse.Namespace, model_set):
    """What to run, checked before any model loads: methods (by default every one the set can run), the shared
    settings and each baseline's own."""
    from tcig.evaluation.methods import BASELINES, METHODS, MethodSettings, baseline_settings
    from tcig.evaluation.runner import EvalPlan

    size = args.size or model_set.resolution
    given = split_settings(args.settings, "--settings ")
    settings = MethodSettings(
        stage1=model_set.stage1_settings(**given[Stage1Settings]),
        stage2=model_set.stage2_settings(**given[Stage2Settings]),
        values={s.key: getattr(args, s.key) for s in baseline_settings() if getattr(args, s.key) is not None},
        class_colours=_class_colours(args.class_colours, model_set),
    )
    has_control = model_set.controlnet is not None
    methods = word_list(args.methods) if args.methods else [
        m for m in METHODS if has_control or not (m in BASELINES and BASELINES[m].needs_control)
    ]  # fmt: skip
    plan = EvalPlan(
        methods=methods,
        settings=settings,
        size=(size, size),
        guide_sets={},
        strengths=args.strengths or [],
        stage1_steps=args.stage1_steps or [],
        seg_losses=args.seg_losses or [],
        variants=_variants(args.variant or []),
        num_images=args.num_images,
        seed=args.seed,
    )
    plan.check(has_control)
    return plan


def _scoring_models(args, model_set, evaluator_ref: str, pipe, device):
    """The evaluator, the CLIP of CLIP scores and the KID features, with their names for the report."""
    from tcig.evaluation.report import SegmenterFeatures
    from tcig.models.clip_scorer import CLIPScorer
    from tcig.models.segmenters import load_segmenter

    evaluator = load_segmenter(evaluator_ref, allow_pickle=args.allow_pickle).to(device)
    if evaluator.labels is None:
        raise ConfigError(
            f"the evaluator '{evaluator_ref}' is open-vocabulary (CLIPSeg-like): its scores depend on the queries "
            "it is given, so it cannot score control comparably; give a closed-vocabulary segmenter (--evaluator)"
        )
    clip_ref = args.clip_score_model or model_set.clip
    score_clip = (
        pipe.clip
        if clip_ref == model_set.clip
        else CLIPScorer.from_pretrained(clip_ref, allow_pickle=args.allow_pickle).to(device)
    )
    if args.features == "evaluator":
        return evaluator, score_clip, SegmenterFeatures(evaluator), f"evaluator backbone ({evaluator_ref})"
    if args.features == clip_ref:
        return evaluator, score_clip, score_clip, args.features
    features = CLIPScorer.from_pretrained(args.features, allow_pickle=args.allow_pickle).to(device)
    return evaluator, score_clip, features, args.features


def _header(args, cases, rows, model_set, guide_sets, evaluator_ref, features_ref, pipe, device) -> dict:
    """What the summary says above its table; it counts the cases the table shows (``rows``: the folder's, earlier
    runs' included)."""
    size = args.size or model_set.resolution
    sources = ", ".join(args.cases or ["scenes:100"]) + (" (COCO protocol)" if args.coco_protocol else "")
    shown = len({row["case"] for row in rows})
    if shown != len(cases):  # the folder holds cases of earlier runs too: the table shows them all
        sources += f"; {len(cases)} run now, the others by earlier runs into this folder"
    return {
        "title": args.title,
        "tcig_version": __version__,
        "cases": shown,
        "case_sources": sources,
        "seed": args.seed,
        "size": f"{size}x{size}",
        "num_images": args.num_images,
        "model_set": model_set.to_dict(),
        "guides": "; ".join(f"{name}: {', '.join(s.name for s, _ in segs)}" for name, segs in guide_sets.items()),
        "evaluator": evaluator_ref,
        "clip_score_model": args.clip_score_model or model_set.clip,
        "features": features_ref,
        "dtype": pipe.stage2_dtype,
        "sampler": pipe.refiner.sampler if pipe.refiner is not None else None,
        "device": f"{device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "memory_kind": "CUDA allocator peak" if device.type == "cuda" else "process resident set (CPU)",
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run(args: argparse.Namespace) -> int:
    from tcig.evaluation.report import write_report
    from tcig.evaluation.runner import Scorers, evaluate, model_identities
    from tcig.models.control import load_control
    from tcig.models.segmenters import load_segmenter
    from tcig.pipeline import TCIGPipeline

    check_seed(args.seed)
    check_num_images(args.num_images)
    model_set, extras, evaluator_ref = _model_set(args)
    cases = _cases(args)
    plan = _plan(args, model_set)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    with output_folder(args.out, wait=wait_seconds(args)) as out:
        pipe = TCIGPipeline.from_model_set(model_set, allow_pickle=args.allow_pickle, start_cache=start_cache(args))
        extra_segs = [(load_segmenter(ref, allow_pickle=args.allow_pickle), w) for ref, w in extras]
        guide_sets = {f"{len(pipe.segmenters)}seg": pipe.segmenters}
        if extra_segs:
            guide_sets[f"{len(pipe.segmenters) + len(extra_segs)}seg"] = pipe.segmenters + extra_segs
        plan = replace(plan, guide_sets=guide_sets)
        plan.check()  # again, now with the guides (variant weights)
        pipe.to(device, dtype)
        control = None
        if "controlnet" in plan.methods:
            control = load_control(model_set.controlnet, model_set.control_palette, allow_pickle=args.allow_pickle)
            control.to(device, pipe.refiner.dtype)
        for seg, _ in extra_segs:
            seg.to(device)
        evaluator, score_clip, features, features_ref = _scoring_models(args, model_set, evaluator_ref, pipe, device)
        plan.identities = model_identities(model_set, guide_sets, evaluator_ref)

        start = time.perf_counter()
        scorers = Scorers(evaluator, score_clip)
        rows = evaluate(pipe, cases, plan, scorers, out, progress=not args.no_progress, control=control)
        header = _header(args, cases, rows, model_set, guide_sets, evaluator_ref, features_ref, pipe, device)
        write_report(out, rows, header, features)
        logger.info("evaluated %d cases in %.0f s", len(cases), time.perf_counter() - start)
        print(out / "summary.md")
        return 0


COMMAND = Command(
    "eval",
    "compare TCIG with its baselines: control, quality, alignment and cost",
    add_arguments,
    run,
    "Runs TCIG and the baselines on the same cases, prompts, seeds and size, and writes a report folder: "
    "results.jsonl, summary.md/json, plots and an image grid per case. Rerun to resume.",
)
