"""Writes the hand-drawn layouts in unusual arrangements (``tune/`` for choosing settings, ``test/`` measured once).

Objects in odd places, sizes and numbers, and horizons the scenes renderer never draws: a sea filling the frame, a
tilted or vertical horizon, a boat on a meadow, a sun below the horizon, rows of tiny rocks. Coordinates are on a
128×128 canvas; run ``python examples/unusual/make_unusual.py`` to rewrite the JSON specs.
"""

import json
from pathlib import Path


def rect(cls, x0, y0, x1, y1):
    return {"class": cls, "shape": "rectangle", "box": [x0, y0, x1, y1]}


def oval(cls, x0, y0, x1, y1):
    return {"class": cls, "shape": "ellipse", "box": [x0, y0, x1, y1]}


def poly(cls, *points):
    return {"class": cls, "shape": "polygon", "points": [list(p) for p in points]}


def boat(x, y, s=1.0):
    """A sail and a hull with the hull's top-left corner at (x, y), ``s`` times 16 px wide."""
    w = 16 * s
    return [
        poly("boat", (x, y), (x + w, y), (x + 0.8 * w, y + 0.35 * w), (x + 0.2 * w, y + 0.35 * w)),
        poly("boat", (x + 0.45 * w, y - 1.1 * w), (x + 0.45 * w, y - 1), (x + 0.95 * w, y - 1)),
    ]


def tree(x, y, s=1.0):
    """A trunk standing on (x, y) and a round crown, ``s`` times 24 px tall."""
    h = 24 * s
    return [
        rect("tree", x - 1.5 * s, y - h, x + 1.5 * s, y),
        oval("tree", x - 0.35 * h, y - h * 1.2, x + 0.35 * h, y - h * 0.6),
    ]


def house(x, y, s=1.0):
    w = 18 * s
    return [
        rect("house", x, y - 0.7 * w, x + w, y),
        poly("house", (x - 2 * s, y - 0.7 * w), (x + w / 2, y - 1.2 * w), (x + w + 2 * s, y - 0.7 * w)),
    ]


