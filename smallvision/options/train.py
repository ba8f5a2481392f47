"""The training options a recipe names: optimiser, learning-rate schedule, loss (each one of a
registry's kinds, with that kind's own options), and lookahead averaging.

Torch-free: each kind's options are registered here by name; smallvision.fit.optim and
smallvision.train.losses implement them. An option that does
not belong to the chosen kind (`scheduler: {name: cosine, patience: 3}`) is an error naming
the key, not silently ignored."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from smallvision.core.registry import Registry
from smallvision.options.schema import Strict, choice_of

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULES: Registry = Registry("scheduler")
LOSSES: Registry = Registry("loss")

# --- optimisers: make_optimizer builds the parameter groups, the builder the optimiser --------

# No recipe here goes above 1.5; a rate beyond this is a typo (1e308 passed, and trained on NaN).
MAX_LR = 100.0


class OptimizerOptions(Strict):
    """What every optimiser takes. `backbone_lr_scale` multiplies the backbone's learning rate
    (e.g. 0.1 to fine-tune at lr/10 under a fresh head). `norm_lr_scale` multiplies the
    batch-norm parameters' (airbench: 64 for its shift-only norms); their weight decay, when
    `decay_norm_and_bias` asks for it, is divided by the same factor so each step decays them as
    much as the other parameters."""

    lr: float = Field(1e-3, gt=0, le=MAX_LR)
    weight_decay: float = Field(0.0, ge=0)
    backbone_lr_scale: float = Field(1.0, gt=0)
    norm_lr_scale: float = Field(1.0, gt=0)
    decay_norm_and_bias: bool = False


@OPTIMIZERS.register("sgd")
class SGDOptions(OptimizerOptions):
    """`nesterov` applies only with a momentum above 0."""

    name: Literal["sgd"]
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True


@OPTIMIZERS.register("adam")
@OPTIMIZERS.register("adamw")
class AdamOptions(OptimizerOptions):
    """adamw decouples the weight decay from the gradient step; adam adds it to the gradient."""

    name: Literal["adam", "adamw"]
    betas: tuple[float, float] = (0.9, 0.999)


@OPTIMIZERS.register("rmsprop")
class RMSpropOptions(OptimizerOptions):
    """`rho`: the decay of the squared-gradient average (torch's `alpha`)."""

    name: Literal["rmsprop"]
    momentum: float = Field(0.9, ge=0, lt=1)
    rho: float = Field(0.9, gt=0, lt=1)


# --- learning-rate schedules ------------------------------------------------------------------

@SCHEDULES.register("none")
class ConstantSchedule(Strict):
    """A constant learning rate."""

    name: Literal["none"]


@SCHEDULES.register("cosine")
class CosineSchedule(Strict):
    """Per step: linear warmup over `warmup_epochs`, then cosine decay to min_lr_ratio x lr."""

    name: Literal["cosine"]
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)


@SCHEDULES.register("triangle")
class TriangleSchedule(Strict):
    """Per step, linear from start_lr_ratio up to the full rate at pct_start of the run, then
    linear down to min_lr_ratio (airbench's)."""

    name: Literal["triangle"]
    start_lr_ratio: float = Field(0.0, ge=0, le=1)
    pct_start: float = Field(0.25, gt=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)


@SCHEDULES.register("step")
class StepSchedule(Strict):
    """x gamma every step_size epochs."""

    name: Literal["step"]
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)


@SCHEDULES.register("plateau")
class PlateauSchedule(Strict):
    """x factor after `patience` epochs without improvement of the early-stopping monitor."""

    name: Literal["plateau"]
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(3, ge=0)


@SCHEDULES.register("onecycle")
class OneCycleSchedule(Strict):
    """torch's OneCycleLR, peaking at pct_start of the run."""

    name: Literal["onecycle"]
    pct_start: float = Field(0.25, gt=0, lt=1)


# --- losses -----------------------------------------------------------------------------------

class LossOptions(Strict):
    """`label_smoothing` applies to every loss (multilabel: towards 1/2). weighted_cross_entropy
    weighs classes by inverse training frequency (multilabel: positives by their
    negative/positive ratio). bce: one sigmoid per class."""

    label_smoothing: float = Field(0.0, ge=0, lt=1)


@LOSSES.register("cross_entropy")
@LOSSES.register("weighted_cross_entropy")
@LOSSES.register("bce")
class PlainLoss(LossOptions):
    name: Literal["cross_entropy", "weighted_cross_entropy", "bce"]


@LOSSES.register("focal")
class FocalLoss(LossOptions):
    """Lin et al.'s focal loss; `gamma` 0 is cross-entropy."""

    name: Literal["focal"]
    gamma: float = Field(2.0, ge=0)


# The field types: one kind's options, picked by `name` (the default when none is given).
OptimizerConfig = choice_of(OPTIMIZERS, "name", default="adamw")
SchedulerConfig = choice_of(SCHEDULES, "name", default="cosine")
LossConfig = choice_of(LOSSES, "name", default="cross_entropy")


class LookaheadConfig(Strict):
    """Every `every` steps: average = d x average + (1 - d) x weights, then weights = average,
    with d = decay^every x (step / last step)^power. After the last step the weights are the
    average. Batch-norm statistics are averaged too."""

    every: int = Field(5, ge=1)
    decay: float = Field(0.95, gt=0, lt=1)
    power: float = Field(3.0, ge=0)


LOWER_IS_BETTER = {"val_loss"}


class EarlyStoppingConfig(Strict):
    """`monitor` also picks the best checkpoint. Stops after `patience` epochs without an
    improvement above `min_delta` (0 = never), and/or when the monitor's spread
    (max - min) over the last `spread_window` epochs is below `spread_tolerance`.
    Neither rule fires before `min_epochs`."""

    monitor: Literal["val_loss", "val_accuracy", "val_macro_f1"] = "val_loss"
    patience: int = Field(0, ge=0)
    min_delta: float = Field(0.0, ge=0)
    min_epochs: int = Field(0, ge=0)
    spread_window: int = Field(0, ge=0)
    spread_tolerance: float = Field(0.0, ge=0)

    @property
    def mode(self) -> str:
        return "min" if self.monitor in LOWER_IS_BETTER else "max"
