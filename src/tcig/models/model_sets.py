"""Named recipes of models: which CLIP, which guiding segmenters (with weights) and which refiner.

A model set is one of the built-in names or a JSON file
``{"clip": ID, "segmenters": ["ID[:WEIGHT]", ...], "refiner": ID or null, "resolution": 512, "evaluator": ID,
"stage1": {"steps": 100, ...}, "stage2": {"strength": 0.5, ...}, "class_colours": {"sky": [135, 206, 235]} or a JSON
file, "demo_layout": FILE, "controlnet": ID, "control_palette": "ade20k" or a JSON file}`` whose relative paths are
read relative to the file's folder (a name that exists beside the file, ``"segformer"``, is a folder there, not a
hub id). ``stage1``/``stage2`` hold the set's tuned defaults (fields of Stage1Settings /
Stage2Settings), checked when the file is read; an unknown key is an error (keys starting with ``_`` are comments).
What is special about a set (the natural colours its world paints classes in, the layout its benchmark uses) is
declared in it, never inferred from its name; the scenes world declares its sets as such files beside its models
(``bundled/scenes/sets/``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tcig.errors import ConfigError
from tcig.io.files import read_json_object
from tcig.layout.palettes import PALETTE_NAMES
from tcig.settings import MAX_SIDE, Stage1Settings, Stage2Settings, check_value, options_of


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
    class_colours: tuple[tuple[str, tuple[int, int, int]], ...] = ()
    """The natural colours of the set's classes (``(name, (r, g, b))`` pairs), for pictures of layouts and the
    ``sdedit-layout`` baseline; classes without one take their standard dataset colour."""
    demo_layout: str | None = None
    """A layout file that suits the set, for benchmarks (default: the street layout)."""
    max_sequence_length: int | None = None
    """The T5 prompt length of an SD3 or FLUX.1 refiner (None: its pipeline's, 256 or 512)."""
    controlnet: str | None = None
    """A segmentation ControlNet for the refiner (hub id or folder): the trained reference of ``tcig eval``."""
    control_palette: str | None = None
    """The colours the ControlNet reads layouts in: a standard palette's name (``ade20k``) or a JSON file
    ``{class: [r, g, b]}``; None: the ControlNet folder's own ``palette.json``."""
    presets: dict = field(default_factory=dict, compare=False, hash=False)
    """Named points of the speed/quality trade-off: ``{name: {"stage1": {...}, "stage2": {...}}}``, each changing
    the set's settings (``default`` is the set's own)."""

    def colours(self) -> dict[str, tuple[int, int, int]]:
        """The set's class colours by name (empty if it declares none)."""
        return dict(self.class_colours)

    def with_overrides(
        self, *, clip: str | None = None, segmenters: list[tuple[str, float]] | None = None, refiner: str | None = None
    ) -> ModelSet:
        """Replace components; ``refiner="none"`` removes stage 2 (another refiner drops the set's
        ``max_sequence_length`` and ControlNet, which belonged to its own)."""
        return replace(
            self,
            clip=clip or self.clip,
            segmenters=tuple(segmenters) if segmenters else self.segmenters,
            refiner=None if refiner == "none" else (refiner or self.refiner),
            max_sequence_length=None if refiner else self.max_sequence_length,
            controlnet=None if refiner else self.controlnet,
            control_palette=None if refiner else self.control_palette,
        )

    def with_preset(self, name: str | None) -> ModelSet:
        """The set with a preset's settings over its own (``None`` or ``default``: unchanged)."""
        if name in (None, DEFAULT_PRESET):
            return self
        if name not in self.presets:
            known = ", ".join([DEFAULT_PRESET, *self.presets])
            raise ConfigError(f"model set '{self.name}' has no preset '{name}'; use one of {known}")
        preset = self.presets[name]
        return replace(
            self,
            stage1={**self.stage1, **preset.get("stage1", {})},
            stage2={**self.stage2, **preset.get("stage2", {})},
        )

    def stage1_settings(self, **given) -> Stage1Settings:
        """The set's tuned stage-1 settings, overridden by every ``given`` value that is not None."""
        return Stage1Settings(**{**self.stage1, **{k: v for k, v in given.items() if v is not None}})

    def stage2_settings(self, **given) -> Stage2Settings:
        """The set's tuned stage-2 settings, overridden by every ``given`` value that is not None; a strength given
        without a noise level replaces the set's noise level (and likewise for the cycles)."""
        return Stage2Settings(**self.stage2).overridden(**{k: v for k, v in given.items() if v is not None})

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
            "class_colours": {name: list(rgb) for name, rgb in self.class_colours},
            "demo_layout": self.demo_layout,
            "max_sequence_length": self.max_sequence_length,
            "controlnet": self.controlnet,
            "control_palette": self.control_palette,
            "presets": self.presets,
        }


