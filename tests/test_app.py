"""``tcig app`` without a browser: painting <-> layout, the run queue, uploads, and the HTTP API on tiny models."""

from __future__ import annotations

import base64
import http.client
import io
import json
import shutil
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from tiny_models import SEG_LABELS

from tcig.app.jobs import Cancelled, JobQueue
from tcig.app.painting import MIN_SEPARATION, Painter, paint_colours, region_report, snap_tolerance
from tcig.app.uploads import read_uploaded_layout, safe_name
from tcig.errors import LayoutError, TCIGError
from tcig.layout import IGNORE, Layout
from tcig.layout.readers import read_layout
from tcig.layout.vocabularies import load_vocabulary

ROOT = Path(__file__).resolve().parents[1]


def distances(colours: np.ndarray) -> np.ndarray:
    c = colours.astype(float)
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    return d[~np.eye(len(c), dtype=bool)]


def test_paint_colours_are_separated_and_keep_natural_ones_where_they_can():
    natural = json.loads((ROOT / "src/tcig/bundled/scenes/class_colours.json").read_text())
    colours = paint_colours(list(natural), natural)
    assert distances(colours).min() >= MIN_SEPARATION
    assert tuple(colours[0]) == tuple(natural["sky"])  # the first class always keeps its own
    ade = paint_colours(load_vocabulary("ade20k").labels)
    assert len({tuple(c) for c in ade.tolist()}) == 150
    assert distances(ade).min() > 2 * snap_tolerance(ade) > 0  # no painted colour can snap to two classes


def painter() -> Painter:
    return Painter.create(["sky", "sea", "boat"])


def paint(p: Painter, label: np.ndarray) -> np.ndarray:
    rgba = np.zeros((*label.shape, 4), np.uint8)
    for k in range(len(p.classes)):
        rgba[label == k] = [*p.colours[k], 255]
    return rgba


def test_a_painting_becomes_its_layout_and_back():
    p = painter()
    label = np.full((32, 48), IGNORE)
    label[:12] = 0
    label[16:] = 1
    label[20:26, 10:20] = 2
    layout = p.layout(paint(p, label), {"boat": "  a red   boat ", "sky": ""})
    assert layout.classes == ["sky", "sea", "boat"]
    assert np.array_equal(layout.label_map.numpy(), label)
    assert layout.region_texts == {2: "a red boat"}
    rgba, same = p.painting(layout, 32, 48)
    assert same is p and np.array_equal(rgba, paint(p, label))
    # only painted classes are listed, in the painter's order
    only = p.layout(paint(p, np.where(label == 0, 2, label)))
    assert only.classes == ["sea", "boat"]


def test_antialiased_or_blurred_strokes_never_create_a_class():
    p = painter()
    label = np.zeros((40, 40), np.int64)
    label[10:30, 5:35] = 1
    label[18:24, 15:25] = 2
    rgba = paint(p, label)
    blurred = np.asarray(Image.fromarray(rgba[..., :3]).filter(ImageFilter.GaussianBlur(1.2)))
    soft = np.concatenate([blurred, rgba[..., 3:]], axis=-1)
    assert len(np.unique(soft.reshape(-1, 4), axis=0)) > 3  # blending made new colours
    layout = p.layout(soft)
    got = layout.label_map.numpy()
    names = np.array(layout.classes + ["don't care"])[got]
    expected = np.array(p.classes)[label]
    # every pixel is a class painted within two pixels of it, or don't care on an edge
    for y, x in zip(*np.nonzero(names != expected), strict=True):
        around = set(expected[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].ravel())
        assert names[y, x] in around | {"don't care"}
    assert (names == expected).mean() > 0.9


def test_a_painting_in_other_colours_is_refused():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = [3, 200, 7]
    rgba[..., 3] = 255
    with pytest.raises(LayoutError, match="not in its legend"):
        painter().layout(rgba)


def test_open_vocabulary_painters_take_new_classes_and_fixed_ones_refuse():
    fixed = painter()
    with pytest.raises(LayoutError, match="fixed vocabulary"):
        fixed.with_class("lighthouse")
    with pytest.raises(LayoutError, match="unknown to the guides"):
        fixed.painting(Layout(torch.zeros(8, 8, dtype=torch.long), ["lighthouse"]), 8, 8)
    open_painter = Painter.create([], open_vocabulary=True).with_class("red  lighthouse")
    assert open_painter.classes == ("red lighthouse",)
    natural = {"sky": (120, 160, 220), "sea": (40, 90, 160)}
    grown = Painter.create(["sky", "sea"], natural, open_vocabulary=True)
    for name in ("water", "ocean", "lake", "river"):  # dataset colours near the sea's
        grown = grown.with_class(name)
    assert distances(grown.colours).min() >= MIN_SEPARATION and tuple(grown.colours[1]) == natural["sea"]
    rgba, grown = open_painter.painting(Layout(torch.tensor([[0, 1]]).repeat(8, 4), ["sky", "red lighthouse"]), 8, 8)
    assert grown.classes == ("red lighthouse", "sky") and tuple(grown.colours[0]) == tuple(open_painter.colours[0])


