"""The network self-supervised pretraining trains: the fine-tune model's backbone and input
normalisation, average-pooled to one feature vector per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smallvision.core.errors import UserError
from smallvision.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    build_backbone,
)
from smallvision.models.device import to_float_images


class Encoder(nn.Module):
    """`backbone` is built from the same backbone config as the fine-tune recipe's, so its
    state_dict is exactly what `model.backbone_init` loads. Inputs are normalised as the
    fine-tune model will normalise them: ImageNet statistics for ImageNet weights, the
    dataset's otherwise. Views arrive at the size they are made at (DINO's local crops are
    smaller); `embed` resizes plain images to the model's input size first."""

    def __init__(self, cfg: Backbone, data_channels: int, input_size: int, dataset_mean, dataset_std):
        super().__init__()
        self.channels = cfg.input_channels(data_channels)
        self.input_size = input_size
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if cfg.pretrained else (dataset_mean, dataset_std)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        if getattr(cfg, "stem", "none") != "none":
            raise UserError(f"ssl: backbone {cfg.name} with stem: {cfg.stem} is not supported in pretraining "
                            "(the stem is fitted to the data by the supervised loop); use stem: none")
        self.backbone = build_backbone(cfg, self.channels)
        with torch.no_grad():
            self.backbone.eval()
            self.dim = self(torch.zeros(1, data_channels, input_size, input_size)).shape[1]
        self.backbone.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] at any size -> (N, dim) features."""
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        features = self.backbone((x - self.mean) / self.std)
        return features.mean(dim=(2, 3)) if features.ndim == 4 else features.flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return self(x)

    def _batchnorms(self) -> list[nn.Module]:
        return [m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def freeze_batchnorm(self) -> None:
        """Batch norm in the backbone normalises with its running statistics and keeps them
        (until the module is next put in training mode); its scale and shift still train."""
        for norm in self._batchnorms():
            norm.eval()

    @torch.no_grad()
    def recalibrate_batchnorm(self, images: torch.Tensor, batch_size: int) -> None:
        """Batch-norm running statistics measured afresh on plain uint8 images (N, C, H, W):
        the average over one pass in batches of `batch_size` (a last, smaller batch is left
        out when there are others). Pretraining feeds batch norm augmented views only, so its
        running statistics come to describe those, not the images that kNN, the probe and
        the fine-tune see; which statistics a frozen backbone carries moves its kNN accuracy
        by several points (README, `bn_stats`)."""
        norms = self._batchnorms()
        if not norms:
            return
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average
        starts = range(0, len(images), batch_size)
        if len(images) > batch_size and len(images) % batch_size:
            starts = starts[:-1]
        training = self.training
        self.train()
        for start in starts:
            self.embed(to_float_images(images[start:start + batch_size]))
        self.train(training)
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
