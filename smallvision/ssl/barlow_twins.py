"""Barlow Twins: drive the cross-correlation of the two views' projections to the identity
(lightly's BarlowTwinsProjectionHead and BarlowTwinsLoss)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from smallvision.ssl.base import SSL_METHODS, PretrainConfig, SSLMethod


@SSL_METHODS.register("barlow_twins")
class BarlowTwinsConfig(PretrainConfig):
    """`lambda_param`: weight of the off-diagonal (redundancy) term."""

    method: Literal["barlow_twins"]
    projection_hidden: int = Field(2048, ge=1)
    projection_dim: int = Field(2048, ge=1)
    lambda_param: float = Field(5e-3, gt=0)

    def build(self, encoder, images):
        return BarlowTwins(self, encoder)


class BarlowTwins(SSLMethod):
    def __init__(self, cfg: BarlowTwinsConfig, encoder):
        from lightly.loss import BarlowTwinsLoss
        from lightly.models.modules import BarlowTwinsProjectionHead

        super().__init__(cfg, encoder)
        self.head["projection"] = BarlowTwinsProjectionHead(encoder.dim, cfg.projection_hidden, cfg.projection_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=cfg.lambda_param)

    def loss(self, views, at):
        z0, z1 = (self.head["projection"](self.backbone(view)).float() for view in views)
        return self.criterion(z0, z1)
