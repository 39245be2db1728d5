"""Captions from what a rendered scene shows: scene type, counts and colours of objects, sky and light.

A caption only names what is visible (objects count when enough of them shows), stays lowercase ASCII and at most
:data:`MAX_WORDS` words: phrases of the least salient objects are dropped until it fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_WORDS = 20
_COUNTS = {1: "a", 2: "two", 3: "three"}
_NOUNS = {
    "beach": ["a sandy beach", "a beach", "a quiet beach", "a beach by the sea"],
    "lake": ["a calm lake", "a lake", "a quiet lake"],
    "meadow": ["a green meadow", "a grassy field", "a meadow", "the countryside"],
    "village": ["a small village", "a village", "a quiet village"],
}
_PREP = {"beach": "on", "lake": "by", "coast": "on", "meadow": "in", "village": "in"}


@dataclass
class SceneContent:
    """The visible content of a scene (built by :mod:`tcig.scenes.render`)."""

    kind: str
    time: str
    present: set[str]
    sun: bool = False
    clouds: int = 0
    boats: list[dict] = field(default_factory=list)
    houses: list[dict] = field(default_factory=list)
    trees: list[dict] = field(default_factory=list)
    rocks: list[dict] = field(default_factory=list)
    mountain: str | None = None
    road: str | None = None
    land: str | None = None


class _Pick:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, options: list):
        return options[int(self.rng.integers(len(options)))]

    def p(self, prob: float) -> bool:
        return float(self.rng.random()) < prob


def _a(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _counted(n: int, single: str, plural: str, adjective: str = "") -> str:
    words = f"{adjective} {single if n == 1 else plural}".strip()
    if n == 1:
        return _a(words)
    return f"{_COUNTS.get(n, 'several')} {words}"


def _same(items: list[dict], key: str) -> str:
    values = {item[key] for item in items}
    return values.pop() if len(values) == 1 else ""


# Each phrase function returns (full phrase, short phrase); the short one drops adjectives to save words.


def _boats(c: SceneContent, pick: _Pick) -> tuple[str, str]:
    n, colour = len(c.boats), _same(c.boats, "colour")
    sail = all(b["sail"] for b in c.boats)
    single, plural = ("sailboat", "sailboats") if sail and pick.p(0.6) else ("boat", "boats")
    short = _counted(n, single, plural)
    if n == 2 and not colour:
        return f"{_a(c.boats[0]['colour'])} {single} and {_a(c.boats[1]['colour'])} {single}", short
    return _counted(n, single, plural, colour if colour and pick.p(0.85) else pick(["", "small"])), short


def _houses(c: SceneContent, pick: _Pick) -> tuple[str, str]:
    n, wall, roof = len(c.houses), _same(c.houses, "wall"), _same(c.houses, "roof")
    options = [_counted(n, "house", "houses", wall or pick(["", "small"]))]
    if roof:
        roofs = f" with a {roof} roof" if n == 1 else f" with {roof} roofs"
        options.append(_counted(n, "house", "houses", wall) + roofs)
    return pick(options), _counted(n, "house", "houses")


def _trees(c: SceneContent, pick: _Pick) -> tuple[str, str]:
    kinds = {t["kind"] for t in c.trees}
    colour = _same(c.trees, "colour")
    if kinds == {"palm"} or kinds == {"pine"}:
        adjective = kinds.pop()
    elif colour in ("green", "dark"):
        adjective = pick(["green", "", "leafy"]) if colour == "green" else pick(["dark green", "green"])
    else:
        adjective = {"autumn": "autumn", "yellow": "yellow"}.get(colour, "")
    return _counted(len(c.trees), "tree", "trees", adjective), _counted(len(c.trees), "tree", "trees")


def _rocks(c: SceneContent, pick: _Pick) -> tuple[str, str]:
    colour = _same(c.rocks, "colour")
    adjective = pick([colour if colour in ("grey", "brown") else "dark", "", "large" if len(c.rocks) == 1 else ""])
    return _counted(len(c.rocks), "rock", "rocks", adjective), _counted(len(c.rocks), "rock", "rocks")


def _sky(c: SceneContent, pick: _Pick) -> tuple[str, str]:
    """Sun and clouds are named whenever they are visible."""
    clouds = c.clouds > 0
    if c.time == "day":
        if c.sun and clouds:
            full = pick(["on a sunny day with a few clouds", "on a sunny day with white clouds"])
            return pick([full, "under sun and clouds"]), "under sun and clouds"
        if c.sun:
            return pick(["on a sunny day", "under a sunny sky", "in bright sunshine", "under a blue sky and sun"]), (
                "on a sunny day"
            )
        if clouds:
            return pick(["under a cloudy blue sky", "under a blue sky with white clouds", "on a cloudy day"]), (
                "under a cloudy sky"
            )
        return pick(["under a clear blue sky", "on a clear day"]), "under a blue sky"
    if c.time == "dusk":
        if c.sun:
            full, short = pick(["at sunset", "under an orange sunset", "at sunset with a low sun"]), "at sunset"
        else:
            full, short = pick(["at dusk", "in the evening light", "under a pink evening sky"]), "at dusk"
        if clouds:
            full += " and pink clouds" if " with " in full else " with pink clouds"
            short += " with clouds"
        return full, short
    if clouds:
        return pick(["under dark grey clouds", "under a cloudy grey sky", "on a cloudy day"]), "under grey clouds"
    return pick(["under an overcast sky", "on a grey overcast day", "under a grey sky"]), "under a grey sky"


def _scene_noun(c: SceneContent, pick: _Pick) -> tuple[str, str]:
    kind = c.kind
    if kind == "village" and not c.houses:
        kind = "meadow"
    if kind == "beach" and not {"sea", "sand"} <= c.present:
        kind = "meadow" if "grass" in c.present else kind
    if kind == "coast":
        land = "grassy" if c.land == "grass" else "sandy"
        return (pick([f"a rocky {land} coast", f"a {land} coast"]) if c.rocks else f"a {land} coast"), kind
    if kind == "lake" and "grass" in c.present and pick.p(0.75):
        return pick(["a lake by a green meadow", "a calm lake in a green meadow", "a lake in a grassy valley"]), kind
    return pick(_NOUNS[kind]), kind


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def make_caption(c: SceneContent, rng: np.random.Generator) -> str:
    """A caption naming the scene type, the salient objects with counts and colours, and the sky.

    Over :data:`MAX_WORDS` words, it shortens step by step: a shorter sky phrase, objects without adjectives, no
    mountains, then the least salient objects go.
    """
    pick = _Pick(rng)
    noun, kind = _scene_noun(c, pick)
    objects: list[tuple[str, str]] = []  # most salient first
    for items, phrase in ((c.boats, _boats), (c.houses, _houses)):
        if items:
            objects.append(phrase(c, pick))
    road = {"dirt": "a dirt road", "winding": "a winding road", "plain": "a road"}.get(c.road or "")
    if road:
        objects.append((road, "a road"))
    for items, phrase in ((c.trees, _trees), (c.rocks, _rocks)):
        if items:
            objects.append(phrase(c, pick))
    if noun.startswith("a rocky"):
        objects.pop()
    mountain = pick([f"{c.mountain} mountains", "mountains", "distant mountains"]) if c.mountain else ""
    sky = _sky(c, pick)
    template = pick(["with", "with", "prep", "behind"] if mountain else ["with", "with", "prep"])
    if road and kind in ("village", "meadow") and pick.p(0.4):
        template = "road"

    def build(objs: list[str], m: str, sky_phrase: str) -> str:
        if template == "behind" and m:
            text = f"{m} behind {noun}" + (f" with {_join(objs)}" if objs else "")
        elif template == "road" and objs and objs[0].endswith("road"):
            text = f"{objs[0]} through {noun}" + (f" with {_join(objs[1:])}" if objs[1:] else "")
            text += f" below {m}" if m else ""
        elif template == "prep" and objs:
            text = f"{_join(objs)} {_PREP[kind]} {noun}" + (f" below {m}" if m else "")
        else:
            text = noun + (f" with {_join(objs + ([m] if m else []))}" if objs or m else "")
        return f"{text} {sky_phrase}".strip()

    if road and template == "road":  # the road leads: move it first
        i = [full for full, _ in objects].index(road)
        objects.insert(0, objects.pop(i))
    full = [f for f, _ in objects]
    short = [s for _, s in objects]
    attempts = [(full, mountain, sky[0]), (full, mountain, sky[1]), (short, mountain, sky[1]), (short, "", sky[1])]
    attempts += [(short[:k], "", sky[1]) for k in range(len(short) - 1, -1, -1)]
    for objs, m, sky_phrase in attempts:
        caption = build(objs, m, sky_phrase)
        if len(caption.split()) <= MAX_WORDS:
            return caption
    return " ".join(caption.split()[:MAX_WORDS])
