"""What every self-supervised method shares: its options, its module interface, the registry.

A method is registered under the name params.yaml uses (`method: simclr`) as its options
class; `build` makes the nn.Module that the pretraining loop drives. lightly is imported
inside the builders: it takes seconds to import, and validating params.yaml must not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from smallvision.core.registry import Registry
from smallvision.options.model import BACKBONES
from smallvision.options.recipes import MAX_BATCH_SIZE, MAX_EPOCHS
from smallvision.options.schema import AutoOnOff, Strict, choice_of
from smallvision.options.train import OptimizerConfig, SchedulerConfig
from smallvision.ssl.encoder import Encoder
from smallvision.ssl.views import ViewConfig, ViewMaker

SSL_METHODS: Registry = Registry("SSL method")


class PretrainConfig(Strict):
    """Options of every method (`ssl.pretrain` in params.yaml holds their defaults).
    `backbone` takes the same settings as a recipe's `model.backbone`; `input_size` is the
    view size (null: the prepared size); `extra_images`: a folder of unlabeled images
    (searched recursively) added to the training split; `monitor_every`: epochs between kNN
    accuracy and embedding-spread checks (also at the start and the end). `bn_stats`, the
    backbone's batch-norm running statistics: `train` updates them from the augmented views
    as usual; `recalibrate` measures them afresh on the plain training images at every check,
    and so in the saved backbone; `frozen` keeps the initial ones (a pretrained backbone's)
    and normalises with them in training too."""

    method: str
    backbone: choice_of(BACKBONES, "name") = {"name": "resnet18", "weights": "none", "small_stem": True}  # type: ignore[valid-type]
    input_size: int | None = Field(None, ge=8, le=1024)
    extra_images: str | None = None
    epochs: int = Field(100, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(128, ge=2, le=MAX_BATCH_SIZE)
    eval_batch_size: int = Field(256, ge=1, le=MAX_BATCH_SIZE)
    optimizer: OptimizerConfig = {  # type: ignore[valid-type]
        "name": "sgd", "lr": 0.06, "weight_decay": 5e-4, "nesterov": False}
    scheduler: SchedulerConfig = {"name": "cosine"}  # type: ignore[valid-type]
    views: ViewConfig = ViewConfig()
    monitor_every: int = Field(5, ge=1)
    bn_stats: Literal["train", "recalibrate", "frozen"] = "train"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: AutoOnOff = "auto"
    threads: int = Field(0, ge=0)
    notes: str = ""

    trains: ClassVar[bool] = True  # False for the baselines, which export the backbone as initialised

    @model_validator(mode="after")
    def _convolutional_backbone(self):
        if not self.backbone.learns:
            raise ValueError(f"backbone '{self.backbone.name}' has no weights to pretrain: use a convolutional backbone")
        return self

    def build(self, encoder: Encoder, images: int) -> "SSLMethod":
        """The method's module around `encoder`, for pretraining on `images` images."""
        raise NotImplementedError


@dataclass
class Step:
    """Where training is: optimiser step `index` of `total`, in epoch `epoch` (from 0)."""

    index: int
    total: int
    epoch: int


class SSLMethod(nn.Module):
    """`backbone` (the encoder being trained) and `head` (its trained heads) are the two parts
    make_optimizer takes, and `head_lr_scales` the heads it trains at a multiple of the
    learning rate; subclasses add their loss and, for momentum methods, a teacher."""

    def __init__(self, cfg: PretrainConfig, encoder: Encoder):
        super().__init__()
        self.cfg = cfg
        self.backbone = encoder
        self.head = nn.ModuleDict()

    @property
    def head_lr_scales(self) -> dict[str, float]:
        """A predictor method's `prediction` head at its `prediction_lr_scale` (none at 1: the
        optimiser's groups are then the usual backbone and head)."""
        scale = self.cfg.prediction_lr_scale if isinstance(self.cfg, PredictorOptions) else 1.0
        return {"prediction": scale} if scale != 1.0 else {}

    def make_views(self, images: torch.Tensor, views: ViewMaker, size: int) -> list[torch.Tensor]:
        return views.pair(images, size)

    def loss(self, views: list[torch.Tensor], at: Step) -> torch.Tensor:
        raise NotImplementedError

    def koleo(self, features: list[torch.Tensor]) -> torch.Tensor | float:
        """`koleo_weight` x the mean KoLeo loss of the first two (global) views' backbone features;
        0 for a method without the option or at weight 0."""
        weight = self.cfg.koleo_weight if isinstance(self.cfg, KoLeoOptions) else 0.0
        if not weight:
            return 0.0
        from lightly.loss import KoLeoLoss

        return weight * sum(KoLeoLoss()(feature.float()) for feature in features[:2]) / 2

    def before_optimizer_step(self, at: Step) -> None:
        """After backward, before the optimiser step (e.g. DINO's frozen last layer)."""

    def after_optimizer_step(self, at: Step) -> None:
        """After the optimiser step (e.g. a momentum teacher follows the student)."""

    @property
    def exported(self) -> Encoder:
        """The encoder whose backbone the stage saves (the student, unless a method says)."""
        return self.backbone


def frozen_copy(module: nn.Module) -> nn.Module:
    """A momentum teacher's starting point: a copy that no gradient reaches."""
    return frozen(copy.deepcopy(module))


def frozen(module: nn.Module) -> nn.Module:
    from lightly.models.utils import deactivate_requires_grad

    deactivate_requires_grad(module)
    return module


class MomentumOptions(Strict):
    """Mixed into the options of methods with a momentum teacher."""

    momentum: tuple[float, float] = (0.99, 1.0)  # start, end of the cosine schedule

    @model_validator(mode="after")
    def _momentum_range(self):
        if not all(0 <= m <= 1 for m in self.momentum):
            raise ValueError("momentum values are in [0, 1]")
        return self


class PredictorOptions(Strict):
    """Mixed into the options of methods with a predictor (BYOL, SimSiam). `prediction_lr_scale`
    multiplies the predictor's learning rate: a predictor that learns faster than the encoder
    keeps these methods from collapsing to a few directions early on (DirectPred, Tian et al.
    2021, train it at 10 times the rate)."""

    prediction_lr_scale: float = Field(1.0, gt=0)


class KoLeoOptions(Strict):
    """Mixed into the options of methods that may add DINOv2's KoLeo regulariser (Sablayrolles et
    al., 2019) on the student's backbone features of the two global views: `koleo_weight` x its
    loss pushes each image away from its nearest neighbour in the batch, against the dimensional
    collapse that the small-CNN pilots of DINO and BYOL show (docs/ssl.md)."""

    koleo_weight: float = Field(0.0, ge=0)


def follow_student(student: nn.Module, teacher: nn.Module, momentum: tuple[float, float], at: Step) -> None:
    """teacher = m * teacher + (1 - m) * student, with m on lightly's cosine schedule from
    momentum[0] to momentum[1] over the run."""
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    update_momentum(student, teacher, m=cosine_schedule(at.index, at.total, *momentum))
