"""The ``controlnet`` method: a segmentation ControlNet built offline from the tiny UNet, run through ``tcig eval``."""

import json

import pytest
import torch

from tcig.cli.main import main
from tcig.evaluation.runner import read_results
from tcig.layout import IGNORE, Layout
from tcig.layout.palettes import load_palette
from tcig.models.control import UNPAINTED, load_control

SPEC = {
    "prompt": "a boat on the sea under the sky",
    "size": [32, 32],
    "background": "sky",
    "regions": [{"class": "sea", "shape": "rectangle", "box": [0, 16, 32, 32]}],
}
PALETTE = {"sky": [10, 20, 250], "sea": [0, 200, 100], "boat": [250, 0, 0]}


@pytest.fixture(scope="module")
def control_set(tiny, tmp_path_factory):
    """The tiny eval set with a ControlNet of its UNet (its own palette.json) and a folder with one case."""
    from tiny_models import save_controlnet

    root = tiny["model_set"].parent
    save_controlnet(root / "controlnet", root / "latent" / "unet", PALETTE)
    spec = json.loads(tiny["model_set"].read_text())
    spec.update(evaluator="./mask2former", controlnet="./controlnet", stage2={"steps": 3, "strength": 0.5})
    path = root / "tiny_control.json"
    path.write_text(json.dumps(spec))
    cases = tmp_path_factory.mktemp("control_cases")
    (cases / "harbour.json").write_text(json.dumps(SPEC))
    return path, cases


def _eval(model_set, cases, out, *args) -> int:
    return main(["eval", "--models", str(model_set), "--cases", f"folder:{cases}", "--out", str(out),
                 "--no-progress", *args])  # fmt: skip


def test_controlnet_runs_through_tcig_eval_and_follows_its_scale(control_set, tmp_path):
    """At scale 0 the ControlNet adds nothing: the image is the diffusion baseline's, through the same sampler and
    seed; at scale 1 it steers the image. Both are scored and recorded with their settings."""
    model_set, cases = control_set
    off_args = ["--methods", "controlnet,diffusion", "--controlnet-scale", "0"]
    assert _eval(model_set, cases, tmp_path / "off", *off_args) == 0
    assert _eval(model_set, cases, tmp_path / "on", "--methods", "controlnet") == 0
    off = {r["method"]: r for r in read_results(tmp_path / "off")}
    (on,) = read_results(tmp_path / "on")
    assert on["method"] == "controlnet" and on["settings"]["controlnet_scale"] == 1.0 and 0 <= on["miou"] <= 1
    assert off["controlnet"]["settings"]["controlnet_scale"] == 0.0

    def image(folder, row):
        from PIL import Image

        with Image.open(folder / row["images"][0]) as picture:
            return torch.tensor(list(picture.getdata()), dtype=torch.float32)

    same = image(tmp_path / "off", off["controlnet"]) - image(tmp_path / "off", off["diffusion"])
    steered = image(tmp_path / "on", on) - image(tmp_path / "off", off["diffusion"])
    assert same.abs().max() == 0 and steered.abs().mean() > 1
    assert "| controlnet |" in (tmp_path / "on" / "summary.md").read_text()


def test_the_layout_is_painted_in_the_controlnets_palette(control_set, caplog):
    """Classes take the palette's colours (matched by vocabulary: 'ocean' is the sea), don't care and classes the
    palette lacks are black; a standard palette by name (ADE20K, as lllyasviel's seg ControlNet reads) works too."""
    folder = control_set[0].parent / "controlnet"
    label_map = torch.tensor([[0, 1], [2, IGNORE]])
    layout = Layout(label_map, ["sky", "ocean", "dragon"])
    own = load_control(str(folder), None).paint(layout)
    assert own.shape == (3, 2, 2)
    assert torch.allclose(own[:, 0, 0] * 255, torch.tensor([10.0, 20, 250]))
    assert torch.allclose(own[:, 0, 1] * 255, torch.tensor([0.0, 200, 100]))
    assert torch.equal(own[:, 1, 0], torch.tensor(UNPAINTED, dtype=torch.float32))
    assert torch.equal(own[:, 1, 1], torch.tensor(UNPAINTED, dtype=torch.float32))
    assert "dragon" in caplog.text
    ade = load_control(str(folder), "ade20k").paint(layout)
    assert torch.allclose(ade[:, 0, 0] * 255, torch.tensor(load_palette("ade20k").colours["sky"], dtype=torch.float32))


def test_controlnet_is_refused_in_one_line_where_the_set_has_none(tiny, tmp_path, capsys):
    """Asked for by name with a set without a ControlNet: one line before any model loads; left out by default."""
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "harbour.json").write_text(json.dumps(SPEC))
    spec = json.loads(tiny["model_set"].read_text())
    spec.update(evaluator="./mask2former", stage2={"steps": 2, "strength": 0.5})
    plain = tiny["model_set"].parent / "tiny_plain.json"
    plain.write_text(json.dumps(spec))
    out = tmp_path / "report"
    assert _eval(plain, cases, out, "--methods", "controlnet") == 2
    err = capsys.readouterr().err.strip()
    assert "controlnet needs a ControlNet" in err and "\n" not in err and not out.exists()
    assert _eval(plain, cases, out, "--methods", "diffusion", "--controlnet-scale", "-1") == 2
    assert "--controlnet-scale must be a finite number >= 0" in capsys.readouterr().err
    assert _eval(plain, cases, out, "--methods", "guided", "--guided-repeats", "2.5") == 2
    assert "--guided-repeats must be a whole number" in capsys.readouterr().err
