"""BYOL: the online network predicts the projection a momentum target makes of the other
view (lightly's BYOL heads, NegativeCosineSimilarity and update_momentum)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from smallvision.ssl.base import (
    SSL_METHODS,
    KoLeoOptions,
    MomentumOptions,
    PredictorOptions,
    PretrainConfig,
    SSLMethod,
    follow_student,
    frozen_copy,
)


@SSL_METHODS.register("byol")
class BYOLConfig(KoLeoOptions, PredictorOptions, MomentumOptions, PretrainConfig):
    method: Literal["byol"]
    projection_hidden: int = Field(1024, ge=1)
    projection_dim: int = Field(256, ge=1)
    prediction_hidden: int = Field(1024, ge=1)

    def build(self, encoder, images):
        return BYOL(self, encoder)


class BYOL(SSLMethod):
    def __init__(self, cfg: BYOLConfig, encoder):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

        super().__init__(cfg, encoder)
        self.head["projection"] = BYOLProjectionHead(encoder.dim, cfg.projection_hidden, cfg.projection_dim)
        self.head["prediction"] = BYOLPredictionHead(cfg.projection_dim, cfg.prediction_hidden, cfg.projection_dim)
        self.teacher = nn.ModuleDict({"encoder": frozen_copy(encoder),
                                      "projection": frozen_copy(self.head["projection"])})
        self.criterion = NegativeCosineSimilarity()

    def loss(self, views, at):
        features = [self.backbone(view) for view in views]
        predictions = [self.head["prediction"](self.head["projection"](feature)).float() for feature in features]
        with torch.no_grad():
            targets = [self.teacher["projection"](self.teacher["encoder"](view)).float() for view in views]
        return (0.5 * (self.criterion(predictions[0], targets[1]) + self.criterion(predictions[1], targets[0]))
                + self.koleo(features))

    def after_optimizer_step(self, at):
        follow_student(self.backbone, self.teacher["encoder"], self.cfg.momentum, at)
        follow_student(self.head["projection"], self.teacher["projection"], self.cfg.momentum, at)
