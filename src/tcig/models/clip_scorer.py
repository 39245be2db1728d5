"""CLIP as a differentiable text-image scorer (the stage-1 text loss and the CLIP-score metric)."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from tcig.models.loading import load_pretrained
from tcig.models.preprocess import CLIP_MEAN, CLIP_STD, ImageNorm, image_norm_from_config

logger = logging.getLogger(__name__)


class CLIPScorer(nn.Module):
    """``encode_text(list[str])`` and ``encode_image(images in [0,1])`` give unit-norm embeddings, differentiably."""

    def __init__(self, model: nn.Module, tokenizer, norm: ImageNorm, name: str = "clip") -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.norm = norm
        self.name = name

    @classmethod
    def from_pretrained(cls, ref: str, *, allow_pickle: bool = False) -> CLIPScorer:
        """Load a transformers ``CLIPModel`` (hub id or folder) with its tokenizer and preprocessing numbers."""
        from transformers import AutoTokenizer, CLIPModel

        model = load_pretrained(CLIPModel.from_pretrained, ref, "CLIP model", allow_pickle=allow_pickle)
        tokenizer = load_pretrained(_no_safetensors_arg(AutoTokenizer.from_pretrained), ref, "CLIP tokenizer")
        size = model.config.vision_config.image_size
        norm = image_norm_from_config(ref, CLIP_MEAN, CLIP_STD, (size, size))
        return cls(model, tokenizer, norm, name=ref)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def input_size(self) -> tuple[int, int]:
        return self.norm.size or (self.model.config.vision_config.image_size,) * 2

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize, warning once per text that CLIP's context length truncates."""
        limit = self.tokenizer.model_max_length
        for text in texts:
            n = len(self.tokenizer(text, truncation=False).input_ids)
            if n > limit:
                logger.warning(
                    "the prompt is %d tokens but CLIP reads %d: the end is cut off (%r…)", n, limit, text[:60]
                )
        batch = self.tokenizer(texts, padding="max_length", truncation=True, max_length=limit, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        features = self.model.get_text_features(**self.tokenize(texts))
        return F.normalize(_pooled(features).float(), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        pixel_values = self.norm(images.to(self.device), self.input_size)
        features = self.model.get_image_features(pixel_values=pixel_values.to(self.model.dtype))
        return F.normalize(_pooled(features).float(), dim=-1)

    @torch.no_grad()
    def score(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """CLIP score per image: ``100 * max(cos, 0)`` between each image and its text (Hessel et al. 2021)."""
        cos = (self.encode_image(images) * self.encode_text(texts)).sum(-1)
        return 100 * cos.clamp(min=0)


def _pooled(features) -> torch.Tensor:
    """transformers 5 returns an output object whose ``pooler_output`` is the projected embedding; 4.x a tensor."""
    return features if isinstance(features, torch.Tensor) else features.pooler_output


def _no_safetensors_arg(loader):
    """Tokenizers have no weights: drop the ``use_safetensors`` argument that ``load_pretrained`` passes."""

    def load(ref: str, use_safetensors: bool = True, **kwargs):
        return loader(ref, **kwargs)

    return load
