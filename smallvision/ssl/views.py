"""Augmented views for self-supervised pretraining, made on the training device in batches.

The settings are those of lightly's transforms (SimCLRTransform, BYOLTransform, DINOTransform,
...), which work per image on PIL images; here the same operations run per sample on a whole
uint8 batch already on the device, so no image is decoded or converted inside the epoch loop.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field, model_validator

from smallvision.fit.augment import (
    AugmentConfig,
    Augmenter,
    chosen,
    gaussian_blur,
    grayscale,
    hue_shift,
    random_resized_crop,
    solarize,
)
from smallvision.options.schema import Strict

LIGHTLY_SIZE = 224  # the image size lightly's blur sigmas are given for


class ViewConfig(Strict):
    """One random view: random resized crop (`crop_scale` area fraction, `crop_ratio` aspect),
    horizontal flip, colour jitter with probability `jitter_prob` (brightness, contrast,
    saturation: factor in [1-s, 1+s]; hue: shift in [-h, h] turns), grayscale, Gaussian blur
    and solarization. `blur_prob` and `solarize_prob` hold one value per view (BYOL and DINO
    make their two views differently). `blur_sigma` is in pixels of a 224 px image, as in
    lightly, and scales with the view's size (a 32 px view is blurred 7 times less)."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 4 / 3)
    hflip: float = Field(0.5, ge=0, le=1)
    jitter_prob: float = Field(0.8, ge=0, le=1)
    brightness: float = Field(0.8, ge=0, lt=1)
    contrast: float = Field(0.8, ge=0, lt=1)
    saturation: float = Field(0.8, ge=0, lt=1)
    hue: float = Field(0.2, ge=0, le=0.5)
    grayscale_prob: float = Field(0.2, ge=0, le=1)
    blur_prob: tuple[float, float] = (0.5, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: tuple[float, float] = (0.0, 0.0)

    @model_validator(mode="after")
    def _ranges(self):
        for key in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, key)
            if not 0 < low <= high:
                raise ValueError(f"{key} must be [low, high] with 0 < low <= high")
        if self.crop_scale[1] > 1:
            raise ValueError("crop_scale is an area fraction: at most 1")
        for key in ("blur_prob", "solarize_prob"):
            if not all(0 <= p <= 1 for p in getattr(self, key)):
                raise ValueError(f"{key} values are probabilities in [0, 1]")
        return self


class ViewMaker:
    """Makes views of float image batches in [0, 1]; all randomness comes from `generator`
    (per-image draws on the device) and `rng`, which the pretraining checkpoint saves."""

    def __init__(self, cfg: ViewConfig, generator: torch.Generator, rng: np.random.Generator):
        self.cfg, self.g = cfg, generator
        jitter = AugmentConfig(brightness=cfg.brightness, contrast=cfg.contrast, saturation=cfg.saturation)
        self.jitter = Augmenter(jitter, generator, rng)

    def pair(self, x: torch.Tensor, size: int) -> list[torch.Tensor]:
        """Two views at `size` pixels, view i using blur_prob[i] and solarize_prob[i]."""
        return [self.view(x, size, self.cfg.crop_scale, index) for index in (0, 1)]

    def view(self, x: torch.Tensor, size: int, crop_scale: tuple[float, float], index: int,
             blur_prob: float | None = None) -> torch.Tensor:
        cfg = self.cfg
        x = random_resized_crop(x, size, crop_scale, cfg.crop_ratio, cfg.hflip, self.g)
        x = self._maybe(x, cfg.jitter_prob, self._colour_jitter)
        x = self._maybe(x, cfg.grayscale_prob, grayscale)
        x = self._maybe(x, cfg.blur_prob[index] if blur_prob is None else blur_prob, self._blur)
        return self._maybe(x, cfg.solarize_prob[index], solarize)

    def _maybe(self, x: torch.Tensor, prob: float, operation) -> torch.Tensor:
        """`operation` applied to the images a coin with probability `prob` picks. The whole
        batch goes through it (one kernel, no gather), and the rest keep their pixels."""
        if prob <= 0:
            return x
        changed = operation(x)
        return changed if prob >= 1 else torch.where(chosen(len(x), prob, self.g, x.device), changed, x)

    def _colour_jitter(self, x: torch.Tensor) -> torch.Tensor:
        return hue_shift(self.jitter.colour_jitter(x), self.cfg.hue, self.g)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        low, high = (s * x.shape[-1] / LIGHTLY_SIZE for s in self.cfg.blur_sigma)
        sigma = torch.rand(len(x), device=x.device, generator=self.g) * (high - low) + low
        return gaussian_blur(x, sigma)
