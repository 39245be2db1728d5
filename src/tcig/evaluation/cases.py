"""Evaluation cases: a layout, a prompt and, where one exists, the real image it was drawn from (the ceiling).

Sources, written as ``KIND:ARGUMENT`` on the command line:

- ``folder:DIR``: every layout file in a folder (JSON specs, colour PNGs with a ``.legend.json``, mask folders),
  prompts from the layout itself or from ``DIR/prompts.json`` (``{"file name": "prompt"}``);
- ``real:DIR``: the real COCO-Stuff and ADE20K label maps of a folder laid out like ``shared/data/real`` (its
  ``manifest.json``), with their photos; COCO prompts are the first caption, ADE20K prompts are built from the
  scene category and the largest classes (ADE20K has no captions);
- ``scenes:N`` or ``scenes:N:FIRST``: ``N`` rendered scenes from the held-out seed range (or from seed ``FIRST``).

``coco_protocol`` is the paper's selection: Pascal VOC classes only, 2 to 4 of them, no person, each covering at
least 5 % of the image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tcig.errors import ConfigError, TCIGError
from tcig.io.files import not_there, read_input_text, read_json_object
from tcig.io.names import check_name
from tcig.layout import IGNORE, Layout
from tcig.layout.readers import read_layout
from tcig.layout.vocabularies import load_vocabulary, match_labels

logger = logging.getLogger(__name__)

LAYOUT_SUFFIXES = (".json", ".png")
COCO_FIRST_STUFF = 91  # COCO-Stuff ids 0..90 are things, 91..181 stuff


@dataclass
class Case:
    """One evaluation case; ``reference`` is the real image ``[3,H,W]`` in [0,1] the layout came from, if any."""

    name: str
    layout: Layout
    prompt: str
    reference: torch.Tensor | None = None
    source: str = ""


def load_cases(spec: str) -> list[Case]:
    """Cases from one ``KIND:ARGUMENT`` source (see the module docstring); names are checked to be safe file names
    and unique across the source."""
    kind, _, argument = spec.partition(":")
    cases = None
    if kind == "folder" and argument:
        cases = folder_cases(Path(argument))
    elif kind == "real" and argument:
        cases = real_cases(Path(argument))
    elif kind == "scenes" and argument:
        parts = argument.split(":")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) in (1, 2) and not 0 < numbers[0] <= MAX_SCENES:
            raise ConfigError(f"'{spec}' asks for {numbers[0]} scenes; give a number of scenes in 1..{MAX_SCENES}")
        if len(numbers) == 2 and numbers[1] < 0:
            raise ConfigError(f"'{spec}' starts at seed {numbers[1]}; the first seed must be >= 0")
        if len(numbers) in (1, 2):
            cases = scene_cases(*numbers)
    if cases is None:
        raise ConfigError(
            f"unknown case source '{spec}'; use folder:DIR, real:DIR, scenes:N or scenes:N:FIRST_SEED "
            f"(N in 1..{MAX_SCENES})"
        )
    check_case_names(cases)
    return cases


MAX_SCENES = 100_000


def check_case_names(cases: list[Case]) -> None:
    """Every case name is a safe file name (its images are written under it) and no two cases share one."""
    seen: dict[str, str] = {}
    for case in cases:
        check_name(case.name, f"case name (from {case.source})")
        key = case.name.casefold()
        if key in seen:
            raise ConfigError(
                f"two cases are named '{case.name}' ({seen[key]} and {case.source}); rename one layout file"
            )
        seen[key] = case.source


def folder_cases(folder: Path) -> list[Case]:
    """Every layout in ``folder``, named by its file: JSON specs, colour or label-id PNGs with their JSON sidecars
    (``<stem>.json``, ``<stem>.legend.json``) and mask folders. A sidecar is never read as a layout; sub-folders that
    hold no mask are skipped (logged). A layout needs a prompt from itself or ``prompts.json``."""
    if not folder.is_dir():
        what = "is a file; give a folder of layouts" if folder.is_file() else not_there(folder)
        raise ConfigError(f"case folder '{folder}' {what}")
    prompts_file = folder / "prompts.json"
    prompts = _read_prompts(prompts_file) if prompts_file.is_file() else {}
    pngs = {p.stem for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()}
    cases = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            if not any(p.suffix.lower() == ".png" for p in path.iterdir()):
                logger.info("%s: skipping the folder %s, which holds no mask", folder, path.name)
                continue
        elif path.suffix.lower() not in LAYOUT_SUFFIXES or _is_sidecar(path, pngs):
            continue
        layout = read_layout(path)
        prompt = prompts.get(path.name) or prompts.get(path.stem) or layout.prompt
        if not prompt:
            raise ConfigError(f"layout '{path}' has no prompt; add one to it or to {prompts_file}")
        cases.append(Case(path.stem, layout, prompt, source=f"folder:{folder}"))
    if not cases:
        raise ConfigError(f"no layout files (.json, .png or mask folders) in '{folder}'")
    return cases


def _read_prompts(path: Path) -> dict[str, str]:
    data = read_json_object(path, "prompts file")
    if not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f'\'{path}\' must map layout file names to prompts, e.g. {{"beach.json": "a beach"}}')
    return data


def _is_sidecar(path: Path, pngs: set[str]) -> bool:
    """A legend, the prompts file, or the JSON sidecar of a PNG of the same stem (a JSON spec, with "regions", is a
    layout even then)."""
    if path.name.endswith(".legend.json") or path.name == "prompts.json":
        return True
    if path.suffix.lower() != ".json" or path.stem not in pngs:
        return False
    try:
        return "regions" not in read_json_object(path, "layout JSON")
    except ConfigError:
        return False  # read as a layout, which reports what is wrong with it


def real_cases(root: Path) -> list[Case]:
    """The real label maps listed in ``root/manifest.json`` that have a photo; COCO maps need a caption."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(f"'{root}' has no manifest.json; point real: at a folder laid out like shared/data/real")
    cases = []
    try:
        entries = json.loads(read_input_text(manifest, "real-cases manifest"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"'{manifest}' is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and "dataset" in e and "label_map" in e for e in entries
    ):
        raise ConfigError(f'\'{manifest}\' must list objects with at least "dataset" and "label_map"')
    for entry in entries:
        coco = entry["dataset"].startswith("coco")
        if not entry.get("photo") or (coco and not entry.get("captions")):
            continue
        layout = read_layout(root / entry["label_map"], vocabulary="coco-stuff" if coco else "ade20k")
        prompt = entry["captions"][0] if coco else _ade_prompt(entry, layout)
        photo = Image.open(root / entry["photo"]).convert("RGB")
        reference = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255
        name = Path(entry["label_map"]).stem
        cases.append(Case(name, replace(layout, prompt=prompt), prompt, reference, entry["dataset"]))
    return cases


def _ade_prompt(entry: dict, layout: Layout, top: int = 3) -> str:
    scene = str(entry.get("ade_scene_category") or "scene").replace("_", " ")
    counts = torch.bincount(layout.label_map[layout.label_map != IGNORE], minlength=len(layout.classes))
    largest = [layout.classes[i] for i in counts.argsort(descending=True)[:top].tolist() if counts[i] > 0]
    return f"a photo of a {scene} with {', '.join(largest)}"


def scene_cases(count: int, first: int | None = None) -> list[Case]:
    """``count`` rendered scenes (held-out seeds unless ``first`` is given), the rendered image as reference."""
    from tcig.scenes import render_scene, scene_layout
    from tcig.scenes.data import SEED_RANGES

    start = SEED_RANGES["heldout"].start if first is None else first
    cases = []
    for seed in range(start, start + count):
        scene = render_scene(seed)
        reference = torch.from_numpy(scene.image.copy()).permute(2, 0, 1).float() / 255
        cases.append(Case(f"scene_{seed}", scene_layout(scene), scene.caption, reference, "scenes"))
    return cases


def coco_protocol(cases: Iterable[Case], min_share: float = 0.05) -> list[Case]:
    """The paper's COCO selection: layouts whose Pascal VOC object classes number 2 to 4, include no person and
    each cover at least ``min_share`` of the image. Other classes (COCO-Stuff's stuff) become don't care."""
    voc = [name for name in load_vocabulary("voc").labels if name != "background"]
    stuff = set(load_vocabulary("coco-stuff").labels[COCO_FIRST_STUFF:])  # "table", "plant-other" are not VOC
    kept = []
    for case in cases:
        layout = case.layout
        matches = match_labels(layout.classes, voc)
        in_voc = [m is not None and name not in stuff for name, m in zip(layout.classes, matches, strict=True)]
        keep_ids = [i for i, ok in enumerate(in_voc) if ok]
        lookup = torch.tensor([IGNORE] * len(layout.classes) + [IGNORE])
        lookup[torch.tensor(keep_ids, dtype=torch.long)] = torch.arange(len(keep_ids))
        label_map = lookup[layout.label_map]
        shares = torch.bincount(label_map[label_map != IGNORE], minlength=len(keep_ids)).float() / label_map.numel()
        names = [layout.classes[i] for i in keep_ids]
        present = [n for n, s in zip(names, shares.tolist(), strict=True) if s > 0]
        if not 2 <= len(present) <= 4 or "person" in present or any(0 < s < min_share for s in shares.tolist()):
            continue
        filtered = Layout(label_map, names, {}, case.prompt)
        kept.append(replace(case, layout=filtered))
    if not kept:
        raise TCIGError("no case passes the COCO protocol (2-4 Pascal VOC classes, no person, each >= 5 %)")
    return kept
