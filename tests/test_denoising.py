"""The denoiser contract: predictions of every type to x̂0, the schedules, and the regional and guided variants."""

import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

from tcig.errors import ConfigError
from tcig.models.denoising import (
    Conditioning,
    Denoiser,
    Level,
    guided,
    plain,
    region_weights,
    regional,
    sample,
    schedule_of,
)
from tcig.models.refiners import load_refiner
from tcig.settings import Stage2Settings


def test_region_weights_partition_every_position():
    label_map = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [-1, -1, 1, 1], [-1, -1, 1, 1]])
    w = region_weights(label_map, 2, (2, 2))
    assert w.shape == (3, 1, 2, 2)
    assert torch.allclose(w.sum(0), torch.ones(1, 2, 2))
    assert w[0, 0, 0, 0] == 1 and w[1, 0, :, 1].eq(1).all() and w[2, 0, 1, 0] == 1  # class 0, class 1, don't care
    half = region_weights(torch.tensor([[0, 1], [0, 1]]), 2, (1, 1))
    assert torch.allclose(half[:, 0, 0, 0], torch.tensor([0.5, 0.5, 0.0]))


class Oracle(Denoiser):
    """An image-space "network" that knows the clean image: it outputs the exact ε, v, sample or flow velocity of
    ``clean`` for the ``x`` it is given, in the convention of ``outputs``; the wrapper reads it as ``prediction``."""

    def __init__(self, scheduler, outputs: str, prediction: str, clean: torch.Tensor) -> None:
        self.network = torch.nn.Conv2d(3, 3, 1)
        self.network.config = type("Config", (), {"in_channels": 3})()
        self.schedule = schedule_of(scheduler, prediction)
        self.prediction, self.outputs, self.clean = prediction, outputs, clean

    def network_output(self, x, level: Level, tensors):
        a, s, x0 = level.alpha, level.sigma, self.clean.to(x)
        eps = (x - a * x0) / s
        return {"epsilon": eps, "v_prediction": a * eps - s * x0, "sample": x0, "flow": eps - x0}[self.outputs]


VP = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=True,
                   steps_offset=1, clip_sample=False)  # fmt: skip
"""Ends at the clean image (alpha 1), so the oracle's samples are exact."""
FLOW = FlowMatchEulerDiscreteScheduler(shift=3.0)


@pytest.mark.parametrize(
    ("scheduler", "prediction"), [(VP, "epsilon"), (VP, "v_prediction"), (VP, "sample"), (FLOW, "flow")]
)
def test_every_prediction_type_gives_the_known_clean_image(scheduler, prediction):
    """A model that predicts the clean image exactly must give it back as x̂0 at every noise level, and as the
    sample from pure noise; its outputs read as ε-prediction (a v- or flow model treated as ε) must not."""
    clean = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    den = Oracle(scheduler, prediction, prediction, clean)
    levels = den.schedule.levels(10, 16)
    x = den.start(levels, torch.Generator().manual_seed(1), shape=(1, 3, 8, 8))
    for level in levels[:-1]:
        noisy = level.alpha * clean + level.sigma * x
        assert torch.allclose(den(noisy, level, Conditioning()), clean, atol=1e-4)
    out = sample(den, x, levels, plain(den, Conditioning()), progress=False)
    assert torch.allclose(out, ((clean + 1) / 2).clamp(0, 1), atol=1e-4)
    if prediction == "flow":  # an ε reading is refused outright on a flow schedule
        with pytest.raises(ConfigError, match="does not match"):
            Oracle(scheduler, prediction, "epsilon", clean)
    elif prediction != "epsilon":
        wrong = Oracle(scheduler, prediction, "epsilon", clean)
        level = levels[3]
        misread = wrong(level.alpha * clean + level.sigma * x, level, Conditioning())
        assert (misread - clean).abs().mean() > 0.2


def test_schedules_start_where_strength_or_noise_level_says():
    vp, flow = schedule_of(VP, "epsilon"), schedule_of(FLOW, "flow")
    for schedule in (vp, flow):
        levels = schedule.levels(20)
        assert len(levels) == 21
        noise = [lv.noise_level for lv in levels]
        assert noise == sorted(noise, reverse=True) and noise[-1] < 0.05 and noise[0] > 0.9
        assert schedule.start_index(levels, 0.5) == 10  # img2img keeps steps * strength steps
        nearest = levels[schedule.start_index(levels, 1.0, noise_level=0.5)].noise_level
        gaps = [a.noise_level - b.noise_level for a, b in zip(levels, levels[1:], strict=False)]
        assert abs(nearest - 0.5) <= max(gaps)
    # the same strength is far more noise on a shifted flow schedule (the SD3 figure: 0.6 -> sigma ~0.8)
    sd3 = flow.levels(28)[flow.start_index(flow.levels(28), 0.6)].noise_level
    assert 0.75 < sd3 < 0.85


