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
