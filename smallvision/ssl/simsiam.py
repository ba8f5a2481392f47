"""SimSiam: BYOL without a momentum target; a stop-gradient on the other view's projection
keeps it from collapsing (lightly's SimSiam heads and NegativeCosineSimilarity)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from smallvision.ssl.base import (
    SSL_METHODS,
    PredictorOptions,
    PretrainConfig,
    SSLMethod,
)


@SSL_METHODS.register("simsiam")
class SimSiamConfig(PredictorOptions, PretrainConfig):
    method: Literal["simsiam"]
    projection_hidden: int = Field(2048, ge=1)
    projection_dim: int = Field(2048, ge=1)
    prediction_hidden: int = Field(512, ge=1)

    def build(self, encoder, images):
        return SimSiam(self, encoder)


class SimSiam(SSLMethod):
    def __init__(self, cfg: SimSiamConfig, encoder):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead

        super().__init__(cfg, encoder)
        self.head["projection"] = SimSiamProjectionHead(encoder.dim, cfg.projection_hidden, cfg.projection_dim)
        self.head["prediction"] = SimSiamPredictionHead(cfg.projection_dim, cfg.prediction_hidden,
                                                        cfg.projection_dim)
        self.criterion = NegativeCosineSimilarity()

    def loss(self, views, at):
        projections = [self.head["projection"](self.backbone(view)) for view in views]
        predictions = [self.head["prediction"](z).float() for z in projections]
        z0, z1 = (z.detach().float() for z in projections)
        return 0.5 * (self.criterion(predictions[0], z1) + self.criterion(predictions[1], z0))
