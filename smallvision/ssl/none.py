"""The baselines: no pretraining. The stage exports the backbone as initialised (random, or
ImageNet with `weights: imagenet`), so it is evaluated exactly like a pretrained one."""

from __future__ import annotations

from typing import ClassVar, Literal

from smallvision.ssl.base import SSL_METHODS, PretrainConfig, SSLMethod


@SSL_METHODS.register("none")
class NoPretrainingConfig(PretrainConfig):
    method: Literal["none"]

    trains: ClassVar[bool] = False

    def build(self, encoder, images):
        return SSLMethod(self, encoder)
