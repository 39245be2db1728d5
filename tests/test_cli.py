"""`tcig generate` end to end on the tiny model set, and every bad-input error: one line, exit code 2, no files."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import BOAT_SPEC

from tcig.cli.main import build_parser, main

SPEC = BOAT_SPEC
FAST = ["--steps", "3", "--num-crops", "2", "--stage2-steps", "4", "--no-progress"]


def _run(tiny, out, *args):
    return main(["generate", "--models", str(tiny["model_set"]), "--out", str(out), *FAST, *map(str, args)])


def test_generate_writes_image_stage1_sheet_and_sidecar(tiny, spec, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(tiny, out, "--layout", spec, "--seed", 7) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["scene_s7.json", "scene_s7.png", "scene_s7_sheet.png", "scene_s7_stage1.png"]
    assert Image.open(out / "scene_s7.png").size == (64, 48)
    sheet = Image.open(out / "scene_s7_sheet.png")
    assert sheet.width >= 4 * 64
    meta = json.loads((out / "scene_s7.json").read_text())
    assert meta["seed"] == 7 and meta["settings"]["prompt"] == SPEC["prompt"]
    assert meta["classes"] == ["sky", "sea", "boat"]
    assert len(meta["history"]) == 3 and meta["timings"]["stage2_s"] > 0
    assert meta["model_set"]["refiner"].endswith("latent")
    assert meta["settings"]["stage1"]["steps"] == 3 and meta["settings"]["stage2"]["strength"] == 0.6
    assert str(out / "scene_s7.png") in capsys.readouterr().out
    assert not list(out.glob(".tcig-*"))  # no staging folder left behind


def test_same_seed_same_image_and_overrides(tiny, spec, tmp_path):
    args = [
        "--layout",
        spec,
        "--seed",
        3,
        "--stage2",
        "none",
        "--segmenter",
        f"{tiny['segformer']}:2",
        "--segmenter",
        f"{tiny['mask2former']}:0.5",
        "--clip",
        tiny["clip"],
    ]
    assert _run(tiny, tmp_path / "a", *args) == 0
    assert _run(tiny, tmp_path / "b", *args) == 0
    a = np.asarray(Image.open(tmp_path / "a" / "scene_s3.png"))
    b = np.asarray(Image.open(tmp_path / "b" / "scene_s3.png"))
    assert np.array_equal(a, b)
    meta = json.loads((tmp_path / "a" / "scene_s3.json").read_text())
    assert meta["settings"]["stage2"] is None and meta["model_set"]["refiner"] is None
    assert [s["weight"] for s in meta["settings"]["models"]["segmenters"]] == [2.0, 0.5]


def test_pixel_refiner_and_several_images(tiny, spec, tmp_path):
    out = tmp_path / "o"
    assert _run(tiny, out, "--layout", spec, "--refiner", tiny["pixel"], "--num-images", 2, "--name", "x") == 0
    assert {p.name for p in out.glob("*.png")} == {f"x_{i}{s}.png" for i in (0, 1) for s in ("", "_stage1", "_sheet")}


def test_help_documents_every_option(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["generate"]
    options = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    assert len(options) > 25
    undocumented = [a.option_strings[0] for a in options if not a.help]
    assert undocumented == []
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    assert all(a.option_strings[-1] in text for a in options)


def _error(tiny, tmp_path, capsys, *args):
    out = tmp_path / "out"
    code = _run(tiny, out, *args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("tcig: error: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    return err


def test_missing_layout(tiny, tmp_path, capsys):
    assert "does not exist" in _error(tiny, tmp_path, capsys, "--layout", tmp_path / "nope.png", "--prompt", "x")


def test_non_image_layout(tiny, tmp_path, capsys):
    bad = tmp_path / "layout.png"
    bad.write_text("this is not a png")
    err = _error(tiny, tmp_path, capsys, "--layout", bad, "--prompt", "x", "--vocabulary", "ade20k")
    assert "layout.png" in err


def test_colours_missing_from_legend(tiny, tmp_path, capsys):
    image = np.zeros((16, 16, 3), np.uint8)
    image[8:] = (0, 0, 255)
    Image.fromarray(image).save(tmp_path / "l.png")
    (tmp_path / "l.legend.json").write_text(json.dumps({"legend": {"#000000": "sky"}}))
    err = _error(tiny, tmp_path, capsys, "--layout", tmp_path / "l.png", "--prompt", "x")
    assert "#0000ff" in err.lower() and "legend" in err


def test_unknown_class(tiny, tmp_path, capsys):
    spec = {**SPEC, "background": "skyy"}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    err = _error(tiny, tmp_path, capsys, "--layout", tmp_path / "s.json")
    assert "skyy" in err and "sky" in err.split("skyy", 1)[1]


def test_no_labelled_pixel(tiny, tmp_path, capsys):
    spec = {"prompt": "x", "size": [16, 16], "regions": []}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    assert "no labelled pixel" in _error(tiny, tmp_path, capsys, "--layout", tmp_path / "s.json")


def test_missing_model_folder(tiny, spec, tmp_path, capsys):
    err = _error(tiny, tmp_path, capsys, "--layout", spec, "--refiner", tmp_path / "no_such_model")
    assert "no_such_model" in err and "does not exist" in err


def test_long_prompt_warns_and_truncates(tiny, spec, tmp_path, caplog):
    assert _run(tiny, tmp_path / "o", "--layout", spec, "--prompt", "a red boat " * 40, "--stage2", "none") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("322 tokens but CLIP reads 77" in w for w in warnings)


def test_cli_error_has_no_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcig",
            "generate",
            "--layout",
            str(tmp_path / "x.json"),
            "--out",
            str(tmp_path / "o"),
            "--prompt",
            "p",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_hub_model_offline_is_a_clear_error(spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    code = main(["generate", "--layout", str(spec), "--out", str(out), "--no-progress"])  # the default set: sd15
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "nvidia/segformer-b0-finetuned-ade-512-512" in err and "hub cache" in err
    assert not out.exists() or not any(out.iterdir())


def test_model_set_defaults_apply_unless_an_option_is_given(tiny, spec, tmp_path):
    model_set = json.loads(tiny["model_set"].read_text())
    model_set.update(
        clip=str(tiny["clip"]),
        segmenters=[str(tiny["segformer"])],
        refiner=str(tiny["latent"]),
        stage1={"steps": 2, "num_crops": 1},
        stage2={"strength": 0.25, "steps": 8},
    )
    path = tmp_path / "set.json"
    path.write_text(json.dumps(model_set))
    base = ["generate", "--models", str(path), "--layout", str(spec), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    meta = json.loads((tmp_path / "a" / "scene_s0.json").read_text())
    assert len(meta["history"]) == 2 and meta["settings"]["stage1"]["num_crops"] == 1
    assert meta["settings"]["stage2"]["strength"] == 0.25 and meta["settings"]["stage2"]["steps"] == 8
    assert main([*base, "--out", str(tmp_path / "b"), "--steps", "3", "--strength", "0.5"]) == 0
    meta = json.loads((tmp_path / "b" / "scene_s0.json").read_text())
    assert len(meta["history"]) == 3 and meta["settings"]["stage2"]["strength"] == 0.5


@pytest.mark.parametrize(
    ("option", "value", "message"), [("--strength", "1.5", "strength"), ("--num-crops", "0", "num_crops")]
)
def test_bad_settings_fail_before_any_model_loads(tiny, spec, tmp_path, capsys, monkeypatch, option, value, message):
    def no_loading(*args, **kwargs):
        raise AssertionError("models were loaded before the settings were checked")

    monkeypatch.setattr("tcig.pipeline.TCIGPipeline.from_model_set", no_loading)
    code = _run(tiny, tmp_path / "o", "--layout", spec, option, value)
    err = capsys.readouterr().err
    assert code == 2 and message in err


def test_pickle_only_model_is_refused_unless_allowed(tiny, spec, tmp_path, capsys):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny["segformer"] / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02not really a pickle")
    err = _error(tiny, tmp_path, capsys, "--layout", spec, "--segmenter", folder)
    assert "--allow-pickle" in err and "pickled" in err


def test_corrupt_model_folder(tiny, spec, tmp_path, capsys):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "config.json").write_text((tiny["segformer"] / "config.json").read_text())
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    err = _error(tiny, tmp_path, capsys, "--layout", spec, "--segmenter", folder)
    assert "could not load the segmenter" in err


@pytest.mark.parametrize("option", ["--lr", "--clip-weight"])
def test_non_finite_settings_are_refused(tiny, spec, tmp_path, capsys, option):
    err = _error(tiny, tmp_path, capsys, "--layout", spec, option, "nan")
    assert "finite" in err


def test_nan_in_a_loss_stops_and_names_the_step(tiny, spec, tmp_path, capsys, monkeypatch):
    from tcig.models.segmenters import SemanticSegmenter

    forward = SemanticSegmenter.forward
    calls = []

    def poisoned(self, images, queries=None):
        calls.append(1)
        logits = forward(self, images, queries)
        return logits * float("nan") if len(calls) > 2 else logits

    monkeypatch.setattr(SemanticSegmenter, "forward", poisoned)
    err = _error(tiny, tmp_path, capsys, "--layout", spec, "--steps", "6")
    assert "the stage-1 loss became nan at step 2" in err and "lower --lr" in err


def test_out_of_memory_names_the_options_that_lower_it(tiny, spec, tmp_path, capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("tcig.pipeline.TCIGPipeline.__call__", out_of_memory)
    err = _error(tiny, tmp_path, capsys, "--layout", spec)
    assert "out of GPU memory" in err and "--num-images" in err and "--stage1-size" in err


def test_legend_naming_an_unknown_class(tiny, tmp_path, capsys):
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[4:] = (0, 0, 255)
    Image.fromarray(image).save(tmp_path / "l.png")
    legend = {"legend": {"#000000": "sky", "#0000ff": "seaa"}}
    (tmp_path / "l.legend.json").write_text(json.dumps(legend))
    err = _error(tiny, tmp_path, capsys, "--layout", tmp_path / "l.png", "--prompt", "x")
    assert "seaa" in err and "sea" in err.split("seaa", 1)[1]


def test_layout_over_the_pixel_limit(tiny, tmp_path, capsys):
    """A PNG whose header claims 30000 x 30000 pixels is refused before anything is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    err = _error(tiny, tmp_path, capsys, "--layout", tmp_path / "big.png", "--vocabulary", "voc", "--prompt", "x")
    assert "too large" in err and "900,000,000 pixels" in err
