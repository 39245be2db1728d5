"""What the app does, apart from HTTP: the painter, layout loading, the examples, generation runs and their files."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tcig import __version__
from tcig.app.jobs import Job, JobQueue
from tcig.app.painting import Painter, decode_png, encode_png, merged_labels, region_report
from tcig.app.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, decode_files, decode_photo, read_uploaded_layout
from tcig.errors import ConfigError, LayoutError, TCIGError
from tcig.io.names import check_name
from tcig.io.outputs import output_files, output_names, write_outputs
from tcig.io.pictures import draw_outlines, tensor_to_pil
from tcig.layout import Layout
from tcig.layout.convert import write_layout
from tcig.layout.palettes import PALETTE_NAMES
from tcig.layout.readers import read_layout
from tcig.layout.vocabularies import VOCABULARY_NAMES
from tcig.models.photo_layout import layout_from_photo, photo_at_long_side
from tcig.pipeline import TCIGPipeline
from tcig.settings import (
    MAX_SIDE,
    OPTIONS,
    SizeSettings,
    Stage1Settings,
    Stage2Settings,
    check_seed,
    split_settings,
)

logger = logging.getLogger(__name__)

APP_SETTINGS = tuple(o.key for o in OPTIONS.values() if o.group is not SizeSettings) + (
    "stage1_size",
    "parameterization",
)
"""The settings the page offers: every stage-1 and stage-2 setting and what stage 1 optimizes; the canvas gives the
output size."""

MAX_APP_IMAGES = 8
"""Images one run of the page may make (optimized as one batch)."""

PREVIEW_EVERY = 3
"""Stage-1 steps between two previews of the image as it forms."""

LAYOUT_SUFFIX = "_layout"
"""The painted layout is written as ``{name}_layout.png`` (label ids) with ``{name}_layout.json`` (its classes)."""


@dataclass
class Request:
    """A checked generation request."""

    layout: Layout
    prompt: str
    seed: int
    stage1: Stage1Settings
    stage2: Stage2Settings | None
    sizes: dict
    base: str
    num_images: int = 1
    init_image: tuple[str, torch.Tensor] | None = None
    """A photo to edit by layout: its name and ``[1,3,H,W]`` in [0,1]."""

    @property
    def cycles(self) -> int:
        """Polish cycles after the first refinement (for the page's polish bar)."""
        return self.stage2.cycles if self.stage2 is not None else 0


@dataclass
class Studio:
    """The app's state: one pipeline, the painter, the output folder and the results made since it started.

    Args:
        pipe: the loaded pipeline (its model set gives the tuned settings and the classes).
        out_dir: the locked output folder.
        examples: a folder of example layouts for the gallery (None: no gallery).
    """

    pipe: TCIGPipeline
    out_dir: Path
    examples: Path | None = None
    painter: Painter = field(init=False)
    queue: JobQueue = field(init=False)
    history: list[dict] = field(default_factory=list, init=False)
    _files: set[str] = field(default_factory=set, init=False)
    gallery: dict[str, dict] = field(default_factory=dict, init=False)
    """The example layouts the painter can show (their classes known to the guides) by relative name: their path
    and a thumbnail."""
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        labels = [seg.labels for seg, _ in self.pipe.segmenters]
        natural = self.pipe.model_set.colours() if self.pipe.model_set else None
        self.painter = Painter.create(merged_labels(labels), natural, any(lab is None for lab in labels))
        self.gallery = self._find_examples()
        self.queue = JobQueue(self.run)

    # --- what the page asks -------------------------------------------------------------------------------------

    def config(self) -> dict:
        ms = self.pipe.model_set
        side = self.pipe.resolution
        stage1 = ms.stage1_settings() if ms else Stage1Settings()
        stage2 = ms.stage2_settings() if ms else Stage2Settings()
        settings = []
        for key in APP_SETTINGS:
            o = OPTIONS[key]
            defaults = stage1 if o.group is Stage1Settings else stage2 if o.group is Stage2Settings else SizeSettings()
            settings.append(
                {
                    "key": key,
                    "group": "stage 2" if o.group is Stage2Settings else "stage 1",
                    "kind": o.kind.__name__,
                    "default": getattr(defaults, o.name),
                    "help": o.help,
                    "choices": o.choices,
                    "low": o.low,
                    "high": o.high,
                    "optional": o.optional,
                }
            )
        return {
            "version": __version__,
            "model_set": ms.name if ms else "custom",
            "description": ms.description if ms else "",
            "classes": self.painter.describe(),
            "open_vocabulary": self.painter.open_vocabulary,
            "canvas": {"height": side, "width": side, "max_side": MAX_SIDE},
            "settings": settings,
            "refiner": self.pipe.refiner is not None,
            "vocabularies": list(VOCABULARY_NAMES),
            "palettes": list(PALETTE_NAMES),
            "limits": {"upload_bytes": MAX_UPLOAD_BYTES, "pixels": MAX_PIXELS, "images": MAX_APP_IMAGES},
            "examples": [{"name": name, "thumbnail": ex["thumbnail"]} for name, ex in self.gallery.items()],
            "history": self.history,
        }

    def analyze(self, body: dict) -> dict:
        """Areas and small-region warnings of a painting, as the run would see it."""
        layout = self.painted_layout(body)
        stage1_size = _settings(body)[SizeSettings].get("stage1_size")
        return {**region_report(layout, self.pipe.stage1_shape(layout, stage1_size)), "size": layout.size}

    def load_layout(self, body: dict) -> dict:
        """An uploaded layout painted on a canvas of its aspect ratio at the model set's resolution."""
        # the readers check the names, as they do for tcig generate's --vocabulary and --palette
        vocabulary, palette = (str(body[key]) if body.get(key) else None for key in ("vocabulary", "palette"))
        files = decode_files(body.get("files"))
        layout = read_uploaded_layout(files, vocabulary, palette)
        return self._show(layout, Path(files[0][0]).stem)

    def load_example(self, body: dict) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or name not in self.gallery:
            raise LayoutError(f"there is no example '{str(name)[:80]}'; pick one of the gallery")
        return self._show(read_layout(self.gallery[name]["path"]), Path(name).stem)

    def load_photo(self, body: dict) -> dict:
        """A photo segmented by the guides (as ``tcig layout from-image``) and painted on a canvas of its aspect
        ratio at the model set's resolution, to repaint; the page keeps the photo to edit it (``init_image``)."""
        name, photo = decode_photo(body.get("files"))
        layout = layout_from_photo(self.pipe.segmenters, photo_at_long_side(photo, self.pipe.resolution))
        return self._show(layout, Path(name).stem)

    def add_class(self, body: dict) -> dict:
        with self._lock:
            self.painter = self.painter.with_class(str(body.get("name", "")))
            return {"classes": self.painter.describe()}

    def submit(self, body: dict) -> dict:
        client = body.get("client")
        if not isinstance(client, str) or not 1 <= len(client) <= 64:
            raise ConfigError("the page sent no client id; reload it")
        job = self.queue.submit(client, self.request(body))
        return self.queue.status(job)

    def job(self, job_id: str) -> Job:
        job = self.queue.get(job_id)
        if job is None:
            raise LayoutError("no such run (the app was restarted?); generate again")
        return job

    def file(self, name: str) -> Path | None:
        """A file this app wrote, by name (None for any other name)."""
        return self.out_dir / name if name in self._files else None

    # --- checking what the page sent ----------------------------------------------------------------------------

    def painted_layout(self, body: dict) -> Layout:
        texts = body.get("region_texts") or {}
        if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
            raise LayoutError("region texts must map class names to text")
        rgba = decode_png(data_url_bytes(body.get("painting")), MAX_PIXELS)
        h, w = rgba.shape[:2]
        if h % 8 or w % 8 or max(h, w) > MAX_SIDE:
            raise LayoutError(f"the canvas is {w}x{h}; its sides must be multiples of 8 up to {MAX_SIDE}")
        with self._lock:
            painter = self.painter
        return painter.layout(rgba, texts)

    def request(self, body: dict) -> Request:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("type a prompt that describes the image")
        seed = check_seed(body.get("seed"), "the seed")
        layout = self.painted_layout(body)
        layout.check_labelled()
        groups = _settings(body)
        ms = self.pipe.model_set
        stage1 = ms.stage1_settings(**groups[Stage1Settings]) if ms else Stage1Settings(**groups[Stage1Settings])
        stage1.check()
        stage2 = None
        if body.get("refine", True) and self.pipe.refiner is not None:
            stage2 = ms.stage2_settings(**groups[Stage2Settings]) if ms else Stage2Settings(**groups[Stage2Settings])
            stage2.check()
        sizes = SizeSettings(*layout.size, None, **groups[SizeSettings])
        sizes.check()
        base = body.get("name") or "painting"
        base = check_name(str(base)[:60], "the layout name")
        count = body.get("num_images", 1)
        if type(count) is not int or not 1 <= count <= MAX_APP_IMAGES:
            raise ConfigError(f"images per run must be a whole number from 1 to {MAX_APP_IMAGES}, got {count!r}"[:120])
        photo = decode_photo([body["init_image"]]) if body.get("init_image") else None
        return Request(layout, prompt.strip(), seed, stage1, stage2, vars(sizes), base, count, photo)

    # --- running ------------------------------------------------------------------------------------------------

    def run(self, job: Job) -> dict:
        """Generate for ``job`` (on the queue's worker) and write its files as ``tcig generate`` names them."""
        req: Request = job.request
        job.progress("starting")

        def events(event: dict) -> None:
            stage, step = event["stage"], event["step"]
            if stage in ("stage1", "cycle"):  # optimizer steps count from 0
                step += 1
            if stage == "stage1" and (step % PREVIEW_EVERY == 0 or step == event["steps"]):
                job.set_preview(encode_png(tensor_to_pil(event["images"][0].float().cpu())))
            job.progress(stage, step, event["steps"], event.get("cycle", 0))

        try:
            output = self.pipe(
                req.prompt,
                req.layout,
                **req.sizes,
                stage1=req.stage1,
                stage2=req.stage2,
                refine=req.stage2 is not None,
                num_images=req.num_images,
                init_image=req.init_image[1] if req.init_image else None,
                generator=torch.Generator().manual_seed(req.seed),
                callback=events,
                progress=False,
            )
        except torch.cuda.OutOfMemoryError as err:
            raise TCIGError("out of GPU memory; paint a smaller canvas or lower stage1_size or num_crops") from err
        job.progress("saving")
        layout = output.layout
        layout.prompt = req.prompt
        colours = self.painter_colours(layout)
        stem = self._free_stem(req.base, req.seed, req.num_images)
        layout_files = write_layout(layout, self.out_dir / f"{stem}{LAYOUT_SUFFIX}.png", to="ids")
        record = {
            "tcig_version": __version__,
            "seed": req.seed,
            "layout": layout_files[0].name,
            "source": "tcig app",
            "init_image": req.init_image[0] if req.init_image else None,
            "model_set": self.pipe.model_set.to_dict() if self.pipe.model_set else self.pipe.describe(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        written = write_outputs(output, self.out_dir, stem, record, colours=colours)
        job.outlined = [encode_png(draw_outlines(tensor_to_pil(image), layout)) for image in output.images]
        items = []
        shared = {"layout": layout_files[0].name, "layout_classes": layout_files[1].name}
        for i, name in enumerate(output_names(stem, req.num_images)):
            files = {"image": f"{name}.png", "stage1": f"{name}_stage1.png", "sheet": f"{name}_sheet.png"}
            files |= {"sidecar": f"{name}.json", **shared}
            items.append(
                {
                    "name": name,
                    "prompt": req.prompt,
                    "seed": req.seed,
                    "files": {key: f"/files/{file}" for key, file in files.items()},
                    "outlined": f"/api/jobs/{job.id}/outlined/{i}.png",
                }
            )
        with self._lock:
            self._files.update(p.name for p in [*written, *layout_files])
            self.history[:0] = items
        logger.info("wrote %s", ", ".join(str(p) for p in [*layout_files, *written]))
        return {"name": stem, "items": items, "timings": output.timings}

    def painter_colours(self, layout: Layout):
        """The colours the classes of ``layout`` were painted in (for the contact sheet)."""
        with self._lock:
            painter = self.painter
        index = {name: i for i, name in enumerate(painter.classes)}
        return painter.colours[[index[name] for name in layout.classes]] if set(layout.classes) <= set(index) else None

    def _free_stem(self, base: str, seed: int, num_images: int) -> str:
        """``{base}_s{seed}``, or ``{base}_{n}_s{seed}`` for the first n whose files do not exist yet."""
        for n in range(1, 100_000):
            stem = f"{base}_s{seed}" if n == 1 else f"{base}_{n}_s{seed}"
            files = output_files(stem, num_images) + [f"{stem}{LAYOUT_SUFFIX}.png", f"{stem}{LAYOUT_SUFFIX}.json"]
            if not any((self.out_dir / f).exists() for f in files):
                return stem
        raise TCIGError(f"the output folder '{self.out_dir}' holds too many results named '{base}'; use another")

    # --- layouts shown on the canvas ----------------------------------------------------------------------------

    def _show(self, layout: Layout, name: str) -> dict:
        height, width = self.pipe.output_size(layout, None, None, self.pipe.resolution)
        with self._lock:
            rgba, self.painter = self.painter.painting(layout, height, width)
            classes = self.painter.describe()
        texts = {layout.classes[i]: text for i, text in layout.region_texts.items()}
        return {
            "name": name,
            "painting": data_url(encode_png(rgba)),
            "height": height,
            "width": width,
            "prompt": layout.prompt,
            "region_texts": texts,
            "classes": classes,
        }

    def _find_examples(self) -> dict[str, dict]:
        """Read every example once, at start-up; what the readers say of them is for the log's details only."""
        found = {}
        readers = logging.getLogger("tcig.layout")
        level = readers.level
        readers.setLevel(logging.ERROR)  # before the server serves: no other thread logs yet
        try:
            for path in _example_candidates(self.examples):
                try:
                    layout = read_layout(path)
                    rgba, _ = self.painter.painting(layout, *_thumbnail_size(layout))
                except TCIGError as err:
                    logger.debug("example %s left out: %s", path, err)
                    continue
                thumbnail = data_url(encode_png(rgba))
                found[path.relative_to(self.examples).as_posix()] = {"path": path, "thumbnail": thumbnail}
        finally:
            readers.setLevel(level)
        return found


def _example_candidates(folder: Path | None) -> list[Path]:
    """JSON specs, PNG layouts with a sidecar, and mask folders under ``folder`` (two levels deep)."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*")) + sorted(folder.glob("*/*")) + sorted(folder.glob("*/*/*")):
        if path.name.startswith(".") or path.suffix == ".py":
            continue
        if path.is_dir() and any(path.glob("*.png")):
            found.append(path)
        elif path.suffix.lower() == ".json" and not path.name.endswith(".legend.json"):
            if not path.with_suffix(".png").exists():  # a PNG's sidecar, not a spec
                found.append(path)
        elif path.suffix.lower() == ".png" and path.parent not in found:
            if path.with_suffix(".json").exists() or path.with_name(path.stem + ".legend.json").exists():
                found.append(path)
    return found


def _settings(body: dict) -> dict[type, dict[str, Any]]:
    """The page's settings, checked, by settings class."""
    values = body.get("settings") or {}
    if not isinstance(values, dict):
        raise ConfigError("settings must be a mapping of setting names to values")
    unknown = sorted(set(values) - set(APP_SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting '{unknown[0]}'; the app takes {', '.join(APP_SETTINGS)}")
    return split_settings(values, "setting ")


def _thumbnail_size(layout: Layout) -> tuple[int, int]:
    h, w = layout.size
    scale = 96 / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def data_url_bytes(value: Any) -> bytes:
    """The bytes of a ``data:image/png;base64,...`` URL (how the page sends its canvas)."""
    if not isinstance(value, str) or not value.startswith("data:image/png;base64,"):
        raise LayoutError("the page sent no painting; paint something and try again")
    try:
        return base64.b64decode(value.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError) as err:
        raise LayoutError("the painting arrived damaged; try again") from err
