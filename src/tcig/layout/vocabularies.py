"""Class vocabularies (COCO-Stuff 182, ADE20K 150, Pascal VOC 21) and matching of class names to segmenter labels.

Label-id PNG conventions (verified on real maps, see ``data/real/README.md`` of the project's shared data):

- ``coco-stuff``: value k in 0..181 is class k (0 person … 181 wood), 255 is void (includes COCO crowd regions).
- ``ade20k``: 0 is "other objects" (void), k in 1..150 is class k-1 (1 wall … 150 flag); names are the first name
  of each ``objectInfo150`` row, the other names of the row are synonyms.
- ``voc``: value k in 0..20 is class k (0 background … 20 tvmonitor), 255 is void (object borders).

Name matching (:func:`match_labels`) tries, in order, for each layout class name:

1. **exact**: equal after :func:`normalize_name` (case, ``_``/``-`` and spacing do not matter);
2. **suffix**: equal after :func:`base_name`, which also drops the COCO-Stuff catch-all suffixes ``-other``,
   ``-stuff``, ``-merged``: "sky" ~ "sky-other", "wall" ~ "wall-other", "desk" ~ "desk-stuff".
   Material kinds stay distinct: "wall-concrete" is not "wall-brick", and "wall" matches only "wall-other";
3. **synonym**: in the same group of ``data/synonyms.json`` ("aeroplane" ~ "airplane", "sofa" ~ "couch");
4. **broader**: for a hyphenated COCO-Stuff name "head-kind" that nothing above matched, steps 1-3 for the head
   ("wall-concrete" → "wall", "floor-wood" → "floor"): a segmenter that only knows the general class still guides
   the region towards it. Logged at info level, since it is a generalisation.

Among several matching labels the first in the segmenter's order wins. An exact match always wins, so names that a
synonym group joins but a vocabulary keeps apart (COCO-Stuff "table" and "dining table") stay apart there.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType

import numpy as np
import torch

from tcig.errors import ClassNameError, ConfigError, LayoutError
from tcig.layout import IGNORE

logger = logging.getLogger(__name__)

_SUFFIXES = (" other", " stuff", " merged")


@dataclass(frozen=True)
class _VocabSpec:
    file: str
    offset: int
    void_values: frozenset[int]
    convention: str


_SPECS: Mapping[str, _VocabSpec] = MappingProxyType(
    {
        "coco-stuff": _VocabSpec("coco_stuff.txt", 0, frozenset({255}), "0..181 = classes, 255 = void"),
        "ade20k": _VocabSpec("ade20k.txt", 1, frozenset({0}), "1..150 = classes, 0 = other/void"),
        "voc": _VocabSpec("voc.txt", 0, frozenset({255}), "0..20 = classes, 255 = void"),
    }
)
_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "cocostuff": "coco-stuff",
        "coco": "coco-stuff",
        "coco-stuff-182": "coco-stuff",
        "ade": "ade20k",
        "ade-20k": "ade20k",
        "ade20k-150": "ade20k",
        "pascal-voc": "voc",
        "pascal": "voc",
        "voc2012": "voc",
    }
)
VOCABULARY_NAMES: tuple[str, ...] = tuple(_SPECS)
"""Canonical names accepted by :func:`load_vocabulary` (aliases such as "coco", "ade", "pascal-voc" also work)."""


@dataclass(frozen=True)
class Vocabulary:
    """A fixed class list and how a label-id PNG encodes it: PNG value = class id + ``offset``; ``void_values``
    are don't care."""

    name: str
    labels: list[str]
    offset: int = 0
    void_values: frozenset[int] = frozenset()
    convention: str = ""

    def decode(self, array: np.ndarray | torch.Tensor, source: str = "label map") -> tuple[torch.Tensor, list[str]]:
        """Turn a label-id array ``[H, W]`` into a compact ``(label_map, classes)`` pair.

        ``classes`` lists only the classes present, in vocabulary order, and ``label_map`` indexes it (void = -1).
        ``source`` names the file in error messages.
        """
        values = array.cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer):
            raise LayoutError(
                f"{source}: a label-id map must be a 2-D integer array, got shape {values.shape} of {values.dtype}; "
                "save it as a single-channel PNG (mode L, P or I;16)"
            )
        uniques, counts, apply = _value_table(values)
        ids = uniques.astype(np.int64) - self.offset
        void = np.isin(uniques, list(self.void_values))
        unknown = ~void & ((ids < 0) | (ids >= len(self.labels)))
        if unknown.any():
            pairs = list(zip(uniques[unknown], counts[unknown], strict=True))[:5]
            bad = ", ".join(f"{int(v)} ({int(c):,} px)" for v, c in pairs)
            raise LayoutError(
                f"{source} has values that are not {self.name} label ids: {bad}; {self.name} uses {self.convention}; "
                f"pass the vocabulary the map was made with ({', '.join(VOCABULARY_NAMES)}) or a colour legend"
            )
        present = ids[~void]
        compact = np.full(len(uniques), IGNORE, dtype=np.int64)
        compact[~void] = np.arange(len(present))
        label_map = torch.from_numpy(apply(compact))
        return label_map, [self.labels[i] for i in present]


