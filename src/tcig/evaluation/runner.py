"""Run methods over cases into a report folder, one JSON line per case, method and variant; resumable.

Layout of the folder::

    results.jsonl            one line per (case, method, variant): metrics, seconds and peak memory per stage
    images/CASE/KEY_i.png    every generated image (KEY = method or method@variant)
    grids/CASE.png           layout | reference | one image per method
    summary.md, summary.json, *.png   written by ``report.write_report``

A rerun with the same folder skips every (case, method, variant) already in ``results.jsonl``; images are written
before their line. A corrupt line (a run killed mid-line, a bad edit) is skipped and reported by number, and its
entry is redone; it never costs another line. ``plan.json`` records the base settings, the model set and the
identities of the guides and the evaluator (hashes of their weights), so a folder never mixes results of different
models or settings.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from tcig.errors import ConfigError, TCIGError
from tcig.evaluation.cases import Case
from tcig.evaluation.methods import (
    BASELINES,
    METHODS,
    Generated,
    Job,
    MethodSettings,
    resize_images,
    run_refine,
    run_stage1,
)
from tcig.evaluation.metrics import layout_scores
from tcig.io.files import append_json_line, read_json_lines, write_atomically, write_json_atomically
from tcig.io.pictures import colorize, contact_sheet, tensor_to_pil
from tcig.models.clip_scorer import CLIPScorer
from tcig.models.control import SegmentationControl
from tcig.models.segmenters import Segmenter
from tcig.pipeline import TCIGPipeline
from tcig.settings import (
    MAX_SIDE,
    SizeSettings,
    Stage1Settings,
    Stage2Settings,
    check_num_images,
    check_seed,
    split_settings,
)

logger = logging.getLogger(__name__)

RESULTS = "results.jsonl"
_FILE_SAFE = str.maketrans({"/": "_", ",": "_", "=": "-", "@": "_", " ": "_"})


@dataclass
class EvalPlan:
    """What to run. ``strengths``, ``stage1_steps``, ``seg_losses``, ``guide_sets`` and ``variants`` are sweeps of
    TCIG (and stage 1); every other method runs once per case. ``guide_sets`` maps a name to the guiding
    segmenters; ``variants`` maps a name to overrides of the settings (see :func:`split_overrides`), e.g. an
    ablation ``{"no-tv": {"tv_weight": 0}}``."""

    methods: list[str]
    settings: MethodSettings
    size: tuple[int, int]
    guide_sets: dict[str, list[tuple[Segmenter, float]]]
    strengths: list[float] = field(default_factory=list)
    stage1_steps: list[int] = field(default_factory=list)
    seg_losses: list[str] = field(default_factory=list)
    variants: dict[str, dict] = field(default_factory=dict)
    num_images: int = 1
    seed: int = 0
    identities: dict = field(default_factory=dict)
    """What the models are: see :func:`model_identities`; recorded in ``plan.json``."""

    def check(self, has_control: bool | None = None) -> None:
        """Refuse what cannot run, before any work; ``has_control`` (when known): whether the model set has a
        ControlNet, which the ``controlnet`` method needs."""
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        if has_control is False:
            needing = [m for m in self.methods if m in BASELINES and BASELINES[m].needs_control]
            if needing:
                raise ConfigError(
                    f"{', '.join(needing)} needs a ControlNet, which this model set does not declare "
                    '(add "controlnet" to it), or leave it out of --methods'
                )
        check_num_images(self.num_images)
        check_seed(self.seed)
        if not all(type(s) is int and 8 <= s <= MAX_SIDE for s in self.size):
            raise ConfigError(f"--size must be an integer in 8..{MAX_SIDE}, got {self.size[0]}")
        self.settings.check()
        for strength in self.strengths:
            self.settings.stage2.at_strength(strength).check()
        for name, overrides in self.variants.items():
            if not name or not set(name) <= VARIANT_CHARS:
                raise ConfigError(f"variant name '{name}' may hold only letters, digits, '-' and '_'")
            given = split_overrides(overrides)
            replace(self.settings.stage1, **given.stage1).check()
            replace(self.settings.stage2, **given.stage2).check()
            for guides in self.guide_sets.values():
                if given.weights is not None and len(given.weights) != len(guides):
                    raise ConfigError(
                        f"variant '{name}': weights lists {len(given.weights)} guides; there are {len(guides)}"
                    )
        for steps, loss in itertools.product(self.stage1_steps or [1], self.seg_losses or ["mse"]):
            replace(self.settings.stage1, steps=steps, seg_loss=loss).check()


VARIANT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass
class Overrides:
    """A variant's changes: stage-1 and stage-2 fields, guide weights (None: the guide set's) and the stage-1 size
    (None: the set's)."""

    stage1: dict
    stage2: dict
    weights: list[float] | None = None
    stage1_size: int | None = None


def split_overrides(overrides: dict) -> Overrides:
    """A variant's overrides: settings by their ``tcig batch`` keys (see :mod:`tcig.settings`; of the sizes only
    ``stage1_size``, as every method runs at ``--size``), and ``weights`` (one per guide of the guide set,
    ``/``-separated in text, 0 = that guide does not guide)."""
    overrides = dict(overrides)
    weights = None
    if "weights" in overrides:
        value = overrides.pop("weights")
        try:
            weights = [float(w) for w in (value.split("/") if isinstance(value, str) else [value])]
        except (ValueError, TypeError) as err:
            raise ConfigError(f"variant weights '{value}' are not numbers separated by '/'") from err
        if not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ConfigError(f"variant weights '{value}' must be finite numbers >= 0")
    given = split_settings(overrides, "variant: ")
    sizes = dict(given[SizeSettings])
    stage1_size = sizes.pop("stage1_size", None)
    if sizes:
        raise ConfigError(f"a variant cannot change {', '.join(sizes)}; every method runs at --size")
    return Overrides(given[Stage1Settings], given[Stage2Settings], weights, stage1_size)


@dataclass
class Scorers:
    """The evaluator segmenter (never a guide) and the CLIP that gives CLIP scores."""

    evaluator: Segmenter
    clip: CLIPScorer | None = None


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_folder(ref: str) -> Path | None:
    """A model's files here: the folder itself, or the cached snapshot of a hub id (None if not cached)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, local_files_only=True))
    except Exception:  # noqa: BLE001 - not a cached hub id (or not an id at all)
        return None


def fingerprint(ref: str) -> str:
    """Identity of a model: SHA-256 over the contents of its weight files (in path order), so that a hub id and a
    local copy of it are the same model and a retrained one with the same sizes is not; a hub id that is not cached
    here is known by its id."""
    folder = _local_folder(ref)
    if folder is None:
        return f"id:{ref.strip().lower()}"
    digest = hashlib.sha256()
    files = sorted(f for f in folder.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    for file in files:
        info = file.stat()
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(_file_digest(str(file.resolve()), info.st_size, info.st_mtime).encode())
    return ("weights:" if files else "config:") + digest.hexdigest()


def model_identities(model_set, guide_sets: dict, evaluator_ref: str) -> dict:
    """The model set and the identity (weights hash) of every guide and of the evaluator, for ``plan.json``."""
    return {
        "model_set": model_set.name,
        "refiner": fingerprint(model_set.refiner) if model_set.refiner else None,
        "controlnet": fingerprint(model_set.controlnet) if model_set.controlnet else None,
        "guides": {name: [fingerprint(seg.name) for seg, _ in segs] for name, segs in guide_sets.items()},
        "evaluator": fingerprint(evaluator_ref),
    }


def check_evaluator(evaluator_ref: str, guide_refs: list[str]) -> None:
    """Refuse an evaluator that is one of the guiding segmenters (by weights): stage 1 optimizes against its guides,
    so a guide would score its own adversarial images."""
    mine = fingerprint(evaluator_ref)
    for ref in guide_refs:
        if fingerprint(ref) == mine:
            raise ConfigError(
                f"the evaluator '{evaluator_ref}' is also a guiding segmenter ('{ref}'); evaluate with a segmenter "
                "that did not guide (--evaluator)"
            )


def read_results(out: Path) -> list[dict]:
    """Rows of ``results.jsonl``; corrupt lines are skipped and reported by number (their entries are redone)."""
    rows = read_json_lines(out / RESULTS, f"{out / RESULTS}")
    return [r for r in rows if all(isinstance(r.get(k), str) for k in ("case", "method", "variant"))]


def row_key(row: dict) -> tuple[str, str, str]:
    return row["case"], row["method"], row["variant"]


class ReportWriter:
    """Appends result lines (flushed and synced) and writes images atomically."""

    def __init__(self, out: Path) -> None:
        self.out = out  # its subfolders are made with their first file, so a refused run leaves none

    def save_images(self, case: str, key: str, images: torch.Tensor) -> list[str]:
        folder = self.out / "images" / case
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for i, image in enumerate(images):
            name = f"{key.translate(_FILE_SAFE)}_{i}.png"
            _atomic_save(tensor_to_pil(image), folder / name)
            names.append(f"images/{case}/{name}")
        return names

    def append(self, row: dict) -> None:
        append_json_line(self.out / RESULTS, row)


def _atomic_save(image, path: Path) -> None:
    write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))


def check_same_plan(out: Path, plan: EvalPlan) -> None:
    """A report folder holds one base setting: resuming it with other settings would mix results silently.
    Methods, cases and sweep values may change between runs (they only add rows)."""
    base = {
        "size": list(plan.size),
        "seed": plan.seed,
        "num_images": plan.num_images,
        "settings": json.loads(json.dumps(asdict(plan.settings))),
        "variants": plan.variants,
        "models": plan.identities,
    }
    path = out / "plan.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"'{path}' is damaged ({err}); without it the folder's results cannot be matched to their settings: "
                "give a new --out, or move the folder away and start again"
            ) from None
        if not isinstance(stored, dict):
            raise ConfigError(f"'{path}' is not a plan (a JSON object); give a new --out")
        if stored != base:
            changed = sorted(k for k in base if stored.get(k) != base[k])
            raise ConfigError(
                f"the report folder '{out}' was made with other {', '.join(changed)}; resume it with the same "
                "options or give a new --out"
            )
        return
    write_json_atomically(path, base)


def variant_name(**parts) -> str:
    return ",".join(f"{k}={v}" for k, v in parts.items())


def evaluate(
    pipe: TCIGPipeline,
    cases: list[Case],
    plan: EvalPlan,
    scorers: Scorers,
    out: Path,
    progress: bool = True,
    on_case: Callable[[Case], None] | None = None,
    control: SegmentationControl | None = None,
) -> list[dict]:
    """Run ``plan`` on ``cases``; returns all rows of the report folder (old and new). ``control``: the model set's
    ControlNet, for the ``controlnet`` method."""
    plan.check(has_control=control is not None)
    if pipe.refiner is not None:
        pipe.refiner.check_size(*plan.size)
        pipe.refiner.check(plan.settings.stage2)
    for case in cases:  # every case's classes known to the guides, before anything is written
        pipe.seg_terms(case.layout, 1)
    check_same_plan(out, plan)
    rows = read_results(out)
    done = {row_key(r) for r in rows}
    writer = ReportWriter(out)
    for case in tqdm(cases, desc="cases", disable=not progress):
        recorder = _Recorder(case, plan, scorers, writer, done)
        recorder.reference()
        _run_tcig(pipe, case, plan, recorder)
        _run_baselines(pipe, case, plan, recorder, control)
        rows.extend(recorder.rows)
        done.update(row_key(r) for r in recorder.rows)
        _write_grid(
            writer, case, [r for r in rows if r["case"] == case.name], plan.size, pipe.class_colours(case.layout)
        )
        if on_case is not None:
            on_case(case)
    return rows


class _Recorder:
    """Scores one case's results, saves their images and appends their rows; knows which are already done."""

    def __init__(self, case: Case, plan: EvalPlan, scorers: Scorers, writer: ReportWriter, done: set) -> None:
        self.case, self.plan, self.scorers, self.writer, self.done = case, plan, scorers, writer, done
        self.rows: list[dict] = []

    def has(self, method: str, variant: str = "") -> bool:
        return (self.case.name, method, variant) in self.done

    def reference(self) -> None:
        """The case's photo or rendering, scored like a method (the ceiling of control)."""
        if self.case.reference is not None and not self.has("reference"):
            self.record("reference", "", Generated(resize_images(self.case.reference[None], self.plan.size)), {})

    def record(self, method: str, variant: str, result: Generated, settings: dict) -> None:
        case, size = self.case, self.plan.size
        key = method if not variant else f"{method}@{variant}"
        made = tuple(result.images.shape[-2:])
        if made != tuple(size):
            raise TCIGError(
                f"{key} made {made[1]}x{made[0]} images for the {size[1]}x{size[0]} case '{case.name}'; they are not "
                "scored"
            )
        row = {
            "case": case.name,
            "source": case.source,
            "method": method,
            "variant": variant,
            "prompt": case.prompt,
            "seed": self.plan.seed,
            "size": list(size),
            "num_images": result.images.shape[0],
            "settings": settings,
            **score(case, result.images, self.scorers),
            **_cost(result, self.plan.num_images),
            "images": self.writer.save_images(case.name, key, result.images),
        }
        self.writer.append(row)
        self.rows.append(row)


def _run_tcig(pipe: TCIGPipeline, case: Case, plan: EvalPlan, recorder: _Recorder) -> None:
    """TCIG and its stage 1 over the plan's sweeps: one stage-1 run per variant, guide set, step count and loss
    serves every stage-2 strength."""
    if not {"tcig", "stage1"} & set(plan.methods):
        return
    settings, size, n, seed = plan.settings, plan.size, plan.num_images, plan.seed
    sweeps = itertools.product(
        plan.variants.items() or [("", {})],
        plan.guide_sets.items(),
        plan.stage1_steps or [settings.stage1.steps],
        plan.seg_losses or [settings.stage1.seg_loss],
    )
    for (name, overrides), (guides_name, guides), steps, loss in sweeps:
        given = split_overrides(overrides)
        stage2_base = settings.stage2.overridden(**given.stage2)
        starts = [stage2_base.at_strength(s) for s in plan.strengths] or [stage2_base]
        stage1 = replace(settings.stage1, **{"steps": steps, "seg_loss": loss, **given.stage1})
        if given.weights is not None:
            guides = [(seg, w) for (seg, _), w in zip(guides, given.weights, strict=True)]
            guides_name = f"{sum(w > 0 for w in given.weights)}seg"
        # the settings that ran, overrides included
        base = variant_name(guides=guides_name, steps=stage1.steps, loss=stage1.seg_loss)
        base = f"{name},{base}" if name else base
        wanted = [("stage1", base)] if "stage1" in plan.methods else []
        if "tcig" in plan.methods:
            wanted += [("tcig", f"{base},{s.start_label}") for s in starts]
        if all(recorder.has(m, v) for m, v in wanted):
            continue
        guide_pipe = _with_segmenters(pipe, guides)
        s1 = run_stage1(guide_pipe, case, size, stage1, n, seed, given.stage1_size)
        s1_settings = {"stage1": vars(stage1).copy(), "guides": _names(guides), "stage1_size": s1.stage1_size}
        if ("stage1", base) in wanted and not recorder.has("stage1", base):
            recorder.record("stage1", base, s1, s1_settings)
        for stage2 in starts if "tcig" in plan.methods else []:
            variant = f"{base},{stage2.start_label}"
            if not recorder.has("tcig", variant):
                refined = run_refine(guide_pipe, case, s1, stage2, stage1, seed)
                recorder.record("tcig", variant, refined, {**s1_settings, "stage2": vars(stage2)})


def _run_baselines(pipe, case: Case, plan: EvalPlan, recorder: _Recorder, control) -> None:
    """Every baseline of the plan, once per case, with the same size, images, seed and shared settings."""
    job = Job(pipe, case, plan.size, plan.settings, plan.num_images, plan.seed, control)
    for method, baseline in BASELINES.items():
        if method in plan.methods and not recorder.has(method):
            recorded = {"stage2": vars(plan.settings.stage2), **baseline.recorded(plan.settings)}
            recorder.record(method, "", baseline.run(job), recorded)


def _with_segmenters(pipe: TCIGPipeline, segmenters) -> TCIGPipeline:
    if segmenters is pipe.segmenters:
        return pipe
    other = TCIGPipeline(
        pipe.clip, segmenters, pipe.refiner, pipe.resolution, pipe.stage1_size, pipe.model_set, pipe.start_cache
    )
    other.device = pipe.device
    return other


def _names(segmenters) -> list[str]:
    return [f"{seg.name}:{w:g}" for seg, w in segmenters]


def score(case: Case, images: torch.Tensor, scorers: Scorers) -> dict:
    """Evaluator mIoU, pixel accuracy and per-class IoU against the case's layout, and the CLIP score."""
    scores = layout_scores(scorers.evaluator, images, case.layout)
    # classes that neither the layout nor the prediction shows have no IoU
    scores["class_iou"] = {k: v for k, v in scores["class_iou"].items() if math.isfinite(v)}
    if scorers.clip is not None:
        with torch.no_grad():
            scores["clip_score"] = float(scorers.clip.score(images, [case.prompt] * images.shape[0]).mean())
    return scores


def _cost(result: Generated, num_images: int) -> dict:
    seconds = {stage: round(m.seconds, 4) for stage, m in result.stages.items()}
    peak = {stage: (round(m.peak_mb, 1) if m.peak_mb is not None else None) for stage, m in result.stages.items()}
    kinds = {m.memory_kind for m in result.stages.values()}
    total = sum(seconds.values())
    return {
        "seconds": {**seconds, "total": round(total, 4)},
        "seconds_per_image": round(total / num_images, 4) if seconds else None,
        "peak_mb": peak,
        "memory_kind": kinds.pop() if len(kinds) == 1 else None,
    }


def _write_grid(writer: ReportWriter, case: Case, rows: list[dict], size: tuple[int, int], colours) -> None:
    """Layout | reference | the first image of each method's first variant."""
    layout = case.layout.resized(*size, "stretch")
    panels = [("layout", colorize(layout, colours))]
    seen = set()
    for row in rows:
        if row["method"] in seen:
            continue
        seen.add(row["method"])
        with Image.open(writer.out / row["images"][0]) as image:
            panels.append((f"{row['method']} {row['miou']:.2f}", image.convert("RGB")))
    (writer.out / "grids").mkdir(exist_ok=True)
    _atomic_save(contact_sheet(panels, height=max(128, size[0])), writer.out / "grids" / f"{case.name}.png")
