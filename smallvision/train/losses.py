"""Losses: the builders of the kinds params.yaml names, registered against the names their
options declare in smallvision.options.train. Targets arrive as class indices or, after
MixUp/CutMix, as per-class probabilities. On a multilabel dataset (0/1 target vectors) every
loss takes its sigmoid form, so one recipe runs on single-label and multilabel datasets alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smallvision.options.train import LOSSES, LossConfig  # noqa: F401  (re-exported: the options live there)


def soft_targets(targets: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    if targets.ndim == 1:
        targets = F.one_hot(targets, num_classes).float()
    if smoothing:
        targets = targets * (1 - smoothing) + smoothing / num_classes
    return targets


def smooth_binary(targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    return targets.float() * (1 - smoothing) + smoothing / 2


@LOSSES.implement("cross_entropy")
def cross_entropy(cfg, class_counts: torch.Tensor, samples: int, multilabel: bool):
    def loss(logits, targets):
        if multilabel:
            return F.binary_cross_entropy_with_logits(logits, smooth_binary(targets, cfg.label_smoothing))
        if targets.ndim == 1:
            return F.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing)
        return F.cross_entropy(logits, soft_targets(targets, logits.shape[1], cfg.label_smoothing))

    return loss


@LOSSES.implement("weighted_cross_entropy")
def weighted_cross_entropy(cfg, class_counts: torch.Tensor, samples: int, multilabel: bool):
    if multilabel:
        positive_weight = (samples - class_counts) / class_counts.clamp(min=1)
        return lambda logits, targets: F.binary_cross_entropy_with_logits(
            logits, smooth_binary(targets, cfg.label_smoothing), pos_weight=positive_weight)
    weights = class_counts.sum() / (len(class_counts) * class_counts.clamp(min=1))

    def loss(logits, targets):
        targets = soft_targets(targets, logits.shape[1], cfg.label_smoothing)
        per_sample = -(targets * weights * F.log_softmax(logits, dim=1)).sum(1)
        return per_sample.sum() / (targets * weights).sum()

    return loss


@LOSSES.implement("focal")
def focal(cfg, class_counts: torch.Tensor, samples: int, multilabel: bool):
    """Lin et al.'s focal loss: down-weights examples that are already classified well."""
    if multilabel:
        from torchvision.ops import sigmoid_focal_loss

        return lambda logits, targets: sigmoid_focal_loss(
            logits, smooth_binary(targets, cfg.label_smoothing), alpha=-1, gamma=cfg.gamma, reduction="mean")

    def loss(logits, targets):
        targets = soft_targets(targets, logits.shape[1], cfg.label_smoothing)
        log_probs = F.log_softmax(logits, dim=1)
        modulation = (1 - log_probs.exp()).pow(cfg.gamma)
        return -(targets * modulation * log_probs).sum(1).mean()

    return loss


@LOSSES.implement("bce")
def bce(cfg, class_counts: torch.Tensor, samples: int, multilabel: bool):
    """One sigmoid per class (single-label targets become one-hot vectors)."""

    def loss(logits, targets):
        if targets.ndim == 1:
            targets = F.one_hot(targets, logits.shape[1])
        return F.binary_cross_entropy_with_logits(logits, smooth_binary(targets, cfg.label_smoothing))

    return loss


def make_loss(cfg, class_counts: torch.Tensor, samples: int = 0, multilabel: bool = False):
    return LOSSES.implementation(cfg.name)(cfg, class_counts, samples, multilabel)
