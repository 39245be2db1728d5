"""Rough edges a new user hits, each as they would hit it: one line that says what happened, no traceback, exit 2 (or
130 for Ctrl-C), nothing dropped silently and nothing left behind."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcig.cli.main import main
from tcig.layout.readers import read_layout

ROOT = Path(__file__).resolve().parents[1]
BEACH = ROOT / "examples" / "scene_beach.json"


def _one_line_error(capsys, *parts: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    return err


@pytest.mark.parametrize("delay", [0.1, 0.6, 1.5])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(delay):
    """Python spends its first seconds importing torch; Ctrl-C there used to end in a KeyboardInterrupt traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcig", "models"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # it finished before the signal came: nothing to see
        return
    assert proc.returncode == 130
    assert err.strip() == "tcig: interrupted; finished files are kept, nothing half-written was left"


def test_importing_the_package_does_not_import_torch():
    code = "import sys, tcig; assert 'torch' not in sys.modules; tcig.TCIGPipeline; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_few_stage2_steps_never_leave_a_cycle_without_a_step(tmp_path, capsys):
    """A user lowers --stage2-steps to 5 for speed; the set's cycle strength 0.15 of 5 steps rounds to one step
    instead of failing about a setting they never touched."""
    out = tmp_path / "out"
    args = ["generate", "--models", "scenes", "--layout", str(BEACH), "--out", str(out), "--no-progress"]
    assert main([*args, "--stage2-steps", "5", "--steps", "3"]) == 0
    meta = json.loads((out / "scene_beach_s0.json").read_text())
    assert meta["settings"]["stage2_noise_levels"]["cycle_steps"] == 1
    assert main([*args, "--stage2-steps", "5", "--steps", "3", "--strength", "0.05", "--name", "low"]) == 0
    assert json.loads((out / "low.json").read_text())["settings"]["stage2_noise_levels"]["refine_steps"] == 1


def test_a_box_far_past_the_image_covers_it_and_warns_of_nothing(tmp_path):
    spec = {
        "prompt": "a boat on the sea",
        "size": [64, 64],
        "background": "sky",
        "regions": [
            {"class": "sea", "box": [0, 32, 1e20, 1e20]},
            {"class": "boat", "box": [-1e300, 40, 30, 50]},
            {"class": "cloud", "shape": "polygon", "points": [[0, 0], [1e30, 0], [0, 10]]},
        ],
    }
    path = tmp_path / "far.json"
    path.write_text(json.dumps(spec))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning used to leak out
        layout = read_layout(path)
    assert layout.classes == ["sky", "sea", "boat", "cloud"]
    label = layout.label_map.numpy()
    assert (label[40:50, :30] == 2).all() and (label[50:, :] == 1).all() and (label[32:40, 30:] == 1).all()
    assert (label[:5, :30] == 3).all()


def test_an_empty_prompt_is_refused(capsys, tmp_path):
    args = ["generate", "--models", "scenes", "--layout", str(BEACH), "--out", str(tmp_path / "o"), "--prompt", ""]
    assert main(args) == 2
    _one_line_error(capsys, "the prompt is empty")
    assert not (tmp_path / "o").exists()


