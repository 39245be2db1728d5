"""Draw docs/overview.png: the TCIG data flow around a real example layout (run from the repository root)."""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from tcig.io.pictures import colorize, legend_image
from tcig.layout.readers import read_layout

SIDE = 200
BOXES = [
    (
        "stage 1: control",
        [
            "optimize an image x",
            "min  a_c L_clip(x, prompt)",
            "   + sum_i a_i L_seg(S_i(x), layout)",
            "Adam, N steps, from noise",
        ],
    ),
    (
        "stage 2: quality",
        ["img2img / SDEdit", "noise x to `strength`,", "denoise with the prompt", "(latent or pixel model)"],
    ),
]


def main() -> None:
    layout = read_layout("examples/beach.json").resized(SIDE, SIDE)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    legend = legend_image(layout, row=22)
    width = 40 + SIDE + legend.width + 2 * 310 + 110
    sheet = Image.new("RGB", (width, SIDE + 90), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (20, 10),
        'prompt: "a sunny beach with a small sailing boat on a turquoise sea, photo"',
        fill="black",
        font=font,
    )
    x = 20
    sheet.paste(colorize(layout), (x, 50))
    draw.text((x, 55 + SIDE), "layout (examples/beach.json)", fill="black", font=small)
    x += SIDE + 10
    sheet.paste(legend, (x, 50))
    x += legend.width + 20
    for title, lines in BOXES:
        draw.line([(x - 15, 50 + SIDE // 2), (x + 5, 50 + SIDE // 2)], fill="black", width=3)
        draw.polygon([(x + 5, 44 + SIDE // 2), (x + 15, 50 + SIDE // 2), (x + 5, 56 + SIDE // 2)], fill="black")
        box = [x + 20, 60, x + 280, 40 + SIDE]
        draw.rounded_rectangle(box, radius=10, outline="black", width=2, fill=(240, 244, 255))
        draw.text((box[0] + 12, box[1] + 12), title, fill="black", font=font)
        for j, line in enumerate(lines):
            draw.text((box[0] + 12, box[1] + 44 + 24 * j), line, fill=(30, 30, 30), font=small)
        x += 310
    draw.line([(x - 15, 50 + SIDE // 2), (x + 5, 50 + SIDE // 2)], fill="black", width=3)
    draw.polygon([(x + 5, 44 + SIDE // 2), (x + 15, 50 + SIDE // 2), (x + 5, 56 + SIDE // 2)], fill="black")
    draw.text((x + 20, 40 + SIDE // 2), "image", fill="black", font=font)
    sheet.save(Path("docs/overview.png"))


if __name__ == "__main__":
    main()