def _value_table(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """(distinct values, their pixel counts, f) where f maps one entry per distinct value onto the pixels.

    Small non-negative values (8/16-bit maps) take a bincount lookup table, which is much faster than sorting."""
    if values.size and values.min() >= 0 and values.max() < 1 << 16:
        counts = np.bincount(values.ravel())
        uniques = np.flatnonzero(counts)

        def apply(per_value: np.ndarray) -> np.ndarray:
            table = np.zeros(len(counts), dtype=per_value.dtype)
            table[uniques] = per_value
            return table[values]

        return uniques, counts[uniques], apply
    uniques, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return uniques, counts, lambda per_value: per_value[inverse.reshape(values.shape)]


def canonical_vocabulary(name: str, what: str = "vocabulary") -> str:
    """ "coco-stuff", "ade20k" or "voc" for any case or alias of them ("coco", "ade", "pascal-voc" …)."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        raise ConfigError(f"unknown {what} '{name}': choose one of {', '.join(VOCABULARY_NAMES)}")
    return key


def load_vocabulary(name: str) -> Vocabulary:
    """The named vocabulary: "coco-stuff", "ade20k" or "voc" (any case; aliases "coco", "ade", "pascal-voc" …)."""
    key = canonical_vocabulary(name)
    spec = _SPECS[key]
    return Vocabulary(key, list(_read_labels(spec.file)), spec.offset, spec.void_values, spec.convention)


@cache
def _read_labels(file: str) -> tuple[str, ...]:
    text = (resources.files("tcig") / "data" / file).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def _synonym_groups() -> Mapping[str, int]:
    """Normalized name → synonym group number, from ``data/synonyms.json``."""
    text = (resources.files("tcig") / "data" / "synonyms.json").read_text(encoding="utf-8")
    index: dict[str, int] = {}
    for number, group in enumerate(json.loads(text)["groups"]):
        for member in group:
            index.setdefault(normalize_name(member), number)
    return MappingProxyType(index)


def normalize_name(name: str) -> str:
    """Lower case, ``_`` and ``-`` as spaces, single spaces: "Sky_Other" → "sky other"."""
    return re.sub(r"\s+", " ", name.strip().lower().replace("_", " ").replace("-", " "))


def base_name(name: str) -> str:
    """:func:`normalize_name` without the COCO-Stuff catch-all suffixes: "sky-other-merged" → "sky"."""
    key = normalize_name(name)
    while True:
        for suffix in _SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key = key[: -len(suffix)]
                break
        else:
            return key


class _LabelIndex:
    """Lookup tables over one label list for the matching steps."""

    def __init__(self, labels: Sequence[str]) -> None:
        groups = _synonym_groups()
        self.exact: dict[str, int] = {}
        self.base: dict[str, int] = {}
        self.group: dict[int, int] = {}
        for i, label in enumerate(labels):
            key, base = normalize_name(label), base_name(label)
            self.exact.setdefault(key, i)
            self.base.setdefault(base, i)
            for k in (key, base):
                if k in groups:
                    self.group.setdefault(groups[k], i)

    def _lookup(self, name: str) -> tuple[int | None, str]:
        key, base = normalize_name(name), base_name(name)
        if key in self.exact:
            return self.exact[key], "exact"
        if base in self.base:
            return self.base[base], "suffix"
        groups = _synonym_groups()
        for k in (key, base):
            if k in groups and groups[k] in self.group:
                return self.group[groups[k]], "synonym"
        return None, ""

    def match(self, name: str) -> tuple[int | None, str]:
        """(label index or None, rule that matched)."""
        index, rule = self._lookup(name)
        if index is None and "-" in name.strip("-"):
            index, _ = self._lookup(name.strip().split("-")[0])
            rule = "broader"
        return index, rule


BACKGROUND_NAMES = ("background", "bg")


def _background_index(labels: Sequence[str]) -> int | None:
    """The label of a segmenter with a smaller vocabulary that stands for every class it lacks, if it has one."""
    for i, label in enumerate(labels):
        if normalize_name(label) in BACKGROUND_NAMES:
            return i
    return None


def match_labels(class_names: Sequence[str], labels: Sequence[str]) -> list[int | None]:
    """For each class name, the index of its label in ``labels`` (see the module docstring for the rules), or None."""
    index = _LabelIndex(labels)
    return [index.match(name)[0] for name in class_names]


def nearest_names(name: str, labels: Sequence[str], n: int = 5) -> list[str]:
    """Up to ``n`` labels that look most like ``name`` (difflib ratio on normalized names), best first."""
    by_key: dict[str, str] = {}
    for label in labels:
        by_key.setdefault(normalize_name(label), label)
    close = difflib.get_close_matches(normalize_name(name), list(by_key), n=n, cutoff=0.5)
    return [by_key[key] for key in close]


def resolve_classes(
    class_names: Sequence[str], segmenter_labels: Mapping[str, Sequence[str] | None]
) -> dict[str, list[int | None]]:
    """Map layout class names into each guiding segmenter's labels.

    ``segmenter_labels`` maps a segmenter name to its label list, or to None for an open-vocabulary segmenter, which
    takes every class name as its query (class i → output i). Returns, per segmenter, one label index (or None) per
    class. A class some segmenters lack is logged and left to the others, except that a segmenter with a
    ``background`` label (a specialist of a few classes) maps it there, so it also learns where its classes must not
    be; a class that no segmenter knows raises
    :class:`ClassNameError` listing the nearest known names. With no segmenter at all, nothing is resolved.
    """
    mappings: dict[str, list[int | None]] = {}
    for seg, labels in segmenter_labels.items():
        if labels is None:
            mappings[seg] = list(range(len(class_names)))
            continue
        index = _LabelIndex(labels)
        mapping: list[int | None] = []
        for name in class_names:
            found, rule = index.match(name)
            if found is not None and rule != "exact":
                logger.info("class '%s' → '%s' of segmenter %s (%s match)", name, labels[found], seg, rule)
            mapping.append(found)
        mappings[seg] = mapping
    if not mappings:
        return mappings

    backgrounds = {seg: _background_index(labels) for seg, labels in segmenter_labels.items() if labels is not None}
    unknown = []
    for i, name in enumerate(class_names):
        lacking = [seg for seg, mapping in mappings.items() if mapping[i] is None]
        if len(lacking) == len(mappings):
            unknown.append(name)
            continue
        others = [seg for seg in lacking if backgrounds.get(seg) is None]
        if others:
            logger.warning("class '%s' is unknown to segmenter %s; left to the others", name, ", ".join(others))
        for seg in lacking:
            if backgrounds.get(seg) is not None:
                logger.info("class '%s' counts as background for segmenter %s", name, seg)
                mappings[seg][i] = backgrounds[seg]
    if unknown:
        known = [label for labels in segmenter_labels.values() if labels is not None for label in labels]
        near = {name: ", ".join(nearest_names(name, known)) or "none similar" for name in unknown}
        if len(unknown) == 1:
            name = unknown[0]
            raise ClassNameError(
                f"unknown class '{name}': no guiding segmenter knows it; nearest known names: {near[name]}; "
                "rename it in the layout or add a segmenter that knows it"
            )
        listed = "; ".join(f"'{name}' (nearest known names: {near[name]})" for name in unknown)
        raise ClassNameError(
            f"unknown classes {listed}: no guiding segmenter knows them; "
            "rename them in the layout or add a segmenter that knows them"
        )
    return mappings
