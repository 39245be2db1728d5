"""Regenerate the drawn example layouts in this folder (beach.json, street.png + legend, masks_lake/) and the photo
photos/lake.jpg.

Run from the repository root: ``python examples/make_examples.py``. The COCO-Stuff example is a copied real map.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).parent


def beach() -> None:
    """A JSON spec of shapes, 512x512: sky, a sea band, a sandy shore, a boat, a rock and a palm tree."""
    spec = {
        "prompt": "a sunny beach with a small sailing boat on a turquoise sea, photo",
        "size": [512, 512],
        "background": "sky",
        "regions": [
            {"class": "sea", "shape": "rectangle", "box": [0, 250, 512, 420], "text": "a calm turquoise sea"},
            {"class": "sand", "shape": "polygon", "points": [[0, 380], [512, 340], [512, 512], [0, 512]],
             "text": "golden sand"},
            {"class": "boat", "shape": "ellipse", "box": [250, 280, 370, 320], "text": "a small white sailing boat"},
            {"class": "boat", "shape": "polygon", "points": [[305, 200], [305, 290], [355, 290]]},
            {"class": "rock", "shape": "ellipse", "box": [40, 390, 150, 450], "text": "a grey rock"},
            {"class": "tree", "shape": "polygon", "points": [[420, 470], [432, 470], [440, 260], [430, 260]],
             "text": "a palm tree"},
            {"class": "tree", "shape": "ellipse", "box": [380, 220, 500, 290]},
        ],
    }  # fmt: skip
    regions = ",\n".join(f"    {json.dumps(region)}" for region in spec.pop("regions"))
    head = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in spec.items())
    (HERE / "beach.json").write_text(f'{{\n{head},\n  "regions": [\n{regions}\n  ]\n}}\n')


def coco_sidecar() -> None:
    """Prompt (the first COCO caption of val2017 image 335529) and vocabulary for the copied COCO-Stuff map."""
    sidecar = {"vocabulary": "coco-stuff", "prompt": "A wooden bench sitting next to a large body of water."}
    (HERE / "coco_000000335529.json").write_text(json.dumps(sidecar, indent=2) + "\n")


STREET_LEGEND = {
    "#87ceeb": "sky",
    "#b4503c": "building",
    "#505050": "road",
    "#c8c8b4": "sidewalk",
    "#228b22": "tree",
    "#dc1e1e": "car",
}


def street() -> None:
    """A colour PNG (512x384) with a legend: buildings on both sides of a road, trees, a car."""
    colour = {name: tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h, name in STREET_LEGEND.items()}
    image = Image.new("RGB", (512, 384), colour["sky"])
    draw = ImageDraw.Draw(image)  # no antialiasing: every pixel keeps an exact legend colour
    draw.polygon([(0, 0), (170, 60), (170, 250), (0, 300)], fill=colour["building"])
    draw.polygon([(512, 20), (340, 70), (340, 250), (512, 300)], fill=colour["building"])
    draw.polygon([(0, 300), (170, 250), (340, 250), (512, 300), (512, 384), (0, 384)], fill=colour["sidewalk"])
    draw.polygon([(60, 384), (220, 250), (290, 250), (450, 384)], fill=colour["road"])
    draw.ellipse([150, 150, 215, 215], fill=colour["tree"])
    draw.rectangle([178, 210, 186, 262], fill=colour["tree"])
    draw.ellipse([300, 155, 360, 215], fill=colour["tree"])
    draw.rectangle([326, 210, 334, 262], fill=colour["tree"])
    draw.rectangle([220, 300, 320, 350], fill=colour["car"])
    draw.rectangle([235, 280, 305, 300], fill=colour["car"])
    image.save(HERE / "street.png", optimize=True)
    legend = {
        "prompt": "a quiet city street with brick buildings, trees and a red car, photo",
        "legend": STREET_LEGEND,
        "region_texts": {"car": "a red car"},
    }
    (HERE / "street.legend.json").write_text(json.dumps(legend, indent=2) + "\n")


def masks_lake() -> None:
    """A folder of binary masks (256x256) that do not overlap: sky, a mountain, water and trees on the shore."""
    folder = HERE / "masks_lake"
    folder.mkdir(exist_ok=True)

    def drawn(shapes: list[tuple[str, list]]) -> np.ndarray:
        image = Image.new("L", (256, 256), 0)
        draw = ImageDraw.Draw(image)
        for kind, xy in shapes:
            getattr(draw, kind)(xy, fill=255)
        return np.asarray(image) > 0

    tree = drawn([("polygon", [(0, 175), (20, 95), (40, 175)]), ("polygon", [(25, 180), (48, 110), (70, 180)]),
                  ("polygon", [(200, 175), (225, 100), (250, 175)])])  # fmt: skip
    mountain = drawn([("polygon", [(0, 150), (60, 70), (110, 110), (170, 40), (256, 130), (256, 160), (0, 160)])])
    upper = np.arange(256)[:, None] < 160
    mountain &= upper & ~tree
    sky = upper & ~mountain & ~tree
    water = ~upper & ~tree
    for name, mask in [("sky", sky), ("mountain", mountain), ("water", water), ("tree", tree)]:
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{name}.png", optimize=True)
    (folder / "prompt.txt").write_text("a mountain lake with pine trees on the shore at sunrise, photo\n")


def photo_lake() -> None:
    """A photo of the bundled scenes world, 64x64 JPEG (scene seed 12,000,007, outside every training and evaluation
    range), to try ``tcig layout from-image`` and ``--init-image`` on the bundled models. In its own folder, which
    holds no layout, so that this folder stays a source of layouts (``tcig eval --cases folder:examples``)."""
    from tcig.scenes.render import render_scene

    scene = render_scene(12_000_007, 64)
    (HERE / "photos").mkdir(exist_ok=True)
    Image.fromarray(scene.image).save(HERE / "photos" / "lake.jpg", quality=95)
    (HERE / "photos" / "lake.txt").write_text(scene.caption + "\n")


if __name__ == "__main__":
    photo_lake()
    beach()
    coco_sidecar()
    street()
    masks_lake()
