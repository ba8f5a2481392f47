"""Optimisers and learning-rate schedules: the builders of the kinds that params.yaml names
(their options, and which builder each name takes, are in smallvision.options.train)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import nn

from smallvision.options.train import (  # noqa: F401  (re-exported: the options live there)
    OPTIMIZERS,
    SCHEDULES,
    OptimizerConfig,
    SchedulerConfig,
)


@OPTIMIZERS.implement("sgd")
def build_sgd(groups, cfg):
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


@OPTIMIZERS.implement("adam")
def build_adam(groups, cfg):
    return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=_fusable(groups))


@OPTIMIZERS.implement("adamw")
def build_adamw(groups, cfg):
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=_fusable(groups))


def _fusable(groups) -> bool:
    """torch's fused Adam kernel updates each parameter in one pass instead of about ten: for the
    mlp's 6.5 M parameters (64 px sprites) 4.2 ms a step against 16.6 ms on the 2-core CPU. It has CPU and CUDA kernels."""
    return all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])


@OPTIMIZERS.implement("rmsprop")
def build_rmsprop(groups, cfg):
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=cfg.rho)


def make_optimizer(model, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Parameter groups: backbone vs head, and the head parts a model scales (learning-rate
    scale); weights, batch-norm parameters and other biases (no weight decay on the latter two
    unless asked)."""
    norms = {id(param) for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)
             for param in module.parameters(recurse=False)}
    decay_rest = cfg.weight_decay if cfg.decay_norm_and_bias else 0.0
    groups = []
    for part, scale in _parts_with_lr_scales(model, cfg):
        weights, norm_params, rest = [], [], []
        for param in part.parameters():
            if param.requires_grad:
                (weights if param.ndim > 1 else norm_params if id(param) in norms else rest).append(param)
        for params, lr, weight_decay in ((weights, cfg.lr * scale, cfg.weight_decay),
                                         (norm_params, cfg.lr * scale * cfg.norm_lr_scale, decay_rest / cfg.norm_lr_scale),
                                         (rest, cfg.lr * scale, decay_rest)):
            if params:
                groups.append({"params": params, "lr": lr, "weight_decay": weight_decay})
    return OPTIMIZERS.implementation(cfg.name)(groups, cfg)


def _parts_with_lr_scales(model, cfg: OptimizerConfig) -> list[tuple[nn.Module, float]]:
    """The backbone at `backbone_lr_scale`; the head at 1, except the parts of an SSL method's
    heads (a ModuleDict) that its `head_lr_scales` names (BYOL's and SimSiam's predictor)."""
    scales = getattr(model, "head_lr_scales", {})
    heads = [(module, scales.get(name, 1.0)) for name, module in model.head.items()] if scales else [(model.head, 1.0)]
    return [(model.backbone, cfg.backbone_lr_scale), *heads]


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


@SCHEDULES.implement("none")
def schedule_constant(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    return Schedule(optimizer)


@SCHEDULES.implement("cosine")
def schedule_cosine(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    total = max(1, epochs * steps_per_epoch)
    warmup = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return Schedule(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor))


@SCHEDULES.implement("triangle")
def schedule_triangle(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    total = max(1, epochs * steps_per_epoch)
    corners = ([0, cfg.pct_start * total, total], [cfg.start_lr_ratio, 1.0, cfg.min_lr_ratio])
    return Schedule(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: float(np.interp(step, *corners))))


@SCHEDULES.implement("step")
def schedule_step(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return Schedule(optimizer, scheduler, per_step=False)


@SCHEDULES.implement("plateau")
def schedule_plateau(optimizer, cfg, epochs, steps_per_epoch, monitor_mode: Literal["min", "max"]):
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=monitor_mode, factor=cfg.factor, patience=cfg.patience
    )
    return Schedule(optimizer, scheduler, per_step=False)


@SCHEDULES.implement("onecycle")
def schedule_onecycle(optimizer, cfg, epochs, steps_per_epoch, monitor_mode):
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lrs, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=cfg.pct_start
    )
    return Schedule(optimizer, scheduler)


def make_schedule(optimizer, cfg: SchedulerConfig, epochs: int, steps_per_epoch: int, monitor_mode: str) -> Schedule:
    return SCHEDULES.implementation(cfg.name)(optimizer, cfg, epochs, steps_per_epoch, monitor_mode)
