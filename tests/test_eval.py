"""`tcig eval` on tiny stand-in models: every method, the report folder, resuming, the evaluator check, real cases."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from tcig.cli.main import main
from tcig.evaluation.cases import Case, coco_protocol, load_cases
from tcig.evaluation.report import stat
from tcig.evaluation.runner import RESULTS, read_results
from tcig.layout import Layout
from tcig.layout.vocabularies import load_vocabulary

REAL_CASES = Path(__file__).parent / "data" / "real_cases"
FAST = ["--stage1-steps", "2", "--no-progress"]
SPECS = {
    "harbour.json": {
        "prompt": "a boat on the sea under the sky",
        "size": [32, 32],
        "background": "sky",
        "regions": [{"class": "sea", "shape": "rectangle", "box": [0, 16, 32, 32]}],
    },
    "bay.json": {
        "prompt": "a red boat on the sea",
        "size": [32, 32],
        "background": "sea",
        "regions": [{"class": "boat", "shape": "ellipse", "box": [8, 12, 24, 24], "text": "a red boat"}],
    },
}


@pytest.fixture(scope="module")
def eval_models(tiny, tmp_path_factory):
    """The tiny set with a Mask2Former evaluator (another architecture than the guiding SegFormer), and 4 steps."""
    root = tiny["model_set"].parent
    model_set = json.loads(tiny["model_set"].read_text())
    model_set.update(evaluator="./mask2former", stage2={"steps": 4, "strength": 0.5}, stage1={"num_crops": 2})
    path = root / "tiny_eval.json"
    path.write_text(json.dumps(model_set))
    return path


@pytest.fixture
def case_folder(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    for name, spec in SPECS.items():
        (folder / name).write_text(json.dumps(spec))
    return folder


def _eval(models, cases, out, *args):
    return main(["eval", "--models", str(models), "--cases", f"folder:{cases}", "--out", str(out), *FAST, *args])


def test_eval_runs_every_method_and_writes_the_report(eval_models, case_folder, tmp_path):
    out = tmp_path / "report"
    assert _eval(eval_models, case_folder, out, "--strengths", "0.25,0.5") == 0
    rows = read_results(out)
    methods = {(r["case"], r["method"]) for r in rows}
    for case in ("bay", "harbour"):
        for method in ("tcig", "stage1", "diffusion", "sdedit-layout", "regional", "guided"):
            assert (case, method) in methods
    tcig = [r for r in rows if r["method"] == "tcig"]
    assert sorted({r["variant"].split("strength=")[1] for r in tcig}) == ["0.25", "0.5"]
    for row in rows:
        assert 0 <= row["miou"] <= 1 and 0 <= row["pixel_accuracy"] <= 1 and row["clip_score"] >= 0
        assert row["seconds"]["total"] > 0 and row["seconds_per_image"] > 0
        for image in row["images"]:
            assert (out / image).is_file()
    tcig_row = tcig[0]
    assert set(tcig_row["seconds"]) == {"stage1", "stage2", "total"} and set(tcig_row["peak_mb"]) == {
        "stage1",
        "stage2",
    }
    summary = (out / "summary.md").read_text()
    assert "segformer" in summary and "evaluator (never guided)" in summary and "mask2former" in summary
    for method in ("tcig", "stage1", "diffusion", "sdedit-layout", "regional", "guided"):
        assert f"| {method} |" in summary
    assert (out / "miou_vs_strength.png").is_file() and (out / "quality_vs_control.png").is_file()
    assert (out / "grids" / "bay.png").is_file() and (out / "grids" / "harbour.png").is_file()
    data = json.loads((out / "summary.json").read_text())
    entry = next(e for e in data["summary"] if e["method"] == "diffusion")
    assert entry["cases"] == 2 and math.isclose(
        entry["miou"]["mean"], sum(r["miou"] for r in rows if r["method"] == "diffusion") / 2
    )


def test_eval_resumes_past_a_torn_line(eval_models, case_folder, tmp_path, caplog):
    out = tmp_path / "report"
    assert _eval(eval_models, case_folder, out, "--methods", "diffusion") == 0
    first = read_results(out)
    assert len(first) == 2
    with open(out / RESULTS, "a") as f:
        f.write('{"case": "bay", "method": "sdedit-lay')  # a run killed mid-line
    assert _eval(eval_models, case_folder, out, "--methods", "diffusion,sdedit-layout") == 0
    rows = read_results(out)
    assert [r["method"] for r in rows[:2]] == ["diffusion", "diffusion"] and rows[:2] == first
    assert sorted(r["method"] for r in rows[2:]) == ["sdedit-layout", "sdedit-layout"]
    lines = (out / RESULTS).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)  # JSON lines again, for jq and pandas
    aside = (out / f"{RESULTS}.corrupt").read_text()
    assert aside == '{"case": "bay", "method": "sdedit-lay\n'  # nothing lost: moved aside
    assert f"1 corrupt line(s) (line 3) moved to {out / RESULTS}.corrupt" in caplog.text


def test_eval_refuses_a_guiding_evaluator_even_copied(eval_models, tiny, case_folder, tmp_path, capsys):
    assert _eval(eval_models, case_folder, tmp_path / "a", "--evaluator", str(tiny["segformer"])) == 2
    assert "is also a guiding segmenter" in capsys.readouterr().err
    copy = tmp_path / "renamed"
    shutil.copytree(tiny["segformer"], copy)
    assert _eval(eval_models, case_folder, tmp_path / "b", "--evaluator", str(copy)) == 2
    assert "is also a guiding segmenter" in capsys.readouterr().err
    assert not (tmp_path / "a" / RESULTS).exists()


def test_eval_on_real_coco_stuff_and_ade20k_maps(tiny, tmp_path):
    """The same command over real label maps with their captions and photos (tiny models know their classes)."""
    from tiny_models import save_mask2former, save_segformer

    labels = list(load_vocabulary("coco-stuff").labels) + list(load_vocabulary("ade20k").labels)
    labels = list(dict.fromkeys(labels))
    root = tmp_path / "models"
    model_set = {
        "clip": str(tiny["clip"]),
        "segmenters": [str(save_segformer(root / "guide", labels=labels))],
        "evaluator": str(save_mask2former(root / "evaluator", labels=labels)),
        "refiner": str(tiny["pixel"]),
        "resolution": 64,
        "stage2": {"steps": 4, "strength": 0.5},
        "stage1": {"num_crops": 2},
    }
    (tmp_path / "set.json").write_text(json.dumps(model_set))
    out = tmp_path / "report"
    args = ["eval", "--models", str(tmp_path / "set.json"), "--cases", f"real:{REAL_CASES}", "--out", str(out)]
    assert main([*args, *FAST, "--methods", "tcig,diffusion,regional,guided"]) == 0
    rows = read_results(out)
    manifest = json.loads((REAL_CASES / "manifest.json").read_text())
    captions = {Path(e["label_map"]).stem: e["captions"][0] for e in manifest if e.get("captions")}
    for name, caption in captions.items():
        assert {r["method"] for r in rows if r["case"] == name} == {
            "reference",
            "tcig",
            "diffusion",
            "regional",
            "guided",
        }
        assert all(r["prompt"] == caption for r in rows if r["case"] == name)
    assert any(r["source"] == "ade20k-150" or "ade" in r["source"] for r in rows)
    assert "| reference |" in (out / "summary.md").read_text()


def test_bad_case_sources_are_one_line_errors(eval_models, tmp_path, capsys):
    for spec in ("scenes:zero", "nowhere:x", f"folder:{tmp_path / 'missing'}"):
        code = main(["eval", "--models", str(eval_models), "--cases", spec, "--out", str(tmp_path / "o")])
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("tcig: error:") and "\n" not in err


def _case(classes, label_map):
    return Case("c", Layout(torch.tensor(label_map), classes), "p")


def test_coco_protocol_keeps_two_to_four_voc_things_each_large_enough():
    half = [[0] * 10 + [1] * 10] * 20
    kept = coco_protocol([_case(["dog", "cat"], half)])
    assert kept[0].layout.classes == ["dog", "cat"]
    with_stuff = [[0] * 10 + [1] * 5 + [2] * 5] * 20
    kept = coco_protocol([_case(["dog", "cat", "grass"], with_stuff)])
    assert kept[0].layout.classes == ["dog", "cat"] and (kept[0].layout.label_map == -1).sum() == 100
    with pytest.raises(Exception, match="COCO protocol"):
        coco_protocol([_case(["dog", "person"], half)])  # a person
    with pytest.raises(Exception, match="COCO protocol"):
        coco_protocol([_case(["dog", "sky-other"], half)])  # one VOC class only
    tiny_cat = [[0] * 19 + [1]] * 20  # the cat covers exactly 1/20 = 5 %: kept
    assert len(coco_protocol([_case(["dog", "cat"], tiny_cat)])) == 1
    smaller = [[0] * 20] * 19 + [[0] * 19 + [1]]
    with pytest.raises(Exception, match="COCO protocol"):
        coco_protocol([_case(["dog", "cat"], smaller)])


def test_confidence_interval_is_students_t():
    s = stat([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == 2.5 and math.isclose(s.std, 1.2909944, rel_tol=1e-6)
    assert math.isclose(s.ci95, 3.182446 * 1.2909944 / 2, rel_tol=1e-5)  # t(0.975, 3) = 3.182446
    assert stat([]) is None and stat([5.0]).ci95 == 0.0


def test_scene_cases_carry_the_rendered_image_as_reference():
    cases = load_cases("scenes:2:9000000")
    assert [c.name for c in cases] == ["scene_9000000", "scene_9000001"]
    assert cases[0].reference.shape == (3, 64, 64) and cases[0].prompt == cases[0].layout.prompt


def test_eval_sweeps_guides_and_losses(eval_models, tiny, case_folder, tmp_path):
    out = tmp_path / "report"
    extra = ["--extra-segmenter", f"{tiny['clipseg']}:0.5", "--seg-losses", "mse,ce", "--methods", "stage1"]
    assert _eval(eval_models, case_folder, out, *extra) == 0
    variants = sorted({r["variant"] for r in read_results(out)})
    assert variants == [f"guides={g},steps=2,loss={loss}" for g in ("1seg", "2seg") for loss in ("ce", "mse")]
    two = next(r for r in read_results(out) if r["variant"].startswith("guides=2seg"))
    assert len(two["settings"]["guides"]) == 2 and two["settings"]["guides"][1].endswith("clipseg:0.5")


def test_eval_refuses_to_resume_with_other_settings(eval_models, case_folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert _eval(eval_models, case_folder, out, "--methods", "diffusion") == 0
    assert _eval(eval_models, case_folder, out, "--methods", "diffusion", "--seed", "3") == 2
    assert "was made with other seed" in capsys.readouterr().err
    assert _eval(eval_models, case_folder, out, "--methods", "diffusion", "--settings", "stage2_steps=5") == 2
    assert "other settings" in capsys.readouterr().err
    assert len(read_results(out)) == 2


def test_segmenter_features_are_unit_norm_pooled_backbone_states(tiny):
    from tcig.evaluation.report import SegmenterFeatures
    from tcig.models.segmenters import load_segmenter

    for name in ("segformer", "mask2former"):
        features = SegmenterFeatures(load_segmenter(str(tiny[name]))).encode_image(torch.rand(3, 3, 64, 64))
        assert features.shape[0] == 3 and torch.allclose(features.norm(dim=-1), torch.ones(3))


# --- results that cannot mix, and fair sampling ---------------------------------------------------------------------


def test_model_identity_is_the_weights_not_the_folder(tiny, tmp_path):
    from tcig.evaluation.runner import fingerprint

    copy = tmp_path / "copy"
    shutil.copytree(tiny["segformer"], copy)
    assert fingerprint(str(copy)) == fingerprint(str(tiny["segformer"]))
    weights = next(copy.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the same size, other weights (a retrained model)
    weights.write_bytes(bytes(data))
    assert fingerprint(str(copy)) != fingerprint(str(tiny["segformer"]))
    assert fingerprint("some-org/not-cached-here") == "id:some-org/not-cached-here"


def test_plan_records_the_models_and_refuses_other_ones(eval_models, tiny, case_folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert _eval(eval_models, case_folder, out, "--methods", "diffusion") == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["models"]["evaluator"].startswith("weights:") and plan["models"]["guides"]["1seg"][0]
    retrained = tmp_path / "evaluator"
    shutil.copytree(tiny["mask2former"], retrained)
    weights = next(retrained.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert _eval(eval_models, case_folder, out, "--methods", "diffusion", "--evaluator", str(retrained)) == 2
    assert "made with other models" in capsys.readouterr().err


def test_an_open_vocabulary_evaluator_is_refused(eval_models, tiny, case_folder, tmp_path, capsys):
    assert _eval(eval_models, case_folder, tmp_path / "r", "--evaluator", str(tiny["clipseg"])) == 2
    assert "open-vocabulary" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_examples_folder_is_a_case_source():
    cases = load_cases(f"folder:{Path(__file__).parents[1] / 'examples'}")
    names = {case.name for case in cases}
    assert {"beach", "street", "coco_000000335529", "masks_lake", "scene_beach"} <= names


def test_two_cases_with_one_name_are_refused(tmp_path):
    from tcig.errors import ConfigError

    (tmp_path / "a.json").write_text(json.dumps(SPECS["bay.json"]))
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "a.png")
    (tmp_path / "a.legend.json").write_text(json.dumps({"legend": {"#0000ff": "sea"}, "prompt": "sea"}))
    with pytest.raises(ConfigError, match="two cases are named 'a'"):
        load_cases(f"folder:{tmp_path}")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--limit", "0"], "--limit"),
        (["--sdedit-strength", "2"], "--sdedit-strength"),
        (["--seed", "-3"], "--seed"),
        (["--num-images", "1000"], "--num-images"),
        (["--size", "5"], "--size"),
        (["--settings", "stepz=3"], "unknown setting 'stepz'"),
        (["--variant", "a:strength=7"], '"strength"'),
    ],
)
def test_bad_eval_options_are_one_line_errors(eval_models, case_folder, tmp_path, capsys, args, needle):
    out = tmp_path / "report"
    assert _eval(eval_models, case_folder, out, *args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()  # nothing was written, and the folder this run made is gone


def test_regional_prompts_each_region_in_the_sets_own_words(tiny, monkeypatch):
    """A region without a text is prompted with the set's exemplar prompt of its class, not the bare class name."""
    from tcig.evaluation.methods import Job, MethodSettings, run_regional
    from tcig.pipeline import TCIGPipeline
    from tcig.settings import Stage1Settings, Stage2Settings

    spec = json.loads(tiny["model_set"].read_text())
    spec["exemplar_prompt"] = "a picture of a {name}"
    path = tiny["model_set"].parent / "regional_words.json"
    path.write_text(json.dumps(spec))
    pipe = TCIGPipeline.from_model_set(str(path))
    den = pipe.refiner.denoiser()
    seen, original = [], den.conditioning

    def recording(texts, *args, **kwargs):
        seen.append(texts[0])
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(den, "conditioning", recording)
    label_map = torch.zeros(16, 16, dtype=torch.long)
    label_map[8:] = 1
    label_map[10:13, 4:9] = 2
    layout = Layout(label_map, ["sky", "sea", "boat"], region_texts={2: "a red boat"})
    settings = MethodSettings(Stage1Settings(), Stage2Settings(steps=2))
    result = run_regional(Job(pipe, Case("c", layout, "a boat at sea"), (16, 16), settings))
    assert seen == ["a picture of a sky", "a picture of a sea", "a red boat", "a boat at sea"]
    assert result.images.shape == (1, 3, 16, 16)