def read_class_colours(source: str | Mapping, what: str) -> dict[str, tuple[int, int, int]]:
    """``{class: [r, g, b]}`` from a mapping or a JSON file, checked."""
    data = source if isinstance(source, Mapping) else read_json_object(source, what)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} must be a JSON object {{class: [r, g, b]}}")
    out = {}
    for name, rgb in data.items():
        is_rgb = isinstance(rgb, list | tuple) and len(rgb) == 3 and all(type(c) is int and 0 <= c <= 255 for c in rgb)
        if not is_rgb:
            raise ConfigError(f"{what}: the colour of '{name}' must be [r, g, b] with integers 0..255, got {rgb!r}")
        out[str(name)] = tuple(rgb)
    return out


BUNDLED = Path(__file__).parents[1] / "bundled" / "scenes"
"""The models trained in the synthetic scenes world (``python -m tcig.scenes.train``), shipped with the package."""

REAL_SETS = Path(__file__).parents[1] / "data" / "model_sets"
"""The model-set files of real models (hub ids): ``sd15``, ``sd21``, ``sdxl``, ``sd35``, ``flux-schnell``,
``flux-dev``."""

REAL_ORDER = ("sd15", "sd21", "sdxl", "sd35", "flux-schnell", "flux-dev")


def parse_segmenter_arg(text: str) -> tuple[str, float]:
    """``ID[:WEIGHT]`` → (id, weight); the weight defaults to 1 and must be a finite number >= 0."""
    ref, sep, weight = text.rpartition(":")
    if sep and ref:
        try:
            value = float(weight)
        except ValueError:
            return text, 1.0
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"segmenter weight must be a finite number >= 0 in '{text}'")
        return ref, value
    return text, 1.0


_SET_KEYS = {
    "name", "clip", "segmenters", "refiner", "resolution", "stage1_size", "description", "evaluator", "stage1",
    "stage2", "exemplar_prompt", "class_colours", "demo_layout", "max_sequence_length", "presets", "controlnet",
    "control_palette",
}  # fmt: skip
DEFAULT_PRESET = "default"
"""The preset name of a set's own settings."""


