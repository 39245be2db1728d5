"""The shared denoising loop and its regional and guided noise predictions, on the tiny models."""

import pytest
import torch

from tcig.models.denoising import denoise, guided_noise, plain_noise, region_weights, regional_noise
from tcig.models.refiners import load_refiner


def test_region_weights_partition_every_position():
    label_map = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [-1, -1, 1, 1], [-1, -1, 1, 1]])
    w = region_weights(label_map, 2, (2, 2))
    assert w.shape == (3, 1, 2, 2)
    assert torch.allclose(w.sum(0), torch.ones(1, 2, 2))
    assert w[0, 0, 0, 0] == 1 and w[1, 0, :, 1].eq(1).all() and w[2, 0, 1, 0] == 1  # class 0, class 1, don't care
    half = region_weights(torch.tensor([[0, 1], [0, 1]]), 2, (1, 1))
    assert torch.allclose(half[:, 0, 0, 0], torch.tensor([0.5, 0.5, 0.0]))


@pytest.mark.parametrize("kind", ["latent", "pixel"])
def test_regional_and_guided_reduce_to_plain_sampling(tiny, kind):
    """One prompt for every region, or guidance of weight 0, must give exactly the model's own samples."""
    den = load_refiner(str(tiny[kind])).denoiser()
    steps = den.timesteps(4, 1.0)
    cond = den.conditioning(["a boat on the sea"], None, 3.0)
    shape = den.shape(1, 32, 32)

    def sample(noise_fn):
        x = den.start(steps, torch.Generator().manual_seed(0), shape=shape)
        return denoise(den, x, steps, noise_fn, torch.Generator().manual_seed(1), progress=False)

    plain = sample(plain_noise(den, cond, 3.0))
    weights = region_weights(torch.tensor([[0, 1], [1, -1]]), 2, shape[-2:])
    regional = sample(regional_noise(den, [cond, cond, cond], weights, 3.0))
    assert torch.allclose(plain, regional, atol=1e-5)
    unguided = sample(guided_noise(den, cond, 3.0, lambda images: images.mean(), scale=0.0))
    assert torch.allclose(plain, unguided, atol=1e-5)
    guided = sample(guided_noise(den, cond, 3.0, lambda images: images.mean(), scale=50.0))
    assert plain.shape == (1, 3, 32, 32) and 0 <= guided.min() and guided.max() <= 1
    assert guided.mean() < plain.mean()  # guidance lowers the loss it follows: the mean brightness
