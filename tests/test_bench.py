"""tcig bench: architectures from JSON configs with random weights, the three tables, the JSON file, bad input."""

import json

import pytest

from tcig.bench import models
from tcig.cli.main import main

TINY_TEXT = {
    "vocab_size": 600,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "projection_dim": 16,
}
TINY_SD = {
    "resolution": 64,
    "unet": {
        "sample_size": 8,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "cross_attention_dim": 32,
    },
    "vae": {
        "block_out_channels": [32, 32, 32, 32],
        "layers_per_block": 1,
        "latent_channels": 4,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
    },
    "text_encoder": TINY_TEXT,
    "scheduler": {
        "_class_name": "DDIMScheduler",
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
    },
}
TINY_CLIP = {
    "model_type": "clip",
    "text_config": TINY_TEXT,
    "projection_dim": 16,
    "vision_config": {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
    },
}
TINY_SEG = {
    "model_type": "segformer",
    "depths": [1, 1, 1, 1],
    "hidden_sizes": [8, 16, 16, 16],
    "num_attention_heads": [1, 1, 1, 1],
    "decoder_hidden_size": 16,
    "labels": "ade20k",
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_configs")
    paths = {}
    for name, config in {"sd": TINY_SD, "clip": TINY_CLIP, "seg": TINY_SEG}.items():
        paths[name] = folder / f"tiny-{name}.json"
        paths[name].write_text(json.dumps(config))
    # the settings timed: stage 1 from noise (the real sets' colour start would first draw 11 start images)
    paths["defaults"] = folder / "defaults.json"
    paths["defaults"].write_text(json.dumps({"clip": "-", "segmenters": ["-"], "stage2": {"strength": 0.6}}))
    return paths


def _bench(configs, out, *extra):
    return main(
        [
            "bench",
            "--arch",
            str(configs["sd"]),
            "--clip",
            str(configs["clip"]),
            "--segmenters",
            str(configs["seg"]),
            "--stage1-steps",
            "2",
            "--stage2-steps",
            "4",
            "--reference-steps",
            "3",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--defaults-from",
            str(configs["defaults"]),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_builtin_configs_are_the_published_sizes():
    """Parameter counts of the shipped configs match the published models (within rounding)."""
    import torch

    def millions(module):
        return sum(p.numel() for p in module.parameters()) / 1e6

    with torch.device("meta"):
        seg = models.random_segmenter("segformer-b0", torch.device("meta"))
        clip = models.random_clip("clip-vit-b32", torch.device("meta"))
    assert 3.5 < millions(seg.model) < 4.0  # SegFormer-B0 with its ADE20K head: 3.8 M
    assert 150 < millions(clip.model) < 153  # CLIP ViT-B/32: 151 M
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(models.read_config("sd15")["unet"])
    assert 855 < millions(unet) < 865  # SD1.5 UNet: 860 M


def test_bench_writes_all_three_tables_with_ratios(configs, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = _bench(
        configs,
        out,
        "--tables",
        "main,levers,scaling",
        "--resolutions",
        "64,96",
        "--segmenter-counts",
        "1,2",
        "--spare-segmenters",
        str(configs["seg"]),
        "--batches",
        "1,2",
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["environment"]["device"] == "cpu" and "torch" in result["environment"]["versions"]
    main_rows = result["main"]
    assert [r["name"] for r in main_rows][:2] == [
        "ControlNet text-to-image, 3 steps",
        "img2img at strength 0.6, 3 steps",
    ]
    assert main_rows[0]["ratio"] == 1.0
    tcig = main_rows[-1]
    assert tcig["seconds"] > 0 and tcig["ratio"] == pytest.approx(tcig["seconds"] / main_rows[0]["seconds"])
    assert tcig["stage1_steps"] == 2 and tcig["stage1_s"] > 0 and tcig["stage2_s"] > 0
    levers = {r["lever"]: r for r in result["levers"]}
    assert "stage 1 at 32 px instead of 64" in levers and "8 CLIP crops in one forward" in " ".join(levers)
    assert all(r["speedup"] > 0 for r in levers.values())
    assert levers["4 images per call (per image)"]["after"]["images"] == 4
    scaling = {(r["axis"], r["value"]): r for r in result["scaling"]}
    assert set(scaling) == {
        ("resolution", 64),
        ("resolution", 96),
        ("segmenters", 1),
        ("segmenters", 2),
        ("batch", 1),
        ("batch", 2),
    }
    assert scaling[("segmenters", 2)]["names"][1].endswith("tiny-seg.json")
    assert scaling[("batch", 2)]["seconds_per_image"] == pytest.approx(scaling[("batch", 2)]["seconds"] / 2)
    printed = capsys.readouterr().out
    assert "| TCIG, default settings |" in printed and "| lever |" in printed and "| resolution | 96 |" in printed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--arch", "sd99"], "unknown architecture 'sd99'"),
        (["--tables", "main,speed"], "unknown table(s) speed"),
        (["--repeats", "0"], "--repeats must be >= 1"),
        (["--levers", "batch,warp"], "unknown lever(s) warp"),
    ],
)
def test_bench_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    code = main(["bench", "--device", "cpu", "--out", str(tmp_path / "b.json"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b.json").exists()


def test_bench_sdxl_layout_with_two_text_encoders(configs, tmp_path):
    """An SDXL-layout architecture (two text encoders, size conditioning) times through the XL pipelines."""
    sdxl = {
        **TINY_SD,
        "unet": {
            **TINY_SD["unet"],
            "cross_attention_dim": 64,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 16,
        },
        "text_encoder_2": TINY_TEXT,
    }
    path = tmp_path / "tiny-sdxl.json"
    path.write_text(json.dumps(sdxl))
    out = tmp_path / "bench.json"
    assert _bench({**configs, "sd": path}, out, "--tables", "main") == 0
    rows = json.loads(out.read_text())["main"]
    assert len(rows) == 3 and all(r["seconds"] > 0 for r in rows)


def test_flow_configs_are_the_published_sizes():
    """SD3.5 Medium and FLUX.1 at real size, built on the meta device (no memory): the published parameter counts."""
    import torch

    def billions(module):
        return sum(p.numel() for p in module.parameters()) / 1e9

    sizes = {}
    for name in ("sd35", "flux-dev", "flux-schnell"):
        parts = models.random_diffusion(name, torch.device("meta"), torch.bfloat16)["components"]
        sizes[name] = {k: billions(v) for k, v in parts.items() if isinstance(v, torch.nn.Module)}
    assert 11.8 < sizes["flux-dev"]["transformer"] < 12.0 and 11.8 < sizes["flux-schnell"]["transformer"] < 12.0
    assert 4.7 < sizes["flux-dev"]["text_encoder_2"] < 4.8  # T5-XXL's encoder
    assert 2.2 < sizes["sd35"]["transformer"] < 2.6  # MMDiT-X (2.24 B here; Stability quotes 2.5 B)
    assert 0.69 < sizes["sd35"]["text_encoder_2"] < 0.7  # OpenCLIP ViT-bigG/14's text tower


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_bench_flow_transformers_with_the_sd_controlnet_reference(configs, tmp_path, family):
    """A flow-matching transformer times through its own img2img pipeline; the ControlNet reference is a UNet's."""
    tiny_t5 = {"vocab_size": 600, "d_model": 32, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2,
               "relative_attention_num_buckets": 8, "relative_attention_max_distance": 32,
               "feed_forward_proj": "gated-gelu", "is_encoder_decoder": False}  # fmt: skip
    vae = {**TINY_SD["vae"], "latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False,
           "shift_factor": 0.1, "scaling_factor": 0.4}  # fmt: skip
    if family == "sd3":
        transformer = {"sample_size": 8, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 1,
                       "attention_head_dim": 8, "num_attention_heads": 4, "joint_attention_dim": 32,
                       "caption_projection_dim": 32, "pooled_projection_dim": 32}  # fmt: skip
        text = {"text_encoder": {**TINY_TEXT, "projection_dim": 16}, "text_encoder_2": TINY_TEXT,
                "text_encoder_3": tiny_t5}  # fmt: skip
        scheduler = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0}
    else:
        transformer = {"patch_size": 1, "in_channels": 64, "num_layers": 1, "num_single_layers": 1,
                       "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
                       "pooled_projection_dim": 32, "axes_dims_rope": [4, 4, 8], "guidance_embeds": True}  # fmt: skip
        text = {"text_encoder": {**TINY_TEXT}, "text_encoder_2": tiny_t5}
        scheduler = {"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": True}
    config = {"family": family, "resolution": 64, "transformer": transformer, "vae": vae, **text,
              "scheduler": scheduler, "controlnet_from": str(configs["sd"])}  # fmt: skip
    path = tmp_path / f"tiny-{family}.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "bench.json"
    assert _bench({**configs, "sd": path}, out, "--tables", "main") == 0
    rows = json.loads(out.read_text())["main"]
    assert len(rows) == 3 and all(r["seconds"] > 0 for r in rows)
    assert any("SD1.5 + ControlNet" in r["name"] for r in rows)


def test_an_architecture_whose_weights_cannot_fit_is_refused_before_it_is_built(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(models, "free_memory", lambda device: 2**30)
    code = main(["bench", "--arch", "sd15", "--device", "cpu", "--out", str(tmp_path / "b.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "need 4.0 GiB in float32" in err and "1.0 GiB free" in err and "\n" not in err


def test_bench_profile_of_a_step_and_the_start_image_levers(configs, tmp_path, capsys):
    defaults = tmp_path / "colours.json"
    stage1 = {"init": "colours", "init_steps": 2, "guides_per_step": 1, "seg_views": 2, "seg_shift": 0.1}
    defaults.write_text(json.dumps({"clip": "-", "segmenters": ["-"], "stage1": stage1, "stage2": {"strength": 0.6}}))
    out = tmp_path / "bench.json"
    two_guides = f"{configs['seg']},{configs['seg']}"
    levers = "guides-per-step,init-steps,start-cache"
    code = _bench({**configs, "defaults": defaults}, out, "--segmenters", two_guides, "--tables", "profile,levers",
                  "--levers", levers)  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    parts = {r["part"].split(" (")[0].split(",")[0]: r for r in result["profile"]}
    assert {"CLIP", "segmenter views", "the rest: optimizer", "whole step"} <= set(parts)
    assert sum(r["part"].startswith("guide ") for r in result["profile"]) == 2
    whole = [r for r in result["profile"] if r["part"].startswith("whole step")]
    assert whole[0]["share"] == 1.0 and "1 of 2 guides scored" in whole[1]["part"]
    assert all(r["ms_per_step"] >= 0 for r in result["profile"])
    rows = {r["key"]: r for r in result["levers"]}
    assert set(rows) == set(levers.split(","))
    assert rows["init-steps"]["before"]["stage1_steps"] == 2 and all(r["speedup"] > 0 for r in rows.values())
    assert "| part of a stage-1 step" in capsys.readouterr().out
