"""The on-disk cache of start images: atomic entries, a size bound, bad entries and folders, and a second run of
tcig generate that draws nothing and gives the same image."""

import os
import time

import torch
from PIL import Image

from tcig.cli.main import main
from tcig.io.cache import TensorCache, cache_key


def test_entries_round_trip_and_leave_no_temporary_file(tmp_path):
    cache = TensorCache(tmp_path / "c")
    assert cache.get(cache_key("a")) is None
    images = torch.rand(2, 3, 8, 8)
    cache.put(cache_key("a"), {"images": images, "state": torch.arange(5, dtype=torch.uint8)})
    got = cache.get(cache_key("a"))
    assert torch.equal(got["images"], images) and got["state"].tolist() == [0, 1, 2, 3, 4]
    assert [p.name for p in (tmp_path / "c").iterdir()] == [f"{cache_key('a')}.safetensors"]
    assert cache_key("a", [1, 2]) != cache_key("a", [2, 1]) and cache_key({"x": 1, "y": 2}) == cache_key(
        {"y": 2, "x": 1}
    )


def test_the_least_recently_used_entries_go_when_the_folder_outgrows_its_bound(tmp_path):
    entry = {"images": torch.zeros(1000)}  # 4 kB each
    cache = TensorCache(tmp_path, max_bytes=13_000)
    for i, key in enumerate(["old", "used", "new"]):
        cache.put(key, entry)
        os.utime(tmp_path / f"{key}.safetensors", (time.time() - 100 + i, time.time() - 100 + i))
    cache.get("old")  # reading makes it recent
    cache.put("newest", entry)
    assert cache.get("used") is None
    assert all(cache.get(k) is not None for k in ("old", "new", "newest"))
    assert cache.size_bytes() <= 13_000


def test_an_unreadable_entry_is_dropped_and_an_unwritable_folder_is_skipped(tmp_path, caplog):
    cache = TensorCache(tmp_path)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    assert cache.get("bad") is None and not (tmp_path / "bad.safetensors").exists()
    blocked = tmp_path / "file"
    blocked.write_text("x")
    TensorCache(blocked / "sub").put("k", {"a": torch.zeros(1)})  # no exception: the run goes on
    assert "cannot write the cache" in caplog.text


def test_a_second_generate_draws_no_start_image_and_gives_the_same_image(tiny, spec, tmp_path, monkeypatch):
    from tcig.models.refiners import SamplingRefiner

    drawn = []
    original = SamplingRefiner.text_to_image

    def counting(self, prompts, *args, **kwargs):
        drawn.extend(prompts)
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(SamplingRefiner, "text_to_image", counting)
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("TCIG_CACHE_DIR", str(cache_dir))
    base = ["generate", "--models", str(tiny["model_set"]), "--layout", str(spec), "--steps", "2", "--num-crops", "2",
            "--stage2-steps", "4", "--init", "colours", "--init-steps", "3", "--no-progress"]  # fmt: skip
    pictures = {}
    for run in ("first", "second", "uncached"):
        drawn.clear()
        extra = ["--no-cache"] if run == "uncached" else []
        assert main([*base, "--out", str(tmp_path / run), *extra]) == 0
        pictures[run] = (list(drawn), Image.open(tmp_path / run / "scene_s0.png").tobytes())
        if run == "first":
            entries = len(list((cache_dir / "start-images").glob("*.safetensors")))
    classes = ["sky", "sea", "boat"]
    assert len(pictures["first"][0]) == 2 * len(classes) + 1 and entries == len(classes) + 1
    assert pictures["second"][0] == [] and pictures["uncached"][0] == pictures["first"][0]
    assert pictures["second"][1] == pictures["first"][1] == pictures["uncached"][1]


def test_the_fingerprint_tells_weights_and_memory_formats_apart(tiny):
    from tcig.models.refiners import load_refiner

    refiner = load_refiner(str(tiny["latent"]))
    same = load_refiner(str(tiny["latent"]))
    assert refiner.fingerprint() == same.fingerprint()
    for module in same.networks().values():
        module.to(memory_format=torch.channels_last)
    assert same.fingerprint() != refiner.fingerprint()
    with torch.no_grad():
        next(iter(refiner.networks()["unet"].parameters())).view(-1)[-1] += 1e-3
    refiner.to("cpu")  # a move forgets the kept digest
    assert refiner.fingerprint() != load_refiner(str(tiny["latent"])).fingerprint()
