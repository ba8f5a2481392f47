"""The `augment` options of a recipe (smallvision.fit.augment applies them). Torch-free: validating
params.yaml reads it without importing torch."""

from __future__ import annotations

from pydantic import Field, model_validator

from smallvision.options.schema import Strict


class AugmentConfig(Strict):
    """translate: random shift up to N pixels (reflect padding). crop_scale: random
    resized crop, area fraction range. rotate (degrees), scale range and shear (degrees):
    one random affine warp. brightness/contrast/saturation: jitter strength (factor drawn
    from [1-s, 1+s]). mixup_alpha/cutmix_alpha: Beta(alpha, alpha) mixing, applied to a
    batch with probability mix_prob (one of the two at random when both are set)."""

    hflip: bool = False
    vflip: bool = False
    translate: int = Field(0, ge=0)
    crop_scale: tuple[float, float] | None = None
    rotate: float = Field(0.0, ge=0, le=180)
    scale: tuple[float, float] | None = None
    shear: float = Field(0.0, ge=0, lt=90)
    brightness: float = Field(0.0, ge=0, lt=1)
    contrast: float = Field(0.0, ge=0, lt=1)
    saturation: float = Field(0.0, ge=0, lt=1)
    mixup_alpha: float = Field(0.0, ge=0)
    cutmix_alpha: float = Field(0.0, ge=0)
    mix_prob: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges_ordered(self):
        for key in ("crop_scale", "scale"):
            bounds = getattr(self, key)
            if bounds is not None and not 0 < bounds[0] <= bounds[1]:
                raise ValueError(f"{key} must be [low, high] with 0 < low <= high")
        return self

    @property
    def enabled(self) -> bool:
        return any(
            [self.hflip, self.vflip, self.translate, self.crop_scale, self.rotate, self.scale, self.shear,
             self.brightness, self.contrast, self.saturation, self.mixing]
        )

    @property
    def mixing(self) -> bool:
        return bool((self.mixup_alpha or self.cutmix_alpha) and self.mix_prob)
