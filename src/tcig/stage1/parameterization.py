"""What stage 1 optimizes: a module whose ``forward()`` returns images ``[B,3,H,W]`` in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelPyramid(nn.Module):
    """Pixels as a sum of upsampled noise levels at 1/2^finest, 1/2^(finest+1)… of the resolution, through a sigmoid.

    Coarse levels move whole regions at once, so a layout is reached in far fewer steps than with raw pixels;
    ``levels=1, finest=0`` is the direct pixel parameterization. ``finest > 0`` leaves out the finest detail, which
    is where adversarial textures live and which stage 2 redraws anyway. ``init`` (images ``[B,3,H,W]`` in [0,1])
    is the starting point, with the random levels (``init_std``) on top of it.
    """

    def __init__(
        self,
        batch: int,
        height: int,
        width: int,
        *,
        levels: int = 4,
        finest: int = 0,
        init_std: float = 0.5,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.size = (height, width)
        shapes = [(batch, 3, max(1, height >> k), max(1, width >> k)) for k in range(finest, finest + levels)]
        levels_ = [torch.randn(s, generator=generator) * init_std / levels**0.5 for s in shapes]
        if init is not None:  # the finest level carries the starting image, in the sigmoid's logit space
            start = init.float() if not finest else F.interpolate(init.float(), size=shapes[0][-2:], mode="area")
            levels_[0] = levels_[0] + torch.logit(start.clamp(0.02, 0.98))
        self.levels = nn.ParameterList(nn.Parameter(level) for level in levels_)

    def forward(self) -> torch.Tensor:
        total = sum(
            F.interpolate(p, size=self.size, mode="bilinear", align_corners=False) if p.shape[-2:] != self.size else p
            for p in self.levels
        )
        return torch.sigmoid(total)


class VAELatent(nn.Module):
    """Latents of the refiner's own VAE (``AutoencoderKL``), decoded to pixels at every step.

    Starts from the encoding of ``init`` (a starting image), or of a smooth random image, so the decoder sees
    in-distribution latents.
    """

    def __init__(
        self,
        vae: nn.Module,
        batch: int,
        height: int,
        width: int,
        *,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.vae = vae.requires_grad_(False)
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        if height % factor or width % factor:
            raise ValueError(f"the latent parameterization needs a size divisible by {factor}")
        if init is not None:
            smooth = init.float().clamp(0, 1)
        else:
            smooth = torch.rand(batch, 3, max(1, height // 32), max(1, width // 32), generator=generator)
            smooth = F.interpolate(smooth, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
        vae_param = next(vae.parameters())
        with torch.no_grad():
            latents = vae.encode((smooth * 2 - 1).to(vae_param.device, vae_param.dtype)).latent_dist.mean
        self.latents = nn.Parameter(latents.float())

    def forward(self) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        decoded = self.vae.decode(self.latents.to(dtype)).sample
        return ((decoded.float() + 1) / 2).clamp(0, 1)
