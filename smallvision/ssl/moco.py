"""MoCo v2: a query encoder contrasted against keys from its momentum copy, with negatives
from a memory bank of past keys (lightly's NTXentLoss with `memory_bank_size`)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from smallvision.core.errors import UserError
from smallvision.ssl.base import (
    SSL_METHODS,
    MomentumOptions,
    PretrainConfig,
    SSLMethod,
    follow_student,
    frozen_copy,
)


@SSL_METHODS.register("moco")
class MoCoConfig(MomentumOptions, PretrainConfig):
    """`memory_bank_size`: past keys used as negatives; it must stay below the number of
    training images, or each image meets its own older keys as negatives."""

    method: Literal["moco"]
    temperature: float = Field(0.1, gt=0)
    memory_bank_size: int = Field(1024, ge=1)
    projection_hidden: int | None = Field(None, ge=1)
    projection_dim: int = Field(128, ge=1)

    def build(self, encoder, images):
        if self.memory_bank_size >= images:
            raise UserError(
                f"moco: memory_bank_size {self.memory_bank_size} is not below the {images} pretraining images, so "
                "each image would meet its own older keys as negatives: set a smaller memory_bank_size"
            )
        return MoCo(self, encoder)


class MoCo(SSLMethod):
    def __init__(self, cfg: MoCoConfig, encoder):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead

        super().__init__(cfg, encoder)
        self.head["projection"] = MoCoProjectionHead(encoder.dim, cfg.projection_hidden or encoder.dim,
                                                     cfg.projection_dim)
        self.teacher = nn.ModuleDict({"encoder": frozen_copy(encoder),
                                      "projection": frozen_copy(self.head["projection"])})
        self.criterion = NTXentLoss(temperature=cfg.temperature,
                                    memory_bank_size=(cfg.memory_bank_size, cfg.projection_dim))

    def loss(self, views, at):
        queries = [self.head["projection"](self.backbone(view)).float() for view in views]
        with torch.no_grad():
            keys = [self.teacher["projection"](self.teacher["encoder"](view)).float() for view in views]
        # Symmetric, in one call: both queries meet the bank as it was before this batch's
        # keys were added (two calls would make each view's key a negative of its twin).
        return self.criterion(torch.cat([queries[0], queries[1]]), torch.cat([keys[1], keys[0]]))

    def after_optimizer_step(self, at):
        follow_student(self.backbone, self.teacher["encoder"], self.cfg.momentum, at)
        follow_student(self.head["projection"], self.teacher["projection"], self.cfg.momentum, at)

    def get_extra_state(self):
        """lightly keeps the memory bank in non-persistent buffers: saved here so that a
        resumed run continues with the same negatives."""
        bank = self.criterion.memory_bank
        return {"bank": bank.bank, "bank_ptr": bank.bank_ptr}

    def set_extra_state(self, state):
        bank = self.criterion.memory_bank
        bank.bank.copy_(state["bank"])
        bank.bank_ptr.copy_(state["bank_ptr"])
