"""Procedural outdoor scenes with exact label maps: a small synthetic world to train tiny models offline.

A scene is planned in resolution-free coordinates (fractions of the image side, y pointing down, horizon at ``hy``)
from ``np.random.default_rng(seed)`` and then rasterised at any size, so ``render_scene(s, 64)`` and
``render_scene(s, 128)`` show the same scene. Painter's order, far to near: sky, sun, clouds, mountains, ground
(sea / sand / grass), road, then boats, houses, trees and rocks sorted by the row they stand on. Texture and light
change only the image; labels are exact, unantialiased shapes and every pixel has one.

All random draws that shape the scene have a fixed shape (independent of the size); the only size-dependent draw, the
per-pixel grain, comes last. The drawing primitives live in :mod:`tcig.scenes.shapes`, captions in
:mod:`tcig.scenes.captions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from tcig.errors import ConfigError
from tcig.layout import Layout
from tcig.scenes.captions import SceneContent, make_caption
from tcig.scenes.shapes import (
    BOAT,
    CLOUD,
    GRASS,
    HOUSE,
    ROCK,
    SAND,
    SCENE_CLASSES,
    SEA,
    SKY,
    SUN,
    TREE,
    Canvas,
    World,
    draw_ground,
    draw_object,
    draw_range,
    draw_road,
    draw_sky,
    ground_at,
    road_span,
)

__all__ = ["SCENE_CLASSES", "Scene", "render_scene", "render_scenes", "scene_layout"]

KINDS = ("beach", "lake", "coast", "meadow", "village")
_KIND_P = (0.25, 0.2, 0.12, 0.18, 0.25)
_BOAT_COLOURS = {"red": (200, 45, 40), "white": (236, 236, 230), "blue": (40, 80, 175), "yellow": (232, 190, 45),
                 "orange": (232, 118, 35), "green": (45, 130, 70)}  # fmt: skip
_WALLS = {"white": (232, 228, 218), "yellow": (226, 198, 118), "red": (172, 74, 52), "grey": (150, 150, 152),
          "pink": (226, 168, 160), "blue": (125, 155, 195)}  # fmt: skip
_ROOFS = {"red": (165, 48, 38), "brown": (105, 68, 45), "grey": (88, 88, 94), "blue": (58, 78, 122),
          "black": (45, 45, 50)}  # fmt: skip
_MOUNTAINS = {"grey": (122, 122, 128), "blue": (96, 116, 158), "brown": (128, 106, 86), "green": (86, 112, 84)}
_ROCKS = {"grey": (124, 122, 118), "brown": (122, 102, 82), "dark": (82, 82, 88)}
_TREES = {"green": (58, 118, 48), "dark": (36, 88, 44), "autumn": (206, 120, 40), "yellow": (196, 170, 52)}


@dataclass(frozen=True)
class Scene:
    """One rendered scene: ``image`` uint8 ``[H, W, 3]``, ``labels`` uint8 ``[H, W]`` (index into
    :data:`SCENE_CLASSES`, every pixel labelled), a caption generated from what is visible, and its seed."""

    image: np.ndarray
    labels: np.ndarray
    caption: str
    seed: int


class _Draw:
    """Size-independent random draws as Python floats, read from blocks of ``default_rng(seed)`` uniforms (fast,
    and NumPy scalars would upcast the float32 arrays they touch)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.buf: list[float] = []

    def u(self, a: float = 0.0, b: float = 1.0) -> float:
        if not self.buf:
            self.buf = self.rng.random(256).tolist()
        return a + (b - a) * self.buf.pop()

    def p(self, prob: float) -> bool:
        return self.u() < prob

    def n(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return min(hi, lo + int(self.u() * (hi - lo + 1)))

    def pick(self, options, probs=None):
        if probs is None:
            return options[min(len(options) - 1, int(self.u() * len(options)))]
        r, acc = self.u(), 0.0
        for option, prob in zip(options, probs, strict=True):
            acc += prob
            if r < acc:
                return option
        return options[-1]

    def rgb(self, base, jitter: float = 14.0) -> np.ndarray:
        return np.array([c + self.u(-jitter, jitter) for c in base], np.float32)


def _light(d: _Draw, w: World) -> None:
    """Time of day: sky gradient, sun/cloud colours and the light that tints everything on the ground."""
    if w.time == "day":
        w.sky_top, w.haze = d.rgb((58, 118, 205), 18), d.rgb((168, 204, 234), 12)
        w.tint = np.float32(d.u(0.95, 1.1)) * np.ones(3, np.float32)
        w.cloud_rgb, w.cloud_shade = d.rgb((242, 244, 250), 6), d.rgb((196, 202, 214), 10)
    elif w.time == "dusk":
        w.sky_top = d.rgb(d.pick([(62, 56, 122), (88, 68, 140), (44, 58, 112)]), 12)
        w.haze = d.rgb(d.pick([(250, 152, 82), (240, 138, 148), (252, 186, 110)]), 10)
        w.tint = np.array([1.0, 0.84, 0.74], np.float32) * np.float32(d.u(0.76, 0.92))
        w.cloud_rgb, w.cloud_shade = d.rgb((246, 186, 168), 12), d.rgb((150, 110, 140), 12)
    else:
        w.sky_top, w.haze = d.rgb((138, 143, 153), 10), d.rgb((192, 194, 198), 8)
        w.tint = np.array([0.86, 0.88, 0.92], np.float32) * np.float32(d.u(0.85, 1.0))
        dark = d.p(0.6)
        w.cloud_rgb = d.rgb((112, 114, 124) if dark else (224, 225, 230), 8)
        w.cloud_shade = w.cloud_rgb * np.float32(0.8 if dark else 0.86)
    w.sky_gamma = d.u(0.6, 1.4)


def _lit(w: World, rgb) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    if w.time == "overcast":
        rgb = rgb * np.float32(0.65) + rgb.mean() * np.float32(0.35)
    return rgb * w.tint


def _sky_objects(d: _Draw, w: World) -> list[tuple]:
    out: list[tuple] = []
    if w.time != "overcast" and d.p(0.6 if w.time == "day" else 0.8):
        r = d.u(0.035, 0.065)
        cy = d.u(0.09, w.hy - 0.12) if w.time == "day" else d.u(w.hy - 0.13, w.hy - 0.02)
        colour = d.rgb((255, 250, 222), 3) if w.time == "day" else d.rgb((255, d.u(140, 200), d.u(60, 100)), 4)
        out.append((0.0, "sun", {"x": d.u(0.1, 0.9), "y": cy, "r": r, "rgb": colour}))
    n = {"day": d.pick([0, 0, 1, 2, 3]), "dusk": d.pick([0, 1, 2, 3]), "overcast": d.n(1, 5)}[w.time]
    for _ in range(n):
        width = d.u(0.18, 0.42) * (1.3 if w.time == "overcast" else 1.0)
        height = width * d.u(0.22, 0.42)
        base = d.u(0.1, w.hy - 0.05)
        cx = d.u(-0.05, 1.05)
        puffs = []
        for _ in range(d.n(3, 6)):
            ry = height * d.u(0.45, 1.0)
            puffs.append((cx + d.u(-0.38, 0.38) * width, base - ry * d.u(0.15, 0.6), width * d.u(0.16, 0.32), ry))
        out.append((0.0, "cloud", {"base": base, "puffs": puffs}))
    return out


def _mountains(d: _Draw, w: World) -> list[dict]:
    prob = {"lake": 0.75, "meadow": 0.5, "village": 0.4, "beach": 0.35, "coast": 0.45}[w.kind]
    if not d.p(prob):
        return []
    name = d.pick(list(_MOUNTAINS))
    snowy = d.p(0.5 if name != "green" else 0.1)
    ranges = []
    for far in [True, False] if d.p(0.4) else [False]:
        x0, x1 = d.u(-0.3, 0.35), d.u(0.65, 1.3)
        top = min(0.32, w.hy - 0.07) * (0.75 if far else 1.0)
        k = d.n(2, 6)
        step = (x1 - x0) / k
        px = [x0 + (i + 0.5 + d.u(-0.25, 0.25)) * step for i in range(k)]
        ph = [d.u(0.4, 1.0) * top for _ in range(k)]
        vx, vy = [x0 - 0.1], [0.0]
        for i in range(k):  # peak, then the valley towards the next peak
            vx.append(px[i])
            vy.append(ph[i])
            if i + 1 < k:
                vx.append((px[i] + px[i + 1]) / 2 + d.u(-0.2, 0.2) * step)
                vy.append(min(ph[i], ph[i + 1]) * d.u(0.15, 0.65))
        vx.append(x1 + 0.1)
        vy.append(0.0)
        jx, jy = [vx[0]], [vy[0]]
        for i in range(1, len(vx)):  # a jagged point in every segment
            f = d.u(0.3, 0.7)
            jx += [vx[i - 1] + f * (vx[i] - vx[i - 1]), vx[i]]
            jy += [vy[i - 1] + f * (vy[i] - vy[i - 1]) + d.u(-0.12, 0.12) * abs(vy[i] - vy[i - 1]), vy[i]]
        vx, vy = np.array(jx), w.hy + 0.02 - np.array(jy)
        base = d.rgb(_MOUNTAINS[name], 12)
        base = base * np.float32(0.55 if far else 0.75) + w.haze * np.float32(0.45 if far else 0.25)
        peak = float(vy.min())
        snow = peak + d.u(0.25, 0.5) * (w.hy - peak) if snowy and w.hy - peak > 0.12 else None
        ranges.append({"vx": vx, "vy": vy, "rgb": _lit(w, base), "snow": snow, "snow_rgb": _lit(w, (242, 244, 250))})
    w.mountain_name = name
    return ranges


def _ground(d: _Draw, w: World) -> None:
    if w.kind in ("beach", "lake"):
        w.far = d.u(0.025, 0.055) if w.kind == "lake" and d.p(0.6) else 0.0
        lo, hi = (0.12, 0.3) if w.kind == "beach" else (0.15, 0.33)
        w.shore = (min(0.86, w.hy + w.far + d.u(lo, hi)), d.u(-0.15, 0.15), d.u(0, 0.03), d.u(0.5, 2.0), d.u(0, 6.3))
    if w.kind == "coast":
        w.land = GRASS if d.p(0.65) else SAND
        w.coast = (d.p(0.5), d.u(0.1, 0.45), d.u(0.3, 0.7), d.u(0, 0.03), d.u(0, 6.3))
    sea = {"beach": d.pick([(40, 150, 168), (34, 106, 162)]), "lake": d.pick([(44, 92, 130), (48, 112, 118)])}
    w.sea_rgb = _lit(w, d.rgb(sea.get(w.kind, (30, 90, 142)), 10))
    w.sand_rgb = _lit(w, d.rgb((216, 190, 140), 14))
    w.grass_rgb = _lit(w, d.rgb(d.pick([(84, 140, 56), (110, 150, 60), (68, 124, 60), (128, 148, 70)]), 10))
    w.foam_rgb = _lit(w, (228, 236, 236))
    if w.kind in ("village", "meadow") and d.p(0.9 if w.kind == "village" else 0.35):
        dirt = d.p(0.4)
        w.road = (d.u(0.3, 0.7), w.hy + d.u(0.0, 0.04), d.u(0.2, 0.8), d.u(0.004, 0.014), d.u(0.12, 0.26),
                  d.u(-0.18, 0.18))  # fmt: skip
        w.road_rgb = _lit(w, d.rgb((150, 124, 90) if dirt else (96, 96, 102), 10))
        w.road_kind = "dirt" if dirt else ("winding" if abs(w.road[5]) > 0.1 else "plain")
        w.dashes = not dirt and d.p(0.6)


def _depth(w: World, y: float) -> float:
    return max(0.0, (y - w.hy) / (1.0 - w.hy))


def _free(items: list[tuple], x: float, y: float, size: float, kinds: tuple[str, ...]) -> bool:
    for _, kind, p in items:
        if kind in kinds and abs(p["x"] - x) < 0.8 * (p["w"] + size) / 2 and abs(p["y"] - y) < 0.1:
            return False
    return True


def _off_road(w: World, x0: float, x1: float, y: float) -> bool:
    if not w.road:
        return True
    left, right = road_span(w, y)
    return x1 < left - 0.01 or x0 > right + 0.01


def _place(d: _Draw, w: World, items: list[tuple], kind: str, count: int, land=(GRASS, SAND)) -> None:
    """Rejection-sample ``count`` objects of ``kind`` onto the ground (a fixed number of tries each)."""
    for _ in range(count):
        for _ in range(14):
            x, y = d.u(0.04, 0.96), d.u(w.hy + 0.04, 0.98)
            dep = _depth(w, y)
            if kind == "boat":
                size = max(0.14, 0.1 + 0.3 * dep) * d.u(0.9, 1.2)
                under = [ground_at(w, x + dx, y + dy) for dx in (-size / 2, 0, size / 2) for dy in (0.0, 0.04)]
                if all(g == SEA for g in under) and _free(items, x, y, size, ("boat",)):
                    colour = d.pick(list(_BOAT_COLOURS))
                    p = {"x": x, "y": y, "w": size, "colour": colour, "rgb": _lit(w, d.rgb(_BOAT_COLOURS[colour], 10)),
                         "sail": d.p(0.6), "mast": d.u(-0.15, 0.2), "jib": d.p(0.5), "bow": d.p(0.5)}  # fmt: skip
                    p["sail_rgb"] = _lit(w, d.rgb((240, 238, 228) if d.p(0.8) else (205, 60, 50), 8))
                    items.append((y, kind, p))
                    break
            elif kind == "house":
                if w.road and d.p(0.7):  # line the road
                    left, right = road_span(w, y)
                    x = left - d.u(0.02, 0.14) if d.p(0.5) else right + d.u(0.02, 0.14)
                size = max(0.12, 0.07 + 0.3 * dep) * d.u(0.9, 1.25)
                x0, x1 = x - size * 0.6, x + size * 0.6
                on = all(ground_at(w, xx, y) in land and ground_at(w, xx, y - 0.02) in land for xx in (x0, x, x1))
                if on and 0 < x < 1 and _off_road(w, x0, x1, y) and _free(items, x, y, size, ("house",)):
                    wall = d.pick(list(_WALLS))
                    roof = d.pick([r for r in _ROOFS if r != wall])
                    p = {"x": x, "y": y, "w": size, "wall_h": size * d.u(0.55, 0.85), "roof_h": size * d.u(0.3, 0.55),
                         "wall": wall, "roof": roof, "hip": d.p(0.3), "door": d.u(-0.3, 0.3), "win": d.p(0.7),
                         "wall_rgb": _lit(w, d.rgb(_WALLS[wall], 10)), "roof_rgb": _lit(w, d.rgb(_ROOFS[roof], 10)),
                         "lit": w.time == "dusk"}  # fmt: skip
                    items.append((y, kind, p))
                    break
            elif kind in ("round", "pine", "palm"):
                size = max(0.14, 0.1 + 0.42 * dep) * d.u(0.85, 1.25) * (1.3 if kind == "palm" else 1.0)
                y = min(y, 1.0)
                if ground_at(w, x, y) in land and ground_at(w, x, y - 0.02) in land and _off_road(w, x, x, y):
                    colour = "dark" if kind == "pine" else ("green" if kind == "palm" else w.tree_colour)
                    p = {"x": x, "y": y, "w": size * 0.6, "h": size, "kind": kind, "colour": colour,
                         "rgb": _lit(w, d.rgb(_TREES[colour], 10)), "bend": d.u(-0.25, 0.25)}  # fmt: skip
                    items.append((y, "tree", p))
                    break
            elif kind == "rock":
                if w.shore and d.p(0.5):  # at the water's edge
                    y = float(w.shore[0]) + w.shore[1] * (x - 0.5) + d.u(-0.01, 0.04)
                if w.coast and d.p(0.6):
                    x = _coast_edge(w, y) + d.u(-0.05, 0.05)
                size = max(0.08, 0.05 + 0.18 * dep) * d.u(0.85, 1.3)
                ok = ground_at(w, x, y) != SKY and ground_at(w, x, y + 0.03) in land + (SEA,) and y > w.hy + 0.03
                if ok and _off_road(w, x - size / 2, x + size / 2, y):
                    colour = d.pick(list(_ROCKS))
                    p = {"x": x, "y": y, "w": size, "h": size * d.u(0.5, 0.8), "colour": colour,
                         "rgb": _lit(w, d.rgb(_ROCKS[colour], 10)), "phase": (d.u(0, 6.3), d.u(0, 6.3))}  # fmt: skip
                    items.append((y, kind, p))
                    break


def _coast_edge(w: World, y: float) -> float:
    left, xt, xb, _, _ = w.coast
    t = _depth(w, y)
    f = xt + (xb - xt) * t
    return f if left else 1.0 - f


def _objects(d: _Draw, w: World) -> list[tuple]:
    items: list[tuple] = []
    k = w.kind
    w.tree_colour = d.pick(["green", "dark", "autumn", "yellow"], [0.55, 0.25, 0.12, 0.08])
    tree = "pine" if d.p(0.3) else "round"
    sea_p = {"beach": 0.8, "lake": 0.6, "coast": 0.6}.get(k, 0.0)
    if d.p(sea_p):
        _place(d, w, items, "boat", d.n(1, 3 if k == "beach" else 2))
    house = {"village": 1.0, "meadow": 0.35, "lake": 0.3, "coast": 0.3, "beach": 0.15}[k]
    if d.p(house):
        _place(d, w, items, "house", d.n(2, 5) if k == "village" else d.n(1, 2))
    trees = {"village": 0.85, "meadow": 0.9, "lake": 0.85, "coast": 0.4, "beach": 0.3}[k]
    if d.p(trees):
        if k == "beach":
            _place(d, w, items, "palm", d.n(1, 2), land=(SAND,))
        else:
            _place(d, w, items, tree, d.n(1, 6), land=(GRASS,))
    rocks = {"village": 0.15, "meadow": 0.45, "lake": 0.35, "coast": 0.8, "beach": 0.5}[k]
    if d.p(rocks):
        _place(d, w, items, "rock", d.n(1, 4 if k == "coast" else 3))
    items.sort(key=lambda item: item[0])
    return items


def render_scene(seed: int, size: int = 64) -> Scene:
    """Render the scene of ``seed`` at ``size`` × ``size`` pixels (``size`` ≥ 32; the same scene at any size)."""
    if not isinstance(size, (int, np.integer)) or size < 32:
        raise ConfigError(f"scene size must be a whole number of pixels >= 32, got {size!r}")
    size = int(size)
    d = _Draw(seed)
    kind, time = d.pick(KINDS, _KIND_P), d.pick(["day", "dusk", "overcast"], [0.55, 0.25, 0.2])
    w = World(kind=kind, time=time, hy=d.u(0.34, 0.58))
    _light(d, w)
    sky_items = _sky_objects(d, w)
    ranges = _mountains(d, w)
    _ground(d, w)
    items = _objects(d, w)
    grids = (d.rng.standard_normal((5, 5)), d.rng.standard_normal((12, 12)), d.rng.standard_normal((30, 6)))
    contrast, bright, blur, grain = d.u(0.85, 1.15), d.u(-12, 12), d.u(0.0, 0.6) if d.p(0.6) else 0.0, d.u(1.0, 3.5)
    caption_rng = np.random.default_rng(int(d.rng.integers(2**62)))

    cv = Canvas(size, grids)
    w.sun = next((p for _, what, p in sky_items if what == "sun"), None)
    draw_sky(cv, w)
    for _, what, p in sky_items:
        draw_object(cv, w, what, p)
    for r in ranges:
        draw_range(cv, w, r)
    draw_ground(cv, w)
    if w.road:
        draw_road(cv, w)
    for _, what, p in items:
        draw_object(cv, w, what, p)

    image = (cv.image - 128.0) * np.float32(contrast) + np.float32(128.0 + bright)
    if blur:
        soft = image.copy()
        soft[1:-1] = 0.25 * image[:-2] + 0.5 * image[1:-1] + 0.25 * image[2:]
        soft[:, 1:-1] = 0.25 * soft[:, :-2] + 0.5 * soft[:, 1:-1] + 0.25 * soft[:, 2:]
        image = image + np.float32(blur) * (soft - image)
    image += d.rng.standard_normal((size, size, 1), dtype=np.float32) * np.float32(grain)  # last draw: size-dependent
    image = np.clip(image, 0, 255).astype(np.uint8)
    caption = make_caption(_content(cv, w, size), caption_rng)
    return Scene(image=image, labels=cv.labels, caption=caption, seed=seed)


def _content(cv: Canvas, w: World, size: int) -> SceneContent:
    """What is visible: objects count when ≥ 30 % of their pixels and ≥ 5 px (at 64 × 64) show."""
    counts = np.bincount(cv.labels.ravel(), minlength=len(SCENE_CLASSES))
    visible = np.bincount(cv.inst.ravel(), minlength=len(cv.objects) + 1)
    least = 5 * (size / 64) ** 2
    seen: dict[int, list[dict]] = {c: [] for c in (SUN, CLOUD, BOAT, HOUSE, TREE, ROCK)}
    for i, (cls, attrs, drawn) in enumerate(cv.objects, 1):
        if visible[i] >= max(least, 0.3 * drawn):
            seen[cls].append(attrs)
    share = counts / counts.sum()
    mountain = None
    if share[SCENE_CLASSES.index("mountain")] >= 0.01:
        mountain = "snowy" if cv.snow >= 3 * (size / 64) ** 2 else w.mountain_name
    return SceneContent(
        kind=w.kind, time=w.time, present={n for n, c in zip(SCENE_CLASSES, counts, strict=True) if c},
        sun=bool(seen[SUN]), clouds=len(seen[CLOUD]), boats=seen[BOAT], houses=seen[HOUSE], trees=seen[TREE],
        rocks=seen[ROCK], mountain=mountain, road=w.road_kind if share[SCENE_CLASSES.index("road")] >= 0.01 else None,
        land=SCENE_CLASSES[w.land] if w.coast else None,
    )  # fmt: skip


def render_scenes(seeds: Iterable[int], size: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Render many scenes: images uint8 ``[N, H, W, 3]``, labels uint8 ``[N, H, W]`` and captions."""
    scenes = [render_scene(int(s), size) for s in seeds]
    if not scenes:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), np.uint8), []
    images = np.stack([s.image for s in scenes])
    labels = np.stack([s.labels for s in scenes])
    return images, labels, [s.caption for s in scenes]


def scene_layout(scene: Scene) -> Layout:
    """The scene's label map as a :class:`~tcig.layout.Layout` over all of :data:`SCENE_CLASSES`, caption as prompt."""
    return Layout(torch.from_numpy(scene.labels.astype(np.int64)), list(SCENE_CLASSES), prompt=scene.caption)
