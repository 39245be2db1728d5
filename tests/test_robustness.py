"""Bad and unusual input as a new user would give it: nothing escapes the output folder, no run clobbers another,
no resumable file loses a valid entry, no value reaches the work unchecked; every error is one line and exit 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import BOAT_SPEC

from tcig.cli.main import build_parser, main
from tcig.errors import ConfigError
from tcig.io.files import append_json_line, read_input_text, read_json_lines
from tcig.io.lock import FolderLock, make_staging, remove_stale_staging
from tcig.io.names import check_distinct, check_name
from tcig.settings import MAX_SEED, OPTIONS, Stage1Settings, check_seed, split_settings

FAST = ["--steps", "2", "--num-crops", "2", "--stage2-steps", "4", "--no-progress"]


def _generate(tiny, out, *args):
    return main(["generate", "--models", str(tiny["model_set"]), "--out", str(out), *FAST, *map(str, args)])


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.startswith("tcig: error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# --- names stay inside the output folder --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "a\\b", "con", "bad\x00name", "", "  ", "x."])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ConfigError) as info:
        check_name(name, "--name")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["plage de café", "Ünïcødé_1", "run (2)", "a.b-c_d+e"])
def test_harmless_names_are_kept(name):
    assert check_name(name, "--name") == name


def test_generate_name_cannot_escape_the_output_folder(tiny, spec, tmp_path, capsys):
    out = tmp_path / "deep" / "out"
    assert _generate(tiny, out, "--layout", spec, "--name", "../../escaped") == 2
    _one_line_error(capsys, "--name", "no folders")
    assert not list(tmp_path.rglob("escaped*"))
    assert not out.exists()  # refused before the folder was made


def test_generate_with_an_accented_name(tiny, spec, tmp_path):
    out = tmp_path / "out"
    assert _generate(tiny, out, "--layout", spec, "--name", "plage café", "--stage2", "none") == 0
    assert (out / "plage café.png").is_file() and (out / "plage café.json").is_file()


def test_colliding_output_names_are_refused():
    files = [("a.png", "line 1"), ("a_sheet.png", "line 1"), ("A.png", "line 2")]
    with pytest.raises(ConfigError, match="line 2 would write 'A.png', which line 1 also writes"):
        check_distinct(files)
    with pytest.raises(ConfigError, match="the run itself"):
        check_distinct([("batch_summary.json", "line 3")], reserved=["batch_summary.json"])


def _manifest(tmp_path, lines):
    (tmp_path / "scene.json").write_text(json.dumps(BOAT_SPEC))
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps({"layout": "scene.json", **line}) for line in lines) + "\n")
    return path


def _batch(tiny, manifest, out, *extra):
    return main(["batch", str(manifest), "--out", str(out), "--models", str(tiny["model_set"]), "--no-progress",
                 "--device", "cpu", *extra])  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "needles"),
    [
        ([{"name": "../up"}], ["manifest.jsonl:1", '"name"']),
        ([{"name": "a"}, {"name": "A"}], ["manifest line 2", "'A.png'"]),
        ([{"name": "a"}, {"name": "a_stage1"}], ["a_stage1.png"]),
        ([{"name": "batch_summary"}], ["batch_summary.json", "the run itself"]),
        ([{"seed": -1}], ['"seed"', "2**64-1"]),
        ([{"seed": 2**64}], ['"seed"']),
        ([{"steps": "3"}], ['manifest.jsonl:1: "steps"', "an integer", "str"]),
        ([{"fit": "squash"}], ['"fit"', "stretch, crop, pad"]),
        ([{"strength": float("nan")}], ['"strength"']),
        ([{"height": 100_000}], ['"height"', "4096"]),
        ([{"prompt": 5}], ['"prompt" must be a string']),
    ],
)
def test_bad_manifests_fail_before_any_model_loads(tiny, tmp_path, capsys, monkeypatch, lines, needles):
    import tcig.pipeline

    monkeypatch.setattr(tcig.pipeline.TCIGPipeline, "from_model_set", lambda *a, **k: pytest.fail("loaded models"))
    out = tmp_path / "out"
    assert _batch(tiny, _manifest(tmp_path, lines), out) == 2
    _one_line_error(capsys, *needles)
    assert not out.exists()


# --- one run per folder -------------------------------------------------------------------------------------------


def test_a_second_run_into_a_folder_in_use_refuses(tiny, spec, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):
        assert _generate(tiny, out, "--layout", spec) == 2
        _one_line_error(capsys, "in use by another tcig run", f"pid {os.getpid()}", "--wait")
        assert _generate(tiny, out, "--layout", spec, "--wait", "0.3") == 2
        _one_line_error(capsys, "in use")
    assert not (out / ".tcig.lock").exists()


def test_the_lock_is_released_when_its_process_dies(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = f"from tcig.io.lock import FolderLock; import os; FolderLock(__import__('pathlib').Path({str(out)!r})).__enter__(); os._exit(0)"  # noqa: E501
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (out / ".tcig.lock").exists()  # left behind by a killed run ...
    with FolderLock(out):  # ... and free
        pass


def test_only_staging_of_dead_processes_is_removed(tmp_path):
    mine = make_staging(tmp_path)
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".tcig-{int(dead_pid.stdout)}-abc"
    legacy = tmp_path / ".tcig-x1y2"
    dead.mkdir()
    legacy.mkdir()
    removed = remove_stale_staging(tmp_path)
    assert sorted(removed) == sorted([dead, legacy]) and mine.is_dir()


# --- resumable files ----------------------------------------------------------------------------------------------


def test_a_corrupt_line_costs_only_itself(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    rows = [{"case": f"c{i}", "method": "tcig", "variant": ""} for i in range(4)]
    text = [json.dumps(r) for r in rows]
    text.insert(2, '{"case": "torn", "meth')
    text.insert(4, "[1, 2]")
    path.write_text("\n".join(text) + "\n")
    assert read_json_lines(path) == rows
    assert "line 3, 5" in caplog.text
    assert path.read_text().splitlines() == [json.dumps(r) for r in rows]
    assert (tmp_path / "results.jsonl.corrupt").read_text() == '{"case": "torn", "meth\n[1, 2]\n'
    path.write_text(path.read_text() + '{"case": "killed mid-li')  # a torn last line
    append_json_line(path, {"case": "next"})
    assert read_json_lines(path)[-1] == {"case": "next"}


def test_eval_resumes_past_a_corrupt_middle_line(tmp_path):
    from tcig.evaluation.runner import RESULTS, read_results

    rows = [{"case": f"c{i}", "method": "tcig", "variant": "", "miou": i / 10} for i in range(5)]
    lines = [json.dumps(r) for r in rows]
    lines[2] = lines[2][:20]
    (tmp_path / RESULTS).write_text("\n".join(lines) + "\n")
    kept = read_results(tmp_path)
    assert [r["case"] for r in kept] == ["c0", "c1", "c3", "c4"]
    assert len((tmp_path / RESULTS).read_text().splitlines()) == 4
    assert (tmp_path / f"{RESULTS}.corrupt").read_text() == lines[2] + "\n"  # nothing lost


def test_a_torn_plan_is_a_clear_error(tmp_path):
    from tcig.evaluation.methods import MethodSettings
    from tcig.evaluation.runner import EvalPlan, check_same_plan
    from tcig.settings import Stage2Settings

    (tmp_path / "plan.json").write_text('{"size": [64, ')
    plan = EvalPlan(["tcig"], MethodSettings(Stage1Settings(), Stage2Settings()), (64, 64), {})
    with pytest.raises(ConfigError, match="plan.json' is damaged.*new --out"):
        check_same_plan(tmp_path, plan)


def test_a_damaged_batch_sidecar_redoes_its_item(tiny, tmp_path, caplog):
    manifest = _manifest(tmp_path, [{"name": "a", "steps": 2, "num_crops": 2, "stage2_steps": 4}])
    out = tmp_path / "out"
    assert _batch(tiny, manifest, out) == 0
    (out / "a.json").write_text('{"batch_inputs": ')
    assert _batch(tiny, manifest, out) == 0
    assert "a.json is damaged" in caplog.text
    assert json.loads((out / "batch_summary.json").read_text())["done"] == ["a"]


def test_a_failure_of_any_kind_is_recorded_and_the_batch_goes_on(tiny, tmp_path, monkeypatch):
    import tcig.batch

    real = tcig.batch.run_item

    def flaky(pipe, item, *args):
        if item.name == "bad":
            raise RuntimeError("a bug inside one item")
        return real(pipe, item, *args)

    monkeypatch.setattr(tcig.batch, "run_item", flaky)
    fast = {"steps": 2, "num_crops": 2, "stage2_steps": 4}
    manifest = _manifest(tmp_path, [{"name": "bad", **fast}, {"name": "good", **fast}])
    out = tmp_path / "out"
    assert _batch(tiny, manifest, out) == 1
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["done"] == ["good"] and "RuntimeError: a bug inside one item" in summary["failed"]["bad"]
    assert json.loads((out / "bad.error.json").read_text())["line"] == 1


# --- bounds before any work ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--num-images", "100000"], ["--num-images", "1..64"]),
        (["--num-images", "0"], ["--num-images"]),
        (["--height", "100000"], ["height (--height)", "4096"]),
        (["--stage1-size", "4"], ["--stage1-size"]),
        (["--seed", "-1"], ["--seed", "2**64-1"]),
        (["--seed", str(2**64)], ["--seed"]),
        (["--device", "cuda:abc"], ["unknown device", "cuda:N"]),
        (["--device", "meta"], ["unknown device"]),
        (["--num-crops", "0"], ["num_crops (--num-crops)"]),
        (["--seg-views", "1000"], ["--seg-views"]),
    ],
)
def test_out_of_bounds_values_fail_before_any_model_loads(tiny, spec, tmp_path, capsys, monkeypatch, args, needles):
    import tcig.pipeline

    monkeypatch.setattr(tcig.pipeline.TCIGPipeline, "from_model_set", lambda *a, **k: pytest.fail("loaded models"))
    out = tmp_path / "out"
    assert _generate(tiny, out, "--layout", spec, *args) == 2
    _one_line_error(capsys, *needles)
    assert not out.exists()


def test_the_largest_seed_works():
    assert check_seed(MAX_SEED) == MAX_SEED
    torch.Generator().manual_seed(MAX_SEED)


def test_memory_that_cannot_fit_is_refused_naming_the_option(tiny, spec, tmp_path, capsys, monkeypatch):
    import tcig.pipeline

    monkeypatch.setattr(tcig.pipeline, "free_memory", lambda device: 50 * 2**20)
    out = tmp_path / "out"
    assert _generate(tiny, out, "--layout", spec, "--num-images", "64") == 2
    _one_line_error(capsys, "GiB", "lower --num-images")
    assert not out.exists()  # the folder this run made is gone again


def test_pipes_devices_and_huge_json_are_refused(tmp_path):
    fifo = tmp_path / "manifest.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_input_text(fifo, "manifest")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_input_text("/dev/zero", "manifest")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(64 * 2**20)  # sparse: no disk used
    with pytest.raises(ConfigError, match="over the .*-byte limit"):
        read_input_text(huge, "model set")


def test_a_fifo_layout_is_refused(tiny, tmp_path, capsys):
    fifo = tmp_path / "layout.png"
    os.mkfifo(fifo)
    assert _generate(tiny, tmp_path / "out", "--layout", fifo, "--prompt", "x") == 2
    _one_line_error(capsys, "not a regular file")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"clip": "./c", "segmenters": ["./s"], "refiner": None, "stage1": {"stepz": 3}}, 'unknown field "stepz"'),
        ({"clip": "./c", "segmenters": ["./s"], "refiner": None, "stage1": {"steps": "many"}}, '"steps"'),
        ({"clip": "./c", "segmenters": [], "refiner": None}, '"segmenters" must be a non-empty list'),
        ({"clip": "./c", "segmenters": ["./s"], "refinr": None}, "unknown key 'refinr'"),
        ({"clip": "./c", "segmenters": ["./s"], "resolution": "512"}, '"resolution" must be an integer'),
        ({"clip": "./c", "segmenters": [{"id": "./s", "weight": -1}]}, "must be a number >= 0"),
        ({"clip": "./c", "segmenters": ["./s"], "class_colours": {"sky": [300, 0, 0]}}, "integers 0..255"),
        ([1, 2], "must hold a JSON object"),
        ({"clip": "./c", "segmenters": ["./s"], "presets": {"fast": {"stage1": {"steps": 0.5}}}}, 'preset "fast"'),
        ({"clip": "./c", "segmenters": ["./s"], "presets": {"fast": {"stage3": {}}}}, '"stage1" and/or "stage2"'),
        ({"clip": "./c", "segmenters": ["./s"], "presets": {"default": {}}}, 'without "default"'),
    ],
)
def test_model_set_mistakes_name_the_key(tmp_path, content, needle):
    from tcig.models.model_sets import load_model_set

    path = tmp_path / "set.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError) as info:
        load_model_set(str(path))
    assert needle in str(info.value) and "\n" not in str(info.value)


# --- interrupts, pipes and leftovers ------------------------------------------------------------------------------


def test_ctrl_c_is_one_line_exit_130_and_leaves_nothing(tiny, spec, tmp_path, capsys, monkeypatch):
    import tcig.pipeline

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tcig.pipeline.TCIGPipeline, "__call__", interrupted)
    out = tmp_path / "out"
    assert _generate(tiny, out, "--layout", spec) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("tcig: interrupted") and "\n" not in err
    assert not out.exists()


def test_a_closed_pipe_ends_quietly():
    shell = f"{sys.executable} -m tcig models | head -c 10"
    result = subprocess.run(
        shell, shell=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


# --- one spelling per setting -------------------------------------------------------------------------------------


def test_every_setting_is_a_generate_flag_a_manifest_key_and_a_variant_key():
    from tcig.batch import ITEM_KEYS
    from tcig.evaluation.runner import split_overrides

    parser = build_parser(["generate"])
    generate = parser._subparsers._group_actions[0].choices["generate"]  # noqa: SLF001 - argparse has no public way
    flags = {flag for action in generate._actions for flag in action.option_strings}  # noqa: SLF001
    for key, option in OPTIONS.items():
        assert option.flag in flags, option.flag
        assert key in ITEM_KEYS
    split_settings({k: None if o.optional else getattr(o.group(), o.name) for k, o in OPTIONS.items()})
    given = split_overrides({"steps": 3, "stage2_steps": 9})
    assert given.stage1 == {"steps": 3} and given.stage2 == {"steps": 9}


def test_help_shows_the_defaults_that_will_run(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--models", "scenes", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 30 for 'scenes')" in text  # scenes' tuned steps, not the dataclass's 150
    assert "(default colours for 'scenes')" in text


def test_sizes_of_any_aspect_ratio_work_by_default(tiny, tmp_path):
    """A 640x426 COCO-Stuff map at the default size: no --fit needed within the multiple-of-8 rounding."""
    values = np.full((426, 640), 156, dtype=np.uint8)  # sky-other
    values[300:] = 154  # sea
    Image.fromarray(values).save(tmp_path / "coco.png")
    out = tmp_path / "out"
    args = ["--layout", tmp_path / "coco.png", "--vocabulary", "coco-stuff", "--prompt", "sea", "--stage2", "none"]
    assert _generate(tiny, out, *args) == 0
    assert Image.open(out / "coco_s0.png").size == (64, 40)


def test_a_manifest_saved_with_a_byte_order_mark_reads(tmp_path):
    from tcig.batch import read_manifest

    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"layout": "a.json", "seed": 4}).encode() + b"\n")
    item = read_manifest(path)[0]
    assert item.layout.name == "a.json" and item.seed == 4


def test_a_negative_wait_is_refused(tiny, spec, tmp_path, capsys):
    assert _generate(tiny, tmp_path / "out", "--layout", spec, "--wait", "-5") == 2
    _one_line_error(capsys, "--wait takes a number of seconds >= 0")


def test_a_legend_or_palette_for_a_json_spec_is_refused(spec, tmp_path):
    from tcig.layout.readers import read_layout

    (tmp_path / "legend.json").write_text(json.dumps({"legend": {"#000000": "sky"}}))
    with pytest.raises(ConfigError, match="is a JSON spec; a legend, palette or vocabulary is for a PNG"):
        read_layout(spec, legend=tmp_path / "legend.json")
    with pytest.raises(ConfigError, match="is a JSON spec"):
        read_layout(spec, palette="ade20k")


def test_an_empty_name_is_refused(tiny, spec, tmp_path, capsys):
    assert _generate(tiny, tmp_path / "out", "--layout", spec, "--name", "") == 2
    _one_line_error(capsys, "--name", "is empty")


def test_usage_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "--layout", "x", "--out", "y", "--fit", "squash"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "invalid choice: 'squash'" in err and "tcig generate --help" in err


def test_a_preset_changes_the_sets_settings_and_explicit_flags_still_win(tiny, spec, tmp_path, capsys):
    from tcig.models.model_sets import load_model_set

    content = json.loads(tiny["model_set"].read_text())
    content["stage1"] = {"steps": 3, "num_crops": 2}
    content["presets"] = {"fast": {"stage1": {"steps": 2, "guides_per_step": 1}, "stage2": {"steps": 4}}}
    path = tiny["model_set"].parent / "with_presets.json"
    path.write_text(json.dumps(content))
    ms = load_model_set(str(path))
    assert ms.with_preset("default") is ms and ms.with_preset(None) is ms
    fast = ms.with_preset("fast")
    assert fast.stage1 == {"steps": 2, "num_crops": 2, "guides_per_step": 1} and fast.stage2["steps"] == 4
    with pytest.raises(ConfigError, match="no preset 'best'; use one of default, fast"):
        ms.with_preset("best")
    out = tmp_path / "out"
    args = ["generate", "--models", str(path), "--layout", str(spec), "--out", str(out), "--preset", "fast",
            "--steps", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    meta = json.loads((out / "scene_s0.json").read_text())
    assert meta["settings"]["stage1"]["steps"] == 1 and meta["settings"]["stage1"]["guides_per_step"] == 1
    assert meta["settings"]["stage2"]["steps"] == 4
    assert main([*args[:5], "--out", str(tmp_path / "o2"), "--preset", "best"]) != 0
    _one_line_error(capsys, "no preset 'best'")