def test_dynamic_shift_follows_the_token_count():
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)  # fmt: skip
    schedule = schedule_of(scheduler, "flow", linear_sigmas=True)
    big, small = schedule.levels(28, 4096), schedule.levels(28, 256)
    start = {(tokens, strength): levels[schedule.start_index(levels, strength)].sigma
             for tokens, levels in ((4096, big), (256, small)) for strength in (0.3, 0.6)}  # fmt: skip
    assert start[4096, 0.3] > start[256, 0.3]
    # diffusers' FLUX img2img at 1024² (mu = 1.15, 28 steps): strength 0.3 starts at sigma ~0.60, 0.6 at ~0.83
    assert abs(start[4096, 0.3] - 0.60) < 0.01 and abs(start[4096, 0.6] - 0.83) < 0.01


@pytest.mark.parametrize("kind", ["latent", "pixel"])
def test_regional_and_guided_reduce_to_plain_sampling(tiny, kind):
    """One prompt for every region, or guidance of weight 0, must give exactly the model's own samples."""
    refiner = load_refiner(str(tiny[kind]))
    den = refiner.denoiser()
    levels = refiner.levels(Stage2Settings(steps=4, strength=1.0), 32, 32)
    cond = den.conditioning(["a boat on the sea"], None, 3.0, (32, 32))
    shape = den.shape(1, 32, 32)

    def run(predict):
        x = den.start(levels, torch.Generator().manual_seed(0), shape=shape)
        return sample(den, x, levels, predict, progress=False)

    alone = run(plain(den, cond))
    weights = region_weights(torch.tensor([[0, 1], [1, -1]]), 2, shape[-2:])
    assert torch.allclose(alone, run(regional(den, [cond, cond, cond], weights)), atol=1e-5)
    assert torch.allclose(alone, run(guided(den, cond, lambda images: images.mean(), weight=0.0)), atol=1e-5)
    darker = run(guided(den, cond, lambda images: images.mean(), weight=50.0))
    assert alone.shape == (1, 3, 32, 32) and 0 <= darker.min() and darker.max() <= 1
    assert darker.mean() < alone.mean()  # guidance lowers the loss it follows: the mean brightness
    other = den.conditioning(["a house by a road"], None, 3.0, (32, 32))
    base_only = run(regional(den, [other, other, other], weights, base=cond, base_weight=1.0))
    handed_over = run(regional(den, [other, other, other], weights, base=cond, region_steps=0))
    assert torch.allclose(alone, base_only, atol=1e-5) and torch.allclose(alone, handed_over, atol=1e-5)
    late = run(regional(den, [other, other, other], weights, base=cond, region_steps=2))
    assert (late - alone).abs().mean() > 1e-3  # the region prompts had two steps
    unguided_late = run(guided(den, cond, lambda images: images.mean(), weight=50.0, min_noise_level=2.0))
    assert torch.allclose(alone, unguided_late, atol=1e-5)  # every level is below 2: no step is guided


def test_time_travel_repeats_the_early_steps_from_the_same_level():
    """Each of the first ``repeat_steps`` steps is predicted ``repeats`` times; noising back goes from a level to a
    noisier one along the forward process (the right signal and noise)."""
    from tcig.models.denoising import noise_back

    calls = []
    den = Oracle(DDIMScheduler(), "epsilon", "epsilon", torch.zeros(1, 3, 8, 8))
    levels = den.schedule.levels(5)

    def predict(x, level):
        calls.append(level.t)
        return torch.zeros_like(x)

    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    sample(den, x, levels, predict, progress=False, repeats=3, repeat_steps=2, generator=torch.Generator())
    steps = [lv.t for lv in levels[:-1]]
    assert calls == [steps[0]] * 3 + [steps[1]] * 3 + steps[2:]
    here, there = levels[1], levels[3]
    x0 = torch.full((20000,), 0.7)
    g = torch.Generator().manual_seed(1)
    at_there = there.alpha * x0 + there.sigma * torch.randn(x0.shape, generator=g)
    back = noise_back(at_there, there, here, torch.randn(x0.shape, generator=g))
    assert abs(back.mean() - here.alpha * 0.7) < 0.02 and abs(back.std() - here.sigma) < 0.02


def test_schedulers_of_another_family_are_refused():
    with pytest.raises(ConfigError, match="does not match"):
        schedule_of(FLOW, "epsilon")
    with pytest.raises(ConfigError, match="does not match"):
        schedule_of(VP, "flow")


def test_auto_dtype_is_the_families_half_precision():
    from tcig.models.devices import refiner_dtype, resolve_dtype

    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert refiner_dtype(torch.device("cpu"), torch.bfloat16) == torch.float32
    assert refiner_dtype(torch.device("mps"), torch.bfloat16) == torch.bfloat16
    assert refiner_dtype(torch.device("mps"), torch.float16) == torch.float16


def test_a_strength_given_replaces_the_sets_noise_level():
    from tcig.models.model_sets import load_model_set

    flux = load_model_set("flux-dev")
    assert flux.stage2_settings().noise_level == 0.35 and flux.stage2_settings().cycle().noise_level == 0.26
    given = flux.stage2_settings(strength=0.5)
    assert given.noise_level is None and given.strength == 0.5 and given.cycle_noise_level == 0.26
    assert flux.stage2_settings(strength=0.5, noise_level=0.3).noise_level == 0.3
    assert Stage2Settings(noise_level=0.4).at_strength(0.7).noise_level is None