LAYOUTS = {
    "tune": {
        "high_horizon_fleet": (
            "a calm blue sea with six small sailboats under a thin strip of sky",
            "sea",
            [rect("sky", 0, 0, 128, 14)]
            + [r for x, y in [(10, 40), (60, 34), (96, 50), (24, 84), (74, 92), (44, 116)] for r in boat(x, y, 0.7)],
        ),
        "low_horizon_big_sun": (
            "a meadow below a huge sun and one white cloud in a wide sky",
            "sky",
            [oval("sun", 40, 20, 96, 76), oval("cloud", 4, 80, 50, 98), rect("grass", 0, 112, 128, 128)],
        ),
        "tilted_coast": (
            "a sandy coast with a tilted shore, the sea on the left and two rocks",
            "sky",
            [
                poly("sea", (0, 30), (128, 70), (128, 128), (0, 128)),
                poly("sand", (40, 128), (128, 60), (128, 128)),
                oval("rock", 90, 96, 110, 110),
                oval("rock", 60, 110, 76, 122),
            ],
        ),
        "boat_on_grass": (
            "a big red boat on a green meadow under a grey sky",
            "sky",
            [rect("grass", 0, 56, 128, 128)] + boat(24, 84, 5.0),
        ),
        "house_on_sea": (
            "a red house standing in the sea under clouds",
            "sky",
            [rect("sea", 0, 60, 128, 128), oval("cloud", 70, 6, 120, 26), oval("cloud", 8, 14, 44, 30)]
            + house(44, 96, 2.0),
        ),
        "vertical_split": (
            "a beach on the left and a green meadow with a tree on the right",
            "sky",
            [rect("sea", 0, 50, 64, 90), rect("sand", 0, 90, 64, 128), rect("grass", 64, 50, 128, 128)]
            + tree(96, 110, 1.4),
        ),
        "rock_grid": (
            "many small dark rocks on green grass below distant mountains",
            "grass",
            [
                rect("sky", 0, 0, 128, 28),
                poly("mountain", (0, 40), (40, 14), (80, 40)),
            ]
            + [oval("rock", x, y, x + 9, y + 7) for x in (12, 44, 76, 108) for y in (60, 84, 108)],
        ),
        "village_road_vertical": (
            "a road running up through a village with houses on both sides",
            "grass",
            [rect("sky", 0, 0, 128, 20), poly("road", (56, 20), (72, 20), (92, 128), (36, 128))]
            + house(8, 60)
            + house(100, 70)
            + house(4, 110, 1.2)
            + house(100, 118, 1.1),
        ),
    },
    "test": {
        "sun_in_sea": (
            "a sunset over the sea with the sun low on the water and pink clouds",
            "sky",
            [
                rect("sea", 0, 40, 128, 128),
                oval("sun", 50, 60, 78, 88),
                oval("cloud", 10, 8, 60, 22),
                oval("cloud", 80, 14, 124, 30),
            ],
        ),
        "tiny_trees_desert": (
            "a wide sandy beach with four tiny palm trees and a small sun",
            "sky",
            [rect("sand", 0, 44, 128, 128), oval("sun", 100, 8, 110, 18)]
            + [r for x in (20, 50, 80, 110) for r in tree(x, 100, 0.45)],
        ),
        "mountain_wall": (
            "tall mountains filling the view above a small lake with a boat",
            "sky",
            [
                poly("mountain", (0, 110), (0, 10), (40, 2), (70, 20), (100, 0), (128, 14), (128, 110)),
                rect("sea", 0, 96, 128, 128),
            ]
            + boat(56, 112, 0.6),
        ),
        "diagonal_road": (
            "a dirt road crossing a meadow diagonally with a house and a rock",
            "grass",
            [poly("sky", (0, 0), (128, 0), (128, 20), (0, 44)), poly("road", (0, 118), (0, 100), (128, 50), (128, 66))]
            + house(20, 70)
            + [oval("rock", 96, 100, 112, 112)],
        ),
        "sky_of_clouds": (
            "a cloudy grey sky full of clouds over a thin strip of sea",
            "sky",
            [
                oval("cloud", x, y, x + 34, y + 16)
                for x, y in [(0, 4), (40, 10), (84, 2), (14, 34), (66, 40), (100, 60), (20, 66)]
            ]
            + [rect("sea", 0, 110, 128, 128)],
        ),
        "boats_in_a_row": (
            "five small boats in a row on a lake below a green hill",
            "sky",
            [poly("grass", (0, 50), (64, 20), (128, 50), (128, 64), (0, 64)), rect("sea", 0, 64, 128, 128)]
            + [r for x in (4, 29, 54, 79, 104) for r in boat(x, 100, 0.9)],
        ),
        "island": (
            "a small island with one palm tree in the middle of the sea",
            "sea",
            [rect("sky", 0, 0, 128, 40), oval("sand", 36, 76, 92, 100)] + tree(64, 88, 1.3),
        ),
        "two_horizons": (
            "a meadow at the top and a beach with the sea at the bottom, a house between them",
            "sky",
            [rect("grass", 0, 0, 128, 40), rect("sand", 0, 40, 128, 80), rect("sea", 0, 80, 128, 128)]
            + house(52, 66, 1.2),
        ),
    },
}


def main() -> None:
    folder = Path(__file__).parent
    for split, layouts in LAYOUTS.items():
        (folder / split).mkdir(exist_ok=True)
        for name, (prompt, background, regions) in layouts.items():
            spec = {"prompt": prompt, "size": [128, 128], "background": background, "regions": regions}
            (folder / split / f"{name}.json").write_text(json.dumps(spec, indent=1) + "\n")


if __name__ == "__main__":
    main()
