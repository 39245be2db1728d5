"""Rasterising a planned scene: the canvas, the ground geometry and one drawing function per kind of object.

Geometry is in fractions of the image side (y down). A shape is drawn inside the pixel box that holds it, from
coordinate grids of the pixel centres, so a 64 × 64 scene costs a few hundred small NumPy operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

SCENE_CLASSES: tuple[str, ...] = (
    "sky", "cloud", "sun", "mountain", "sea", "sand", "grass", "tree", "house", "road", "boat", "rock",
)  # fmt: skip
SKY, CLOUD, SUN, MOUNTAIN, SEA, SAND, GRASS, TREE, HOUSE, ROAD, BOAT, ROCK = range(len(SCENE_CLASSES))

_F = np.float32


@dataclass
class World:
    """The resolution-free plan of one scene (filled in by :mod:`tcig.scenes.render`)."""

    kind: str
    time: str
    hy: float
    sky_top: Any = None
    haze: Any = None
    tint: Any = None
    sky_gamma: float = 1.0
    cloud_rgb: Any = None
    cloud_shade: Any = None
    sun: dict | None = None
    mountain_name: str = ""
    far: float = 0.0
    shore: tuple = ()
    coast: tuple = ()
    land: int = GRASS
    sea_rgb: Any = None
    sand_rgb: Any = None
    grass_rgb: Any = None
    foam_rgb: Any = None
    road: tuple = ()
    road_rgb: Any = None
    road_kind: str = ""
    dashes: bool = False
    tree_colour: str = "green"


class Box(NamedTuple):
    r0: int
    r1: int
    c0: int
    c1: int
    ys: np.ndarray  # [h, 1] pixel-centre rows
    xs: np.ndarray  # [1, w] pixel-centre columns


@lru_cache(maxsize=64)
def _upsample_matrix(n: int, size: int) -> np.ndarray:
    """Bilinear interpolation from ``n`` grid points spanning [0, 1] to ``size`` pixel centres."""
    pos = (np.arange(size) + 0.5) / size * (n - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, n - 2)
    frac = pos - i0
    m = np.zeros((size, n), _F)
    m[np.arange(size), i0] = 1 - frac
    m[np.arange(size), i0 + 1] = frac
    return m


class Canvas:
    """Image (float RGB), labels, instance ids and smooth noise fields of one scene at one size."""

    def __init__(self, size: int, grids: tuple[np.ndarray, ...]) -> None:
        self.size = size
        self.c = (np.arange(size, dtype=_F) + 0.5) / size
        self.image = np.zeros((size, size, 3), _F)
        self.labels = np.zeros((size, size), np.uint8)
        self.inst = np.zeros((size, size), np.int16)
        self.objects: list[list] = []  # [class, attributes, pixels drawn] per instance id - 1
        self.snow = 0
        self.n1, self.n2, self.streak = (
            _upsample_matrix(g.shape[0], size) @ g.astype(_F) @ _upsample_matrix(g.shape[1], size).T for g in grids
        )

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box | None:
        """The pixels whose centres lie in [x0, x1) × [y0, y1), or None."""
        s = self.size
        r0, r1 = max(0, math.ceil(y0 * s - 0.5)), min(s, math.ceil(y1 * s - 0.5))
        c0, c1 = max(0, math.ceil(x0 * s - 0.5)), min(s, math.ceil(x1 * s - 0.5))
        if r0 >= r1 or c0 >= c1:
            return None
        return Box(r0, r1, c0, c1, self.c[r0:r1, None], self.c[None, c0:c1])

    def noise(self, b: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(f[b.r0 : b.r1, b.c0 : b.c1] for f in (self.n1, self.n2, self.streak))  # type: ignore[return-value]

    def new(self, cls: int, attrs: dict) -> int:
        self.objects.append([cls, attrs, 0])
        return len(self.objects)

    def paint(self, b: Box, mask: np.ndarray, cls: int, colour: np.ndarray, inst: int = 0) -> None:
        rows, cols = slice(b.r0, b.r1), slice(b.c0, b.c1)
        self.labels[rows, cols][mask] = cls
        img = self.image[rows, cols]
        img[mask] = colour if colour.ndim == 1 else np.broadcast_to(colour, mask.shape + (3,))[mask]
        self.inst[rows, cols][mask] = inst  # 0 (no instance) where a layer covers an object
        if inst:
            self.objects[inst - 1][2] += int(np.count_nonzero(mask))


# ---- ground geometry (scalars for planning, arrays for drawing) ----


def shore_y(w: World, x):
    a, slope, amp, freq, phase = w.shore
    return a + slope * (x - 0.5) + amp * np.sin(6.2832 * freq * x + phase)


def coast_x(w: World, y):
    left, xt, xb, amp, phase = w.coast
    t = (y - w.hy) / (1.0 - w.hy)
    f = xt + (xb - xt) * t + amp * np.sin(9.0 * t + phase)
    return f if left else 1.0 - f


def ground_at(w: World, x: float, y: float) -> int:
    """The ground class under the point (x, y) (SKY above the horizon or outside the picture)."""
    if y < w.hy or not (0.0 <= x <= 1.0 and y <= 1.0):
        return SKY
    if w.kind == "beach":
        return SEA if y < shore_y(w, x) else SAND
    if w.kind == "lake":
        return GRASS if y < w.hy + w.far or y >= shore_y(w, x) else SEA
    if w.kind == "coast":
        edge = coast_x(w, y)
        return w.land if (x < edge) == bool(w.coast[0]) else SEA
    return GRASS


def road_geom(w: World, y):
    vx, ytop, bx, hw_top, hw_bottom, bend = w.road
    t = np.clip((y - ytop) / (1.0 - ytop), 0.0, 1.0)
    return vx + (bx - vx) * t + 4.0 * bend * t * (1.0 - t), hw_top + (hw_bottom - hw_top) * t


def road_span(w: World, y: float) -> tuple[float, float]:
    centre, half = road_geom(w, y)
    return float(centre - half), float(centre + half)


# ---- background layers ----


def draw_sky(cv: Canvas, w: World) -> None:
    t = np.clip(cv.c / w.hy, 0.0, 1.0) ** w.sky_gamma
    cv.image[:] = (w.sky_top + (w.haze - w.sky_top) * t[:, None])[:, None, :]
    cv.image += (cv.n1 * 5.0)[..., None]
    if w.sun:
        b = cv.box(0, 0, 1, w.hy)
        sx, sy, r = w.sun["x"], w.sun["y"], w.sun["r"]
        glow = np.exp(((b.xs - sx) ** 2 + (b.ys - sy) ** 2) * (-1.0 / (2 * (3.5 * r) ** 2)))
        sky = cv.image[b.r0 : b.r1]
        sky += (w.sun["rgb"] - sky) * (0.6 * glow)[..., None]


def draw_range(cv: Canvas, w: World, r: dict) -> None:
    """A mountain range: the region below a jagged ridge polyline, shaded by slope, hazy at its foot, snow on top."""
    b = cv.box(0, float(r["vy"].min()), 1, w.hy + 0.02)
    if b is None:
        return
    ridge = np.interp(b.xs[0], r["vx"], r["vy"]).astype(_F)
    m = b.ys >= ridge
    n1, n2, _ = cv.noise(b)
    side = np.sign(np.gradient(ridge)) if ridge.size > 1 else np.zeros_like(ridge)
    col = r["rgb"] * (1.0 + 0.08 * n2 + 0.1 * side)[..., None]
    foot = np.clip((b.ys - ridge) / max(w.hy - float(r["vy"].min()), 1e-3), 0, 1) * 0.35
    col = col + (w.haze * w.tint - col) * foot[..., None]
    if r["snow"] is not None:
        snow = m & (b.ys < r["snow"] + 0.03 * n2)
        cv.snow += int(np.count_nonzero(snow))
        col = np.where(snow[..., None], r["snow_rgb"] * (1.0 + 0.06 * side)[:, None], col)
    cv.paint(b, m, MOUNTAIN, col)


def _sea(cv: Canvas, w: World, b: Box, t: np.ndarray, n2: np.ndarray, streak: np.ndarray) -> np.ndarray:
    col = w.sea_rgb * (1.0 + 0.06 * n2)[..., None]
    col = col + (w.haze * 0.9 - col) * (0.55 * (1.0 - t) ** 3)[..., None]
    waves = 22.0 * np.clip(streak - 0.5, 0, 1) - 10.0 * np.clip(-streak - 0.5, 0, 1)
    col = col + (waves * (0.4 + t))[..., None]
    if w.sun:
        glint = np.exp(-(((b.xs - w.sun["x"]) / (0.02 + 0.1 * t)) ** 2)) * np.clip(streak + 0.4, 0, 1.5)
        col = col + (w.sun["rgb"] - col) * (0.55 * glint * (1 - t))[..., None]
    return col


def draw_ground(cv: Canvas, w: World) -> None:
    """Everything below the horizon: sea, sand and grass, with texture (labels stay exact)."""
    b = cv.box(0, w.hy, 1, 1.01)
    n1, n2, streak = cv.noise(b)
    t = (b.ys - w.hy) / (1.0 - w.hy)
    haze = (0.45 * (1.0 - t) ** 4)[..., None]

    def land(rgb: np.ndarray, a1: float, a2: float) -> np.ndarray:
        col = rgb * (1.0 + a1 * n1 + a2 * n2)[..., None]
        return col + (w.haze * w.tint - col) * haze

    if w.kind in ("meadow", "village"):
        grass = land(w.grass_rgb, 0.1, 0.08) * (1.0 + 0.05 * np.sign(streak))[..., None]
        cv.paint(b, np.ones(n1.shape, bool), GRASS, grass)
        return
    if w.kind == "coast":
        edge = coast_x(w, b.ys)
        is_land = (b.xs < edge) if w.coast[0] else (b.xs > edge)
        sea = ~is_land
        other = land(w.grass_rgb, 0.1, 0.08) if w.land == GRASS else land(w.sand_rgb, 0.05, 0.06)
        shore = None
    else:
        shore = shore_y(w, b.xs)
        sea = b.ys < shore
        if w.kind == "lake":
            sea &= b.ys >= w.hy + w.far
            other = land(w.grass_rgb, 0.1, 0.08) * np.where(b.ys < w.hy + w.far, 0.72, 1.0)[..., None]
        else:
            other = land(w.sand_rgb, 0.05, 0.06) * np.where(b.ys - shore < 0.025, 0.84, 1.0)[..., None]
    col = _sea(cv, w, b, t, n2, streak)
    if w.kind == "beach":
        foam = (shore - b.ys < 0.012 + 0.006 * n2)[..., None]
        col = np.where(foam, col + (w.foam_rgb - col) * 0.75, col)
    rows, cols = slice(b.r0, b.r1), slice(b.c0, b.c1)
    cv.inst[rows, cols] = 0
    cv.labels[rows, cols] = np.where(sea, SEA, w.land if w.kind == "coast" else (SAND if w.kind == "beach" else GRASS))
    cv.image[rows, cols] = np.where(sea[..., None], col, other)


def draw_road(cv: Canvas, w: World) -> None:
    """A road narrowing towards the horizon (a perspective trapezoid, bent into a curve), with centre dashes."""
    b = cv.box(0, w.road[1], 1, 1.01)
    centre, half = road_geom(w, b.ys)
    dist = np.abs(b.xs - centre)
    n1, n2, _ = cv.noise(b)
    col = w.road_rgb * (1.0 + 0.04 * n1 + 0.07 * n2)[..., None]
    col = col + (w.haze * w.tint - col) * (0.4 * (1.0 - (b.ys - w.hy) / (1.0 - w.hy)) ** 4)[..., None]
    if w.dashes:
        dash = (dist < 0.07 * half) & (np.sin(5.0 / (b.ys - w.hy + 0.02)) > 0.1) & (b.ys > w.hy + 0.1)
        col = np.where(dash[..., None], np.array([232, 228, 214], _F) * w.tint, col)
    cv.paint(b, dist < half, ROAD, col)


# ---- objects ----


def draw_object(cv: Canvas, w: World, kind: str, p: dict) -> None:
    _DRAW[kind](cv, w, p)


def _sun(cv: Canvas, w: World, p: dict) -> None:
    r = p["r"]
    b = cv.box(p["x"] - r, p["y"] - r, p["x"] + r, p["y"] + r)
    if b is not None:
        cv.paint(b, (b.xs - p["x"]) ** 2 + (b.ys - p["y"]) ** 2 < r * r, SUN, p["rgb"], cv.new(SUN, p))


def _cloud(cv: Canvas, w: World, p: dict) -> None:
    """A union of ellipses with a flat base, lit from above, kept in the sky."""
    puffs = p["puffs"]
    y0 = min(py - ry for _, py, _, ry in puffs)
    y1 = min(p["base"], w.hy - 0.01)
    b = cv.box(min(px - rx for px, _, rx, _ in puffs), y0, max(px + rx for px, _, rx, _ in puffs), y1)
    if b is None:
        return
    m = np.zeros((b.r1 - b.r0, b.c1 - b.c0), bool)
    for px, py, rx, ry in puffs:
        m |= ((b.xs - px) / rx) ** 2 + ((b.ys - py) / ry) ** 2 < 1.0
    t = np.clip((b.ys - y0) / max(y1 - y0, 1e-3), 0, 1) ** 1.5
    _, n2, _ = cv.noise(b)
    col = w.cloud_rgb + (w.cloud_shade - w.cloud_rgb) * t[..., None] + (6.0 * n2)[..., None]
    cv.paint(b, m, CLOUD, col, cv.new(CLOUD, p))


def _boat(cv: Canvas, w: World, p: dict) -> None:
    """A hull (trapezoid with a raked bow) and either a sail (plus jib) or a cabin, all labelled boat."""
    x, y, bw = p["x"], p["y"], p["w"]
    hh = 0.36 * bw
    top, bottom = y - 0.7 * hh, y + 0.3 * hh
    inst = cv.new(BOAT, p)
    b = cv.box(x - bw / 2, top, x + bw / 2, bottom)
    if b is not None:
        s = (b.ys - top) / (bottom - top)
        left, right = (0.32, 0.08) if p["bow"] else (0.08, 0.32)
        m = (b.xs >= x - bw / 2 + left * bw * s) & (b.xs <= x + bw / 2 - right * bw * s)
        white = p["colour"] == "white"
        stripe = np.array([40, 60, 110] if white else [236, 236, 230], _F) * w.tint
        col = np.where((s < 0.28)[..., None], stripe, p["rgb"] * (1.0 - 0.25 * s)[..., None])
        cv.paint(b, m, BOAT, col, inst)
    if p["sail"]:
        mx, sh, sw = x + p["mast"] * bw, 1.05 * bw, 0.45 * bw
        b = cv.box(mx - 0.6 * sw, top - sh, mx + sw, top)
        if b is not None:
            q = (b.ys - (top - sh)) / sh
            m = (b.xs >= mx) & (b.xs <= mx + sw * q)
            if p["jib"]:
                m |= (b.xs < mx) & (b.xs >= mx - 0.55 * sw * q) & (q > 0.15)
            col = p["sail_rgb"] * (1.0 - 0.12 * q + 0.06 * (b.xs < mx))[..., None]
            cv.paint(b, m, BOAT, col, inst)
    else:
        b = cv.box(x - 0.22 * bw, top - 0.3 * bw, x + 0.16 * bw, top)
        if b is not None:
            window = np.abs(b.ys - (top - 0.17 * bw)) < 0.05 * bw
            col = np.where(window[..., None], np.array([50, 62, 84], _F), np.array([226, 226, 220], _F) * w.tint)
            cv.paint(b, np.ones(window.shape[:1] + (b.c1 - b.c0,), bool), BOAT, col, inst)


def _house(cv: Canvas, w: World, p: dict) -> None:
    """A wall rectangle with a door and windows under a darker gable or hip roof, all labelled house."""
    x, y, hw, wh, rh = p["x"], p["y"], p["w"] / 2, p["wall_h"], p["roof_h"]
    inst = cv.new(HOUSE, p)
    b = cv.box(x - hw, y - wh, x + hw, y)
    if b is not None:
        _, n2, _ = cv.noise(b)
        col = p["wall_rgb"] * (1.0 + 0.05 * n2)[..., None]
        dx = x + p["door"] * hw
        door = (np.abs(b.xs - dx) < 0.1 * p["w"]) & (b.ys > y - 0.5 * wh)
        col = np.where(door[..., None], np.array([74, 48, 32], _F) * w.tint, col)
        if p["win"]:
            wx = np.where(np.abs(b.xs - (x - 0.5 * hw)) < np.abs(b.xs - (x + 0.5 * hw)), x - 0.5 * hw, x + 0.5 * hw)
            win = (np.abs(b.xs - wx) < 0.085 * p["w"]) & (np.abs(b.ys - (y - 0.62 * wh)) < 0.085 * p["w"]) & ~door
            glass = np.array([250, 212, 120] if p["lit"] else [58, 70, 92], _F)
            col = np.where(win[..., None], glass, col)
        cv.paint(b, np.ones(col.shape[:2], bool), HOUSE, col, inst)
    top, bottom, half = y - wh - rh, y - wh + 0.004, hw * 1.15
    b = cv.box(x - half, top, x + half, bottom)
    if b is not None:
        s = (b.ys - top) / (bottom - top)
        ridge = 0.45 if p["hip"] else 0.0
        m = np.abs(b.xs - x) <= half * (ridge + (1.0 - ridge) * s)
        col = p["roof_rgb"] * (1.0 - 0.16 * (b.xs > x) + 0.1 * (1.0 - s))[..., None]
        cv.paint(b, m, HOUSE, col, inst)


def _tree(cv: Canvas, w: World, p: dict) -> None:
    """A trunk and a canopy (round, pine tiers or palm fronds), both labelled tree."""
    x, y, h, kind = p["x"], p["y"], p["h"], p["kind"]
    inst = cv.new(TREE, p)
    bark = np.array([92, 64, 40], _F) * w.tint
    if kind == "palm":
        b = cv.box(x - 0.3 * h, y - h, x + 0.3 * h, y)
        if b is not None:
            cx = x + p["bend"] * h * ((y - b.ys) / h) ** 2
            cv.paint(b, np.abs(b.xs - cx) < 0.045 * h, TREE, bark * 1.3, inst)
        cx, cy, r = x + p["bend"] * h, y - h, 0.42 * h
        b = cv.box(cx - r, cy - r, cx + r, cy + 0.6 * r)
        if b is not None:
            dx, dy = (b.xs - cx) / r, (b.ys - cy) / (0.55 * r)
            reach = 0.3 + 0.7 * np.abs(np.cos(2.5 * np.arctan2(dy, dx)))
            col = p["rgb"] * (1.0 - 0.2 * np.clip(dy, -1, 1))[..., None]
            cv.paint(b, dx * dx + dy * dy < reach * reach, TREE, col, inst)
        return
    trunk_h = 0.42 * h if kind == "round" else 0.16 * h
    b = cv.box(x - 0.065 * h, y - trunk_h, x + 0.065 * h, y)
    if b is not None:
        cv.paint(b, np.ones((b.r1 - b.r0, b.c1 - b.c0), bool), TREE, bark, inst)
    if kind == "round":
        cx, cy, rx, ry = x, y - 0.64 * h, 0.3 * h, 0.36 * h
        b = cv.box(cx - 1.3 * rx, cy - 1.3 * ry, cx + 1.3 * rx, cy + 1.3 * ry)
        if b is not None:
            _, n2, streak = cv.noise(b)
            dx, dy = (b.xs - cx) / rx, (b.ys - cy) / ry
            m = dx * dx + dy * dy < 1.0 + 0.35 * n2
            col = p["rgb"] * (1.0 - 0.14 * (dx + dy) + 0.06 * streak)[..., None]
            cv.paint(b, m, TREE, col, inst)
    else:
        top, bottom = y - h, y - 0.1 * h
        b = cv.box(x - 0.3 * h, top, x + 0.3 * h, bottom)
        if b is not None:
            s = (b.ys - top) / (bottom - top)
            half = 0.28 * h * s * (0.62 + 0.38 * ((3.0 * s) % 1.0))
            col = p["rgb"] * (1.0 - 0.2 * (b.xs > x) + 0.1 * (1.0 - s))[..., None]
            cv.paint(b, np.abs(b.xs - x) <= half, TREE, col, inst)


def _rock(cv: Canvas, w: World, p: dict) -> None:
    """An irregular blob (an ellipse whose radius wobbles with the angle), flat at the bottom, lit from above."""
    rx, ry = p["w"] / 2, p["h"] / 2
    cx, cy = p["x"], p["y"] - ry
    b = cv.box(cx - 1.35 * rx, cy - 1.35 * ry, cx + 1.35 * rx, p["y"])
    if b is None:
        return
    dx, dy = (b.xs - cx) / rx, (b.ys - cy) / ry
    a = np.arctan2(dy, dx)
    reach = 1.0 + 0.2 * np.sin(3 * a + p["phase"][0]) + 0.1 * np.sin(5 * a + p["phase"][1])
    _, n2, streak = cv.noise(b)
    col = p["rgb"] * (1.0 - 0.22 * dy - 0.08 * dx + 0.06 * streak)[..., None]
    cv.paint(b, dx * dx + dy * dy < reach * reach, ROCK, col, cv.new(ROCK, p))


_DRAW = {"sun": _sun, "cloud": _cloud, "boat": _boat, "house": _house, "tree": _tree, "rock": _rock}