def test_a_mask_folder_without_a_prompt_names_prompt_txt(capsys, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(folder / "sky.png")
    assert main(["generate", "--models", "scenes", "--layout", str(folder), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "prompt.txt")


def test_a_link_loop_or_a_dangling_link_says_so(capsys, tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    assert main(["layout", "show", str(loop)]) == 2
    _one_line_error(capsys, "is a loop of symbolic links")
    dangling = tmp_path / "gone.json"
    dangling.symlink_to(tmp_path / "moved.json")
    assert main(["layout", "show", str(dangling)]) == 2
    _one_line_error(capsys, "is a symbolic link to", "moved.json', which does not exist")


def test_an_elongated_layout_is_told_what_size_it_would_get(capsys, tmp_path):
    Image.fromarray(np.zeros((4, 4000), np.uint8)).save(tmp_path / "wide.png")
    (tmp_path / "wide.json").write_text(json.dumps({"classes": ["sky"], "prompt": "sky"}))
    args = ["generate", "--models", "scenes", "--layout", str(tmp_path / "wide.png"), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = _one_line_error(capsys, "the layout is 4000x4", "64 pixels (it would be 64x8)", "--fit")
    assert "was asked for" not in err


def test_zero_scenes_is_a_count_not_an_unknown_source(capsys, tmp_path):
    assert main(["eval", "--models", "scenes", "--cases", "scenes:0", "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "'scenes:0' asks for 0 scenes", "1..100000")


def test_a_model_set_names_a_folder_beside_it_without_dot_slash(tmp_path, capsys):
    bundled = ROOT / "src" / "tcig" / "bundled" / "scenes"
    (tmp_path / "guide").symlink_to(bundled / "segformer", target_is_directory=True)
    spec = json.loads((bundled / "sets" / "scenes.json").read_text())
    spec = {k: v for k, v in spec.items() if k in ("clip", "resolution", "stage1", "stage2")}
    spec.update(clip=str(bundled / "clip"), segmenters=["guide:1"], refiner=None)
    (tmp_path / "mine.json").write_text(json.dumps(spec))
    from tcig.models.model_sets import load_model_set

    assert load_model_set(str(tmp_path / "mine.json")).segmenters == ((str((tmp_path / "guide").resolve()), 1.0),)
    out = tmp_path / "layout.png"
    photo = ROOT / "examples" / "photos" / "lake.jpg"
    assert main(["layout", "from-image", str(photo), str(out), "--models", str(tmp_path / "mine.json")]) == 0


def test_a_refused_eval_case_leaves_no_debris(tmp_path, capsys):
    cases = tmp_path / "cases"
    cases.mkdir()
    bad = {"prompt": "a spaceship", "size": [64, 64], "background": "sky",
           "regions": [{"class": "spaceship", "box": [10, 10, 40, 40]}]}  # fmt: skip
    (cases / "bad.json").write_text(json.dumps(bad))
    out = tmp_path / "report"
    args = ["eval", "--models", "scenes", "--cases", f"folder:{cases}", "--methods", "diffusion", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 2
    _one_line_error(capsys, "unknown class 'spaceship'")
    assert not out.exists()


def test_an_eval_summary_counts_the_cases_its_table_shows(tmp_path):
    out = tmp_path / "report"
    common = ["eval", "--models", "scenes", "--methods", "diffusion", "--out", str(out), "--no-progress"]
    common += ["--settings", "stage2_steps=2"]
    assert main([*common, "--cases", "scenes:2:9500000"]) == 0
    assert main([*common, "--cases", "scenes:1:9500002"]) == 0
    header = json.loads((out / "summary.json").read_text())["header"]
    assert header["cases"] == 3 and "1 run now" in header["case_sources"]
    assert "- cases: 3 (" in (out / "summary.md").read_text()


def test_generate_batch_and_app_take_the_same_component_flags():
    from tcig.cli.main import build_parser

    parser = build_parser([])
    commands = parser._subparsers._group_actions[0].choices
    names = ("generate", "batch", "app")
    flags = {name: {s for a in commands[name]._actions for s in a.option_strings} for name in names}
    components = {"--models", "--clip", "--segmenter", "--refiner", "--allow-pickle", "--no-cache", "--preset"}
    assert all(components <= found for found in flags.values())
    assert {"--compile", "--channels-last"} <= flags["batch"] & flags["generate"]


def test_an_error_a_library_made_of_ctrl_c_is_still_an_interruption(monkeypatch, capsys):
    """Some import guards turn a KeyboardInterrupt into their own error; it still ends as Ctrl-C does."""
    from dataclasses import replace

    import tcig.cli.main

    def interrupted(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as err:
            raise RuntimeError("failed to import a module") from err

    commands = tuple(replace(c, run=interrupted) if c.name == "models" else c for c in tcig.cli.main.COMMANDS)
    monkeypatch.setattr(tcig.cli.main, "COMMANDS", commands)
    assert main(["models"]) == 130
    _one_line_error(capsys, "tcig: interrupted; finished files are kept")
