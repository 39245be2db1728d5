"""``tcig app`` driven in a real headless Chromium (Debian's ``chromium`` through Playwright), on the bundled models.

The tests share one app (started as ``tcig app --port 0``, as a person would) and run in file order: a cancelled run
first, so the full run after it also shows that a cancel leaves the app usable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tcig.layout import IGNORE
from tcig.layout.readers import read_layout

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TCIG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
RUN_TIMEOUT_MS = 300_000


def _unavailable(reason: str) -> None:
    """Skip, except where the browser tests are required (CI sets TCIG_REQUIRE_BROWSER=1): fail there."""
    if os.environ.get("TCIG_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"the browser tests are required here but cannot run: {reason}")
    pytest.skip(reason, allow_module_level=True)


try:
    import playwright.sync_api as playwright_api
except ImportError:
    _unavailable("no Playwright: pip install -e '.[test]'")
if not Path(CHROMIUM).is_file():
    _unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A running ``tcig app`` on the bundled scenes models: ``(url, output folder)``."""
    out = tmp_path_factory.mktemp("app") / "results"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "tcig", "app", "--models", "scenes", "--port", "0", "--out", str(out)]
    proc = subprocess.Popen(
        command + ["--examples", str(ROOT / "examples")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url, seen = None, []
    deadline = time.monotonic() + 180
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("tcig app: http"):
            url = line.split()[2]
    if url is None:
        proc.kill()
        pytest.fail("tcig app did not start:\n" + "".join(seen[-20:]))
    yield url, out
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1500, "height": 1100},
        )
        yield context
        context.close()


@pytest.fixture
def page(app, browser):
    url, _ = app
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url)
    page.wait_for_selector("#classes li")
    page.wait_for_function("document.getElementById('canvas').width > 0")
    yield page
    page.close()
    assert not errors, f"the page raised: {errors}"


def pick(page, name: str) -> None:
    page.click(f'#classes li[data-name="{name}"] .pick')


def set_range(page, selector: str, value: int) -> None:
    page.eval_on_selector(selector, "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", str(value))


def paint_rows(page, top: float, bottom: float) -> None:
    """Brush strokes across the whole canvas from ``top`` to ``bottom`` (fractions of its height)."""
    box = page.locator("#canvas").bounding_box()
    y = top
    while y <= bottom:
        page.mouse.move(box["x"] + 1, box["y"] + y * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 1, box["y"] + y * box["height"], steps=12)
        page.mouse.up()
        y += 0.04


def canvas_labels(page) -> tuple[np.ndarray, list[str]]:
    """The canvas as class indices into the page's class list (-1: unpainted), read from its pixels."""
    data = page.evaluate(
        """() => { const c = document.getElementById('canvas');
        const all = (selector) => Array.from(document.querySelectorAll(selector));
        return {w: c.width, h: c.height, px: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data),
                classes: all('#classes li').map(li => li.dataset.name),
                colours: all('#classes .swatch').map(s => s.style.backgroundColor)}; }"""
    )
    rgba = np.array(data["px"], dtype=np.uint8).reshape(data["h"], data["w"], 4)
    colours = [tuple(int(v) for v in c[c.index("(") + 1 : -1].split(",")) for c in data["colours"]]
    labels = np.full(rgba.shape[:2], IGNORE)
    for k, colour in enumerate(colours):
        labels[(rgba[..., :3] == colour).all(-1) & (rgba[..., 3] == 255)] = k
    assert ((labels >= 0) | (rgba[..., 3] == 0)).all(), "the canvas holds a colour of no class"
    return labels, data["classes"]


def start_run(page, prompt: str, seed: int) -> None:
    page.fill("#prompt", prompt)
    page.fill("#seed", str(seed))
    page.click("#generate")


def test_cancel_stops_a_run_and_writes_nothing(app, page):
    _, out = app
    pick(page, "sea")
    page.click('.tool[data-tool="fill"]')
    page.mouse.click(*centre(page))
    start_run(page, "the open sea", 7)
    page.wait_for_function("/step [1-9]/.test(document.getElementById('status').textContent)", timeout=120_000)
    page.click("#cancel")
    started = time.monotonic()
    page.wait_for_function("document.getElementById('status').textContent === 'cancelled'", timeout=30_000)
    assert time.monotonic() - started < 15
    assert not list(out.glob("*_s7*")), "a cancelled run wrote files"