def test_region_report_warns_about_regions_too_small_for_stage_1():
    label = torch.zeros(64, 64, dtype=torch.long)
    label[10:13, 10:13] = 1  # 9 px
    label[40:50, 40:50] = 1  # 100 px
    layout = Layout(label, ["sea", "boat"])
    report = region_report(layout, (64, 64))
    assert {a["class"]: a["pixels"] for a in report["areas"]} == {"sea": 64 * 64 - 109, "boat": 109}
    assert len(report["warnings"]) == 1 and "1 'boat' region" in report["warnings"][0]
    # at a quarter of the pixels the 100-px region is 25 px: still enough; the 9-px one is 2
    assert "1 'boat'" in region_report(layout, (32, 32))["warnings"][0]
    assert "2 'boat'" in region_report(layout, (16, 16))["warnings"][0]


# --- the run queue ---------------------------------------------------------------------------------------------


def test_the_queue_serves_clients_in_turn_cancels_and_survives_failures():
    ran, release = [], threading.Event()

    def run(job):
        ran.append(job.request)
        if job.request == "bad":
            raise TCIGError("a clear reason")
        if job.request == "bug":
            raise ValueError("oops")
        while not release.wait(0.01):
            job.progress("stage1")
        return {"done": job.request}

    queue = JobQueue(run, max_per_client=2)
    try:
        a1 = queue.submit("a", "a1")
        while queue.position(a1) != 0:
            time.sleep(0.01)
        a2, a3, b1 = queue.submit("a", "a2"), queue.submit("a", "a3"), queue.submit("b", "b1")
        # client a has had a run: b's first comes before a's second, though it came later
        assert [queue.position(j) for j in (a1, b1, a2, a3)] == [0, 1, 2, 3]
        with pytest.raises(TCIGError, match="2 runs waiting"):
            queue.submit("a", "a4")
        queue.cancel(a3.id)
        assert a3.state == "cancelled"
        release.set()
        while not a2.finished:
            time.sleep(0.01)
        assert ran == ["a1", "b1", "a2"] and b1.result == {"done": "b1"}
        release.clear()
        slow = queue.submit("c", "c1")
        while slow.state != "running":
            time.sleep(0.01)
        queue.cancel(slow.id)
        while not slow.finished:
            time.sleep(0.01)
        assert slow.state == "cancelled"
        bad, bug = queue.submit("d", "bad"), queue.submit("d", "bug")
        release.set()
        ok = queue.submit("e", "e1")
        while not ok.finished:
            time.sleep(0.01)
        assert (bad.state, bad.error) == ("failed", "a clear reason")
        assert bug.state == "failed" and bug.error.startswith("internal error: ValueError")
        assert ok.state == "done"
    finally:
        queue.close()


def test_progress_raises_once_cancelled():
    from tcig.app.jobs import Job

    job = Job("a", None)
    job.progress("stage1", 1, 10)
    job.cancel_requested.set()
    with pytest.raises(Cancelled):
        job.progress("stage1", 2, 10)


# --- uploads ---------------------------------------------------------------------------------------------------


def test_uploads_read_like_the_cli(tmp_path):
    street = (ROOT / "examples/street.png").read_bytes()
    legend = (ROOT / "examples/street.legend.json").read_bytes()
    by_cli = read_layout(ROOT / "examples/street.png")
    uploaded = read_uploaded_layout([("street.png", street), ("colours of my street.json", legend)])
    assert uploaded.classes == by_cli.classes and torch.equal(uploaded.label_map, by_cli.label_map)
    spec = (ROOT / "examples/scene_beach.json").read_bytes()
    expected = read_layout(ROOT / "examples/scene_beach.json")
    assert read_uploaded_layout([("beach.json", spec)]).prompt == expected.prompt
    lake = read_layout(ROOT / "examples/masks_lake")
    zipped = zip_of({f"masks_lake/{m.name}": m.read_bytes() for m in (ROOT / "examples/masks_lake").iterdir()})
    layout = read_uploaded_layout([("lake.zip", zipped)])
    assert layout.classes == lake.classes and torch.equal(layout.label_map, lake.label_map)
    assert layout.prompt == lake.prompt
    escaping = zip_of({"../../zz_escape.png": (ROOT / "examples/masks_lake/tree.png").read_bytes()})
    assert read_uploaded_layout([("x.zip", escaping)]).classes == ["zz escape"]
    assert not list(Path("/tmp").glob("zz_escape.png"))


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "files, message",
    [
        ([("a.png", b"not an image")], "a.png"),
        ([("a.zip", b"not a zip")], "not a zip"),
        ([("a.png", b""), ("b.png", b"")], "one layout image"),
        ([("notes.txt", b"hi")], "not a layout file"),
        ([("a.json", b"{")], "a.json"),
    ],
)
def test_bad_uploads_are_one_clear_line(files, message):
    with pytest.raises(TCIGError, match=message) as err:
        read_uploaded_layout(files)
    assert "\n" not in str(err.value)


