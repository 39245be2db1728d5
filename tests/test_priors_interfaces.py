"""The stage-1 priors and guided refinement in every interface: tcig generate, tcig batch, tcig eval --variant."""

import json

import pytest

from tcig.cli.main import main
from tcig.errors import ConfigError
from tcig.evaluation.runner import read_results, split_overrides

PRIORS = ["--init", "colours", "--seg-views", "2", "--seg-shift", "0.1", "--seg-scale", "0.1", "--seg-blur", "1",
          "--tv-weight", "0.2", "--seg-guidance", "5", "--cycles", "1", "--cycle-steps", "2",
          "--cycle-strength", "0.5"]  # fmt: skip


def test_generate_takes_every_prior_and_records_it(tiny, spec, tmp_path):
    out = tmp_path / "out"
    args = ["generate", "--models", str(tiny["model_set"]), "--layout", str(spec), "--out", str(out), "--steps", "2",
            "--num-crops", "2", "--stage2-steps", "4", "--no-progress", *PRIORS]  # fmt: skip
    assert main(args) == 0
    meta = json.loads((out / "scene_s0.json").read_text())
    stage1, stage2 = meta["settings"]["stage1"], meta["settings"]["stage2"]
    assert stage1["init"] == "colours" and stage1["seg_views"] == 2 and stage1["tv_weight"] == 0.2
    assert stage1["seg_shift"] == 0.1 and stage1["seg_blur"] == 1.0 and stage2["seg_guidance"] == 5.0
    assert stage2["cycles"] == 1 and stage2["cycle_steps"] == 2
    assert "tv" in meta["history"][0] and meta["timings"]["init_s"] > 0


def test_generate_refuses_an_unknown_init(tiny, spec, tmp_path, capsys):
    args = ["generate", "--models", str(tiny["model_set"]), "--layout", str(spec), "--out", str(tmp_path / "o"),
            "--init", "paint"]  # fmt: skip
    with pytest.raises(SystemExit):
        main(args)
    assert "invalid choice: 'paint'" in capsys.readouterr().err


def test_batch_manifest_keys_are_the_setting_names(tiny, spec, tmp_path):
    manifest = tmp_path / "runs.jsonl"
    item = {"layout": "scene.json", "steps": 2, "num_crops": 2, "stage2_steps": 4, "init": "collage",
            "seg_views": 2, "tv_weight": 0.1, "seg_guidance": 3.0}  # fmt: skip
    manifest.write_text(json.dumps(item) + "\n")
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--out", str(out), "--models", str(tiny["model_set"]), "--no-progress"]
    assert main([*args, "--device", "cpu"]) == 0
    meta = json.loads((out / "scene_s0.json").read_text())
    assert meta["settings"]["stage1"]["init"] == "collage" and meta["settings"]["stage2"]["seg_guidance"] == 3.0


def test_eval_variants_run_side_by_side_on_the_same_cases(tiny, spec, tmp_path):
    model_set = json.loads(tiny["model_set"].read_text())
    model_set.update(evaluator="./mask2former", stage2={"steps": 4, "strength": 0.5}, stage1={"num_crops": 2})
    models = tiny["model_set"].parent / "tiny_variants.json"
    models.write_text(json.dumps(model_set))
    out = tmp_path / "report"
    priors = (
        "priors:init=collage,tv_weight=0.1,seg_guidance=2,stage2_steps=6,stage1_size=32,cycles=1,cycle_steps=1,"
        "cycle_strength=0.5"
    )
    args = ["eval", "--models", str(models), "--cases", f"folder:{spec.parent}", "--out", str(out),
            "--stage1-steps", "2", "--no-progress", "--methods", "tcig",
            "--variant", "plain:", "--variant", priors]  # fmt: skip
    assert main(args) == 0
    rows = {r["variant"].split(",")[0]: r for r in read_results(out)}
    assert set(rows) == {"plain", "priors"}
    assert rows["priors"]["settings"]["stage1"]["init"] == "collage"
    assert rows["priors"]["settings"]["stage2"]["steps"] == 6 and rows["plain"]["settings"]["stage2"]["steps"] == 4
    assert max(rows["priors"]["settings"]["stage1_size"]) == 32 and max(rows["plain"]["settings"]["stage1_size"]) == 64
    assert rows["priors"]["class_counts"] and rows["priors"]["class_colours"]
    summary = (out / "summary.md").read_text()
    assert "dataset mIoU" in summary and "Pooled IoU per class" in summary


def test_variant_overrides_are_routed_and_checked():
    given = split_overrides(
        {"tv_weight": 0.1, "stage2_steps": 9, "strength": 0.3, "weights": "1/0", "stage1_size": 32}
    )
    assert given.stage1 == {"tv_weight": 0.1} and given.stage2 == {"steps": 9, "strength": 0.3}
    assert given.weights == [1.0, 0.0] and given.stage1_size == 32
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        split_overrides({"colour": 1})
    with pytest.raises(ConfigError, match="cannot change height"):
        split_overrides({"height": 32})


def test_pooled_figures_pool_intersections_and_unions_over_cases():
    from tcig.evaluation.report import colour_distances, pooled_scores

    rows = [
        {"class_counts": {"sea": [10, 10, 0.5], "boat": [0, 10, 0.005]}, "class_colours": {"sea": [0, 0, 200]}},
        {"class_counts": {"sea": [90, 100, 0.9]}, "class_colours": {"sea": [0, 0, 100]}},
    ]
    pooled = pooled_scores(rows)
    assert pooled["pooled_class_iou"] == {"boat": 0.0, "sea": 100 / 110}
    assert pooled["dataset_miou"] == pytest.approx(100 / 110 / 2)  # a per-case mean would give (0.5 + 0.9) / 2
    assert pooled["size_iou"] == {"<1%": 0.0, "1-5%": None, ">5%": 100 / 110}
    assert pooled["class_colours"]["sea"]["mean"] == [0, 0, 150]
    reference = {"class_colours": {"sea": {"mean": [0, 0, 140], "std": 20.0}}}
    distance = colour_distances({"pooled": pooled}, reference)
    assert distance["mean"] == pytest.approx(10.0) and distance["share_within_spread"] == 1.0
