"""DINO: a student matches a momentum teacher's centred, sharpened output across views;
the student also sees small local crops (lightly's DINOProjectionHead and DINOLoss).

Multi-crop for small images: global views at the model's input size, `local_views` crops at
`local_size` x that size (lightly: 96 of 224 px), so on 32 px sprites a local crop is 16 px
and costs a quarter of a global one.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from smallvision.ssl.base import (
    SSL_METHODS,
    KoLeoOptions,
    MomentumOptions,
    PretrainConfig,
    SSLMethod,
    follow_student,
    frozen,
    frozen_copy,
)


@SSL_METHODS.register("dino")
class DINOConfig(KoLeoOptions, MomentumOptions, PretrainConfig):
    """Teacher temperature rises linearly from `warmup_teacher_temp` to `teacher_temp` over
    `warmup_teacher_temp_epochs`; the last head layer stays fixed for `freeze_last_layer`
    epochs; `center_momentum` is the moving average of the teacher's centre."""

    method: Literal["dino"]
    projection_hidden: int = Field(2048, ge=1)
    bottleneck_dim: int = Field(256, ge=1)
    output_dim: int = Field(2048, ge=1)
    head_batchnorm: bool = True
    teacher_temp: float = Field(0.04, gt=0)
    warmup_teacher_temp: float = Field(0.04, gt=0)
    warmup_teacher_temp_epochs: int = Field(30, ge=1)
    student_temp: float = Field(0.1, gt=0)
    center_momentum: float = Field(0.9, ge=0, lt=1)
    freeze_last_layer: int = Field(1, ge=0)
    local_views: int = Field(6, ge=0)
    local_size: float = Field(0.5, gt=0, le=1)
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    local_blur_prob: float = Field(0.5, ge=0, le=1)

    def build(self, encoder, images):
        return DINO(self, encoder)


class DINO(SSLMethod):
    def __init__(self, cfg: DINOConfig, encoder):
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead

        super().__init__(cfg, encoder)
        with warnings.catch_warnings():
            # lightly's head still calls torch.nn.utils.weight_norm, which torch deprecates in favour of
            # its parametrization; it works, and the warning would only tell our users about lightly.
            warnings.filterwarnings("ignore", message=r"`torch\.nn\.utils\.weight_norm` is deprecated",
                                    category=FutureWarning)
            heads = [DINOProjectionHead(encoder.dim, cfg.projection_hidden, cfg.bottleneck_dim, cfg.output_dim,
                                        batch_norm=cfg.head_batchnorm, freeze_last_layer=cfg.freeze_last_layer)
                     for _ in range(2)]
        # Built twice rather than deep-copied: the head's weight_norm cannot be deep-copied.
        heads[1].load_state_dict(heads[0].state_dict())
        self.head["projection"] = heads[0]
        self.teacher = nn.ModuleDict({"encoder": frozen_copy(encoder), "projection": frozen(heads[1])})
        self.criterion = DINOLoss(output_dim=cfg.output_dim, warmup_teacher_temp=cfg.warmup_teacher_temp,
                                  teacher_temp=cfg.teacher_temp,
                                  warmup_teacher_temp_epochs=cfg.warmup_teacher_temp_epochs,
                                  student_temp=cfg.student_temp, center_momentum=cfg.center_momentum)

    def make_views(self, images, views, size):
        cfg = self.cfg
        local_size = max(8, round(size * cfg.local_size))
        local = [views.view(images, local_size, cfg.local_crop_scale, 0, blur_prob=cfg.local_blur_prob)
                 for _ in range(cfg.local_views)]
        return views.pair(images, size) + local

    def loss(self, views, at):
        with torch.no_grad():
            teacher = [self.teacher["projection"](self.teacher["encoder"](view)).float() for view in views[:2]]
        features = [self.backbone(view) for view in views]
        student = [self.head["projection"](feature).float() for feature in features]
        return self.criterion(teacher, student, epoch=at.epoch) + self.koleo(features)

    def before_optimizer_step(self, at):
        self.head["projection"].cancel_last_layer_gradients(at.epoch)

    def after_optimizer_step(self, at):
        follow_student(self.backbone, self.teacher["encoder"], self.cfg.momentum, at)
        follow_student(self.head["projection"], self.teacher["projection"], self.cfg.momentum, at)

    @property
    def exported(self):
        """DINO evaluates and keeps the teacher (as the paper and lightly's benchmark do)."""
        return self.teacher["encoder"]