def test_upload_names_are_reduced_to_safe_base_names():
    assert safe_name("C:\\Users\\me\\layout.png") == "layout.png"
    assert safe_name("../../etc/passwd") == "passwd"
    for bad in ("..", ".hidden.png", "", "a?.png"):
        with pytest.raises(LayoutError):
            safe_name(bad)


# --- the HTTP API on tiny models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tiny, tmp_path_factory):
    from tcig.app.server import AppServer
    from tcig.app.studio import Studio
    from tcig.pipeline import TCIGPipeline

    out = tmp_path_factory.mktemp("app_out")
    examples = tmp_path_factory.mktemp("examples")
    shutil.copy(ROOT / "examples/beach.json", examples / "beach.json")  # has a rock: no tiny guide knows it
    boat = {"class": "boat", "shape": "rectangle", "box": [4, 4, 9, 9]}
    spec = {"size": [32, 16], "background": "sea", "regions": [boat]}
    (examples / "harbour.json").write_text(json.dumps(spec))
    studio = Studio(TCIGPipeline.from_model_set(str(tiny["model_set"])), out, examples)
    server = AppServer(("127.0.0.1", 0), studio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, out
    server.shutdown()
    server.server_close()
    studio.queue.close()


def call(server, method: str, path: str, body=None, headers=None) -> tuple[int, dict | bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    sent = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(raw) if kind == "application/json" and "/files/" not in path else raw


def painted(server, label: np.ndarray) -> str:
    config = call(server, "GET", "/api/config")[1]
    colours = {c["name"]: [int(c["colour"][i : i + 2], 16) for i in (1, 3, 5)] for c in config["classes"]}
    rgba = np.zeros((*label.shape, 4), np.uint8)
    for k, name in enumerate(SEG_LABELS):
        rgba[label == k] = [*colours[name], 255]
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


FAST = {"steps": 2, "num_crops": 1, "stage2_steps": 2, "strength": 0.5, "init": "noise"}


def wait_for(server, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = call(server, "GET", f"/api/jobs/{job_id}")[1]
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.1)
    raise AssertionError("the run did not finish")


def test_the_api_generates_and_serves_the_files_without_overwriting(served):
    server, out = served
    status, config = call(server, "GET", "/api/config")
    assert status == 200 and [c["name"] for c in config["classes"]] == SEG_LABELS
    assert [e["name"] for e in config["examples"]] == ["harbour.json"]
    label = np.full((64, 64), SEG_LABELS.index("sea"))
    label[:24] = SEG_LABELS.index("sky")
    label[30:40, 20:40] = SEG_LABELS.index("boat")
    body = {"client": "t", "painting": painted(server, label), "prompt": "a boat", "seed": 5, "settings": FAST}
    report = call(server, "POST", "/api/analyze", body)[1]
    assert {a["class"] for a in report["areas"]} == {"sky", "sea", "boat"} and report["warnings"] == []
    first = wait_for(server, call(server, "POST", "/api/generate", body)[1]["id"])
    second = wait_for(server, call(server, "POST", "/api/generate", body)[1]["id"])
    assert first["state"] == second["state"] == "done", (first["error"], second["error"])
    assert first["result"]["name"] == "painting_s5" and second["result"]["name"] == "painting_2_s5"
    for key, url in first["result"]["items"][0]["files"].items():
        code, data = call(server, "GET", url)
        assert code == 200 and data == (out / url.rsplit("/", 1)[1]).read_bytes(), key
    layout = read_layout(out / "painting_s5_layout.png")
    names = np.array(SEG_LABELS)[label]
    assert (np.array(layout.classes)[layout.label_map.numpy()] == names).all()
    sidecar = json.loads((out / "painting_s5.json").read_text())
    assert sidecar["settings"]["stage1"]["steps"] == 2 and sidecar["layout"] == "painting_s5_layout.png"
    for image in ("preview", "outlined/0"):
        assert call(server, "GET", f"/api/jobs/{first['id']}/{image}.png")[1][:4] == b"\x89PNG"
    assert call(server, "GET", f"/api/jobs/{first['id']}/outlined/1.png")[0] == 404
    # several images from one run: tcig generate's names, one layout for all
    third = wait_for(server, call(server, "POST", "/api/generate", {**body, "seed": 6, "num_images": 2})[1]["id"])
    assert [item["name"] for item in third["result"]["items"]] == ["painting_s6_0", "painting_s6_1"]
    assert {p.name for p in out.glob("painting_s6*")} == {
        f"painting_s6{suffix}" for suffix in ("_0.png", "_0_stage1.png", "_0_sheet.png", "_0.json", "_1.png",
                                             "_1_stage1.png", "_1_sheet.png", "_1.json", "_layout.png", "_layout.json")
    }  # fmt: skip
    history = call(server, "GET", "/api/config")[1]["history"]
    assert [h["name"] for h in history] == ["painting_s6_0", "painting_s6_1", "painting_2_s5", "painting_s5"]


@pytest.mark.parametrize(
    "change, status, message",
    [
        ({"prompt": " "}, 400, "prompt"),
        ({"seed": -1}, 400, "seed"),
        ({"settings": {"steps": "many"}}, 400, '"steps" must be an integer'),
        ({"settings": {"height": 64}}, 400, "unknown setting 'height'"),
        ({"painting": "data:image/png;base64,AAAA"}, 400, "readable PNG"),
        ({"client": None}, 400, "client"),
        ({"num_images": 9}, 400, "images per run"),
    ],
)
def test_bad_requests_get_one_line(served, change, status, message):
    server, _ = served
    label = np.full((16, 16), 0)
    body = {"client": "t", "painting": painted(server, label), "prompt": "a boat", "seed": 1, **change}
    code, answer = call(server, "POST", "/api/generate", body)
    assert code == status and message in answer["error"] and "\n" not in answer["error"]


def test_the_server_guards_its_edges(served):
    server, _ = served
    assert call(server, "GET", "/api/config", headers={"Host": "evil.example:80"})[0] == 403
    assert call(server, "POST", "/api/analyze", headers={"Content-Type": "text/plain"})[0] == 415
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.putrequest("POST", "/api/layout")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(10**9))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "MiB limit" in json.loads(response.read())["error"]
    connection.close()
    code, answer = call(server, "POST", "/api/layout", {"files": [{"name": "x.png", "data": "!!"}]})
    assert code == 400 and "damaged" in answer["error"]
    for path in ("/files/../../etc/passwd", "/files/painting_s99.png", "/static/../studio.py", "/api/jobs/0123"):
        assert call(server, "GET", path)[0] == 404
    assert call(server, "GET", "/api/config")[0] == 200  # still serving


def test_an_example_loads_at_the_model_sets_resolution(served):
    server, _ = served
    code, loaded = call(server, "POST", "/api/example", {"name": "harbour.json"})
    assert code == 200 and (loaded["width"], loaded["height"]) == (64, 32)
    assert call(server, "POST", "/api/example", {"name": "beach.json"})[0] == 400
    assert call(server, "POST", "/api/example", {"name": "../secret.json"})[0] == 400


def test_the_command_refuses_remote_hosts_and_bad_ports(capsys):
    from tcig.cli.main import main

    assert main(["app", "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert main(["app", "--port", "70000"]) == 2
    assert "0..65535" in capsys.readouterr().err


def test_an_open_vocabulary_guide_lets_the_page_add_classes(tiny, tmp_path):
    from tcig.app.studio import Studio
    from tcig.models.model_sets import load_model_set
    from tcig.pipeline import TCIGPipeline

    guides = [(str(tiny["segformer"]), 1.0), (str(tiny["clipseg"]), 1.0)]
    model_set = load_model_set(str(tiny["model_set"])).with_overrides(segmenters=guides)
    studio = Studio(TCIGPipeline.from_model_set(model_set), tmp_path)
    try:
        assert studio.config()["open_vocabulary"] and [c["name"] for c in studio.config()["classes"]] == SEG_LABELS
        classes = studio.add_class({"name": "lighthouse"})["classes"]
        colour = next(c["colour"] for c in classes if c["name"] == "lighthouse")
        rgba = np.zeros((16, 16, 4), np.uint8)
        rgba[..., :3] = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        rgba[..., 3] = 255
        png = io.BytesIO()
        Image.fromarray(rgba).save(png, format="PNG")
        body = {"painting": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()}
        layout = studio.painted_layout({**body, "region_texts": {"lighthouse": "a white lighthouse"}})
        assert layout.classes == ["lighthouse"] and layout.region_texts == {0: "a white lighthouse"}
        # the open-vocabulary guide is queried with the region text; the fixed one knows no lighthouse
        terms = studio.pipe.seg_terms(layout, 1)
        assert [t.queries for t in terms] == [["a white lighthouse"]]
    finally:
        studio.queue.close()
