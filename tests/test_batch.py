"""`tcig batch`: resumable runs from a manifest, failures recorded, bad manifests refused, two processes, SIGKILL."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import BOAT_SPEC

from tcig.cli.main import main

SPEC = BOAT_SPEC
FAST = {"steps": 3, "num_crops": 2, "stage2_steps": 4}
ROOT = Path(__file__).resolve().parents[1]


def _manifest(tmp_path: Path, entries: list[dict]) -> Path:
    (tmp_path / "scene.json").write_text(json.dumps(SPEC))
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps({"layout": "scene.json", **FAST, **e}) for e in entries) + "\n")
    return path


def _args(tiny, manifest, out) -> list[str]:
    return ["batch", str(manifest), "--out", str(out), "--models", str(tiny["model_set"]), "--no-progress",
            "--device", "cpu"]  # fmt: skip


def _batch(tiny, manifest, out, *extra):
    return main([*_args(tiny, manifest, out), *extra])


def _summary(out: Path) -> dict:
    return json.loads((out / "batch_summary.json").read_text())


def test_batch_writes_items_skips_finished_and_records_failures(tiny, tmp_path, capsys):
    manifest = _manifest(
        tmp_path,
        [{"seed": 0}, {"seed": 1, "name": "second", "strength": 0.3}, {"seed": 2, "layout": "later.json"}],
    )
    out = tmp_path / "out"
    assert _batch(tiny, manifest, out) == 1  # one item failed: its layout is not there yet
    summary = _summary(out)
    assert summary["done"] == ["scene_s0", "second"] and list(summary["failed"]) == ["later_s2"]
    assert "later.json" in summary["failed"]["later_s2"]
    error = json.loads((out / "later_s2.error.json").read_text())
    assert error["line"] == 3 and "does not exist" in error["error"]
    sidecar = json.loads((out / "second.json").read_text())
    assert sidecar["seed"] == 1 and sidecar["batch_inputs"]["overrides"]["strength"] == 0.3
    assert sidecar["settings"]["stage2"]["strength"] == 0.3 and len(sidecar["history"]) == 3
    assert "1 failed of 3" in capsys.readouterr().out
    first = (out / "scene_s0.png").stat().st_mtime_ns
    # rerun: finished items are skipped by their sidecar's inputs; a changed item is redone; the fixed one runs
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace('"strength": 0.3', '"strength": 0.4')
    manifest.write_text("\n".join(lines) + "\n")
    shutil.copy(tmp_path / "scene.json", tmp_path / "later.json")
    assert _batch(tiny, manifest, out) == 0
    summary = _summary(out)
    assert summary["skipped"] == ["scene_s0"] and summary["done"] == ["later_s2", "second"] and not summary["failed"]
    assert (out / "scene_s0.png").stat().st_mtime_ns == first
    assert not (out / "later_s2.error.json").exists()


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"layout": "scene.json"', ""], "manifest.jsonl:1: not valid JSON"),
        (['["scene.json"]'], "each line must be a JSON object"),
        (['{"seed": 1}'], '"layout" (a path) is required'),
        (['{"layout": "scene.json", "name": "../escape"}'], "would not stay one file in the output folder"),
        (['{"layout": "scene.json", "name": ".hidden"}'], "starts with '.'"),
        (['{"layout": "scene.json", "seed": -1}'], '"seed" must be an integer in 0..'),
        (['{"layout": "scene.json", "strength": 3.0}'], '"strength" must be a number in (0, 1], got 3'),
        (['{"layout": "scene.json", "colour": "red"}'], "unknown key(s) colour"),
        (['{"layout": "scene.json"}', '{"layout": "scene.json"}'], "which manifest line 1 (name 'scene_s0') also"),
        (["", "  "], "has no item"),
    ],
)
def test_bad_manifests_fail_before_anything_is_written(tiny, tmp_path, capsys, lines, message):
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines))
    out = tmp_path / "out"
    assert _batch(tiny, tmp_path / "manifest.jsonl", out) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def _cli(*args, env=None) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def test_two_accelerate_processes_give_the_files_of_one(tiny, tmp_path):
    # accelerate's torchrun launcher (--multi_gpu) runs the 2 processes; on a CPU they talk over gloo
    manifest = _manifest(tmp_path, [{"seed": s} for s in range(4)])
    one = _cli(sys.executable, "-m", "tcig", *_args(tiny, manifest, tmp_path / "one"))
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    two = _cli(sys.executable, *launch, "-m", "tcig", *_args(tiny, manifest, tmp_path / "two"))
    for proc in (one, two):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    assert _summary(tmp_path / "two")["processes"] == 2
    a, b = _pixels(tmp_path / "one"), _pixels(tmp_path / "two")
    assert list(a) == list(b) and len(a) == 12  # 4 items x image, stage 1, sheet
    assert all(np.array_equal(a[name], b[name]) for name in a)


def test_sigkill_leaves_no_partial_output_and_a_rerun_completes_the_rest(tiny, tmp_path):
    manifest = _manifest(tmp_path, [{"seed": s, "steps": 40} for s in range(6)])
    out = tmp_path / "out"
    args = [sys.executable, "-m", "tcig", *_args(tiny, manifest, out)]
    proc = _cli(*args)
    deadline = time.monotonic() + 300
    while len(list(out.glob("scene_s*.json"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    finished = sorted(p.stem for p in out.glob("scene_s*.json"))
    assert 2 <= len(finished) < 6, "the kill came too late to test anything"
    # no torn file: every image decodes completely, and every item with a sidecar (written last) has all its files;
    # an image without a sidecar belongs to an item caught between its moves and is redone
    for png in out.glob("*.png"):
        Image.open(png).load()
    for stem in finished:
        sidecar = json.loads((out / f"{stem}.json").read_text())
        assert all((out / name).is_file() for name in sidecar["files"].values())
    rerun = _cli(*args)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-2000:]
    summary = _summary(out)
    assert summary["skipped"] == finished
    assert sorted(summary["done"]) == sorted({f"scene_s{s}" for s in range(6)} - set(finished))
    assert not [p for p in out.iterdir() if p.name.startswith(".tcig-")]  # the killed run's staging was cleared
    shutil.rmtree(out)


def test_a_second_batch_into_a_live_folder_refuses_and_the_first_finishes(tiny, tmp_path, capsys):
    """The failure this lock fixes: the second run used to delete the first's live staging folder."""
    manifest = _manifest(tmp_path, [{"seed": s} for s in range(3)])
    out = tmp_path / "out"
    first = _cli(sys.executable, "-m", "tcig", *_args(tiny, manifest, out))
    deadline = time.monotonic() + 120
    while not (out / ".tcig.lock").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _batch(tiny, manifest, out) == 2
    err = capsys.readouterr().err
    assert "in use by another tcig run" in err and f"pid {first.pid}" in err
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert len(_summary(out)["done"]) == 3 and not list(out.glob(".tcig-*"))