def test_paint_generate_download(app, page, tmp_path):
    _, out = app
    set_range(page, "#brush-size", 10)
    pick(page, "sea")
    page.click('.tool[data-tool="fill"]')
    page.mouse.click(*centre(page))
    pick(page, "sky")
    page.click('.tool[data-tool="brush"]')
    paint_rows(page, 0.02, 0.42)
    painted, classes = canvas_labels(page)
    names = {classes[k] for k in np.unique(painted) if k >= 0}
    assert names == {"sea", "sky"}
    page.wait_for_function("document.querySelector('#classes li[data-name=\"sky\"] .area').textContent !== ''")

    page.fill("#num-images", "2")
    start_run(page, "a calm sea under a blue sky", 3)
    page.wait_for_function("document.getElementById('preview').src !== ''", timeout=RUN_TIMEOUT_MS)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=RUN_TIMEOUT_MS)
    assert page.eval_on_selector("#progress-stage2", "e => e.value") == 1
    assert page.eval_on_selector("#progress-init", "e => e.value") == 1
    page.wait_for_function("document.getElementById('final').naturalWidth > 0")  # the result image has loaded
    page.wait_for_function("document.querySelector('#history .card img')?.naturalWidth > 0")
    if os.environ.get("TCIG_APP_SCREENSHOT"):
        page.screenshot(path=os.environ["TCIG_APP_SCREENSHOT"], full_page=True)

    assert page.locator("#choices button").count() == 2
    page.click("#choices button >> nth=1")  # the second image, and its files
    page.wait_for_function("document.getElementById('final').src.endsWith('/outlined/1.png')")
    files = {}
    for key in ("image", "sheet", "layout", "layout_classes", "sidecar"):
        with page.expect_download() as download:
            page.click(f'#downloads a[data-file="{key}"]')
        files[key] = tmp_path / download.value.suggested_filename
        download.value.save_as(files[key])
    assert files["image"].name == "painting_s3_1.png" and (out / "painting_s3_0.png").is_file()
    assert files["sidecar"].name == "painting_s3_1.json" and files["layout"].name == "painting_s3_layout.png"
    assert json.loads(files["sidecar"].read_text())["seed"] == 3

    # the layout downloaded is the one painted, and tcig generate reads it back
    layout = read_layout(files["layout"])
    assert layout.prompt == "a calm sea under a blue sky"
    expected = np.vectorize(lambda k: layout.classes.index(classes[k]) if k >= 0 else IGNORE)(painted)
    assert np.array_equal(layout.label_map.numpy(), expected)

    # the evaluator (no guide) finds the layout in the result far better than in the diffusion model's own images
    from tcig.evaluation.metrics import layout_scores
    from tcig.io.pictures import pil_to_tensor
    from tcig.models.model_sets import load_model_set
    from tcig.models.refiners import load_refiner
    from tcig.models.segmenters import load_segmenter

    model_set = load_model_set("scenes")
    evaluator = load_segmenter(model_set.evaluator)
    result = torch.stack([pil_to_tensor(Image.open(out / f"painting_s3_{i}.png")) for i in range(2)])
    ours = layout_scores(evaluator, result, layout)
    refiner = load_refiner(model_set.refiner)
    alone = refiner.text_to_image(
        [layout.prompt] * 2, 64, 64, model_set.stage2_settings(), torch.Generator().manual_seed(0), progress=False
    )
    theirs = layout_scores(evaluator, alone, layout)["miou"]
    # measured here: mIoU 0.395 (IoU sky 0.998, sea 0.975) against 0.125 (sky 0.734, sea 0.143); the mIoU counts
    # the few pixels the evaluator gives other classes, so each painted class's IoU is checked too
    assert ours["miou"] > theirs + 0.15, (ours["miou"], theirs)
    assert min(ours["class_iou"].values()) > 0.8, ours["class_iou"]


def test_load_an_example(page):
    page.click('#examples button[data-name="scene_beach.json"]')
    page.wait_for_function("document.getElementById('message').textContent.startsWith('loaded example')")
    labels, classes = canvas_labels(page)
    example = read_layout(ROOT / "examples" / "scene_beach.json")
    example = example.resized(*labels.shape, "stretch")
    expected = np.vectorize(lambda k: classes.index(example.classes[k]) if k >= 0 else IGNORE)(example.label_map)
    assert np.array_equal(labels, expected)
    assert page.input_value("#prompt") == example.prompt


def test_a_bad_upload_is_one_line_in_the_page(page, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")
    street = [str(ROOT / "examples" / name) for name in ("street.png", "street.legend.json")]  # COCO classes
    for files, expected in (([str(broken)], "broken.png"), (street, "unknown to the guides")):
        page.set_input_files("#layout-files", files)
        page.click("#load-layout")
        page.wait_for_function(f"document.getElementById('message').textContent.includes({expected!r})")
        message = page.inner_text("#message")
        assert "\n" not in message and "Traceback" not in message
    # the app keeps working
    page.click('#examples button[data-name="scene_village.json"]')
    page.wait_for_function("document.getElementById('message').textContent.startsWith('loaded example')")


def centre(page) -> tuple[float, float]:
    box = page.locator("#canvas").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_a_layout_file_loads_onto_the_canvas(page, tmp_path):
    from tcig.layout.convert import write_layout

    village = read_layout(ROOT / "examples" / "scene_village.json")
    files = write_layout(village, tmp_path / "my village.png", to="ids")
    page.set_input_files("#layout-files", [str(f) for f in files])
    page.click("#load-layout")
    page.wait_for_function("document.getElementById('message').textContent.startsWith('loaded my village.png')")
    labels, classes = canvas_labels(page)
    shown = village.resized(*labels.shape, "stretch")
    expected = np.vectorize(lambda k: classes.index(shown.classes[k]) if k >= 0 else IGNORE)(shown.label_map)
    assert np.array_equal(labels, expected)


def test_small_regions_warn_and_a_photo_shows_under_the_canvas(page, tmp_path):
    pick(page, "boat")
    set_range(page, "#brush-size", 2)
    page.mouse.click(*centre(page))
    page.wait_for_function("document.getElementById('warnings').textContent.includes(\"'boat' region\")")
    page.click("#undo")
    page.wait_for_function("document.getElementById('warnings').textContent === ''")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (120, 80), (200, 30, 30)).save(photo)
    page.set_input_files("#trace-file", str(photo))
    page.wait_for_selector("#trace:not([hidden])")
    assert float(page.eval_on_selector("#canvas", "e => getComputedStyle(e).opacity")) < 1
