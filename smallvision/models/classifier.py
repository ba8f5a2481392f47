"""A classifier = input adapter (resize, channels, normalise) + backbone + head."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from smallvision.core.errors import UserError
from smallvision.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PatchWhitening,
    build_backbone,
)
from smallvision.models.weights import load_weights
from smallvision.options.model import HeadConfig, ModelConfig  # noqa: F401  (re-exported: the options live there)

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}


class Head(nn.Sequential):
    def __init__(self, cfg: HeadConfig, in_shape: torch.Size, num_outputs: int):
        layers: list[nn.Module] = []
        pooled = cfg.pool != "flatten" and len(in_shape) == 3
        if pooled:
            layers.append(nn.AdaptiveAvgPool2d(1) if cfg.pool == "avg" else nn.AdaptiveMaxPool2d(1))
        layers.append(nn.Flatten())
        width = int(torch.Size(in_shape).numel()) if cfg.pool == "flatten" or len(in_shape) == 1 else in_shape[0]
        if cfg.normalize:
            layers.append(nn.BatchNorm1d(width, affine=False))
        if cfg.input_dropout:
            layers.append(nn.Dropout(cfg.input_dropout))
        norms = cfg.per_layer(cfg.batchnorm, "batchnorm")
        drops = cfg.per_layer(cfg.dropout, "dropout")
        for hidden, norm, drop in zip(cfg.hidden, norms, drops):
            layers += [nn.Linear(width, hidden, bias=cfg.bias), ACTIVATIONS[cfg.activation]()]
            if norm:
                layers.append(nn.BatchNorm1d(hidden))
            if drop:
                layers.append(nn.Dropout(drop))
            width = hidden
        layers.append(nn.Linear(width, num_outputs))
        if cfg.logit_scale != 1.0:
            layers.append(Scale(cfg.logit_scale))
        super().__init__(*layers)
        # The pooled feature, before any hidden layer: the embedding used for retrieval.
        self.pool_layers = 2 if pooled else 1


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class Classifier(nn.Module):
    """Takes images as floats in [0, 1] at the prepared size; resizing, channel repeat and
    normalisation live inside the model so evaluation and prediction cannot get them wrong."""

    def __init__(self, backbone: nn.Module, cfg: ModelConfig, data_channels: int, input_size: int | None,
                 mean: tuple, std: tuple, num_outputs: int, probe_size: int):
        super().__init__()
        self.cfg = cfg
        self.input_size = input_size
        self.channels = cfg.backbone.input_channels(data_channels)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))
        self.backbone = backbone
        with torch.no_grad():
            backbone.eval()
            probe = torch.zeros(1, data_channels, probe_size, probe_size)
            feature_shape = self.backbone(self.preprocess(probe)).shape[1:]
        self.head = Head(cfg.head, feature_shape, num_outputs)
        apply_freeze(self)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              antialias=True, align_corners=False)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocess(x))

    @property
    def whitening_stem(self) -> PatchWhitening | None:
        """The backbone's first layer when it is a whitening stem (set from data, not learnt)."""
        first = next(iter(self.backbone.children()), None)
        return first if isinstance(first, PatchWhitening) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled backbone feature: what kNN retrieval compares."""
        x = self.features(x)
        for layer in list(self.head)[: self.head.pool_layers]:
            x = layer(x)
        return x

    @property
    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            # A frozen layer keeps its ImageNet statistics, as in Keras (trainable=False).
            for module in self.backbone.modules():
                params = list(module.parameters(recurse=False))
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and params and not any(
                    p.requires_grad for p in params
                ):
                    module.eval()
        return self


def apply_freeze(model: Classifier) -> None:
    cfg = model.cfg
    if cfg.freeze == "none":
        return
    for param in model.backbone.parameters():
        param.requires_grad_(False)
    if cfg.freeze == "last_n":
        layers = [m for m in model.backbone.modules() if list(m.parameters(recurse=False))]
        for module in layers[-cfg.trainable_last:]:
            module.requires_grad_(True)
    elif cfg.freeze == "stages":
        named = dict(model.backbone.named_modules())
        for stage in cfg.trainable_stages:
            if stage not in named:
                candidates = [n for n in named if n and "." not in n]
                raise UserError(
                    f"model.trainable_stages: the backbone has no stage '{stage}'; top-level stages: "
                    f"{', '.join(candidates)}"
                )
            named[stage].requires_grad_(True)


def build_model(cfg: ModelConfig, data_channels: int, image_size: int, num_outputs: int,
                input_size: int | None = None, dataset_mean=(0.5,), dataset_std=(0.25,),
                dataset: str = "") -> Classifier:
    """Pretrained backbones normalise with ImageNet statistics, others with the dataset's; a
    backbone that reads pixel values gets them unchanged."""
    backbone = build_backbone(cfg.backbone, cfg.backbone.input_channels(data_channels))
    if cfg.backbone_init:
        load_backbone_init(backbone, cfg.backbone_init.format(dataset=dataset))
    if not cfg.backbone.normalised_input:
        mean, std = (0.0,) * len(dataset_mean), (1.0,) * len(dataset_std)
    elif cfg.backbone.pretrained:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = tuple(dataset_mean), tuple(dataset_std)
    return Classifier(backbone, cfg, data_channels, input_size, mean, std, num_outputs,
                      probe_size=input_size or image_size)


def load_backbone_init(backbone: nn.Module, path: str) -> None:
    if not Path(path).is_file():
        raise UserError(f"model.backbone_init: {path} does not exist; produce it first (e.g. its pretrain stage)")
    state = load_weights(Path(path))
    try:
        backbone.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise UserError(
            f"model.backbone_init: {path} does not fit the backbone ({first}); "
            "it must come from the same backbone settings"
        ) from None


def parameter_count(model: nn.Module) -> dict[str, int]:
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
