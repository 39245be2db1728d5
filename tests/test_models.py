"""Loading the real model classes from save_pretrained folders, and the differentiable wrappers."""

import json
import logging

import pytest
import torch

from tcig.errors import ModelLoadError
from tcig.models.clip_scorer import CLIPScorer
from tcig.models.loading import check_model_ref
from tcig.models.segmenters import CLIPSegSegmenter, MaskClassificationSegmenter, SemanticSegmenter, load_segmenter


def test_clip_encodes_and_passes_gradients(tiny):
    clip = CLIPScorer.from_pretrained(str(tiny["clip"]))
    text = clip.encode_text(["a boat on the sea", "a red house"])
    assert text.shape == (2, 16)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    images = torch.rand(2, 3, 48, 40, requires_grad=True)
    embeds = clip.encode_image(images)
    embeds.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert clip.score(images.detach(), ["a", "b"]).shape == (2,)


def test_clip_warns_and_truncates_long_prompt(tiny, caplog):
    clip = CLIPScorer.from_pretrained(str(tiny["clip"]))
    long_prompt = "a boat " * 60
    with caplog.at_level(logging.WARNING, logger="tcig"):
        ids = clip.tokenize([long_prompt])["input_ids"]
    assert ids.shape[1] == 77
    assert any("CLIP reads 77" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("key", "wrapper", "k"),
    [
        ("segformer", SemanticSegmenter, 8),
        ("mask2former", MaskClassificationSegmenter, 5),
        ("clipseg", CLIPSegSegmenter, 3),
    ],
)
def test_segmenters_give_differentiable_class_maps(tiny, key, wrapper, k):
    seg = load_segmenter(str(tiny[key]))
    assert isinstance(seg, wrapper)
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    logits = seg(images, ["sky", "sea", "boat"] if seg.labels is None else None)
    assert logits.shape[:2] == (2, k) and logits.ndim == 4
    logits.softmax(1)[:, 0].mean().backward()
    assert images.grad.abs().sum() > 0


def test_segformer_labels_come_from_its_config(tiny):
    seg = load_segmenter(str(tiny["segformer"]))
    assert seg.labels == ["wall", "building", "sky", "floor", "tree", "sea", "boat", "sand"]
    assert seg.norm.size == (64, 64)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_segmenter(str(tmp_path / "nope"))


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no config.json"):
        check_model_ref(str(tmp_path), "segmenter")


def test_pickle_only_folder_is_refused_unless_allowed(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        check_model_ref(str(tmp_path), "segmenter")
    assert check_model_ref(str(tmp_path), "segmenter", allow_pickle=True) == str(tmp_path)


def test_corrupt_weights_are_a_clear_error(tiny, tmp_path):
    folder = tmp_path / "seg"
    folder.mkdir()
    (folder / "config.json").write_text((tiny["segformer"] / "config.json").read_text())
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="could not load the segmenter"):
        load_segmenter(str(folder))


def test_corrupt_config_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_segmenter(str(tmp_path))


def test_config_json_reads_model_type(tiny):
    assert json.loads((tiny["clipseg"] / "config.json").read_text())["model_type"] == "clipseg"
