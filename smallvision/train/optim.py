"""Optimisers and learning-rate schedules keyed by the names params.yaml uses."""

from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from smallvision.registry import Registry
from smallvision.schema import Strict, registered_name

OPTIMIZERS: Registry[Callable] = Registry("optimizer")
SCHEDULES: Registry[Callable] = Registry("scheduler")


@OPTIMIZERS.register("sgd")
def _sgd(groups, cfg):
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


@OPTIMIZERS.register("adam")
def _adam(groups, cfg):
    return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=_fusable(groups))


@OPTIMIZERS.register("adamw")
def _adamw(groups, cfg):
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=_fusable(groups))


def _fusable(groups) -> bool:
    """torch's fused Adam kernel updates each parameter in one pass instead of about ten: for the
    mlp's 6.5 M parameters (64 px sprites) 4.2 ms a step against 16.6 ms on the 2-core CPU. It has CPU and CUDA kernels."""
    return all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])


@OPTIMIZERS.register("rmsprop")
def _rmsprop(groups, cfg):
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=cfg.rho)


class OptimizerConfig(Strict):
    """`momentum` is used by sgd and rmsprop, `nesterov` by sgd, `betas` by adam/adamw,
    `rho` by rmsprop. `backbone_lr_scale` multiplies the backbone's learning rate
    (e.g. 0.1 to fine-tune at lr/10 under a fresh head). `norm_lr_scale` multiplies the
    batch-norm parameters' (airbench: 64 for its shift-only norms); their weight decay, when
    `decay_norm_and_bias` asks for it, is divided by the same factor so each step decays them as
    much as the other parameters."""

    name: registered_name(OPTIMIZERS) = "adamw"  # type: ignore[valid-type]
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    rho: float = Field(0.9, gt=0, lt=1)
    backbone_lr_scale: float = Field(1.0, gt=0)
    norm_lr_scale: float = Field(1.0, gt=0)
    decay_norm_and_bias: bool = False


def make_optimizer(model, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Parameter groups: backbone vs head (learning-rate scale); weights, batch-norm parameters
    and other biases (no weight decay on the latter two unless asked)."""
    norms = {id(param) for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)
             for param in module.parameters(recurse=False)}
    decay_rest = cfg.weight_decay if cfg.decay_norm_and_bias else 0.0
    groups = []
    for part, scale in ((model.backbone, cfg.backbone_lr_scale), (model.head, 1.0)):
        weights, norm_params, rest = [], [], []
        for param in part.parameters():
            if param.requires_grad:
                (weights if param.ndim > 1 else norm_params if id(param) in norms else rest).append(param)
        for params, lr, weight_decay in ((weights, cfg.lr * scale, cfg.weight_decay),
                                         (norm_params, cfg.lr * scale * cfg.norm_lr_scale, decay_rest / cfg.norm_lr_scale),
                                         (rest, cfg.lr * scale, decay_rest)):
            if params:
                groups.append({"params": params, "lr": lr, "weight_decay": weight_decay})
    return OPTIMIZERS[cfg.name](groups, cfg)


class SchedulerConfig(Strict):
    """cosine: warmup then cosine decay to min_lr_ratio, per step. step: x gamma every
    step_size epochs. plateau: x factor after `patience` epochs without improvement of the
    early-stopping monitor. onecycle: torch's OneCycleLR. triangle: per step, linear from
    start_lr_ratio up to the full rate at pct_start of the run, then linear down to min_lr_ratio
    (airbench's). none: constant."""

    name: registered_name(SCHEDULES) = "cosine"  # type: ignore[valid-type]
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    start_lr_ratio: float = Field(0.0, ge=0, le=1)
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(3, ge=0)
    pct_start: float = Field(0.25, gt=0, lt=1)


class Schedule:
    """Adjusts learning rates after every optimiser step and after every epoch."""

    def __init__(self, optimizer, scheduler=None, per_step: bool = True, monitor_mode: str = "min"):
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.per_step = per_step
        self.monitor_mode = monitor_mode

    def after_step(self) -> None:
        if self.scheduler is not None and self.per_step:
            self.scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        if self.scheduler is None or self.per_step:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitored)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


@SCHEDULES.register("none")
def _constant(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    return Schedule(optimizer)


@SCHEDULES.register("cosine")
def _cosine(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    total = max(1, epochs * steps_per_epoch)
    warmup = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return Schedule(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor))


@SCHEDULES.register("triangle")
def _triangle(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    total = max(1, epochs * steps_per_epoch)
    corners = ([0, cfg.pct_start * total, total], [cfg.start_lr_ratio, 1.0, cfg.min_lr_ratio])
    return Schedule(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: float(np.interp(step, *corners))))


@SCHEDULES.register("step")
def _step(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return Schedule(optimizer, scheduler, per_step=False)


@SCHEDULES.register("plateau")
def _plateau(optimizer, cfg, epochs, steps_per_epoch, monitor_mode: Literal["min", "max"]):
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=monitor_mode, factor=cfg.factor, patience=cfg.patience
    )
    return Schedule(optimizer, scheduler, per_step=False)


@SCHEDULES.register("onecycle")
def _onecycle(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lrs, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=cfg.pct_start
    )
    return Schedule(optimizer, scheduler)


def make_schedule(optimizer, cfg: SchedulerConfig, epochs: int, steps_per_epoch: int, monitor_mode: str) -> Schedule:
    return SCHEDULES[cfg.name](optimizer, cfg, epochs, steps_per_epoch, monitor_mode)
