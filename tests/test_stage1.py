"""Stage 1: the losses, the parameterizations, and the optimization loop."""

import torch

from tcig.layout import IGNORE
from tcig.models.clip_scorer import CLIPScorer
from tcig.models.segmenters import load_segmenter
from tcig.settings import Stage1Settings
from tcig.stage1.losses import segmentation_loss, spherical_dist_loss
from tcig.stage1.optimize import SYNC_EVERY, CropDraws, EarlyStop, SegTerm, crop_views, run_stage1
from tcig.stage1.parameterization import PixelPyramid, VAELatent


def _target(size=32):
    target = torch.full((1, size, size), 2, dtype=torch.long)  # sky
    target[:, size // 2 :] = 5  # sea
    target[:, size // 2 + 2 : size - 6, size // 4 : 3 * size // 4] = 6  # boat
    return target


def test_mse_loss_is_zero_for_a_perfect_prediction_and_ignores_dont_care():
    target = torch.tensor([[[0, 1], [2, IGNORE]]])
    perfect = torch.nn.functional.one_hot(target.clamp(min=0), 3).permute(0, 3, 1, 2).float() * 50
    assert segmentation_loss(perfect, target, "mse") < 1e-6
    wrong = perfect.roll(1, dims=1)
    assert segmentation_loss(wrong, target, "mse") > 1.9  # two wrong classes squared: ~2 per pixel
    perfect[:, :, 1, 1] = torch.tensor([50.0, -50, -50])  # change only the don't-care pixel
    assert segmentation_loss(perfect, target, "mse") < 1e-6
    assert segmentation_loss(perfect, target, "ce") < 1e-6


def test_segmentation_loss_upsamples_logits():
    logits = torch.randn(2, 4, 8, 8)
    target = torch.randint(0, 4, (2, 32, 32))
    assert torch.isfinite(segmentation_loss(logits, target, "mse"))


def test_spherical_distance_is_zero_for_equal_embeddings():
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    assert spherical_dist_loss(x, x) < 1e-5
    assert spherical_dist_loss(x, -x) > 4.9  # antipodal: 2 * (pi/2)^2


def test_crops_are_batched_and_seeded():
    images = torch.rand(2, 3, 40, 50)

    def crops(seed):
        draws = CropDraws.sample(8, (16, 16), 0.02, torch.Generator().manual_seed(seed), "cpu")
        return crop_views(images, 4, (16, 16), 0.5, draws)

    a, b, c = crops(1), crops(1), crops(2)
    assert a.shape == (8, 3, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_geometry_full_flipped_and_corner():
    images = torch.rand(1, 3, 16, 16)

    def crop(side, x, y, flip, crop_min=0.5, size=16):
        draws = CropDraws(torch.tensor([[side, x, y, flip]]), None)
        return crop_views(images, 1, (size, size), crop_min, draws)

    assert torch.allclose(crop(1.0, 0.5, 0.5, 0.9), images, atol=1e-5)
    assert torch.allclose(crop(1.0, 0.5, 0.5, 0.1), images.flip(-1), atol=1e-5)
    for corner, (x, y) in [((slice(0, 8), slice(0, 8)), (0.0, 0.0)), ((slice(8, 16), slice(8, 16)), (1.0, 1.0))]:
        # the smallest crop (half the side) at a corner, upsampled: bilinear like interpolate away from its border
        expected = torch.nn.functional.interpolate(images[..., corner[0], corner[1]], size=(16, 16), mode="bilinear")
        assert torch.allclose(crop(0.0, x, y, 0.9)[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-5)
    small = crop(1.0, 0.5, 0.5, 0.9, size=8)  # a large image is shrunk with antialiasing first
    assert torch.allclose(small.mean(), images.mean(), atol=0.02)


def test_stage1_lowers_the_segmentation_loss(tiny):
    seg = load_segmenter(str(tiny["segformer"]))
    target = _target()
    param = PixelPyramid(1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = (torch.nn.functional.interpolate(seg(param()), size=(32, 32)).argmax(1) == target).float().mean()
    images, history = run_stage1(
        param, settings=Stage1Settings(steps=30, lr=0.05), seg_terms=[SegTerm(seg, 1.0, target)], progress=False
    )
    with torch.no_grad():
        after = (torch.nn.functional.interpolate(seg(images), size=(32, 32)).argmax(1) == target).float().mean()
    assert history[-1]["seg"] < 0.5 * history[0]["seg"]
    assert after > before + 0.2
    assert images.shape == (1, 3, 32, 32) and 0 <= images.min() and images.max() <= 1


def _run(tiny, seed, callback=None, compile_step=False):
    seg = load_segmenter(str(tiny["segformer"]))
    clip = CLIPScorer.from_pretrained(str(tiny["clip"]))
    gen = torch.Generator().manual_seed(seed)
    param = PixelPyramid(1, 32, 32, generator=gen)
    return run_stage1(
        param,
        settings=Stage1Settings(steps=4, num_crops=3),
        seg_terms=[SegTerm(seg, 1.0, _target())],
        clip=clip,
        text_embeds=clip.encode_text(["a boat on the sea"]).detach(),
        generator=gen,
        progress=False,
        callback=callback,
        compile_step=compile_step,
    )


def test_stage1_is_deterministic_for_a_generator_and_calls_back(tiny):
    seen = []
    a, hist_a = _run(tiny, 0, callback=seen.append)
    b, hist_b = _run(tiny, 0)
    c, _ = _run(tiny, 1)
    assert torch.equal(a, b) and hist_a == hist_b
    assert not torch.equal(a, c)
    assert [s["step"] for s in seen] == [0, 1, 2, 3]
    assert {"loss", "clip", "seg", "images"} <= set(seen[0])


def test_compiled_stage1_matches_eager(tiny):
    """torch.compile of the loss (fixed shapes: the crops' randomness is drawn outside) gives the eager losses."""
    eager, hist_eager = _run(tiny, 0)
    compiled, hist_compiled = _run(tiny, 0, compile_step=True)
    for a, b in zip(hist_eager, hist_compiled, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-3 * max(1.0, abs(a["loss"]))
    assert torch.allclose(eager, compiled, atol=1e-3)


def test_latent_parameterization_decodes_through_the_vae(tiny):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(tiny["latent"]), subfolder="vae")
    param = VAELatent(vae, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    assert param.latents.shape == (2, 4, 16, 16)
    images = param()
    assert images.shape == (2, 3, 32, 32)
    images.mean().backward()
    assert param.latents.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in vae.parameters())


def test_early_stop_waits_for_a_plateau_of_the_smoothed_loss():
    falling = EarlyStop(patience=5, min_improvement=0.01)
    assert not any(falling.should_stop(10 * 0.9**i) for i in range(200))
    flat = EarlyStop(patience=5, min_improvement=0.01)
    stops = [flat.should_stop(1.0) for _ in range(10)]
    assert stops.index(True) == 5  # the first value sets the best; five steps without improvement stop
    assert not any(EarlyStop(patience=0, min_improvement=0.01).should_stop(1.0) for _ in range(50))


def test_stage1_stops_early_when_the_loss_stops_improving(tiny):
    seg = load_segmenter(str(tiny["segformer"]))
    settings = Stage1Settings(steps=200, lr=1e-9, patience=4)  # a learning rate too small to change the loss
    param = PixelPyramid(1, 32, 32, generator=torch.Generator().manual_seed(0))
    terms = [SegTerm(seg, 1.0, _target())]
    seen = []
    _, history = run_stage1(param, settings=settings, seg_terms=terms, callback=seen.append, progress=False)
    assert len(history) == len(seen) == 5  # a callback reads every step back: the check runs at each step
    _, history = run_stage1(param, settings=settings, seg_terms=terms, progress=False)
    assert len(history) == SYNC_EVERY  # otherwise losses are read (and checked) every SYNC_EVERY steps
    settings.patience = 0
    _, history = run_stage1(param, settings=settings, seg_terms=[SegTerm(seg, 1.0, _target())], progress=False)
    assert len(history) == 200


class _CountingSegmenter(torch.nn.Module):
    """A guide that counts its calls and predicts from pixel colours (channel k scores label k)."""

    labels = None
    device = torch.device("cpu")

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images, queries=None):
        self.calls += 1
        return torch.cat([images, 1 - images.mean(1, keepdim=True)], dim=1) * 10


def test_guides_per_step_scores_a_random_subset_and_records_the_others_as_none():
    guides = [_CountingSegmenter() for _ in range(3)]
    target = torch.randint(0, 4, (1, 16, 16))

    def run(per_step, seed=0):
        gen = torch.Generator().manual_seed(seed)
        param = PixelPyramid(1, 16, 16, generator=gen)
        settings = Stage1Settings(steps=12, guides_per_step=per_step, seg_loss="ce")
        terms = [SegTerm(g, 1.0, target) for g in guides]
        return run_stage1(param, settings=settings, seg_terms=terms, generator=gen, progress=False)

    images, history = run(1)
    assert [g.calls for g in guides] != [12, 12, 12] and sum(g.calls for g in guides) == 12
    assert all(sum(record[f"seg{i}"] is not None for i in range(3)) == 1 for record in history)
    assert min(g.calls for g in guides) > 0  # each guide gets its turn over the steps
    for record in history:  # the one scored guide, weighted up by 3, is the whole loss
        scored = next(record[f"seg{i}"] for i in range(3) if record[f"seg{i}"] is not None)
        assert abs(record["loss"] - scored) < 1e-5
    again, history_again = run(1)
    assert torch.equal(images, again) and history == history_again
    for g in guides:
        g.calls = 0
    run(0)
    assert [g.calls for g in guides] == [12, 12, 12]