def test_wait_queues_behind_the_run_in_progress(tiny, tmp_path):
    manifest = _manifest(tmp_path, [{"seed": 0}])
    out = tmp_path / "out"
    first = _cli(sys.executable, "-m", "tcig", *_args(tiny, manifest, out))
    deadline = time.monotonic() + 120
    while not (out / ".tcig.lock").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _batch(tiny, manifest, out, "--wait") == 0  # waits, then finds the item finished
    assert first.wait(timeout=600) == 0
    assert _summary(out)["skipped"] == ["scene_s0"]


def test_batch_takes_generates_component_flags_and_an_init_image(tiny, tmp_path):
    """The components `generate` can swap (one declaration of the flags), and a photo to edit on a manifest line."""
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((48, 64, 3), (40, 90, 200), np.uint8)).save(photo)
    manifest = _manifest(tmp_path, [{"seed": 0, "init_image": "photo.png", "stage2_steps": 2}])
    extra = ["--segmenter", f"{tiny['segformer']}:2", "--clip", str(tiny["clip"]), "--refiner", "none"]
    extra.append("--no-channels-last")
    assert _batch(tiny, manifest, tmp_path / "out", *extra) == 0
    sidecar = json.loads((tmp_path / "out" / "scene_s0.json").read_text())
    assert sidecar["model_set"]["segmenters"] == [f"{tiny['segformer']}:2"] and sidecar["model_set"]["refiner"] is None
    assert sidecar["init_image"] == str(photo) and sidecar["settings"]["init_image"] == [48, 64]
    assert sidecar["batch_inputs"]["init_image_sha256"]
    # a missing photo fails that item only, in one line
    manifest = _manifest(tmp_path, [{"seed": 1, "init_image": "gone.png"}])
    assert _batch(tiny, manifest, tmp_path / "out", *extra) == 1
    assert "photo" in _summary(tmp_path / "out")["failed"]["scene_s1"]