def load_model_set(name_or_path: str) -> ModelSet:
    """A built-in name or a model-set JSON file, checked key by key (one-line errors naming the key)."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ConfigError(f"unknown model set '{name_or_path}'; use one of {', '.join(BUILTIN)} or a JSON file")
    where = f"model set '{path}'"
    spec = read_json_object(path, "model set")
    unknown = sorted(k for k in set(spec) - _SET_KEYS if not k.startswith("_"))  # "_..." keys are comments
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(_SET_KEYS))}")
    for key in ("clip", "segmenters"):
        if key not in spec:
            raise ConfigError(f'{where} lacks "{key}"; it needs "clip", "segmenters" and "refiner" (or null)')
    base = path.parent

    def text(key: str, optional: bool = True) -> str | None:
        value = spec.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f'{where}: "{key}" must be a non-empty string, got {value!r}'[:200])
        return value

    def resolve(ref: str | None) -> str | None:
        """A path relative to the set's folder (``./x``, ``../x``, or ``x`` that exists beside the set), else the
        reference as given (a hub id, an absolute path)."""
        if ref and (ref.startswith(".") or (not Path(ref).is_absolute() and (base / ref).exists())):
            return str((base / ref).resolve())
        return ref

    if not isinstance(spec["segmenters"], list) or not spec["segmenters"]:
        raise ConfigError(f'{where}: "segmenters" must be a non-empty list of "ID[:WEIGHT]" or {{"id", "weight"}}')
    segmenters = []
    for entry in spec["segmenters"]:
        if isinstance(entry, str):
            segmenters.append(parse_segmenter_arg(entry))
        elif isinstance(entry, dict) and isinstance(entry.get("id"), str):
            weight = entry.get("weight", 1.0)
            if type(weight) not in (int, float) or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f'{where}: the weight of segmenter "{entry["id"]}" must be a number >= 0')
            segmenters.append((entry["id"], float(weight)))
        else:
            raise ConfigError(f'{where}: segmenter {entry!r} must be "ID[:WEIGHT]" or {{"id": ..., "weight": ...}}')
    resolution, stage1_size = spec.get("resolution", 512), spec.get("stage1_size")
    for key, value in (("resolution", resolution), ("stage1_size", stage1_size)):
        if value is not None and (type(value) is not int or not 8 <= value <= MAX_SIDE):
            raise ConfigError(f'{where}: "{key}" must be an integer in 8..{MAX_SIDE}, got {value!r}')
    tokens = spec.get("max_sequence_length")
    if tokens is not None and (type(tokens) is not int or not 1 <= tokens <= 4096):
        raise ConfigError(f'{where}: "max_sequence_length" must be an integer in 1..4096, got {tokens!r}')
    stages = _checked_stages(spec, where)
    presets = spec.get("presets", {})
    if not isinstance(presets, dict) or DEFAULT_PRESET in presets:
        raise ConfigError(f'{where}: "presets" must be an object {{name: {{"stage1": ..., "stage2": ...}}}} '
                          f'without "{DEFAULT_PRESET}" (the set\'s own settings)')  # fmt: skip
    for name, preset in presets.items():
        if not isinstance(preset, dict) or set(preset) - {"stage1", "stage2"}:
            raise ConfigError(f'{where}: preset "{name}" must be an object with "stage1" and/or "stage2"')
        _checked_stages(preset, f'{where}: preset "{name}"')
    colours = spec.get("class_colours")
    colours = resolve(colours) if isinstance(colours, str) else colours
    controlnet, control_palette = resolve(text("controlnet")), text("control_palette")
    if control_palette is not None and controlnet is None:
        raise ConfigError(f'{where}: "control_palette" is given without a "controlnet"')
    if control_palette is not None and control_palette not in PALETTE_NAMES:
        control_palette = resolve(control_palette)
        if not Path(control_palette).is_file():
            raise ConfigError(
                f'{where}: "control_palette" must be one of {", ".join(PALETTE_NAMES)} or a JSON file; '
                f"'{control_palette}' is neither"
            )
    exemplar = text("exemplar_prompt") or ModelSet.exemplar_prompt
    if "{name}" not in exemplar:
        raise ConfigError(f'{where}: "exemplar_prompt" must contain {{name}}, e.g. "a photo of a {{name}}"')
    return ModelSet(
        name=text("name") or path.stem,
        clip=resolve(text("clip", optional=False)),
        segmenters=tuple((resolve(ref), w) for ref, w in segmenters),
        refiner=resolve(text("refiner")),
        resolution=resolution,
        stage1_size=stage1_size,
        description=text("description") or "",
        evaluator=resolve(text("evaluator")),
        stage1=stages["stage1"],
        stage2=stages["stage2"],
        exemplar_prompt=exemplar,
        class_colours=tuple(read_class_colours(colours, f'{where}: "class_colours"').items()) if colours else (),
        demo_layout=resolve(text("demo_layout")),
        max_sequence_length=tokens,
        controlnet=controlnet,
        control_palette=control_palette,
        presets={name: {k: dict(v) for k, v in preset.items()} for name, preset in presets.items()},
    )


def _checked_stages(spec: dict, where: str) -> dict[str, dict]:
    """The "stage1" and "stage2" blocks of ``spec``, every field checked against its setting."""
    stages = {}
    for key, cls in (("stage1", Stage1Settings), ("stage2", Stage2Settings)):
        block = spec.get(key, {})
        if not isinstance(block, dict):
            raise ConfigError(f'{where}: "{key}" must be an object of {cls.__name__} fields')
        known = {o.name: o for o in options_of(cls)}
        for name, value in block.items():
            if name not in known:
                raise ConfigError(f'{where}: "{key}" has unknown field "{name}"; known: {", ".join(known)}')
            check_value(known[name], value, f'{where}: "{key}".')
        stages[key] = dict(block)
    return stages


def _builtin_sets() -> dict[str, ModelSet]:
    """The scenes world's model sets, declared as model-set files beside its models (shortest name first), then
    the real ones (smallest model first)."""
    scenes = sorted((BUNDLED / "sets").glob("*.json"), key=lambda f: (len(f.stem), f.stem))
    real = sorted(REAL_SETS.glob("*.json"), key=lambda f: (REAL_ORDER + (f.stem,)).index(f.stem))
    return {ms.name: ms for ms in (load_model_set(str(f)) for f in [*scenes, *real])}


BUILTIN: dict[str, ModelSet] = {}
BUILTIN.update(_builtin_sets())
"""The built-in model sets by name: model-set files, the scenes world's (``bundled/scenes/sets/``) and the real
models' (``data/model_sets/``)."""
