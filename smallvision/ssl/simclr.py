"""SimCLR: two views through one encoder and projection head; NT-Xent contrasts each view
with its pair against every other image of the batch (lightly's NTXentLoss)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from smallvision.ssl.base import SSL_METHODS, PretrainConfig, SSLMethod


@SSL_METHODS.register("simclr")
class SimCLRConfig(PretrainConfig):
    """`projection_hidden`: null = the backbone's feature size (lightly's CIFAR-10 setting)."""

    method: Literal["simclr"]
    temperature: float = Field(0.5, gt=0)
    projection_hidden: int | None = Field(None, ge=1)
    projection_dim: int = Field(128, ge=1)

    def build(self, encoder, images):
        return SimCLR(self, encoder)


class SimCLR(SSLMethod):
    def __init__(self, cfg: SimCLRConfig, encoder):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__(cfg, encoder)
        self.head["projection"] = SimCLRProjectionHead(encoder.dim, cfg.projection_hidden or encoder.dim,
                                                       cfg.projection_dim)
        self.criterion = NTXentLoss(temperature=cfg.temperature)

    def loss(self, views, at):
        z0, z1 = (self.head["projection"](self.backbone(view)).float() for view in views)
        return self.criterion(z0, z1)
