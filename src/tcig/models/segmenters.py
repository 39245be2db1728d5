"""Differentiable segmenters: ``images[B,3,H,W] in [0,1] -> class logits[B,K,h,w]``.

Three families cover the pre-trained segmenters of transformers:
- semantic heads (SegFormer, UperNet, DPT, BEiT, MobileViT…) through ``AutoModelForSemanticSegmentation``;
- mask classifiers (Mask2Former, MaskFormer, OneFormer) through ``AutoModelForUniversalSegmentation``, whose
  per-query class and mask predictions are combined into per-pixel class scores;
- CLIPSeg, open vocabulary: the layout's class names (or region texts) are its queries.
"""

from __future__ import annotations

import torch
from torch import nn

from tcig.errors import ModelLoadError
from tcig.models.loading import check_model_ref, load_pretrained, read_json_config
from tcig.models.preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ImageNorm, image_norm_from_config

UNIVERSAL_TYPES = {"mask2former", "maskformer", "oneformer"}


class Segmenter(nn.Module):
    """Base class. ``labels`` is the label set (index = logit channel), or None for an open vocabulary."""

    labels: list[str] | None

    def __init__(self, model: nn.Module, norm: ImageNorm, labels: list[str] | None, name: str) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.norm = norm
        self.labels = labels
        self.name = name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(images.to(self.device)).to(self.model.dtype)

    def forward(self, images: torch.Tensor, queries: list[str] | None = None) -> torch.Tensor:
        raise NotImplementedError


class SemanticSegmenter(Segmenter):
    """Any model with a per-pixel classification head (``outputs.logits[B,K,h,w]``)."""

    def forward(self, images: torch.Tensor, queries: list[str] | None = None) -> torch.Tensor:
        return self.model(pixel_values=self._inputs(images)).logits.float()


class MaskClassificationSegmenter(Segmenter):
    """Mask2Former-style models: ``p(class | pixel) ∝ Σ_q softmax(class_q) · sigmoid(mask_q)``; returns its log."""

    def forward(self, images: torch.Tensor, queries: list[str] | None = None) -> torch.Tensor:
        out = self.model(pixel_values=self._inputs(images))
        classes = out.class_queries_logits.float().softmax(-1)[..., :-1]  # the last class is "no object"
        masks = out.masks_queries_logits.float().sigmoid()
        scores = torch.einsum("bqc,bqhw->bchw", classes, masks)
        return scores.clamp(min=1e-6).log()


class CLIPSegSegmenter(Segmenter):
    """CLIPSeg (Lüddecke & Ecker 2022): one logit map per text query; the queries compete through a softmax."""

    def __init__(self, model: nn.Module, tokenizer, norm: ImageNorm, name: str) -> None:
        super().__init__(model, norm, None, name)
        self.tokenizer = tokenizer

    def forward(self, images: torch.Tensor, queries: list[str] | None = None) -> torch.Tensor:
        # CLIPSegForImageSegmentation.forward runs its vision encoder under no_grad, so its steps are redone here
        # with the gradient kept: vision encoder -> activations of the extracted layers -> decoder per query.
        if not queries:
            raise ValueError("CLIPSeg needs text queries, one per class")
        b, k = images.shape[0], len(queries)
        text = self.tokenizer(queries, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.no_grad():
            conditional = self.model.get_conditional_embeddings(
                batch_size=k, input_ids=text.input_ids, attention_mask=text.attention_mask
            )
        vision = self.model.clip.vision_model(
            pixel_values=self._inputs(images), output_hidden_states=True, interpolate_pos_encoding=True
        )
        activations = [vision.hidden_states[i + 1].repeat_interleave(k, dim=0) for i in self.model.extract_layers]
        logits = self.model.decoder(activations, conditional.repeat(b, 1)).logits
        return logits.float().reshape(b, k, *logits.shape[-2:])


def load_segmenter(ref: str, *, allow_pickle: bool = False) -> Segmenter:
    """Build the right wrapper for a hub id or a local folder from its ``config.json``."""
    ref = check_model_ref(ref, "segmenter", allow_pickle=allow_pickle)
    config = read_json_config(ref)
    model_type = (config or {}).get("model_type", "")
    if model_type == "clipseg":
        from transformers import AutoTokenizer, CLIPSegForImageSegmentation

        model = load_pretrained(
            CLIPSegForImageSegmentation.from_pretrained, ref, "segmenter", allow_pickle=allow_pickle
        )
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"the CLIPSeg folder '{ref}' has no usable tokenizer: {err}") from err
        size = model.config.vision_config.image_size
        return CLIPSegSegmenter(model, tokenizer, image_norm_from_config(ref, CLIP_MEAN, CLIP_STD, (size, size)), ref)
    if model_type in UNIVERSAL_TYPES:
        from transformers import AutoModelForUniversalSegmentation as auto_class

        wrapper = MaskClassificationSegmenter
    else:
        from transformers import AutoModelForSemanticSegmentation as auto_class

        wrapper = SemanticSegmenter
    model = load_pretrained(auto_class.from_pretrained, ref, "segmenter", allow_pickle=allow_pickle)
    id2label = model.config.id2label
    labels = [str(id2label[i]) for i in sorted(id2label, key=int)]
    return wrapper(model, image_norm_from_config(ref, IMAGENET_MEAN, IMAGENET_STD, None), labels, ref)
